"""The ``symmetric`` grid: equal levels above and below the price, re-centred when left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import at_least, non_negative, option, positive
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, cell_qtys, grid_lines
from gridkit.plugins.grids.controls import DirectionOptions, GridControls
from gridkit.runtime.context import Context


class SymmetricGrid(GridControls, Strategy):
    """Grid of equal levels above and below the price, re-centred when price or regime leaves it.

    Around a centre c the lines run from ``c*(1-levels*spacing)`` to ``c*(1+levels*spacing)``
    (2·levels cells, the cells of DESIGN.md §7). The grid is re-centred on the close when the
    close leaves [lower, upper], or when the detected regime changes (``recenter_on_regime``),
    but not within ``cooldown`` bars of the last centring. Re-centring cancels the grid's orders
    and trades the difference between the base it holds and the base the new grid needs with
    one market order (the 000/002 seeds' "symmetric grid for a ranging market";
    :func:`~gridkit.plugins.grids.controls.relay`). A ``short`` grid is short, after each
    centring, the base of the cells below the centre; a ``neutral`` one is flat at each
    centring. Stop-loss and take-profit as ``static``'s
    (:class:`~gridkit.plugins.grids.controls.GridControls`).
    """

    name = "symmetric"

    @frozen
    class Config(DirectionOptions):
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

    def _lines(self, price: float) -> list[float]:
        c = self.config
        self.lower = price * (1 - c.levels * c.spacing)
        self.upper = price * (1 + c.levels * c.spacing)
        return grid_lines(self.lower, self.upper, 2 * c.levels, c.mode)

    def _centre(self, ctx: Context) -> list[Order | Cancel]:
        c = self.config
        price = ctx.bar.close
        out = self.lay(GridCells(self._lines(price), c.qty), price, ctx)
        self.regime = ctx.regime
        self.centred_at = ctx.index
        return out

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        lines = self._lines(ctx.bar.close)
        self.controls_check(ctx, lines, cell_qtys(self.config.qty, len(lines) - 1))
        return self._centre(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        stop = self.controls_bar(ctx)
        if stop is not None:
            return stop
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
        return self.controls_fill(fill, ctx)

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        self.controls_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        return {**self.grid_stats(), "recentres": self.recentres, "lower": self.lower,
                "upper": self.upper}
