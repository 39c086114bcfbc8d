"""The ``geometric`` grid: centred on the start price, steps growing away from it (the VOLATILE
grid of the 000 seed: "wide, inverse distribution")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, option, positive
from gridkit.core.types import Cancel, Order
from gridkit.plugins.grids.cells import GridCells, grid_preflight
from gridkit.plugins.grids.controls import RangeOptions
from gridkit.plugins.grids.static import StaticGrid
from gridkit.runtime.context import Context


def offsets(spacing: float, growth: float, levels: int) -> list[float]:
    """The distances ``o_k`` (k = 1..levels) of the lines from the centre, as fractions of it:
    ``o_k = spacing * (1 + growth + ... + growth**(k-1))``, so step k is
    ``o_k - o_{k-1} = spacing * growth**(k-1)``."""
    out, step, total = [], spacing, 0.0
    for _ in range(levels):
        total += step
        out.append(total)
        step *= growth
    return out


def geometric_lines(centre: float, spacing: float, growth: float, levels: int) -> list[float]:
    """The ``2*levels + 1`` lines, lowest first: ``centre*(1 - o_k)`` for k = levels..1, the
    centre, then ``centre*(1 + o_k)`` for k = 1..levels (``o_k`` as in :func:`offsets`)."""
    o = offsets(spacing, growth, levels)
    return ([centre * (1.0 - x) for x in reversed(o)] + [centre]
            + [centre * (1.0 + x) for x in o])


class GeometricGrid(StaticGrid):
    """Grid centred on the start price whose steps grow away from it (the VOLATILE grid).

    At the first close c, the lines are c and ``c*(1 ± o_k)`` for k = 1..levels, where
    ``o_k = spacing*(1 + growth + ... + growth**(k-1))``: the step between line k-1 and line k
    is ``c*spacing*growth**(k-1)`` on either side, so the grid is dense near the price and
    wide away from it (growth = 1 gives equal steps). The 2·levels cells between consecutive
    lines follow DESIGN.md §7 exactly as ``static``'s: at the start the ``levels`` cells at or
    above c hold base (bought with one market order) and sell at their upper line; the cells
    below buy at their lower line. A filled buy re-places a sell one line up, a filled sell a
    buy one line down, live from the next bar. The lines stay where the first close put them
    (unless ``on_exit = "recenter"`` lays them again around a later close, the new centre).
    Direction, triggers and range exit as ``static``'s
    (:class:`~gridkit.plugins.grids.controls.GridControls`).
    """

    name = "geometric"

    @frozen
    class Config(RangeOptions):
        spacing: float = option(doc="First step either side of the centre, as a fraction of it "
                                    "(0.002 = 0.2%).", validator=positive())
        levels: int = option(doc="Lines (and cells) on each side of the centre.",
                             validator=at_least(1))
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        growth: float = option(1.5, doc="Ratio of each step to the one before it, >= 1 "
                                        "(1: equal steps).", validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            widest = offsets(self.spacing, self.growth, self.levels)[-1]
            if widest >= 1:
                raise OptionError("spacing", f"the lowest line must stay above 0: "
                                  f"spacing*(1 + growth + ... + growth**(levels-1)) = "
                                  f"{widest:g}, must be below 1")

    def __init__(self, config: Any = None) -> None:
        Strategy.__init__(self, config)
        self.cells: GridCells | None = None  # type: ignore[assignment]
        self.centre = 0.0

    def lines(self, centre: float) -> list[float]:
        """The grid's lines around ``centre`` (see :func:`geometric_lines`)."""
        c = self.config
        return geometric_lines(centre, c.spacing, c.growth, c.levels)

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        return grid_preflight(self.lines(ctx.bar.close), self.config.qty, ctx.bar.close, ctx,
                              maker_fee, taker_fee, self.config.direction == "long",
                              self.config.direction)

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        self.centre = ctx.bar.close
        self.cells = GridCells(self.lines(self.centre), self.config.qty)
        return super().start(ctx)

    def stats(self) -> dict[str, Any]:
        cells = self.cells.stats() if self.cells is not None else {}
        return {**cells, "centre": self.centre, **self.controls_stats()}
