"""Grid lines and the cell state machine of DESIGN.md §7, shared by the grid strategies."""

from __future__ import annotations

from typing import Any

from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.runtime.context import Context
from gridkit.trading.fills import cell_after_fill, cell_order_price, round_trip_profit


def grid_lines(lower: float, upper: float, n: int, mode: str) -> list[float]:
    """The N+1 grid lines: arithmetic ``lower + i*(upper-lower)/N`` or geometric
    ``lower*(upper/lower)**(i/N)``, i = 0..N (DESIGN.md §7)."""
    if mode == "geometric":
        ratio = upper / lower
        return [lower * ratio ** (i / n) for i in range(n + 1)]
    step = (upper - lower) / n
    return [lower + i * step for i in range(n + 1)]


class GridCells:
    """N cells between N+1 lines; each cell is EMPTY (a buy at its lower line) or HOLDING (a
    sell at its upper line). Fills flip cells and return the follow-up order; work per fill is
    O(1). Orders carry their cell index in ``tag``.
    """

    EMPTY, HOLDING = 0, 1

    def __init__(self, lines: list[float], qty: float) -> None:
        self.lines = lines
        self.qty = qty
        self.n = len(lines) - 1
        self.state = [self.EMPTY] * self.n
        self.order_of: list[str | None] = [None] * self.n  # live order id per cell
        self.entry: list[tuple[float, float] | None] = [None] * self.n  # (buy price, fee)
        self.parked: set[int] = set()  # cells whose order was refused; retried on fills
        #: Hedge-mode perpetuals: the position side each cell trades ("long": buys open,
        #: sells close; "short": sells open, buys close); empty otherwise.
        self.sides: list[str] = []
        self.round_trips = 0
        self.grid_profit = 0.0

    def order_for(self, i: int, ctx: Context) -> Order:
        """The order cell ``i`` needs in its current state (DESIGN.md §7)."""
        holding = self.state[i] == self.HOLDING
        price = cell_order_price(holding, self.lines[i], self.lines[i + 1])
        side = "sell" if holding else "buy"
        if self.sides:  # hedge mode: the closing leg of a cell only reduces its position
            ps = self.sides[i]
            order = ctx.order(side, self.qty, price, tag=i, position_side=ps,
                              reduce_only=(ps == "long") == holding)
        else:
            order = ctx.order(side, self.qty, price, tag=i)
        self.order_of[i] = order.id
        return order

    def seed(self, price: float, ctx: Context, neutral: bool = False) -> tuple[list[Order], int]:
        """Set every cell from ``price`` (HOLDING if its lower line >= price); return the orders
        and how many cells hold base (to be bought at market). In hedge mode a ``neutral``
        grid's HOLDING cells trade the short position, the others the long one."""
        orders = []
        holding = 0
        hedge = ctx.position.side != ""
        self.sides = [""] * self.n if hedge else []
        for i in range(self.n):
            self.state[i] = self.HOLDING if self.lines[i] >= price else self.EMPTY
            if hedge:
                self.sides[i] = "short" if neutral and self.state[i] == self.HOLDING else "long"
            self.entry[i] = None
            holding += self.state[i]
            orders.append(self.order_for(i, ctx))
        self.parked.clear()
        return orders, holding

    def on_fill(self, fill: Fill, ctx: Context) -> list[Order]:
        """Flip the filled cell and return its follow-up (live from the next bar)."""
        i = fill.tag
        if not 0 <= i < self.n or self.order_of[i] != fill.order_id or fill.remaining > 0:
            return []  # not this grid's live order, or a partial fill: flip when it is done
        is_buy = fill.side == "buy"
        self.state[i] = self.HOLDING if cell_after_fill(self.state[i] == self.HOLDING, is_buy) \
            else self.EMPTY
        if is_buy:
            self.entry[i] = (fill.price, fill.fee)
        else:
            entry = self.entry[i]
            if entry is not None:  # a limit buy opened this cell: one completed round trip
                self.round_trips += 1
                self.grid_profit += round_trip_profit(entry[0], fill.price, fill.qty, entry[1],
                                                      fill.fee)
            self.entry[i] = None
        out = [self.order_for(i, ctx)]
        if self.parked:
            retry, self.parked = self.parked, set()
            out.extend(self.order_for(j, ctx) for j in sorted(retry))
        return out

    def on_rejected(self, rejection: Rejection) -> None:
        """Park a cell whose order was refused; it is proposed again after the next fill."""
        i = rejection.order.tag
        if 0 <= i < self.n and self.order_of[i] == rejection.order.id:
            self.order_of[i] = None
            self.parked.add(i)

    def cancel_all(self) -> list[Cancel]:
        """Cancels for every live order of the grid."""
        out = [Cancel(oid) for oid in self.order_of if oid is not None]
        self.order_of = [None] * self.n
        self.parked.clear()
        return out

    @property
    def holding(self) -> int:
        """How many cells hold base."""
        return sum(self.state)

    def stats(self) -> dict[str, Any]:
        """Round trips and their profit, for the run summary."""
        return {"round_trips": self.round_trips, "grid_profit": self.grid_profit,
                "holding_cells": self.holding, "parked_cells": len(self.parked)}
