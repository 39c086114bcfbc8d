"""The ``fibonacci`` grid: lines at Fibonacci retracement ratios of a price range."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.config import OptionError, option, positive
from gridkit.plugins.grids.cells import GridCells
from gridkit.plugins.grids.controls import RangeOptions
from gridkit.plugins.grids.static import StaticGrid

#: The retracement ratios: 0, 23.6 %, 38.2 %, 50 %, 61.8 %, 78.6 %, 100 %.
FIBONACCI_RATIOS = (0.0, 0.236, 0.382, 0.5, 0.618, 0.786, 1.0)


def fibonacci_lines(lower: float, upper: float, ratios: list[float]) -> list[float]:
    """Line ``i`` at ``lower + ratios[i] * (upper - lower)``."""
    return [lower + r * (upper - lower) for r in ratios]


def _ratios(_instance: Any, attribute: Any, value: list[float]) -> None:
    if len(value) < 2:
        raise OptionError(attribute.name, f"needs at least 2 ratios, got {len(value)}")
    bad = [r for r in value if not 0.0 <= r <= 1.0]
    if bad:
        raise OptionError(attribute.name, f"every ratio must be in [0, 1], got {bad[0]!r}")
    if any(b <= a for a, b in pairwise(value)):
        raise OptionError(attribute.name, f"must be strictly increasing, got {value!r}")


class FibonacciGrid(StaticGrid):
    """Grid whose lines sit at Fibonacci retracement ratios of [lower, upper].

    Line i is ``lower + ratios[i]*(upper - lower)``; with the default ratios (0, 0.236, 0.382,
    0.5, 0.618, 0.786, 1) that is 7 lines and 6 cells, narrow around the middle of the range
    and wide at its ends. The cells between consecutive lines follow DESIGN.md §7 exactly as
    ``static``'s: at the first close c0, the cells whose lower line is >= c0 hold base (bought
    with one market order) and sell at their upper line; the others buy at their lower line.
    A filled buy re-places a sell one line up, a filled sell a buy one line down, live from the
    next bar. A round trip of cell i earns ``qty*(L_{i+1} - L_i)`` less fees. Direction,
    triggers and range exit as ``static``'s
    (:class:`~gridkit.plugins.grids.controls.GridControls`).
    """

    name = "fibonacci"

    @frozen
    class Config(RangeOptions):
        lower: float = option(doc="Price of ratio 0 (quote currency).", validator=positive())
        upper: float = option(doc="Price of ratio 1.", validator=positive())
        qty: float = option(doc="Base quantity per cell.", validator=positive())
        ratios: list[float] = option(
            factory=lambda: list(FIBONACCI_RATIOS), validator=_ratios,
            doc="Line positions as fractions of the range, strictly increasing, each in "
                "[0, 1].")

        def __attrs_post_init__(self) -> None:
            if self.lower >= self.upper:
                raise OptionError("lower", f"must be below upper ({self.lower} >= {self.upper})")

    def __init__(self, config: Any = None) -> None:
        Strategy.__init__(self, config)
        c = self.config
        self.cells = GridCells(fibonacci_lines(c.lower, c.upper, c.ratios), c.qty)
