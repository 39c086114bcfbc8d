"""The account a run trades: cash, base, fees, average-cost realized profit and drawdown."""

from __future__ import annotations

from gridkit.core.types import Fill


class Portfolio:
    """Cash and base balances updated from fills, marked to each close.

    Realized profit uses the average-cost method: a buy's fee is part of its cost basis, a sell's
    fee is taken from its proceeds. So ``equity - capital == realized + base * (price - avg_cost)``
    at every mark, which the property tests check.
    """

    __slots__ = (
        "avg_cost", "base", "buy_fills", "capital", "cash", "equity", "fees", "max_drawdown",
        "peak", "price", "realized", "sell_fills",
    )

    def __init__(self, capital: float, base: float = 0.0) -> None:
        self.capital = capital
        self.cash = capital
        self.base = base
        self.avg_cost = 0.0
        self.fees = 0.0
        self.realized = 0.0
        self.buy_fills = 0
        self.sell_fills = 0
        self.price = float("nan")
        self.equity = capital
        self.peak = capital
        self.max_drawdown = 0.0

    def apply(self, fill: Fill) -> None:
        """Book one fill."""
        notional = fill.price * fill.qty
        self.fees += fill.fee
        if fill.side == "buy":
            held = self.base
            self.base = held + fill.qty
            self.avg_cost = (self.avg_cost * held + notional + fill.fee) / self.base
            self.cash -= notional + fill.fee
            self.buy_fills += 1
        else:
            self.realized += (fill.price - self.avg_cost) * fill.qty - fill.fee
            self.base -= fill.qty
            self.cash += notional - fill.fee
            self.sell_fills += 1
            if self.base <= 1e-12:
                # Flat: start the next position's cost basis afresh; a float residue must not
                # carry an old average into it.
                self.avg_cost = 0.0

    def mark(self, price: float) -> float:
        """Value the account at ``price``; update peak and max drawdown; return equity."""
        self.price = price
        equity = self.cash + self.base * price
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        elif self.peak > 0:
            dd = (self.peak - equity) / self.peak
            if dd > self.max_drawdown:
                self.max_drawdown = dd
        return equity

    @property
    def drawdown(self) -> float:
        """Current drawdown from the equity peak, as a fraction."""
        return (self.peak - self.equity) / self.peak if self.peak > 0 else 0.0
