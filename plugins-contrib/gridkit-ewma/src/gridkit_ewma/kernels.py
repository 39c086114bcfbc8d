"""Numba batch kernel of the EWMA volatility features.

The kernel runs the *same* recurrence, in the same floating-point order, as
:meth:`gridkit_ewma.features.EwmaVolatility.update`, so batch and streaming results agree exactly
(the FeatureContract test checks it). This module imports numba; the feature classes import it
only inside ``batch``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def ewma_volatility_batch(close: np.ndarray, lam: float,
                          warmup: int) -> np.ndarray:  # pragma: no cover - numba
    """RiskMetrics EWMA σ of the log returns of ``close``; NaN for the first ``warmup`` values."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    keep = 1.0 - lam
    sum_sq = 0.0
    var = 0.0
    for i in range(1, n):
        count = i  # returns seen, this one included
        r = math.log(close[i] / close[i - 1])
        if count < warmup:
            sum_sq = sum_sq + r * r
            continue
        if count == warmup:
            sum_sq = sum_sq + r * r
            var = sum_sq / warmup
        else:
            var = lam * var + keep * (r * r)
        out[i] = math.sqrt(var)
    return out
