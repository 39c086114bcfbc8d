"""Built-in label rules: ``garch-vol`` (seed 001) and ``markov`` (seed 004).

A label rule names the regime itself (:meth:`gridkit.Regime.classify`) rather than scoring one
label; the engine applies ``[pipeline] regime_dwell`` to what it names (default 3, as for any
rule, see :mod:`gridkit.runtime.regime`). Both are O(1) per bar in plain Python and keep their
whole state in attributes, so the default :meth:`~gridkit.Component.snapshot` saves it for
resume. They are registered by :mod:`gridkit.plugins.regimes`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from statistics import NormalDist
from typing import Any

from attrs import frozen

from gridkit.core.components import Regime
from gridkit.core.config import OptionError, at_least, option, optional, positive
from gridkit.runtime.context import Context

NAN = float("nan")
#: Milliseconds in a 365-day year: markets that trade around the clock (1m bars: 525,600).
YEAR_MS = 365 * 86_400_000


class GarchVol(Regime):
    """LOW / MEDIUM / HIGH from the annualized GARCH(1,1) volatility forecast (seed 001).

    Reads the per-bar σ of the ``garch`` feature (:class:`gridkit.plugins.features.Garch`:
    GARCH(1,1), Bollerslev 1986, the one-step-ahead forecast ``σ_(t+1)`` of the log return),
    annualizes it, ``v = σ · sqrt(P)`` with ``P`` bars per year, and labels the bar as the
    seed's table does: ``LOW`` if ``v < low``, ``MEDIUM`` if ``low <= v < high``, else
    ``HIGH`` (defaults 30 % and 45 %).

    ``P`` is ``bars_per_year`` when given; otherwise it is derived from the bar interval
    ``Δ`` (ms) as ``P = 365 · 86,400,000 / Δ`` (a market open around the clock: 525,600 for 1m
    bars, 8,760 for 1h), ``Δ`` being the smallest gap between two consecutive bars seen so
    far (a missing bar widens a gap, never narrows one, so this is the interval as soon as
    two adjacent bars have been seen; the GARCH warm-up is far longer). For a market with
    trading hours, give ``bars_per_year`` (daily stock bars: 252).

    None (no label) while the feature warms up (its ``fit_window``) or is NaN. O(1) per bar.
    The label may flip bar to bar when ``v`` hovers at a threshold: the engine's minimum
    dwell (``[pipeline] regime_dwell``, 3 by default) holds it.
    """

    name = "garch-vol"
    labels = ("LOW", "MEDIUM", "HIGH")

    @frozen
    class Config:
        garch: str = option("garch", doc="Feature key of the GARCH(1,1) σ to read (per bar, "
                                         "i.e. the garch feature with annualize = false).")
        low: float = option(0.30, doc="Annualized σ (a fraction: 0.30 = 30 %) where MEDIUM "
                                      "starts.", validator=positive())
        high: float = option(0.45, doc="Annualized σ where HIGH starts.", validator=positive())
        bars_per_year: float | None = option(
            None, doc="Bars per year to annualize σ; default: from the bar interval, for a "
                      "market open 24/7 (give 252 for daily stock bars).",
            validator=optional(positive()))
        annualized: bool = option(False, doc="The feature already outputs annualized σ "
                                             "(garch's annualize = true): use it as is.")

        def __attrs_post_init__(self) -> None:
            if self.low >= self.high:
                raise OptionError("low", f"must be below high ({self.low} >= {self.high})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.garch,)
        self._key, self._low, self._high = c.garch, c.low, c.high
        self.factor = (1.0 if c.annualized else
                       math.sqrt(c.bars_per_year) if c.bars_per_year is not None else NAN)
        self._derive = not c.annualized and c.bars_per_year is None
        self.last_ts: int | None = None
        self.interval = 0  # smallest gap seen between consecutive bars, ms (0: none yet)
        self.vol = NAN  # the last annualized σ

    def classify(self, ctx: Context) -> str | None:
        if self._derive:
            ts = ctx.bar.ts
            last = self.last_ts
            if ts != last:
                self.last_ts = ts
                if last is not None:
                    gap = ts - last
                    if gap > 0 and (self.interval == 0 or gap < self.interval):
                        self.interval = gap
                        self.factor = math.sqrt(YEAR_MS / gap)
        v = ctx.features[self._key] * self.factor
        self.vol = v
        if v != v:
            return None
        return "LOW" if v < self._low else "MEDIUM" if v < self._high else "HIGH"

    def stats(self) -> dict[str, Any]:
        return {"bars_per_year": self.factor * self.factor, "vol": self.vol}


def markov_labels(k: int) -> tuple[str, ...]:
    """State names, from the most negative return bin to the most positive."""
    if k == 2:
        return ("DOWN", "UP")
    if k == 3:
        return ("DOWN", "FLAT", "UP")
    return tuple(f"S{i}" for i in range(k))


def markov_edges(k: int) -> list[float]:
    """Bin edges of the standardized return: ``Φ⁻¹(i/k)``, i = 1..k−1."""
    nd = NormalDist()
    return [nd.inv_cdf(i / k) for i in range(1, k)]


class Markov(Regime):
    """The most likely next state of a Markov chain of return states over a rolling window.

    Seed 004 (Markov-chain market analysis): each bar's log return
    ``r_t = ln(close_t / close_(t−1))`` is standardized by the per-bar volatility ``σ_t`` of
    the ``volatility`` feature (the rolling standard deviation of the log returns), ``z_t =
    r_t / σ_t``, and put in one of ``k = states`` bins with edges ``Φ⁻¹(i/k)``, i = 1..k−1
    (Φ the standard normal CDF): equally likely bins were returns Gaussian, and no threshold
    to tune per asset or timeframe. A ``z`` on an edge goes to the upper bin; ``σ_t = 0``
    counts as ``z = 0``. States are numbered from the most negative bin: k = 3 is ``DOWN``
    (z < −0.431), ``FLAT``, ``UP`` (z ≥ 0.431); k = 2 is ``DOWN`` / ``UP`` (split at 0);
    other k are ``S0`` … ``S(k−1)``.

    The transition counts ``C[i, j]`` (state i then j on the next bar) cover the last
    ``window`` transitions: each bar adds its transition and removes the one leaving the
    window, O(1). From the current state s the regime is the most likely next state,
    ``argmax_j C[s, j]`` (the maximum-likelihood estimate of the row ``P[s, ·] = C[s, ·] /
    Σ_j C[s, j]``); ties go to s itself when it is among the maxima (no change without
    evidence), else to the lowest state; a row with no transitions is a tie of all. None
    until ``window`` transitions have been seen. Bars whose σ is NaN are left out of the
    chain (the feature warming up).
    """

    name = "markov"

    @frozen
    class Config:
        states: int = option(3, doc="Number of return states k (2: DOWN/UP, 3: DOWN/FLAT/UP).",
                             validator=at_least(2))
        window: int = option(500, doc="Transitions counted (the rolling window, in bars); at "
                                      "least 10 per state.", validator=at_least(2))
        volatility: str = option("volatility", doc="Feature key of the per-bar σ of log "
                                                   "returns that standardizes each return.")

        def __attrs_post_init__(self) -> None:
            if self.window < 10 * self.states:
                raise OptionError("window", f"must be at least 10 x states = "
                                            f"{10 * self.states} transitions (about ten per "
                                            f"row of the matrix), got {self.window}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.requires_features = (c.volatility,)
        self.labels = markov_labels(c.states)
        self.edges = markov_edges(c.states)
        self._key, self._k, self._size = c.volatility, c.states, c.window + 1
        self.counts = [0] * (c.states * c.states)  # C[i, j] at i * k + j
        self.ring = [0] * (c.window + 1)  # the last window + 1 states
        self.n = 0  # states recorded
        self.prev_close = NAN
        self.last_ts: int | None = None
        self.last: str | None = None  # the label of the last bar

    def state(self, r: float, sigma: float) -> int:
        """The bin of return ``r`` standardized by ``sigma``."""
        return bisect_right(self.edges, r / sigma if sigma > 0.0 else 0.0)

    def push(self, s: int) -> None:
        """Add state ``s``: count its transition, drop the one leaving the window."""
        ring, size, n, k, counts = self.ring, self._size, self.n, self._k, self.counts
        if n >= size:
            counts[ring[n % size] * k + ring[(n + 1) % size]] -= 1
        if n >= 1:
            counts[ring[(n - 1) % size] * k + s] += 1
        ring[n % size] = s
        self.n = n + 1

    def classify(self, ctx: Context) -> str | None:
        bar = ctx.bar
        if bar.ts == self.last_ts:  # a tick between bars: nothing new
            return self.last
        self.last_ts = bar.ts
        prev, close = self.prev_close, bar.close
        self.prev_close = close
        sigma = ctx.features[self._key]
        if prev != prev or sigma != sigma:
            self.last = None
            return None
        s = self.state(math.log(close / prev), sigma)
        self.push(s)
        if self.n < self._size:
            self.last = None
            return None
        k = self._k
        row = self.counts[s * k:(s + 1) * k]
        best = row[s]
        j = s
        for i in range(k):
            if row[i] > best:
                best, j = row[i], i
        self.last = label = self.labels[j]
        return label

    def matrix(self) -> list[list[int]]:
        """The transition counts ``C`` as k rows of k."""
        k = self._k
        return [self.counts[i * k:(i + 1) * k] for i in range(k)]


__all__ = ["GarchVol", "Markov", "markov_edges", "markov_labels"]
