"""Numba batch kernels of the built-in features.

Each kernel runs the *same* recurrence, in the same floating-point order, as its feature's
streaming ``update``, so batch and streaming results agree exactly (a test checks every one).
This module imports numba; feature classes import it only inside ``batch``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def rsi_batch(close: np.ndarray, period: int) -> np.ndarray:  # pragma: no cover - numba
    """Wilder's RSI over ``close``; NaN for the first ``period`` values."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    gain_sum = 0.0
    loss_sum = 0.0
    avg_gain = 0.0
    avg_loss = 0.0
    for i in range(1, n):
        diff = close[i] - close[i - 1]
        gain = diff if diff > 0.0 else 0.0
        loss = -diff if diff < 0.0 else 0.0
        if i < period:
            gain_sum += gain
            loss_sum += loss
            continue
        if i == period:
            gain_sum += gain
            loss_sum += loss
            avg_gain = gain_sum / period
            avg_loss = loss_sum / period
        else:
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        total = avg_gain + avg_loss
        out[i] = 100.0 * (avg_gain / total) if total != 0.0 else 0.0
    return out


@njit(cache=True)
def volatility_batch(close: np.ndarray, period: int) -> np.ndarray:  # pragma: no cover - numba
    """Sample standard deviation of the last ``period`` log returns; NaN until ``period`` exist."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    ring = np.zeros(period)
    s1 = 0.0
    s2 = 0.0
    for i in range(1, n):
        k = i - 1  # returns seen before this one
        r = math.log(close[i] / close[i - 1])
        slot = k % period
        if k >= period:
            old = ring[slot]
            s1 = s1 + r - old
            s2 = s2 + r * r - old * old
        else:
            s1 = s1 + r
            s2 = s2 + r * r
        ring[slot] = r
        k = i
        if slot == period - 1:
            # Re-sum once per window: rolling sums never drift, at O(1) amortized cost.
            s1 = 0.0
            s2 = 0.0
            for j in range(period):
                s1 += ring[j]
                s2 += ring[j] * ring[j]
        if k >= period:
            var = (s2 - s1 * s1 / period) / (period - 1)
            out[i] = math.sqrt(var) if var > 0.0 else 0.0
    return out


@njit(cache=True)
def volume_ratio_batch(volume: np.ndarray, period: int) -> np.ndarray:  # pragma: no cover - numba
    """Volume over the mean of the ``period`` volumes before it; NaN until they exist or if 0."""
    n = volume.shape[0]
    out = np.full(n, np.nan)
    ring = np.zeros(period)
    s = 0.0
    for i in range(n):
        v = volume[i]
        if i >= period:
            mean = s / period
            if mean > 0.0:
                out[i] = v / mean
        slot = i % period
        if i >= period:
            s = s + v - ring[slot]
        else:
            s = s + v
        ring[slot] = v
        if slot == period - 1:
            s = 0.0
            for j in range(period):
                s += ring[j]
    return out
