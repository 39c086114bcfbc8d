"""Built-in executors: ``simulated``, the bar fill model of DESIGN.md §6 (:mod:`.bars`),
``simulated-trades``, fills from trade prints (:mod:`.trades`), ``paper``, the same fills from a
live run's prints (:mod:`.paper`), and ``ccxt``, real orders on an exchange (:mod:`.ccxt_live`,
which imports ccxt only when a run uses it); what the simulated ones share is in :mod:`.base`."""

from __future__ import annotations

from typing import Any

from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.executors.bars import SimulatedExecutor
from gridkit.plugins.executors.base import SimulatedBase
from gridkit.plugins.executors.ccxt_live import CcxtExecutor
from gridkit.plugins.executors.paper import PaperExecutor
from gridkit.plugins.executors.trades import SimulatedTradesExecutor

__all__ = ["CcxtExecutor", "PaperExecutor", "SimulatedBase", "SimulatedExecutor",
           "SimulatedTradesExecutor"]


@hookimpl
def gridkit_register_executors(register: Any) -> None:
    register(SimulatedExecutor)
    register(SimulatedTradesExecutor)
    register(PaperExecutor)
    register(CcxtExecutor)
