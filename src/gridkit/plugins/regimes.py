"""Built-in regime rules: ``ranging``, ``trending``, ``volatile``, ``dormant`` (seeds 000/002 §2.4).

These four are score rules; the label rules ``garch-vol`` and ``markov`` live in
:mod:`gridkit.plugins.regime_models` and are registered here too.

Each rule turns features into a score in [0, 1]; the engine labels the event with the rule that
scores highest (ties go to the rule listed first). The seeds give the shape of the rules (trend
strength above 0.7 is trending, below 0.3 look at volatility; very low volume is dormant) but not
their inputs, so gridkit defines them on the slice of built-in features:

* trend strength ``t = |RSI − 50| / 50`` (0 flat, 1 one-way), from the ``rsi`` feature;
* relative volatility ``v = σ / EMA(σ)``: the ``volatility`` feature over its own slow EMA, so
  the rules need no per-timeframe threshold;
* relative volume ``u``: the ``volume-ratio`` feature.

``ramp(x, a, b)`` below is the linear ramp, 0 at ``a``, 1 at ``b``, clipped to [0, 1]; the rules
compute it inline, since a call per ramp would double their cost per bar.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gridkit.core.components import Regime
from gridkit.core.config import at_least, option
from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.regime_models import GarchVol, Markov
from gridkit.runtime.context import Context

NAN = float("nan")



class _RelativeVolatility:
    """σ over its EMA; O(1) per event. NaN until the volatility feature is ready."""

    __slots__ = ("alpha", "ema")

    def __init__(self, slow: int) -> None:
        self.alpha = 2.0 / (slow + 1.0)
        self.ema = NAN

    def update(self, sigma: float) -> float:
        """Feed one σ; return σ / EMA(σ), NaN while σ is NaN."""
        if sigma != sigma:
            return NAN
        ema = self.ema
        ema = sigma if ema != ema else ema + self.alpha * (sigma - ema)
        self.ema = ema
        return sigma / ema if ema > 0.0 else 1.0


class Trending(Regime):
    """TRENDING: ``score = ramp(t, start, full)`` on RSI trend strength ``t = |RSI−50|/50``."""

    name = "trending"
    label = "TRENDING"

    @frozen
    class Config:
        rsi: str = option("rsi", doc="Feature key of the RSI to read.")
        start: float = option(0.2, doc="Trend strength where the score starts rising (RSI 60/40).")
        full: float = option(0.4, doc="Trend strength of a full score (RSI 70/30).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.rsi,)
        self._rsi, self._start, self._span = c.rsi, c.start, c.full - c.start

    def score(self, ctx: Context) -> float:
        rsi = ctx.features[self._rsi]
        if rsi != rsi:
            return NAN
        t = (abs(rsi - 50.0) / 50.0 - self._start) / self._span  # ramp(t, start, full)
        return 0.0 if t < 0.0 else 1.0 if t > 1.0 else t


class Volatile(Regime):
    """VOLATILE: ``score = ramp(v, start, full)`` on relative volatility ``v = σ / EMA(σ)``."""

    name = "volatile"
    label = "VOLATILE"

    @frozen
    class Config:
        volatility: str = option("volatility", doc="Feature key of the volatility to read.")
        slow: int = option(500, doc="EMA span of the volatility baseline, in events.",
                           validator=at_least(2))
        start: float = option(1.2, doc="Relative volatility where the score starts rising.")
        full: float = option(2.0, doc="Relative volatility of a full score.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.volatility,)
        self.rel = _RelativeVolatility(c.slow)
        self._vol, self._start, self._span = c.volatility, c.start, c.full - c.start

    def score(self, ctx: Context) -> float:
        v = self.rel.update(ctx.features[self._vol])
        if v != v:
            return NAN
        t = (v - self._start) / self._span
        return 0.0 if t < 0.0 else 1.0 if t > 1.0 else t


class Ranging(Regime):
    """RANGING: ``score = (1 − ramp(t, 0, trend_full)) · (1 − ramp(v, 1, vol_full))``.

    High when RSI trend strength t is low and relative volatility v is not above normal.
    """

    name = "ranging"
    label = "RANGING"

    @frozen
    class Config:
        rsi: str = option("rsi", doc="Feature key of the RSI to read.")
        volatility: str = option("volatility", doc="Feature key of the volatility to read.")
        slow: int = option(500, doc="EMA span of the volatility baseline, in events.",
                           validator=at_least(2))
        trend_full: float = option(0.3, doc="Trend strength at which ranging scores 0 "
                                            "(seed: below 0.3 is not trending).")
        vol_full: float = option(2.0, doc="Relative volatility at which ranging scores 0.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.rsi, c.volatility)
        self.rel = _RelativeVolatility(c.slow)
        self._rsi, self._vol = c.rsi, c.volatility
        self._trend_full, self._vol_span = c.trend_full, c.vol_full - 1.0

    def score(self, ctx: Context) -> float:
        features = ctx.features
        v = self.rel.update(features[self._vol])
        rsi = features[self._rsi]
        if v != v or rsi != rsi:
            return NAN
        t = abs(rsi - 50.0) / 50.0 / self._trend_full  # ramp(t, 0, trend_full)
        u = (v - 1.0) / self._vol_span  # ramp(v, 1, vol_full)
        t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
        u = 0.0 if u < 0.0 else 1.0 if u > 1.0 else u
        return (1.0 - t) * (1.0 - u)


class Dormant(Regime):
    """DORMANT: ``score = min(ramp(u, volume_start, volume_full), ramp(v, vol_start, vol_full))``.

    High when relative volume u is far below normal (seed: volume ratio under 0.3 disables
    trading) and relative volatility v is low too.
    """

    name = "dormant"
    label = "DORMANT"

    @frozen
    class Config:
        volume: str = option("volume-ratio", doc="Feature key of the volume ratio to read.")
        volatility: str = option("volatility", doc="Feature key of the volatility to read.")
        slow: int = option(500, doc="EMA span of the volatility baseline, in events.",
                           validator=at_least(2))
        volume_start: float = option(0.5, doc="Volume ratio where the score starts rising.")
        volume_full: float = option(0.2, doc="Volume ratio of a full score.")
        vol_start: float = option(0.8, doc="Relative volatility where the score starts rising.")
        vol_full: float = option(0.5, doc="Relative volatility of a full score.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.volume, c.volatility)
        self.rel = _RelativeVolatility(c.slow)
        self._volume, self._vol = c.volume, c.volatility
        self._u0, self._u_span = c.volume_start, c.volume_full - c.volume_start
        self._v0, self._v_span = c.vol_start, c.vol_full - c.vol_start

    def score(self, ctx: Context) -> float:
        features = ctx.features
        v = self.rel.update(features[self._vol])
        u = features[self._volume]
        if v != v or u != u:
            return NAN
        a = (u - self._u0) / self._u_span  # ramp(u, volume_start, volume_full)
        b = (v - self._v0) / self._v_span  # ramp(v, vol_start, vol_full)
        a = 0.0 if a < 0.0 else 1.0 if a > 1.0 else a
        b = 0.0 if b < 0.0 else 1.0 if b > 1.0 else b
        return a if a < b else b


@hookimpl
def gridkit_register_regimes(register: Any) -> None:
    for cls in (Ranging, Trending, Volatile, Dormant, GarchVol, Markov):
        register(cls)


__all__ = ["Dormant", "Ranging", "Trending", "Volatile"]
