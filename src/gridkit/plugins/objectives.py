"""Built-in search objectives (kind ``objective``): ``return``, ``calmar``, ``grid-profit``,
``grid-apr``. Each reads only figures the fused runner computes, so searches scored by them
run their trials on the fused kernels when the pipeline has a fused form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gridkit.core.components import Objective
from gridkit.core.hookspecs import hookimpl


class ReturnPct(Objective):
    """The run's return, in percent of the capital: ``(final equity / capital - 1) * 100``."""

    name = "return"
    reads = frozenset({"return_pct"})

    def score(self, summary: Mapping[str, Any]) -> float:
        return float(summary["return_pct"])


class Calmar(Objective):
    """Return over risk: the return in percent over the maximum drawdown in percent (Young,
    "Calmar Ratio: A Smoother Tool", *Futures* 20(1), 1991, over the run instead of 36 months).
    No score when the run never drew down."""

    name = "calmar"
    reads = frozenset({"return_pct", "max_drawdown"})

    def score(self, summary: Mapping[str, Any]) -> float:
        dd = float(summary["max_drawdown"])
        return float(summary["return_pct"]) / (dd * 100.0) if dd > 0 else math.nan


class GridProfit(Objective):
    """The grid's realized profit in the quote currency: buys and sells matched first in,
    first out, after both fees (the summary's ``grid.grid_profit``)."""

    name = "grid-profit"
    reads = frozenset({"grid"})

    def score(self, summary: Mapping[str, Any]) -> float:
        return float((summary.get("grid") or {}).get("grid_profit", math.nan))


class GridApr(Objective):
    """The grid profit's annual rate, as exchange grid bots show it: grid profit over the
    capital, over the run's years (365-day years, from its first to its last bar); the
    summary's ``grid.grid_apr``. No score for a run shorter than a millisecond."""

    name = "grid-apr"
    reads = frozenset({"grid"})

    def score(self, summary: Mapping[str, Any]) -> float:
        apr = (summary.get("grid") or {}).get("grid_apr")
        return math.nan if apr is None else float(apr)


@hookimpl
def gridkit_register_objectives(register: Any) -> None:
    for cls in (ReturnPct, Calmar, GridProfit, GridApr):
        register(cls)
