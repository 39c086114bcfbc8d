"""Walk-forward analysis: fit on a window, score the fit on the stretch that follows it.

The data's accepted bars, from the first to the last, are cut into an in-sample part and
``windows`` out-of-sample stretches that follow one another to the end of the data. For window
``k`` the optimizer searches the in-sample stretch just before out-of-sample stretch ``k`` —
``rolling``: of a fixed length, sliding forward by one out-of-sample stretch each time;
``anchored``: from the start of the data, growing — and the best point found is run, untouched,
on out-of-sample stretch ``k``. Only the out-of-sample results measure the method; the
in-sample scores are reported beside them to show how much of the fit survives.

With in-sample share ``r``: ``in = r / (1 - r) * out`` and ``in + windows * out`` is the data's
span, so the rolling in-sample stretches have the same length as the anchored one's first.

Parameter stability says how much the best point moved between windows: per option, the mean,
the standard deviation and their ratio (the coefficient of variation) of a number, or the most
frequent value and its share of a choice. A method whose best point jumps about from window to
window is fitting noise (Pardo, *The Evaluation and Optimization of Trading Strategies*, 2nd ed.,
2008, ch. 11).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.components import Optimizer
from gridkit.core.errors import ConfigError
from gridkit.research.space import Space
from gridkit.research.trials import Trial, best, objective_for, optimize


@frozen
class Window:
    """One walk-forward window: its in-sample and out-of-sample stretches (epoch ms, both
    ends included: a bar belongs to the stretch its timestamp falls in), the best in-sample
    trial and the out-of-sample result of its point (None when no in-sample trial scored)."""

    number: int
    in_start: int
    in_end: int
    out_start: int
    out_end: int
    fit: Trial | None = None
    result: Trial | None = None


def windows(first: int, last: int, count: int, in_sample: float,
            anchored: bool) -> list[Window]:
    """The ``count`` windows over the timestamps ``first`` .. ``last`` (see the module)."""
    if count < 1:
        raise ConfigError(f"walk_forward.windows: at least 1, got {count}")
    if not 0.0 < in_sample < 1.0:
        raise ConfigError(f"walk_forward.in_sample: a fraction in (0, 1), got {in_sample}")
    span = last - first
    out_len = span / (count + in_sample / (1.0 - in_sample))
    in_len = span - count * out_len
    out = []
    for k in range(count):
        out_start = first + in_len + k * out_len
        out_end = out_start + out_len
        in_start = first if anchored else first + k * out_len
        out.append(Window(k, int(in_start), int(out_start) - 1, int(out_start),
                          int(out_end) - 1 if k < count - 1 else last))
    return out


def data_span(pipeline: Mapping[str, Any], base_dir: Path | None, source: str) -> tuple[int,
                                                                                           int]:
    """The timestamps of the first and the last accepted bar of the pipeline's window."""
    from gridkit.fused.run import lane_bars
    from gridkit.research.runners import trial_data
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import pipeline_from_data

    got = lane_bars(build_pipeline(pipeline_from_data(trial_data(pipeline, {}), source,
                                                      base_dir)))
    if isinstance(got, str):
        raise ConfigError(f"walk_forward: the data cannot be cut into windows: {got}")
    arrays, accepted = got
    ts = arrays.ts[accepted]
    if len(ts) < 2:
        raise ConfigError("walk_forward: the data holds fewer than two accepted bars")
    return int(ts[0]), int(ts[-1])


def walk_forward(pipeline: Mapping[str, Any], space: Space,
                 make_optimizer: Callable[[], Optimizer], *, count: int = 4,
                 in_sample: float = 0.75, anchored: bool = False, objective: Any = "return",
                 max_drawdown: float | None = None, budget: int | None = None, seed: int = 0,
                 base_dir: Path | None = None, source: str = "<walk-forward>",
                 workers: int | None = 1, scheduler: str | None = None,
                 constraints: Sequence[Any] = (),
                 on_window: Callable[[Window], None] | None = None) -> list[Window]:
    """Search each window's in-sample stretch with a fresh optimizer (``make_optimizer()``,
    seeded with ``seed``), run its best point on the out-of-sample stretch that follows;
    every window, in order. The search arguments are :func:`~gridkit.research.optimize`'s."""
    from gridkit.fused.run import shared_bars

    objective = objective_for(objective)  # (an unknown one is refused before any window)
    with shared_bars():  # the data file read once for every window's searches
        return _walk(pipeline, space, make_optimizer, count, in_sample, anchored, objective,
                     max_drawdown, budget, seed, base_dir, source, workers, scheduler,
                     constraints, on_window)


def _walk(pipeline: Mapping[str, Any], space: Space, make_optimizer: Callable[[], Optimizer],
          count: int, in_sample: float, anchored: bool, objective: Any,
          max_drawdown: float | None, budget: int | None, seed: int, base_dir: Path | None,
          source: str, workers: int | None, scheduler: str | None,
          constraints: Sequence[Any],
          on_window: Callable[[Window], None] | None) -> list[Window]:
    first, last = data_span(pipeline, base_dir, source)
    done = []
    for w in windows(first, last, count, in_sample, anchored):
        fitted = optimize(_window(pipeline, w.in_start, w.in_end), space, make_optimizer(),
                          objective=objective, max_drawdown=max_drawdown, budget=budget,
                          seed=seed, base_dir=base_dir, source=source, workers=workers,
                          scheduler=scheduler, constraints=constraints)
        top = best(fitted)
        result = None
        if top is not None:
            from gridkit.research.space import Dimension

            fixed = Space(tuple(Dimension(path, choices=(value,))
                                for path, value in top.params.items()))
            result = optimize(_window(pipeline, w.out_start, w.out_end), fixed,
                              _Once(top.params), objective=objective,
                              max_drawdown=max_drawdown, base_dir=base_dir,
                              source=source)[0]
        w = Window(w.number, w.in_start, w.in_end, w.out_start, w.out_end, top, result)
        done.append(w)
        if on_window is not None:
            on_window(w)
    return done


def stability(done: list[Window]) -> dict[str, dict[str, Any]]:
    """How each option's best value moved between the windows (see the module)."""
    fits = [w.fit for w in done if w.fit is not None]
    out: dict[str, dict[str, Any]] = {}
    for path in (fits[0].params if fits else {}):
        values = [f.params[path] for f in fits]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            out[path] = {"values": values, "mean": mean, "std": std,
                         "cv": std / abs(mean) if mean else None}
        else:
            top, n = Counter(map(repr, values)).most_common(1)[0]
            value = next(v for v in values if repr(v) == top)
            out[path] = {"values": values, "mode": value, "share": n / len(values)}
    return out


def _window(pipeline: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """The pipeline cut to ``[start, end]`` (epoch ms)."""
    data = {k: v for k, v in pipeline.items()}
    data["pipeline"] = {**dict(pipeline.get("pipeline") or {}), "start": str(start),
                        "end": str(end)}
    return data


class _Once(Optimizer):
    """Proposes one given point (the out-of-sample run of a window's best)."""

    name = "walk-forward-point"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self._params: dict[str, Any] | None = dict(params)

    def ask(self) -> dict[str, Any] | None:
        params, self._params = self._params, None
        return params


__all__ = ["Window", "data_span", "stability", "walk_forward", "windows"]
