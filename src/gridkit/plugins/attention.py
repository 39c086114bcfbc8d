"""Built-in attention: ``progressive``, the learning → shadow → active phase controller."""

from __future__ import annotations

import math
from typing import Any

from attrs import frozen

from gridkit.core.components import Attention
from gridkit.core.config import at_least, option
from gridkit.core.hookspecs import hookimpl
from gridkit.runtime.context import Context


class Progressive(Attention):
    """Phase controller of the 000/002 seeds: learns from the features before it may act.

    In the **learning** phase it only observes: for every feature it counts the events it saw,
    the events on which the feature was ready, and keeps the running mean and standard deviation
    (Welford's algorithm, O(1) per event). It never writes ``ctx.weights``, so the pipeline
    behaves exactly as without it. After ``learn_events`` events it moves to **shadow**
    (``gridkit_phase_changed`` fires), where it still changes nothing; shadow-book validation
    and the active phase build on these statistics.
    """

    name = "progressive"

    @frozen
    class Config:
        learn_events: int = option(100_000, doc="Events observed before leaving the learning "
                                                "phase (seed 000: 100,000+).",
                                   validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.phase = "learning"
        self._learn_events = self.config.learn_events
        self.observed = 0
        # Welford state per feature in parallel lists, in the order of ctx.features (the engine
        # fixes that order before the first event); re-keyed if the set of features changes.
        self._keys: list[str] = []
        self._n: list[float] = []
        self._mean: list[float] = []
        self._m2: list[float] = []

    def observe(self, ctx: Context) -> None:
        observed = self.observed = self.observed + 1
        features = ctx.features
        if len(features) != len(self._keys):
            self._rekey(features)
        counts, means, m2s = self._n, self._mean, self._m2
        for i, value in enumerate(features.values()):
            if value == value:  # not NaN: the feature is ready
                n = counts[i] + 1.0
                mean = means[i]
                delta = value - mean
                mean += delta / n
                counts[i] = n
                means[i] = mean
                m2s[i] += delta * (value - mean)
        if observed == self._learn_events:
            self.phase = "shadow"
            ctx.phase_changed(self, "learning", "shadow")

    def _rekey(self, features: dict[str, float]) -> None:
        old = {k: (n, m, s) for k, n, m, s in zip(self._keys, self._n, self._mean, self._m2,
                                                   strict=True)}
        self._keys = list(features)
        rows = [old.get(k, (0.0, 0.0, 0.0)) for k in self._keys]
        self._n = [r[0] for r in rows]
        self._mean = [r[1] for r in rows]
        self._m2 = [r[2] for r in rows]

    def feature_stats(self) -> dict[str, dict[str, float]]:
        """Per feature: events it was ready on, its mean and its standard deviation."""
        out = {}
        for key, n, mean, m2 in zip(self._keys, self._n, self._mean, self._m2, strict=True):
            if n:
                out[key] = {"ready": int(n), "mean": mean,
                            "std": math.sqrt(m2 / (n - 1)) if n > 1 else float("nan")}
        return out

    def stats(self) -> dict[str, Any]:
        return {"phase": self.phase, "observed": self.observed, "features": self.feature_stats()}


@hookimpl
def gridkit_register_attention(register: Any) -> None:
    register(Progressive)
