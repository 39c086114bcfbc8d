"""Numba batch kernels of the trade-flow features (``cvd``, ``tbsr``, ``vwap``, ``vpin``,
``volume-profile``).

Each kernel runs the *same* recurrence, in the same floating-point order, as the streaming
``update`` in :mod:`gridkit.plugins.features.flow` (same pushes, same pops, same periodic re-sums),
so batch and streaming results agree exactly. This module imports numba; the feature classes
import it only inside ``batch``.

Window modes (see ``flow.parse_window``): 0 = everything since the start, 1 = the last ``n``
events, 2 = the events of the last ``n`` milliseconds, 3 = the current UTC day (session).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

DAY_MS = 86_400_000


@njit(cache=True)
def window_sums(ts: np.ndarray, a: np.ndarray, b: np.ndarray, mode: int,
                n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Running sums of ``a`` and ``b`` over a window of events; returns (Σa, Σb, ready)."""
    size = ts.shape[0]
    out_a = np.empty(size)
    out_b = np.empty(size)
    ready = np.zeros(size, dtype=np.bool_)
    sa = 0.0
    sb = 0.0
    head = 0
    pops = 0
    first_ts = ts[0] if size else 0
    day = -1
    started = False
    is_ready = False
    for i in range(size):
        if mode == 3:
            d = ts[i] // DAY_MS
            if d != day:
                if day != -1:
                    started = True
                day = d
                sa = 0.0
                sb = 0.0
            sa = sa + a[i]
            sb = sb + b[i]
            is_ready = started
        elif mode == 0:
            sa = sa + a[i]
            sb = sb + b[i]
            is_ready = True
        else:
            sa = sa + a[i]
            sb = sb + b[i]
            if mode == 1:
                if i - head + 1 > n:
                    sa = sa - a[head]
                    sb = sb - b[head]
                    head += 1
                    pops += 1
                is_ready = i - head + 1 == n
            else:
                lim = ts[i] - n
                while ts[head] <= lim:
                    sa = sa - a[head]
                    sb = sb - b[head]
                    head += 1
                    pops += 1
                if not is_ready and ts[i] - first_ts >= n:
                    is_ready = True
            if pops > 0 and pops >= i - head + 1:
                # Re-sum once per window's worth of pops: the sums never drift.
                sa = 0.0
                sb = 0.0
                for j in range(head, i + 1):
                    sa += a[j]
                    sb += b[j]
                pops = 0
        out_a[i] = sa
        out_b[i] = sb
        ready[i] = is_ready
    return out_a, out_b, ready


@njit(cache=True)
def vpin_batch(qty: np.ndarray, side: np.ndarray, bucket_volume: float, buckets: int,
               zscore: bool, m: int) -> np.ndarray:  # pragma: no cover - numba
    """VPIN after each trade: mean of ``|buy - sell| / V`` over the last ``buckets`` buckets;
    with ``zscore``, its z-score against the VPIN values of the last ``m`` bucket closes."""
    size = qty.shape[0]
    out = np.full(size, np.nan)
    ring = np.zeros(buckets)
    s = 0.0
    done = 0
    slot = 0
    room = bucket_volume
    vb = 0.0
    vs = 0.0
    value = np.nan
    zring = np.zeros(m)
    z1 = 0.0
    z2 = 0.0
    zk = 0
    zslot = 0
    for i in range(size):
        q = qty[i]
        if q > 0.0:
            buy = side[i] > 0
            while q >= room:
                if buy:
                    vb = bucket_volume - vs
                else:
                    vs = bucket_volume - vb
                q = q - room
                oi = abs(vb - vs) / bucket_volume
                if oi > 1.0:
                    oi = 1.0
                if done >= buckets:
                    s = s + oi - ring[slot]
                else:
                    s = s + oi
                ring[slot] = oi
                done += 1
                if slot == buckets - 1:
                    s = 0.0
                    for j in range(buckets):
                        s += ring[j]
                    slot = 0
                else:
                    slot += 1
                vb = 0.0
                vs = 0.0
                room = bucket_volume
                if done >= buckets:
                    value = s / buckets
                    if value > 1.0:
                        value = 1.0
                    elif value < 0.0:
                        value = 0.0
                    if zscore:
                        x = value
                        if zk >= m:
                            old = zring[zslot]
                            z1 = z1 + x - old
                            z2 = z2 + x * x - old * old
                        else:
                            z1 = z1 + x
                            z2 = z2 + x * x
                        zring[zslot] = x
                        zk += 1
                        if zslot == m - 1:
                            z1 = 0.0
                            z2 = 0.0
                            for j in range(m):
                                z1 += zring[j]
                                z2 += zring[j] * zring[j]
                            zslot = 0
                        else:
                            zslot += 1
                        if zk < m:
                            value = np.nan
                        else:
                            mean = z1 / m
                            var = (z2 - z1 * z1 / m) / (m - 1)
                            if var > 1e-12 * (mean * mean) and var > 0.0:
                                value = (x - mean) / math.sqrt(var)
                            else:
                                value = 0.0
            if q > 0.0:
                if buy:
                    vb += q
                else:
                    vs += q
                room = room - q
        out[i] = value
    return out


@njit(cache=True)
def _rescan(vol: np.ndarray, cnt: np.ndarray, kmin: int, lo: int, hi: int) -> int:
    # pragma: no cover - numba
    """Point of control: the occupied bin of most volume in [lo, hi], ties to the lowest.
    O(hi - lo): the window's price range in bins, not its number of trades."""
    poc = lo
    best = vol[lo - kmin]
    for b in range(lo + 1, hi + 1):
        if cnt[b - kmin] > 0:
            v = vol[b - kmin]
            if v > best:
                poc = b
                best = v
    return poc


@njit(cache=True)
def _edges(vol: np.ndarray, kmin: int, lo: int, hi: int, target: float, val: int, below: float,
           vah: int, above: float) -> tuple[int, float, int, float]:  # pragma: no cover
    """Move the value area's edges to the current profile: ``val`` to the lowest bin whose
    cumulative volume from below exceeds ``target``, ``vah`` to the highest whose cumulative
    volume from above does; ``below`` / ``above`` are the volumes under ``val`` / over ``vah``.
    Each edge steps from where it was. The same float operations, in the same order, as
    ``VolumeProfile._edges``."""
    if val < lo:
        val = lo
        below = 0.0
    while below > target and val > lo:
        val -= 1
        below = below - vol[val - kmin]
    while val < hi:
        v = below + vol[val - kmin]
        if v > target:
            break
        below = v
        val += 1
    if vah > hi:
        vah = hi
        above = 0.0
    while above > target and vah < hi:
        vah += 1
        above = above - vol[vah - kmin]
    while vah > lo:
        v = above + vol[vah - kmin]
        if v > target:
            break
        above = v
        vah -= 1
    return val, below, vah, above


@njit(cache=True)
def volume_profile_batch(ts: np.ndarray, price: np.ndarray, qty: np.ndarray, mode: int, n: int,
                         bin_bps: float, in_bins: bool, output: int,
                         alpha: float) -> np.ndarray:  # pragma: no cover - numba
    """Each trade's price against the rolling volume profile: distance from the point of control
    (``output`` 0), the value area high (1) or low (2), in bps or bins; or its position in
    [VAL, VAH] (3). The value area leaves at most ``alpha`` of the volume under it and over
    it."""
    size = ts.shape[0]
    out = np.full(size, np.nan)
    if size == 0:
        return out
    p0 = price[0]
    width = p0 * bin_bps / 10_000.0
    k = np.empty(size, dtype=np.int64)
    for i in range(size):
        k[i] = math.floor((price[i] - p0) / width)
    kmin = k.min()
    vol = np.zeros(k.max() - kmin + 1)
    cnt = np.zeros(k.max() - kmin + 1, dtype=np.int64)
    head = 0
    pops = 0
    poc = k[0]
    lo = k[0]  # lowest and highest occupied bins of the window
    hi = k[0]
    first_ts = ts[0]
    is_ready = False
    edges = output != 0
    val = k[0]  # the value area's bottom and top bins
    vah = k[0]
    total = 0.0  # the window's volume, and its volume under val and over vah
    below = 0.0
    above = 0.0
    for i in range(size):
        b = k[i]
        vol[b - kmin] = vol[b - kmin] + qty[i]
        cnt[b - kmin] += 1
        if b < lo:
            lo = b
        elif b > hi:
            hi = b
        if edges:
            total = total + qty[i]
            if b < val:
                below = below + qty[i]
            if b > vah:
                above = above + qty[i]
        if i == 0:
            poc = b
        elif b != poc:
            v = vol[b - kmin]
            best = vol[poc - kmin]
            if v > best or (v == best and b < poc):
                poc = b
        rescan = False
        while True:
            if mode == 1:
                if i - head + 1 <= n:
                    break
            elif ts[head] > ts[i] - n:
                break
            o = k[head]
            vol[o - kmin] = vol[o - kmin] - qty[head]
            cnt[o - kmin] -= 1
            if cnt[o - kmin] == 0:
                vol[o - kmin] = 0.0
            if o == poc:
                rescan = True
            if edges:
                total = total - qty[head]
                if o < val:
                    below = below - qty[head]
                if o > vah:
                    above = above - qty[head]
            head += 1
            pops += 1
        if mode == 1:
            is_ready = i - head + 1 == n
        elif not is_ready and ts[i] - first_ts >= n:
            is_ready = True
        while cnt[lo - kmin] == 0:  # the newest trade's bin is occupied: both loops stop
            lo += 1
        while cnt[hi - kmin] == 0:
            hi -= 1
        if pops > 0 and pops >= i - head + 1:
            for j in range(head, i + 1):
                vol[k[j] - kmin] = 0.0
            for j in range(head, i + 1):
                vol[k[j] - kmin] = vol[k[j] - kmin] + qty[j]
            if edges:
                total = 0.0
                below = 0.0
                above = 0.0
                for j in range(head, i + 1):
                    total = total + qty[j]
                    if k[j] < val:
                        below = below + qty[j]
                    if k[j] > vah:
                        above = above + qty[j]
            pops = 0
            rescan = True
        if rescan:
            poc = _rescan(vol, cnt, kmin, lo, hi)
        if edges:
            val, below, vah, above = _edges(vol, kmin, lo, hi, alpha * total, val, below, vah,
                                            above)
        if not is_ready:
            continue
        p = price[i]
        if output == 0:
            if in_bins:
                out[i] = float(b - poc)
            else:
                centre = p0 + (poc + 0.5) * width
                out[i] = 10_000.0 * (p - centre) / centre
            continue
        top = vah if vah >= val else val
        if output == 3:
            low = p0 + val * width
            out[i] = (p - low) / (p0 + (top + 1) * width - low)
        elif output == 1:
            if in_bins:
                out[i] = float(b - top)
            else:
                level = p0 + (top + 1) * width
                out[i] = 10_000.0 * (p - level) / level
        else:
            if in_bins:
                out[i] = float(b - val)
            else:
                level = p0 + val * width
                out[i] = 10_000.0 * (p - level) / level
    return out
