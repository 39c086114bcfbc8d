"""Attention modules of seeds 000 §2.3 / §4.2 and 002 §3.3: ``feature-attention``,
``temporal-attention`` and ``regime-attention``.

Each module computes its proposal on every accepted bar with O(1) work per feature, horizon or
regime (no history is kept, only exponentially weighted moments) and writes it into the context
as if active: :attr:`gridkit.Context.weights` (feature and horizon weights) or
:attr:`gridkit.Context.adjust` (per-regime multipliers). Its own ``phase`` is ``"active"``. The
``progressive`` phase controller, listed after them in ``[[attention]]``, decides what of it the
later stages see (nothing while learning or in shadow, at most ``max_influence`` when active);
it reads each module's :meth:`proposal`. Every module learns once per accepted bar: on other
events (trades, quotes, when ``[pipeline] decide_on`` names them) it writes its proposal again
and learns nothing, so a bar is never counted twice.

Shared notation. A halflife of *H* bars gives the smoothing factor α = 1 − 2^(−1/H). An
exponentially weighted (EW) mean and variance start at the first sample (m = x, v = 0) and
follow ``d = x − m; m += α·d; v = (1 − α)·(v + α·d²)`` — the weighted mean and (population)
variance of every sample so far under weights α(1 − α)^age (the first sample keeps the remaining
(1 − α)^(n−1)); an EW covariance follows ``c = (1 − α)·(c + α·dx·dy)``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from attrs import frozen

from gridkit.core.components import Attention
from gridkit.core.config import OptionError, at_least, fraction, non_negative, option, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.runtime.context import Context

_INF = math.inf


def _unit(x: float) -> float:
    """``x`` clamped to [0, 1]; NaN (an overflowed statistic) counts as 0."""
    return 1.0 if x > 1.0 else x if x > 0.0 else 0.0


_KERNELS: Any = None


def _kernels() -> Any:
    """The numba kernels (imported on first use: numba is slow to import)."""
    global _KERNELS
    if _KERNELS is None:
        from gridkit.plugins import attention_kernels

        _KERNELS = attention_kernels
    return _KERNELS


def _alpha(halflife: float) -> float:
    """The EW smoothing factor of a halflife in bars."""
    return 1.0 - 2.0 ** (-1.0 / halflife)


# --- feature-attention ---------------------------------------------------------------------------


class FeatureAttention(Attention):
    """Weighs each feature by its variance, its correlation with profit and its speed (seed 000).

    Seed 000 §4.2 combines three scores per feature *f*::

        raw_f = a·variance_f + b·|correlation_f| + c·speed_f      (a, b, c = 0.4, 0.4, 0.2)

    and normalizes. Here every score is scale-free, in [0, 1]:

    * **variance score** ``min(1, V(Δx) / (2·V(x)))``: V(Δx) is the EW variance of the feature's
      bar-to-bar changes, V(x) the EW variance of its values, both over ``halflife`` bars — the
      EW variance of the changes standardized by the feature's own spread. It equals 1 − ρ₁ (ρ₁
      the lag-one autocorrelation) for a stationary feature: 0 for a feature that is constant or
      only drifts (no new information per bar), 1 for one whose every value is new. Unlike the
      coefficient of variation it depends on neither the feature's unit nor its origin (RSI
      centred at 50, price-change at 0: CV is meaningless for features whose mean is near 0).
      A feature with V(x) = 0 scores 0.
    * **correlation score** ``|ρ(x_t, r_{t+1})|``: the EW correlation (same halflife) between the
      feature's value at bar *t* and the account's equity return from *t* to *t + 1*,
      ``r = E_{t+1} / E_t − 1`` (``ctx.portfolio.equity``, marked at each bar's close before
      attention runs). 0 while either side has no variance (no position yet: flat equity).
    * **speed score** ``min_g cost_g / cost_f``: the feature's mean update time from
      ``ctx.feature_cost`` (the engine times each bar feature on one accepted bar in 4096)
      against the cheapest feature's; 1 for the cheapest, and 1 for a feature with no sample
      yet (or a cost of 0). Seed 000 uses 1 / extraction time, which is not in [0, 1].

    **Weights** ``w_f = raw_f · n / Σ_g raw_g`` over the *n* ready features (those with at
    least two finite values), so they average 1: ``ctx.weights`` means "empty = every feature
    weighs 1", and a mean of 1 keeps that meaning; the seed's weights summing to 1 rank the
    features the same (they are these divided by *n*). While every raw score is 0 all ready
    features weigh 1. Features that are not ready get no key (they weigh 1).

    **Bad values**: a NaN or infinite feature value is skipped — the feature's statistics do not
    move, the next finite value's change is taken from the last finite one, and the correlation
    pairs a return only with a finite previous value; a non-finite equity is skipped likewise.
    Writes ``ctx.weights[key]`` for each ready feature key; :meth:`stats` has each weight and its
    three scores.
    """

    name = "feature-attention"
    phase = "active"

    @frozen
    class Config:
        variance: float = option(0.4, doc="Coefficient a of the variance score (seed 000: 0.4).",
                                 validator=non_negative())
        correlation: float = option(0.4, doc="Coefficient b of the absolute correlation with "
                                             "profit (seed 000: 0.4).", validator=non_negative())
        speed: float = option(0.2, doc="Coefficient c of the extraction-speed score "
                                       "(seed 000: 0.2).", validator=non_negative())
        halflife: float = option(500.0, doc="Halflife in bars of the EW variances and "
                                            "correlation.", validator=at_least(1))
        refresh: int = option(16, doc="Bars between two computations of the normalized "
                                      "weights (the statistics learn on every bar; at a "
                                      "halflife of hundreds of bars the weights barely move "
                                      "in between).", validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if not self.variance + self.correlation + self.speed > 0:
                raise OptionError("speed", "variance + correlation + speed must be > 0, got 0")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.phase = "active"
        self._alpha = _alpha(self.config.halflife)
        self._index = -1
        self._equity = math.nan  # equity at the last bar learned from
        self._keys: tuple[str, ...] = ()  # the features, in ctx.features order
        #: A row of EW statistics per feature of _keys (columns: attention_kernels.COLUMNS).
        self._stats = _kernels().new_rows(0)
        self._proposal: dict[str, float] = {}
        self._scores: dict[str, tuple[float, float, float]] = {}

    def observe(self, ctx: Context) -> None:
        if ctx.index != self._index:
            self._index = ctx.index
            self._learn(ctx)
            if not ctx.index % self.config.refresh or not self._proposal:
                self._propose(ctx.feature_cost)
        ctx.weights.update(self._proposal)

    def _learn(self, ctx: Context) -> None:
        equity = ctx.portfolio.equity
        prev_eq, self._equity = self._equity, equity
        r = equity / prev_eq - 1.0 if prev_eq > 0 else math.nan
        if not -_INF < r < _INF:
            r = math.nan
        features = ctx.features
        if tuple(features) != self._keys:
            self._rekey(features)
        # (the recurrence is a numba kernel: per bar it costs a sixth of the same loop in Python)
        x = np.fromiter(features.values(), np.float64, len(self._keys))
        (_KERNELS or _kernels()).feature_learn(self._stats, x, r, self._alpha)

    def _rekey(self, features: dict[str, float]) -> None:
        """Rows for a new set of feature keys: known features keep their statistics."""
        old = dict(zip(self._keys, self._stats, strict=True))
        self._keys = tuple(features)
        stats = _kernels().new_rows(len(self._keys))
        for i, key in enumerate(self._keys):
            if key in old:
                stats[i] = old[key]
        self._stats = stats

    def _propose(self, cost: dict[str, float]) -> None:
        c = self.config
        ready = [(k, s) for k, s in zip(self._keys, self._stats.tolist(), strict=True)
                 if s[0] >= 2.0]
        if not ready:
            return
        cheapest = min((cost[k] for k, _ in ready if cost.get(k, 0.0) > 0.0), default=0.0)
        scores = {}
        for key, s in ready:
            var_score = _unit(s[6] / (2.0 * s[4])) if s[4] > 0.0 else 0.0
            vv = s[9] * s[10]
            corr = _unit(abs(s[11]) / math.sqrt(vv)) if vv > 0.0 else 0.0
            took = cost.get(key, 0.0)
            speed = cheapest / took if took > cheapest > 0.0 else 1.0
            scores[key] = (var_score, corr, speed)
        raw = {k: c.variance * v + c.correlation * r + c.speed * sp
               for k, (v, r, sp) in scores.items()}
        total = sum(raw.values())
        if total > 0.0 and total < _INF:
            scale = len(raw) / total
            self._proposal = {k: v * scale for k, v in raw.items()}
        else:
            self._proposal = dict.fromkeys(raw, 1.0)
        self._scores = scores

    def proposal(self) -> dict[str, float]:
        """The current weights by feature key (ready features only; mean 1)."""
        return dict(self._proposal)

    def stats(self) -> dict[str, Any]:
        rows = dict(zip(self._keys, self._stats.tolist(), strict=True))
        return {"phase": self.phase, "bars": self._index + 1, "features": {
            key: {"weight": self._proposal[key], "variance_score": v, "correlation": r,
                  "speed_score": sp, "values": int(rows[key][0]), "pairs": int(rows[key][12])}
            for key, (v, r, sp) in self._scores.items()}}


# --- temporal-attention --------------------------------------------------------------------------


def _increasing(_instance: Any, attribute: Any, value: Any) -> None:
    if not value:
        raise OptionError(attribute.name, "must list at least one horizon")
    if any(h < 1 for h in value):
        raise OptionError(attribute.name, f"horizons must be >= 1 bar, got {list(value)}")
    if any(b <= a for a, b in itertools.pairwise(value)):
        raise OptionError(attribute.name, f"must be strictly increasing, got {list(value)}")


def _simplex(_instance: Any, attribute: Any, value: Any) -> None:
    if any(not (0.0 < w < _INF) for w in value):
        raise OptionError(attribute.name, f"every weight must be a finite number > 0, "
                                          f"got {list(value)}")
    if abs(sum(value) - 1.0) > 1e-9:
        raise OptionError(attribute.name, f"must sum to 1, got {list(value)} "
                                          f"(sum {sum(value):g})")


class TemporalAttention(Attention):
    """Weighs short, medium and long horizons by how well each predicts the next bar (seed 000).

    Seed 000 §2.3.2 weighs the last 20 / 100 / 500 ticks 0.5 / 0.3 / 0.2; here those are the
    starting weights, learned from data. For each horizon *h* (``horizons``, in bars):

    * **predictor**: ``p_h = sign(close_t / EMA_h(close)_t − 1)`` — the price above its *h*-bar
      EMA (α = 2 / (h + 1), started at the first close) predicts a rise of the next bar; made
      once *h* closes have been seen.
    * **outcome**: ``o = sign(close_{t+1} / close_t − 1)``; a hit is ``p_h = o``. A bar where
      either is 0 (no move, or the close on its EMA) is not scored.
    * **evidence** ``e_h = |2·hit_h − 1|``, hit_h the EW hit rate over ``halflife`` scored bars
      (started at the first score): the absolute correlation of the ±1 prediction with the ±1
      outcome. A horizon that is reliably wrong (short horizons mean-revert on 1m bars) is as
      informative as one reliably right, so only the distance from a coin's 0.5 counts.

    **Weights** move, on every bar once every horizon has been scored, toward the normalized
    evidence at ``rate``: ``w_h ← (1 − rate)·w_h + rate·e_h / Σ_g e_g`` (unchanged while
    every e is 0), then divided by their sum against rounding: a convex combination of two
    points of the simplex, so the weights stay > 0 and sum to 1. They start at ``start``.

    Writes ``ctx.weights["horizon:20"]``, ``ctx.weights["horizon:100"]``, ... (key
    ``"horizon:<h>"`` per horizon, written from the first bar). A non-finite or non-positive
    close is skipped (nothing learned from it, the next close is compared with the last good
    one). :meth:`stats` has per horizon its weight, hit rate, evidence and bars scored.
    """

    name = "temporal-attention"
    phase = "active"

    @frozen
    class Config:
        horizons: tuple[int, ...] = option((20, 100, 500), doc="Horizons in bars, strictly "
                                           "increasing (seed 000: 20, 100, 500 ticks).",
                                           validator=_increasing)
        start: tuple[float, ...] = option((0.5, 0.3, 0.2), doc="Starting weight per horizon, "
                                          "each > 0, summing to 1 (seed 000: 0.5, 0.3, 0.2).",
                                          validator=_simplex)
        rate: float = option(0.01, doc="Learning rate: the share of the way the weights move "
                                       "toward the normalized evidence per bar.",
                             validator=fraction())
        halflife: float = option(500.0, doc="Halflife in scored bars of each hit rate.",
                                 validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if len(self.start) != len(self.horizons):
                raise OptionError("start", f"needs one weight per horizon: {len(self.horizons)}"
                                           f" horizons, {len(self.start)} weights")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.phase = "active"
        self._alpha = _alpha(c.halflife)
        self._keys = [f"horizon:{h}" for h in c.horizons]
        self._ema_alpha = [2.0 / (h + 1.0) for h in c.horizons]
        self._index = -1
        self._closes = 0
        self._close = math.nan
        self._ema = [math.nan] * len(c.horizons)
        self._pred = [0.0] * len(c.horizons)  # the prediction for the coming bar (0: none)
        self._hit = [math.nan] * len(c.horizons)
        self._scored = [0] * len(c.horizons)
        self._weights = [float(w) for w in c.start]

    def observe(self, ctx: Context) -> None:
        if ctx.index != self._index:
            self._index = ctx.index
            bar = ctx.bar
            close = bar.close if bar is not None else math.nan
            if 0.0 < close < _INF:
                self._learn(close)
        ctx.weights.update(zip(self._keys, self._weights, strict=True))

    def _learn(self, close: float) -> None:
        a = self._alpha
        prev = self._close
        move = close - prev if prev == prev else 0.0
        outcome = (move > 0.0) - (move < 0.0)
        hit, scored, preds = self._hit, self._scored, self._pred
        if outcome:
            for i, p in enumerate(preds):
                if p:
                    h = 1.0 if p == outcome else 0.0
                    hit[i] = h if not scored[i] else hit[i] + a * (h - hit[i])
                    scored[i] += 1
        self._close = close
        n = self._closes = self._closes + 1
        for i, ea in enumerate(self._ema_alpha):
            e = self._ema[i]
            e = close if e != e else e + ea * (close - e)
            self._ema[i] = e
            if n >= self.config.horizons[i]:
                diff = close - e
                preds[i] = float((diff > 0.0) - (diff < 0.0))
        if outcome and all(scored):
            evidence = [abs(2.0 * h - 1.0) for h in hit]
            total = sum(evidence)
            if total > 0.0:
                rate = self.config.rate
                w = [(1.0 - rate) * wi + rate * ei / total
                     for wi, ei in zip(self._weights, evidence, strict=True)]
                s = sum(w)
                self._weights = [wi / s for wi in w]

    def proposal(self) -> dict[str, float]:
        """The current weights by ``"horizon:<h>"`` key (they sum to 1)."""
        return dict(zip(self._keys, self._weights, strict=True))

    def stats(self) -> dict[str, Any]:
        return {"phase": self.phase, "bars": self._closes, "horizons": {
            key: {"weight": w, "hit_rate": hit, "evidence": abs(2.0 * hit - 1.0) if hit == hit
                  else math.nan, "scored": n}
            for key, w, hit, n in zip(self._keys, self._weights, self._hit, self._scored,
                                      strict=True)}}


# --- regime-attention ----------------------------------------------------------------------------

#: Seed 000 §2.3.3: per-regime multipliers of grid spacing and level count.
SEED_ADJUSTMENTS: dict[str, dict[str, float]] = {
    "RANGING": {"spacing": 1.0, "levels": 1.2},
    "TRENDING": {"spacing": 1.5, "levels": 0.8},
    "VOLATILE": {"spacing": 2.0, "levels": 0.5},
}
_PARAMS = ("spacing", "levels")


def _regime_map(instance: Any, attribute: Any, value: Any) -> None:
    for label, table in value.items():
        if not label or not label.replace("_", "").replace("-", "").isalnum() \
                or label != label.upper():
            raise OptionError(attribute.name, f"regime labels are upper-case names (RANGING, "
                                              f"TRENDING, ...), got {label!r}")
        unknown = sorted(set(table) - set(_PARAMS))
        if unknown:
            raise OptionError(attribute.name, f"{label}: unknown key {unknown[0]!r}; keys are "
                                              f"'spacing' and 'levels'")
        missing = [p for p in _PARAMS if p not in table]
        if missing:
            raise OptionError(attribute.name, f"{label}: {missing[0]!r} is missing; give both "
                                              f"'spacing' and 'levels'")
        for param, v in table.items():
            if not 0.0 < v < _INF:
                raise OptionError(attribute.name, f"{label}.{param}: must be a finite number "
                                                  f"> 0, got {v!r}")


class RegimeAttention(Attention):
    """Learns per-regime multipliers of grid spacing and levels from its returns (seed 000).

    Seed 000 §2.3.3 multiplies the grid's spacing and level count per market regime (RANGING
    1.0 / 1.2, TRENDING 1.5 / 0.8, VOLATILE 2.0 / 0.5; DORMANT has none: its grid places no
    orders); those are the start values (``regimes``), learned from each regime's performance.

    **Attribution.** The attention stage runs before the regime stage, so ``ctx.regime`` there
    is still the previous bar's label: the one whose grid traded through the bar just closed.
    The bar's equity return ``r = E_t / E_{t−1} − 1`` (``ctx.portfolio.equity``, marked at the
    close) is attributed to it. Per regime: an EW mean μ and variance σ² of r over
    ``halflife`` of its bars. (Equity return rather than realized round-trip profit: it counts
    the open inventory's losses too, which are what a grid suffers in a trend.)

    **Update**, on each bar of regime L once L has ``min_bars`` bars, with
    ``step = rate · min(1, |μ| / σ)`` (1 if σ = 0 < ``|μ|``; 0 if μ = 0, e.g. no position):

    * μ < 0 (the regime's grid loses): ``spacing_L ← spacing_L · (1 + step)``,
      ``levels_L ← levels_L · (1 − step)`` — wider and fewer cells, as seed 000 sets for the
      adverse regimes, so a move through the grid accumulates less inventory;
    * μ > 0: both drift back toward their start values, ``m ← m + step·(m₀ − m)`` — a working
      setting is not tightened beyond the seed's prior (tighter cells mean more fees and more
      inventory on the next adverse move);
    * every multiplier is clamped to [``min_mult``, ``max_mult``].

    The step is the per-bar Sharpe ratio of the regime, capped at 1, times ``rate``: a loss
    small against its noise moves little, and no bar moves a multiplier by more than a factor
    1 + ``rate``; the clamp bounds the total. Writes ``ctx.adjust["LABEL:spacing"]`` and
    ``ctx.adjust["LABEL:levels"]`` for every regime of ``regimes`` (read by the
    ``regime-selector`` when it lays that regime's grid): the multipliers as of the last bar
    whose index is a multiple of ``refresh`` (the statistics learn on every bar; publishing
    every bar made the controller re-cap its proposal on every bar). A non-finite equity or
    return is
    skipped. :meth:`stats` has per regime its multipliers, bars, μ and σ.
    """

    name = "regime-attention"
    phase = "active"

    @frozen
    class Config:
        regimes: dict[str, dict[str, float]] = option(
            factory=lambda: {k: dict(v) for k, v in SEED_ADJUSTMENTS.items()},
            doc="Regime label -> {spacing, levels}: the start multipliers (seed 000 §2.3.3). "
                "Given, it replaces the default as a whole.", validator=_regime_map)
        rate: float = option(0.05, doc="Largest relative change of a multiplier per bar.",
                             validator=fraction())
        halflife: float = option(500.0, doc="Halflife, in bars of the regime, of the EW mean "
                                            "and variance of its returns.", validator=at_least(1))
        min_bars: int = option(20, doc="Bars of a regime before its multipliers move.",
                               validator=at_least(2))
        min_mult: float = option(0.25, doc="Lowest multiplier.", validator=positive())
        max_mult: float = option(4.0, doc="Highest multiplier.", validator=positive())
        refresh: int = option(16, doc="Bars between two publications of the multipliers "
                                      "(they learn on every bar; a grid reads them when it is "
                                      "laid, and at a halflife of hundreds of bars they barely "
                                      "move in between).", validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if self.min_mult > self.max_mult:
                raise OptionError("max_mult", f"must be >= min_mult ({self.min_mult:g}), got "
                                              f"{self.max_mult:g}")
            for label, table in self.regimes.items():
                for param, v in table.items():
                    if not self.min_mult <= v <= self.max_mult:
                        raise OptionError("regimes", f"{label}.{param}: {v:g} is outside "
                                                     f"[min_mult, max_mult] = "
                                                     f"[{self.min_mult:g}, {self.max_mult:g}]")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.phase = "active"
        self._alpha = _alpha(self.config.halflife)
        self._index = -1
        self._equity = math.nan
        #: Per label: [spacing, levels, bars, mean, var].
        self._state: dict[str, list[float]] = {
            label: [float(t["spacing"]), float(t["levels"]), 0.0, 0.0, 0.0]
            for label, t in self.config.regimes.items()}
        self._proposal: dict[str, float] = {}
        self._write()

    def observe(self, ctx: Context) -> None:
        if ctx.index != self._index:
            self._index = ctx.index
            equity = ctx.portfolio.equity
            prev, self._equity = self._equity, equity
            s = self._state.get(ctx.regime) if ctx.regime is not None else None
            if s is not None and prev > 0.0:
                r = equity / prev - 1.0
                if -_INF < r < _INF:
                    self._learn(ctx.regime, s, r)  # type: ignore[arg-type]
            if not ctx.index % self.config.refresh:
                self._write()
        ctx.adjust.update(self._proposal)

    def _learn(self, label: str, s: list[float], r: float) -> None:
        c = self.config
        a = self._alpha
        n = s[2]
        if n == 0.0:
            s[3] = r
        else:
            d = r - s[3]
            s[3] += a * d
            s[4] = (1.0 - a) * (s[4] + a * d * d)
        s[2] = n = n + 1.0
        mean = s[3]
        if n < c.min_bars or mean == 0.0:
            return
        sd = math.sqrt(s[4])
        ratio = (mean if mean > 0.0 else -mean) / sd if sd > 0.0 else 1.0
        step = c.rate * (ratio if ratio < 1.0 else 1.0)
        if mean < 0.0:
            spacing, levels = s[0] * (1.0 + step), s[1] * (1.0 - step)
        else:
            start = c.regimes[label]
            spacing = s[0] + step * (start["spacing"] - s[0])
            levels = s[1] + step * (start["levels"] - s[1])
        # (comparisons, not min/max: this runs on every bar)
        lo, hi = c.min_mult, c.max_mult
        s[0] = lo if spacing < lo else hi if spacing > hi else spacing
        s[1] = lo if levels < lo else hi if levels > hi else levels

    def _write(self) -> None:
        keys = getattr(self, "_keys", None)
        if keys is None:  # the keys' strings, made once
            keys = self._keys = {label: (f"{label}:spacing", f"{label}:levels")
                                 for label in self._state}
        out = self._proposal
        for label, s in self._state.items():
            spacing, levels = keys[label]
            out[spacing] = s[0]
            out[levels] = s[1]

    def proposal(self) -> dict[str, float]:
        """The current multipliers by ``"LABEL:spacing"`` / ``"LABEL:levels"`` key."""
        return dict(self._proposal)

    def stats(self) -> dict[str, Any]:
        return {"phase": self.phase, "regimes": {
            label: {"spacing": s[0], "levels": s[1], "bars": int(s[2]),
                    "mean_return": s[3] if s[2] else math.nan,
                    "std_return": math.sqrt(s[4]) if s[2] else math.nan}
            for label, s in self._state.items()}}


@hookimpl
def gridkit_register_attention(register: Any) -> None:
    register(FeatureAttention)
    register(TemporalAttention)
    register(RegimeAttention)
