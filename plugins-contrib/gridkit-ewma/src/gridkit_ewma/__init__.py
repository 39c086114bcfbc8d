"""gridkit-ewma: RiskMetrics EWMA volatility for gridkit, as a third-party plugin.

It does the two things a plugin can do with a name:

* **adds** the feature ``ewma-volatility`` (λ and warm-up as options);
* **replaces** gridkit's built-in ``volatility`` with an EWMA estimate under the same name and
  the same option ``period``, so existing pipelines and the regime rules that read the
  ``volatility`` feature switch estimator without a change to their pipeline.toml.

gridkit finds this module through the ``gridkit`` entry point in pyproject.toml and calls the
hook below once, when plugins load. A pipeline can switch the plugin off again with
``[plugins] disable = ["gridkit-ewma"]``; the built-in ``volatility`` is then back.
"""

from __future__ import annotations

from typing import Any

from gridkit import hookimpl

from gridkit_ewma.features import EwmaVolatility, EwmaVolatilityDropIn

__all__ = ["EwmaVolatility", "EwmaVolatilityDropIn"]
__version__ = "0.1.0"


@hookimpl
def gridkit_register_features(register: Any) -> None:
    """Add ``ewma-volatility`` and take over the name ``volatility`` from the built-in."""
    register(EwmaVolatility)
    # replaces= says the takeover is on purpose; without it two plugins registering one name is
    # an error that names both, so no component is ever overwritten by accident.
    register(EwmaVolatilityDropIn, replaces="volatility")
