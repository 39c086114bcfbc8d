"""Numba kernels of the attention modules' per-bar statistics.

``feature-attention`` learns on every accepted bar; in Python its loop over the features cost
more than the rest of the attention stage together, so the recurrence runs here. This module
imports numba: ``attention_modules`` imports it only when a module that needs it is built.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Columns of a feature-attention statistics row: values seen, last finite value, value at the
#: previous bar (NaN if not finite), level EW mean and variance, change EW mean and variance,
#: then the correlation's EW mean of x, mean of r, variance of x, variance of r, covariance,
#: and the number of (x, r) pairs.
COLUMNS = 13


@njit(cache=True)
def feature_learn(stats: np.ndarray, x: np.ndarray, r: float,
                  a: float) -> None:  # pragma: no cover - numba
    """One bar of feature-attention's EW statistics, in place.

    ``stats`` has a row per feature (columns above), ``x`` the bar's feature values in the same
    order, ``r`` the equity return since the last bar (NaN when there is none). A non-finite
    value leaves its feature's statistics alone and blanks its previous value, so the next
    correlation pair waits for a finite one.
    """
    b = 1.0 - a
    have_r = r == r
    for i in range(x.shape[0]):
        s = stats[i]
        px = s[2]
        if have_r and px == px:  # a return after a finite value: one correlation pair
            if s[12] == 0.0:
                s[7] = px
                s[8] = r
            else:
                dx = px - s[7]
                dr = r - s[8]
                s[7] += a * dx
                s[8] += a * dr
                s[9] = b * (s[9] + a * dx * dx)
                s[10] = b * (s[10] + a * dr * dr)
                s[11] = b * (s[11] + a * dx * dr)
            s[12] += 1.0
        v = x[i]
        if not -math.inf < v < math.inf:  # NaN or inf: skipped
            s[2] = math.nan
            continue
        s[2] = v
        n = s[0]
        if n == 0.0:
            s[3] = v
        else:
            d = v - s[3]
            s[3] += a * d
            s[4] = b * (s[4] + a * d * d)
            change = v - s[1]
            if n == 1.0:
                s[5] = change
            else:
                d = change - s[5]
                s[5] += a * d
                s[6] = b * (s[6] + a * d * d)
        s[1] = v
        s[0] = n + 1.0


def new_rows(count: int) -> np.ndarray:
    """Statistics rows of features not seen yet."""
    rows = np.zeros((count, COLUMNS))
    rows[:, 1:3] = math.nan
    return rows


__all__ = ["COLUMNS", "feature_learn", "new_rows"]
