"""Numba kernels of the model-based features ``garch``, ``volatility-state`` and ``kalman``.

Each batch kernel runs the *same* recurrence, in the same floating-point order, as its feature's
streaming ``update``; the GARCH fit is one numba function that both paths call on the same
window, so batch and streaming agree exactly. This module imports numba; the feature classes
import it only when they need it.

The GARCH(1,1) maximum-likelihood fit uses the Nelder–Mead simplex method (Nelder & Mead 1965,
*Comput. J.* 7:308–313) with the standard coefficients (reflection 1, expansion 2, contraction
1/2, shrink 1/2; Lagarias et al. 1998, *SIAM J. Optim.* 9:112–147), restarted from its own
optimum until the likelihood stops improving (the usual guard against a collapsed simplex).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True)
def garch_backcast(r: np.ndarray) -> float:  # pragma: no cover - numba
    """arch's start value for σ²: Σ w_i r_i² over the first min(75, n) returns, w_i ∝ 0.94^i."""
    tau = min(75, r.shape[0])
    wsum = 0.0
    for i in range(tau):
        wsum += 0.94 ** i
    acc = 0.0
    for i in range(tau):
        acc += r[i] * r[i] * (0.94 ** i / wsum)
    return acc


@njit(cache=True)
def garch_filter_mean(r: np.ndarray, mu: float, omega: float, alpha: float, beta: float,
                      backcast: float) -> float:  # pragma: no cover - numba
    """σ² forecast for the return after ``r`` with residuals ``e_t = r_t - mu`` (``mu = 0``:
    the zero-mean model, bit for bit, since ``x - 0.0 == x``)."""
    s2 = omega + alpha * backcast + beta * backcast
    for t in range(r.shape[0]):
        e = r[t] - mu
        s2 = omega + alpha * (e * e) + beta * s2
    return s2


@njit(cache=True)
def garch_nll(r: np.ndarray, omega: float, alpha: float, beta: float,
              backcast: float) -> float:  # pragma: no cover - numba
    """Gaussian negative log-likelihood of zero-mean GARCH(1,1) returns ``r``."""
    return garch_nll_mean(r, 0.0, omega, alpha, beta, backcast)


@njit(cache=True)
def garch_nll_mean(r: np.ndarray, mu: float, omega: float, alpha: float, beta: float,
                   backcast: float) -> float:  # pragma: no cover - numba
    """Gaussian negative log-likelihood of GARCH(1,1) returns ``r_t = mu + e_t``."""
    n = r.shape[0]
    s2 = omega + alpha * backcast + beta * backcast
    acc = 0.0
    prev = 0.0
    for t in range(n):
        if t > 0:
            s2 = omega + alpha * (prev * prev) + beta * s2
        if not s2 > 0.0:
            return np.inf
        e = r[t] - mu
        acc += math.log(s2) + e * e / s2
        prev = e
    return 0.5 * (acc + n * LOG_2PI)


@njit(cache=True)
def _params(u: np.ndarray) -> tuple[float, float, float]:  # pragma: no cover - numba
    # ω = exp(u0) > 0; persistence α+β = logistic(u1) in (0, 1); α/(α+β) = logistic(u2).
    omega = math.exp(u[0])
    pers = 1.0 / (1.0 + math.exp(-u[1]))
    frac = 1.0 / (1.0 + math.exp(-u[2]))
    return omega, pers * frac, pers * (1.0 - frac)


@njit(cache=True)
def _objective(u: np.ndarray, r: np.ndarray, backcast: float,
               mscale: float) -> float:  # pragma: no cover - numba
    # A fourth coordinate, when there is one, is the mean in units of mscale (the returns'
    # standard deviation): the simplex steps then have the same meaning in every coordinate.
    omega, alpha, beta = _params(u)
    mu = u[3] * mscale if u.shape[0] == 4 else 0.0
    f = garch_nll_mean(r, mu, omega, alpha, beta, backcast)
    return f if f == f else np.inf


@njit(cache=True)
def _nelder_mead(u0: np.ndarray, step: float, r: np.ndarray, backcast: float, mscale: float,
                 max_iter: int, xtol: float, ftol: float) -> tuple[np.ndarray, float]:
    # pragma: no cover - numba
    # Written as a state machine with ONE call of the objective: LLVM inlines the likelihood
    # loop at every call site, and one site keeps the compile time short.
    d = u0.shape[0]
    simplex = np.empty((d + 1, d))
    f = np.empty(d + 1)
    for i in range(d + 1):
        for j in range(d):
            simplex[i, j] = u0[j]
        if i > 0:
            simplex[i, i - 1] += step
    centroid = np.empty(d)
    x = np.empty(d)
    xr = np.empty(d)
    fr = 0.0
    # phases: 0 initial vertex i, 1 reflect, 2 expand, 3 outside contraction,
    # 4 shrink vertex i, 5 inside contraction
    phase = 0
    i = 0
    it = 0
    while True:
        if phase == 0 or phase == 4:
            if phase == 4:
                for j in range(d):
                    simplex[i, j] = simplex[0, j] + 0.5 * (simplex[i, j] - simplex[0, j])
            for j in range(d):
                x[j] = simplex[i, j]
        elif phase == 1:
            for j in range(d):
                x[j] = centroid[j] + (centroid[j] - simplex[d, j])
        elif phase == 2:
            for j in range(d):
                x[j] = centroid[j] + 2.0 * (centroid[j] - simplex[d, j])
        elif phase == 3:
            for j in range(d):
                x[j] = centroid[j] + 0.5 * (xr[j] - centroid[j])
        else:
            for j in range(d):
                x[j] = centroid[j] + 0.5 * (simplex[d, j] - centroid[j])
        fx = _objective(x, r, backcast, mscale)
        accept = False
        if phase == 0 or phase == 4:
            f[i] = fx
            i += 1
            if i <= d:
                continue
        elif phase == 1:
            fr = fx
            for j in range(d):
                xr[j] = x[j]
            if fr < f[0]:
                phase = 2
                continue
            if fr < f[d - 1]:
                accept = True
            elif fr < f[d]:
                phase = 3
                continue
            else:
                phase = 5
                continue
        elif phase == 2:
            if fx < fr:
                accept = True
            else:
                for j in range(d):
                    x[j] = xr[j]
                fx = fr
                accept = True
        elif phase == 3:
            if fx <= fr:
                accept = True
            else:
                phase = 4
                i = 1
                continue
        else:
            if fx < f[d]:
                accept = True
            else:
                phase = 4
                i = 1
                continue
        if accept:
            for j in range(d):
                simplex[d, j] = x[j]
            f[d] = fx
        # A new iteration: order the vertices, test convergence, reflect the worst.
        it += 1
        for a in range(1, d + 1):  # insertion sort of the d + 1 vertices by f
            b = a
            while b > 0 and f[b] < f[b - 1]:
                f[b], f[b - 1] = f[b - 1], f[b]
                for m in range(d):
                    simplex[b, m], simplex[b - 1, m] = simplex[b - 1, m], simplex[b, m]
                b -= 1
        size = 0.0
        for a in range(1, d + 1):
            for j in range(d):
                size = max(size, abs(simplex[a, j] - simplex[0, j]))
        if it > max_iter or (size <= xtol and f[d] - f[0] <= ftol * (abs(f[0]) + 1e-300)):
            break
        for j in range(d):
            s = 0.0
            for a in range(d):
                s += simplex[a, j]
            centroid[j] = s / d
        phase = 1
    best = np.empty(d)
    for j in range(d):
        best[j] = simplex[0, j]
    return best, f[0]


@njit(cache=True)
def garch_fit(r: np.ndarray) -> tuple[float, float, float, float]:  # pragma: no cover - numba
    """Maximum-likelihood (ω, α, β) of a zero-mean Gaussian GARCH(1,1) on ``r``, and the NLL.

    Starts from the best point of a small grid (α ∈ {0.02, 0.05, 0.1, 0.2}, α+β ∈ {0.5, 0.8,
    0.9, 0.97, 0.99, 0.999}, ω = var·(1−α−β)), then Nelder–Mead, restarted until it stops
    improving (at most 8 runs).
    """
    _, omega, alpha, beta, nll = garch_estimate(r, False)
    return omega, alpha, beta, nll


@njit(cache=True)
def garch_fit_mean(r: np.ndarray) -> tuple[float, float, float, float, float]:
    # pragma: no cover - numba
    """Maximum-likelihood (μ, ω, α, β) of a constant-mean Gaussian GARCH(1,1) on ``r``
    (``r_t = μ + e_t``, arch's ``ConstantMean``), and the NLL.

    As arch: the backcast is taken from the residuals at the sample mean and held fixed while
    the likelihood is maximized; the search starts at μ = the sample mean, with the grid of
    :func:`garch_fit` on the demeaned returns, then Nelder–Mead over the four parameters.
    """
    return garch_estimate(r, True)


@njit(cache=True)
def garch_backcast_mean(r: np.ndarray, mu: float) -> float:  # pragma: no cover - numba
    """arch's backcast of the residuals ``r - mu``."""
    e = np.empty(r.shape[0])
    for i in range(r.shape[0]):
        e[i] = r[i] - mu
    return garch_backcast(e)


@njit(cache=True)
def garch_estimate(r: np.ndarray, constant: bool) -> tuple[float, float, float, float, float]:
    # pragma: no cover - numba
    """(μ, ω, α, β, NLL) of a Gaussian GARCH(1,1) on ``r``: μ = 0 unless ``constant``."""
    n = r.shape[0]
    mean = 0.0
    if constant and n > 0:
        for i in range(n):
            mean += r[i]
        mean = mean / n
    backcast = garch_backcast_mean(r, mean)
    var = 0.0
    for i in range(n):
        var += (r[i] - mean) * (r[i] - mean)
    var = var / n if n > 0 else 0.0
    if not var > 0.0:
        var = 1e-12
    mscale = math.sqrt(var)
    d = 4 if constant else 3
    best_u = np.zeros(d)
    best_f = np.inf
    u = np.empty(d)
    if constant:
        u[3] = mean / mscale
        best_u[3] = u[3]
    grid = np.empty((24, 2))  # (α, α+β) starting points
    for ia in range(4):
        for ip in range(6):
            grid[6 * ia + ip, 0] = (0.02, 0.05, 0.1, 0.2)[ia]
            grid[6 * ia + ip, 1] = (0.5, 0.8, 0.9, 0.97, 0.99, 0.999)[ip]
    # Trip counts known only at run time: LLVM would otherwise unroll these loops into one copy
    # of the inlined likelihood per iteration (minutes of compile time for nothing).
    n_grid = grid.shape[0] if n > 0 else 0
    restarts = 8 if n > 0 else 0
    for g in range(n_grid):
        a = grid[g, 0]
        p = grid[g, 1]
        u[0] = math.log(var * (1.0 - p))
        u[1] = math.log(p / (1.0 - p))
        frac = a / p
        u[2] = math.log(frac / (1.0 - frac))
        fu = _objective(u, r, backcast, mscale)
        if fu < best_f:
            best_f = fu
            for j in range(d):  # (a slice assignment here costs seconds of compile time)
                best_u[j] = u[j]
    for _ in range(restarts):
        u_new, f_new = _nelder_mead(best_u, 0.5, r, backcast, mscale, 5000, 1e-9, 1e-13)
        improved = best_f - f_new > 1e-10 * abs(best_f)
        if f_new <= best_f:
            best_u = u_new
            best_f = f_new
        if not improved:
            break
    omega, alpha, beta = _params(best_u)
    mu = best_u[3] * mscale if constant else 0.0
    return mu, omega, alpha, beta, best_f


@njit(cache=True)
def garch_batch(close: np.ndarray, scale: float, fit_window: int, refit: int, fixed: bool,
                omega: float, alpha: float, beta: float, factor: float, constant: bool,
                mu: float) -> np.ndarray:  # pragma: no cover - numba
    """One-step-ahead GARCH(1,1) σ of ``scale``·log returns, ÷ scale × factor; NaN in warm-up.
    ``constant``: residuals about a mean μ (fitted with the other parameters unless fixed)."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    rets = np.empty(max(n - 1, 0))
    s2 = 0.0
    if not constant:
        mu = 0.0
    for i in range(1, n):
        r = scale * math.log(close[i] / close[i - 1])
        k = i  # returns seen, this one included
        rets[k - 1] = r
        if k < fit_window:
            continue
        if k == fit_window or (not fixed and refit > 0 and (k - fit_window) % refit == 0):
            window = rets[k - fit_window:k]
            if not fixed:
                mu, omega, alpha, beta, _ = garch_estimate(window, constant)
            s2 = garch_filter_mean(window, mu, omega, alpha, beta,
                                   garch_backcast_mean(window, mu))
        else:
            e = r - mu
            s2 = omega + alpha * (e * e) + beta * s2
        out[i] = math.sqrt(s2) / scale * factor
    return out


@njit(cache=True)
def state_batch(vol: np.ndarray, low: float, high: float,
                hysteresis: float) -> np.ndarray:  # pragma: no cover - numba
    """0/1/2 (LOW/MEDIUM/HIGH) of ``vol`` with a hysteresis band; NaN where ``vol`` is NaN."""
    n = vol.shape[0]
    out = np.full(n, np.nan)
    state = -1
    for i in range(n):
        v = vol[i]
        if v != v:
            continue
        if state < 0:
            state = 0 if v < low else (1 if v < high else 2)
        else:
            if state == 0 and v >= low + hysteresis:
                state = 1
            if state == 1 and v >= high + hysteresis:
                state = 2
            if state == 2 and v < high - hysteresis:
                state = 1
            if state == 1 and v < low - hysteresis:
                state = 0
        out[i] = float(state)
    return out


@njit(cache=True)
def kalman_batch(close: np.ndarray, q_level: float, q_slope: float, p0_level: float,
                 p0_slope: float, warmup: int, slope: bool) -> np.ndarray:  # pragma: no cover
    """Filtered level (or slope) of the local linear trend model; NaN for ``warmup-1`` bars."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    lv = close[0]
    sl = 0.0
    p11 = p0_level
    p12 = 0.0
    p22 = p0_slope
    for i in range(n):
        y = close[i]
        if i > 0:  # predict: a = T a, P = T P T' + Q
            lv = lv + sl
            p11 = p11 + p12 + p12 + p22 + q_level
            p12 = p12 + p22
            p22 = p22 + q_slope
        f = p11 + 1.0  # innovation variance (measurement noise = 1)
        k1 = p11 / f
        k2 = p12 / f
        v = y - lv
        lv = lv + k1 * v
        sl = sl + k2 * v
        p22 = p22 - k2 * p12
        p12 = p12 - k1 * p12
        p11 = p11 - k1 * p11
        if i + 1 >= warmup:
            out[i] = sl if slope else lv
    return out
