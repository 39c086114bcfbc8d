"""The ``volatility`` feature: rolling standard deviation of log returns."""

from __future__ import annotations

from collections.abc import Mapping
from math import log, sqrt
from typing import TYPE_CHECKING, Any

from attrs import frozen

from gridkit.core.config import at_least, option
from gridkit.core.types import Bar
from gridkit.plugins.features.fused_kinds import VOLATILITY
from gridkit.plugins.features.fusion import FusableBarFeature, Layout

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


class Volatility(FusableBarFeature):
    """Sample standard deviation of the last ``period`` log returns of the close (per bar).

    r_t = ln(close_t / close_{t-1}); σ = sqrt((Σr² − (Σr)²/n) / (n − 1)) over a ring buffer of
    the last n = ``period`` returns. The sums are updated in O(1) per bar and re-summed once per
    window so they never drift. Not annualized: multiply by sqrt(bars per year) for that.
    """

    name = "volatility"

    @frozen
    class Config:
        period: int = option(20, doc="Number of returns in the window.", validator=at_least(2))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = period = self.config.period
        self._pm1 = period - 1
        self.ring = [0.0] * period
        self.prev = NAN
        self.k = 0  # returns seen
        self.slot = 0  # k % period, kept rather than recomputed
        self.s1 = self.s2 = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [returns seen, slot], fst = [prev, s1, s2, ring of ``period`` returns].
        p = self._period
        return Layout(VOLATILITY, 2, 3 + p, p, nan_slots=(0,), ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels.volatility_batch.
        close, prev = bar.close, self.prev
        self.prev = close
        if prev != prev:
            return NAN
        period = self._period
        r = log(close / prev)
        ring = self.ring
        slot = self.slot
        k = self.k
        if k >= period:
            old = ring[slot]
            s1 = self.s1 + r - old
            s2 = self.s2 + r * r - old * old
        else:
            s1 = self.s1 + r
            s2 = self.s2 + r * r
        ring[slot] = r
        self.k = k = k + 1
        if slot == self._pm1:
            s1 = s2 = 0.0
            for x in ring:
                s1 += x
                s2 += x * x
            self.slot = 0
        else:
            self.slot = slot + 1
        self.s1, self.s2 = s1, s2
        if k < period:
            return NAN
        self._ready = True
        var = (s2 - s1 * s1 / period) / self._pm1
        return sqrt(var) if var > 0.0 else 0.0

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels import volatility_batch

        return volatility_batch(np.ascontiguousarray(columns["close"], dtype=np.float64),
                                self.config.period)
