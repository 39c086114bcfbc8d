"""Built-in regime rules: ``ranging``, ``trending``, ``volatile``, ``dormant`` (seeds 000/002 §2.4).

Each rule turns features into a score in [0, 1]; the engine labels the event with the rule that
scores highest (ties go to the rule listed first). The seeds give the shape of the rules (trend
strength above 0.7 is trending, below 0.3 look at volatility; very low volume is dormant) but not
their inputs, so gridkit defines them on the slice of built-in features:

* trend strength ``t = |RSI − 50| / 50`` (0 flat, 1 one-way), from the ``rsi`` feature;
* relative volatility ``v = σ / EMA(σ)``: the ``volatility`` feature over its own slow EMA, so
  the rules need no per-timeframe threshold;
* relative volume ``u``: the ``volume-ratio`` feature.

``ramp(x, a, b)`` below is the linear ramp, 0 at ``a``, 1 at ``b``, clipped to [0, 1].
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gridkit.core.components import Regime
from gridkit.core.config import at_least, option
from gridkit.core.context import Context
from gridkit.core.hookspecs import hookimpl

NAN = float("nan")


def ramp(x: float, a: float, b: float) -> float:
    """0 at ``a``, 1 at ``b``, linear between, clipped to [0, 1] (either direction)."""
    t = (x - a) / (b - a)
    return 0.0 if t < 0.0 else 1.0 if t > 1.0 else t


class _RelativeVolatility:
    """σ over its EMA; O(1) per event. NaN until the volatility feature is ready."""

    __slots__ = ("alpha", "ema")

    def __init__(self, slow: int) -> None:
        self.alpha = 2.0 / (slow + 1.0)
        self.ema = NAN

    def update(self, sigma: float) -> float:
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
        self.requires_features = (self.config.rsi,)

    def score(self, ctx: Context) -> float:
        rsi = ctx.features[self.config.rsi]
        if rsi != rsi:
            return NAN
        return ramp(abs(rsi - 50.0) / 50.0, self.config.start, self.config.full)


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
        self.requires_features = (self.config.volatility,)
        self.rel = _RelativeVolatility(self.config.slow)

    def score(self, ctx: Context) -> float:
        v = self.rel.update(ctx.features[self.config.volatility])
        return NAN if v != v else ramp(v, self.config.start, self.config.full)


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
        self.requires_features = (self.config.rsi, self.config.volatility)
        self.rel = _RelativeVolatility(self.config.slow)

    def score(self, ctx: Context) -> float:
        c = self.config
        v = self.rel.update(ctx.features[c.volatility])
        rsi = ctx.features[c.rsi]
        if v != v or rsi != rsi:
            return NAN
        t = abs(rsi - 50.0) / 50.0
        return (1.0 - ramp(t, 0.0, c.trend_full)) * (1.0 - ramp(v, 1.0, c.vol_full))


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
        self.requires_features = (self.config.volume, self.config.volatility)
        self.rel = _RelativeVolatility(self.config.slow)

    def score(self, ctx: Context) -> float:
        c = self.config
        v = self.rel.update(ctx.features[c.volatility])
        u = ctx.features[c.volume]
        if v != v or u != u:
            return NAN
        return min(ramp(u, c.volume_start, c.volume_full), ramp(v, c.vol_start, c.vol_full))


@hookimpl
def gridkit_register_regimes(register: Any) -> None:
    for cls in (Ranging, Trending, Volatile, Dormant):
        register(cls)


__all__ = ["Dormant", "Ranging", "Trending", "Volatile", "ramp"]
