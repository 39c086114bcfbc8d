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

from gridkit.core.components import Objective, Optimizer
from gridkit.core.errors import ConfigError
from gridkit.research.space import Space, with_point


def objective_for(spec: str | Mapping[str, Any] | Objective) -> Objective:
    """The objective named by ``spec`` — a name (``"calmar"``), a table (``{"use": "name",
    ...options}``) or an :class:`gridkit.Objective` already built — looked up among the
    installed plugins' objectives (kind ``objective``); ConfigError naming the installed ones."""
    if isinstance(spec, Objective):
        return spec
    from gridkit.core.plugins import get_host
    from gridkit.core.registry import build_registry
    from gridkit.runtime.build import construct
    from gridkit.runtime.pipeline_file import ComponentSpec

    if isinstance(spec, str):
        use, options = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("use"), str):
        use, options = spec["use"], {k: v for k, v in spec.items() if k != "use"}
    else:
        raise ConfigError("objective: a name such as \"calmar\", or a table with use = ...")
    registry = build_registry(get_host())
    if use not in registry.names("objective"):
        raise ConfigError(f"objective: unknown {use!r}; objectives are: "
                          f"{', '.join(sorted(registry.names('objective')))}")
    problems: list[str] = []
    built = construct(registry, problems, "objective", ComponentSpec(use, options, "objective"))
    if built is None:
        raise ConfigError(problems)
    return built[0]  # type: ignore[return-value]


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
             objective: str | Mapping[str, Any] | Objective = "return",
             max_drawdown: float | None = None,
             budget: int | None = None, seed: int = 0, base_dir: Path | None = None,
             on_trial: Callable[[Trial], None] | None = None,
             replay: Sequence[Trial] = (), source: str = "<trial>",
             fused: bool = True, workers: int | None = 1,
             scheduler: str | None = None,
             constraints: Sequence[Any] = ()) -> list[Trial]:
    """Run the search; return every trial in the order it was asked.

    :param pipeline: pipeline.toml's tables (``tomllib.load`` of the file); not changed.
    :param objective: the objective: a name (``"calmar"``), a ``{"use": ...}`` table or an
        :class:`gridkit.Objective` (:func:`objective_for`).
    :param max_drawdown: a constraint: a trial whose drawdown exceeds it scores NaN.
    :param budget: the most trials to run (None: until the optimizer has no point left).
    :param base_dir: the folder relative paths in the pipeline are resolved against.
    :param source: the pipeline's file, as error lines name it.
    :param on_trial: called after each trial that ran, in order (a progress line, a store row).
    :param replay: the trials of an interrupted search, in order: the optimizer is asked again
        (same seed, same scores: same points) and told their scores without running them.
    :param fused: run the trials on the fused runner when the pipeline has a fused form
        (:mod:`gridkit.research.runners`: the same figures, the data read and validated once);
        False runs each point through the engine.
    :param workers: processes to run trials on (None: every core; 1: this process).
    :param scheduler: a Dask scheduler's address (``tcp://host:8786``): run the trials on its
        cluster instead.
    :param constraints: :class:`~gridkit.research.constraints.Constraint` s a point must meet
        to be run (one it breaks scores NaN, its ``error`` naming it, and is not run); when no
        trial meets them all, :class:`gridkit.ConfigError` says so.

    The optimizer is asked for up to its :attr:`~gridkit.Optimizer.batch` points, their trials
    run at once, and their scores are told in the order asked: the trials are the same
    whatever ``workers`` and ``scheduler`` say.

    SIGINT or SIGTERM stops the search; the trials not yet handed to ``on_trial`` are not kept
    and :class:`KeyboardInterrupt` is raised.

    A point whose options the pipeline refuses (an option it does not have, a value out of
    range) is a :class:`gridkit.ConfigError` when it is the first point, else that trial's
    ``error``.
    """
    from gridkit.research.workers import RunnerSpec, pool

    judge = objective_for(objective)
    score_of = judge.score
    if budget is not None and budget < 1:
        raise ConfigError(f"budget: must be at least 1, got {budget}")
    optimizer.start(space, seed)
    batch = max(1, int(optimizer.batch))
    spec = RunnerSpec(dict(pipeline), space, None if base_dir is None else str(base_dir),
                      source, fused, None if judge.reads is None else tuple(sorted(judge.reads)))
    where: Any = None  # made when the first trial is to run: the data is read then
    trials: list[Trial] = []
    fixed = _pipeline_values(pipeline, constraints, space)
    try:
        while True:
            points: list[dict[str, Any]] = []
            while len(points) < batch and (budget is None
                                           or len(trials) + len(points) < budget):
                params = optimizer.ask()
                if params is None:
                    break
                points.append(dict(params))
            if not points:
                break
            first = len(trials)
            for i, params in enumerate(points[:max(0, len(replay) - first)]):
                if replay[first + i].params != params:
                    raise ConfigError(f"resume: the optimizer proposed {params} as trial "
                                      f"{first + i}, not {replay[first + i].params} as before "
                                      f"(is it seeded?); start a new search")
            new = points[max(0, len(replay) - first):]
            outside = {id(p): why for p in new if (why := _broken(constraints, fixed, p))}
            runnable = [p for p in new if id(p) not in outside]
            if runnable and where is None:
                where = pool(spec, workers, scheduler)
            results = where.map(spec, runnable) if runnable else iter(())
            for i, params in enumerate(points):
                number = first + i
                if number < len(replay):
                    trial = replay[number]
                elif id(params) in outside:
                    trial = Trial(number, params, math.nan,
                                  error=f"constraint not met: {outside[id(params)]}")
                else:
                    trial = _trial(number, params, next(results), score_of, max_drawdown)
                optimizer.tell(trial.params, trial.score)
                trials.append(trial)
                if number >= len(replay) and on_trial is not None:
                    on_trial(trial)
    finally:
        if where is not None:
            where.close()
    if constraints and trials and all((t.error or "").startswith("constraint not met")
                                      for t in trials):
        raise ConfigError(f"constraints: none of the {len(trials)} points tried meets them "
                          f"(the space has no valid point, or the budget found none)")
    return trials


def _pipeline_values(pipeline: Mapping[str, Any], constraints: Sequence[Any],
                     space: Space) -> dict[str, Any]:
    """The pipeline's own values of the options the constraints read outside the space."""
    from gridkit.research.space import get_option

    inside = {d.path for d in space.dimensions}
    out = {}
    for c in constraints:
        for path in c.paths:
            if path not in inside:
                found, value = get_option(pipeline, path)
                if found:
                    out[path] = value
    return out


def _broken(constraints: Sequence[Any], fixed: Mapping[str, Any],
            params: Mapping[str, Any]) -> str | None:
    """The first constraint the point breaks (None: it meets them all, or there are none)."""
    if not constraints:
        return None
    from gridkit.research.constraints import broken

    return broken(constraints, {**fixed, **params})


def _trial(number: int, params: dict[str, Any], result: tuple[str, Any],
           score_of: Callable[[Mapping[str, Any]], float], max_drawdown: float | None) -> Trial:
    """The trial of a worker's result (:data:`gridkit.research.workers.Result`)."""
    status, got = result
    if status == "stopped":  # its run was stopped by a signal: not a result
        raise KeyboardInterrupt
    if status == "config":  # the pipeline refuses the point's options
        if number == 0:  # the space does not fit the pipeline: say so once, up front
            raise ConfigError(f"the first point of the space does not fit the pipeline: "
                              f"{got}")
        return Trial(number, params, math.nan, error=got)
    if status == "error":
        return Trial(number, params, math.nan, error=got)
    summary = got
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


__all__ = ["Trial", "best", "objective_for", "optimize", "with_point"]
