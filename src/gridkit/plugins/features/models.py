"""Model-based bar features: ``garch``, ``volatility-state`` and ``kalman``.

The streaming state is plain Python (O(1) per bar); the batch math and the GARCH
maximum-likelihood fit live in :mod:`gridkit.plugins.features.kernels_models` (numba, imported
only when a fit or a batch runs). Streaming and batch use the same float operations in the same
order, and the same fit function on the same window, so they agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from gridkit.core.components import Feature
from gridkit.core.config import (
    OptionError,
    at_least,
    non_negative,
    option,
    optional,
    positive,
)
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar
from gridkit.plugins.features.volatility import Volatility

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


class Garch(Feature):
    """GARCH(1,1) one-step-ahead volatility forecast of the log returns (per bar or annualized).

    Model (Bollerslev 1986, *J. Econometrics* 31:307–327), Gaussian:
    ``r_t = scale * ln(close_t / close_(t-1))``, ``r_t = mu + e_t``, ``e_t = sigma_t * z_t``
    with ``sigma2_t = omega + alpha * e_(t-1)^2 + beta * sigma2_(t-1)``. ``mean = "zero"``
    (default) fixes ``mu = 0`` (arch's ``ZeroMean``); ``mean = "constant"`` estimates ``mu``
    with the other parameters (arch's ``ConstantMean``, ``arch_model(r, mean="Constant")``).
    After the bar that brings ``r_t`` the feature returns ``sqrt(sigma2_(t+1)) / scale``
    (times ``sqrt(bars_per_year)`` when ``annualize``): the forecast of the next bar's return
    volatility, as ``arch``'s ``forecast(horizon=1)``. The mean forecast is ``mu``
    (``stats()``).

    Warm-up: the first ``fit_window`` returns. Then, unless the parameters are all given
    (``omega``, ``alpha``, ``beta``, and ``mu`` with the constant mean), they are estimated by
    maximum likelihood on that window (Gaussian log-likelihood
    ``-1/2 * sum(ln 2pi + ln sigma2_t + e_t^2 / sigma2_t)``, Nelder–Mead on ``omega > 0``,
    ``alpha, beta >= 0``, ``alpha + beta < 1``, ``mu`` free) and frozen. As in arch, the
    likelihood's recursion starts from the backcast ``sigma2_0 = omega + (alpha + beta) * b``
    with ``b`` the ``0.94^i``-weighted mean of the first min(75, n) squared residuals
    (Sheppard, *arch*), the residuals taken at the sample mean during the fit (held fixed
    while it runs) and at the fitted ``mu`` for the forecast; the recursion runs over the
    window once, and after that each bar costs O(1). With ``refit = m > 0`` the parameters
    are re-estimated on the last ``fit_window`` returns every ``m`` bars and the window is
    re-filtered: O(``fit_window`` × optimizer iterations) once every ``m`` bars, i.e.
    O(``fit_window`` / ``m``) amortized per bar (plus the fit's iteration count).
    Returns are multiplied by ``scale`` (100, as arch recommends) so the optimizer works on
    numbers near 1; the output is in the original units.
    """

    name = "garch"

    @frozen
    class Config:
        fit_window: int = option(
            2000, doc="Returns in the warm-up: the likelihood window and the recursion's start.",
            validator=at_least(100))
        refit: int = option(
            0, doc="Re-estimate on the last fit_window returns every this many bars (0: never; "
                   "costs O(fit_window) per refit).", validator=non_negative())
        mean: Literal["zero", "constant"] = option(
            "zero", doc="Mean of the returns: ``zero``, or a ``constant`` μ estimated with the "
                        "other parameters (arch's ConstantMean).")
        omega: float | None = option(
            None, doc="Fixed ω, in (scale·return)² units; give omega, alpha and beta together "
                      "(and mu with the constant mean) to skip estimation.",
            validator=optional(positive()))
        alpha: float | None = option(None, doc="Fixed α (ARCH term), with omega and beta.",
                                     validator=optional(non_negative()))
        beta: float | None = option(None, doc="Fixed β (GARCH term), with omega and alpha.",
                                    validator=optional(non_negative()))
        mu: float | None = option(None, doc="Fixed μ, in scale·return units (mean = "
                                            "'constant', with omega, alpha and beta).")
        scale: float = option(100.0, doc="Returns are multiplied by this before the model "
                                         "(arch's advice: percent returns).",
                              validator=positive())
        annualize: bool = option(False, doc="Output σ·sqrt(bars_per_year) instead of per bar.")
        bars_per_year: float = option(
            525600.0, doc="Bars per year for annualize (1m bars, 24/7: 525600; 5m: 105120).",
            validator=positive())

        def __attrs_post_init__(self) -> None:
            given = [v is not None for v in (self.omega, self.alpha, self.beta)]
            if any(given) and not all(given):
                raise OptionError("omega", "give omega, alpha and beta together, or none")
            if all(given) and self.alpha + self.beta >= 1.0:  # type: ignore[operator]
                raise OptionError("beta", f"alpha + beta must be < 1 (stationary), got "
                                          f"{self.alpha} + {self.beta}")
            if self.mu is not None:
                if self.mean != "constant":
                    raise OptionError("mu", "a fixed mu needs mean = 'constant'")
                if not all(given):
                    raise OptionError("mu", "give mu with omega, alpha and beta, or none")
                if not math.isfinite(self.mu):
                    raise OptionError("mu", f"must be finite, got {self.mu!r}")
            elif all(given) and self.mean == "constant":
                raise OptionError("mu", "mean = 'constant' with fixed omega, alpha and beta "
                                        "needs mu too")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.fixed = c.omega is not None
        self.constant = c.mean == "constant"
        self.omega = c.omega if self.fixed else NAN
        self.alpha = c.alpha if self.fixed else NAN
        self.beta = c.beta if self.fixed else NAN
        self.mu = c.mu if self.fixed and self.constant else (NAN if self.constant else 0.0)
        self.factor = math.sqrt(c.bars_per_year) if c.annualize else 1.0
        self._window = c.fit_window
        self._refit = c.refit if not self.fixed else 0
        self._scale = c.scale
        self.ring = [0.0] * c.fit_window  # last fit_window returns
        self.slot = 0
        self.k = 0  # returns seen
        self.prev = NAN
        self.s2 = NAN  # variance forecast for the next return
        self.fits = 0
        self.ready = False

    def _fit(self) -> None:
        import numpy as np

        from gridkit.plugins.features.kernels_models import (
            garch_backcast_mean,
            garch_estimate,
            garch_filter_mean,
        )

        slot = self.slot
        window = np.array(self.ring[slot:] + self.ring[:slot])
        if not self.fixed:
            self.mu, self.omega, self.alpha, self.beta, _ = garch_estimate(window,
                                                                            self.constant)
            self.fits += 1
        self.s2 = garch_filter_mean(window, self.mu, self.omega, self.alpha, self.beta,
                                    garch_backcast_mean(window, self.mu))

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_models.garch_batch.
        close, prev = bar.close, self.prev
        self.prev = close
        if prev != prev:
            return NAN
        r = self._scale * math.log(close / prev)
        self.ring[self.slot] = r
        self.slot = (self.slot + 1) % self._window
        self.k = k = self.k + 1
        if k < self._window:
            return NAN
        if k == self._window or (self._refit > 0 and (k - self._window) % self._refit == 0):
            self._fit()
            self.ready = True
        else:
            e = r - self.mu
            self.s2 = self.omega + self.alpha * (e * e) + self.beta * self.s2
        return math.sqrt(self.s2) / self._scale * self.factor

    def stats(self) -> dict[str, Any]:
        out = {"omega": self.omega, "alpha": self.alpha, "beta": self.beta, "fits": self.fits}
        if self.constant:
            out["mu"] = self.mu
        return out

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels_models import garch_batch

        c = self.config
        return garch_batch(np.ascontiguousarray(columns["close"], dtype=np.float64), c.scale,
                           c.fit_window, self._refit, self.fixed,
                           c.omega if self.fixed else 0.0, c.alpha if self.fixed else 0.0,
                           c.beta if self.fixed else 0.0, self.factor, self.constant,
                           float(c.mu) if c.mu is not None else 0.0)


class VolatilityState(Feature):
    """Volatility regime of the bar: 0 = LOW, 1 = MEDIUM, 2 = HIGH (annualized σ thresholds).

    ``v`` is the annualized volatility ``sigma * sqrt(bars_per_year)``, with ``sigma`` the
    per-bar volatility of log returns from ``estimator``: ``"rolling"`` (the sample standard
    deviation of the last ``period`` returns, as the ``volatility`` feature) or ``"garch"``
    (the GARCH(1,1) one-step forecast of the ``garch`` feature, estimated on the first
    ``fit_window`` returns). Classes follow the GARCH regime table of the seed architecture
    (LOW below 30 %, MEDIUM 30–45 %, HIGH above 45 %): the first value is LOW if
    ``v < low``, MEDIUM if ``low <= v < high``, else HIGH. After that, with band
    ``h = hysteresis``, the state moves up across a threshold ``c`` only when ``v >= c + h`` and
    down only when ``v < c - h`` (a Schmitt trigger), so a vol hovering at a threshold does not
    flap; ``h = 0`` is plain thresholding. O(1) per bar; NaN while the estimator warms up.
    """

    name = "volatility-state"

    @frozen
    class Config:
        estimator: Literal["rolling", "garch"] = option(
            "rolling", doc="Per-bar σ: 'rolling' standard deviation or 'garch' forecast.")
        period: int = option(60, doc="Returns in the rolling window (estimator = 'rolling').",
                             validator=at_least(2))
        fit_window: int = option(2000, doc="GARCH estimation window (estimator = 'garch').",
                                 validator=at_least(100))
        bars_per_year: float = option(
            525600.0, doc="Bars per year to annualize σ (1m bars, 24/7: 525600; 5m: 105120).",
            validator=positive())
        low: float = option(0.30, doc="Annualized σ (fraction) where MEDIUM starts.",
                            validator=positive())
        high: float = option(0.45, doc="Annualized σ (fraction) where HIGH starts.",
                             validator=positive())
        hysteresis: float = option(0.0, doc="Half-width of the band around each threshold, in "
                                            "annualized σ (0: none).", validator=non_negative())

        def __attrs_post_init__(self) -> None:
            if self.low >= self.high:
                raise OptionError("low", f"must be below high ({self.low} >= {self.high})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.inner: Feature
        if c.estimator == "garch":
            self.inner = Garch(Garch.Config(fit_window=c.fit_window))
        else:
            self.inner = Volatility(Volatility.Config(period=c.period))
        self.factor = math.sqrt(c.bars_per_year)
        self.state = -1
        self.ready = False

    def update(self, bar: Bar) -> float:
        # Same comparisons, in the same order, as kernels_models.state_batch.
        sigma = self.inner.update(bar)
        if sigma != sigma:
            return NAN
        v = sigma * self.factor
        c = self.config
        state = self.state
        if state < 0:
            state = 0 if v < c.low else (1 if v < c.high else 2)
            self.ready = True
        else:
            h = c.hysteresis
            if state == 0 and v >= c.low + h:
                state = 1
            if state == 1 and v >= c.high + h:
                state = 2
            if state == 2 and v < c.high - h:
                state = 1
            if state == 1 and v < c.low - h:
                state = 0
        self.state = state
        return float(state)

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_models import state_batch

        c = self.config
        vol = self.inner.batch(columns) * self.factor
        return state_batch(vol, c.low, c.high, c.hysteresis)


class Kalman(Feature):
    """Kalman-filtered level (or slope) of the close under a local linear trend model.

    State-space model (Harvey 1989, *Forecasting, Structural Time Series Models and the Kalman
    Filter*, ch. 2-3; Durbin & Koopman 2012, *Time Series Analysis by State Space Methods*,
    2nd ed., §3.2 and ch. 4): ``y_t = mu_t + eps_t``, ``mu_(t+1) = mu_t + nu_t + xi_t``,
    ``nu_(t+1) = nu_t + zeta_t`` with ``eps ~ N(0, 1)``, ``xi ~ N(0, level_noise)``,
    ``zeta ~ N(0, slope_noise)``. Every variance is in units of the measurement-noise variance:
    the filtered state depends only on these ratios (Harvey's signal-to-noise ratios ``q``), so
    the options do not depend on the price's scale. ``slope_noise = 0`` with
    ``initial_slope_var = 0`` gives the local-level (random walk plus noise) model.

    Filter, per close ``y_t`` (the first bar skips the prediction): predict
    ``a = T a``, ``P = T P T' + Q`` with ``T = [[1, 1], [0, 1]]``, ``Q = diag(level_noise,
    slope_noise)``; update ``F = P11 + 1``, ``K = P[:, 0] / F``, ``a = a + K (y_t - a_1)``,
    ``P = P - K F K'``. The prior is ``a = (y_0, 0)``, ``P = diag(initial_level_var,
    initial_slope_var)`` (a large variance approximates a diffuse prior). Output: the filtered
    level ``a_1`` (price units) or slope ``a_2`` (price per bar), NaN for the first
    ``warmup - 1`` bars. O(1) per bar; agrees with ``pykalman.KalmanFilter.filter``.
    """

    name = "kalman"

    @frozen
    class Config:
        level_noise: float = option(0.01, doc="Level noise variance over measurement noise "
                                              "(more: follows the close faster).",
                                    validator=non_negative())
        slope_noise: float = option(1e-4, doc="Slope noise variance over measurement noise.",
                                    validator=non_negative())
        initial_level_var: float = option(1e6, doc="Prior variance of the level (in "
                                                   "measurement-noise units).",
                                          validator=non_negative())
        initial_slope_var: float = option(1e6, doc="Prior variance of the slope (in "
                                                   "measurement-noise units).",
                                          validator=non_negative())
        output: Literal["level", "slope"] = option("level", doc="Which filtered state to output.")
        warmup: int = option(20, doc="Bars before the first value (the filter settles).",
                             validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.ql = c.level_noise
        self.qs = c.slope_noise
        self.slope_out = c.output == "slope"
        self.level = NAN
        self.slope = 0.0
        self.p11 = c.initial_level_var
        self.p12 = 0.0
        self.p22 = c.initial_slope_var
        self.n = 0
        self.ready = False

    def update(self, bar: Bar) -> float:
        # Same float operations, in the same order, as kernels_models.kalman_batch.
        y = bar.close
        n = self.n
        if n == 0:
            lv = y
            sl = self.slope
            p11, p12, p22 = self.p11, self.p12, self.p22
        else:
            lv = self.level + self.slope
            sl = self.slope
            p11 = self.p11 + self.p12 + self.p12 + self.p22 + self.ql
            p12 = self.p12 + self.p22
            p22 = self.p22 + self.qs
        f = p11 + 1.0
        k1 = p11 / f
        k2 = p12 / f
        v = y - lv
        self.level = lv + k1 * v
        self.slope = sl + k2 * v
        self.p22 = p22 - k2 * p12
        self.p12 = p12 - k1 * p12
        self.p11 = p11 - k1 * p11
        self.n = n = n + 1
        if n < self.config.warmup:
            return NAN
        self.ready = True
        return self.slope if self.slope_out else self.level

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels_models import kalman_batch

        c = self.config
        return kalman_batch(np.ascontiguousarray(columns["close"], dtype=np.float64), self.ql,
                            self.qs, c.initial_level_var, c.initial_slope_var, c.warmup,
                            self.slope_out)


@hookimpl
def gridkit_register_features(register: Any) -> None:
    for cls in (Garch, VolatilityState, Kalman):
        register(cls)
