"""Built-in feedback: ``feedback-loop``, the slow loop that tunes what it may (seed 000 §2)."""

from __future__ import annotations

import logging
import math
from statistics import NormalDist
from typing import Any

from attrs import frozen

from gridkit.core.components import Feedback
from gridkit.core.config import OptionError, at_least, option
from gridkit.core.hookspecs import hookimpl
from gridkit.runtime.context import Context

log = logging.getLogger("gridkit.feedback")
_NORMAL = NormalDist()


def improvement_confidence(before: list[float], after: list[float]) -> float:
    """P(the mean of ``after`` is above the mean of ``before``): Welch's statistic on the two
    samples, read on the normal distribution (a one-sided test); 0.5 when either sample has
    fewer than two values or neither varies."""
    n1, n2 = len(before), len(after)
    if n1 < 2 or n2 < 2:
        return 0.5
    m1, m2 = sum(before) / n1, sum(after) / n2
    v1 = sum((x - m1) ** 2 for x in before) / (n1 - 1)
    v2 = sum((x - m2) ** 2 for x in after) / (n2 - 1)
    se = math.sqrt(v1 / n1 + v2 / n2)
    if se == 0.0:
        return 0.5 if m1 == m2 else (1.0 if m2 > m1 else 0.0)
    return _NORMAL.cdf((m2 - m1) / se)


class FeedbackLoop(Feedback):
    """Tries bounded changes of the run's tunable options and keeps the ones that proved better.

    Every ``every`` events it takes one sample: the account's return over those events. The
    loop then works in rounds over the tunable options (the kernel's tunables: each option a
    component marks ``tunable=(low, high)`` — the ``regime-selector``'s ``min_bars``,
    ``vol_max`` and ``min_volume_ratio``, ``progressive``'s ``max_influence``, the
    ``drawdown`` limit, ``position-size``'s ``max_fraction``; ``options`` narrows the list):

    1. **baseline** — ``window`` samples with the current values;
    2. **trial** — one option moves by at most ``step`` of its range (up first, then the other
       way), through :meth:`Tuner.tune <gridkit.runtime.tuning.Tuner.tune>`: validated,
       clamped, journalled; then ``window`` samples with it;
    3. **decision** — the confidence that the trial's mean return beats the baseline's
       (:func:`improvement_confidence`: Welch's one-sided test) must exceed ``confidence`` (seed
       000: 0.8) for the change to stay; otherwise it is rolled back
       (:meth:`Tuner.rollback <gridkit.runtime.tuning.Tuner.rollback>`, journalled too) and that
       option tries the other direction next round. A kept change's samples are the next
       baseline, so its impact keeps being watched: a later trial must beat it.

    Changes are gradual (one option, one ``step``, per trial) and reversible. The summary has
    the samples taken, the trials, what was kept and rolled back, and the last decisions.
    Samples are account returns, so a trending market can make a change look better or worse
    than it is: the confidence threshold is the guard, and most trials are rolled back.
    """

    name = "feedback-loop"

    @frozen
    class Config:
        every: int = option(1000, doc="Events between two samples.", validator=at_least(1))
        window: int = option(3, doc="Samples in a baseline and in a trial.",
                             validator=at_least(2))
        confidence: float = option(0.8, doc="Confidence a change must exceed to stay (seed "
                                            "000: 0.8).", validator=at_least(0.5))
        step: float = option(0.1, doc="Largest change per trial, as a fraction of the "
                                      "option's tunable range.", validator=at_least(0.0))
        options: list[str] = option(factory=list, doc="Options it may tune, as \"path.name\" "
                                                      "(strategy.min_bars); empty: all.")

        def __attrs_post_init__(self) -> None:
            if not 0.0 < self.step <= 1.0:
                raise OptionError("step", f"must be in (0, 1], got {self.step}")
            if self.confidence >= 1.0:
                raise OptionError("confidence", f"must be below 1, got {self.confidence}")
            for name in self.options:
                if "." not in name:
                    raise OptionError("options", f"{name!r}: expected path.name, e.g. "
                                                 f"strategy.min_bars")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.every = self.config.every
        self._tuner: Any = None
        self._equity = math.nan
        self.samples = 0
        self.baseline: list[float] = []
        self.trial: list[float] = []
        self.testing: tuple[str, str, float, float] | None = None  # path, name, old, new
        self._turn = 0
        self._down: set[str] = set()  # options whose next trial goes down
        self.trials = self.kept = self.rolled_back = 0
        self.decisions: list[dict[str, Any]] = []  # the last 20

    def bind(self, tuner: Any) -> None:
        self._tuner = tuner
        wanted = set(self.config.options)
        known = {f"{path}.{name}" for path, opts in tuner.options().items() for name in opts}
        unknown = sorted(wanted - known)
        if unknown:
            from gridkit.core.errors import ConfigError

            raise ConfigError(f"feedback.options: {', '.join(unknown)} is not a tunable option "
                              f"of this pipeline (tunable: {', '.join(sorted(known)) or 'none'})")

    def step(self, ctx: Context) -> None:
        equity = ctx.account.equity
        prev, self._equity = self._equity, equity
        if not prev > 0.0 or not math.isfinite(equity):
            return
        self.samples += 1
        sample = equity / prev - 1.0
        window = self.config.window
        if self.testing is None:
            self.baseline.append(sample)
            del self.baseline[:-window]
            if len(self.baseline) == window:
                self._try(ctx)
            return
        self.trial.append(sample)
        if len(self.trial) >= window:
            self._decide(ctx)

    def _candidates(self) -> list[tuple[str, str, float, float, float]]:
        wanted = set(self.config.options)
        out = []
        for path, opts in sorted(self._tuner.options().items()):
            for name, (low, high, value) in sorted(opts.items()):
                if wanted and f"{path}.{name}" not in wanted:
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and high > low:
                    out.append((path, name, low, high, float(value)))
        return out

    def _try(self, ctx: Context) -> None:
        options = self._candidates()
        if not options:
            return
        path, name, low, high, value = options[self._turn % len(options)]
        self._turn += 1
        key = f"{path}.{name}"
        down = key in self._down
        move = self.config.step * (high - low)
        target = min(max(value + (-move if down else move), low), high)
        if target == value:  # at a bound: the other way next time
            self._down ^= {key}
            return
        got = self._tuner.tune(path, {name: target})
        self.trials += 1
        self.testing = (path, name, value, float(got[name]))
        self.trial = []

    def _decide(self, ctx: Context) -> None:
        assert self.testing is not None
        path, name, old, new = self.testing
        conf = improvement_confidence(self.baseline, self.trial)
        keep = conf > self.config.confidence
        if keep:
            self.kept += 1
            self.baseline = self.trial  # the kept value's samples: what the next must beat
        else:
            self._tuner.rollback()
            self.rolled_back += 1
            self._down ^= {f"{path}.{name}"}
        self.decisions.append({"option": f"{path}.{name}", "from": old, "to": new,
                               "confidence": conf, "kept": keep, "event": ctx.index})
        del self.decisions[:-20]
        log.info("feedback: %s %s -> %s %s (confidence %.2f)", f"{path}.{name}", old, new,
                 "kept" if keep else "rolled back", conf)
        self.testing = None
        self.trial = []

    def snapshot(self) -> Any:
        state = dict(vars(self))
        state.pop("_tuner", None)
        return state

    def restore(self, state: Any) -> None:
        if state:
            state = dict(state)
            state.pop("_tuner", None)
            vars(self).update(state)

    def stats(self) -> dict[str, Any]:
        return {"samples": self.samples, "trials": self.trials, "kept": self.kept,
                "rolled_back": self.rolled_back,
                "testing": None if self.testing is None else
                f"{self.testing[0]}.{self.testing[1]} = {self.testing[3]:g}",
                "decisions": self.decisions[-5:]}


@hookimpl
def gridkit_register_feedback(register: Any) -> None:
    register(FeedbackLoop)


__all__ = ["FeedbackLoop", "improvement_confidence"]
