"""Tests of gridkit-ewma: the contract, the math, and both sides of the registry (add, replace).

The fixtures (``gridkit_host``, ``gridkit_run_toml``, ``gridkit_sample_bars``, ...) and
``FeatureContract`` come from ``gridkit.testing``, a pytest plugin installed with gridkit: no
import or conftest wiring is needed for them. Only gridkit's public API is used (``gridkit``
and ``gridkit.testing``), as a package outside the gridkit repository would.
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from gridkit import ConfigError
from gridkit.testing import FeatureContract, build, registry

from gridkit_ewma import EwmaVolatility, EwmaVolatilityDropIn

# --- the contract every feature must keep (streaming == batch, NaN until ready, ...) -----------


class TestEwmaVolatility(FeatureContract):
    component_class = EwmaVolatility


class TestEwmaVolatilityTuned(FeatureContract):
    # Non-default options: a different λ and warm-up must agree just as exactly.
    component_class = EwmaVolatility
    options = {"lam": 0.97, "warmup": 50}


class TestEwmaVolatilityDropIn(FeatureContract):
    component_class = EwmaVolatilityDropIn
    options = {"period": 30}


# --- the math, against an independent computation ----------------------------------------------


def riskmetrics_reference(close: np.ndarray, lam: float, warmup: int) -> np.ndarray:
    """σ from the unrolled RiskMetrics sum, not the recurrence: an independent check of it.

    With r_k = ln(c_k / c_{k-1}) the return into bar k and σ²_w the mean of the first w squared
    returns, the recurrence unrolls to σ²_t = λ^(t−w)·σ²_w + (1 − λ)·Σ_{k=w+1..t} λ^(t−k)·r_k².
    """
    r2 = np.log(close[1:] / close[:-1]) ** 2  # r2[k - 1] is r_k²
    out = np.full(close.shape, np.nan)
    seed = r2[:warmup].mean()
    for t in range(warmup, close.shape[0]):
        k = np.arange(warmup + 1, t + 1)
        var = lam ** (t - warmup) * seed + (1.0 - lam) * np.sum(lam ** (t - k) * r2[k - 1])
        out[t] = math.sqrt(var)
    return out


@pytest.mark.parametrize(
    ("cls", "options", "lam", "warmup"),
    [
        (EwmaVolatility, {}, 0.94, 20),
        (EwmaVolatility, {"lam": 0.8, "warmup": 5}, 0.8, 5),
        # The drop-in reads `period` as an EWMA span: λ = 1 − 2/(n + 1), warm-up n.
        (EwmaVolatilityDropIn, {"period": 20}, 1.0 - 2.0 / 21.0, 20),
    ],
)
def test_streaming_matches_the_formula(cls: type, options: dict[str, Any], lam: float,
                                       warmup: int, gridkit_sample_bars: list[Any],
                                       gridkit_sample_columns: dict[str, Any]) -> None:
    feature = build(cls, options)
    streamed = np.array([feature.update(b) for b in gridkit_sample_bars])
    expected = riskmetrics_reference(gridkit_sample_columns["close"], lam, warmup)
    # NaN for exactly the first `warmup` bars (bar 0 has no return), σ from then on.
    assert np.isnan(streamed[:warmup]).all()
    assert not np.isnan(streamed[warmup:]).any()
    np.testing.assert_allclose(streamed, expected, rtol=1e-12, atol=0.0)


def test_importing_the_plugin_does_not_import_numba() -> None:
    # Plugins load when any gridkit command runs, `--help` included: the kernel must wait.
    code = "import sys, gridkit_ewma; print(sorted({'numba', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the registry: one name added, one built-in replaced ---------------------------------------


def builtin_volatility() -> type:
    """The class of gridkit's own ``volatility``, which this plugin sets aside."""
    [old] = [r for r in registry().replaced if (r.kind, r.name) == ("feature", "volatility")]
    return old.cls


def test_adds_ewma_volatility_and_replaces_volatility(gridkit_host: Any) -> None:
    components = registry()

    added = components.get("feature", "ewma-volatility")
    assert added.cls is EwmaVolatility
    assert (added.plugin, added.distribution, added.replaces) == ("ewma", "gridkit-ewma", None)

    taken = components.get("feature", "volatility")
    assert taken.cls is EwmaVolatilityDropIn
    assert (taken.plugin, taken.distribution, taken.replaces) == (
        "ewma", "gridkit-ewma", "volatility")

    # The built-in is not gone, only set aside: it is what `disable` brings back.
    [old] = [r for r in components.replaced if (r.kind, r.name) == ("feature", "volatility")]
    assert old.cls.__module__.startswith("gridkit.")
    assert (old.plugin, old.distribution) == ("gridkit.features", "gridkit")


# --- whole pipelines -----------------------------------------------------------------------------

PIPELINE = """
[pipeline]
symbol = "BTC/USDT"
capital = 10000

[source]
use = "freqtrade-json"
path = "{{sample}}"
{features}
[strategy]
use = "static"
lower = 50000
upper = 58000
grids = 16
qty = 0.01
{extra}
"""

BOTH_FEATURES = """
[[features]]
use = "ewma-volatility"
lam = 0.94

[[features]]
use = "volatility"          # the name of the built-in, now answered by the plugin
period = 20
"""


def test_pipeline_runs_on_the_ewma_volatility(gridkit_run_toml: Any,
                                              gridkit_sample_bars: list[Any]) -> None:
    summary = gridkit_run_toml(PIPELINE.format(features=BOTH_FEATURES, extra="""
[[regimes]]
use = "volatile"            # reads the feature key "volatility"
"""))
    assert summary["status"] == "finished"
    assert summary["bars_dropped"] == 0
    # The regime stage scored on the EWMA estimate and labelled the bars.
    assert summary["regime"] == "VOLATILE"

    # Both features ran, and they are the plugin's: the built-in reports no stats.
    comps = summary["components"]
    assert comps["features[0]"]["estimator"] == "ewma"
    assert comps["features[0]"]["lam"] == 0.94
    assert comps["features[1]"]["estimator"] == "ewma"
    assert comps["features[1]"]["lam"] == 1.0 - 2.0 / 21.0
    assert comps["features[1]"]["returns"] == len(gridkit_sample_bars) - 1

    # What `volatility` gave the regime is the EWMA σ, not the built-in's rolling std.
    ewma = build(EwmaVolatilityDropIn, {"period": 20})
    rolling = build(builtin_volatility(), {"period": 20})
    ewma_values = np.array([ewma.update(b) for b in gridkit_sample_bars])
    rolling_values = np.array([rolling.update(b) for b in gridkit_sample_bars])
    assert comps["features[1]"]["last"] == ewma_values[-1]
    assert comps["features[1]"]["last"] != rolling_values[-1]
    ready = slice(20, None)  # both are ready from bar 20 on
    assert not np.allclose(ewma_values[ready], rolling_values[ready], rtol=1e-3)
    # ... yet a drop-in: the same scale, so thresholds tuned on the built-in still make sense.
    assert 0.5 < np.median(ewma_values[ready] / rolling_values[ready]) < 2.0


def test_options_are_validated(gridkit_run_toml: Any) -> None:
    with pytest.raises(ConfigError) as err:
        gridkit_run_toml(PIPELINE.format(features="""
[[features]]
use = "ewma-volatility"
lam = 1.0
[[features]]
use = "volatility"
period = 1
""", extra=""))
    message = str(err.value)
    assert "features[0].lam: must be in (0, 1), got 1.0" in message
    assert "features[1].period: must be >= 2, got 1" in message


def test_disable_brings_the_builtin_back(gridkit_run_toml: Any, gridkit_host: Any) -> None:
    disable = '\n[plugins]\ndisable = ["gridkit-ewma"]\n'

    # The added name is gone for this pipeline ...
    with pytest.raises(ConfigError, match="unknown feature 'ewma-volatility'"):
        gridkit_run_toml(PIPELINE.format(features=BOTH_FEATURES, extra=disable))

    # ... and the replaced one is the built-in again: what the pipeline sees, and what ran.
    without = registry(disable=["gridkit-ewma"])
    assert without.get("feature", "volatility").cls is builtin_volatility()
    assert without.get("feature", "volatility").distribution == "gridkit"
    summary = gridkit_run_toml(PIPELINE.format(features='[[features]]\nuse = "volatility"\n',
                                               extra=disable))
    assert summary["status"] == "finished"
    assert "estimator" not in summary["components"].get("features[0]", {})

    # The same host, without the pipeline's `disable`, still has the plugin: it is per pipeline.
    assert registry().get("feature", "volatility").cls is EwmaVolatilityDropIn
