"""Bar features of the core set: ``price-change``, ``price-position``, ``volume-acceleration``,
``bb-position``, ``trend-strength``, ``atr`` and ``ema``.

Each keeps its streaming state in plain Python (O(1) per bar: ring buffers, rolling sums that
are re-summed once per window so they never drift, monotonic deques, Wilder/EMA recurrences)
and its batch math in :mod:`gridkit.plugins.features.kernels_bars` (numba, imported only when
``batch`` runs). The two run the same floating-point operations in the same order, so they
agree bit for bit. ``ema``, ``atr`` and the Bollinger position match TA-Lib.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from math import sqrt
from typing import TYPE_CHECKING, Any

from attrs import frozen

from gridkit.core.config import at_least, option, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar
from gridkit.plugins.features.fused_kinds import (
    ATR,
    BB_POSITION,
    EMA,
    PRICE_CHANGE,
    PRICE_POSITION,
    TREND_STRENGTH,
    VOLUME_ACCELERATION,
)
from gridkit.plugins.features.fusion import FusableBarFeature, Layout

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


def _col(columns: Mapping[str, Any], name: str) -> Any:
    import numpy as np

    return np.ascontiguousarray(columns[name], dtype=np.float64)


class PriceChange(FusableBarFeature):
    """Return of the close over the last ``period`` bars: ``close_t / close_(t-period) - 1``.

    Computed as ``(close_t - close_(t-period)) / close_(t-period)`` (the same number, without
    the cancellation of subtracting 1), i.e. TA-Lib's ``ROCP``; the seeds call the 5-bar one
    ``price_change_5m``. A ring buffer of the last ``period`` closes; NaN for the first
    ``period`` bars (and where the old close is 0).
    """

    name = "price-change"

    @frozen
    class Config:
        period: int = option(5, doc="Number of bars the return spans.", validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = period = self.config.period
        self.ring = [0.0] * period
        self.i = 0
        self.slot = 0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [bars seen, slot], fst = ring of ``period`` closes.
        p = self._period
        return Layout(PRICE_CHANGE, 2, p, p, ready_after=p)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.price_change_batch.
        x = bar.close
        slot = self.slot
        ring = self.ring
        if self.i >= self._period:
            self._ready = True
            old = ring[slot]
            out = (x - old) / old if old != 0.0 else NAN
        else:
            out = NAN
        ring[slot] = x
        self.i += 1
        slot += 1
        self.slot = 0 if slot == self._period else slot
        return out

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import price_change_batch

        return price_change_batch(_col(columns, "close"), self.config.period)


class PricePosition(FusableBarFeature):
    """Position of the close in the high-low range of the last ``period`` bars, 0 to 1.

    ``(close - LL) / (HH - LL)`` with HH the highest high and LL the lowest low of the last
    ``period`` bars, the current one included: Lane's fast stochastic %K divided by 100 (TA-Lib
    ``STOCHF`` fastk / 100). HH and LL come from monotonic deques (each bar is pushed and popped
    at most once: O(1) amortized; Lemire 2006, *Streaming maximum-minimum filter using no more
    than three comparisons per element*); the batch kernel gets the same HH and LL by the van
    Herk / Gil-Werman block method. NaN for the first ``period - 1`` bars and when
    ``HH == LL`` (a range of zero has no position in it).
    """

    name = "price-position"

    @frozen
    class Config:
        period: int = option(20, doc="Number of bars in the high-low range.",
                             validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = self.config.period
        self.i = 0
        # Monotonic deques: indices and values; highs decreasing, lows increasing.
        self.hi_i: deque[int] = deque()
        self.hi_v: deque[float] = deque()
        self.lo_i: deque[int] = deque()
        self.lo_v: deque[float] = deque()
        self._ready = False

    def fused_layout(self) -> Layout:
        # two monotonic deques as rings of ``period + 1`` (indices in ist, values in fst).
        p = self._period
        return Layout(PRICE_POSITION, 5 + 2 * (p + 1), 2 * (p + 1), p, ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Same comparisons and float operations as kernels_bars.price_position_batch.
        h, lo, x = bar.high, bar.low, bar.close
        i = self.i
        self.i = i + 1
        hi_i, hi_v, lo_i, lo_v = self.hi_i, self.hi_v, self.lo_i, self.lo_v
        while hi_v and hi_v[-1] <= h:
            hi_v.pop()
            hi_i.pop()
        hi_v.append(h)
        hi_i.append(i)
        while lo_v and lo_v[-1] >= lo:
            lo_v.pop()
            lo_i.pop()
        lo_v.append(lo)
        lo_i.append(i)
        start = i - self._period
        if hi_i[0] <= start:
            hi_i.popleft()
            hi_v.popleft()
        if lo_i[0] <= start:
            lo_i.popleft()
            lo_v.popleft()
        if start < -1:
            return NAN
        self._ready = True
        low = lo_v[0]
        width = hi_v[0] - low
        return (x - low) / width if width > 0.0 else NAN

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import price_position_batch

        return price_position_batch(_col(columns, "high"), _col(columns, "low"),
                                    _col(columns, "close"), self.config.period)


class VolumeAcceleration(FusableBarFeature):
    """Rate of change of the volume EMA over ``lag`` bars: ``EMA_t / EMA_(t-lag) - 1``.

    EMA is the exponential moving average of the bar volume with ``alpha = 2/(period+1)``, seeded
    with the mean of the first ``period`` volumes (as TA-Lib's EMA). The value is Achelis'
    *Volume Rate-of-Change* (*Technical Analysis from A to Z*, 2000) taken on the smoothed
    volume, so it measures whether trading activity is speeding up (> 0) or slowing down (< 0)
    rather than how big one bar is (that is ``volume-ratio``). Computed as
    ``(EMA_t - EMA_(t-lag)) / EMA_(t-lag)``. NaN for the first ``period - 1 + lag`` bars and
    where ``EMA_(t-lag)`` is 0 (a run of zero-volume bars).
    """

    name = "volume-acceleration"

    @frozen
    class Config:
        period: int = option(20, doc="Span of the volume EMA (alpha = 2/(period+1)).",
                             validator=at_least(1))
        lag: int = option(5, doc="Number of bars the rate of change spans.",
                          validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self._period = c.period
        self._lag = c.lag
        self._alpha = 2.0 / (c.period + 1)
        self.ring = [0.0] * c.lag
        self.n = 0  # volumes seen
        self.total = 0.0
        self.ema = 0.0
        self.j = 0  # EMA values seen
        self.slot = 0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [n, EMA values seen, slot], fst = [total, ema, ring of ``lag`` EMA values].
        p = self._period
        return Layout(VOLUME_ACCELERATION, 3, 2 + self._lag, p, self._lag, self._alpha,
                      ready_slot=1, ready_after=self._lag)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.volume_acceleration_batch.
        v = bar.volume
        n = self.n + 1
        self.n = n
        period = self._period
        if n > period:
            e = self.ema = (v - self.ema) * self._alpha + self.ema
        else:
            self.total += v
            if n < period:
                return NAN
            e = self.ema = self.total / period
        ring = self.ring
        slot = self.slot
        if self.j >= self._lag:
            self._ready = True
            old = ring[slot]
            out = (e - old) / old if old > 0.0 else NAN
        else:
            out = NAN
        ring[slot] = e
        self.j += 1
        slot += 1
        self.slot = 0 if slot == self._lag else slot
        return out

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import volume_acceleration_batch

        c = self.config
        return volume_acceleration_batch(_col(columns, "volume"), c.period, c.lag)


class BbPosition(FusableBarFeature):
    """Position of the close in its Bollinger Bands: ``(close - lower) / (upper - lower)``.

    ``middle = SMA(close, period)``, ``upper/lower = middle ± k·σ`` with σ the population
    standard deviation of the same ``period`` closes (Bollinger 2001, *Bollinger on Bollinger
    Bands*; TA-Lib ``BBANDS`` with ``matype=0``). 0 is the lower band, 1 the upper, 0.5 the
    middle; it leaves [0, 1] when the close is outside the bands. The window sums are kept on
    closes minus a shift (the first close of the last whole block of ``period`` bars) so that
    ``Σx² − (Σx)²/n`` does not cancel at large prices; once per window they are replaced by
    the block's own sums, accumulated beside them, so they never drift. NaN for the first
    ``period - 1`` bars and when σ is 0 (bands of zero width; a window of equal closes is
    detected exactly by counting equal closes in a row, not from the rounded sums).
    """

    name = "bb-position"

    @frozen
    class Config:
        period: int = option(20, doc="Number of closes in the moving average and σ.",
                             validator=at_least(2))
        k: float = option(2.0, doc="Band half-width in standard deviations.",
                          validator=positive())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = period = self.config.period
        self._pm1 = period - 1
        self._k = float(self.config.k)
        self.ring = [0.0] * period
        self.shift = NAN  # what the window sums are taken relative to
        self.next_shift = 0.0  # the first close of the current block of ``period`` bars
        self.f1 = self.f2 = 0.0  # the current block's sums, relative to next_shift
        self.last = NAN
        self.run = 0  # closes in a row equal to this one
        self.i = 0
        self.slot = 0
        self.s1 = self.s2 = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [run, closes seen, slot], fst = [shift, next_shift, f1, f2, last, s1, s2, ring].
        p = self._period
        return Layout(BB_POSITION, 3, 7 + p, p, option=self._k, nan_slots=(0, 4), ready_slot=1,
                      ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.bb_position_batch.
        x = bar.close
        slot = self.slot
        if slot == 0:
            nshift = self.next_shift = x
            if self.i == 0:
                self.shift = x
            f1 = f2 = 0.0
        else:
            nshift, f1, f2 = self.next_shift, self.f1, self.f2
        dn = x - nshift
        f1 += dn
        f2 += dn * dn
        self.run = run = self.run + 1 if x == self.last else 1
        self.last = x
        shift = self.shift
        d = x - shift
        ring = self.ring
        period = self._period
        i = self.i
        if i >= period:
            old = ring[slot] - shift
            s1 = self.s1 + d - old
            s2 = self.s2 + d * d - old * old
        else:
            s1 = self.s1 + d
            s2 = self.s2 + d * d
        ring[slot] = x
        self.i = i = i + 1
        if slot == self._pm1:
            # The block is the window now: its own sums, kept beside the rolling ones, replace
            # them (fresh sums once per window, so nothing drifts; O(1) on every bar).
            shift = self.shift = nshift
            s1, s2 = f1, f2
            self.slot = 0
        else:
            self.slot = slot + 1
        self.f1, self.f2 = f1, f2
        self.s1, self.s2 = s1, s2
        if i < period:
            return NAN
        self._ready = True
        if run >= period:
            return NAN  # a flat window: σ is exactly 0, whatever the rolling sums say
        mean = s1 / period
        var = s2 / period - mean * mean
        sd = sqrt(var) if var > 0.0 else 0.0
        mid = shift + mean
        lower = mid - self._k * sd
        width = (mid + self._k * sd) - lower
        return (x - lower) / width if width > 0.0 else NAN

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import bb_position_batch

        return bb_position_batch(_col(columns, "close"), self.config.period,
                                 float(self.config.k))


class TrendStrength(FusableBarFeature):
    """Kaufman's efficiency ratio of the close over ``period`` bars, 0 (no trend) to 1.

    ``ER = |close_t - close_(t-period)| / Σ |close_i - close_(i-1)|`` over the last ``period``
    changes (Kaufman 1995, *Smarter Trading*; the ratio behind KAMA). Net move over path length:
    1 when every change went the same way, near 0 in a choppy range. Chosen over ADX/100
    (Wilder 1978) because it is in [0, 1] by construction, reaches the seeds' thresholds (0.3
    ranging, 0.7 trending) in real markets where ADX rarely exceeds 60, and warms up in
    ``period`` bars rather than ``2·period``. Rolling sum of the absolute changes over a ring
    buffer, replaced once per window by a fresh sum of the block (so it never drifts). NaN for
    the first ``period`` bars; 0 when the close did not move at all in the window (no path, no
    trend).
    """

    name = "trend-strength"

    @frozen
    class Config:
        period: int = option(10, doc="Number of changes in the window.", validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = period = self.config.period
        self._pm1 = period - 1
        self.closes = [0.0] * period
        self.moves = [0.0] * period
        self.prev = NAN
        self.i = 0
        self.slot = 0
        self.s = 0.0
        self.f = 0.0  # the current block's sum of moves
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [bars seen, slot], fst = [prev, s, f, closes ring, moves ring].
        p = self._period
        return Layout(TREND_STRENGTH, 2, 3 + 2 * p, p, nan_slots=(0,), ready_after=p)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.trend_strength_batch.
        x = bar.close
        prev = self.prev
        self.prev = x
        a = abs(x - prev) if prev == prev else 0.0
        slot = self.slot
        closes, moves = self.closes, self.moves
        i = self.i
        full = i >= self._period
        if full:
            old = closes[slot]
            s = self.s + a - moves[slot]
        else:
            s = self.s + a
        f = self.f = 0.0 + a if slot == 0 else self.f + a
        closes[slot] = x
        moves[slot] = a
        self.i = i + 1
        if slot == self._pm1:
            s = f  # the block is the window: its fresh sum replaces the rolling one
            self.slot = 0
        else:
            self.slot = slot + 1
        self.s = s
        if not full:
            return NAN
        self._ready = True
        if s > 0.0:
            er = abs(x - old) / s
            return er if er < 1.0 else 1.0
        return 0.0

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import trend_strength_batch

        return trend_strength_batch(_col(columns, "close"), self.config.period)


class Atr(FusableBarFeature):
    """Wilder's Average True Range (TA-Lib's ``ATR``), in price units.

    True range ``TR_t = max(high_t - low_t, |high_t - close_(t-1)|, |low_t - close_(t-1)|)``
    (from the second bar on). The first ATR is the mean of the first ``period`` true ranges;
    after that ``ATR_t = (ATR_(t-1)·(period-1) + TR_t) / period`` (Wilder 1978, *New Concepts
    in Technical Trading Systems*). NaN for the first ``period`` bars, as TA-Lib with its
    default unstable period of 0.
    """

    name = "atr"

    @frozen
    class Config:
        period: int = option(14, doc="Number of true ranges averaged.", validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = self.config.period
        self._pm1 = self._period - 1
        self.prev = NAN
        self.count = 0  # true ranges seen
        self.total = 0.0
        self.atr = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [true ranges seen], fst = [prev, total, atr].
        p = self._period
        return Layout(ATR, 1, 3, p, nan_slots=(0,), ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.atr_batch.
        h, lo = bar.high, bar.low
        prev = self.prev
        self.prev = bar.close
        if prev != prev:
            return NAN
        tr = h - lo
        d = abs(prev - h)
        if d > tr:
            tr = d
        d = abs(lo - prev)
        if d > tr:
            tr = d
        period = self._period
        count = self.count = self.count + 1
        if count > period:
            atr = self.atr = (self.atr * self._pm1 + tr) / period
            return atr
        self.total += tr
        if count < period:
            return NAN
        self._ready = True
        atr = self.atr = self.total / period
        return atr

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import atr_batch

        return atr_batch(_col(columns, "high"), _col(columns, "low"), _col(columns, "close"),
                         self.config.period)


class Ema(FusableBarFeature):
    """Exponential moving average of the close (TA-Lib's ``EMA``).

    ``alpha = 2/(period+1)``; seeded with the simple mean of the first ``period`` closes, then
    ``EMA_t = (close_t - EMA_(t-1))·alpha + EMA_(t-1)`` (TA-Lib's order of operations; the
    standard EMA of e.g. Murphy 1999, *Technical Analysis of the Financial Markets*). NaN for
    the first ``period - 1`` bars, as TA-Lib with its default unstable period of 0.
    """

    name = "ema"

    @frozen
    class Config:
        period: int = option(20, doc="Span of the average (alpha = 2/(period+1)).",
                             validator=at_least(2))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._period = self.config.period
        self._alpha = 2.0 / (self._period + 1)
        self.n = 0
        self.total = 0.0
        self.ema = 0.0
        self._ready = False

    def fused_layout(self) -> Layout:
        # ist = [n], fst = [total, ema].
        p = self._period
        return Layout(EMA, 1, 2, p, option=self._alpha, ready_after=p - 1)

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_bars.ema_batch.
        x = bar.close
        n = self.n = self.n + 1
        if n > self._period:
            e = self.ema = (x - self.ema) * self._alpha + self.ema
            return e
        self.total += x
        if n < self._period:
            return NAN
        self._ready = True
        e = self.ema = self.total / self._period
        return e

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_bars import ema_batch

        return ema_batch(_col(columns, "close"), self.config.period)


FEATURES = (PriceChange, PricePosition, VolumeAcceleration, BbPosition, TrendStrength, Atr, Ema)

__all__ = ["Atr", "BbPosition", "Ema", "PriceChange", "PricePosition", "TrendStrength",
           "VolumeAcceleration"]


@hookimpl
def gridkit_register_features(register: Any) -> None:
    for cls in FEATURES:
        register(cls)
