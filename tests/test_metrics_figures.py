"""The run's figures (``gridkit.runtime.metrics``): latency, log counts, the day's loss, the grid
fill rate, attention, and one RunMetrics shared by the figure monitors of a run."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from gridkit import Bar, Trade
from gridkit.logs import log_reconnect
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.journal import Journal
from gridkit.runtime.metrics import FIGURES, RunMetrics
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib
from gridkit.testing import advance, context

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str = "pipeline.toml") -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / name).read_text())
    data["source"]["path"] = str(EXAMPLES / data["source"]["path"])
    return data


def test_event_latency_is_wall_clock_less_the_events_exchange_time() -> None:
    m = RunMetrics(clock=True)
    ctx = context()
    now = int(time.time() * 1000)
    for k in range(100):  # prints k ms old when the bot is done with them
        ctx.event = Trade(now - k, 60_000.0, 0.01, "buy")
        m.on_event(ctx)
    v = m.values(system=False)
    assert 49 <= v["latency_p50_ms"] < 49 + 500  # (500: this machine's slowest moment)
    assert 98 <= v["latency_p99_ms"] < 98 + 500
    # a bar's exchange time is its close: its span is learned from the bars themselves
    bars = RunMetrics(clock=True)
    now = int(time.time() * 1000)
    for ts in (now - 180_000, now - 120_000):
        advance(ctx, Bar(ts, 1.0, 1.0, 1.0, 1.0, 1.0))
        bars.on_event(ctx)
    assert bars.latencies == 1  # the first bar's span was not known yet
    assert 0 <= bars.values(system=False)["latency_p50_ms"] < 60_000 + 500


def test_a_backtest_keeps_no_clock() -> None:
    m = RunMetrics(clock=False)
    ctx = context(bar=Bar(1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 1.0))
    m.on_event(ctx)
    v = m.values(system=False)
    assert v["latency_p50_ms"] is None and v["last_event_age_s"] is None and v["events"] == 1


def test_error_lines_and_reconnects_are_counted_while_started() -> None:
    m = RunMetrics()
    m.start(Journal())
    try:
        logging.getLogger("gridkit.executor").error("order refused")
        logging.getLogger("gridkit.executor").warning("slow answer")
        log_reconnect("binance trades stream", 2, 0.5, OSError("reset"))
        logging.getLogger("elsewhere").error("not gridkit's")
    finally:
        m.close()
    logging.getLogger("gridkit.executor").error("after the run")
    v = m.values(system=False)
    assert (v["errors"], v["reconnects"]) == (1, 1)
    # a paper or live run that reconnected lately is degraded, and says why
    status, reasons = m.health(stale_after=60.0, live=True)
    assert status == "degraded" and reasons[0].startswith("reconnecting: 1 reconnects")
    assert m.health(stale_after=60.0, live=False) == ("healthy", [])


def test_hooks_run_every_so_many_events() -> None:
    m = RunMetrics(clock=False)
    calls: dict[str, list[int]] = {"3": [], "5": []}
    m.every(3, lambda: calls["3"].append(m.events))
    m.every(5, lambda: calls["5"].append(m.events))
    ctx = context(bar=Bar(1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 1.0))
    for _ in range(13):
        m.on_event(ctx)
    assert calls == {"3": [4, 7, 10, 13], "5": [6, 11]}


def test_the_days_loss_the_fill_rate_and_the_shared_figures_agree_with_the_store(
        tmp_path: Path) -> None:
    """The example with all three figure monitors: the engine calls their one RunMetrics once
    per event; the fill rate is the store's filled limit orders over those requested; the
    day's return is from the first mark of the run's last UTC day."""
    data = example()
    data["monitors"] = [{"use": "metrics"}, {"use": "prometheus", "port": 0},
                        {"use": "alerts", "url": "http://127.0.0.1:9/never",
                         "above": {"daily_loss": 0.5}}]
    db = tmp_path / "runs.db"
    built = build_pipeline(pipeline_from_data(data, "<t>", tmp_path), store_path=str(db))
    s = run_pipeline(built)
    figures = s["components"]["monitors[0]"]
    assert built.monitors[0].metrics is built.monitors[1].metrics is built.monitors[2].metrics
    assert figures["events"] == s["bars_accepted"]  # one call per event, not three
    with sqlite3.connect(db) as conn:
        requested = conn.execute("SELECT count(*) FROM orders WHERE status = 'requested' "
                                 "AND kind = 'limit'").fetchone()[0]
        filled = conn.execute("SELECT count(*) FROM orders WHERE status = 'filled'"
                              ).fetchone()[0]
        last_ts = conn.execute("SELECT max(ts) FROM equity").fetchone()[0]
        day = last_ts // 86_400_000 * 86_400_000
        day_open = conn.execute("SELECT equity FROM equity WHERE ts >= ? ORDER BY ts LIMIT 1",
                                (day,)).fetchone()[0]
    assert requested > 100 and (figures["orders_requested"], figures["orders_filled"]) == (
        requested, filled)
    assert figures["grid_fill_rate"] == pytest.approx(filled / requested, rel=1e-12)
    assert figures["daily_return"] == pytest.approx(s["final_equity"] / day_open - 1, rel=1e-12)
    assert figures["daily_loss"] == max(0.0, -figures["daily_return"])
    assert figures["calmar"] == pytest.approx(figures["total_apr"] / s["max_drawdown"])
    assert s["components"]["monitors[2]"]["fired"] == 0


def test_attention_figures_follow_the_phase_controller(tmp_path: Path) -> None:
    """The selector example with a shorter learning phase: the figures show progressive's
    phase, its window and both books as its own stats end, and /metrics labels them."""
    from prometheus_client import CollectorRegistry, generate_latest

    from gridkit.runtime.metrics_http import _Collector

    data = example("selector.toml")
    data["attention"][2].update(learn_trades=100, shadow_trades=40)
    data["monitors"] = [{"use": "metrics"}, {"use": "prometheus", "port": 0}]
    built = build_pipeline(pipeline_from_data(data, "<t>", tmp_path))
    s = run_pipeline(built)
    own = s["components"]["attention[2]"]
    figures = s["components"]["monitors[0]"]
    lane = figures["attention"]["BTC/USDT"]["progressive"]
    assert own["rollbacks"] > 0, "the run proves nothing unless it moved through the phases"
    assert lane["phase"] == own["phase"] == built.monitors[0].metrics.values()[
        "attention_phase"]
    assert (lane["real"], lane["shadow"]) == (own["real"], own["shadow"])
    assert figures["attention_progress"] == 1.0 and figures["attention_rollbacks"] == own[
        "rollbacks"]
    assert figures["shadow_profit_factor"] == own["shadow"]["profit_factor"]
    counted = own["shadow"]["trades"] if own["phase"] == "shadow" else own["real"]["trades"]
    assert figures["attention_window"] == pytest.approx(counted / 40)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(built.monitors[1]))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert (f'gridkit_attention_phase{{module="progressive",phase="{own["phase"]}",'
            f'symbol="BTC/USDT"}} 1.0') in text
    assert 'gridkit_attention_book{book="shadow",figure="win_rate",module="progressive"' in text
    assert "gridkit_grid_fill_rate " in text and "gridkit_errors_total 0.0" in text


def test_every_figure_is_documented_and_alertable(tmp_path: Path) -> None:
    data = example()
    data["monitors"] = [{"use": "alerts", "url": "http://127.0.0.1:9/x",
                         "above": {"no_such": 1.0}}]
    from gridkit import ConfigError

    with pytest.raises(ConfigError, match=r"no figure .no_such.*daily_loss.*latency_p99_ms"):
        build_pipeline(pipeline_from_data(data, "<t>", tmp_path))
    assert all(text.endswith(".") or text.endswith(")") for text in FIGURES.values())


def test_the_monitor_docstrings_example_counts_every_fill(gridkit_host: Any) -> None:
    """The monitor :class:`gridkit.Monitor`'s docstring shows, run as written on the example."""
    import inspect
    import textwrap

    import gridkit
    from gridkit import hookimpl

    doc = inspect.getdoc(gridkit.Monitor) or ""
    code = textwrap.dedent(doc.split("::\n", 1)[1])
    namespace: dict[str, Any] = {"gridkit": gridkit}
    exec(code, namespace)
    cls = namespace["CellFills"]

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(cls)

    gridkit_host.register(Plugin, "cell-fills-plugin")
    data = example()
    data["monitors"] = [{"use": "cell-fills"}]
    s = run_pipeline(build_pipeline(pipeline_from_data(data, "<t>", EXAMPLES), gridkit_host))
    by_cell = s["components"]["monitors[0]"]["fills_by_cell"]
    assert sum(by_cell.values()) == s["buy_fills"] + s["sell_fills"] > 100
