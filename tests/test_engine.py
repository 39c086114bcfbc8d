"""The engine: one loop, components resolved once, failures named, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gridkit
from gridkit import Bar, ComponentError, ConfigError, Feature, Monitor, hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.runtime.engine import STAGES

BASE = """
[pipeline]
name = "engine-test"
symbol = "BTC/USDT"
capital = 100000
[source]
use = "freqtrade-json"
path = "{sample}"
[strategy]
use = "static"
lower = 50000
upper = 58000
grids = 16
qty = 0.05
"""


class Boom(Feature):
    """Raises on the 100th bar it sees."""

    name = "boom"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.n = 0

    def update(self, bar: Bar) -> float:
        self.n += 1
        if self.n == 100:
            raise ValueError("cannot compute")
        return 0.0


class TradesOnly(Feature):
    """Reads trade prints, which bar sources do not have."""

    name = "trades-only"
    inputs = frozenset({"trades"})

    def update(self, bar: Bar) -> float:
        return 0.0


class BoomPlugin:
    @staticmethod
    @hookimpl
    def gridkit_register_features(register: Any) -> None:
        register(Boom)
        register(TradesOnly)


@pytest.fixture
def boom(gridkit_register_plugin: Callable[..., PluginHost]) -> PluginHost:
    return gridkit_register_plugin(BoomPlugin, "boomer")


def test_summary_has_every_field_of_design_7_and_stage_latency(
        gridkit_run_toml: Callable[..., dict[str, Any]]) -> None:
    s = gridkit_run_toml(BASE)
    for key in ("bars_seen", "bars_accepted", "bars_dropped", "buy_fills", "sell_fills",
                "fees_paid", "final_cash", "final_base", "final_equity", "realized_profit",
                "max_drawdown"):
        assert key in s, key
    assert s["bars_seen"] == s["bars_accepted"] == 3000
    # Stages with nothing to do in this pipeline are not run, so not timed.
    assert {"validate", "fills", "account", "strategy", "execute", "event"} <= set(
        s["latency_us"]) <= {*STAGES, "event"}
    for q in s["latency_us"].values():
        assert 0 <= q["p50"] <= q["p99"]
    assert s["unreconciled_orders"] == []
    json.dumps(s)  # JSON-able as it is


def test_a_component_raising_mid_run_is_named_and_the_store_keeps_what_came_before(
        boom: PluginHost, gridkit_run_toml: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    text = BASE + '[[features]]\nuse = "boom"\n[store]\nuse = "sqlite"\nbatch = 10\n'
    with pytest.raises(ComponentError) as err:
        gridkit_run_toml(text, db=str(db))
    msg = str(err.value)
    assert msg.startswith("feature 'boom' (plugin boomer) raised on event #100")
    assert "(features[0])" in msg and "ValueError: cannot compute" in msg
    conn = sqlite3.connect(db)
    status, error, summary = conn.execute("SELECT status, error, summary FROM runs").fetchone()
    equity_rows = conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0]
    fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert status == "failed" and "cannot compute" in error
    # The summary of a failed run still counts what was processed up to the failure.
    recorded = json.loads(summary)
    assert recorded["bars_accepted"] == 100 and recorded["first_ts"] is not None
    assert recorded["latency_us"]["event"]["p50"] > 0
    # Bars before the failing one were accounted and flushed: the 99 before it, plus the
    # failing bar's own equity row (accounted before features ran).
    assert equity_rows == 100
    assert fills >= 1


def test_a_feature_that_needs_trades_on_a_bar_source_is_refused(
        boom: PluginHost, gridkit_run_toml: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as err:
        gridkit_run_toml(BASE + '[[features]]\nuse = "trades-only"\n')
    assert ("features[0]: feature 'trades-only' reads trades, which source 'freqtrade-json' "
            "does not provide") in str(err.value)


def test_a_regime_rule_without_its_feature_is_refused(
        gridkit_run_toml: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ConfigError) as err:
        gridkit_run_toml(BASE + '[[regimes]]\nuse = "trending"\n')
    assert "regimes[0]: regime 'trending' reads feature 'rsi', which no [[features]]" in str(
        err.value)


class Counting(Monitor):
    """Counts events and remembers the first and last portfolio equity it saw."""

    name = "counting"
    seen: list[float] = []

    def on_event(self, ctx: Any) -> None:
        Counting.seen.append(ctx.portfolio.equity)


class MonitorPlugin:
    @staticmethod
    @hookimpl
    def gridkit_register_monitors(register: Any) -> None:
        register(Counting)


def test_monitors_see_every_accepted_event(gridkit_register_plugin: Callable[..., PluginHost],
                                           gridkit_run_toml: Callable[..., dict[str, Any]]
                                           ) -> None:
    gridkit_register_plugin(MonitorPlugin, "mon")
    Counting.seen = []
    s = gridkit_run_toml(BASE + '[[monitors]]\nuse = "counting"\n')
    assert len(Counting.seen) == s["bars_accepted"]
    assert Counting.seen[-1] == s["final_equity"]


def test_drawdown_halts_cancels_everything_and_places_nothing_more(
        btc_1m: Path, gridkit_run_toml: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    text = BASE.replace("{sample}", btc_1m.as_posix()).replace(
        "lower = 50000", "lower = 30000").replace("capital = 100000", "capital = 20000").replace(
        "qty = 0.05", "qty = 0.02") + '[[risk]]\nuse = "drawdown"\nlimit = 0.1\n'
    db = tmp_path / "r.db"
    s = gridkit_run_toml(text, db=str(db))
    assert s["halted"] and "drawdown" in s["halted"]
    assert s["open_orders"] == 0 and s["unreconciled_orders"] == []
    tripped = s["components"]["risk[0]"]["tripped_at"]
    conn = sqlite3.connect(db)
    late = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'placed' AND ts > ?",
                        (tripped,)).fetchone()[0]
    late_fills = conn.execute("SELECT COUNT(*) FROM fills WHERE ts > ?", (tripped,)).fetchone()[0]
    assert late == 0 and late_fills == 0


def test_position_size_caps_base_held_plus_open_buys(
        btc_1m: Path, gridkit_run_toml: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    text = BASE.replace("{sample}", btc_1m.as_posix()).replace(
        "lower = 50000", "lower = 30000").replace("grids = 16", "grids = 30") + (
        '[[risk]]\nuse = "position-size"\nmax_base = 0.5\n')
    db = tmp_path / "r.db"
    s = gridkit_run_toml(text, db=str(db))
    assert s["orders_rejected"] > 0
    assert list(s["rejected_by"]) == ["position-size: position above max_base 0.5"]
    conn = sqlite3.connect(db)
    # Base after every bar stays under the cap (the cap counts open buys too, so it binds
    # before the fills could break it).
    assert conn.execute("SELECT MAX(base) FROM equity").fetchone()[0] <= 0.5 + 1e-9
    assert s["unreconciled_orders"] == []


def test_cli_failed_run_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # A plugin that raises mid-run, installed as a real entry point for the subprocess.
    (tmp_path / "boomplug.py").write_text(
        "from gridkit import Feature, hookimpl\n"
        "class Boom(Feature):\n"
        "    '''Raises.'''\n"
        "    name = 'boom'\n"
        "    def update(self, bar):\n"
        "        raise ZeroDivisionError('division by zero')\n"
        "@hookimpl\n"
        "def gridkit_register_features(register):\n"
        "    register(Boom)\n")
    info = tmp_path / "gridkit_boom-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gridkit-boom\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gridkit]\nboom = boomplug\n")
    from gridkit.testing import sample_path

    toml = tmp_path / "p.toml"
    toml.write_text(BASE.replace("{sample}", sample_path().as_posix())
                    + '[[features]]\nuse = "boom"\n')
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin",
           "GRIDKIT_LOAD_PLUGINS": "gridkit-boom"}
    out = subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()", "run",
                          str(toml)], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("Error: feature 'boom' (plugin boom (gridkit-boom)) raised on "
                               "event #1")


@pytest.mark.parametrize("value, ok", [("high", False), (None, False), (True, False),
                                       (np.float64(0.5), True), (1, True)])
def test_a_feature_returning_a_non_number_is_blamed_not_the_regime_reading_it(
        gridkit_host: PluginHost, gridkit_run_toml: Any, value: Any, ok: bool) -> None:
    """A plugin feature that returns a string used to crash the regime rule that read it;
    the feature stage now names the feature. Numbers of other types (numpy, int) are
    taken as floats."""

    class Odd(gridkit.Feature):
        """Returns something that may not be a number."""

        name = "trend-strength"  # what the built-in trending regime reads

        def update(self, bar: Any) -> Any:
            return value

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: Any) -> None:
            register(Odd, replaces="trend-strength")

    gridkit_host.register(Plugin, "odd")
    toml = """
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample}"
[[features]]
use = "trend-strength"
[[features]]
use = "rsi"
[[regimes]]
use = "trending"
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 10
qty = 0.001
"""
    if ok:
        assert gridkit_run_toml(toml)["status"] == "finished"
        return
    with pytest.raises(gridkit.ComponentError) as err:
        gridkit_run_toml(toml)
    assert "feature 'trend-strength' (plugin odd)" in str(err.value)
    assert "not a number" in str(err.value)
