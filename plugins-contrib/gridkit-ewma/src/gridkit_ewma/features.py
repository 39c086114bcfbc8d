"""The ``ewma-volatility`` feature and the EWMA drop-in for the built-in ``volatility``.

Both run one recurrence, RiskMetrics' exponentially weighted variance of log returns
(J.P. Morgan/Reuters, *RiskMetrics — Technical Document*, 4th ed., 1996, §5.2):

    r_t = ln(c_t / c_{t-1})
    σ²_t = λ·σ²_{t-1} + (1 − λ)·r_t²

seeded with the mean of the first ``warmup`` squared returns. They differ only in how the user
picks λ: directly (``ewma-volatility``), or as a span ``period`` like the rolling-window feature it
replaces (``volatility``, λ = 1 − 2/(period + 1)).

Streaming state is plain Python (one O(1) update per bar); the batch path is the numba kernel in
:mod:`gridkit_ewma.kernels`, imported only inside :meth:`EwmaVolatility.batch` so that loading
the plugin stays as cheap as importing the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import Attribute, frozen
from gridkit import Bar, Feature, OptionError, at_least, option

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")


def _inside_unit_interval(_instance: Any, attribute: Attribute, value: float) -> None:
    """Config validator: 0 < value < 1.

    λ = 1 would never let a new return in and λ = 0 would forget everything but the last one;
    OptionError makes the message name the option (``features[0].lam: must be in (0, 1)``).
    """
    if not 0.0 < value < 1.0:  # also refuses NaN
        raise OptionError(attribute.name, f"must be in (0, 1), got {value!r}")


class EwmaVolatility(Feature):
    """RiskMetrics EWMA volatility of log returns, per bar (J.P. Morgan/Reuters 1996, §5.2).

    σ²_t = λ·σ²_{t-1} + (1 − λ)·r_t² with r_t = ln(close_t / close_{t-1}), seeded with the mean
    of the first ``warmup`` squared returns. NaN until ``warmup`` returns have been seen (the
    ``warmup + 1``-th bar); σ after that. Not annualized: multiply by sqrt(bars per year).
    Closes must be positive, which the default ``price`` validator guarantees.
    """

    name = "ewma-volatility"

    @frozen
    class Config:
        lam: float = option(0.94, doc="Decay factor λ, 0 < λ < 1; RiskMetrics uses 0.94 for "
                                      "daily data. Higher is smoother and slower.",
                            validator=_inside_unit_interval)
        warmup: int = option(20, doc="Returns averaged to seed σ²; NaN until then.",
                             validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.lam, self.warmup = self.decay()
        self.keep = 1.0 - self.lam  # 1 − λ, computed once here and once in the kernel, alike
        self.prev = NAN
        self.count = 0  # returns seen
        self.sum_sq = 0.0  # Σr² over the warm-up, then unused
        self.var = NAN
        self.ready = False

    def decay(self) -> tuple[float, int]:
        """(λ, warm-up length) from the Config; the drop-in derives them from ``period``."""
        return self.config.lam, self.config.warmup

    def update(self, bar: Bar) -> float:
        close, prev = bar.close, self.prev
        self.prev = close
        if prev != prev:  # first bar: no return yet
            return NAN
        r = math.log(close / prev)
        self.count += 1
        # Every float operation below is written exactly as in kernels.ewma_volatility_batch,
        # in the same order: that is what makes streaming and batch agree bit for bit.
        if self.count < self.warmup:
            self.sum_sq = self.sum_sq + r * r
            return NAN
        if self.count == self.warmup:
            self.sum_sq = self.sum_sq + r * r
            self.var = self.sum_sq / self.warmup
            self.ready = True
        else:
            self.var = self.lam * self.var + self.keep * (r * r)
        return math.sqrt(self.var)

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        # Heavy imports here, not at module level: `gridkit --help` must not pay for numba.
        import numpy as np

        from gridkit_ewma.kernels import ewma_volatility_batch

        return ewma_volatility_batch(np.ascontiguousarray(columns["close"], dtype=np.float64),
                                     self.lam, self.warmup)

    def stats(self) -> dict[str, Any]:
        """λ, returns seen and the last σ: shows in the run summary which estimator ran."""
        sigma = math.sqrt(self.var) if self.ready else None  # None, not NaN: summaries are JSON
        return {"estimator": "ewma", "lam": self.lam, "returns": self.count, "last": sigma}


class EwmaVolatilityDropIn(EwmaVolatility):
    """EWMA volatility of log returns, a drop-in for the built-in (λ = 1 − 2/(period + 1)).

    A drop-in for gridkit's rolling-window ``volatility``: the same option ``period`` = n, read
    as an EWMA span (λ = 1 − 2/(n + 1): the same centre of mass as an n-bar window) and as the
    warm-up length, so a pipeline that says ``use = "volatility"`` keeps working and the regime
    rules that read it get an estimate that reacts at once to a shock and fades smoothly,
    instead of jumping when the shock leaves the window.
    """

    name = "volatility"

    @frozen
    class Config:
        period: int = option(20, doc="EWMA span n: λ = 1 − 2/(n+1); also the warm-up length.",
                             validator=at_least(2))

    def decay(self) -> tuple[float, int]:
        period = self.config.period
        return 1.0 - 2.0 / (period + 1), period
