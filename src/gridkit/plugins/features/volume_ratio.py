"""The ``volume-ratio`` feature: volume against its recent mean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

from gridkit.core.config import at_least, option
from gridkit.core.types import Bar
from gridkit.plugins.features.fused_kinds import VOLUME_RATIO
from gridkit.plugins.features.fusion import FusableBarFeature, Layout

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


class VolumeRatio(FusableBarFeature):
    """Bar volume divided by the mean volume of the ``period`` bars before it.

    1 is a normal bar, 0.3 a quiet one (the 000/002 seeds disable trading below 0.3), 3 a burst.
    NaN until ``period`` earlier bars exist, and when their mean is 0 (exchange maintenance).
    """

    name = "volume-ratio"

    @frozen
    class Config:
        period: int = option(20, doc="Number of earlier bars averaged.", validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = period = self.config.period
        self.ring = [0.0] * period
        self.i = 0
        self.slot = 0  # i % period, kept rather than recomputed
        self.s = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [bars seen, slot], fst = [s, ring of ``period`` volumes].
        p = self._period
        return Layout(VOLUME_RATIO, 2, 1 + p, p, ready_after=p)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels.volume_ratio_batch.
        v = bar.volume
        period = self._period
        slot = self.slot
        ring = self.ring
        if self.i >= period:
            self._ready = True
            s = self.s
            mean = s / period
            out = v / mean if mean > 0.0 else NAN
            s = s + v - ring[slot]
        else:
            out = NAN
            s = self.s + v
        ring[slot] = v
        self.i += 1
        if slot == period - 1:
            s = 0.0
            for x in ring:
                s += x
            self.slot = 0
        else:
            self.slot = slot + 1
        self.s = s
        return out

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels import volume_ratio_batch

        return volume_ratio_batch(np.ascontiguousarray(columns["volume"], dtype=np.float64),
                                  self.config.period)
