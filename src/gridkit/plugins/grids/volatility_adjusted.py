"""The ``volatility-adjusted`` grid: a centred grid whose spacing follows the measured volatility
(the 004 seed's "volatility-adjusted" grid strategy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, at_least, non_negative, option, positive
from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells, grid_lines, grid_preflight
from gridkit.plugins.grids.controls import DirectionOptions, GridControls
from gridkit.plugins.grids.trailing import check_tick
from gridkit.runtime.context import Context

#: The feature each ``measure`` reads unless ``feature`` names another key.
DEFAULT_FEATURE = {"atr": "atr", "sigma": "volatility"}


def clamp_spacing(k: float, measured: float, low: float, high: float) -> float:
    """``k*measured`` clamped to [``low``, ``high``]."""
    s = k * measured
    return low if s < low else high if s > high else s


class VolatilityAdjustedGrid(GridControls, Strategy):
    """Grid centred on the price whose spacing follows volatility, re-laid when it moves.

    The measured volatility m is read from a feature each bar: ``ATR/close`` (``measure`` =
    atr, the ``atr`` feature, in price units) or σ (``measure`` = sigma, the ``volatility``
    feature: the standard deviation of per-bar log returns); ``feature`` names another key. The
    spacing is ``s = k*m`` clamped to [``min_spacing``, ``max_spacing``]. Laid at a close c,
    the lines run from ``c*(1 - levels*s)`` to ``c*(1 + levels*s)``, 2·levels cells (arithmetic
    or geometric steps, as ``symmetric``'s), and the cells are those of DESIGN.md §7: the
    ``levels`` cells at or above c hold base and sell at their upper line, the others buy at
    their lower line; a filled buy re-places a sell one line up, a filled sell a buy one line
    down, live from the next bar.

    The grid is laid at the first close at which m is known (none before: the feature is NaN
    until its window is full). It is re-laid at the close, with the spacing of that bar, when
    the close leaves [lower, upper], or when m has moved by more than ``threshold`` relative to
    the value m0 it was laid with (``|m - m0| > threshold*m0``) and the clamped spacing differs
    from the grid's (a spacing pinned at a bound would lay the same lines) — but never within
    ``cooldown`` bars of the last laying. Re-laying is ``symmetric``'s re-centring: cancel the
    grid's orders, lay the new grid, and trade the difference between the cells of base held
    and the cells the new grid holds with one market order. O(1) work per bar; a laying is
    O(levels).

    The feature must be in the pipeline (``[[features]] use = "atr"``): ``gridkit validate``
    and the run refuse the pipeline otherwise. The stop-loss / take-profit triggers and the
    ``long`` / ``short`` / ``neutral`` directions are every grid's
    (:class:`~gridkit.plugins.grids.controls.GridControls`); a re-laying trades the difference
    in the direction's position. The grid re-centres itself, so it has no ``on_exit``.
    """

    name = "volatility-adjusted"

    @frozen
    class Config(DirectionOptions):
        levels: int = option(doc="Cells on each side of the centre.", validator=at_least(1))
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        measure: Literal["atr", "sigma"] = option(
            "atr", doc="atr: m = ATR/close (the atr feature); sigma: m = the volatility "
                       "feature (std of per-bar log returns).")
        feature: str = option("", doc="Feature key to read m from; default: atr for measure "
                                      "atr, volatility for sigma.")
        k: float = option(2.0, doc="Spacing per unit of measured volatility: spacing = k*m.",
                          validator=positive())
        min_spacing: float = option(0.002, doc="Smallest spacing, a fraction of the centre "
                                               "(0.002 = 0.2%).", validator=positive())
        max_spacing: float = option(0.05, doc="Largest spacing, a fraction of the centre.",
                                    validator=positive())
        threshold: float = option(0.25, doc="Re-lay when m moves by more than this fraction of "
                                            "the m the grid was laid with (0.25 = 25%).",
                                  validator=positive())
        cooldown: int = option(30, doc="Bars to wait after a laying before the next one.",
                               validator=non_negative())
        mode: Literal["arithmetic", "geometric"] = option(
            "arithmetic", doc="Equal price steps, or equal ratios between lines.")

        def __attrs_post_init__(self) -> None:
            if self.min_spacing > self.max_spacing:
                raise OptionError("min_spacing", f"must not be above max_spacing "
                                  f"({self.min_spacing:g} > {self.max_spacing:g})")
            if self.levels * self.max_spacing >= 1:
                raise OptionError("max_spacing", f"levels*max_spacing must stay below 1 so the "
                                  f"lowest line is positive, got "
                                  f"{self.levels * self.max_spacing:g}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.key = c.feature or DEFAULT_FEATURE[c.measure]
        #: Read by ``gridkit validate`` and the run: the feature must be in the pipeline.
        self.requires_features = (self.key,)
        self._atr = c.measure == "atr"
        self.cells: GridCells | None = None
        self.lower = self.upper = 0.0
        self.spacing = 0.0
        self.laid_with = 0.0  # m0
        self.laid_at = 0
        self.relays = 0

    def measured(self, ctx: Context) -> float:
        """m at this bar (NaN while the feature is not ready)."""
        v = ctx.features[self.key]
        return v / ctx.bar.close if self._atr else v

    def lines(self, centre: float, spacing: float) -> list[float]:
        """The lines of a grid laid at ``centre`` with ``spacing``."""
        c = self.config
        return grid_lines(centre * (1 - c.levels * spacing), centre * (1 + c.levels * spacing),
                          2 * c.levels, c.mode)

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        # The narrowest grid it can lay (min_spacing): the worst case for the fees.
        c = self.config
        m = ctx.features.get(self.key, float("nan"))
        s = c.min_spacing if m != m else clamp_spacing(c.k, self.measured(ctx), c.min_spacing,
                                                         c.max_spacing)
        return grid_preflight(self.lines(ctx.bar.close, s), c.qty, ctx.bar.close, ctx,
                              maker_fee, taker_fee, True)

    def _lay(self, ctx: Context, m: float) -> list[Order | Cancel]:
        c = self.config
        price = ctx.bar.close
        if self.cells is not None:
            self.relays += 1
        self.spacing = clamp_spacing(c.k, m, c.min_spacing, c.max_spacing)
        lines = self.lines(price, self.spacing)
        self.lower, self.upper = lines[0], lines[-1]
        out = self.lay(GridCells(lines, c.qty), price, ctx)
        self.laid_with = m
        self.laid_at = ctx.index
        return out

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        if self.key not in ctx.features:
            raise ConfigError(f"strategy: volatility-adjusted reads feature '{self.key}', which "
                              f"no [[features]] entry provides (add use = \"{self.key}\")")
        c = self.config
        check_tick(ctx.bar.close * c.min_spacing, ctx, "the smallest grid step")
        # Direction, stop prices, leverage: checked on the widest grid it may lay.
        widest = self.lines(ctx.bar.close, c.max_spacing)
        self.controls_check(ctx, widest, [c.qty] * (len(widest) - 1))
        return self.on_bar(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        stopped = self.controls_bar(ctx)  # the triggers first (a stopped grid does nothing)
        if stopped is not None:
            return stopped
        m = self.measured(ctx)
        if self.cells is None:
            return self._lay(ctx, m) if m == m else ()
        if ctx.index - self.laid_at < self.config.cooldown:
            return ()
        close = ctx.bar.close
        if close > self.upper or close < self.lower:
            return self._lay(ctx, m if m == m else self.laid_with)
        c = self.config
        if m == m and abs(m - self.laid_with) > c.threshold * self.laid_with and \
                clamp_spacing(c.k, m, c.min_spacing, c.max_spacing) != self.spacing:
            return self._lay(ctx, m)
        return ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        return self.controls_fill(fill, ctx)

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        self.controls_rejected(rejection)
        return ()

    def stats(self) -> dict[str, Any]:
        return {
            **self.grid_stats(),
            "relays": self.relays,
            "spacing": self.spacing,
            "measured": self.laid_with,
            "lower": self.lower,
            "upper": self.upper,
        }
