"""Paper runs against the local Binance-format exchange replaying the real capture: a stop and
``--resume`` that goes on with the same open orders, SIGTERM on a ``gridkit run`` process, and
outages (a dropped websocket, an exchange that stops sending) that pause trading without ending
the run."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

import gridkit
from gridkit import hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing_exchange import ExchangeServer

pytest.importorskip("ccxt")

CAPTURE = Path("trades_orderbook") / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
INFO = (Path("api_fixtures") / "nautilus_trader" / "binance_http_responses"
        / "http_spot_market_exchange_info.json")


def paper_toml(url: str, source: str = "", tail: str = "") -> str:
    """A paper grid on the capture's BTC/USDT (61,756 to 61,861): 1 s bars folded from the
    prints, a grid of 4 USDT cells around the price, no fees (a fee of 0.1 % would not clear
    such cells: the pre-flight check would stop the run)."""
    return f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 100000
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "1s"
url = "{url}"
{source}
[strategy]
use = "static"
lower = 61740
upper = 61880
grids = 35
qty = 0.01
[executor]
use = "paper"
maker_fee = 0.0
taker_fee = 0.0
{tail}"""


def journal(db: Path, kind: str) -> list[tuple[int, Any]]:
    with sqlite3.connect(db) as conn:
        return [(ts, json.loads(data)) for ts, data in conn.execute(
            "SELECT ts, data FROM journal WHERE kind = ? ORDER BY rowid", (kind,))]


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


# --- stop and resume ----------------------------------------------------------------------------


class StopAt(gridkit.Validator):
    """Sends SIGINT after ``StopAt.at`` trades (a class setting: the resumed run's config must
    be the same)."""

    name = "test-stop-at"
    inputs: ClassVar[frozenset[str]] = frozenset({"trades"})
    at: int | None = None
    seen = 0

    def accept(self, event: Any) -> bool:
        StopAt.seen += 1
        if StopAt.seen == StopAt.at:
            signal.raise_signal(signal.SIGINT)  # the engine stops after this event
        return True


#: The open order ids the executor holds when the pipeline is built (after a resume's restore).
BUILT: list[set[str]] = []


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_validators(register: Any) -> None:
            register(StopAt)

        @staticmethod
        @hookimpl
        def gridkit_pipeline_built(pipeline: Any) -> None:
            BUILT.append({o.id for o in pipeline.executor.open_orders()})

    gridkit_host.register(Plugin, "test-stop-at-plugin")
    StopAt.at, StopAt.seen = None, 0
    BUILT.clear()
    return gridkit_host


def test_a_stopped_paper_run_resumes_with_the_same_open_orders(host: PluginHost, data_dir: Path,
                                                               tmp_path: Path) -> None:
    # One server for both runs: a new connection goes on where the last one stopped in the
    # capture, as a live market would have gone on.
    db = tmp_path / "paper.db"
    text = paper_toml("URL", "max_events = 1200\nbackoff = 0.0",
                      '[[validators]]\nuse = "test-stop-at"\n')
    requested = "SELECT COUNT(*) FROM orders WHERE status = 'requested'"
    with ExchangeServer(data_dir / INFO, capture=data_dir / CAPTURE, speed=50.0,
                        lifetime=90.0) as server:
        text = text.replace("URL", server.url)
        StopAt.at = 600
        p1 = build_pipeline(parse_pipeline(text), host, store_path=str(db))
        first = run_pipeline(p1)
        assert first["status"] == "stopped" and first["unreconciled_orders"] == []
        open_at_stop = {o.id for o in p1.executor.open_orders()}
        assert len(open_at_stop) > 20
        requested_before = rows(db, requested)[0][0]
        StopAt.at, StopAt.seen = None, 0
        p2 = build_pipeline(parse_pipeline(text), host, store_path=str(db))
        second = run_pipeline(p2, resume=True)
    assert second["status"] == "finished" and second["resumed"]
    assert second["unreconciled_orders"] == [] and second["rejected_by"] == {}
    # The resumed executor held the same open orders before its first event ...
    assert [set(), open_at_stop] == BUILT
    # ... and its fill counter went on from the saved one.
    fills = p2.executor.fills - p1.executor.fills
    assert fills > 0, "nothing filled after the restart: the test proves nothing"
    # The grid was not placed again: every order the resumed run sent is the static grid's
    # follow-up of one of its fills; no second initial batch.
    assert rows(db, requested)[0][0] - requested_before <= fills
    assert rows(db, "SELECT resumed, status FROM runs") == [(1, "finished")]


# --- SIGTERM on a running `gridkit run` ---------------------------------------------------------


def test_sigterm_stops_a_paper_run_cleanly_with_its_summary(data_dir: Path,
                                                            tmp_path: Path) -> None:
    # No max_events, no duration: the run goes on until it is told to stop.
    db = tmp_path / "paper.db"
    with ExchangeServer(data_dir / INFO, capture=data_dir / CAPTURE, speed=20.0,
                        lifetime=90.0) as server:
        (tmp_path / "pipeline.toml").write_text(paper_toml(server.url))
        proc = subprocess.Popen(
            [sys.executable, "-c", "from gridkit.cli import main; main()", "run",
             "pipeline.toml", "--db", str(db)], cwd=tmp_path, env=dict(os.environ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                # Running and trading: the grid's orders are in the store.
                if db.exists() and _count(db, "SELECT COUNT(*) FROM orders") > 0:
                    break
                time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out and "equity" in out, out
    assert "Traceback" not in err
    assert rows(db, "SELECT status FROM runs") == [("stopped",)]
    assert _count(db, "SELECT COUNT(*) FROM state") == 1  # what a --resume starts from


def _count(db: Path, sql: str) -> int:
    try:
        return int(rows(db, sql)[0][0])
    except sqlite3.Error:  # not created yet
        return 0


# --- outages: trading pauses, the run goes on ---------------------------------------------------


class MutingServer(ExchangeServer):
    """The exchange server, falling silent for ``mute_for`` seconds once ``mute_after`` data
    messages have been sent: connections stay open, nothing comes (an exchange that stops
    sending)."""

    def __init__(self, *args: Any, mute_after: int, mute_for: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.mute_after, self.mute_for = mute_after, mute_for
        self.mute_until: float | None = None

    async def _replay(self, ws: Any, path: str, streams: set[str]) -> None:
        await super()._replay(_Muted(ws, self), path, streams)


class _Muted:
    def __init__(self, ws: Any, server: MutingServer) -> None:
        self._ws, self._server = ws, server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def send_str(self, data: str) -> None:
        s = self._server
        if s.mute_until is None and s.counts["sent"] >= s.mute_after:
            s.mute_until = time.monotonic() + s.mute_for
        while s.mute_until is not None and time.monotonic() < s.mute_until:
            await asyncio.sleep(0.01)
        await self._ws.send_str(data)


class Watch(gridkit.Monitor):
    """Records, at every bar, the time of the event that closed it, whether trading is paused
    and which orders are open (tests)."""

    name = "test-watch"
    seen: ClassVar[list[tuple[int, str | None, frozenset[str]]]] = []

    def on_event(self, ctx: gridkit.Context) -> None:
        Watch.seen.append((ctx.event.ts, ctx.paused, frozenset(ctx.open_orders)))


@pytest.fixture
def watch_host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(Watch)

    gridkit_host.register(Plugin, "test-watch-plugin")
    Watch.seen = []
    return gridkit_host


DOWN = "market data down: binance BTC/USDT trades"


@pytest.mark.parametrize("outage", ["drop", "silence"])
def test_an_outage_pauses_trading_and_the_run_goes_on(
        outage: str, watch_host: PluginHost, data_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # At 20x the capture's pace, 1.75 s of silence is 35 s of the market's time; the stream
    # notices after stall = 0.3 s and fails again every 0.3 s plus a backoff of at most 0.2 s,
    # and never gives up (retries is not set).
    db = tmp_path / "paper.db"
    if outage == "drop":
        server: ExchangeServer = ExchangeServer(
            data_dir / INFO, capture=data_dir / CAPTURE, speed=20.0, lifetime=90.0,
            drop_after=500, skip_on_reconnect=20)
    else:
        server = MutingServer(data_dir / INFO, capture=data_dir / CAPTURE, speed=20.0,
                              lifetime=90.0, mute_after=500, mute_for=1.75)
    with server, caplog.at_level(logging.WARNING, logger="gridkit.stream"):
        s = run_pipeline(build_pipeline(parse_pipeline(paper_toml(
            server.url, "max_events = 1400\nstall = 0.3\nbackoff = 0.05\nmax_backoff = 0.2\n"
                        "clock = 0.1",
            '[[monitors]]\nuse = "test-watch"\n[[monitors]]\nuse = "metrics"\n')), watch_host,
            store_path=str(db)))
    assert s["status"] == "finished" and s["events"]["trades"]["seen"] == 1400
    src = s["components"]["source"]
    assert src["outages"] >= 1 and src["reconnects"] >= 1, (dict(server.counts), src)
    # the metrics monitor counted the reconnects the stream logged, and timed the events
    figures = s["components"]["monitors[1]"]
    assert figures["reconnects"] >= 1 and figures["errors"] == 0
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    if outage == "silence":
        assert src["stalls"] >= 3  # failed again and again, and did not give up
        assert src["clock"] >= 10  # the engine heard from the source all along
    # The pause and its end are journalled, in this order, as they happened.
    reasons = [d["reason"] for _, d in journal(db, "Paused")]
    assert reasons[:2] == [DOWN, None] and reasons[-1] is None
    assert s["paused"] is None
    # Trading went on after the outage: orders placed after it were accepted and open. (The
    # end of a pause is journalled at the first event with data, a print: its time is the
    # exchange's, as the bars' are.)
    back = journal(db, "Paused")[1][0]
    before_ids = set().union(*(ids for ts, _, ids in Watch.seen if ts < back))
    placed_after = set().union(*(ids for ts, _, ids in Watch.seen if ts >= back)) - before_ids
    assert placed_after, "no order placed after the outage: the test proves nothing"
    assert s["unreconciled_orders"] == [] and s["rejected_by"] == {}
    accepted = {oid for (oid,) in rows(db, "SELECT order_id FROM orders WHERE status = 'open'")}
    assert placed_after <= accepted
    # One log line per failure, one when the data is back.
    lines = [r.getMessage() for r in caplog.records if r.name == "gridkit.stream"]
    assert any("stream down" in line and "reconnecting in" in line for line in lines)
    assert any("stream back after" in line for line in lines)
    down = [r for r in caplog.records if "stream down" in r.getMessage()]
    assert all(r.stream == "trades" and r.exchange == "binance" for r in down)  # type: ignore[attr-defined]
