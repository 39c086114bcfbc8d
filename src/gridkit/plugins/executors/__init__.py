"""Built-in executors: ``simulated``, the bar fill model of DESIGN.md §6 (:mod:`.bars`), and
``simulated-trades``, fills from trade prints (:mod:`.trades`), and ``paper``, the same fills
from a live run's prints (:mod:`.paper`); what they share is in :mod:`.base`."""

from __future__ import annotations

from typing import Any

from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.executors.bars import SimulatedExecutor
from gridkit.plugins.executors.base import SimulatedBase
from gridkit.plugins.executors.paper import PaperExecutor
from gridkit.plugins.executors.trades import SimulatedTradesExecutor

__all__ = ["PaperExecutor", "SimulatedBase", "SimulatedExecutor", "SimulatedTradesExecutor"]


@hookimpl
def gridkit_register_executors(register: Any) -> None:
    register(SimulatedExecutor)
    register(SimulatedTradesExecutor)
    register(PaperExecutor)
