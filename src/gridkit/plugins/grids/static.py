"""The ``static`` grid: Binance-style, fixed lines between two prices (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, option, positive
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, grid_lines, grid_preflight
from gridkit.plugins.grids.controls import GridControls, RangeOptions
from gridkit.runtime.context import Context


class StaticGrid(GridControls, Strategy):
    """Binance-style static grid between two prices.

    Lines ``L_i`` (i = 0..N) split [lower, upper] arithmetically or geometrically. At the first
    close c0, cell i holds base if ``L_i >= c0`` and sells at ``L_{i+1}``; the other cells buy
    at ``L_i``. A long grid buys the base the holding cells need with one market order (a
    short grid sells short what the other cells buy back; a neutral one trades nothing). Each
    fill flips its cell and places the opposite order, live from the next bar. A round trip
    earns ``qty*(L_{i+1}-L_i)`` less fees. Stop-loss, take-profit, the range exit policy and
    the direction are :class:`~gridkit.plugins.grids.controls.GridControls`'.
    """

    name = "static"

    @frozen
    class Config(RangeOptions):
        lower: float = option(doc="Lowest grid line (quote currency).", validator=positive())
        upper: float = option(doc="Highest grid line.", validator=positive())
        grids: int = option(doc="Number of cells N (N+1 lines).", validator=at_least(2))
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        mode: Literal["arithmetic", "geometric"] = option(
            "arithmetic", doc="Equal price steps, or equal ratios between lines.")

        def __attrs_post_init__(self) -> None:
            if self.lower >= self.upper:
                raise OptionError("lower", f"must be below upper ({self.lower} >= {self.upper})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.cells = GridCells(grid_lines(c.lower, c.upper, c.grids, c.mode), c.qty)

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        return grid_preflight(self.cells.lines, self.cells.qty, ctx.bar.close, ctx, maker_fee,
                              taker_fee, self.config.direction == "long",
                              self.config.direction)

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_start(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_bar(ctx) or ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_fill(fill, ctx)

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        self.controls_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        return self.grid_stats()
