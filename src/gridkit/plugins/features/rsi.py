"""The ``rsi`` feature: Wilder's Relative Strength Index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

from gridkit.core.config import at_least, option
from gridkit.core.types import Bar
from gridkit.plugins.features.fused_kinds import RSI
from gridkit.plugins.features.fusion import FusableBarFeature, Layout

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


class Rsi(FusableBarFeature):
    """Wilder's Relative Strength Index of the close, 0-100 (TA-Lib's RSI).

    With changes d = close_t - close_{t-1}, gains g = max(d, 0) and losses l = max(-d, 0): the
    first averages are the means of the first ``period`` gains and losses; after that
    ``avg = (avg*(period-1) + x) / period`` (Wilder 1978, *New Concepts in Technical Trading
    Systems*). RSI = 100·avg_gain/(avg_gain+avg_loss), 0 when both are 0. Ready after
    ``period`` changes (the ``period+1``-th bar).
    """

    name = "rsi"

    @frozen
    class Config:
        period: int = option(14, doc="Number of changes averaged.", validator=at_least(2))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = self.config.period
        self._pm1 = self._period - 1
        self.prev = NAN
        self.count = 0  # changes seen
        self.gain_sum = self.loss_sum = 0.0
        self.avg_gain = self.avg_loss = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [changes seen], fst = [prev, gain_sum, loss_sum, avg_gain, avg_loss].
        p = self._period
        return Layout(RSI, 1, 5, p, nan_slots=(0,), ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Hot path: one call per bar. The float operations are those of the batch kernel, in
        # the same order, so both agree bit for bit.
        close, prev = bar.close, self.prev
        self.prev = close
        if prev != prev:  # first bar: no change yet
            return NAN
        diff = close - prev
        gain = diff if diff > 0.0 else 0.0
        loss = -diff if diff < 0.0 else 0.0
        period = self._period
        count = self.count + 1
        self.count = count
        if count > period:
            avg_gain = self.avg_gain = (self.avg_gain * self._pm1 + gain) / period
            avg_loss = self.avg_loss = (self.avg_loss * self._pm1 + loss) / period
        elif count < period:
            self.gain_sum += gain
            self.loss_sum += loss
            return NAN
        else:
            self.gain_sum += gain
            self.loss_sum += loss
            avg_gain = self.avg_gain = self.gain_sum / period
            avg_loss = self.avg_loss = self.loss_sum / period
            self._ready = True
        total = avg_gain + avg_loss
        return 100.0 * (avg_gain / total) if total != 0.0 else 0.0

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels import rsi_batch

        return rsi_batch(np.ascontiguousarray(columns["close"], dtype=np.float64),
                         self.config.period)
