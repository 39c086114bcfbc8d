"""Numba batch kernels of the order-book features (``spread-bps``, ``order-imbalance``,
``spread-analysis``, ``l2-delta``, ``hidden-liquidity``, ``spoofing``, ``liquidity-vacuum``).

Each kernel runs the *same* operations, in the same floating-point order, as the streaming
``update`` in :mod:`gridkit.plugins.features.book` (same ring pushes and re-sums, same
left-to-right sums, same dictionary look-ups done as scans of the copied levels), so batch and
streaming results agree exactly. This module imports numba; the feature classes import it only
inside ``batch``.

The kernels read the columns of a book tape (see
:func:`gridkit.plugins.features.book.book_columns`) already cut to the rows the feature
reads: 1-D arrays of those rows, and 2-D level arrays ``(rows, levels)``, best level first,
with a NaN price (quantity 0) where a side has fewer levels. Row kinds: 0 = trade, 2 = depth
(1 = book is never passed to a kernel that mixes kinds). Sides of book changes: +1 = bid, -1 = ask.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TRADE = 0
DEPTH = 2
INF = math.inf


# --- shared pieces --------------------------------------------------------------------------


@njit(cache=True)
def _total(x: np.ndarray, stop: int) -> float:  # pragma: no cover - numba
    """``x[0] + x[1] + ... + x[stop - 1]`` left to right from 0.0 (``book._total``)."""
    t = 0.0
    for i in range(stop):
        t += x[i]
    return t


@njit(cache=True)
def _present(prices: np.ndarray, stop: int) -> int:  # pragma: no cover - numba
    """Number of levels present among the first ``stop`` (a side's levels are contiguous)."""
    for i in range(stop):
        if prices[i] != prices[i]:
            return i
    return stop


@njit(cache=True)
def _find(prices: np.ndarray, stop: int, p: float) -> int:  # pragma: no cover - numba
    """Index of the level at price ``p`` among the first ``stop``, or -1 (a dict look-up)."""
    for i in range(stop):
        x = prices[i]
        if x != x:
            return -1
        if x == p:
            return i
    return -1


@njit(cache=True)
def _spread(bid: float, ask: float) -> float:  # pragma: no cover - numba
    """``book._spread_bps``."""
    mid = (bid + ask) * 0.5
    if not mid > 0.0:
        return np.nan
    return (ask - bid) / mid * 1e4


@njit(cache=True)
def _ring_push(ring: np.ndarray, f: np.ndarray, st: np.ndarray,
               x: float) -> None:  # pragma: no cover - numba
    """``book._Ring.push``: ``f`` = [k, s1, s2, peak], ``st`` = [count, slot]."""
    n = ring.shape[0]
    count = st[0]
    slot = st[1]
    if count == 0:
        f[0] = x
    k = f[0]
    d = x - k
    if count >= n:
        old = ring[slot] - k
        f[1] += d - old
        f[2] += d * d - old * old
    else:
        f[1] += d
        f[2] += d * d
    ring[slot] = x
    count += 1
    slot += 1
    if slot == n:
        slot = 0
    st[0] = count
    st[1] = slot
    if count >= n:
        m2 = f[2] - f[1] * f[1] / n
        if slot == 0 or m2 < 1e-6 * f[3]:
            # re-sum: ``book._Ring._resum``
            t = 0.0
            for i in range(n):
                t += ring[i]
            k = t / n
            s1 = 0.0
            s2 = 0.0
            for i in range(n):
                dv = ring[i] - k
                s1 += dv
                s2 += dv * dv
            f[0] = k
            f[1] = s1
            f[2] = s2
            f[3] = s2
        elif f[2] > f[3]:
            f[3] = f[2]


# --- spread-bps, order-imbalance, spread-analysis -------------------------------------------


@njit(cache=True)
def spread_bps_batch(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Quoted spread in bps of the mid; NaN while a side is empty."""
    m = bid.shape[0]
    out = np.empty(m)
    for i in range(m):
        out[i] = _spread(bid[i], ask[i])
    return out


@njit(cache=True)
def imbalance_top_batch(bid: np.ndarray, bid_qty: np.ndarray, ask: np.ndarray,
                        ask_qty: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """(b - a) / (b + a) of the best bid and ask quantities; NaN while a side is empty."""
    m = bid.shape[0]
    out = np.full(m, np.nan)
    for i in range(m):
        b = bid_qty[i]
        a = ask_qty[i]
        if bid[i] != bid[i] or ask[i] != ask[i]:
            b = 0.0
            a = 0.0
        if b > 0.0 and a > 0.0:
            out[i] = (b - a) / (b + a)
    return out


@njit(cache=True)
def imbalance_depth_batch(bp: np.ndarray, bq: np.ndarray, ap: np.ndarray, aq: np.ndarray,
                          levels: int) -> np.ndarray:  # pragma: no cover - numba
    """(B - A) / (B + A) of the quantities of the best ``levels`` levels of each side."""
    m = bp.shape[0]
    out = np.full(m, np.nan)
    for i in range(m):
        b = _total(bq[i], _present(bp[i], levels))
        a = _total(aq[i], _present(ap[i], levels))
        if b > 0.0 and a > 0.0:
            out[i] = (b - a) / (b + a)
    return out


@njit(cache=True)
def spread_analysis_batch(bid: np.ndarray, ask: np.ndarray, window: int, zscore: bool,
                          floor: float) -> np.ndarray:  # pragma: no cover - numba
    """z-score (or ratio) of the spread against its last ``window`` values."""
    m = bid.shape[0]
    out = np.full(m, np.nan)
    ring = np.zeros(window)
    f = np.zeros(4)
    st = np.zeros(2, dtype=np.int64)
    for i in range(m):
        s = _spread(bid[i], ask[i])
        if s != s:
            continue
        _ring_push(ring, f, st, s)
        if st[0] < window:
            continue
        mean = f[0] + f[1] / window
        if not zscore:
            out[i] = s / mean if mean != 0.0 else np.nan
            continue
        v = (f[2] - f[1] * f[1] / window) / window
        if not v > 0.0:
            v = 0.0
        sd = math.sqrt(v)
        fl = floor * abs(mean)
        if sd < fl:
            sd = fl
        out[i] = (s - mean) / sd if sd > 0.0 else 0.0
    return out


# --- l2-delta -------------------------------------------------------------------------------


@njit(cache=True)
def l2_delta_batch(bp: np.ndarray, bq: np.ndarray, ap: np.ndarray, aq: np.ndarray,
                   levels: int) -> np.ndarray:  # pragma: no cover - numba
    """Multi-level order-flow imbalance between consecutive rows; NaN on the first."""
    m = bp.shape[0]
    out = np.full(m, np.nan)
    for i in range(1, m):
        total = 0.0
        for lv in range(levels):
            cb = bp[i, lv]
            pb = bp[i - 1, lv]
            if cb == cb and pb == pb:
                cq = bq[i, lv]
                pq = bq[i - 1, lv]
                total += (cq if cb >= pb else 0.0) - (pq if cb <= pb else 0.0)
            else:
                total += (bq[i, lv] if cb == cb else 0.0) - (bq[i - 1, lv] if pb == pb else 0.0)
            ca = ap[i, lv]
            pa = ap[i - 1, lv]
            if ca == ca and pa == pa:
                cq = aq[i, lv]
                pq = aq[i - 1, lv]
                total -= (cq if ca <= pa else 0.0) - (pq if ca >= pa else 0.0)
            else:
                total -= (aq[i, lv] if ca == ca else 0.0) - (aq[i - 1, lv] if pa == pa else 0.0)
        out[i] = total
    return out


# --- hidden-liquidity -----------------------------------------------------------------------


@njit(cache=True)
def hidden_liquidity_batch(kind: np.ndarray, price: np.ndarray, qty: np.ndarray,
                           side: np.ndarray, bp: np.ndarray, bq: np.ndarray, ap: np.ndarray,
                           aq: np.ndarray, levels: int,
                           window: int) -> np.ndarray:  # pragma: no cover - numba
    """Share of the last ``window`` attributed trades' volume beyond the displayed depth."""
    size = kind.shape[0]
    out = np.full(size, np.nan)
    ring_h = np.zeros(window)
    ring_q = np.zeros(window)
    slot = 0
    count = 0
    sum_h = 0.0
    sum_q = 0.0
    value = np.nan
    row = -1  # depth row of the last depth update
    bound_bid = -INF
    bound_ask = INF
    # volume traded at each (side, price) since the last depth update
    t_side = np.zeros(size, dtype=np.int8)
    t_price = np.zeros(size)
    t_cum = np.zeros(size)
    nt = 0
    for i in range(size):
        if kind[i] == DEPTH:
            row += 1
            x = bp[row, levels - 1]
            bound_bid = x if x == x else -INF
            x = ap[row, levels - 1]
            bound_ask = x if x == x else INF
            nt = 0
            out[i] = value
            continue
        if row < 0:
            continue
        p = price[i]
        q = qty[i]
        sd = -1 if side[i] > 0 else 1  # a taker buy trades against the asks (-1)
        if (p < bound_bid) if sd == 1 else (p > bound_ask):
            out[i] = value
            continue
        c0 = 0.0
        at = -1
        for t in range(nt):
            if t_side[t] == sd and t_price[t] == p:
                c0 = t_cum[t]
                at = t
                break
        c1 = c0 + q
        if at < 0:
            t_side[nt] = sd
            t_price[nt] = p
            t_cum[nt] = c1
            nt += 1
        else:
            t_cum[at] = c1
        if sd == 1:
            j = _find(bp[row], levels, p)
            d = bq[row, j] if j >= 0 else 0.0
        else:
            j = _find(ap[row], levels, p)
            d = aq[row, j] if j >= 0 else 0.0
        h = c1 - (d if d > c0 else c0)
        if h < 0.0:
            h = 0.0
        sum_h += h - ring_h[slot]
        sum_q += q - ring_q[slot]
        ring_h[slot] = h
        ring_q[slot] = q
        count += 1
        slot += 1
        if slot == window:
            slot = 0
            sum_h = _total(ring_h, window)
            sum_q = _total(ring_q, window)
        if count < window:
            continue
        v = sum_h / sum_q if sum_q > 0.0 else np.nan
        if v < 0.0:
            v = 0.0
        elif v > 1.0:
            v = 1.0
        value = v
        out[i] = v
    return out


# --- spoofing -------------------------------------------------------------------------------


@njit(cache=True)
def _pending_at(pe_side: np.ndarray, pe_price: np.ndarray, pe_alive: np.ndarray, head: int,
                tail: int, sd: int, p: float) -> int:  # pragma: no cover - numba
    """Index of the live placement at (side, price), or -1 (the OrderedDict look-up)."""
    for e in range(head, tail):
        if pe_alive[e] and pe_side[e] == sd and pe_price[e] == p:
            return e
    return -1


@njit(cache=True)
def spoofing_batch(kind: np.ndarray, ts: np.ndarray, price: np.ndarray, side: np.ndarray,
                   bp: np.ndarray, bq: np.ndarray, ap: np.ndarray, aq: np.ndarray,
                   offset: np.ndarray, ch_side: np.ndarray, ch_price: np.ndarray,
                   ch_qty: np.ndarray, levels: int, min_rank: int, size_factor: float,
                   cancel_fraction: float, max_life_ms: int, window_ms: int,
                   max_pending: int, recent_cap: int = 64) -> np.ndarray:  # pragma: no cover
    """Cancelled volume of large fleeting placements over the last ``window_ms``, divided by
    the depth of the best ``levels`` levels of both sides (``book.Spoofing.update``).

    Memory does not grow with the tape: the pending placements live in arrays of
    ``2 * max_pending + 2`` slots (at most ``max_pending`` + 1 are alive; dead ones are
    squeezed out, order kept, when the arrays fill: O(1) amortized per placement), and the
    cancelled volumes in a buffer that holds those of one ``window_ms`` (grown by doubling
    only when one window holds more than it has room for; ``recent_cap`` slots at first)."""
    size = kind.shape[0]
    out = np.full(size, np.nan)
    cap = 2 * max_pending + 2
    # pending placements in insertion order (an OrderedDict): dead entries are skipped
    pe_side = np.zeros(cap, dtype=np.int8)
    pe_price = np.zeros(cap)
    pe_t0 = np.zeros(cap, dtype=np.int64)
    pe_added = np.zeros(cap)
    pe_peak = np.zeros(cap)
    pe_alive = np.zeros(cap, dtype=np.bool_)
    head = 0
    tail = 0
    alive = 0
    # cancelled volumes of the window (a deque): entries r_head..r_tail-1
    r_ts = np.zeros(recent_cap, dtype=np.int64)
    r_vol = np.zeros(recent_cap)
    r_head = 0
    r_tail = 0
    recent_sum = 0.0
    first_ts = 0
    started = False
    value = np.nan
    row = -1
    prev = -1
    prev_bound_bid = -INF
    prev_bound_ask = INF
    for i in range(size):
        if kind[i] != DEPTH:
            if alive > 0:
                sd = -1 if side[i] > 0 else 1
                e = _pending_at(pe_side, pe_price, pe_alive, head, tail, sd, price[i])
                if e >= 0:
                    pe_alive[e] = False
                    alive -= 1
            out[i] = value
            continue
        row += 1
        t = ts[i]
        if not started:
            first_ts = t
            started = True
        nb = _present(bp[row], levels)
        na = _present(ap[row], levels)
        while alive > 0:  # expire: only the oldest is looked at
            while not pe_alive[head]:
                head += 1
            if t - pe_t0[head] <= max_life_ms:
                break
            pe_alive[head] = False
            alive -= 1
            head += 1
        if prev >= 0:
            mean_bid = _total(bq[row], nb) / nb if nb else INF
            mean_ask = _total(aq[row], na) / na if na else INF
            for c in range(offset[row], offset[row + 1]):
                sd = ch_side[c]
                p = ch_price[c]
                q = ch_qty[c]
                e = _pending_at(pe_side, pe_price, pe_alive, head, tail, sd, p)
                if e >= 0:
                    added = pe_added[e]
                    peak = pe_peak[e]
                    if q <= peak - cancel_fraction * added:
                        pe_alive[e] = False
                        alive -= 1
                        gone = peak - q
                        vol = gone if gone < added else added
                        if r_tail == r_ts.shape[0]:  # full: squeeze out the expired, or grow
                            n_keep = r_tail - r_head
                            if 2 * n_keep > r_ts.shape[0]:
                                g_ts = np.zeros(2 * r_ts.shape[0], dtype=np.int64)
                                g_vol = np.zeros(2 * r_ts.shape[0])
                            else:
                                g_ts = r_ts
                                g_vol = r_vol
                            for m in range(n_keep):
                                g_ts[m] = r_ts[r_head + m]
                                g_vol[m] = r_vol[r_head + m]
                            r_ts = g_ts
                            r_vol = g_vol
                            r_head = 0
                            r_tail = n_keep
                        r_ts[r_tail] = t
                        r_vol[r_tail] = vol
                        r_tail += 1
                        recent_sum += vol
                    continue
                if sd == 1:
                    if p < prev_bound_bid:
                        continue
                    j = _find(bp[prev], levels, p)
                    old = bq[prev, j] if j >= 0 else 0.0
                    mean = mean_bid
                else:
                    if p > prev_bound_ask:
                        continue
                    j = _find(ap[prev], levels, p)
                    old = aq[prev, j] if j >= 0 else 0.0
                    mean = mean_ask
                delta = q - old
                if delta <= 0.0 or delta < size_factor * mean:
                    continue
                r = _find(bp[row], levels, p) if sd == 1 else _find(ap[row], levels, p)
                if r < 0 or r < min_rank:
                    continue
                if tail == cap:  # full: squeeze out the dead entries, keeping the order
                    m = 0
                    for e in range(head, tail):
                        if pe_alive[e]:
                            pe_side[m] = pe_side[e]
                            pe_price[m] = pe_price[e]
                            pe_t0[m] = pe_t0[e]
                            pe_added[m] = pe_added[e]
                            pe_peak[m] = pe_peak[e]
                            pe_alive[m] = True
                            m += 1
                    pe_alive[m:tail] = False
                    head = 0
                    tail = m  # == alive <= max_pending: at least max_pending + 2 free slots
                pe_side[tail] = sd
                pe_price[tail] = p
                pe_t0[tail] = t
                pe_added[tail] = delta
                pe_peak[tail] = q
                pe_alive[tail] = True
                tail += 1
                alive += 1
                if alive > max_pending:  # drop the oldest
                    while not pe_alive[head]:
                        head += 1
                    pe_alive[head] = False
                    alive -= 1
                    head += 1
        prev = row
        prev_bound_bid = bp[row, levels - 1] if nb == levels else -INF
        prev_bound_ask = ap[row, levels - 1] if na == levels else INF
        while r_head < r_tail and t - r_ts[r_head] >= window_ms:
            recent_sum -= r_vol[r_head]
            r_head += 1
        if r_head == r_tail:
            recent_sum = 0.0
        if t - first_ts < window_ms:
            continue
        depth = _total(bq[row], nb) + _total(aq[row], na)
        if not depth > 0.0:
            value = np.nan
            continue
        r_sum = recent_sum
        if r_sum < 0.0:  # max(recent_sum, 0.0)
            r_sum = 0.0
        value = r_sum / depth
        out[i] = value
    return out


# --- liquidity-vacuum -----------------------------------------------------------------------


@njit(cache=True)
def _impact_bps(prices: np.ndarray, qtys: np.ndarray, levels: int, size: float,
                mid: float) -> float:  # pragma: no cover - numba
    """``book._impact_bps``: bps from mid of the average price of taking ``size``."""
    rest = size
    notional = 0.0
    last = mid
    for j in range(levels):
        p = prices[j]
        if p != p:
            break
        q = qtys[j]
        take = q if q < rest else rest
        notional += take * p
        rest -= take
        last = p
        if rest <= 0.0:
            break
    if not rest <= 1e-12 * size:
        notional += rest * last
    return abs(notional / size - mid) / mid * 1e4


@njit(cache=True)
def liquidity_vacuum_batch(bp: np.ndarray, bq: np.ndarray, ap: np.ndarray, aq: np.ndarray,
                           size: float, levels: int,
                           window: int) -> np.ndarray:  # pragma: no cover - numba
    """Cost of taking ``size`` over its geometric mean of the last ``window`` depth rows."""
    m = bp.shape[0]
    out = np.full(m, np.nan)
    ring = np.zeros(window)
    f = np.zeros(4)
    st = np.zeros(2, dtype=np.int64)
    for i in range(m):
        mid = (bp[i, 0] + ap[i, 0]) * 0.5
        if not mid > 0.0:
            continue
        buy = _impact_bps(ap[i], aq[i], levels, size, mid)
        sell = _impact_bps(bp[i], bq[i], levels, size, mid)
        c = (buy + sell) * 0.5
        if not c > 0.0:
            continue
        lc = math.log(c)
        _ring_push(ring, f, st, lc)
        if st[0] < window:
            continue
        out[i] = math.exp(lc - (f[0] + f[1] / window))
    return out
