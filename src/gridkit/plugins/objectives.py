"""Built-in search objectives (kind ``objective``): ``return``, ``calmar``, ``sharpe``,
``sortino``, ``profit-factor``, ``grid-profit``, ``grid-apr``. Each reads only figures the fused
runner computes, so searches scored by them run their trials on the fused kernels when the
pipeline has a fused form."""

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


class _SummaryRatio(Objective):
    """An objective that is one of the summary's ratios (None there: no score)."""

    key = ""

    def score(self, summary: Mapping[str, Any]) -> float:
        value = summary.get(self.key)
        return math.nan if value is None else float(value)


class Sharpe(_SummaryRatio):
    """The annualized Sharpe ratio of the marks' equity returns, no risk-free rate (the
    summary's ``sharpe``: mean return over its standard deviation, times the square root of
    the marks per year; Sharpe, "Mutual Fund Performance", *Journal of Business* 39, 1966)."""

    name = "sharpe"
    key = "sharpe"
    reads = frozenset({"sharpe"})


class Sortino(_SummaryRatio):
    """The annualized Sortino ratio: as ``sharpe``, over the downside deviation (only the
    losing marks count as risk; Sortino and Price, "Performance Measurement in a Downside Risk
    Framework", *Journal of Investing* 3(3), 1994). No score for a run that never lost."""

    name = "sortino"
    key = "sortino"
    reads = frozenset({"sortino"})


class ProfitFactor(_SummaryRatio):
    """Gross profit over gross loss of the closing fills (FIFO lots, after fees): above 1 the
    grid's closed trades made money. No score for a run whose closing fills never lost."""

    name = "profit-factor"
    key = "profit_factor"
    reads = frozenset({"profit_factor"})


@hookimpl
def gridkit_register_objectives(register: Any) -> None:
    for cls in (ReturnPct, Calmar, Sharpe, Sortino, ProfitFactor, GridProfit, GridApr):
        register(cls)
