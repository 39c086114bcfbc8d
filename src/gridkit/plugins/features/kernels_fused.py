"""The fused streaming kernel: one compiled call per bar updates every fusable bar feature.

Each ``*_step`` function is the streaming ``update`` of one built-in bar feature, written over
state arrays instead of attributes: ``ist`` (int64) and ``fst`` (float64) hold the state of
every fused feature side by side, each at its own offsets (absolute indices into the arrays).
The float operations are those of the feature's Python ``update`` in the same order, so the
fused values equal the Python ones bit for bit (a test checks all of them on real data).
:func:`fused_bar_step` runs a *program*, one row per feature, so a single cached compiled
function serves any set of these features with any options. Each fusable feature class
declares its own layout (kind and state slots, ``fused_layout``);
:mod:`gridkit.plugins.features.fusion` lays the declared layouts out side by side and is the only
module that imports this one. Neither imports a feature module.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gridkit.plugins.features.fused_kinds import (
    ATR,
    BB_POSITION,
    EMA,
    PRICE_CHANGE,
    PRICE_POSITION,
    RSI,
    TREND_STRENGTH,
    VOLATILITY,
    VOLUME_ACCELERATION,
)

NAN = np.nan



@njit(cache=True)
def price_change_step(ist, fst, io, fo, period, x):  # pragma: no cover - numba
    """``PriceChange.update``: ist = [i, slot], fst = ring of ``period`` closes."""
    i = ist[io]
    slot = ist[io + 1]
    if i >= period:
        old = fst[fo + slot]
        out = (x - old) / old if old != 0.0 else NAN
    else:
        out = NAN
    fst[fo + slot] = x
    ist[io] = i + 1
    slot += 1
    ist[io + 1] = 0 if slot == period else slot
    return out


@njit(cache=True, inline="always")
def _wrap(j, cap):  # pragma: no cover - numba
    """``j % cap`` for 0 <= j < 2*cap: a ring index without an integer division (tens of
    cycles, several per bar)."""
    return j - cap if j >= cap else j


@njit(cache=True)
def price_position_step(ist, fst, io, fo, period, h, lo, x):  # pragma: no cover - numba
    """``PricePosition.update`` with its two monotonic deques kept as rings of ``period + 1``.

    ist = [i, hi_head, hi_len, lo_head, lo_len, hi_idx[cap], lo_idx[cap]],
    fst = [hi_val[cap], lo_val[cap]].
    """
    cap = period + 1
    i = ist[io]
    ist[io] = i + 1
    hi_i = io + 5
    lo_i = hi_i + cap
    hi_v = fo
    lo_v = fo + cap
    head = ist[io + 1]
    n = ist[io + 2]
    while n > 0 and fst[hi_v + _wrap(head + n - 1, cap)] <= h:
        n -= 1
    back = _wrap(head + n, cap)
    fst[hi_v + back] = h
    ist[hi_i + back] = i
    n += 1
    start = i - period
    if ist[hi_i + head] <= start:
        head = _wrap(head + 1, cap)
        n -= 1
    ist[io + 1] = head
    ist[io + 2] = n
    hh = fst[hi_v + head]
    head = ist[io + 3]
    n = ist[io + 4]
    while n > 0 and fst[lo_v + _wrap(head + n - 1, cap)] >= lo:
        n -= 1
    back = _wrap(head + n, cap)
    fst[lo_v + back] = lo
    ist[lo_i + back] = i
    n += 1
    if ist[lo_i + head] <= start:
        head = _wrap(head + 1, cap)
        n -= 1
    ist[io + 3] = head
    ist[io + 4] = n
    if start < -1:
        return NAN
    low = fst[lo_v + head]
    width = hh - low
    return (x - low) / width if width > 0.0 else NAN


@njit(cache=True)
def volume_acceleration_step(ist, fst, io, fo, period, lag, alpha, v):  # pragma: no cover
    """``VolumeAcceleration.update``: ist = [n, j, slot], fst = [total, ema, ring[lag]]."""
    n = ist[io] + 1
    ist[io] = n
    if n > period:
        e = (v - fst[fo + 1]) * alpha + fst[fo + 1]
        fst[fo + 1] = e
    else:
        fst[fo] += v
        if n < period:
            return NAN
        e = fst[fo] / period
        fst[fo + 1] = e
    j = ist[io + 1]
    slot = ist[io + 2]
    if j >= lag:
        old = fst[fo + 2 + slot]
        out = (e - old) / old if old > 0.0 else NAN
    else:
        out = NAN
    fst[fo + 2 + slot] = e
    ist[io + 1] = j + 1
    slot += 1
    ist[io + 2] = 0 if slot == lag else slot
    return out


@njit(cache=True)
def rsi_step(ist, fst, io, fo, period, close):  # pragma: no cover - numba
    """``Rsi.update``: ist = [count], fst = [prev, gain_sum, loss_sum, avg_gain, avg_loss]."""
    prev = fst[fo]
    fst[fo] = close
    if prev != prev:
        return NAN
    diff = close - prev
    gain = diff if diff > 0.0 else 0.0
    loss = -diff if diff < 0.0 else 0.0
    count = ist[io] + 1
    ist[io] = count
    if count > period:
        avg_gain = (fst[fo + 3] * (period - 1) + gain) / period
        avg_loss = (fst[fo + 4] * (period - 1) + loss) / period
    elif count < period:
        fst[fo + 1] += gain
        fst[fo + 2] += loss
        return NAN
    else:
        fst[fo + 1] += gain
        fst[fo + 2] += loss
        avg_gain = fst[fo + 1] / period
        avg_loss = fst[fo + 2] / period
    fst[fo + 3] = avg_gain
    fst[fo + 4] = avg_loss
    total = avg_gain + avg_loss
    return 100.0 * (avg_gain / total) if total != 0.0 else 0.0


@njit(cache=True)
def bb_position_step(ist, fst, io, fo, period, k, x):  # pragma: no cover - numba
    """``BbPosition.update``: ist = [run, i, slot],
    fst = [shift, next_shift, f1, f2, last, s1, s2, ring[period]]."""
    slot = ist[io + 2]
    i = ist[io + 1]
    if slot == 0:
        nshift = x
        fst[fo + 1] = x
        if i == 0:
            fst[fo] = x
        f1 = 0.0
        f2 = 0.0
    else:
        nshift = fst[fo + 1]
        f1 = fst[fo + 2]
        f2 = fst[fo + 3]
    dn = x - nshift
    f1 += dn
    f2 += dn * dn
    run = ist[io] + 1 if x == fst[fo + 4] else 1
    ist[io] = run
    fst[fo + 4] = x
    shift = fst[fo]
    d = x - shift
    ring = fo + 7
    if i >= period:
        old = fst[ring + slot] - shift
        s1 = fst[fo + 5] + d - old
        s2 = fst[fo + 6] + d * d - old * old
    else:
        s1 = fst[fo + 5] + d
        s2 = fst[fo + 6] + d * d
    fst[ring + slot] = x
    i += 1
    ist[io + 1] = i
    if slot == period - 1:
        shift = nshift
        fst[fo] = nshift
        s1 = f1
        s2 = f2
        ist[io + 2] = 0
    else:
        ist[io + 2] = slot + 1
    fst[fo + 2] = f1
    fst[fo + 3] = f2
    fst[fo + 5] = s1
    fst[fo + 6] = s2
    if i < period or run >= period:
        return NAN
    mean = s1 / period
    var = s2 / period - mean * mean
    sd = math.sqrt(var) if var > 0.0 else 0.0
    mid = shift + mean
    lower = mid - k * sd
    width = (mid + k * sd) - lower
    return (x - lower) / width if width > 0.0 else NAN


@njit(cache=True)
def volatility_step(ist, fst, io, fo, period, close):  # pragma: no cover - numba
    """``Volatility.update``: ist = [k, slot], fst = [prev, s1, s2, ring[period]]."""
    prev = fst[fo]
    fst[fo] = close
    if prev != prev:
        return NAN
    q = close / prev
    if q <= 0.0:  # Python's math.log raises here; the fused run fails the same way
        raise ValueError("math domain error")
    r = math.log(q)
    ring = fo + 3
    slot = ist[io + 1]
    k = ist[io]
    if k >= period:
        old = fst[ring + slot]
        s1 = fst[fo + 1] + r - old
        s2 = fst[fo + 2] + r * r - old * old
    else:
        s1 = fst[fo + 1] + r
        s2 = fst[fo + 2] + r * r
    fst[ring + slot] = r
    k += 1
    ist[io] = k
    if slot == period - 1:
        s1 = 0.0
        s2 = 0.0
        for j in range(period):
            y = fst[ring + j]
            s1 += y
            s2 += y * y
        ist[io + 1] = 0
    else:
        ist[io + 1] = slot + 1
    fst[fo + 1] = s1
    fst[fo + 2] = s2
    if k < period:
        return NAN
    var = (s2 - s1 * s1 / period) / (period - 1)
    return math.sqrt(var) if var > 0.0 else 0.0


@njit(cache=True)
def trend_strength_step(ist, fst, io, fo, period, x):  # pragma: no cover - numba
    """``TrendStrength.update``: ist = [i, slot],
    fst = [prev, s, f, closes[period], moves[period]]."""
    prev = fst[fo]
    fst[fo] = x
    a = abs(x - prev) if prev == prev else 0.0
    slot = ist[io + 1]
    closes = fo + 3
    moves = closes + period
    i = ist[io]
    full = i >= period
    old = 0.0
    if full:
        old = fst[closes + slot]
        s = fst[fo + 1] + a - fst[moves + slot]
    else:
        s = fst[fo + 1] + a
    f = 0.0 + a if slot == 0 else fst[fo + 2] + a
    fst[fo + 2] = f
    fst[closes + slot] = x
    fst[moves + slot] = a
    ist[io] = i + 1
    if slot == period - 1:
        s = f
        ist[io + 1] = 0
    else:
        ist[io + 1] = slot + 1
    fst[fo + 1] = s
    if not full:
        return NAN
    if s > 0.0:
        er = abs(x - old) / s
        return er if er < 1.0 else 1.0
    return 0.0


@njit(cache=True)
def atr_step(ist, fst, io, fo, period, h, lo, close):  # pragma: no cover - numba
    """``Atr.update``: ist = [count], fst = [prev, total, atr]."""
    prev = fst[fo]
    fst[fo] = close
    if prev != prev:
        return NAN
    tr = h - lo
    d = abs(prev - h)
    if d > tr:
        tr = d
    d = abs(lo - prev)
    if d > tr:
        tr = d
    count = ist[io] + 1
    ist[io] = count
    if count > period:
        atr = (fst[fo + 2] * (period - 1) + tr) / period
        fst[fo + 2] = atr
        return atr
    fst[fo + 1] += tr
    if count < period:
        return NAN
    atr = fst[fo + 1] / period
    fst[fo + 2] = atr
    return atr


@njit(cache=True)
def ema_step(ist, fst, io, fo, period, alpha, x):  # pragma: no cover - numba
    """``Ema.update``: ist = [n], fst = [total, ema]."""
    n = ist[io] + 1
    ist[io] = n
    if n > period:
        e = (x - fst[fo + 1]) * alpha + fst[fo + 1]
        fst[fo + 1] = e
        return e
    fst[fo] += x
    if n < period:
        return NAN
    e = fst[fo] / period
    fst[fo + 1] = e
    return e


@njit(cache=True)
def volume_ratio_step(ist, fst, io, fo, period, v):  # pragma: no cover - numba
    """``VolumeRatio.update``: ist = [i, slot], fst = [s, ring[period]]."""
    slot = ist[io + 1]
    ring = fo + 1
    if ist[io] >= period:
        s = fst[fo]
        mean = s / period
        out = v / mean if mean > 0.0 else NAN
        s = s + v - fst[ring + slot]
    else:
        out = NAN
        s = fst[fo] + v
    fst[ring + slot] = v
    ist[io] += 1
    if slot == period - 1:
        s = 0.0
        for j in range(period):
            s += fst[ring + j]
        ist[io + 1] = 0
    else:
        ist[io + 1] = slot + 1
    fst[fo] = s
    return out


@njit(cache=True)
def fused_bar_step(ints, floats, high, low, close, volume):  # pragma: no cover - numba
    """Update every feature of the program in ``ints`` with one bar.

    ``ints = [m, m program rows of (kind, int offset, float offset, period, lag), current row,
    int state]``
    and ``floats = [m values, m float options, float state]``: two arrays rather than five,
    because each array argument costs the call from Python about 0.3 µs to unbox. The values
    land in ``floats[:m]``; the float option is ``k`` of bb-position or ``alpha`` of the EMAs.
    """
    m = ints[0]
    for r in range(m):
        ints[1 + 5 * m] = r  # the row being stepped: names the feature if a step raises
        row = 1 + 5 * r
        kind = ints[row]
        io = ints[row + 1]
        fo = ints[row + 2]
        period = ints[row + 3]
        if kind == PRICE_CHANGE:
            x = price_change_step(ints, floats, io, fo, period, close)
        elif kind == PRICE_POSITION:
            x = price_position_step(ints, floats, io, fo, period, high, low, close)
        elif kind == VOLUME_ACCELERATION:
            x = volume_acceleration_step(ints, floats, io, fo, period, ints[row + 4],
                                         floats[m + r], volume)
        elif kind == RSI:
            x = rsi_step(ints, floats, io, fo, period, close)
        elif kind == BB_POSITION:
            x = bb_position_step(ints, floats, io, fo, period, floats[m + r], close)
        elif kind == VOLATILITY:
            x = volatility_step(ints, floats, io, fo, period, close)
        elif kind == TREND_STRENGTH:
            x = trend_strength_step(ints, floats, io, fo, period, close)
        elif kind == ATR:
            x = atr_step(ints, floats, io, fo, period, high, low, close)
        elif kind == EMA:
            x = ema_step(ints, floats, io, fo, period, floats[m + r], close)
        else:
            x = volume_ratio_step(ints, floats, io, fo, period, volume)
        floats[r] = x


@njit(cache=True)
def fused_bar_batch(ints, floats, high, low, close, volume):  # pragma: no cover - numba
    """Run :func:`fused_bar_step` over whole columns; row ``r`` of the result is feature ``r``."""
    n = close.shape[0]
    m = ints[0]
    res = np.empty((m, n))
    for i in range(n):
        fused_bar_step(ints, floats, high[i], low[i], close[i], volume[i])
        for r in range(m):
            res[r, i] = floats[r]
    return res
