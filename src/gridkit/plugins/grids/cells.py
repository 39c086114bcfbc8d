"""Grid lines and the cell state machine of DESIGN.md §7, shared by the grid strategies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.leverage import grid_margin, leverage_problems
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

    ``qty`` is the base quantity of every cell, or a sequence of one quantity per cell (a
    pyramid grid's); :attr:`qtys` holds the quantity of each cell either way.
    """

    EMPTY, HOLDING = 0, 1
    #: The position each cell trades, set by :meth:`seed`: ``"long"`` (it holds its quantity
    #: while HOLDING) or ``"short"`` (it is short its quantity while EMPTY).
    #: (A class default, read-only, for cells pickled by a gridkit that had no legs.)
    legs: list[str] = []

    def __init__(self, lines: list[float], qty: float | Sequence[float]) -> None:
        self.lines = lines
        self.qty = qty
        self.n = len(lines) - 1
        self.qtys: list[float] = cell_qtys(qty, self.n)
        self.state = [self.EMPTY] * self.n
        self.order_of: list[str | None] = [None] * self.n  # live order id per cell
        self.entry: list[tuple[float, float] | None] = [None] * self.n  # (buy price, fee)
        self.parked: set[int] = set()  # cells whose order was refused; retried on fills
        #: Hedge-mode perpetuals: the position side each cell trades ("long": buys open,
        #: sells close; "short": sells open, buys close); empty otherwise.
        self.sides: list[str] = []
        self.round_trips = 0
        self.grid_profit = 0.0
        #: Spot: the quantity of each cell's open sell, and their sum (see :meth:`order_for`).
        self.selling = [0.0] * self.n
        self.selling_total = 0.0
        self.sells_open = 0
        self.seeding = False

    def has(self, i: int) -> bool:
        """Whether ``i`` (an order's tag) is one of the grid's cells."""
        return 0 <= i < self.n

    def order_for(self, i: int, ctx: Context) -> Order | None:
        """The order cell ``i`` needs in its current state (DESIGN.md §7), or None.

        On a spot market a sell never asks for more base than the position holds beyond the
        other cells' open sells: an exchange that takes its fee in the base bought (Binance)
        leaves a cell slightly less than it bought, and the shortfall comes off the sell
        instead of the exchange refusing it. (A backtest's simulated fees are in quote: its
        cells always hold their quantity, and nothing changes.) When nothing at all is left to
        sell the cell is parked instead — retried after the grid's next fill — and None is
        returned: an order of quantity 0 would only be refused."""
        holding = self.state[i] == self.HOLDING
        price = cell_order_price(holding, self.lines[i], self.lines[i + 1])
        side = "sell" if holding else "buy"
        self._unsell(i)
        if self.sides:  # hedge mode: the closing leg of a cell only reduces its position
            # (once it is there: while seeding, the market order that opens it is yet to fill)
            ps = self.sides[i]
            order = ctx.order(side, self.qtys[i], price, tag=i, position_side=ps,
                              reduce_only=not self.seeding and (ps == "long") == holding)
        else:
            qty = self.qtys[i]
            pos = ctx.position
            if holding and pos.kind == "spot":
                # While seeding, the base is yet to be bought (the start's market order).
                free = (pos.qty if not self.seeding else math.inf) - self.selling_total
                if free < qty * (1.0 - 1e-9):  # a fee's shortfall, not a float residue
                    qty = max(free, 0.0)
                if qty <= 0.0:
                    self.order_of[i] = None
                    self.parked.add(i)
                    return None
                self.selling[i] = qty
                self.selling_total += qty
                self.sells_open += 1
            order = ctx.order(side, qty, price, tag=i)
        self.order_of[i] = order.id
        return order

    def _unsell(self, i: int) -> None:
        """Cell ``i``'s sell is no longer open (O(1): a grid's work per fill stays constant)."""
        if self.selling[i]:
            self.selling_total -= self.selling[i]
            self.selling[i] = 0.0
            self.sells_open -= 1
            if not self.sells_open:
                self.selling_total = 0.0  # no drift from adding and taking away floats

    def seed(self, price: float, ctx: Context, direction: str | bool = "long"
             ) -> tuple[list[Order], int]:
        """Set every cell from ``price`` (HOLDING if its lower line >= price); return the orders
        and how many cells hold base.

        ``direction`` (``"long"``, ``"short"``, ``"neutral"``; True is ``"neutral"``) sets each
        cell's leg in :attr:`legs`: a short grid's cells all trade the short position, a
        neutral grid's HOLDING cells the short one and the others the long one, a long grid's
        all the long one. The orders are the same in every direction; in hedge mode each
        order names its cell's leg as its position side (:attr:`sides`)."""
        if direction is True or direction is False:
            direction = "neutral" if direction else "long"
        orders = []
        holding = 0
        hedge = ctx.position.side != ""
        self.sides = [""] * self.n if hedge else []
        self.legs = ["long"] * self.n
        self.selling = [0.0] * self.n
        self.selling_total = 0.0
        self.sells_open = 0
        self.seeding = True
        for i in range(self.n):
            self.state[i] = self.HOLDING if self.lines[i] >= price else self.EMPTY
            if direction == "short" or (direction == "neutral"
                                        and self.state[i] == self.HOLDING):
                self.legs[i] = "short"
            if hedge:
                self.sides[i] = self.legs[i]
            self.entry[i] = None
            holding += self.state[i]
            order = self.order_for(i, ctx)
            if order is not None:
                orders.append(order)
        self.seeding = False
        self.parked.clear()
        return orders, holding

    def on_fill(self, fill: Fill, ctx: Context) -> list[Order]:
        """Flip the filled cell and return its follow-up (live from the next bar)."""
        i = fill.tag
        if not self.has(i) or self.order_of[i] != fill.order_id:
            return []  # not this grid's live order
        if fill.remaining > 0:  # a partial fill: flip when it is done
            if self.selling[i]:  # what is still for sale
                part = min(fill.qty, self.selling[i] * (1 - 1e-12))  # still open: not 0
                self.selling[i] -= part
                self.selling_total -= part
            return []
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
        first = self.order_for(i, ctx)
        out = [first] if first is not None else []
        if self.parked:
            retry, self.parked = self.parked, set()
            out.extend(o for j in sorted(retry) if (o := self.order_for(j, ctx)) is not None)
        return out

    def on_rejected(self, rejection: Rejection) -> None:
        """Park a cell whose order was refused; it is proposed again after the next fill."""
        i = rejection.order.tag
        if self.has(i) and self.order_of[i] == rejection.order.id:
            self.order_of[i] = None
            self._unsell(i)
            self.parked.add(i)

    def cancel_all(self) -> list[Cancel]:
        """Cancels for every live order of the grid."""
        out = [Cancel(oid) for oid in self.order_of if oid is not None]
        self.order_of = [None] * self.n
        self.selling = [0.0] * self.n
        self.selling_total = 0.0
        self.sells_open = 0
        self.parked.clear()
        return out

    @property
    def holding(self) -> int:
        """How many cells hold base."""
        return sum(self.state)

    @property
    def holding_qty(self) -> float:
        """The base the HOLDING cells hold: the sum of their quantities."""
        return sum(q for q, s in zip(self.qtys, self.state, strict=True) if s)

    def stats(self) -> dict[str, Any]:
        """Round trips and their profit, for the run summary."""
        return {"round_trips": self.round_trips, "grid_profit": self.grid_profit,
                "holding_cells": self.holding, "parked_cells": len(self.parked)}


def cell_qtys(qty: float | Sequence[float], n: int) -> list[float]:
    """One base quantity per cell of ``n``: ``qty`` repeated, or ``qty`` itself if it is a
    sequence (of length ``n``, else ValueError)."""
    if isinstance(qty, (int, float)):
        return [qty] * n
    qtys = list(qty)
    if len(qtys) != n:
        raise ValueError(f"{len(qtys)} cell quantities for {n} cells")
    return qtys


def grid_preflight(lines: list[float], qty: float | Sequence[float], price: float,
                   ctx: Context, maker: float, taker: float,
                   buy_holding: bool, direction: str = "") -> list[tuple[str, str]]:
    """The checks of a grid of ``lines`` and ``qty`` per cell (one for all, or one per cell)
    before its first order, at
    ``price``: fees against the narrowest step, the balance the grid needs, the market's
    filters at every line, the worst-case inventory and, for a perpetual, how far the
    liquidation price is from it, and whether ``[market] leverage`` is within the
    instrument's maximum. ``buy_holding``: the cells above the price are bought at market at
    the start (a long grid); ``direction`` ``"short"``: the liquidation looked at is the short
    one, with the grid short its whole range above the highest line."""
    out: list[tuple[str, str]] = []
    n = len(lines) - 1
    qs = cell_qtys(qty, n)
    if not lines[0] <= price <= lines[-1]:
        out.append(("warning", f"the price {price:g} is outside the grid's range "
                               f"[{lines[0]:g}, {lines[-1]:g}]: "
                               f"{'every cell holds' if price < lines[0] else 'no cell holds'}"
                               f" and the grid trades only if the price comes back into it"))
    step = min((lines[i + 1] - lines[i]) / lines[i] for i in range(n))
    fee = 2 * maker
    if step <= fee:
        out.append(("error", f"the narrowest grid step, {step:.4%}, does not clear the "
                             f"round-trip fee {fee:.4%}: every round trip loses money"))
    else:
        out.append(("info", f"the narrowest grid step, {step:.4%}, clears the round-trip fee "
                            f"{fee:.4%} by {step - fee:.4%}"))
    pos = ctx.position
    holding = sum(qs[i] for i in range(n) if lines[i] >= price)
    buys = [(lines[i], qs[i]) for i in range(n) if lines[i] < price]
    # A perpetual's every order holds margin: the buys below the price and the sells above it.
    notional = grid_margin(lines, qs, price)
    need = notional / pos.leverage if pos.kind != "spot" else (
        holding * price * (1 + taker) * buy_holding + sum(b * q * (1 + maker)
                                                          for b, q in buys))
    have = ctx.account.cash
    what = "margin" if pos.kind != "spot" else "cash"
    if need > have:
        out.append(("error", f"the grid needs {need:,.2f} of {what} at {price:g} but the "
                             f"account has {have:,.2f}: orders would be refused"))
    else:
        out.append(("info", f"the grid needs {need:,.2f} of {what} at {price:g}; the account "
                            f"has {have:,.2f}"))
    m = ctx.market
    if m is not None:
        from gridkit.trading.markets import check_order

        bad: dict[str, int] = {}
        for i, line in enumerate(lines):
            sell = i > 0 and lines[i - 1] >= price  # cell i-1 sells here, else cell i buys
            reason = check_order("sell" if sell else "buy", qs[i - 1] if sell or i == n
                                 else qs[i], line, m)
            if reason:
                bad[reason] = bad.get(reason, 0) + 1
        for reason, count in bad.items():
            level = "warning" if reason.endswith("PRICE_FILTER") else "error"
            out.append((level, f"{count} of {n + 1} grid lines fail the exchange's "
                               f"'{reason}'" + (" (exchange-rules moves them onto the tick)"
                                                if level == "warning" else "")))
    worst = sum(qs)
    out.append(("info", f"if the price falls through the whole range the grid holds "
                        f"{worst:g} base, worth {worst * lines[0]:,.2f} at the lowest line"))
    if pos.kind != "spot" and direction == "short":
        from gridkit.trading.margin import liquidation_price

        entry = sum(line * q for line, q in zip(lines[1:], qs, strict=True)) / worst
        liq = liquidation_price(have, -worst, entry, pos.mmr, pos.mm_amount)
        if liq == liq and liq > 0:
            gap = (liq - lines[-1]) / lines[-1]
            out.append(("error" if gap <= 0 else "info",
                        f"short the whole range, the position is liquidated at {liq:.8g}, "
                        f"{gap:.2%} above the highest line"))
    elif pos.kind != "spot":
        from gridkit.trading.margin import liquidation_price

        entry = sum(line * q for line, q in zip(lines[:n], qs, strict=True)) / worst
        liq = liquidation_price(have, worst, entry, pos.mmr, pos.mm_amount)
        if liq == liq and liq > 0:
            gap = (lines[0] - liq) / lines[0]
            out.append(("error" if gap <= 0 else "info",
                        f"holding the whole range, the position is liquidated at {liq:.8g}, "
                        f"{gap:.2%} below the lowest line"))
    if pos.kind != "spot":

        error, _ = leverage_problems(ctx, lines, qs, price)
        if error:
            out.append(("error", error))
    return out


class _Ring(list):  # type: ignore[type-arg]
    """A list indexed modulo its length: absolute index ``i`` lives in slot ``i % len``."""

    __slots__ = ()

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return list.__getitem__(self, i % len(self))

    def __setitem__(self, i: int, value: Any) -> None:  # type: ignore[override]
        list.__setitem__(self, i % len(self), value)


class ShiftingCells(GridCells):
    """:class:`GridCells` whose window of N cells moves by one cell at either end in O(1)
    (the ``trailing`` grid's).

    Cells and lines keep absolute indexes: the window holds cells ``lo .. lo+N-1`` between
    lines ``lo .. lo+N`` (``lo`` = 0 at the start, so until a shift they are ``GridCells``'
    indexes), and an order's tag is its cell's absolute index, so a shift never renumbers a live
    order. The per-cell lists are rings (slot ``i % N``, lines ``j % (N+1)``): the cell that
    leaves at one end frees the slot of the cell that enters at the other — and its leg
    (:attr:`GridCells.legs`: a short or neutral grid's cells trading the short position keep
    doing so), so the position the window implies changes by the two cells' states alone. One
    quantity for every cell.
    """

    def __init__(self, lines: list[float], qty: float) -> None:
        super().__init__(lines, qty)
        self.lo = 0
        self._rings()

    def _rings(self) -> None:
        for name in ("lines", "qtys", "state", "order_of", "entry", "selling", "sides", "legs"):
            value = getattr(self, name)
            if value and type(value) is not _Ring:
                setattr(self, name, _Ring(value))

    def has(self, i: int) -> bool:
        return self.lo <= i < self.lo + self.n

    @property
    def bottom(self) -> float:
        """The lowest line of the window (line ``lo``)."""
        return self.lines[self.lo]

    @property
    def top(self) -> float:
        """The highest line of the window (line ``lo + N``)."""
        return self.lines[self.lo + self.n]

    def ordered_lines(self) -> list[float]:
        """The window's N+1 lines, lowest first (O(N): for checks and reports, not per bar)."""
        return [self.lines[j] for j in range(self.lo, self.lo + self.n + 1)]

    def seed(self, price: float, ctx: Context, neutral: bool = False) -> tuple[list[Order], int]:
        if self.lo:
            raise ValueError("seed a ShiftingCells before it shifts")
        out = super().seed(price, ctx, neutral)
        self._rings()
        return out

    def cancel_all(self) -> list[Cancel]:
        out = [Cancel(oid) for oid in self.order_of if oid is not None]
        for i in range(self.lo, self.lo + self.n):
            self.order_of[i] = None
            self.selling[i] = 0.0
        self.selling_total = 0.0
        self.sells_open = 0
        self.parked.clear()
        return out

    def shift(self, up: bool, line: float) -> tuple[int, int, str | None, int]:
        """Move the window one cell ``up`` (the lowest cell leaves, a cell between the top line
        and the new line ``line`` enters above it) or down (the highest cell leaves, a cell
        between ``line`` and the bottom line enters below it). O(1).

        Returns ``(left, state, order_id, entered)``: the index of the cell that left, its
        state and its live order's id (None if none: the caller cancels it), and the index of
        the cell that entered, which is EMPTY with no order yet (the caller sets its state and
        asks :meth:`order_for`)."""
        n, lo = self.n, self.lo
        if up:
            left, entered, new_line = lo, lo + n, lo + n + 1
            self.lo = lo + 1
        else:
            left, entered, new_line = lo + n - 1, lo - 1, lo - 1
            self.lo = lo - 1
        state, oid = self.state[left], self.order_of[left]
        self._unsell(left)
        self.parked.discard(left)
        # ``entered`` has the slot of ``left``; ``new_line`` that of the line that left.
        self.lines[new_line] = line
        self.state[entered] = self.EMPTY
        self.order_of[entered] = None
        self.entry[entered] = None
        return left, state, oid, entered
