"""Built-in grid strategies: ``static``, ``symmetric``, ``geometric`` (spacing grows away from
the price), ``fibonacci`` (lines at Fibonacci ratios of a range), ``asymmetric`` (a pyramid,
heavier toward the trend), ``volatility-adjusted`` (spacing from ATR or σ, re-laid when it
moves), ``trailing`` (follows the price one cell at a time) and ``disabled`` (stands aside);
the cells they share are in :mod:`.cells`.
``regime-selector`` runs one of them per market regime."""

from __future__ import annotations

from typing import Any

from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.grids.asymmetric import AsymmetricGrid
from gridkit.plugins.grids.disabled import DisabledGrid
from gridkit.plugins.grids.fibonacci import FibonacciGrid
from gridkit.plugins.grids.geometric import GeometricGrid
from gridkit.plugins.grids.selector import RegimeSelector
from gridkit.plugins.grids.static import StaticGrid
from gridkit.plugins.grids.symmetric import SymmetricGrid
from gridkit.plugins.grids.trailing import TrailingGrid
from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

__all__ = ["AsymmetricGrid", "DisabledGrid", "FibonacciGrid", "GeometricGrid", "RegimeSelector",
           "StaticGrid", "SymmetricGrid", "TrailingGrid", "VolatilityAdjustedGrid"]


@hookimpl
def gridkit_register_strategies(register: Any) -> None:
    register(StaticGrid)
    register(SymmetricGrid)
    register(GeometricGrid)
    register(FibonacciGrid)
    register(AsymmetricGrid)
    register(VolatilityAdjustedGrid)
    register(TrailingGrid)
    register(DisabledGrid)
    register(RegimeSelector)
