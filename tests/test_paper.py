"""The ``paper`` executor and the pause on lost market data: fills identical to
``simulated-trades`` on the same real prints, latency, the mode checks and the default executor
of a paper run, and a live lane pausing while its source's data is down (held actions sent when
it comes back, also across a resume)."""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridkit
from gridkit import BookUpdate, ConfigError, Trade, hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.core.types import Rejected
from gridkit.plugins.executors import PaperExecutor, SimulatedTradesExecutor
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import build
from gridkit.testing_exchange import load_capture
from helpers import ExecutorHarness

CAPTURE = Path("trades_orderbook") / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
FEES = {"maker_fee": 0.001, "taker_fee": 0.002, "check_balance": False}


#: The capture's events, loaded once (kept out of the test's arguments: hypothesis would
#: print all 15,000 of them with a failing example).
_TAPE: list[Any] = []


@pytest.fixture(scope="module")
def tape(data_dir: Path) -> list[Any]:
    """The capture's real prints and best bid/ask quotes, in the order they were received."""
    if _TAPE:
        return _TAPE
    messages, _ = load_capture(str(data_dir / CAPTURE))
    out: list[Any] = []
    for ns, name, data in messages:
        d = json.loads(data)
        if name.endswith("@trade"):
            out.append(Trade(d["T"], float(d["p"]), float(d["q"]),
                             "sell" if d["m"] else "buy", str(d["t"])))
        elif name.endswith("@bookTicker"):
            out.append(BookUpdate(ns // 1_000_000, float(d["b"]), float(d["B"]), float(d["a"]),
                                  float(d["A"])))
    _TAPE[:] = out
    return out


@pytest.fixture(scope="module")
def loaded(tape: list[Any]) -> None:
    """The capture's events are in ``_TAPE``."""


def same(reports: list[Any]) -> list[Any]:
    """Reports with the executor's name (a refusal's ``by``) left out."""
    return [attrs.evolve(r, by="") if type(r) is Rejected else r for r in reports]


# --- the same fills as simulated-trades ----------------------------------------------------------

KINDS = [("limit", "GTC"), ("limit", "GTC"), ("limit", "PO"), ("limit", "IOC"),
         ("limit", "FOK"), ("market", "GTC"), ("stop", "GTC")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(0, 14_000), queue=st.sampled_from(["back", "front"]),
       orders=st.lists(st.tuples(st.integers(0, 399), st.sampled_from(["buy", "sell"]),
                                 st.integers(-6, 6), st.sampled_from([0.001, 0.02, 0.3]),
                                 st.sampled_from(range(len(KINDS))),
                                 st.none() | st.integers(1, 200)), max_size=30))
def test_paper_fills_are_simulated_trades_fills_on_the_same_prints(
        loaded: None, start: int, queue: str, orders: list[Any]) -> None:
    # The same real prints and quotes through both executors, the same orders sent after the
    # same events (some cancelled later): every report must be the same, in the same order.
    options = {**FEES, "queue": queue}
    paper = ExecutorHarness(PaperExecutor, options, "BTC/USDT")
    trades = ExecutorHarness(SimulatedTradesExecutor, options, "BTC/USDT")
    events = _TAPE[start:start + 400]
    by_k: dict[int, list[Any]] = {}
    for n, (k, side, ticks, qty, kind, cancel_after) in enumerate(orders):
        by_k.setdefault(k, []).append((n, side, ticks, qty, kind, cancel_after))
    cancels: dict[int, list[str]] = {}
    last = 61800.0
    got_paper: list[Any] = []
    got_trades: list[Any] = []
    for k, event in enumerate(events):
        got_paper += paper.feed(event)
        got_trades += trades.feed(event)
        if type(event) is Trade:
            last = event.price
        for oid in cancels.pop(k, []):
            if oid in trades.open_ids():
                assert paper.cancel(oid) == trades.cancel(oid)
        for n, side, ticks, qty, kind, cancel_after in by_k.get(k, []):
            order_kind, tif = KINDS[kind]
            price = round(last + ticks * 0.5, 2)
            more: dict[str, Any] = {"tif": tif}
            if order_kind == "stop":
                more["stop_price"] = price
            oid = f"o{n}"
            assert (paper.submit(oid, side, qty, price, order_kind, **more)
                    == trades.submit(oid, side, qty, price, order_kind, **more))
            if cancel_after is not None:
                cancels.setdefault(k + cancel_after, []).append(oid)
        got_paper += paper.ex.reports(None, "BTC/USDT")
        got_trades += trades.ex.reports(None, "BTC/USDT")
    assert same(got_paper) == same(got_trades)
    assert paper.ex.stats() == trades.ex.stats()
    assert paper.open_ids() == trades.open_ids()


def test_paper_fills_on_the_whole_capture_match_and_are_many(tape: list[Any]) -> None:
    # A deterministic full pass as well: a limit each side every 40 events, a market order
    # every 300: the two executors agree fill for fill, and there are fills to agree on.
    harnesses = [ExecutorHarness(cls, FEES, "BTC/USDT")
                 for cls in (PaperExecutor, SimulatedTradesExecutor)]
    got: list[list[Any]] = [[], []]
    last = 0.0
    for k, event in enumerate(tape):
        for h, out in zip(harnesses, got, strict=True):
            out += h.feed(event)
            if type(event) is Trade:
                last = event.price
            if last and k % 40 == 0:
                h.submit(f"b{k}", "buy", 0.01, round(last - 1.0, 2))
                h.submit(f"s{k}", "sell", 0.01, round(last + 1.0, 2))
            if last and k % 300 == 0:
                h.submit(f"m{k}", "buy", 0.05, last, "market")
    assert same(got[0]) == same(got[1])
    assert sum(type(r) is gridkit.Fill for r in got[0]) > 50


# --- latency -------------------------------------------------------------------------------------


def T(ts: int, price: float, qty: float = 1.0) -> Trade:
    return Trade(ts, price, qty, "sell")


def test_latency_an_order_reaches_the_book_latency_ms_after_the_last_print() -> None:
    h = ExecutorHarness(PaperExecutor, {**FEES, "latency_ms": 5}, "BTC/USDT")
    h.feed(T(10, 100.0))
    assert h.submit("m", "buy", 1.0, 0.0, "market") is None
    assert h.submit("b", "buy", 1.0, 99.0) is None  # a resting buy below the market
    assert [type(r) for r in h.feed(T(12, 100.0))] == []  # still on its way
    got = h.feed(T(15, 101.0))  # ts 15 = 10 + 5: it arrives here
    assert [(f.order_id, f.price, f.liquidity) for f in got] == [("m", 101.0, "taker")]
    assert [f.order_id for f in h.feed(T(16, 98.0))] == ["b"]  # resting since ts 15
    # An order cancelled while on its way never reaches the book.
    assert h.submit("c", "buy", 1.0, 0.0, "market") is None
    assert h.cancel("c") is None
    assert h.feed(T(30, 100.0)) == [] and h.open_ids() == set()
    assert h.ex._due == {}


def test_latency_survives_a_pickled_snapshot() -> None:
    h = ExecutorHarness(PaperExecutor, {**FEES, "latency_ms": 50}, "BTC/USDT")
    h.feed(T(100, 100.0))
    assert h.submit("m", "sell", 1.0, 0.0, "market") is None
    fresh = build(PaperExecutor, {**FEES, "latency_ms": 50})
    fresh.restore(pickle.loads(pickle.dumps(h.ex.snapshot())))
    h.ex = fresh
    assert h.feed(T(120, 100.0)) == []
    assert [f.order_id for f in h.feed(T(150, 99.5)) if type(f) is gridkit.Fill] == ["m"]


# --- modes and the default executor of a paper run -----------------------------------------------

GRID = """
[strategy]
use = "static"
lower = 61000
upper = 62500
grids = 8
qty = 0.001
"""


def build_text(text: str) -> Any:
    return build_pipeline(parse_pipeline(text))


def one_line(err: pytest.ExceptionInfo[ConfigError]) -> str:
    lines = [p for p in err.value.problems if "executor" in p]
    assert len(lines) == 1, err.value.problems
    return lines[0]


def test_the_paper_executor_refuses_a_backtest_in_one_line(tmp_path: Path) -> None:
    from gridkit.testing import sample_path

    with pytest.raises(ConfigError) as err:
        build_text(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[executor]
use = "paper"
{GRID}""")
    assert one_line(err) == (
        "executor: executor 'paper' simulates fills on live data and runs only in mode = "
        "\"paper\"; a backtest run needs simulated-trades (fills from the file's prints) or "
        "simulated")


def test_the_paper_executor_refuses_a_live_run_in_one_line() -> None:
    pytest.importorskip("ccxt")
    with pytest.raises(ConfigError) as err:
        build_text(f"""
[pipeline]
mode = "live"
symbol = "BTC/USDT"
[source]
use = "ccxt-stream"
exchange = "binance"
[executor]
use = "paper"
{GRID}""")
    assert "runs only in mode = \"paper\"; a live run needs an executor that sends real " \
           "orders" in one_line(err)


@pytest.mark.parametrize(("streams", "default"), [
    ('["trades", "bars"]\nbars_from = "trades"', "paper"),
    ('["trades", "book"]', "paper"),
    ('["bars"]', "simulated"),  # candles only: no prints to fill from, the bar model
])
def test_a_paper_run_without_an_executor_table_gets_paper_when_there_are_prints(
        streams: str, default: str) -> None:
    pytest.importorskip("ccxt")
    p = build_text(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "ccxt-stream"
exchange = "binance"
streams = {streams}
{GRID}""")
    assert p.origin(p.executor)[1].name == default
    assert p.origin(p.executor)[0].path == "executor"


def test_an_explicit_executor_is_kept_in_a_paper_run() -> None:
    pytest.importorskip("ccxt")
    p = build_text(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "ccxt-stream"
exchange = "binance"
[executor]
use = "simulated"
{GRID}""")
    assert p.origin(p.executor)[1].name == "simulated"


# --- a live lane pauses while its source's data is down ------------------------------------------


class Flicker(gridkit.Source):
    """Real sample bars as a live feed whose market data is down on a range of events
    (``down_from`` to ``down_to``, event numbers), as ccxt-stream's ``down`` says."""

    name = "test-flicker"
    live = True
    provides: ClassVar[frozenset[str]] = frozenset({"bars"})
    down_from = 10**9
    down_to = 10**9
    stop_at: int | None = None
    events_from = 0
    count = 120

    def events(self) -> Any:
        import signal

        from gridkit.testing import sample_bars

        bars = sample_bars()[Flicker.events_from:Flicker.events_from + Flicker.count]
        for n, bar in enumerate(bars):
            self.down = ("market data down: test X/Y bars"
                         if Flicker.down_from <= n < Flicker.down_to else None)
            if n == Flicker.stop_at:
                signal.raise_signal(signal.SIGINT)  # the engine stops after this event
            yield bar


class Churn(gridkit.Strategy):
    """Cancels its open orders and places a buy just under the close on every bar: an order
    decision on every bar (tests)."""

    name = "test-churn"

    def start(self, ctx: gridkit.Context) -> Any:
        return self.on_bar(ctx)

    def on_bar(self, ctx: gridkit.Context) -> Any:
        out: list[Any] = [gridkit.Cancel(oid) for oid in ctx.open_orders]
        out.append(ctx.order("buy", 0.001, round(ctx.bar.close * 0.995, 2)))
        return out


@pytest.fixture
def flicker_host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_sources(register: Any) -> None:
            register(Flicker)

        @staticmethod
        @hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Churn)

    gridkit_host.register(Plugin, "test-flicker-plugin")
    Flicker.down_from = Flicker.down_to = 10**9
    Flicker.stop_at = None
    Flicker.events_from, Flicker.count = 0, 120
    return gridkit_host


FLICKER = """
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 100000
[source]
use = "test-flicker"
[executor]
use = "simulated"
[strategy]
use = "test-churn"
"""


def journal(db: Path, kind: str) -> list[tuple[int, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        return [(ts, json.loads(data)) for ts, data in conn.execute(
            "SELECT ts, data FROM journal WHERE kind = ? ORDER BY rowid", (kind,))]


def requested(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [ts for (ts,) in conn.execute(
            "SELECT ts FROM orders WHERE status = 'requested' ORDER BY rowid")]


def test_trading_pauses_while_data_is_down_and_held_orders_go_when_it_is_back(
        flicker_host: PluginHost, tmp_path: Path) -> None:
    from gridkit.testing import sample_bars

    bars = sample_bars()
    Flicker.down_from, Flicker.down_to = 30, 40
    db = tmp_path / "p.db"
    s = run_pipeline(build_pipeline(parse_pipeline(FLICKER), flicker_host, store_path=str(db)))
    assert s["status"] == "finished" and s["paused"] is None
    assert s["unreconciled_orders"] == [] and s["rejected_by"] == {}
    pauses = journal(db, "Paused")
    assert pauses == [(bars[30].ts, {"reason": "market data down: test X/Y bars"}),
                      (bars[40].ts, {"reason": None})]
    # Nothing was sent while down: what the strategy decided meanwhile was held (the bars of
    # events 30 to 39) and went out at the first event with data (40), with that event's own.
    times = requested(db)
    assert not any(bars[30].ts <= ts < bars[40].ts for ts in times)
    # An order per bar, and a cancel of the last order sent unless it filled meanwhile (the
    # executor goes on matching what it holds).
    assert 10 < s["orders_deferred"] <= 2 * 10
    at_40 = sum(ts == bars[40].ts for ts in times)
    assert at_40 == 10 + 1  # the ten held orders, then the one bar 40 decided
    assert s["orders_placed"] == len(times)  # every order sent was accepted


def test_a_pause_never_clears_another_components_pause(flicker_host: PluginHost,
                                                       tmp_path: Path) -> None:
    class Stale(gridkit.Validator):
        """Pauses trading from event 20 to 50 (a stand-in for the staleness validator)."""

        name = "test-stale"
        n = 0

        def bind(self, ctx: gridkit.Context) -> None:
            self.ctx = ctx

        def accept(self, event: Any) -> bool:
            Stale.n += 1
            self.ctx.paused = "stale" if 20 <= Stale.n - 1 < 50 else None
            return True

        def snapshot(self) -> Any:
            return None

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_validators(register: Any) -> None:
            register(Stale)

    flicker_host.register(Plugin, "test-stale-plugin")
    Flicker.down_from, Flicker.down_to = 30, 40  # inside the validator's pause
    db = tmp_path / "p.db"
    run_pipeline(build_pipeline(parse_pipeline(FLICKER + '[[validators]]\nuse = "test-stale"\n'),
                                flicker_host, store_path=str(db)))
    reasons = [d["reason"] for _, d in journal(db, "Paused")]
    assert reasons == ["stale", None]  # the data pause neither replaced nor ended it


def test_a_run_stopped_while_data_is_down_resumes_and_sends_what_it_held(
        flicker_host: PluginHost, tmp_path: Path) -> None:
    from gridkit.testing import sample_bars

    bars = sample_bars()
    db = tmp_path / "p.db"
    Flicker.down_from, Flicker.down_to, Flicker.stop_at = 30, 10**9, 35
    s = run_pipeline(build_pipeline(parse_pipeline(FLICKER), flicker_host, store_path=str(db)))
    assert s["status"] == "stopped"
    assert s["paused"] == "market data down: test X/Y bars"
    assert 6 < s["orders_deferred"] <= 2 * 6  # bars 30 to 35
    # The restart: the feed comes back with data (later bars: a live stream starts afresh).
    Flicker.down_from, Flicker.down_to, Flicker.stop_at = 10**9, 10**9, None
    Flicker.events_from, Flicker.count = 36, 20
    s = run_pipeline(build_pipeline(parse_pipeline(FLICKER), flicker_host, store_path=str(db)),
                     resume=True)
    assert s["status"] == "finished" and s["resumed"] and s["paused"] is None
    assert s["unreconciled_orders"] == [] and s["rejected_by"] == {}
    assert [d["reason"] for _, d in journal(db, "Paused")] == [
        "market data down: test X/Y bars", None]
    assert journal(db, "Paused")[-1][0] == bars[36].ts
    assert sum(ts == bars[36].ts for ts in requested(db)) == 6 + 1
