"""The ``asymmetric`` grid: a pyramid around the start price, heavier toward the trend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, option, positive
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, grid_preflight
from gridkit.plugins.grids.controls import GridControls, RangeOptions
from gridkit.runtime.context import Context


def asymmetric_layout(price: float, spacing_up: float, spacing_down: float, levels_up: int,
                      levels_down: int, qty: float, pyramid: float,
                      trend: str) -> tuple[list[float], list[float]]:
    """The lines and the per-cell quantities of an :class:`AsymmetricGrid` started at ``price``
    (the formula of its docstring): ``levels_down + levels_up + 1`` lines, one quantity per
    cell, both from the lowest up."""
    d, u = levels_down, levels_up
    lines = [price * (1 - (d - j) * spacing_down) for j in range(d)]
    lines += [price * (1 + k * spacing_up) for k in range(u + 1)]
    below = [qty * (pyramid ** (k - 1) if trend == "down" else 1.0) for k in range(d, 0, -1)]
    above = [qty * (pyramid ** (k - 1) if trend == "up" else 1.0) for k in range(1, u + 1)]
    return lines, below + above


class AsymmetricGrid(GridControls, Strategy):
    """Pyramid grid around the start price: its own spacing and size above and below, heavier
    toward the trend (the 000 seed's TRENDING grid).

    Lines, from the first close c0 (D = ``levels_down``, U = ``levels_up``): below,
    ``c0*(1 - k*spacing_down)`` for k = 1..D; the line c0 itself; above,
    ``c0*(1 + k*spacing_up)`` for k = 1..U. They bound D + U cells; the cell k-th from c0
    (k = 1 next to it) trades ``qty*pyramid**(k-1)`` base if it lies on the ``trend`` side
    (above c0 for ``up``, below for ``down``), and ``qty`` on the other side.

    Cells and pairing are the static grid's (DESIGN.md §7): at c0, the U cells above it hold
    base (bought with one market order for the sum of their quantities) and each sells at its
    upper line; the D cells below buy at their lower line. A filled buy re-places a sell of the
    cell's quantity one line up, a filled sell a buy one line down, live from the next bar; a
    round trip earns the cell's quantity times its line step, less fees. The lines never move
    (unless ``on_exit = "recenter"`` lays the same pyramid again around a later close).
    Direction, triggers and range exit as ``static``'s
    (:class:`~gridkit.plugins.grids.controls.GridControls`): a short pyramid sells short, at
    c0, the sum of the quantities of the cells below it.
    """

    name = "asymmetric"

    @frozen
    class Config(RangeOptions):
        qty: float = option(doc="Base quantity of the cells next to the start price (and of "
                                "every cell on the side away from the trend).",
                            validator=positive())
        spacing_up: float = option(0.003, doc="Step between the lines above the start price, "
                                              "a fraction of it (0.003 = 0.3%).",
                                   validator=positive())
        spacing_down: float = option(0.002, doc="Step between the lines below the start "
                                                "price, a fraction of it.",
                                     validator=positive())
        levels_up: int = option(4, doc="Cells above the start price.", validator=at_least(1))
        levels_down: int = option(4, doc="Cells below the start price.",
                                  validator=at_least(1))
        pyramid: float = option(1.5, doc="Growth of the quantity per cell away from the start "
                                         "price on the trend side (1 = flat).",
                                validator=at_least(1))
        trend: Literal["up", "down"] = option(
            "up", doc="The heavier side: up, the cells above the start price; down, below.")

        def __attrs_post_init__(self) -> None:
            if self.levels_down * self.spacing_down >= 1:
                raise OptionError("spacing_down", f"levels_down*spacing_down must stay below 1 "
                                  f"so the lowest line is positive, got "
                                  f"{self.levels_down * self.spacing_down:g}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.cells: GridCells | None = None
        self.centre = 0.0

    def layout(self, price: float) -> tuple[list[float], list[float]]:
        """The grid's lines and per-cell quantities if it starts at ``price``."""
        c = self.config
        return asymmetric_layout(price, c.spacing_up, c.spacing_down, c.levels_up,
                                 c.levels_down, c.qty, c.pyramid, c.trend)

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        lines, qtys = self.layout(ctx.bar.close)
        return grid_preflight(lines, qtys, ctx.bar.close, ctx, maker_fee, taker_fee,
                              self.config.direction == "long", self.config.direction)

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        self.centre = ctx.bar.close
        self.cells = GridCells(*self.layout(self.centre))
        return self.controls_start(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_bar(ctx) or ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_fill(fill, ctx)

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        self.controls_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        if self.cells is None:
            return {}
        return {**self.grid_stats(), "lower": self.cells.lines[0],
                "upper": self.cells.lines[-1]}
