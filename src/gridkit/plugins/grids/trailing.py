"""The ``trailing`` grid: a static grid that moves one cell at a time after the price (the
exchanges' "trailing up / trailing down" grid)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, option, optional, positive
from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Order
from gridkit.plugins.grids.cells import ShiftingCells, grid_lines, grid_preflight
from gridkit.plugins.grids.controls import DirectionOptions
from gridkit.plugins.grids.static import StaticGrid
from gridkit.runtime.context import Context

#: The smallest step between lines, as a fraction of the price, that the lines still tell apart.
MIN_STEP = 1e-9


def check_tick(step: float, ctx: Context, what: str) -> None:
    """Refuse a grid whose ``step`` (in price) is below the market's tick, when the market's
    rules are known: its lines would collapse onto the same tick (one ConfigError line)."""
    m = ctx.market
    if m is not None and m.tick and step < m.tick:
        raise ConfigError(f"strategy: {what} {step:.10g} is below the market's tick {m.tick:g}: "
                          f"the grid lines would collapse onto one tick")


class TrailingGrid(StaticGrid):
    """Static grid that trails the price one cell at a time: the exchanges' trailing up/down grid.

    Lines are those of ``static`` (DESIGN.md §7), extended past both ends with the same step:
    line j (any integer j) is ``lower + j*(upper-lower)/N`` (arithmetic) or
    ``lower*(upper/lower)**(j/N)`` (geometric). The grid is a window of N cells, j = lo..lo+N-1
    (lo = 0 at the start), that starts, pairs and earns exactly as ``static``'s: at the first
    close c0 a cell holds base if its lower line is >= c0 (bought with one market order) and
    sells at its upper line, the others buy at their lower line; a filled buy re-places a sell
    one line up, a filled sell a buy one line down, live from the next bar.

    **Trailing up** (``trail`` = up or both): when a bar closes above the line one step above
    the top, ``L_{lo+N+1}``, the window moves up one cell: the lowest cell leaves (its order is
    cancelled) and the cell between the old top line and ``L_{lo+N+1}`` enters. That is
    Binance's spot Trailing Up: "if the price increases above the upper limit price and the
    price difference between the grid levels, ... it will cancel the lowest buy order and place
    a new buy order at the previous upper limit price" (binance.com FAQ "How to Use the
    Trailing Up Function in Spot Grid Trading?"; crypto.com's Grid Bot shifts "by one interval"
    the same way). **Trailing down** (``trail`` = down or both) is its mirror: a close below
    ``L_{lo-1}`` drops the highest cell and adds the cell between ``L_{lo-1}`` and the old
    bottom line (Binance's futures grids trail down this way).

    The cell that enters takes its state from the close as at the start: it holds base if its
    lower line is >= the close. Trailing up it lies below the close, so it is EMPTY and buys at
    the old top line (Binance's new buy); trailing down it lies above, so it HOLDS and sells at
    the old bottom line. Inventory follows: the difference between the base of the cell that
    left and the base of the cell that entered (-1, 0 or +1 cell) is traded with one market
    order. So trailing up buys nothing, unless the lowest cell still held base (its sell
    unfilled), which is then sold at market; trailing down hands the highest cell's base to the
    new bottom cell, selling nothing, and buys one cell at market only if the highest cell held
    none. Actions are sent cancels first, then the market order, then the new cell's order.

    At most one shift per bar (O(1) work per bar and per shift; a price that jumps several
    steps is followed over as many bars). No shift up puts the top line above ``up_limit``,
    none down puts the bottom line below ``down_limit`` or at or below 0. Unlike Binance, whose
    trailing grid gives every cell the same quote value, every cell trades ``qty`` base.

    **Directions** (perpetuals): ``long``, ``short`` and ``neutral`` start as every range
    grid's (:class:`~gridkit.plugins.grids.controls.GridControls`). The cell that enters takes
    the leg of the cell that left (a short grid's cells all stay short-leg; a neutral grid's
    legs move with the window: trailing up, its long-leg bottom cells are replaced by long-leg
    cells on top), so the position always equals what the window's cells imply and a shift
    trades only the difference of the two cells' states, as above.
    """

    name = "trailing"

    @frozen
    class Config(DirectionOptions):
        lower: float = option(doc="Lowest grid line at the start (quote currency).",
                              validator=positive())
        upper: float = option(doc="Highest grid line at the start.", validator=positive())
        grids: int = option(doc="Number of cells N (N+1 lines); the window keeps N.",
                            validator=at_least(2))
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        mode: Literal["arithmetic", "geometric"] = option(
            "arithmetic", doc="Equal price steps, or equal ratios between lines.")
        trail: Literal["up", "down", "both"] = option(
            "up", doc="Which way the grid follows the price: up (Binance's Trailing Up), down, "
                      "or both.")
        up_limit: float | None = option(
            None, doc="No shift up puts the top line above this price (above upper; none: no "
                      "limit).", validator=optional(positive()))
        down_limit: float | None = option(
            None, doc="No shift down puts the bottom line below this price (below lower; none: "
                      "no limit but 0).", validator=optional(positive()))

        def __attrs_post_init__(self) -> None:
            if self.lower >= self.upper:
                raise OptionError("lower", f"must be below upper ({self.lower} >= {self.upper})")
            step = (self.upper / self.lower) ** (1 / self.grids) - 1 \
                if self.mode == "geometric" else (self.upper - self.lower) / self.grids / self.upper
            if not step > MIN_STEP:
                raise OptionError("grids", f"{self.grids} cells between {self.lower:g} and "
                                  f"{self.upper:g} collapse the lines onto each other "
                                  f"(step {step:.3g} of the price)")
            if self.up_limit is not None:
                if self.trail == "down":
                    raise OptionError("up_limit", "is for trail = \"up\" or \"both\"")
                if self.up_limit <= self.upper:
                    raise OptionError("up_limit", f"must be above upper ({self.up_limit:g} <= "
                                      f"{self.upper:g})")
            if self.down_limit is not None:
                if self.trail == "up":
                    raise OptionError("down_limit", "is for trail = \"down\" or \"both\"")
                if self.down_limit >= self.lower:
                    raise OptionError("down_limit", f"must be below lower ({self.down_limit:g} "
                                      f">= {self.lower:g})")

    def __init__(self, config: Any = None) -> None:
        Strategy.__init__(self, config)
        c = self.config
        self.cells: ShiftingCells = ShiftingCells(  # type: ignore[assignment]
            grid_lines(c.lower, c.upper, c.grids, c.mode), c.qty)
        self._step = (c.upper - c.lower) / c.grids
        self._ratio = c.upper / c.lower
        self._up = c.trail in ("up", "both")
        self._down = c.trail in ("down", "both")
        self._up_limit = math.inf if c.up_limit is None else c.up_limit
        self._down_limit = 0.0 if c.down_limit is None else c.down_limit
        self.shifts_up = self.shifts_down = 0

    def line(self, j: int) -> float:
        """Line ``j`` of the extended grid (the formula of the class docstring)."""
        c = self.config
        if c.mode == "geometric":
            return c.lower * self._ratio ** (j / c.grids)
        return c.lower + j * self._step

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        d = self.config.direction
        return grid_preflight(self.cells.ordered_lines(), self.config.qty, ctx.bar.close, ctx,
                              maker_fee, taker_fee, d == "long", d)

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        lines = self.cells.ordered_lines()
        check_tick(min(b - a for a, b in pairwise(lines)), ctx,
                   "the grid step")
        return super().start(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        stopped = self.controls_bar(ctx)  # the stop-loss / take-profit triggers first
        if stopped is not None:
            return stopped
        close = ctx.bar.close
        cells = self.cells
        if self._up and close > cells.top:
            line = self.line(cells.lo + cells.n + 1)
            if close > line and line <= self._up_limit:
                self.shifts_up += 1
                return self._shift(True, line, ctx)
        elif self._down and close < cells.bottom:
            line = self.line(cells.lo - 1)
            if close < line and self._down_limit <= line and line > 0:
                self.shifts_down += 1
                return self._shift(False, line, ctx)
        return ()

    def _shift(self, up: bool, line: float, ctx: Context) -> list[Order | Cancel]:
        cells = self.cells
        close = ctx.bar.close
        _, state, oid, entered = cells.shift(up, line)
        out: list[Order | Cancel] = [Cancel(oid)] if oid is not None else []
        holding = cells.lines[entered] >= close
        delta = int(holding) - state
        if holding:
            cells.state[entered] = cells.HOLDING
        if delta:
            # The entering cell took the slot, and so the leg, of the cell that left: the
            # position the window implies changes by the difference of their states.
            leg = cells.legs[entered] if cells.legs else "long"
            buy = delta > 0
            side = {"position_side": leg, "reduce_only": (leg == "long") != buy} \
                if ctx.position.side else {}
            out.append(ctx.order("buy" if buy else "sell", self.config.qty, close, "market",
                                 **side))
        cells.seeding = delta > 0  # its base is yet to be bought: sell all of it
        try:
            order = cells.order_for(entered, ctx)
            if order is not None:
                out.append(order)
        finally:
            cells.seeding = False
        return out

    def stats(self) -> dict[str, Any]:
        return {**self.grid_stats(), "shifts_up": self.shifts_up,
                "shifts_down": self.shifts_down, "lower": self.cells.bottom,
                "upper": self.cells.top}
