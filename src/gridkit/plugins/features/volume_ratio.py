"""The ``volume-ratio`` feature: volume against its recent mean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

from gridkit.core.components import Feature
from gridkit.core.config import at_least, option
from gridkit.core.types import Bar

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


class VolumeRatio(Feature):
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
        self.ring = [0.0] * self.config.period
        self.i = 0
        self.s = 0.0
        self.ready = False

    def update(self, bar: Bar) -> float:
        v = bar.volume
        period = self.config.period
        i = self.i
        out = NAN
        if i >= period:
            self.ready = True
            mean = self.s / period
            if mean > 0.0:
                out = v / mean
        slot = i % period
        ring = self.ring
        if i >= period:
            self.s = self.s + v - ring[slot]
        else:
            self.s = self.s + v
        ring[slot] = v
        self.i = i + 1
        if slot == period - 1:
            s = 0.0
            for x in ring:
                s += x
            self.s = s
        return out

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels import volume_ratio_batch

        return volume_ratio_batch(np.ascontiguousarray(columns["volume"], dtype=np.float64),
                                  self.config.period)
