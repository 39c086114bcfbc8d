"""Per-stage latency, sampled: the kernel's own clock readings, kept in fixed-size rings."""

from __future__ import annotations

from array import array

#: Stages timed per bar, in the order they run.
STAGES = (
    "validate", "fills", "account", "features", "attention", "regime", "strategy", "risk",
    "execute", "monitor",
)
RING = 1 << 16  # samples kept per ring: the last 65,536
#: Every event's total time is kept; the split by stage is taken on one event in 2**SAMPLE_SHIFT,
#: since reading the clock at each of ten stage boundaries costs about a microsecond an event.
SAMPLE_SHIFT = 2
SAMPLE_MASK = (1 << SAMPLE_SHIFT) - 1
#: Each bar feature's own update is timed on one accepted bar of a lane in 2**FEATURE_COST_SHIFT
#: (the running mean goes to ``ctx.feature_cost``); the other bars run the features untimed.
FEATURE_COST_SHIFT = 12
FEATURE_COST_MASK = (1 << FEATURE_COST_SHIFT) - 1


class Timer:
    """Per-stage latency samples in fixed-size ring buffers: memory stays flat over long runs."""

    def __init__(self) -> None:
        self.rings = {name: array("q", bytes(8 * RING)) for name in (*STAGES, "event")}
        #: Bars timed so far (every bar's total; one in 2**SAMPLE_SHIFT split by stage).
        self.count = 0
        #: Stages some lane runs (a stage with nothing to do is left out of the loop).
        self.active: set[str] = {"validate", "event"}
        self._cached: tuple[int, dict[str, dict[str, float]]] | None = None

    def percentiles(self) -> dict[str, dict[str, float]]:
        """p50 and p99 per stage in µs, over the last 65,536 events (computed once)."""
        if self._cached is not None and self._cached[0] == self.count:
            return self._cached[1]
        out = {}
        for name, ring in self.rings.items():
            if name not in self.active:
                continue
            taken = self.count if name == "event" else (self.count + SAMPLE_MASK) >> SAMPLE_SHIFT
            n = min(taken, RING)
            samples = sorted(ring[:n])
            if not samples:
                continue
            out[name] = {
                "p50": samples[(n - 1) // 2] / 1000.0,
                "p99": samples[min(n - 1, int(0.99 * n))] / 1000.0,
            }
        self._cached = (self.count, out)
        return out
