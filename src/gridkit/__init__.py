"""gridkit: grid-trading bots built from plugins, one event loop for backtest, paper and live.

The public API: :data:`hookimpl` for plugins, the component base classes, the value types they
exchange, the errors, and :func:`run`. Importing gridkit loads no plugins and no numeric
libraries; that happens when a pipeline is built.
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
    GridStrategy,
    Monitor,
    NoOptions,
    Optimizer,
    Regime,
    RiskCheck,
    Signal,
    SignalFilter,
    Source,
    Store,
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
from gridkit.core.context import Context, RunInfo
from gridkit.core.errors import ComponentError, ConfigError, DataError, GridkitError, PluginError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import (
    Bar,
    BookDepth,
    BookUpdate,
    Cancel,
    Fill,
    Order,
    Reject,
    Rejection,
    Trade,
)

__version__ = "0.1.0"

__all__ = [
    "Attention",
    "Bar",
    "BookDepth",
    "BookUpdate",
    "Bus",
    "Cancel",
    "Component",
    "ComponentError",
    "ConfigError",
    "Context",
    "DataError",
    "Executor",
    "Feature",
    "Feedback",
    "Fill",
    "GridStrategy",
    "GridkitError",
    "Monitor",
    "NoOptions",
    "Optimizer",
    # Config validators for component options; raise OptionError for your own checks.
    "OptionError",
    "Order",
    "PluginError",
    "Regime",
    "Reject",
    "Rejection",
    "RiskCheck",
    "RunInfo",
    "Signal",
    "SignalFilter",
    "Source",
    "Store",
    "Trade",
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


def run(pipeline: str | Path, *, db: str | None = None) -> dict[str, Any]:
    """Run a pipeline.toml file (or TOML text, if it contains a newline); return the summary."""
    from gridkit.core.config import load_pipeline, parse_pipeline
    from gridkit.core.engine import build_pipeline, run_pipeline

    text = str(pipeline)
    config = parse_pipeline(text) if "\n" in text else load_pipeline(pipeline)
    return run_pipeline(build_pipeline(config, store_path=db))
