"""gridkit: grid-trading bots built from plugins, one event loop for backtest, paper and live.

The public API: :data:`hookimpl` for plugins, the component base classes and their options,
the run state a component reads, the value types and reports they exchange, the journal's
records, the errors, and :func:`run`; and :mod:`gridkit.testing` for plugins' tests.
Everything a plugin needs is importable from here: the modules under ``gridkit.core`` are
gridkit's own and may change (see :ref:`public-api`). Importing gridkit loads no plugins and no
numeric libraries; that happens when a pipeline is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridkit.core.components import (
    Attention,
    Bus,
    Component,
    Executor,
    Feature,
    Feedback,
    Monitor,
    NoOptions,
    Objective,
    Optimizer,
    Regime,
    RiskCheck,
    SignalFilter,
    SignalGenerator,
    Source,
    Store,
    Strategy,
    Validator,
)
from gridkit.core.config import (
    OptionError,
    at_least,
    between,
    fee_rate,
    fraction,
    non_negative,
    option,
    optional,
    positive,
)
from gridkit.core.errors import (
    ComponentError,
    ConfigError,
    DataError,
    ExchangeUnreachable,
    GridkitError,
    PluginError,
    TamperedError,
)
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import (
    Accepted,
    Bar,
    BookDepth,
    BookUpdate,
    Cancel,
    Cancelled,
    Clock,
    Expired,
    Fill,
    Funding,
    FundingPaid,
    Order,
    Reject,
    Rejected,
    Rejection,
    Signal,
    Trade,
)
from gridkit.runtime.account import Account, AccountView, Position
from gridkit.runtime.context import Context, RunInfo
from gridkit.runtime.journal import (
    CancelRequested,
    Halted,
    Liquidated,
    Mark,
    OrderRequested,
    ParamChanged,
    Paused,
    PhaseChanged,
    RegimeChanged,
    Unhalted,
)
from gridkit.runtime.ledger import Ledger, OrderState

__version__ = "0.1.0"

__all__ = [
    # Config validators for component options; raise OptionError for your own checks.
    "Accepted",
    "Account",
    "AccountView",
    "Attention",
    "Bar",
    "BookDepth",
    "BookUpdate",
    "Bus",
    "Cancel",
    "CancelRequested",
    "Cancelled",
    "Clock",
    "Component",
    "ComponentError",
    "ConfigError",
    "Context",
    "DataError",
    "ExchangeUnreachable",
    "Executor",
    "Expired",
    "Feature",
    "Feedback",
    "Fill",
    "Funding",
    "FundingPaid",
    "GridStrategy",
    "GridkitError",
    "Halted",
    "Ledger",
    "Liquidated",
    "Mark",
    "Monitor",
    "NoOptions",
    "Objective",
    "Optimizer",
    "OptionError",
    "Order",
    "OrderRequested",
    "OrderState",
    "ParamChanged",
    "Paused",
    "PhaseChanged",
    "PluginError",
    "Position",
    "Regime",
    "RegimeChanged",
    "Reject",
    "Rejected",
    "Rejection",
    "RiskCheck",
    "RunInfo",
    "Signal",
    "SignalFilter",
    "SignalGenerator",
    "Source",
    "Store",
    "Strategy",
    "TamperedError",
    "Trade",
    "Unhalted",
    "Validator",
    "at_least",
    "between",
    "fee_rate",
    "fraction",
    "hookimpl",
    "non_negative",
    "option",
    "optional",
    "positive",
    "run",
]


#: The earlier name of :class:`Strategy`.
GridStrategy = Strategy


def run(pipeline: str | Path, *, db: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Run a pipeline.toml file (or TOML text, if it contains a newline); return the summary.

    ``db`` records the run in that SQLite file; ``resume`` continues the file's last run.
    """
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import load_pipeline, parse_pipeline

    text = str(pipeline)
    config = parse_pipeline(text) if "\n" in text else load_pipeline(pipeline)
    return run_pipeline(build_pipeline(config, store_path=db), resume=resume)
