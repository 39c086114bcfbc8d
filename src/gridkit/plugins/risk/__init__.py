"""Built-in risk checks: ``position-size``, ``drawdown`` and ``exchange-rules`` here; the rest of
the catalogue in this package's modules, all registered by this module's hook."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import fraction, option, optional, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Order, Reject
from gridkit.plugins.risk.ashare import LotSize, PriceLimit, TPlusOne
from gridkit.plugins.risk.breaker import CircuitBreaker
from gridkit.plugins.risk.limits import Concentration, ConcurrentOrders, Cooldown, DailyLoss
from gridkit.runtime.context import Context


class PositionSize(RiskCheck):
    """Refuses buys that would lift the position above a cap (in base, or a share of equity).

    The position counted is the symbol's base held plus every open buy of that symbol (the worst
    case: all of them fill), so the cap holds whatever the market does; with several symbols the
    cap is per symbol. Sells always pass.

    Formula: refuses a buy when ``base + open_buys + qty > max_base``, or when
    ``(base + open_buys + qty) * price / equity > max_fraction``. Source: seeds 000 and 002
    (``max_position_size``: 5 % and 20 % of capital) and seed 003 (``max_position_pct`` 20).
    """

    name = "position-size"

    @frozen
    class Config:
        # Either cap, or both; not neither.
        one_of = [("max_base", "max_fraction")]

        max_base: float | None = option(None, doc="Cap on base held plus open buys.",
                                        validator=optional(positive()))
        max_fraction: float | None = option(
            None, doc="Cap on (base held + open buys) * price / equity, e.g. 0.5.",
            validator=optional(fraction()), tunable=(0.05, 1.0))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.refused = 0

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if order.side != "buy":
            return order
        pf = ctx.portfolio
        exposure = pf.base + ctx.open_buy_qty + order.qty
        c = self.config
        if c.max_base is not None and exposure > c.max_base + 1e-12:
            self.refused += 1
            return Reject(f"position above max_base {c.max_base:g}")
        if c.max_fraction is not None and pf.equity > 0:
            share = exposure * pf.price / pf.equity
            if share > c.max_fraction + 1e-12:
                self.refused += 1
                return Reject(f"position above max_fraction {c.max_fraction:g} of equity")
        return order

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused}


class Drawdown(RiskCheck):
    """Halts trading (cancels every order, places none) once equity falls ``limit`` below its peak.

    Drawdown is ``(peak - equity) / peak`` on the equity marked at each close; the halt lasts
    until a ``circuit-breaker`` lifts it. After a lift the peak starts again at the equity of
    the first bar traded (the operator accepted the loss so far): the check halts again only
    if equity falls ``limit`` below that. Source: seeds 000 and 002 (``max_drawdown``: 3 % and
    5 % total), the maximum-drawdown stop of every grid-bot platform.
    """

    name = "drawdown"

    @frozen
    class Config:
        limit: float = option(doc="Largest tolerated drawdown, as a fraction (0.1 = 10%).",
                              validator=fraction(), tunable=(0.02, 0.9))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.tripped_at: int | None = None
        self.halting = False  # this check's halt stands (on_bar is not called meanwhile)
        #: The equity peak since the last lift (None: never lifted, the account's peak counts).
        self.peak_since_lift: float | None = None

    def on_bar(self, ctx: Context) -> str | None:
        acct = ctx.account
        if self.halting:  # called again: the halt was lifted
            self.halting, self.peak_since_lift = False, acct.equity
        if self.peak_since_lift is None:
            dd = acct.drawdown
        else:
            peak = self.peak_since_lift = max(self.peak_since_lift, acct.equity)
            dd = (peak - acct.equity) / peak if peak > 0 else 0.0
        if dd >= self.config.limit:
            self.tripped_at, self.halting = ctx.bar.ts, True
            return f"drawdown {dd:.2%} reached the limit {self.config.limit:.2%}"
        return None

    def stats(self) -> dict[str, Any]:
        return {"tripped_at": self.tripped_at}


class ExchangeRules(RiskCheck):
    """Makes orders fit the exchange's filters (tick, lot, minimum notional) before they are sent.

    The rules are the lane's market (``[market] markets``, ccxt's ``load_markets`` format). A
    limit price off the tick is moved onto it on the safe side — a buy down, a sell up, so the
    order never pays more or sells for less than the strategy asked — and a quantity off the lot
    is cut down to it. What still breaks a filter (a quantity below the minimum, a notional
    below the minimum) is refused with the exchange's own reason (``Filter failure:
    MIN_NOTIONAL``), before it is sent. Without market rules for the symbol, every order passes
    and ``without_rules`` counts them. Source: Binance's symbol filters (``PRICE_FILTER``,
    ``LOT_SIZE``, ``MIN_NOTIONAL`` / ``NOTIONAL`` in ``GET /api/v3/exchangeInfo``), as ccxt
    maps them into each market's ``precision`` and ``limits``.
    """

    name = "exchange-rules"

    @frozen
    class Config:
        round: bool = option(True, doc="Move prices onto the tick and cut quantities to the lot "
                                       "(off: refuse them instead).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.rounded = 0
        self.refused = 0
        self.without_rules = 0

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        m = ctx.market
        if m is None:
            self.without_rules += 1
            return order
        from gridkit.trading.markets import (
            check_order,
            price_on_tick,
            qty_on_lot,
            round_price,
            round_qty,
        )

        price, qty = order.price, order.qty
        limit = order.kind in ("limit", "stop_limit")
        if self.config.round:
            if limit and price > 0 and not price_on_tick(price, m):
                price = round_price(price, m, order.side)
            if qty > 0 and not qty_on_lot(qty, m):
                qty = round_qty(qty, m)
        reason = check_order(order.side, qty, price, m, is_market=not limit,
                             reduce_only=order.reduce_only)
        if reason is not None:
            self.refused += 1
            return Reject(reason)
        if price != order.price or qty != order.qty:
            self.rounded += 1
            import attrs

            return attrs.evolve(order, price=price, qty=qty)
        return order

    def stats(self) -> dict[str, Any]:
        return {"rounded": self.rounded, "refused": self.refused,
                "without_rules": self.without_rules}


@hookimpl
def gridkit_register_risk_checks(register: Any) -> None:
    from gridkit.plugins.risk.stats import Correlation, SafeSize, Var

    register(PositionSize)
    register(Drawdown)
    register(ExchangeRules)
    register(TPlusOne)
    register(LotSize)
    register(PriceLimit)
    register(ConcurrentOrders)
    register(DailyLoss)
    register(Concentration)
    register(Cooldown)
    register(CircuitBreaker)
    register(Correlation)
    register(Var)
    register(SafeSize)
