"""Built-in grid strategies: ``static`` and ``symmetric``."""

from __future__ import annotations

from typing import Any

from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.grids.asymmetric import AsymmetricGrid
from gridkit.plugins.grids.disabled import DisabledGrid
from gridkit.plugins.grids.static import StaticGrid
from gridkit.plugins.grids.symmetric import SymmetricGrid

__all__ = ["StaticGrid", "SymmetricGrid"]


@hookimpl
def gridkit_register_strategies(register: Any) -> None:
    register(StaticGrid)
    register(SymmetricGrid)
    register(AsymmetricGrid)
    register(DisabledGrid)
