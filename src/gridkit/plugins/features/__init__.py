"""Built-in features: ``rsi``, ``volatility``, ``volume-ratio``.

Each feature keeps its streaming state in plain Python (one O(1) update per bar) and its batch
math in :mod:`gridkit.plugins.features.kernels` (numba, imported only when ``batch`` runs).
"""

from __future__ import annotations

from typing import Any

from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.features.rsi import Rsi
from gridkit.plugins.features.volatility import Volatility
from gridkit.plugins.features.volume_ratio import VolumeRatio

__all__ = ["Rsi", "Volatility", "VolumeRatio"]


@hookimpl
def gridkit_register_features(register: Any) -> None:
    for cls in (Rsi, Volatility, VolumeRatio):
        register(cls)
