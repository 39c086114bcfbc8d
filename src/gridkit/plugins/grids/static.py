"""The ``static`` grid: Binance-style, fixed lines between two prices (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, option, positive
from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, grid_lines, grid_preflight
from gridkit.runtime.context import Context


class StaticGrid(Strategy):
    """Binance-style static grid between two prices.

    Lines ``L_i`` (i = 0..N) split [lower, upper] arithmetically or geometrically. At the first
    close c0, cell i holds base if ``L_i >= c0`` (that base is bought with one market order) and
    sells at ``L_{i+1}``; the other cells buy at ``L_i``. Each fill flips its cell and places the
    opposite order, live from the next bar. A round trip earns ``qty*(L_{i+1}-L_i)`` less fees.
    """

    name = "static"

    @frozen
    class Config:
        lower: float = option(doc="Lowest grid line (quote currency).", validator=positive())
        upper: float = option(doc="Highest grid line.", validator=positive())
        grids: int = option(doc="Number of cells N (N+1 lines).", validator=at_least(2))
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        mode: Literal["arithmetic", "geometric"] = option(
            "arithmetic", doc="Equal price steps, or equal ratios between lines.")
        direction: Literal["long", "neutral"] = option(
            "long", doc="long: buy the base the cells above the price hold (spot); neutral "
                        "(perpetuals): buy nothing, so the cells above sell short.")

        def __attrs_post_init__(self) -> None:
            if self.lower >= self.upper:
                raise OptionError("lower", f"must be below upper ({self.lower} >= {self.upper})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.cells = GridCells(grid_lines(c.lower, c.upper, c.grids, c.mode), c.qty)

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        return grid_preflight(self.cells.lines, self.config.qty, ctx.bar.close, ctx, maker_fee,
                              taker_fee, self.config.direction == "long")

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        if self.config.direction == "neutral" and ctx.position.kind == "spot":
            raise ConfigError("strategy.direction: a neutral grid sells short, which needs a "
                              "perpetual ([market] type = \"linear\")")
        neutral = self.config.direction == "neutral"
        orders, holding = self.cells.seed(ctx.bar.close, ctx, neutral)
        if holding and not neutral:
            side = {"position_side": "long"} if ctx.position.side else {}
            market = ctx.order("buy", holding * self.config.qty, ctx.bar.close, "market", **side)
            return [market, *orders]
        return orders

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        return self.cells.on_fill(fill, ctx)

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        self.cells.on_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        return self.cells.stats()
