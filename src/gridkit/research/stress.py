"""Stress tests: one configuration re-run over resampled and shocked price paths.

Each path is a backtest on the fused kernels (:class:`~gridkit.research.runners.FusedRunner`),
so hundreds of paths take seconds. The scenarios:

* ``bootstrap`` — a moving-block bootstrap of the real bars (Künsch, "The jackknife and the
  bootstrap for general stationary observations", *Annals of Statistics* 17, 1989): the first
  ``block`` bars as they were (the grid is laid at the same price), then blocks of ``block``
  consecutive real bars drawn at random, each scaled to open where the last one closed, to the
  data's length. Bars keep their shape (open, high, low, close relative to each other) and
  volume, so short-range dependence and volatility clusters within a block survive.
* ``gap`` — the real path with every price from one random bar on ``gap`` lower: the bar opens
  through the grid's lines (a weekend or news gap).
* ``crash`` — the real path with one random bar's low ``crash`` below its close (a flash crash
  that recovers within the bar: every buy line above that low fills).
* ``outage`` — the real path with ``outage`` consecutive bars from a random one missing: the
  exchange is down, nothing fills and nothing is marked, and trading resumes after it.

For each scenario the figures are the distribution (5th, 50th, 95th percentile and the worst)
of the maximum drawdown, the final equity and the largest inventory held (the base the grid
bought on the way down: the worst case a falling market leaves it with).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from attrs import frozen

from gridkit.core.errors import ConfigError

SCENARIOS = ("bootstrap", "gap", "crash", "outage")


@frozen
class Shocks:
    """How many paths per scenario and how hard each shock is."""

    paths: int = 200
    block: int = 60
    gap: float = 0.1
    crash: float = 0.3
    outage: int = 720
    seed: int = 0


def stress(pipeline: Mapping[str, Any], shocks: Shocks = Shocks(), *,
           base_dir: Path | None = None, source: str = "<pipeline>") -> dict[str, Any]:
    """Run ``pipeline`` (pipeline.toml's tables) on the real bars and on each scenario's paths;
    the figures (see the module's docstring). A pipeline without a fused form is a
    :class:`gridkit.ConfigError` naming why."""
    from gridkit.research.runners import FusedRunner
    from gridkit.research.space import Space

    runner = FusedRunner.make(pipeline, Space(()), base_dir, source)
    if isinstance(runner, str):
        raise ConfigError(f"gridkit stress runs fused backtests, and this pipeline has no "
                          f"fused form: {runner}", source)
    arrays, accepted = runner.arrays, runner.accepted
    real = np.flatnonzero(accepted)
    if len(real) < 2 * shocks.block:
        raise ConfigError(f"block: {shocks.block} bars is too long for the data's "
                          f"{len(real):,} accepted bars (at most half of them)", source)
    if shocks.outage >= len(real):
        raise ConfigError(f"outage: {shocks.outage} bars is as long as the data's "
                          f"{len(real):,} accepted bars", source)
    # The accepted bars only: the paths are made of real, valid bars.
    bars = arrays._replace(**{k: getattr(arrays, k)[real] for k in
                              ("ts", "open", "high", "low", "close", "volume")})
    every = np.ones(len(real), dtype=np.bool_)
    base = _run(runner, bars, every)
    rng = np.random.default_rng(shocks.seed)
    out: dict[str, Any] = {"bars": len(real), "shocks": {
        "paths": shocks.paths, "block": shocks.block, "gap": shocks.gap,
        "crash": shocks.crash, "outage": shocks.outage, "seed": shocks.seed},
        "real": base, "scenarios": {}}
    for name in SCENARIOS:
        runs = []
        for _ in range(shocks.paths):
            path, ok = _path(name, bars, every, shocks, rng)
            runs.append(_run(runner, path, ok))
        out["scenarios"][name] = _distribution(runs)
    return out


def _run(runner: Any, arrays: Any, accepted: np.ndarray) -> dict[str, float]:
    got = runner.run({}, arrays, accepted)
    if isinstance(got, str):
        raise ConfigError(f"the configuration cannot run: {got}")
    return {"max_drawdown": got["max_drawdown"], "final_equity": got["final_equity"],
            "return_pct": got["return_pct"], "max_base": got["max_base"]}


def _path(name: str, bars: Any, every: np.ndarray, shocks: Shocks,
          rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """One path of scenario ``name`` over the real accepted ``bars``."""
    n = len(bars.close)
    if name == "bootstrap":
        return _bootstrap(bars, shocks.block, rng), every
    k = int(rng.integers(1, n))  # never the first bar: the grid is laid on the real close
    if name == "outage":
        ok = every.copy()
        ok[k:k + shocks.outage] = False
        return bars, ok
    o, h, lo, c = (getattr(bars, f).copy() for f in ("open", "high", "low", "close"))
    if name == "gap":
        for col in (o, h, lo, c):
            col[k:] *= 1.0 - shocks.gap
    else:  # crash: one bar's wick
        lo[k] = min(lo[k], c[k] * (1.0 - shocks.crash))
    return bars._replace(open=o, high=h, low=lo, close=c), every


def _bootstrap(bars: Any, block: int, rng: np.random.Generator) -> Any:
    """The first block as it was, then random blocks, each scaled to open at the last close."""
    n = len(bars.close)
    starts = rng.integers(0, n - block + 1, size=(n - 1) // block + 1)
    starts[0] = 0
    index = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
    scale = np.ones(n)
    prev_close = bars.close[block - 1]
    for b in range(1, len(starts)):
        first = b * block
        if first >= n:
            break
        factor = prev_close / bars.open[index[first]]
        last = min(first + block, n)
        scale[first:last] = factor
        prev_close = bars.close[index[last - 1]] * factor
    cols = {f: np.ascontiguousarray(getattr(bars, f)[index] * scale)
            for f in ("open", "high", "low", "close")}
    return bars._replace(volume=np.ascontiguousarray(bars.volume[index]), **cols)


def _distribution(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Percentiles and the worst of each figure over a scenario's paths."""
    out: dict[str, Any] = {"paths": len(runs)}
    for key, worst in (("max_drawdown", max), ("final_equity", min), ("return_pct", min),
                       ("max_base", max)):
        values = np.array([r[key] for r in runs], dtype=float)
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        out[key] = {"p5": float(p5), "p50": float(p50), "p95": float(p95),
                    "worst": float(worst(values))}
    return out


__all__ = ["SCENARIOS", "Shocks", "stress"]
