"""Fused backtests and searches: a year of 1-minute bars through the compiled loops.

The data: the example's real Binance BTC/USDT 1m bars (42,915) laid end to end, each copy's
prices scaled to start at the last close of the one before (the real returns, in order), to a
year of minutes (525,600 bars). Every figure stands beside a baseline taken in the same run:

* **kernels** — the fused static grid (bars/s) beside a numba pass that only reads the same
  arrays (the memory-bound ceiling); the fused default pipeline (the four validators, the ten
  core features, the grid); the plugin path (``fuse = "off"``) on the example's month.
  Beside them, vectorbt's exact grid of the same lines (``Portfolio.from_order_func``,
  flexible; ``vectorbt_grid.py``) where a Python with vectorbt is at hand: vectorbt pins its
  own numba and pandas, so give it a virtualenv of its own and name its python in
  ``GRIDKIT_VECTORBT_PYTHON`` (``python -m venv /tmp/vbt && /tmp/vbt/bin/pip install
  vectorbt``).
* **search** — 1,000 static-grid trials (``grids``, ``lower``, ``upper``, ``qty`` drawn at
  random) over the year on the fused runner, in one process and on every core.
* **start-up and memory** — ``gridkit run`` of the year, fused, in a fresh process: with
  numba's on-disk cache empty (cold: every kernel compiles) and filled (warm); its peak RSS,
  and the plugin path's (``fuse = "off"``), beside a process that only imports numba.

Run from the repository root: ``python benchmarks/bench_fused.py [--quick]``.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    EXAMPLE_DATA,
    EXAMPLES,
    REPO,
    SUBPROCESS_ENV,
    Row,
    Section,
    at_least,
    at_most,
    main,
)

YEAR = 525_600
TRIALS = 1_000


def year_rows(n: int = YEAR) -> list[list[float]]:
    """The example's bars laid end to end to ``n`` bars, minutes consecutive: the month as it
    was, then backwards in time (open and close swapped), and so on, each copy's prices scaled
    to start at the last close of the one before. Real bars, real moves, in a bounded range."""
    with gzip.open(EXAMPLE_DATA, "rt") as f:
        month = json.load(f)
    back = [[r[0], r[4], r[2], r[3], r[1], r[5]] for r in reversed(month)]
    rows: list[list[float]] = []
    t = int(month[0][0])
    copy = 0
    while len(rows) < n:
        part = back if copy % 2 else month
        scale = rows[-1][4] / part[0][1] if rows else 1.0
        for r in part:
            rows.append([t, r[1] * scale, r[2] * scale, r[3] * scale, r[4] * scale, r[5]])
            t += 60_000
            if len(rows) == n:
                break
        copy += 1
    return rows


def _pipeline(path: Path, lines: tuple[float, float], fuse: str, features: bool) -> str:
    feats = "".join(f'[[features]]\nuse = "{f}"\n' for f in (
        "rsi", "atr", "ema", "volatility", "bb-position", "price-change", "price-position",
        "trend-strength", "volume-ratio", "volume-acceleration")) if features else ""
    return (f'[pipeline]\nname = "year"\nmode = "backtest"\nsymbol = "BTC/USDT"\n'
            f'capital = 100000\nfuse = "{fuse}"\n[source]\nuse = "freqtrade-json"\n'
            f'path = "{path.as_posix()}"\n{feats}[strategy]\nuse = "static"\n'
            f"lower = {lines[0]:.2f}\nupper = {lines[1]:.2f}\ngrids = 40\nqty = 0.01\n"
            f'[executor]\nuse = "simulated"\n')


def _kernels(quick: bool, arrays: dict[str, np.ndarray]) -> Section:
    from numba import njit

    from gridkit.fused.grid import grid_backtest
    from gridkit.fused.run import BarArrays, start_features
    from gridkit.fused.validate import validate_bars
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    @njit(cache=True)
    def read_only(open_, high, low, close, accepted):  # pragma: no cover - numba
        s = 0.0
        for i in range(close.shape[0]):
            if accepted[i]:
                s += open_[i] + high[i] + low[i] + close[i]
        return s

    o, h, lo, c, v, ts = (arrays[k] for k in ("open", "high", "low", "close", "volume", "ts"))
    n = len(c)
    ok = np.ones(n, dtype=np.bool_)
    # A busy grid (40 cells over the middle 90% of the year's prices: a fill every ~45 bars)
    # and the example's grid (30 cells, 45,000-60,000: the month's range, fewer fills).
    lines = np.linspace(float(np.percentile(c, 5)), float(np.percentile(c, 95)), 41)
    qtys = np.full(40, 0.01)
    example_lines = np.linspace(45_000.0, 60_000.0, 31)
    example_qtys = np.full(30, 0.005)
    repeat = 3 if quick else 9

    def grid() -> Any:
        return grid_backtest(o, h, lo, c, ok, lines, qtys, True, 100_000.0, 0.001, 0.001, True)

    def example_grid() -> Any:
        return grid_backtest(o, h, lo, c, ok, example_lines, example_qtys, True, 10_000.0,
                             0.001, 0.001, True)

    program = np.array([0, 1, 2, 4], dtype=np.int64)
    cfg = parse_pipeline(_pipeline(EXAMPLE_DATA, (lines[0], lines[-1]), "on", True))
    features = [f for _, f in build_pipeline(cfg).lanes[0].features]
    bars = BarArrays(ts, o, h, lo, c, v)

    def default() -> Any:  # as gridkit.fused.run.run_fused runs them
        accepted = validate_bars(ts, o, h, lo, c, v, program, 0, np.inf, 86_400_000.0)[0]
        wait = start_features(features, bars, accepted)
        out = grid_backtest(o, h, lo, c, accepted, lines, qtys, True, 100_000.0, 0.001, 0.001,
                            True)
        wait()
        return out

    timings: dict[str, float] = {}
    runs = (("read", lambda: read_only(o, h, lo, c, ok)), ("grid", grid),
            ("example", example_grid), ("default", default))
    for _name, fn in runs:
        fn()  # compiled (or loaded from the cache) outside the timing
    for _ in range(repeat):
        for name, fn in runs:
            t0 = time.perf_counter()
            fn()
            timings[name] = min(timings.get(name, 1e9), time.perf_counter() - t0)
    fills = int(grid()[2][0])
    example_fills = int(example_grid()[2][0])
    month = parse_pipeline((EXAMPLES / "pipeline.toml").read_text().replace(
        "[[risk]]", "[[riskx]]").split("[[riskx]]")[0] + '[executor]\nuse = "simulated"\n',
        base_dir=EXAMPLES)
    t0 = time.perf_counter()
    plugin = run_pipeline(build_pipeline(month))
    plugin_s = time.perf_counter() - t0
    plugin_rate = plugin["bars_accepted"] / plugin_s
    read_rate, grid_rate, example_rate, default_rate = (
        n / timings[k] for k in ("read", "grid", "example", "default"))
    rows = [
        Row("fused static grid, the example's", example_rate, "bars/s", ">= 100 M bars/s",
            at_least(example_rate, 100e6), read_rate, "bars/s", "numba read-only pass",
            f"one grid_backtest call over {n:,} bars, 30 cells 45,000-60,000, "
            f"{example_fills:,} fills, best of {repeat}"),
        Row("fused static grid, a busy one", grid_rate, "bars/s", ">= 100 M bars/s",
            at_least(grid_rate, 100e6), read_rate, "bars/s", "numba read-only pass",
            f"40 cells over the middle 90% of the prices, {fills:,} fills (about "
            f"{timings['grid'] / max(fills, 1) * 1e9:,.0f} ns per fill, all costs)"),
        Row("fused static grid / read-only pass", example_rate / read_rate, "x", ">= 0.1",
            at_least(example_rate / read_rate, 0.1), how="the example's grid; the busy one: "
            f"{grid_rate / read_rate:.2f}x"),
        Row("fused default pipeline", default_rate, "bars/s", ">= 10 M bars/s",
            at_least(default_rate, 10e6), read_rate, "bars/s", "numba read-only pass",
            "validators (timestamp, price, volume, ohlc) + ten core features + the grid"),
        Row("plugin path, same grid", plugin_rate, "bars/s", "", None, grid_rate, "bars/s",
            "fused static grid", f"the example's month (rsi + static grid), run_pipeline; "
                                 f"fused is {grid_rate / plugin_rate:,.0f}x"),
    ]
    notes = [f"read-only pass {timings['read'] * 1e3:.2f} ms, example grid "
             f"{timings['example'] * 1e3:.2f} ms, busy grid {timings['grid'] * 1e3:.2f} ms, "
             f"default pipeline {timings['default'] * 1e3:.2f} ms (the validators' pass, then the "
             f"ten features in two groups on two threads beside the grid: the features' "
             f"own arithmetic is the most of it)"]
    vbt = _vectorbt(np.column_stack([ts, o, h, lo, c, v]), example_lines, 0.005, 0.001,
                    repeat)
    if isinstance(vbt, str):
        notes.append(vbt)
    else:
        vbt_rate = n / vbt["seconds"]
        rows.append(Row("fused static grid / vectorbt", example_rate / vbt_rate, "x",
                        ">= 30x", at_least(example_rate / vbt_rate, 30.0), vbt_rate,
                        "bars/s", f"vectorbt {vbt['vectorbt']} exact grid",
                        f"the example's grid in Portfolio.from_order_func (flexible: several "
                        f"fills a bar), {vbt['fills']:,} orders against the kernel's "
                        f"{example_fills:,} fills; benchmarks/vectorbt_grid.py"))
    return Section("fused", "Fused backtest kernels",
                   "The compiled loops over a year of real 1m bars (laid end to end), best of "
                   "N, beside a numba pass that only reads the same arrays.", rows, notes)


def _vectorbt(bars: np.ndarray, lines: np.ndarray, qty: float, fee: float,
              repeat: int) -> dict[str, Any] | str:
    """vectorbt's exact grid on ``bars`` (benchmarks/vectorbt_grid.py) under the Python of
    ``GRIDKIT_VECTORBT_PYTHON`` (vectorbt pins its own numba and pandas: a virtualenv of its
    own), else this one; or why there is no figure."""
    python = os.environ.get("GRIDKIT_VECTORBT_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import vectorbt"], capture_output=True)
    if probe.returncode:
        return ("vectorbt is not installed (it pins its own numba and pandas; install it in a "
                "virtualenv of its own and set GRIDKIT_VECTORBT_PYTHON to its python): no "
                "same-run figure")
    folder = Path(tempfile.mkdtemp())
    np.save(folder / "bars.npy", bars)
    np.save(folder / "lines.npy", lines)
    res = subprocess.run([python, str(Path(__file__).with_name("vectorbt_grid.py")),
                          str(folder / "bars.npy"), str(folder / "lines.npy"), str(qty),
                          str(fee), str(repeat)], capture_output=True, text=True)
    if res.returncode:
        return f"vectorbt's grid failed: {res.stderr.strip().splitlines()[-1:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _search(quick: bool, path: Path, lines: tuple[float, float]) -> Section:
    from gridkit.plugins.optimizers import RandomSearch
    from gridkit.research import optimize, parse_space
    from gridkit.runtime.pipeline_file import tomllib
    from gridkit.testing import build

    trials = 100 if quick else TRIALS
    data = tomllib.loads(_pipeline(path, lines, "auto", False))
    span = lines[1] - lines[0]
    space = parse_space({
        "strategy.grids": {"low": 10, "high": 80, "int": True},
        "strategy.lower": {"low": lines[0] - 0.1 * span, "high": lines[0] + 0.2 * span},
        "strategy.upper": {"low": lines[1] - 0.2 * span, "high": lines[1] + 0.1 * span},
        "strategy.qty": {"low": 0.002, "high": 0.05, "log": True}})
    rates = {}
    got = {}
    for workers in (1, os.cpu_count() or 1):
        t0 = time.perf_counter()
        done = optimize(data, space, build(RandomSearch, {"trials": trials}), seed=1,
                        objective="calmar", workers=workers)
        wall = time.perf_counter() - t0
        rates[workers] = (trials / wall, wall)
        got[workers] = [(t.params, t.score) for t in done]
        assert all(t.path == "fused" for t in done)
    cores = os.cpu_count() or 1
    serial, par = rates[1], rates[cores]
    rows = [
        Row(f"{trials:,} trials, one process", serial[1], "s",
            how=f"{serial[0]:,.0f} trials/s, the data read and validated once (in the wall)"),
        Row(f"{trials:,} trials, {cores} processes", par[1], "s",
            "< 10 s" if trials == TRIALS else "", at_most(par[1], 10.0)
            if trials == TRIALS else None, serial[1], "s", "one process",
            f"{par[0]:,.0f} trials/s; the same trials as one process: "
            f"{got[1] == got[cores]}"),
    ]
    return Section("search", "Fused search",
                   f"gridkit.research.optimize with random search over a year of 1m bars "
                   f"({YEAR:,}), static grid, four options, fused runner; wall time from the "
                   f"call to its return.", rows, [])


def _peak_rss(args: list[str]) -> float:
    """The peak RSS (MB) of a fresh ``python args...`` process."""
    code = ("import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, *sys.argv[1:]], check=True, "
            "stdout=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    res = subprocess.run([sys.executable, "-c", code, *args], env=SUBPROCESS_ENV, cwd=REPO,
                         capture_output=True, text=True, check=True)
    return int(res.stdout.split()[-1]) / 1024


def _startup(quick: bool, path: Path, lines: tuple[float, float]) -> Section:
    toml = Path(tempfile.mkdtemp()) / "year.toml"
    toml.write_text(_pipeline(path, lines, "on", False))
    off = toml.with_name("year-off.toml")
    off.write_text(_pipeline(path, lines, "off", False))
    code = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "p = subprocess.run([sys.executable, '-m', 'gridkit', 'run', sys.argv[1], "
            "'--quiet', '--json'], capture_output=True, text=True)\n"
            "assert p.returncode == 0, p.stderr\n"
            "print(time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    runs = 1 if quick else 3
    out: dict[str, list[tuple[float, int]]] = {"cold": [], "warm": []}
    for _ in range(runs):
        for kind in ("cold", "warm"):
            env = dict(SUBPROCESS_ENV)
            cache = Path(tempfile.mkdtemp())
            env["NUMBA_CACHE_DIR"] = str(cache if kind == "cold" else
                                         Path(tempfile.gettempdir()) / "gridkit-bench-numba")
            if kind == "warm":  # fill the shared cache once
                subprocess.run([sys.executable, "-c", code, str(toml)], env=env, cwd=REPO,
                               capture_output=True, check=True)
            res = subprocess.run([sys.executable, "-c", code, str(toml)], env=env, cwd=REPO,
                                 capture_output=True, text=True, check=True)
            secs, rss = res.stdout.split()
            out[kind].append((float(secs), int(rss)))
    cold = min(s for s, _ in out["cold"])
    warm = min(s for s, _ in out["warm"])
    rss = max(r for _, r in out["warm"]) / 1024
    numba_rss = _peak_rss(["-c", "import numba"])
    plugin_rss = _peak_rss(["-m", "gridkit", "run", str(off), "--quiet"])
    summary = json.loads(subprocess.run(
        [sys.executable, "-m", "gridkit", "run", str(toml), "--quiet", "--json"],
        capture_output=True, text=True, cwd=REPO, env=SUBPROCESS_ENV, check=True).stdout)
    rows = [
        Row("gridkit run, a year fused, cold", cold, "s", how="numba's cache empty: every "
            "kernel compiles; a fresh process, best of the runs"),
        Row("gridkit run, a year fused, warm", warm, "s", baseline=cold, baseline_unit="s",
            baseline_name="cold", how="the kernels loaded from numba's on-disk cache"),
        Row("peak RSS, a year on the plugin path", plugin_rss, "MB", "< 150 MB",
            at_most(plugin_rss, 150.0), how="ru_maxrss of gridkit run with fuse = \"off\": "
            "the file's text and its bars as columns (a Bar made per event as it replays)"),
        Row("peak RSS, a year fused", rss, "MB", "< 150 MB", at_most(rss, 150.0), numba_rss,
            "MB", "a process that only imports numba",
            how="ru_maxrss of the gridkit run process: numba's import is most of it; the "
                "data is the file's text while it is read and six columns"),
    ]
    return Section("fused-start", "Fused run: start-up and memory",
                   f"gridkit run of a pipeline of {YEAR:,} 1m bars with fuse = \"on\" in "
                   f"fresh processes.", rows,
                   [f"backtest_path: {summary['backtest_path']}, "
                    f"{summary['bars_accepted']:,} bars, "
                    f"{summary['buy_fills'] + summary['sell_fills']:,} fills"])


def collect(quick: bool) -> list[Section]:
    rows = year_rows()
    a = np.array(rows, dtype=np.float64)
    arrays = {"ts": a[:, 0].astype(np.int64), **{k: np.ascontiguousarray(a[:, i]) for i, k in
                                                 enumerate(("open", "high", "low", "close",
                                                            "volume"), 1)}}
    closes = arrays["close"]
    lines = (float(np.percentile(closes, 5)), float(np.percentile(closes, 95)))
    # The kernels first: writing the year's 35 MB file sets the kernel writing it back to
    # disk for a few seconds, which on this machine slows the timed loops by a third.
    kernels = _kernels(quick, arrays)
    path = Path(tempfile.mkdtemp()) / "BTC_USDT-1m-year.json"
    path.write_text(json.dumps(rows))
    del rows
    os.sync()
    return [kernels, _search(quick, path, lines), _startup(quick, path, lines)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
