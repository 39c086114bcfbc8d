"""Built-in risk checks: ``position-size`` and ``drawdown``."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import fraction, option, optional, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Order, Reject
from gridkit.runtime.context import Context


class PositionSize(RiskCheck):
    """Refuses buys that would lift the position above a cap (in base, or a share of equity).

    The position counted is the symbol's base held plus every open buy of that symbol (the worst
    case: all of them fill), so the cap holds whatever the market does; with several symbols the
    cap is per symbol. Sells always pass.
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
            validator=optional(fraction()))

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

    Drawdown is ``(peak - equity) / peak`` on the equity marked at each close.
    """

    name = "drawdown"

    @frozen
    class Config:
        limit: float = option(doc="Largest tolerated drawdown, as a fraction (0.1 = 10%).",
                              validator=fraction())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.tripped_at: int | None = None

    def on_bar(self, ctx: Context) -> str | None:
        if ctx.account.drawdown >= self.config.limit:
            self.tripped_at = ctx.bar.ts
            dd = ctx.portfolio.drawdown
            return f"drawdown {dd:.2%} reached the limit {self.config.limit:.2%}"
        return None

    def stats(self) -> dict[str, Any]:
        return {"tripped_at": self.tripped_at}


@hookimpl
def gridkit_register_risk_checks(register: Any) -> None:
    register(PositionSize)
    register(Drawdown)
