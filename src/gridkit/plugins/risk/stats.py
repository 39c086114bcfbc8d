"""Portfolio statistics checks: ``correlation``, ``var`` and ``safe-size``.

All three read the run's one :class:`~gridkit.runtime.riskbook.RiskBook` (returns aligned by
bar time, exposures, statistics recomputed every ``every`` bars over ``window`` bars): they
feed it the bar of their lane in ``on_bar`` (the first check per bar counts, the others find
it in) and ask it O(symbols) questions per order. The window and schedule of the book are the
largest window and the most frequent schedule the checks ask for.

An order **raises exposure** when it would make its symbol's absolute position larger
(:func:`gridkit.plugins.risk.limits.adds_risk`: a buy of a long-or-flat position, a sell of a
short-or-flat perpetual, each side on its own in hedge mode; a spot sell and a ``reduce_only``
order never do): only those are vetted. Before the book's first ready recompute (``window``
bar timestamps, at least half of them with a return for every symbol) nothing is known and
such orders pass, counted as ``unvetted`` in the check's stats (or are refused, with
``until_ready = "refuse"``). A backtest whose data is shorter than the window is refused before
it runs; a window that never fills otherwise is one line at the run's end.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import attrs
from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import (
    OptionError,
    at_least,
    between,
    fraction,
    option,
    optional,
    positive,
)
from gridkit.core.errors import ConfigError
from gridkit.core.types import Order, Reject
from gridkit.plugins.risk.limits import adds_risk
from gridkit.runtime.context import Context, RunInfo
from gridkit.runtime.riskbook import RiskBook, risk_book
from gridkit.trading.markets import round_qty

_log = logging.getLogger("gridkit.risk")

_WINDOW_DOC = ("Bars of returns the statistics are taken over (aligned by bar time across "
               "symbols); the book uses the largest window its checks ask for.")
_UNTIL_READY_DOC = ("Orders that add risk before the window first fills (a paper or live run's "
                    "first window of bars, or a short backtest): pass them unvetted (counted as "
                    "unvetted), or refuse them.")
_EVERY_DOC = ("Recompute the statistics every this many bars (amortized O(1) per order); the "
              "book uses the smallest its checks ask for.")


class _BookCheck(RiskCheck):
    """What the three checks share: the book, fed once per bar, and the ``unvetted`` count."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.book: RiskBook | None = None
        self.refused = 0
        self.unvetted = 0
        self.reasons: dict[str, int] = {}
        #: The largest figure (correlation, VaR share) that made this check refuse.
        self.max_seen = -math.inf

    def _needs(self, book: RiskBook) -> None:
        c = self.config
        book.need(window=c.window, every=c.every)

    def min_bars(self) -> int:
        # The book's first recompute comes once ``window`` rows of returns are complete; the
        # first bar gives none.
        return self.config.window + 1

    def conflicts(self, others: Sequence[RiskCheck]) -> list[str]:
        # One book serves every portfolio check of the run, with one window: the largest.
        mine = self.config.window
        wider = {o.name: o.config.window for o in others
                 if isinstance(o, _BookCheck) and o.config.window > mine}
        if not wider:
            return []
        name, top = max(wider.items(), key=lambda kv: kv[1])
        return [f"{self.name} window {mine} differs from {name}'s {top}: the portfolio checks "
                f"share one risk book with one window (the largest); give them the same window"]

    def setup(self, run: RunInfo) -> None:
        if self.book is None or self.book.rows:  # (a second run of the same pipeline: afresh)
            self.book = risk_book(run, self)
            self._needs(self.book)

    def _book(self, ctx: Context) -> RiskBook:
        book = self.book
        if book is None:  # stepped by hand, without setup
            book = self.book = risk_book(ctx.run, self)
            self._needs(book)
        return book

    def on_bar(self, ctx: Context) -> str | None:
        self._book(ctx).observe(ctx)
        return None

    def _unvetted(self, order: Order, book: RiskBook) -> Order | Reject:
        """An order that adds risk while the book has no figure for it: passed (counted), or
        refused when ``until_ready = "refuse"``."""
        self.unvetted += 1
        if getattr(self.config, "until_ready", "pass") == "refuse":
            return self._refuse(f"no {self.name} figure yet ({max(0, book.rows - 1)} of "
                                f"{book.window} bars of returns); until_ready = refuse",
                                order.symbol)
        return order

    def _refuse(self, reason: str, symbol: str) -> Reject:
        self.refused += 1
        self.reasons[symbol] = self.reasons.get(symbol, 0) + 1
        return Reject(reason)

    def close(self) -> None:
        book = self.book
        if book is not None and not book.ready and self.unvetted:
            _log.warning("%s: the window of %d bars never filled (the data gave %d aligned bar "
                         "times): %d orders passed unvetted; shorten window", self.name,
                         book.window, book.rows, self.unvetted)

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused, "unvetted": self.unvetted,
                "refused_by_symbol": dict(self.reasons)}


class Correlation(_BookCheck):
    """Refuses orders that add to a symbol whose returns move with an existing position's.

    For an order of symbol *i* that raises exposure, with ``rho_ij`` the Pearson correlation
    of the simple bar returns of *i* and *j* over the book's window (recomputed every
    ``every`` bars) and ``e_j`` the exposure of each other symbol *j* held (``|e_j|`` at least
    ``min_position`` of equity; open orders do not count), the measured correlation is

    * ``mode = "max"``: ``rho = max_j rho_ij`` — the strictest reading, one pair suffices;
    * ``mode = "weighted"``: ``rho = sum_j |e_j| rho_ij / sum_j |e_j|``, the exposure-weighted
      mean, so a small correlated position weighs little.

    The order is refused when ``rho > limit``. Seed 002 §3.6 sets
    ``position_correlation_limit`` to 0.8; 0.7–0.8 is the usual range. Needs at least two
    symbols: with one, the pipeline is refused when it is built. Source of the statistic:
    Markowitz, "Portfolio Selection", *Journal of Finance* 7(1), 1952 — correlated positions
    add their risks instead of diversifying them.
    """

    name = "correlation"

    @frozen
    class Config:
        limit: float = option(0.8, doc="Largest tolerated correlation with a held position.",
                              validator=between(-1.0, 1.0), tunable=(0.3, 0.99))
        mode: Literal["max", "weighted"] = option(
            "max", doc="max: the highest correlation with any held symbol; weighted: the "
                       "exposure-weighted mean over held symbols.")
        min_position: float = option(0.01, doc="A position counts as held from this share of "
                                               "equity (ignores dust).", validator=fraction())
        window: int = option(288, doc=_WINDOW_DOC, validator=at_least(3))
        every: int = option(12, doc=_EVERY_DOC, validator=at_least(1))
        until_ready: Literal["pass", "refuse"] = option("pass", doc=_UNTIL_READY_DOC)

    def validate(self, run: RunInfo) -> None:
        if len(run.symbols) < 2:
            raise ConfigError(f"correlation needs at least two symbols ([pipeline] symbols); "
                              f"this pipeline trades only {run.symbol}")

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if not adds_risk(order, ctx):
            return order
        book = self._book(ctx)
        if not book.ready:
            return self._unvetted(order, book)
        c = self.config
        acct = ctx.account
        floor = c.min_position * acct.equity
        i = book.index.get(order.symbol)
        if i is None:
            return self._unvetted(order, book)
        row = book.corr[i]
        worst, worst_sym, num, den = -math.inf, "", 0.0, 0.0
        for j, other in enumerate(book.symbols):
            if j == i:
                continue
            e = abs(book.exposure(other, acct))
            if e < floor or e == 0.0:
                continue
            rho = float(row[j])
            if rho != rho:
                continue
            if rho > worst:
                worst, worst_sym = rho, other
            num += e * rho
            den += e
        if not den:
            return order
        rho = worst if c.mode == "max" else num / den
        if rho > c.limit:
            if rho > self.max_seen:
                self.max_seen = rho
            # The reason stays the same for one pair (the summary counts refusals by reason);
            # the correlation itself is in the book's summary and this check's max_refused.
            what = f"with {worst_sym}" if c.mode == "max" else "(weighted over held symbols)"
            return self._refuse(f"{order.symbol} correlates {what} above the limit "
                                f"{c.limit:g}", order.symbol)
        return order

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "max_refused": self.max_seen if self.refused else None}


class Var(_BookCheck):
    """Refuses orders that would push the portfolio's value at risk above a share of equity.

    The VaR of the whole portfolio (every symbol's exposure, ``qty * mark``) at ``confidence``
    over ``horizon`` bars, by ``method``: ``historical`` (the empirical quantile of the
    portfolio's profit over the window's bars), ``parametric`` (normal: ``-(m + q s)``) or
    ``cornish-fisher`` (the normal quantile corrected for skewness and excess kurtosis,
    Zangari 1996); one bar's VaR is scaled by ``sqrt(horizon)`` (square-root-of-time rule,
    Basel 1996). Formulas and sources: :mod:`gridkit.runtime.riskbook`.

    For an order of symbol *i* that raises exposure, the exposure after it is the symbol's
    position value plus its open buys plus the order (``(open + qty) * price``; the worst case:
    all of them fill); the book estimates the VaR there as ``VaR(e0) + g . (e - e0)`` from the
    figures of its last scheduled recompute (no window is read per order), and the order is
    refused when ``VaR / equity > limit``. Before the window has filled, orders pass
    (``unvetted``).
    """

    name = "var"

    @frozen
    class Config:
        limit: float = option(doc="Largest tolerated VaR, as a fraction of equity (0.05 = 5%).",
                              validator=fraction(), tunable=(0.001, 0.5))
        method: Literal["historical", "parametric", "cornish-fisher"] = option(
            "historical", doc="historical | parametric (normal) | cornish-fisher.")
        confidence: float = option(0.95, doc="Confidence level, e.g. 0.95 or 0.99.",
                                   validator=between(0.5, 1.0))
        horizon: int = option(1, doc="Horizon in bars; one bar's VaR is scaled by "
                                     "sqrt(horizon).", validator=at_least(1))
        window: int = option(288, doc=_WINDOW_DOC, validator=at_least(10))
        every: int = option(12, doc=_EVERY_DOC, validator=at_least(1))
        until_ready: Literal["pass", "refuse"] = option("pass", doc=_UNTIL_READY_DOC)

        def __attrs_post_init__(self) -> None:
            if self.horizon > self.window:
                raise OptionError("horizon", f"{self.horizon} bars is longer than the window "
                                             f"of {self.window} bars it is estimated from")

    def _needs(self, book: RiskBook) -> None:
        super()._needs(book)
        book.need(var=self.spec)

    @property
    def spec(self) -> tuple[str, float, int]:
        c = self.config
        return (c.method, float(c.confidence), int(c.horizon))

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if not adds_risk(order, ctx):
            return order
        book = self._book(ctx)
        c = self.config
        sign = 1.0 if order.side == "buy" else -1.0
        added = sign * (ctx.open_buy_qty * (order.side == "buy") + order.qty) * order.price
        est = book.var_estimate(self.spec, order.symbol, added, ctx.account)
        if est is None:
            return self._unvetted(order, book)
        equity = ctx.account.equity
        frac = est / equity if equity > 0 else math.inf
        if frac > c.limit:
            if frac > self.max_seen:
                self.max_seen = frac
            return self._refuse(
                f"{c.method} VaR ({c.confidence:g}, {c.horizon} bars) would exceed "
                f"{c.limit:.2%} of equity", order.symbol)
        return order

    def stats(self) -> dict[str, Any]:
        return {**super().stats(),
                "max_refused_fraction": self.max_seen if self.refused else None}


#: The size each of the seeds' regime labels keeps: gridkit's defaults. Seed 002 §3.6 names a
#: regime multiplier without values; these follow seed 000's selection table: full size when
#: ranging (8 levels), three quarters when trending (3-6 levels), half when volatile (3-5 wide
#: levels) or dormant ("minimal/no trading").
_REGIME_SIZE = {"RANGING": 1.0, "TRENDING": 0.75, "VOLATILE": 0.5, "DORMANT": 0.5}


class SafeSize(_BookCheck):
    """Resizes orders by the risk multipliers of seed 002 §3.6, then caps the position.

    For an order that raises exposure, its quantity (the base size) is multiplied by

    * **volatility** ``m_v = vol_ref / vol``: ``vol`` is the symbol's standard deviation of
      bar returns over the book's window, ``vol_ref`` is ``vol_target`` or, by default, the
      mean of ``vol`` over the run's recomputes — volatility targeting (Moreira and Muir,
      "Volatility-Managed Portfolios", *Journal of Finance* 72(4), 2017);
    * **drawdown** ``m_d = 1 - dd / max_drawdown`` (``dd`` the account's drawdown from its
      peak) — exposure cut linearly as the drawdown nears its limit (Grossman and Zhou,
      "Optimal Investment Strategies for Controlling Drawdowns", *Mathematical Finance* 3(3),
      1993);
    * **correlation** ``m_c = 1 / sqrt(1 + rho+)``, ``rho+`` the exposure-weighted mean of the
      positive correlations with the other held symbols: the volatility of two equal
      positions grows as ``sqrt(2 (1 + rho))`` (Markowitz 1952), so a fully correlated
      addition trades ``1/sqrt(2)`` of its size;
    * **regime** ``m_r = regimes[ctx.regime]`` (1 for a label not listed, or none yet; the
      defaults are gridkit's, after seed 000's selection table: RANGING 1, TRENDING 0.75,
      VOLATILE 0.5, DORMANT 0.5);
    * **attention**, when an attention module publishes one: ``ctx.adjust["risk"]`` (or
      ``ctx.adjust["LABEL:risk"]`` for the current regime label) — the seed's
      ``attention.get_risk_adjustment()`` in its active phase.

    Each multiplier is bounded to [``min_multiplier``, ``max_multiplier``] (the drawdown's
    and correlation's to at most 1); the product multiplies the quantity, which is then cut so
    that the position plus open buys plus the order stays within ``max_fraction`` of equity
    (seed 002: ``max_position_size`` 0.2), and down to the market's lot when ``ctx.market``
    is known. An order cut to nothing (or below the market's minimum) is refused, saying why.
    The order keeps its id (``attrs.evolve``); orders that reduce exposure pass unchanged.
    """

    name = "safe-size"

    @frozen
    class Config:
        min_multiplier: float = option(0.25, doc="Lower bound of each multiplier.",
                                       validator=positive())
        max_multiplier: float = option(2.0, doc="Upper bound of each multiplier.",
                                       validator=positive())
        vol_target: float | None = option(
            None, doc="Target standard deviation of one bar's return (default: the symbol's "
                      "mean over the run).", validator=optional(positive()))
        max_drawdown: float = option(0.05, doc="Drawdown at which the drawdown multiplier "
                                               "reaches its lower bound (seed: 0.05).",
                                     validator=fraction())
        regimes: dict[str, float] = option(
            factory=lambda: dict(_REGIME_SIZE),
            doc="Size multiplier per regime label (ctx.regime).")
        max_fraction: float | None = option(
            0.2, doc="Cap on (position + open buys + order) * price / equity (seed: 0.2).",
            validator=optional(fraction()))
        window: int = option(288, doc=_WINDOW_DOC, validator=at_least(3))
        every: int = option(12, doc=_EVERY_DOC, validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if self.min_multiplier > self.max_multiplier:
                raise OptionError("min_multiplier", f"{self.min_multiplier:g} is above "
                                                    f"max_multiplier {self.max_multiplier:g}")
            bad = [k for k, v in self.regimes.items()
                   if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)]
            if bad:
                raise OptionError("regimes", f"the multiplier of {bad[0]!r} must be a "
                                             f"positive number")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.resized = 0
        self.seen = 0
        self.product_sum = 0.0
        #: The multipliers applied to the last order resized, by factor.
        self.last: dict[str, float] = {}

    def multipliers(self, order: Order, ctx: Context) -> dict[str, float]:
        """Each bounded multiplier for ``order`` now (O(symbols))."""
        c = self.config
        lo, hi = c.min_multiplier, c.max_multiplier
        book = self._book(ctx)
        out: dict[str, float] = {}
        i = book.index.get(order.symbol)
        if book.ready and i is not None:
            vol = float(book.vol[i])
            ref = c.vol_target if c.vol_target is not None else float(book.vol_mean[i])
            out["volatility"] = (min(hi, max(lo, ref / vol)) if vol > 0 and ref > 0
                                 else 1.0)
            acct = ctx.account
            num = den = 0.0
            for j, other in enumerate(book.symbols):
                if j == i:
                    continue
                e = abs(book.exposure(other, acct))
                rho = float(book.corr[i, j])
                if e > 0 and rho == rho:
                    num += e * max(0.0, rho)
                    den += e
            out["correlation"] = max(lo, min(1.0, 1.0 / math.sqrt(1.0 + num / den))
                                     if den else 1.0)
        else:
            out["volatility"] = out["correlation"] = 1.0
        dd = ctx.account.drawdown
        out["drawdown"] = max(lo, min(1.0, 1.0 - dd / c.max_drawdown))
        label = ctx.regime
        out["regime"] = (min(hi, max(lo, c.regimes.get(label, 1.0))) if label is not None
                         else 1.0)
        adj = ctx.adjust
        if adj:
            a = adj.get(f"{label}:risk", adj.get("risk")) if label is not None \
                else adj.get("risk")
            if a is not None and a == a:
                out["attention"] = min(hi, max(lo, float(a)))
        return out

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if not adds_risk(order, ctx):
            return order
        c = self.config
        if not self._book(ctx).ready:  # volatility and correlation have no figure yet: 1
            self.unvetted += 1
        mult = self.multipliers(order, ctx)
        product = 1.0
        for m in mult.values():
            product *= m
        self.seen += 1
        self.product_sum += product
        qty = order.qty * product
        if c.max_fraction is not None and order.price > 0:
            pf = ctx.portfolio
            held = abs(ctx.position.qty) + (ctx.open_buy_qty if order.side == "buy" else 0.0)
            room = c.max_fraction * pf.equity / order.price - held
            if room <= 0.0:
                return self._refuse(f"position at max_fraction {c.max_fraction:g} of equity",
                                    order.symbol)
            qty = min(qty, room)
        m = ctx.market
        if m is not None:
            qty = round_qty(qty, m)
            if qty <= 0.0 or (m.min_qty and qty < m.min_qty):
                return self._refuse(f"the size left after the risk multipliers is below "
                                    f"{order.symbol}'s lot", order.symbol)
        elif qty <= 0.0:
            return self._refuse("the risk multipliers cut the size to zero", order.symbol)
        if qty == order.qty:
            return order
        self.resized += 1
        self.last = mult
        return attrs.evolve(order, qty=qty)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "resized": self.resized,
                "mean_multiplier": self.product_sum / self.seen if self.seen else None,
                "last_multipliers": dict(self.last)}
