"""Regime rules and progressive attention on the real BTC/USDT 1m month with the 19 May 2021 crash.

A recording monitor (a test plugin) keeps what the pipeline decided on every bar, so the tests can
check the labels bar by bar, and the attention statistics against numpy on the same values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gridkit
from gridkit.plugins.attention import Progressive
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
from gridkit.plugins.regimes import Dormant, Ranging, Trending, Volatile
from gridkit.runtime.context import Context
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import AttentionContract, RegimeContract, sample_path
from helpers import expect

#: One record per accepted bar: (ts, regime label, regime score, features, weights).
RECORDED: list[tuple[int, str | None, float, dict[str, float], dict[str, float]]] = []
#: Every gridkit_phase_changed call: (component, old, new, bars recorded so far).
PHASES: list[tuple[Any, str, str, int]] = []


class Recorder(gridkit.Monitor):
    """Records the regime, features and attention weights of every accepted bar (tests only)."""

    name = "test-recorder"

    def on_event(self, ctx: Context) -> None:
        RECORDED.append((ctx.bar.ts, ctx.regime, ctx.regime_score, dict(ctx.features),
                         dict(ctx.weights)))


class RecorderPlugin:
    """A test plugin: registers the recording monitor and watches phase changes."""

    @staticmethod
    @gridkit.hookimpl
    def gridkit_register_monitors(register: Any) -> None:
        register(Recorder)

    @staticmethod
    @gridkit.hookimpl
    def gridkit_phase_changed(component: Any, old: str, new: str) -> None:
        PHASES.append((component, old, new, len(RECORDED)))


@pytest.fixture
def recorded(gridkit_register_plugin: Any) -> Iterator[list[Any]]:
    """The records of the next run (the recorder plugin is registered on the test's host)."""
    RECORDED.clear()
    PHASES.clear()
    gridkit_register_plugin(RecorderPlugin, "test-recorder-plugin")
    yield RECORDED
    RECORDED.clear()
    PHASES.clear()


def utc_ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
               .timestamp() * 1000)


FEATURES = """
[[features]]
use = "rsi"
[[features]]
use = "volatility"
[[features]]
use = "volume-ratio"
"""
REGIMES = """
[[regimes]]
use = "ranging"
[[regimes]]
use = "trending"
[[regimes]]
use = "volatile"
[[regimes]]
use = "dormant"
"""


def pipeline(path: Path | str, body: str) -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{Path(path).as_posix()}"
{body}
[[monitors]]
use = "test-recorder"
[strategy]
use = "static"
lower = 30000
upper = 60000
grids = 10
qty = 0.001
"""


# --- regimes on the real month --------------------------------------------------------------------


def test_regime_labels_on_real_btc(btc_1m: Path, recorded: list[Any],
                                   gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(pipeline(btc_1m, FEATURES + REGIMES))
    assert summary["status"] == "finished"
    assert len(recorded) == summary["bars_accepted"] == 42_915
    labels = [r[1] for r in recorded]
    # No rule can score before RSI (14 changes) is ready; after the longest warm-up (20 bars
    # for volatility and volume-ratio) every bar has a label and a score in [0, 1].
    assert labels[:14] == [None] * 14
    assert all(label is not None for label in labels[20:])
    assert all(0.0 <= r[2] <= 1.0 for r in recorded[20:])
    assert all(math.isnan(r[2]) for r in recorded[:14])
    assert summary["regime"] == labels[-1]
    counts = Counter(labels[20:])
    assert set(counts) <= {"RANGING", "TRENDING", "VOLATILE", "DORMANT"}
    assert len(counts) >= 3, counts
    assert {"RANGING", "TRENDING", "VOLATILE"} <= set(counts)

    # The 19 May 2021 crash, 12:00-15:00 UTC (BTC -30 % intraday): not a ranging market.
    start, end = utc_ms("2021-05-19 12:00"), utc_ms("2021-05-19 15:00")
    crash = Counter(r[1] for r in recorded if start <= r[0] < end)
    assert sum(crash.values()) == 180
    assert crash["VOLATILE"] + crash["TRENDING"] > crash["RANGING"], crash
    share = crash["RANGING"] / 180
    assert share < counts["RANGING"] / sum(counts.values()), "less ranging than the month"


def test_labels_follow_the_highest_score(btc_1m: Path, recorded: list[Any],
                                         gridkit_run_toml: Any) -> None:
    # Re-score every recorded bar with fresh rules: the engine's label is the rule that scores
    # highest, ties to the rule listed first (stateful rules see the same event sequence),
    # with no minimum dwell (regime_dwell = 1; the default of 3 is tested in
    # test_regime_labels.py).
    gridkit_run_toml(pipeline(btc_1m, FEATURES + REGIMES).replace(
        '[pipeline]\n', '[pipeline]\nregime_dwell = 1\n', 1))
    rules = [Ranging(), Trending(), Volatile(), Dormant()]
    ctx = Context(gridkit.RunInfo("t", "backtest", "BTC/USDT", 1.0))
    for ts, label, score, features, _ in recorded:
        ctx.features = features
        scores = [(rule.score(ctx), rule.label) for rule in rules]
        best_label, best = None, math.nan
        for s, lab in scores:
            if not math.isnan(s) and (math.isnan(best) or s > best):
                best_label, best = lab, s
        assert label == best_label, ts
        assert score == best or (math.isnan(score) and math.isnan(best))


@pytest.mark.parametrize(("regimes", "features", "names"), [
    ('[[regimes]]\nuse = "ranging"\n', '[[features]]\nuse = "volatility"\n',
     ["regimes[0]", "'ranging'", "'rsi'"]),
    ('[[regimes]]\nuse = "dormant"\n', '[[features]]\nuse = "volatility"\n',
     ["regimes[0]", "'dormant'", "'volume-ratio'"]),
    ('[[regimes]]\nuse = "trending"\nrsi = "rsi-fast"\n', '[[features]]\nuse = "rsi"\n',
     ["regimes[0]", "'trending'", "'rsi-fast'"]),
    ('[[regimes]]\nuse = "trending"\n[[regimes]]\nuse = "volatile"\n', "",
     ["regimes[0]", "'rsi'", "regimes[1]", "'volatility'"]),
])
def test_regime_reading_a_missing_feature_is_a_config_error(
        gridkit_host: Any, regimes: str, features: str, names: list[str]) -> None:
    config = parse_pipeline(pipeline(sample_path(), features + regimes).replace(
        '[[monitors]]\nuse = "test-recorder"\n', ""))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    text = str(info.value)
    for name in names:
        assert name in text, text
    assert "\n" not in text


def test_regime_reading_a_keyed_feature_builds(gridkit_host: Any) -> None:
    config = parse_pipeline(pipeline(sample_path(), """
[[features]]
use = "rsi"
key = "rsi-fast"
period = 6
[[regimes]]
use = "trending"
rsi = "rsi-fast"
""").replace('[[monitors]]\nuse = "test-recorder"\n', ""))
    built = build_pipeline(config, gridkit_host)
    assert [k for k, _ in built.features] == ["rsi-fast"]
    assert built.regimes[0].requires_features == ("rsi-fast",)


# --- progressive attention ----------------------------------------------------------------------


def test_progressive_learning_statistics(data_dir: Path, recorded: list[Any],
                                         gridkit_run_toml: Any) -> None:
    # SOL 5m with zero-volume bars dropped: attention must count accepted bars, not rows.
    path = data_dir / "ohlcv" / "nostalgiaforinfinity" / "SOL_USDT-5m.json"
    summary = gridkit_run_toml(pipeline(path, FEATURES + """
[[attention]]
use = "progressive"
[[validators]]
use = "timestamp"
[[validators]]
use = "price"
[[validators]]
use = "volume"
zero = "drop"
[[validators]]
use = "ohlc"
"""))
    rows, zero = expect((65_744, 39), (7_500, 22))  # the whole file, or its slice
    assert summary["bars_seen"] == rows
    assert summary["bars_accepted"] == rows - zero == len(recorded)
    stats = summary["components"]["attention[0]"]
    assert stats["phase"] == "learning"
    assert stats["observed"] == summary["bars_accepted"]
    assert PHASES == [], "learn_events (100,000) is never reached"
    assert all(r[4] == {} for r in recorded), "learning never writes ctx.weights"
    assert set(stats["features"]) == {"rsi", "volatility", "volume-ratio"}
    for key, got in stats["features"].items():
        values = np.array([r[3][key] for r in recorded])
        ready = values[~np.isnan(values)]
        assert got["ready"] == len(ready)
        assert math.isclose(got["mean"], float(np.mean(ready)), rel_tol=1e-9)
        assert math.isclose(got["std"], float(np.std(ready, ddof=1)), rel_tol=1e-9)
    assert stats["features"]["rsi"]["ready"] == len(recorded) - 14
    assert stats["features"]["volatility"]["ready"] == len(recorded) - 20


def test_progressive_moves_to_shadow_once(btc_1m: Path, recorded: list[Any],
                                          gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(pipeline(btc_1m, FEATURES + """
[[attention]]
use = "progressive"
learn_events = 100
learn_trades = 0
"""))
    stats = summary["components"]["attention[0]"]
    assert stats["phase"] == "shadow"
    assert stats["observed"] == 42_915
    assert len(PHASES) == 1
    component, old, new, at = PHASES[0]
    assert isinstance(component, Progressive)
    assert (old, new) == ("learning", "shadow")
    assert at == 99, "the 100th event changes the phase, before its monitors run"
    assert all(r[4] == {} for r in recorded), "shadow changes nothing either"


def test_progressive_statistics_match_welford_on_sample(gridkit_sample_bars: list[Any]) -> None:
    # Direct use, with NaN and an always-NaN feature: NaN is skipped, never averaged.
    module = Progressive()
    ctx = Context(gridkit.RunInfo("t", "backtest", "BTC/USDT", 1.0))
    rsi = Rsi()
    seen = []
    for bar in gridkit_sample_bars:
        ctx.bar = bar
        ctx.features["rsi"] = value = rsi.update(bar)
        ctx.features["never"] = math.nan
        seen.append(value)
        module.observe(ctx)
    values = np.array(seen)
    ready = values[~np.isnan(values)]
    got = module.feature_stats()
    assert set(got) == {"rsi"}
    assert got["rsi"]["ready"] == len(ready) == len(gridkit_sample_bars) - 14
    assert math.isclose(got["rsi"]["mean"], float(ready.mean()), rel_tol=1e-9)
    assert math.isclose(got["rsi"]["std"], float(ready.std(ddof=1)), rel_tol=1e-9)


# --- contract tests ------------------------------------------------------------------------------


class _RequiresWhatItReads:
    """The features a rule declares are exactly the ones the contract feeds it."""

    def test_requires_features_match(self) -> None:
        rule = self.make()  # type: ignore[attr-defined]
        assert set(rule.requires_features) == {k for k, _, _ in self.features}  # type: ignore


class TestRangingContract(_RequiresWhatItReads, RegimeContract):
    component_class = Ranging
    features = [("rsi", Rsi, {}), ("volatility", Volatility, {})]


class TestRangingFastContract(_RequiresWhatItReads, RegimeContract):
    component_class = Ranging
    options = {"rsi": "rsi-6", "volatility": "vol-10", "slow": 50}
    features = [("rsi-6", Rsi, {"period": 6}), ("vol-10", Volatility, {"period": 10})]


class TestTrendingContract(_RequiresWhatItReads, RegimeContract):
    component_class = Trending
    features = [("rsi", Rsi, {})]


class TestVolatileContract(_RequiresWhatItReads, RegimeContract):
    component_class = Volatile
    features = [("volatility", Volatility, {})]


class TestDormantContract(_RequiresWhatItReads, RegimeContract):
    component_class = Dormant
    features = [("volume-ratio", VolumeRatio, {}), ("volatility", Volatility, {})]


class TestProgressiveContract(AttentionContract):
    component_class = Progressive


class TestProgressiveShortContract(AttentionContract):
    component_class = Progressive
    options = {"learn_events": 100}
