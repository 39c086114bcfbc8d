"""Built-in attention: ``progressive``, the learning → shadow → active phase controller."""

from __future__ import annotations

import math
from typing import Any

from attrs import frozen

from gridkit.core.components import Attention
from gridkit.core.config import at_least, option
from gridkit.core.context import Context
from gridkit.core.hookspecs import hookimpl


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
        self.observed = 0
        self._stats: dict[str, list[float]] = {}  # key -> [ready count, mean, M2]

    def observe(self, ctx: Context) -> None:
        self.observed += 1
        stats = self._stats
        for key, value in ctx.features.items():
            if value != value:  # NaN: not ready yet
                continue
            s = stats.get(key)
            if s is None:
                s = stats[key] = [0.0, 0.0, 0.0]
            n = s[0] + 1.0
            delta = value - s[1]
            mean = s[1] + delta / n
            s[0], s[1], s[2] = n, mean, s[2] + delta * (value - mean)
        if self.phase == "learning" and self.observed >= self.config.learn_events:
            self.phase = "shadow"
            ctx.phase_changed(self, "learning", "shadow")

    def feature_stats(self) -> dict[str, dict[str, float]]:
        """Per feature: events it was ready on, its mean and its standard deviation."""
        out = {}
        for key, (n, mean, m2) in self._stats.items():
            out[key] = {"ready": int(n), "mean": mean,
                        "std": math.sqrt(m2 / (n - 1)) if n > 1 else float("nan")}
        return out

    def stats(self) -> dict[str, Any]:
        return {"phase": self.phase, "observed": self.observed, "features": self.feature_stats()}


@hookimpl
def gridkit_register_attention(register: Any) -> None:
    register(Progressive)
