"""The ``symmetric`` grid: equal levels above and below the price, re-centred when left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import at_least, non_negative, option, positive
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, grid_lines
from gridkit.runtime.context import Context


def recentre(old: GridCells | None, lines: list[float], qty: float, price: float,
             ctx: Context) -> tuple[GridCells, list[Order | Cancel]]:
    """Lay a grid of ``qty`` per cell on ``lines`` at ``price``, in place of ``old``.

    Returns the new cells and the actions, in this order: a cancel for every live order of
    ``old``; one market order for the difference between the cells of base ``old`` held and the
    cells the new grid holds at ``price`` (DESIGN.md §7's start: a cell holds if its lower line
    is >= the price), a buy if it needs more, a sell if less, none if equal; the new grid's
    orders. ``old`` is None at the start: the held cells are all bought. Shared by the grids
    that re-centre (``symmetric``, ``volatility-adjusted``)."""
    out: list[Order | Cancel] = []
    held = 0
    if old is not None:
        out.extend(old.cancel_all())
        held = old.holding
    cells = GridCells(lines, qty)
    orders, need = cells.seed(price, ctx)
    delta = need - held
    if delta:
        side = "buy" if delta > 0 else "sell"
        out.append(ctx.order(side, abs(delta) * qty, price, "market"))
    out.extend(orders)
    return cells, out


class SymmetricGrid(Strategy):
    """Grid of equal levels above and below the price, re-centred when price or regime leaves it.

    Around a centre c the lines run from ``c*(1-levels*spacing)`` to ``c*(1+levels*spacing)``
    (2·levels cells, the cells of DESIGN.md §7). The grid is re-centred on the close when the
    close leaves [lower, upper], or when the detected regime changes (``recenter_on_regime``),
    but not within ``cooldown`` bars of the last centring. Re-centring cancels the grid's orders
    and trades the difference between the base it holds and the base the new grid needs with
    one market order (the 000/002 seeds' "symmetric grid for a ranging market").
    """

    name = "symmetric"

    @frozen
    class Config:
        levels: int = option(doc="Cells on each side of the centre.", validator=at_least(1))
        spacing: float = option(doc="Distance between lines as a fraction of the centre "
                                    "(0.002 = 0.2%).", validator=positive())
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        mode: Literal["arithmetic", "geometric"] = option(
            "arithmetic", doc="Equal price steps, or equal ratios between lines.")
        recenter_on_regime: bool = option(True, doc="Re-centre when the regime label changes.")
        cooldown: int = option(30, doc="Bars to wait after a centring before the next one.",
                               validator=non_negative())

        def __attrs_post_init__(self) -> None:
            from gridkit.core.config import OptionError

            if self.levels * self.spacing >= 1:
                raise OptionError("spacing", f"levels*spacing must stay below 1 so the lowest "
                                  f"line is positive, got {self.levels * self.spacing:g}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.cells: GridCells | None = None
        self.lower = self.upper = 0.0
        self.regime: str | None = None
        self.centred_at = 0
        self.recentres = 0
        self.round_trips = 0
        self.grid_profit = 0.0

    def _centre(self, ctx: Context) -> list[Order | Cancel]:
        c = self.config
        price = ctx.bar.close
        if self.cells is not None:
            self.round_trips += self.cells.round_trips
            self.grid_profit += self.cells.grid_profit
        self.lower = price * (1 - c.levels * c.spacing)
        self.upper = price * (1 + c.levels * c.spacing)
        lines = grid_lines(self.lower, self.upper, 2 * c.levels, c.mode)
        self.cells, out = recentre(self.cells, lines, c.qty, price, ctx)
        self.regime = ctx.regime
        self.centred_at = ctx.index
        return out

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self._centre(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        if ctx.index - self.centred_at < self.config.cooldown:
            return ()
        close = ctx.bar.close
        left = close > self.upper or close < self.lower
        changed = (self.config.recenter_on_regime and ctx.regime is not None
                   and ctx.regime != self.regime)
        if left or changed:
            self.recentres += 1
            return self._centre(ctx)
        return ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        return self.cells.on_fill(fill, ctx) if self.cells is not None else ()

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        if self.cells is not None:
            self.cells.on_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        cells = self.cells.stats() if self.cells is not None else {}
        return {
            **cells,
            "round_trips": self.round_trips + cells.get("round_trips", 0),
            "grid_profit": self.grid_profit + cells.get("grid_profit", 0.0),
            "recentres": self.recentres,
            "lower": self.lower,
            "upper": self.upper,
        }
