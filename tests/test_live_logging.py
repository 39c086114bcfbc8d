"""Logs of paper and live runs: JSON and text lines, redaction, one line per order event, the
heartbeat and the watchdog."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

import gridkit
from gridkit import Clock, hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.credentials import _forget_secrets, register_secret
from gridkit.logs import log_reconnect, setup_logging
from gridkit.runtime.engine import _new_run, build_pipeline, run_pipeline
from gridkit.runtime.heartbeat import Heartbeat
from gridkit.runtime.pipeline_file import LiveSection, parse_pipeline
from gridkit.testing import sample_bars, sample_path
from helpers import STRATEGY, live_replay, with_sources

SECRET = "sk-live-7f3a9c0e11d2b4"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """setup_logging into a buffer (JSON, debug and up); the handler is removed afterwards."""
    buf = io.StringIO()
    handler = setup_logging("json", "debug", buf)
    try:
        yield buf
    finally:
        logging.getLogger("gridkit").removeHandler(handler)
        logging.getLogger("gridkit").propagate = True
        _forget_secrets()


def parsed(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


# --- the formats -----------------------------------------------------------------------------


def test_json_lines_parse_and_carry_fields(lines: io.StringIO) -> None:
    log = logging.getLogger("gridkit.orders")
    log.info("fill %s", "BTC/USDT", extra={"symbol": "BTC/USDT", "qty": 0.5,
                                           "price": float("nan"), "nested": {"a": [1, 2]}})
    log.debug("quiet detail")
    (first, second) = parsed(lines)
    assert first["level"] == "info" and first["logger"] == "gridkit.orders"
    assert first["msg"] == "fill BTC/USDT"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["symbol"] == "BTC/USDT" and first["qty"] == 0.5
    assert first["price"] is None  # NaN is not JSON
    assert first["nested"] == {"a": [1, 2]}
    assert second["level"] == "debug"


def test_text_lines_and_levels() -> None:
    buf = io.StringIO()
    handler = setup_logging("text", "warning", buf)
    try:
        logging.getLogger("gridkit.watchdog").info("not shown")
        logging.getLogger("gridkit.watchdog").warning("no market data for %d s", 120)
    finally:
        logging.getLogger("gridkit").removeHandler(handler)
    (line,) = buf.getvalue().splitlines()
    assert re.fullmatch(r"\S+Z WARNING gridkit\.watchdog: no market data for 120 s", line)


def test_setup_twice_keeps_one_handler() -> None:
    buf = io.StringIO()
    setup_logging("text", "info", io.StringIO())
    handler = setup_logging("json", "info", buf)
    try:
        logging.getLogger("gridkit.x").info("once")
        assert len(buf.getvalue().splitlines()) == 1
    finally:
        logging.getLogger("gridkit").removeHandler(handler)


def test_bad_format_or_level() -> None:
    with pytest.raises(ValueError, match="text or json"):
        setup_logging("xml")
    with pytest.raises(ValueError, match="log level"):
        setup_logging("text", "loud")


def test_a_registered_secret_appears_in_no_line(lines: io.StringIO) -> None:
    register_secret(SECRET)
    log = logging.getLogger("gridkit.net")
    log.warning("auth with %s failed", SECRET, extra={"header": f"X-MBX-APIKEY: {SECRET}"})
    log.error(f"inline {SECRET}")
    try:
        raise RuntimeError(f"exchange said: bad key {SECRET}")
    except RuntimeError:
        log.exception("request failed")
    log_reconnect("binance trades stream", 2, 1.5, ConnectionError(f"closed for {SECRET}"))
    out = lines.getvalue()
    assert SECRET not in out
    assert out.count("***") >= 5
    records = parsed(lines)
    assert records[0]["msg"] == "auth with *** failed"
    assert records[2]["exc"].startswith("Traceback")


def test_reconnect_is_one_line(lines: io.StringIO) -> None:
    log_reconnect("binance watchTrades", 3, 4.0, TimeoutError("read timed out"))
    (rec,) = parsed(lines)
    assert rec["level"] == "warning" and rec["logger"] == "gridkit.net"
    assert rec["msg"] == ("reconnecting binance watchTrades (attempt 3) in 4.0 s after "
                          "TimeoutError: read timed out")
    assert (rec["what"], rec["attempt"], rec["delay_s"]) == ("binance watchTrades", 3, 4.0)


# --- the heartbeat and the watchdog, on an injected clock -----------------------------------


BACKTEST = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
{STRATEGY}"""


def _run() -> Any:
    return _new_run(build_pipeline(parse_pipeline(BACKTEST)))


def _events(buf: io.StringIO) -> list[str]:
    return [r.get("event", "") for r in parsed(buf)]


def test_heartbeat_every_n_seconds(lines: io.StringIO) -> None:
    run = _run()
    hb = Heartbeat(run, LiveSection(heartbeat=30, watchdog=0), start=1000.0)
    bar = sample_bars()[0]
    for t in range(1000, 1100):  # an event every second, as a live source's clock ticks come
        hb.tick(float(t), bar if t < 1010 else Clock(0))
    beats = [r for r in parsed(lines) if r["event"] == "heartbeat"]
    assert len(beats) == 3  # at 1030, 1060, 1090
    last = beats[-1]
    assert last["logger"] == "gridkit.heartbeat"
    assert last["status"] == "running"
    assert last["data_age_s"] == 1090 - 1009  # clock ticks are not market data
    assert set(last["symbols"]) == {"BTC/USDT"}
    assert set(last["symbols"]["BTC/USDT"]) == {"price", "position", "open_orders"}
    assert last["equity"] == run.account.equity
    assert hb.last["data_age_s"] == last["data_age_s"]


def test_heartbeat_skips_beats_a_stall_missed(lines: io.StringIO) -> None:
    hb = Heartbeat(_run(), LiveSection(heartbeat=10, watchdog=0), start=0.0)
    hb.tick(5.0)
    hb.tick(95.0)  # nothing came for 90 s: one line now, not nine
    hb.tick(99.0)
    hb.tick(100.0)
    assert _events(lines) == ["heartbeat", "heartbeat"]


def test_tick_does_nothing_until_due(lines: io.StringIO) -> None:
    hb = Heartbeat(_run(), LiveSection(heartbeat=30, watchdog=60), start=0.0)
    assert hb.due == 30.0
    for i in range(1000):
        hb.tick(i * 0.0299, Clock(0))
    assert lines.getvalue() == ""


def test_watchdog_warns_once_then_says_data_is_back(lines: io.StringIO) -> None:
    hb = Heartbeat(_run(), LiveSection(heartbeat=0, watchdog=120), start=0.0)
    bar = sample_bars()[0]
    hb.tick(10.0, bar)
    for t in range(11, 400):
        hb.tick(float(t), Clock(0))
    assert _events(lines) == ["data_stale"]
    (warn,) = parsed(lines)
    assert warn["level"] == "warning" and warn["logger"] == "gridkit.watchdog"
    assert warn["data_age_s"] == 120.0  # at 130: 120 s after the bar at 10
    hb.tick(400.0, bar)
    hb.tick(401.0, bar)
    assert _events(lines) == ["data_stale", "data_back"]
    assert parsed(lines)[1]["level"] == "info"
    for t in range(402, 521):
        hb.tick(float(t), Clock(0))
    assert _events(lines) == ["data_stale", "data_back"]  # 401 + 120 = 521 not reached
    hb.tick(521.0, Clock(0))
    assert _events(lines) == ["data_stale", "data_back", "data_stale"]


def test_grid_quiet_watches_order_events(lines: io.StringIO) -> None:
    now = [0.0]
    run = _run()
    hb = Heartbeat(run, LiveSection(heartbeat=0, watchdog=0, grid_quiet=60), start=0.0,
                   clock=lambda: now[0]).attach()
    order = gridkit.Order("o-1", "buy", 0.01, 50000.0, symbol="BTC/USDT")
    for t in range(0, 200):
        now[0] = float(t)
        if t == 30:
            run.journal.emit(gridkit.OrderRequested(order, 0))
        if t == 150:
            run.journal.emit(gridkit.Accepted("o-1", 0))
        if t == 160:
            run.journal.emit(gridkit.Halted(0, "not an order event"))
        hb.tick(now[0], Clock(0))
    events = _events(lines)
    assert events == ["grid_quiet", "grid_active"]
    quiet = parsed(lines)[0]
    assert quiet["quiet_s"] == 60.0  # at 90: 60 s after the request at 30
    assert "gone quiet" in quiet["msg"]


def test_heartbeat_says_paused_and_halted(lines: io.StringIO) -> None:
    run = _run()
    hb = Heartbeat(run, LiveSection(heartbeat=1, watchdog=0), start=0.0)
    run.lanes[0].ctx.paused = "stale data"
    hb.tick(1.0)
    run.halted = "drawdown 20%"
    hb.tick(2.0)
    assert [r["status"] for r in parsed(lines)] == ["paused: stale data",
                                                    "halted: drawdown 20%"]


def test_all_off_is_inactive() -> None:
    assert not Heartbeat(_run(), LiveSection(heartbeat=0, watchdog=0, grid_quiet=0)).active


# --- a paper run: the engine's wiring --------------------------------------------------------


ReplayLive = live_replay("replay-live-log", 600)


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    return with_sources(gridkit_host, "replay-log-test", ReplayLive)


PAPER = """
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "replay-live-log"
[strategy]
use = "static"
lower = 55000
upper = 57000
grids = 10
qty = 0.01
[live]
heartbeat = 0.001
"""


def test_a_paper_run_logs_one_line_per_order_event(host: PluginHost,
                                                   lines: io.StringIO) -> None:
    summary = run_pipeline(build_pipeline(parse_pipeline(PAPER), host))
    assert summary["status"] == "finished"
    records = parsed(lines)
    orders = [r for r in records if r["logger"] == "gridkit.orders"]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in orders:
        by_event.setdefault(r["event"], []).append(r)
    fills = summary["buy_fills"] + summary["sell_fills"]
    assert fills > 10
    assert len(by_event["fill"]) == fills
    assert len(by_event["accepted"]) == summary["orders_placed"]
    assert len(by_event["order_requested"]) == (summary["orders_placed"]
                                                + sum(summary["rejected_by"].values()))
    for r in orders:
        assert r["level"] == "info"
        assert r["symbol"] == "BTC/USDT"
        assert re.fullmatch(r"\w+-\d+", r["order_id"])
        assert r["side"] in ("buy", "sell") and r["qty"] > 0 and r["price"] > 0
    # The grid's fill of a level is logged with what was asked: the same id, side and size.
    first = by_event["fill"][0]
    asked = next(r for r in by_event["order_requested"] if r["order_id"] == first["order_id"])
    assert (asked["side"], asked["qty"]) == (first["side"], first["qty"])
    beats = [r for r in records if r.get("event") == "heartbeat"]
    assert beats and beats[-1]["symbols"]["BTC/USDT"]["open_orders"] >= 0
    # The summary keeps the last heartbeat's figures.
    assert summary["heartbeat"]["events"] == beats[-1]["events"]
    assert summary["heartbeat"]["symbols"] == beats[-1]["symbols"]


def test_a_run_records_its_error_redacted(host: PluginHost, lines: io.StringIO) -> None:
    class Leaky(gridkit.Strategy):
        """A strategy whose error message carries a secret (as an exchange error might)."""

        name = "leaky"

        def start(self, ctx: gridkit.Context) -> list[Any]:
            raise RuntimeError(f"exchange said: invalid key {SECRET}")

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Leaky)

    host.register(Plugin, "leaky-test")
    register_secret(SECRET)
    text = PAPER.split("[strategy]")[0] + '[strategy]\nuse = "leaky"\n'
    finished: list[dict[str, Any]] = []

    class Watch:
        @staticmethod
        @hookimpl
        def gridkit_run_finished(pipeline: Any, summary: dict[str, Any]) -> None:
            finished.append(summary)

    host.register(Watch, "watch-test")
    with pytest.raises(gridkit.ComponentError):
        run_pipeline(build_pipeline(parse_pipeline(text), host))
    (summary,) = finished
    assert summary["status"] == "failed"
    assert "invalid key ***" in summary["error"] and SECRET not in summary["error"]


def test_a_backtest_logs_nothing(lines: io.StringIO) -> None:
    summary = run_pipeline(build_pipeline(parse_pipeline(BACKTEST)))
    assert lines.getvalue() == ""
    assert summary["heartbeat"] is None
