"""ccxt-ohlcv, ccxt-stream and `gridkit data download`, run through ccxt's REAL binance classes
against gridkit.testing_exchange: a local server that answers in Binance's format from real data
(the real exchangeInfo, real 1m candles, the real hftbacktest websocket capture)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from attrs import frozen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit import ConfigError, DataError, Validator, hookimpl
from gridkit.core.config import option, structure
from gridkit.core.types import Bar, BookDepth, BookUpdate, Trade
from gridkit.data.bars import TimeBars
from gridkit.plugins.ccxt_sources import CcxtOhlcv, CcxtStream
from gridkit.runtime.context import RunInfo
from gridkit.testing import SourceContract, build
from gridkit.testing_exchange import ExchangeServer, load_candles, load_capture
from helpers import STRATEGY

pytest.importorskip("ccxt")

RUN = RunInfo("t", "backtest", "BTC/USDT", 10_000.0)
PAPER = RunInfo("t", "paper", "BTC/USDT", 10_000.0)


@pytest.fixture(scope="module")
def exchange_info(data_dir: Path) -> Path:
    return (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_spot_market_exchange_info.json")


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> list[list[Any]]:
    """2,500 real BTC/USDT 1m candles around the 2021-04-25 Binance maintenance gap."""
    all_rows = load_candles(data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json")
    return all_rows[5000:7500]


@pytest.fixture(scope="module")
def capture(data_dir: Path) -> Path:
    return data_dir / "trades_orderbook" / "hftbacktest" / "spot" / "btcusdt_20240808.gz"


@pytest.fixture
def server(exchange_info: Path, rows: list[list[Any]]):
    """REST server with the candles; its clock is one minute after the last candle closed."""
    with ExchangeServer(exchange_info, klines={("BTCUSDT", "1m"): rows},
                        now_ms=rows[-1][0] + 120_000) as s:
        yield s


def ohlcv(server: ExchangeServer, rows: list[list[Any]], **options: Any) -> CcxtOhlcv:
    opts = {"exchange": "binance", "since": str(rows[0][0]), "limit": 400, "backoff": 0.0,
            "urls": server.ccxt_urls(), **options}
    src = build(CcxtOhlcv, opts)
    src.sleep = lambda s: None  # record the waits instead of sleeping
    src.validate(RUN)
    src.setup(RUN)
    return src


def as_rows(bars: list[Bar]) -> list[list[float]]:
    return [[b.ts, b.open, b.high, b.low, b.close, b.volume] for b in bars]


def real(rows: list[list[Any]]) -> list[list[float]]:
    return [[int(r[0]), *(float(x) for x in r[1:6])] for r in rows]


# --- ccxt-ohlcv ---------------------------------------------------------------------------------


def test_downloads_the_real_candles_across_pages(server, rows) -> None:
    src = ohlcv(server, rows)
    bars = list(src.events())
    # Every field of every candle, through ccxt's own parsing, across the maintenance gap.
    assert as_rows(bars) == real(rows)
    stats = src.stats()
    assert stats["pages"] >= len(rows) // 400
    assert stats["duplicates"] == 0
    assert stats["open_dropped"] == 0
    klines = [q for p, q in server.requests if p == "/api/v3/klines"]
    assert all(q["symbol"] == "BTCUSDT" and q["interval"] == "1m" for q in klines)
    assert {"/api/v3/exchangeInfo", "/api/v3/time"} <= {p for p, _ in server.requests}


def test_the_open_candle_is_dropped(exchange_info, rows) -> None:
    now = rows[1000][0] + 30_000  # in the middle of candle 1000
    with ExchangeServer(exchange_info, klines={("BTCUSDT", "1m"): rows}, now_ms=now) as s:
        src = ohlcv(s, rows)
        bars = list(src.events())
    assert as_rows(bars) == real(rows[:1000])
    assert src.stats()["open_dropped"] == 1


def test_until_ends_the_download(server, rows) -> None:
    src = ohlcv(server, rows, until=str(rows[777][0]))
    assert as_rows(list(src.events())) == real(rows[:777])


def test_rate_limits_5xx_drops_and_bad_bodies_are_retried(exchange_info, rows) -> None:
    with ExchangeServer(exchange_info, klines={("BTCUSDT", "1m"): rows},
                        now_ms=rows[-1][0] + 120_000, retry_after=7) as s:
        src = ohlcv(s, rows, backoff=0.5)
        s.fail("429", times=2)
        s.fail("503")
        s.fail("drop")
        s.fail("malformed")
        bars = list(src.events())
        assert s.counts["faults"] == 5
    assert as_rows(bars) == real(rows)
    stats = src.stats()
    assert stats["rate_limited"] == 2
    assert stats["network_errors"] == 2  # the 503 and the dropped connection
    assert stats["bad_responses"] == 1  # ccxt returns [] for a truncated body; caught anyway
    # Exponential backoff, at least the Retry-After the exchange sent on a 429.
    assert src.waits[:2] == [7.0, 7.0]
    assert src.waits[2:] == [2.0, 4.0, 8.0]


@pytest.fixture(scope="module")
def shared_server(exchange_info: Path, rows: list[list[Any]]):
    with ExchangeServer(exchange_info, klines={("BTCUSDT", "1m"): rows},
                        now_ms=rows[-1][0] + 120_000) as s:
        yield s


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 2400), length=st.integers(1, 1200), limit=st.integers(1, 1000),
       offset=st.integers(0, 59_999))
def test_any_window_downloads_exactly_its_candles(shared_server, rows, start, length, limit,
                                                   offset) -> None:
    # since may fall inside a candle (that candle is not included: it opened before since);
    # until is exclusive. Whatever the page size, the result is the real rows in the window.
    since = rows[start][0] + offset
    until = rows[min(start + length, len(rows) - 1)][0]
    if until <= since:
        return
    src = ohlcv(shared_server, rows, since=str(since), until=str(until), limit=limit)
    bars = list(itertools.islice(src.events(), 3000))
    assert as_rows(bars) == real([r for r in rows if since <= r[0] < until])


def test_rate_limit_is_on(server, rows) -> None:
    src = ohlcv(server, rows)
    assert src.exchange.enableRateLimit is True
    assert src.exchange.rateLimit > 0


@pytest.mark.parametrize(("fault", "times", "message"), [
    ("bad-symbol", 1, "does not know this symbol"),
    ("503", 10, "gave up after 3 attempts"),
    ("429", 10, "gave up after 3 attempts"),
])
def test_permanent_errors_are_one_line(server, rows, fault, times, message) -> None:
    src = ohlcv(server, rows, retries=2)
    server.fail(fault, times=times)
    with pytest.raises(DataError) as err:
        list(src.events())
    text = str(err.value)
    assert message in text and "binance BTC/USDT" in text
    assert "\n" not in text


def test_unknown_market_and_exchange(server, rows) -> None:
    with pytest.raises(DataError, match="has no market 'DOGE/BTC'"):
        ohlcv(server, rows, symbol="DOGE/BTC")
    with pytest.raises(ConfigError, match="unknown ccxt exchange 'nosuchexchange'"):
        ohlcv(server, rows, exchange="nosuchexchange")
    with pytest.raises(DataError, match="no timeframe '7m'"):
        ohlcv(server, rows, timeframe="7m")


def test_page_overlaps_are_deduplicated(server, rows) -> None:
    src = ohlcv(server, rows)
    fetch = src.exchange.fetch_ohlcv
    previous: list[Any] = []

    def overlapping(*args: Any, **kw: Any) -> list[Any]:
        page = fetch(*args, **kw)
        out = previous[-3:] + page  # an exchange that repeats the end of the last page
        previous[:] = page
        return out

    src.exchange.fetch_ohlcv = overlapping
    assert as_rows(list(src.events())) == real(rows)
    assert src.stats()["duplicates"] > 0


def test_resumes_after_the_last_stored_candle(server, rows, tmp_path) -> None:
    stored = tmp_path / "part.json"
    stored.write_text(json.dumps(rows[:1234]))
    src = ohlcv(server, rows, resume_from=str(stored))
    assert as_rows(list(src.events())) == real(rows[1234:])
    assert src.stats()["resumed_after"] == rows[1233][0]


def problems(cls: type, options: dict[str, Any]) -> str:
    return "; ".join(structure(options, cls.Config, "source")[1])


def test_options_are_checked() -> None:
    assert "until: must be later than since" in problems(
        CcxtOhlcv, {"exchange": "binance", "since": "2021-05-02", "until": "2021-05-01"})
    assert "neither epoch ms nor an ISO date" in problems(
        CcxtOhlcv, {"exchange": "binance", "since": "yesterday"})


class TestCcxtOhlcvContract(SourceContract):
    component_class = CcxtOhlcv

    @pytest.fixture(autouse=True)
    def _point_at_server(self, server, rows) -> None:
        type(self).options = {"exchange": "binance", "since": "2021-04-24T12:00:00Z",
                              "until": "2021-04-25T12:00:00Z", "urls": server.ccxt_urls()}


# --- gridkit data download ----------------------------------------------------------------------


def gridkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run the gridkit CLI in this process (faster than a subprocess); (status, out, err)."""
    from gridkit.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_download_command_writes_a_file_that_backtests(server, rows, tmp_path, capsys,
                                                       gridkit_host) -> None:
    out = tmp_path / "BTC_USDT-1m.json"
    since = str(rows[0][0])
    r = gridkit("data", "download", "binance", "BTC/USDT", "1m", "--since", since,
                "--until", str(rows[1500][0]), "--url", server.url, "--out", str(out),
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1500 candles" in r.stdout
    assert json.loads(out.read_text()) == real(rows[:1500])
    # Run again to the end: it resumes after the stored candles and merges.
    code, stdout, stderr = cli(capsys, "data", "download", "binance", "BTC/USDT", "1m",
                               "--since", since, "--url", server.url, "--out", str(out))
    assert code == 0, stderr
    assert f"{len(rows) - 1500} candles" in stdout
    assert json.loads(out.read_text()) == real(rows)
    (tmp_path / "p.toml").write_text(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 10000
[source]
use = "freqtrade-json"
path = "{out.name}"
{STRATEGY}""")
    r = gridkit("run", "p.toml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["bars_seen"] == len(rows)


def test_download_command_to_sqlite_and_errors(server, rows, tmp_path, capsys,
                                               gridkit_run_toml) -> None:
    import sqlite3

    db = tmp_path / "candles.db"
    args = ["data", "download", "binance", "BTC/USDT", "1m", "--since", str(rows[0][0]),
            "--url", server.url, "--db", str(db)]
    assert cli(capsys, *args, "--until", str(rows[600][0]))[0] == 0
    code, out, _ = cli(capsys, *args)
    assert code == 0 and f"{len(rows) - 600} candles" in out  # resumed from the table
    with sqlite3.connect(db) as conn:
        got = conn.execute("SELECT ts, open, high, low, close, volume FROM candles "
                           "WHERE exchange='binance' AND symbol='BTC/USDT' AND timeframe='1m' "
                           "ORDER BY ts").fetchall()
    assert [list(r) for r in got] == real(rows)
    # ... which the sqlite source reads back.
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "sqlite"
path = "{db}"
timeframe = "1m"
{STRATEGY}""")
    assert summary["bars_seen"] == len(rows)
    server.fail("bad-symbol")
    code, _, err = cli(capsys, "data", "download", "binance", "BTC/USDT", "1m", "--since",
                       str(rows[0][0]), "--url", server.url, "--out", str(tmp_path / "x.json"))
    assert code == 2
    assert err.startswith("Error: binance BTC/USDT: the exchange does not know this symbol")
    assert err.count("\n") == 1
    code, _, err = cli(capsys, "data", "download", "binance", "BTC/USDT", "1m", "--since",
                       "soon", "--out", "x.json")
    assert code == 2 and err.startswith("Error: since: 'soon' is neither epoch ms")
    code, _, err = cli(capsys, "data", "download", "binance", "BTC/USDT", "1m", "--since",
                       "2021-04-24", "--out", "x.json", "--db", "x.db")
    assert code == 2 and "exactly one of --out" in err


# --- ccxt-stream --------------------------------------------------------------------------------


@pytest.fixture
def ws_server(exchange_info: Path, capture: Path, request: Any):
    """Websocket server replaying the capture at 50x its recorded pace."""
    kw = {"speed": 50.0, "lifetime": 60.0, **getattr(request, "param", {})}
    with ExchangeServer(exchange_info, capture=capture, **kw) as s:
        yield s


def stream(server: ExchangeServer, **options: Any) -> tuple[CcxtStream, list[Any]]:
    # A generous stall limit: on a loaded machine the first frame can take seconds to come
    # (market loading, the handshake), and a stall reconnects, which these tests count as a
    # failure. The stall path has its own test with a short limit.
    opts = {"exchange": "binance", "urls": server.ccxt_urls(), "backoff": 0.0, "stall": 30.0,
            **options}
    src = build(CcxtStream, opts)
    src.validate(PAPER)
    src.setup(PAPER)
    try:
        events = list(src.events())
    finally:
        src.close()
    return src, events


def real_trades(capture: Path) -> list[Trade]:
    messages, _ = load_capture(str(capture))
    out = []
    for _, name, data in messages:
        if name == "btcusdt@trade":
            d = json.loads(data)
            out.append(Trade(d["T"], float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy",
                             str(d["t"])))
    return out


def test_stream_trades_are_the_real_prints(ws_server, capture) -> None:
    src, events = stream(ws_server, streams=["trades"], max_events=400)
    assert events == real_trades(capture)[:400]  # none lost, none out of order
    stats = src.stats()
    assert stats["trades"] == 400
    # No assertion on the gap and reconnect counters here: they also cover what ccxt delivered
    # past the 400th trade (the source converts whole batches), and in about one full-suite
    # run in ten on a loaded machine a gap showed up there, beyond what the run consumed.
    # Gap counting is checked where a gap is made on purpose (the reconnect test below).


@pytest.mark.parametrize("ws_server", [{"max_messages": 500}], indirect=True)
def test_the_last_print_before_a_quiet_spell_is_not_held_back(ws_server, capture) -> None:
    # ccxt hands a print only to a watch call already waiting when it lands: without a look
    # at its cache, the 500th print (after which the server goes quiet) would never come.
    src, events = stream(ws_server, streams=["trades"], max_events=500, stall=15.0)
    assert events == real_trades(capture)[:500]
    assert src.stats()["stalls"] == 0


@pytest.mark.parametrize("ws_server", [{"drop_after": 150, "skip_on_reconnect": 40}],
                         indirect=True)
def test_stream_reconnects_and_counts_the_gap(ws_server, capture) -> None:
    src, events = stream(ws_server, streams=["trades"], max_events=400)
    assert len(events) == 400
    stats = src.stats()
    assert stats["reconnects"] >= 1
    assert ws_server.counts["connections"] >= 2
    assert stats["trade_id_gaps"] >= 1 and stats["trades_missed"] > 0
    ids = [int(t.id) for t in events]
    assert ids == sorted(set(ids))  # nothing repeated, nothing backwards
    assert set(events) <= set(real_trades(capture))


@pytest.mark.parametrize("ws_server", [{"garbage_every": 50}], indirect=True)
def test_stream_counts_garbage_frames_and_goes_on(ws_server, capture) -> None:
    src, events = stream(ws_server, streams=["trades"], max_events=300)
    assert events == real_trades(capture)[:300]
    assert src.stats()["bad_frames"] >= 2
    assert ws_server.counts["garbage"] >= 2


@pytest.mark.parametrize("ws_server", [{"speed": 400.0}], indirect=True)
def test_stream_bars_match_the_trades(ws_server, capture) -> None:
    src, events = stream(ws_server, streams=["bars"], max_events=2)
    assert src.stats()["bars"] == 2 and src.stats()["bar_gaps"] == 0
    assert all(isinstance(e, Bar) for e in events)
    folder = TimeBars(60_000)
    expected = [b for t in real_trades(capture) if (b := folder.add(t)) is not None]
    for got, want in zip(events, expected, strict=False):
        assert (got.ts, got.open, got.high, got.low, got.close) == (
            want.ts, want.open, want.high, want.low, want.close)
        assert got.volume == pytest.approx(want.volume, rel=1e-9)
    assert [b.ts for b in events] == [b.ts for b in expected[:2]]


def test_stream_book_and_depth(ws_server) -> None:
    src, events = stream(ws_server, streams=["book", "depth"], max_events=40)
    assert src.stats()["book"] + src.stats()["depth"] == 40
    books = [e for e in events if isinstance(e, BookUpdate)]
    depths = [e for e in events if isinstance(e, BookDepth)]
    assert books and depths
    assert all(b.bid < b.ask and b.bid_qty > 0 and b.ask_qty > 0 for b in books)
    assert all(not d.book.crossed and d.changes for d in depths)
    # The book starts from the capture's real REST snapshot (best bid 61837.63).
    assert books[0].bid == pytest.approx(61837.63, abs=50)


@pytest.mark.full_data("each resync loses the diffs sent while ccxt fetches its snapshot: 150 "
                       "books took 11,000 to 18,000 of the capture's 41,249 lines in trials, "
                       "more than the 15,000 of its slice")
@pytest.mark.parametrize("ws_server", [{"drop_after": 100, "skip_on_reconnect": 30}],
                         indirect=True)
def test_stream_book_resyncs_after_a_reconnect(ws_server) -> None:
    # Each reconnect loses diffs, so ccxt syncs again from a fresh REST snapshot (the server
    # rebuilds it from the capture's snapshot and diffs), and the book goes on.
    src, events = stream(ws_server, streams=["depth"], max_events=150, retries=20)
    assert len(events) == 150
    assert src.stats()["reconnects"] >= 1
    assert sum(1 for p, _ in ws_server.requests if p == "/api/v3/depth") >= 2
    assert all(not d.book.crossed and d.book.best_bid < d.book.best_ask for d in events)
    nonces = [d.book.last_update_id for d in events]
    assert nonces == sorted(nonces)


@pytest.mark.parametrize("ws_server", [{"max_messages": 30}], indirect=True)
def test_a_silent_exchange_ends_in_one_line(ws_server) -> None:
    with pytest.raises(DataError, match="gave up after 2 failures") as err:
        stream(ws_server, streams=["trades"], max_events=1000, stall=0.3, retries=1)
    assert "\n" not in str(err.value)


def test_stream_options_and_modes(ws_server, gridkit_run_toml) -> None:
    # Neither max_events nor duration is needed: a paper or live run goes on until stopped.
    assert problems(CcxtStream, {"exchange": "binance"}) == ""
    assert "retries" in problems(CcxtStream, {"exchange": "binance", "retries": -1})
    assert "max_backoff" in problems(CcxtStream, {"exchange": "binance", "max_backoff": -1})
    assert "unknown: candles" in problems(
        CcxtStream, {"exchange": "binance", "streams": ["candles"], "max_events": 1})
    src = build(CcxtStream, {"exchange": "binance", "streams": ["trades"], "max_events": 1})
    assert src.provides == {"trades"} and src.live
    with pytest.raises(ConfigError, match="live source"):
        gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "ccxt-stream"
exchange = "binance"
max_events = 10
{STRATEGY}""")


def test_paper_pipeline_runs_on_the_stream(ws_server, gridkit_run_toml) -> None:
    # url = the server: every REST and websocket URL of ccxt's binance keeps its path.
    summary = gridkit_run_toml(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 10000
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "5s"
max_events = 600
backoff = 0.0
url = "{ws_server.url}"
[strategy]
use = "static"
lower = 61000
upper = 62500
grids = 8
qty = 0.001
""")
    assert summary["status"] == "finished"
    # The source yields the 600 trades; the engine folds the accepted ones into 5 s bars.
    assert summary["events"]["trades"]["seen"] == 600
    assert summary["bars_seen"] > 5
    assert summary["components"]["source"]["events"] == 600


# --- one event loop: the source runs on the run's loop ------------------------------------------


async def _count(ticks: list[int], every: float) -> None:
    while True:
        ticks[0] += 1
        await asyncio.sleep(every)


def moved(seen: list[tuple[float, int]], every: float) -> None:
    """Check a counter that a task on the loop ticks ``every`` seconds, recorded with the time
    at each event: it ticked before the last event and, if the events span several ticks,
    between the first and the last (the replay is paced, but events the socket buffered while
    the machine was busy arrive at once, so a short span proves nothing)."""
    (t0, first), (t1, last) = seen[0], seen[-1]
    assert last >= 2, f"the counter stayed at {last}: nobody drove the loop"
    if t1 - t0 > 4 * every:
        assert last > first, f"no tick in {t1 - t0:.3f} s of streaming"


@pytest.mark.parametrize("stop_after", [None, 100])
def test_stream_runs_on_a_given_loop_cancels_only_its_tasks_and_leaves_it_open(
        ws_server, stop_after) -> None:
    loop = asyncio.new_event_loop()
    ticks = [0]
    other = loop.create_task(_count(ticks, 0.02))  # someone else's task: an executor's, say
    try:
        run = RunInfo("t", "paper", "BTC/USDT", 10_000.0, loop=loop)
        src = build(CcxtStream, {"exchange": "binance", "urls": ws_server.ccxt_urls(),
                                 "backoff": 0.0, "stall": 30.0, "streams": ["trades", "depth"],
                                 "max_events": 300})
        src.validate(run)
        src.setup(run)
        seen = []
        try:
            for _event in src.events():
                seen.append((time.monotonic(), ticks[0]))
                if len(seen) == stop_after:
                    break  # the run stops: the engine closes the source mid-stream
        finally:
            src.close()
        assert len(seen) == (stop_after or 300)
        moved(seen, every=0.02)  # the other task ran while the source waited for data
        assert src.exchange.asyncio_loop is loop
        assert not loop.is_closed()
        assert asyncio.all_tasks(loop) == {other}  # its own tasks are gone, the other's is not
        assert loop.get_task_factory() is None  # the loop is as it was
        before = ticks[0]
        loop.run_until_complete(asyncio.sleep(0.1))
        assert ticks[0] > before
    finally:
        other.cancel()
        loop.run_until_complete(asyncio.wait([other]))
        loop.close()


def test_two_streams_share_a_loop_and_close_apart(ws_server, exchange_info, capture) -> None:
    # Two lanes' sources on the run's loop (each with its exchange): each drives the loop for
    # both; closing one leaves the other streaming, and the last one out leaves the loop as it
    # found it.
    loop = asyncio.new_event_loop()
    sources: list[CcxtStream] = []
    with ExchangeServer(exchange_info, capture=capture, speed=50.0, lifetime=60.0) as other:
        try:
            run = RunInfo("t", "paper", "BTC/USDT", 10_000.0, loop=loop)
            for server, streams in ((ws_server, ["trades"]), (other, ["depth"])):
                src = build(CcxtStream, {"exchange": "binance", "urls": server.ccxt_urls(),
                                         "backoff": 0.0, "stall": 30.0, "streams": streams,
                                         "max_events": 1000})
                src.setup(run)
                sources.append(src)
            first, second = (iter(s.events()) for s in sources)
            for _ in range(50):
                assert isinstance(next(first), Trade)
                assert isinstance(next(second), BookDepth)
            sources[0].close()
            assert loop.get_task_factory() is not None  # still recording the second's tasks
            assert [type(next(second)) for _ in range(50)] == [BookDepth] * 50
            sources[1].close()
            assert not loop.is_closed()
            assert asyncio.all_tasks(loop) == set()
            assert loop.get_task_factory() is None
        finally:
            for src in sources:
                src.close()
            loop.close()


def test_stream_on_a_closed_loop_is_one_line(ws_server) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    run = RunInfo("t", "paper", "BTC/USDT", 10_000.0, loop=loop)
    src = build(CcxtStream, {"exchange": "binance", "urls": ws_server.ccxt_urls(),
                             "max_events": 10})
    src.setup(run)
    with pytest.raises(DataError, match="event loop is closed"):
        next(iter(src.events()))


#: The LoopTicker of the last run.
TICKERS: list[Any] = []


class LoopTicker(Validator):
    """Ticks a counter on the run's event loop every 50 ms; records it at each event (tests)."""

    name = "test-loop-ticker"
    inputs: ClassVar[frozenset[str]] = frozenset({"trades", "depth"})

    @frozen
    class Config:
        stop_after: int = option(0, doc="Send SIGINT to the process after this many events.")

    def setup(self, run: RunInfo) -> None:
        TICKERS.append(self)
        self.loop = run.loop
        self.ticks = [0]
        #: (time, counter) at each event.
        self.at_events: list[tuple[float, int]] = []
        #: What the loop reported: destroyed pending tasks, unclosed sessions, ...
        self.loop_errors: list[str] = []
        self.loop.set_exception_handler(
            lambda _loop, context: self.loop_errors.append(
                " ".join(f"{k}={v!r}" for k, v in context.items())))
        self.task = self.loop.create_task(_count(self.ticks, 0.05))

    def accept(self, event: Any) -> bool:
        self.at_events.append((time.monotonic(), self.ticks[0]))
        if len(self.at_events) == self.config.stop_after:
            signal.raise_signal(signal.SIGINT)  # the engine stops after this event
        return True

    def close(self) -> None:
        self.task.cancel()
        self.loop.run_until_complete(asyncio.wait([self.task]))

    def snapshot(self) -> Any:
        return None  # a loop and a task do not pickle, and there is nothing to resume


class LoopTickerPlugin:
    @staticmethod
    @hookimpl
    def gridkit_register_validators(register: Any) -> None:
        register(LoopTicker)


@pytest.mark.parametrize("stop_after", [0, 150])
def test_paper_run_shares_one_loop_with_its_components(ws_server, gridkit_register_plugin,
                                                       gridkit_run_toml, stop_after) -> None:
    TICKERS.clear()
    gridkit_register_plugin(LoopTickerPlugin, "test-loop-ticker-plugin")
    summary = gridkit_run_toml(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 10000
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades", "depth"]
max_events = 600
backoff = 0.0
url = "{ws_server.url}"
[executor]
use = "simulated"
[strategy]
use = "static"
lower = 61000
upper = 62500
grids = 8
qty = 0.001
[[validators]]
use = "test-loop-ticker"
stop_after = {stop_after}
""")
    assert summary["status"] == ("stopped" if stop_after else "finished")
    (ticker,) = TICKERS
    TICKERS.clear()
    events = ticker.at_events
    assert len(events) == (stop_after or 600)
    # The validator's task ran on run.loop while the source waited for market data: the source
    # drives the run's loop, not one of its own (with a loop of its own the counter stays 0).
    moved(events, every=0.05)
    loop = ticker.loop
    assert loop.is_closed()  # the kernel closed it at the end of the run ...
    assert asyncio.all_tasks(loop) == set()  # ... with no task left behind
    gc.collect()
    assert ticker.loop_errors == []  # no task destroyed while pending, no unclosed session


class TestCcxtStreamContract(SourceContract):
    component_class = CcxtStream

    @pytest.fixture(autouse=True)
    def _point_at_server(self, ws_server) -> None:
        type(self).options = {"exchange": "binance", "streams": ["trades", "bars"],
                              "bars_from": "trades", "timeframe": "5s", "max_events": 300,
                              "backoff": 0.0, "urls": ws_server.ccxt_urls()}
