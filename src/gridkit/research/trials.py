"""The trial driver: asks an optimizer for points and backtests each one.

:func:`optimize` takes a pipeline (pipeline.toml's tables), a :class:`~gridkit.research.Space`
and an :class:`gridkit.Optimizer`; every trial is the pipeline with the point's options set,
built and run as ``gridkit run`` would (the plugin path, no store), scored by an objective
read from its summary. The optimizer never runs a backtest itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.components import Optimizer
from gridkit.core.errors import ConfigError
from gridkit.research.space import Space, with_point


def _return(s: Mapping[str, Any]) -> float:
    return float(s["return_pct"])


def _calmar(s: Mapping[str, Any]) -> float:
    dd = float(s["max_drawdown"])
    return float(s["return_pct"]) / (dd * 100.0) if dd > 0 else math.nan


def _grid_profit(s: Mapping[str, Any]) -> float:
    return float((s.get("grid") or {}).get("grid_profit", math.nan))


#: Objectives read from a run's summary (higher is better). ``return``: return in %;
#: ``calmar``: return in % over the max drawdown in %; ``grid-profit``: the grid's realized
#: profit in quote currency (matched buy/sell lots).
OBJECTIVES: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "return": _return, "calmar": _calmar, "grid-profit": _grid_profit}


@frozen
class Trial:
    """One backtest of the search: the point, its score (NaN: failed or constrained out) and
    the summary figures it was scored on (or why it failed)."""

    number: int
    params: dict[str, Any]
    score: float
    return_pct: float | None = None
    max_drawdown: float | None = None
    orders: int | None = None
    error: str | None = None
    #: How it ran: ``"fused"`` (:class:`~gridkit.research.runners.FusedRunner`) or
    #: ``"plugin"`` (built and run by the engine).
    path: str = "plugin"


def optimize(pipeline: Mapping[str, Any], space: Space, optimizer: Optimizer, *,
             objective: str = "return", max_drawdown: float | None = None,
             budget: int | None = None, seed: int = 0, base_dir: Path | None = None,
             on_trial: Callable[[Trial], None] | None = None,
             replay: Sequence[Trial] = (), source: str = "<trial>",
             fused: bool = True) -> list[Trial]:
    """Run the search; return every trial in the order it ran.

    :param pipeline: pipeline.toml's tables (``tomllib.load`` of the file); not changed.
    :param objective: a name of :data:`OBJECTIVES`.
    :param max_drawdown: a constraint: a trial whose drawdown exceeds it scores NaN.
    :param budget: the most trials to run (None: until the optimizer has no point left).
    :param base_dir: the folder relative paths in the pipeline are resolved against.
    :param source: the pipeline's file, as error lines name it.
    :param on_trial: called after each trial that ran (a progress line, a store row).
    :param replay: the trials of an interrupted search, in order: the optimizer is asked again
        (same seed, same scores: same points) and told their scores without running them.
    :param fused: run the trials on the fused runner when the pipeline has a fused form
        (:mod:`gridkit.research.runners`: the same figures, read and validated data shared by
        every trial); False runs each point through the engine.

    SIGINT or SIGTERM during a trial stops that trial's run; the trial is not kept and
    :class:`KeyboardInterrupt` is raised (the trials kept so far were handed to ``on_trial``).

    A point whose options the pipeline refuses (an option it does not have, a value out of
    range) is a :class:`gridkit.ConfigError` before any trial runs when it is the first point,
    else that trial's ``error``.
    """
    from gridkit.research.runners import PluginRunner, runner_for

    score_of = OBJECTIVES.get(objective)
    if score_of is None:
        raise ConfigError(f"objective: unknown {objective!r}; objectives are: "
                          f"{', '.join(OBJECTIVES)}")
    if budget is not None and budget < 1:
        raise ConfigError(f"budget: must be at least 1, got {budget}")
    optimizer.start(space, seed)
    runner: Any = None
    trials: list[Trial] = []
    while budget is None or len(trials) < budget:
        params = optimizer.ask()
        if params is None:
            break
        if len(trials) < len(replay):
            done = replay[len(trials)]
            if done.params != dict(params):
                raise ConfigError(f"resume: the optimizer proposed {dict(params)} as trial "
                                  f"{len(trials)}, not {done.params} as before (is it "
                                  f"seeded?); start a new search")
            optimizer.tell(done.params, done.score)
            trials.append(done)
            continue
        if runner is None:  # the data is read once, when the first trial is to run
            runner = (runner_for(pipeline, space, base_dir, source)[0] if fused
                      else PluginRunner(pipeline, base_dir, source))
        try:
            trial = _trial(len(trials), dict(params), runner, score_of, max_drawdown)
        except ConfigError as err:  # the pipeline refuses the point's options
            if not trials:  # the space does not fit the pipeline: say so once, up front
                raise ConfigError(f"the first point of the space does not fit the pipeline: "
                                  f"{err}") from None
            trial = Trial(len(trials), dict(params), math.nan, error=str(err))
        optimizer.tell(trial.params, trial.score)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    return trials


def _trial(number: int, params: dict[str, Any], runner: Any,
           score_of: Callable[[Mapping[str, Any]], float], max_drawdown: float | None) -> Trial:
    """One backtest of the point; ConfigError if the pipeline refuses its options."""
    summary = runner(params)
    if isinstance(summary, str):
        return Trial(number, params, math.nan, error=summary, path=runner.path)
    score = score_of(summary)
    dd = float(summary["max_drawdown"])
    if max_drawdown is not None and dd > max_drawdown:
        score = math.nan
    took = summary.get("backtest_path") or {}
    return Trial(number, params, score, float(summary["return_pct"]), dd,
                 int(summary["orders_placed"]), path="fused" if took.get("fused") else "plugin")


def best(trials: list[Trial]) -> Trial | None:
    """The trial with the highest score (the first of equals), or None if none scored."""
    scored = [t for t in trials if not math.isnan(t.score)]
    return max(scored, key=lambda t: t.score) if scored else None


__all__ = ["OBJECTIVES", "Trial", "best", "optimize", "with_point"]
