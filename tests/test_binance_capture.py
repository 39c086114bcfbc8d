"""The ``binance-capture`` source on the real Binance websocket captures (hftbacktest): counts,
the rebuilt L2 book against Binance's own bookTicker, sequence gaps and resync, hostile input,
time bars from the trades, and a whole pipeline."""

from __future__ import annotations

import bisect
import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit import Bar, BookDepth, BookUpdate, ConfigError, DataError, Feature, Trade, hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.data.bars import TimeBars
from gridkit.plugins.binance_capture import BinanceCapture, BookSync
from gridkit.runtime.context import RunInfo
from gridkit.testing import SourceContract, build
from helpers import STRATEGY, expect

HFT = Path("trades_orderbook") / "hftbacktest"
SPOT = HFT / "spot" / "btcusdt_20240808.gz"
SPOT_NEXT = HFT / "spot" / "btcusdt_20240809.gz"
ETH = HFT / "spot" / "ethusdt_20240808.gz"
USDM = HFT / "usdm" / "btcusdt_20240808.gz"


def run_info(base_dir: Path) -> RunInfo:
    return RunInfo("test", "backtest", "BTC/USDT", 10_000.0, base_dir)


def replay(path: Path | str, base_dir: Path, **options: Any) -> tuple[list[Any], dict[str, Any]]:
    """Every event of a capture and the source's stats; a BookDepth's live book is replaced
    by a copy of its state (:func:`book_state`) when it was emitted."""
    source = build(BinanceCapture, {"path": str(path), **options})
    source.validate(run_info(base_dir))
    source.setup(run_info(base_dir))
    # With ``bars`` the engine folds the trades; every trade is accepted here.
    stream = source.events()
    if source.bar_interval:
        stream = TimeBars(source.bar_interval).fold(stream)
    events = [BookDepth(e.ts, book_state(e.book), e.changes) if type(e) is BookDepth else e
              for e in stream]
    return events, source.stats()


def book_state(book: Any, n: int = 20) -> tuple[Any, ...]:
    """What a BookDepth showed, copied (the book object is live)."""
    return (book.last_update_id, len(book), tuple(book.levels("bid", n)),
            tuple(book.levels("ask", n)))


@cache
def clean_run(data: Path, rel: Path) -> tuple[list[Any], dict[str, Any], dict[int, Any],
                                              list[tuple[int, float, float, bool]]]:
    """A replay of an untouched capture: its events, stats, the book state at each update id,
    and (id, best bid, best ask, crossed) after each depth event, in order."""
    source = build(BinanceCapture, {"path": str(rel)})
    source.setup(run_info(data))
    events, books, tops = [], {}, []
    for ev in source.events():
        events.append(ev)
        if type(ev) is BookDepth:
            book = ev.book
            books[book.last_update_id] = book_state(book)
            tops.append((book.last_update_id, book.best_bid, book.best_ask, book.crossed))
    return events, source.stats(), books, tops


_QUOTE = re.compile(rb'"u":(\d+),"s":"[A-Z]+","b":"([^"]+)","B":"[^"]+","a":"([^"]+)"')


@cache
def scan(path: Path) -> dict[str, Any]:
    """An independent count of a capture: substring tests and one regex per line."""
    c: Counter[str] = Counter()
    quotes = []
    with gzip.open(path, "rb") as f:
        for line in f:
            if b'@trade"' in line:
                c["trade"] += 1
            elif b'@bookTicker"' in line:
                c["bookTicker"] += 1
                m = _QUOTE.search(line)
                assert m is not None
                quotes.append((int(m[1]), float(m[2]), float(m[3])))
            elif b"@depth" in line:
                c["depth"] += 1
            elif b'"lastUpdateId"' in line:
                c["snapshot"] += 1
    quotes.sort()
    return {"counts": c, "quotes": quotes}


def lines_of(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(gzip.compress(b"".join(lines), compresslevel=1))
    return path


def is_depth(line: bytes) -> bool:
    return b"@depth" in line


# --- counts and order ----------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [SPOT, ETH, USDM], ids=["spot-btc", "spot-eth", "usdm-btc"])
def test_counts_match_a_simple_scan(data_dir: Path, rel: Path) -> None:
    events, stats, _, _ = clean_run(data_dir, rel)
    expected = scan(data_dir / rel)["counts"]
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["Trade"] == expected["trade"] == stats["trades"]
    assert kinds["BookUpdate"] == expected["bookTicker"] == stats["quotes"]
    assert stats["depth_diffs"] == expected["depth"]
    assert stats["snapshots"] == expected["snapshot"] == 1
    assert stats["lines"] == sum(expected.values())
    assert stats["bad_lines"] == stats["unknown"] == stats["truncated"] == 0
    # Every diff is accounted for: applied, older than the snapshot, or never usable.
    assert stats["applied"] + stats["stale_diffs"] + stats["unsynced_diffs"] == expected["depth"]
    assert stats["gaps"] == stats["crossed"] == stats["resyncs"] == 0
    assert stats["syncs"] == 1 and stats["stale_diffs"] <= 5
    assert stats["unsynced_diffs"] == 0
    assert kinds["BookDepth"] == stats["depth_events"] >= stats["applied"]


@pytest.mark.parametrize("rel", [SPOT, USDM], ids=["spot-btc", "usdm-btc"])
def test_events_are_in_time_order_and_trades_keep_their_exchange_time(
        data_dir: Path, rel: Path) -> None:
    events, stats, _, _ = clean_run(data_dir, rel)
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in pairwise(ts))
    assert stats["late"] == 0  # the 500 ms window absorbs every inversion in these captures
    trades = [e for e in events if type(e) is Trade]
    first = json.loads(lines_of(data_dir / rel)[0].split(b" ", 1)[1])  # just a sanity anchor
    assert first["stream"].startswith("btcusdt@")
    # Trade ids come out contiguous (each stream is in order by itself), with T as ts.
    ids = [int(t.id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert {t.side for t in trades} == {"buy", "sell"}


def test_file_order_mode_clamps_and_counts(data_dir: Path) -> None:
    """reorder_ms = 0 keeps the receive order; trades behind a depth batch are clamped."""
    events, stats = replay(ETH, data_dir, reorder_ms=0, streams=["trades", "depth"])
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in pairwise(ts))
    assert stats["late"] > expect(100, 40)
    sorted_events, _, _, _ = clean_run(data_dir, ETH)
    expected = Counter(map(type, sorted_events))
    del expected[BookUpdate]
    assert Counter(map(type, events)) == expected


# --- the rebuilt book -----------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [SPOT, ETH, USDM], ids=["spot-btc", "spot-eth", "usdm-btc"])
def test_rebuilt_best_bid_ask_matches_book_ticker(data_dir: Path, rel: Path) -> None:
    """Exact check by update id: bookTicker is pushed on every change of the best levels, so the
    last bookTicker with ``u`` <= the book's update id shows the true best bid/ask of that book.
    Measured: 100 % on all three captures (3,449 / 3,433 / 6,548 books; on the slices of
    tests/data 1,347 / 1,322 / 1,312)."""
    quotes = scan(data_dir / rel)["quotes"]
    us = [q[0] for q in quotes]
    _, _, _, tops = clean_run(data_dir, rel)
    n = agree = 0
    for update_id, bid, ask, _ in tops:
        i = bisect.bisect_right(us, update_id) - 1
        if i >= 0:
            n += 1
            agree += (quotes[i][1], quotes[i][2]) == (bid, ask)
    assert n > expect(3000, 1200)
    assert agree / n >= 0.999


@pytest.mark.parametrize("rel", [SPOT, USDM], ids=["spot-btc", "usdm-btc"])
def test_book_after_each_depth_update_agrees_with_next_book_ticker(
        data_dir: Path, rel: Path) -> None:
    """By time: the bookTicker that follows a depth update in the replay usually shows the same
    best bid/ask. Measured 97.1 % (spot BTC) and 98.5 % (USDM); the rest is the market moving
    between the two messages. Never a crossed book."""
    events, _, _, tops = clean_run(data_dir, rel)
    pending = None
    n = agree = depth = 0
    for ev in events:
        if type(ev) is BookDepth:
            _, bid, ask, crossed = tops[depth]
            depth += 1
            assert not crossed and bid < ask
            pending = (bid, ask)
        elif type(ev) is BookUpdate and pending is not None:
            n += 1
            agree += pending == (ev.bid, ev.ask)
            pending = None
    assert n > 0.8 * depth
    assert agree / n >= 0.9


def test_changes_are_what_the_book_shows(data_dir: Path) -> None:
    source = build(BinanceCapture, {"path": str(ETH), "streams": ["depth"]})
    source.setup(run_info(data_dir))
    checked = 0
    for ev in source.events():
        for side, price, qty in ev.changes:
            assert ev.book.qty(side, price) == qty
            checked += 1
    assert checked > expect(50_000, 35_000)


@pytest.mark.full_data("the 2024-08-09 file continues the book of the whole 2024-08-08 one")
def test_day_files_continue_one_book(data_dir: Path, tmp_path: Path) -> None:
    """The second spot BTC file has no snapshot: alone it gives no depth; read after the first
    (a glob) it continues that book without a gap. (Its first 8,000 lines, to stay quick.)"""
    (tmp_path / SPOT.name).symlink_to(data_dir / SPOT)
    write(tmp_path / SPOT_NEXT.name, lines_of(data_dir / SPOT_NEXT)[:8000])
    _, alone = replay(SPOT_NEXT.name, tmp_path, streams=["depth"])
    assert alone["depth_events"] == 0 and alone["unsynced_diffs"] == alone["depth_diffs"] > 300
    _, first = replay(SPOT.name, tmp_path, streams=["depth"])
    events, both = replay("btcusdt_*.gz", tmp_path, streams=["depth"])
    assert both["gaps"] == 0 and both["syncs"] == 1
    assert both["depth_diffs"] == first["depth_diffs"] + alone["depth_diffs"]
    assert both["applied"] == both["depth_diffs"] - both["stale_diffs"]
    assert len(events) == first["depth_events"] + alone["depth_diffs"]


# --- gaps and resync ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [ETH, USDM], ids=["spot-eth", "usdm-btc"])
def test_a_deleted_diff_is_a_gap_and_the_book_is_held(data_dir: Path, tmp_path: Path,
                                                      rel: Path) -> None:
    lines = lines_of(data_dir / rel)[:20_000]
    depth_at = [i for i, line in enumerate(lines) if is_depth(line)]
    gone = depth_at[300]
    gone_u = json.loads(lines[gone].split(b" ", 1)[1])["data"]["u"]
    cut = write(tmp_path / "gap.gz", lines[:gone] + lines[gone + 1:])
    events, stats = replay(cut, tmp_path)
    assert stats["gaps"] == 1 and stats["resyncs"] == 0
    books = [e.book for e in events if type(e) is BookDepth]
    # The book stops right before the missing diff, and nothing wrong was ever emitted.
    _, _, truth, _ = clean_run(data_dir, rel)
    assert max(b[0] for b in books) < gone_u
    assert all(truth[b[0]] == b for b in books)
    assert len(books) >= 290
    after_gap = len(depth_at) - 300 - 1
    assert stats["unsynced_diffs"] == after_gap
    assert stats["depth_events"] == len(books)
    # Trades and quotes go on.
    assert sum(type(e) is Trade for e in events) == sum(b"@trade" in x for x in lines)


def test_a_later_snapshot_resyncs_the_book(data_dir: Path, tmp_path: Path) -> None:
    """Delete diff #300, then insert a snapshot (the true book after diff #600, from a clean
    replay) after diff #600: the book is held in between and rebuilt exactly afterwards."""
    lines = lines_of(data_dir / ETH)
    depth_at = [i for i, line in enumerate(lines) if is_depth(line)]
    _, clean_stats, truth, _ = clean_run(data_dir, ETH)
    at = depth_at[600]
    ns, body = lines[at].split(b" ", 1)
    u = json.loads(body)["data"]["u"]
    source = build(BinanceCapture, {"path": str(ETH), "streams": ["depth"]})
    source.setup(run_info(data_dir))
    for ev in source.events():
        if ev.book.last_update_id == u:
            snap = {"lastUpdateId": u,
                    "bids": [[repr(p), repr(q)] for p, q in ev.book.levels("bid", 10**6)],
                    "asks": [[repr(p), repr(q)] for p, q in ev.book.levels("ask", 10**6)]}
            break
    snap_line = ns[:-1] + b"9 " + json.dumps(snap).encode() + b"\n"
    edited = lines[:depth_at[300]] + lines[depth_at[300] + 1:at + 1] + [snap_line] + lines[at + 1:]
    events, stats = replay(write(tmp_path / "resync.gz", edited), tmp_path)
    assert stats["gaps"] == 1 and stats["snapshots"] == 2
    assert stats["syncs"] == 2 and stats["resyncs"] == 1
    books = [(e.ts, e.book) for e in events if type(e) is BookDepth]
    ids = [b[1][0] for b in books]
    assert ids == sorted(ids)
    assert not any(held for held in ids if json.loads(lines[depth_at[299]].split(b" ", 1)[1])
                   ["data"]["u"] < held < u)
    # Every book emitted, before the gap and after the resync, is the true book at its id.
    for _, state in books:
        assert truth[state[0]] == state
    assert ids[-1] == max(truth)
    assert stats["applied"] == clean_stats["applied"] - (600 - 299)


def test_book_sync_rules_on_a_small_book() -> None:
    """The documented conditions, one by one (spot, then USDT-M with pu)."""
    s = BookSync()
    assert not s.diff(1, 5, -1, (("bid", 9.0, 1.0),))  # no snapshot yet: buffered
    assert not s.in_sync
    assert s.snapshot(10, [(9.0, 2.0)], [(11.0, 1.0)])
    assert s.counts["stale_diffs"] == 1  # the buffered diff was older than the snapshot
    assert not s.diff(3, 10, -1, ())  # u <= lastUpdateId: stale
    assert s.diff(8, 12, -1, (("bid", 10.0, 1.0),))  # U <= 11 <= u: first
    assert s.diff(13, 15, -1, (("ask", 11.0, 0.0), ("ask", 12.0, 2.0)))
    assert (s.book.best_bid, s.book.best_ask, s.book.last_update_id) == (10.0, 12.0, 15)
    # An older snapshot while in sync changes nothing.
    assert not s.snapshot(14, [(1.0, 1.0)], [(2.0, 1.0)])
    assert s.counts["stale_snapshots"] == 1 and s.book.best_bid == 10.0 and s.in_sync
    assert not s.diff(17, 18, -1, ())  # U > u + 1: gap
    assert s.counts["gaps"] == 1 and not s.in_sync and len(s.book) == 0
    # A crossed book after a diff is out of sync too.
    assert s.snapshot(18, [(9.0, 2.0)], [(11.0, 1.0)])
    assert s.counts["resyncs"] == 1
    assert not s.diff(19, 19, -1, (("bid", 11.5, 1.0),))
    assert s.counts["crossed"] == 1 and not s.in_sync

    f = BookSync()
    assert f.snapshot(100, [(9.0, 2.0)], [(11.0, 1.0)])
    assert not f.diff(90, 99, 89, ())  # u < lastUpdateId: stale
    assert not f.diff(101, 105, 100, ())  # first must hold lastUpdateId: U <= 100 <= u
    assert f.counts["gaps"] == 1
    # The same snapshot again cannot use the held diff either (it starts after lastUpdateId)...
    assert not f.snapshot(100, [(9.0, 2.0)], [(11.0, 1.0)])
    assert f.counts["gaps"] == 2
    # ... a newer one can: the held diff is the first applied (U <= 104 <= u).
    assert f.snapshot(104, [(9.0, 2.0)], [(11.0, 1.0)])
    assert f.book.last_update_id == 105 and f.counts["resyncs"] == 1
    assert f.diff(106, 110, 105, (("bid", 9.5, 1.0),))  # pu == previous u
    assert not f.diff(112, 115, 111, ())  # pu != previous u: gap
    assert f.counts["gaps"] == 3


# --- hostile input --------------------------------------------------------------------------------

GARBAGE = [
    b"\n",
    b"hello world\n",
    b"not-a-number {}\n",
    b"1723161254036059768 {not json\n",
    b"1723161254036059768 [1, 2, 3]\n",
    b"1723161254036059768 {\"stream\": \"ethusdt@kline_1m\", \"data\": {\"E\": 1}}\n",
    b"1723161254036059768 {\"stream\": \"ethusdt@trade\", \"data\": {\"p\": \"1\"}}\n",
    b"1723161254036059768 {\"stream\": \"ethusdt@trade\", \"data\": {\"E\": 1723161255300, "
    b"\"T\": 1723161255300, \"t\": 1, \"p\": \"abc\", \"q\": \"1\", \"m\": true}}\n",
    b"1723161254036059768 {\"stream\": \"ethusdt@depth@100ms\", \"data\": {\"E\": 1723161255300,"
    b" \"U\": 1, \"u\": 2, \"b\": [[\"-5\", \"1\"]], \"a\": []}}\n",
    b"1723161254036059768 {\"stream\": \"btcusdt@trade\", \"data\": {\"E\": 1}}\n",
    b"1723161254036059768 {\"something\": \"else\"}\n",
    b"\xff\xfe\x00garbage bytes\n",
]


def test_garbage_lines_are_counted_not_fatal(data_dir: Path, tmp_path: Path) -> None:
    lines = lines_of(data_dir / ETH)[:3000]
    mixed: list[bytes] = []
    for i, line in enumerate(lines):
        if i % 97 == 50:
            mixed.append(GARBAGE[(i // 97) % len(GARBAGE)])
        mixed.append(line)
    mixed += GARBAGE
    _, clean = replay(write(tmp_path / "clean.gz", lines), tmp_path)
    events, stats = replay(write(tmp_path / "garbage.gz", mixed), tmp_path)
    extra = (3000 - 50) // 97 + 1 + len(GARBAGE)
    assert stats["lines"] == clean["lines"] + extra
    assert stats["bad_lines"] + stats["unknown"] + stats["other_symbol"] == extra
    assert stats["unknown"] >= 2 and stats["other_symbol"] >= 1 and stats["bad_lines"] >= 8
    # The garbage touched no real message: same events as without it.
    assert (stats["trades"], stats["applied"], stats["gaps"]) == (
        clean["trades"], clean["applied"], 0)
    assert sum(type(e) is Trade for e in events) == clean["trades"]


def test_wild_exchange_times_are_restamped_not_followed(data_dir: Path, tmp_path: Path) -> None:
    """A diff with a garbage ``E`` and a trade with a ``T`` years away: both keep their place
    (stamped from the receive time), the book stays in sync, the order holds."""
    lines = lines_of(data_dir / ETH)[:3000]
    depth_i = [i for i, x in enumerate(lines) if is_depth(x)][100]
    trade_i = [i for i, x in enumerate(lines) if b"@trade" in x][100]
    for i, key, value in ((depth_i, "E", 1), (trade_i, "T", 9_000_000_000_000)):
        ns, body = lines[i].split(b" ", 1)
        msg = json.loads(body)
        msg["data"][key] = value
        lines[i] = ns + b" " + json.dumps(msg).encode() + b"\n"
    events, stats = replay(write(tmp_path / "wild.gz", lines), tmp_path)
    _, clean = replay(write(tmp_path / "clean.gz", lines_of(data_dir / ETH)[:3000]), tmp_path)
    assert stats["bad_ts"] == 2
    assert (stats["gaps"], stats["applied"], stats["trades"]) == (0, clean["applied"],
                                                                  clean["trades"])
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in pairwise(ts))
    assert ts[-1] - ts[0] < 10 * 60_000


def test_truncated_gzip_keeps_its_head(data_dir: Path, tmp_path: Path) -> None:
    raw = (data_dir / ETH).read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 3])
    events, stats = replay(cut, tmp_path)
    assert stats["truncated"] == 1
    low, high = expect((5000, 20_000), (2000, 8000))  # of 33,618 lines, or 13,500 (slice)
    assert low < stats["lines"] < high
    assert stats["gaps"] == 0 and any(type(e) is BookDepth for e in events)


@pytest.mark.parametrize("content", [b"", b"garbage\n" * 50, b"\x1f\x8b\x08\x00broken",
                                     b"123 {\"stream\": \"x@kline\", \"data\": {}}\n"],
                         ids=["empty", "garbage", "bad-gzip", "unknown-only"])
def test_a_capture_with_nothing_usable_is_a_data_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.gz").write_bytes(content)
    with pytest.raises(DataError, match="no usable line"):
        replay(tmp_path / "bad.gz", tmp_path)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        replay("nope.gz", tmp_path)
    with pytest.raises(DataError, match="no capture file matches"):
        replay("nope_*.gz", tmp_path)


@cache
def _slice(data: str) -> tuple[list[bytes], dict[int, Any]]:
    lines = lines_of(Path(data) / ETH)[:700]
    _, _, truth, _ = clean_run(Path(data), ETH)
    return lines, truth


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["drop", "dup", "swap", "corrupt", "cross"]),
                              st.integers(0, 699)), min_size=1, max_size=6))
def test_no_mangling_of_the_stream_makes_a_wrong_book(data_dir: Path, tmp_path: Path,
                                                      ops: list[tuple[str, int]]) -> None:
    """Lines dropped, duplicated, swapped, corrupted, or a diff that crosses the book: the
    replay never raises, stays in time order, and every book it emits is the true book at its
    update id (a clean replay's), or none at all."""
    lines, truth = _slice(str(data_dir))
    lines = list(lines)
    for op, i in ops:
        i %= len(lines)
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif op == "corrupt":
            lines[i] = lines[i][: len(lines[i]) // 2] + b"\n"
        elif op == "cross" and is_depth(lines[i]):
            ns, body = lines[i].split(b" ", 1)
            msg = json.loads(body)
            msg["data"]["b"].append(["999999.0", "1.0"])
            lines[i] = ns + b" " + json.dumps(msg).encode() + b"\n"
    path = write(tmp_path / "mangled.gz", lines)
    source = build(BinanceCapture, {"path": str(path)})
    source.setup(run_info(tmp_path))
    last = -math.inf
    for ev in source.events():
        if type(ev) is not Bar:
            assert ev.ts >= last
            last = ev.ts
        if type(ev) is BookDepth:
            assert not ev.book.crossed
            assert truth.get(ev.book.last_update_id) == book_state(ev.book)
    stats = source.stats()
    assert stats["applied"] + stats["stale_diffs"] + stats["unsynced_diffs"] <= \
        stats["depth_diffs"] + sum(op == "dup" for op, _ in ops)


# --- options, bars and pipelines ------------------------------------------------------------------


def test_bars_equal_a_direct_aggregation_of_the_trades(data_dir: Path) -> None:
    events, _ = replay(SPOT, data_dir, bars="1m", streams=["trades"])
    trades = [e for e in events if type(e) is Trade]
    bars = [e for e in events if type(e) is Bar]
    groups: dict[int, list[Trade]] = {}
    for t in trades:
        groups.setdefault(t.ts - t.ts % 60_000, []).append(t)
    expected = []
    for start, ts in sorted(groups.items()):
        prices = [t.price for t in ts]
        volume = 0.0
        for t in ts:
            volume += t.qty
        expected.append(Bar(start, prices[0], max(prices), min(prices), prices[-1], volume))
    assert bars == expected
    # 23:54 .. 00:00 (the last trade is at 00:00:01); the slice ends in 23:56
    assert len(bars) == expect(7, 3)
    # Each bar comes when it closes: after its own trades and the one that closed it.
    for i, e in enumerate(events):
        if type(e) is Bar and i + 1 < len(events):
            before = [x for x in events[:i] if type(x) is Trade]
            assert before[-1].ts >= e.ts + 60_000  # the trade that closed it
            assert before[-2].ts < e.ts + 60_000


def test_bars_without_trade_events(data_dir: Path) -> None:
    # The bars are made from the trades, so the trades come too (for the validators to see).
    source = build(BinanceCapture, {"path": str(ETH), "bars": "1m", "streams": ["depth"]})
    assert source.provides == {"bars", "depth", "trades"}
    source.setup(run_info(data_dir))
    kinds = Counter(type(e) for e in TimeBars(source.bar_interval).fold(source.events()))
    assert set(kinds) == {Bar, BookDepth, Trade} and kinds[Bar] >= expect(6, 2)


class TakerBuyShare(Feature):
    """Share of taker-buy volume over the last 100 trades (test feature)."""

    name = "test-taker-buy-share"
    inputs = frozenset({"trades"})

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.window: list[tuple[float, float]] = []

    def update(self, event: Any) -> float:
        self.window.append((event.qty if event.side == "buy" else 0.0, event.qty))
        if len(self.window) > 100:
            self.window.pop(0)
        self.ready = len(self.window) == 100
        total = sum(q for _, q in self.window)
        return sum(b for b, _ in self.window) / total if self.ready and total else math.nan


class TopImbalance(Feature):
    """Bid share of the best 10 levels' quantity (test feature)."""

    name = "test-top-imbalance"
    inputs = frozenset({"depth"})

    def update(self, event: Any) -> float:
        bid, ask = event.book.depth("bid", 10), event.book.depth("ask", 10)
        self.ready = True
        return bid / (bid + ask)


class Features:
    @staticmethod
    @hookimpl
    def gridkit_register_features(register: Any) -> None:
        register(TakerBuyShare)
        register(TopImbalance)


@pytest.fixture
def host(gridkit_register_plugin: Callable[..., PluginHost]) -> PluginHost:
    return gridkit_register_plugin(Features, "capture-test-features")


def test_pipeline_runs_on_a_capture(data_dir: Path, host: PluginHost,
                                    gridkit_run_toml: Callable[..., Any]) -> None:
    s = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "binance-capture"
path = "{(data_dir / ETH).as_posix()}"
bars = "1m"
[[features]]
use = "test-taker-buy-share"
[[features]]
use = "test-top-imbalance"
""" + STRATEGY)
    assert s["status"] == "finished", s["error"]
    expected = scan(data_dir / ETH)["counts"]
    assert s["events"]["trades"]["seen"] == expected["trade"]
    assert s["events"]["book"]["seen"] == expected["bookTicker"]
    assert s["events"]["depth"]["seen"] == expect(3433, 1322)
    assert s["bars_seen"] == expect(7, 3)
    stats = s["components"]["source"]
    assert stats["gaps"] == 0 and stats["syncs"] == 1 and stats["symbol"] == "ethusdt"


def test_streams_decide_what_the_source_provides(
        data_dir: Path, host: PluginHost, gridkit_run_toml: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="reads depth"):
        gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "binance-capture"
path = "{(data_dir / SPOT).as_posix()}"
streams = ["trades"]
[[features]]
use = "test-top-imbalance"
""" + STRATEGY)


@pytest.mark.parametrize(("options", "message"), [
    ({"streams": ["trades", "klines"]}, "unknown stream"),
    ({"streams": []}, "nothing to emit"),
    ({"bars": "5x"}, "not an interval"),
    ({"reorder_ms": -1}, "must be >= 0"),
])
def test_bad_options_are_refused(gridkit_run_toml: Callable[..., Any], options: dict[str, Any],
                                 message: str) -> None:
    opts = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    with pytest.raises(ConfigError, match=message):
        gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "binance-capture"
path = "x.gz"
{opts}
""" + STRATEGY)


class _OnRealData:
    @pytest.fixture(autouse=True)
    def _real_data(self, data_dir: Path) -> None:
        self.base_dir = data_dir


class TestBinanceCaptureContract(_OnRealData, SourceContract):
    component_class = BinanceCapture
    options = {"path": str(ETH), "bars": "1m"}


class TestBinanceCaptureUsdmContract(_OnRealData, SourceContract):
    component_class = BinanceCapture
    options = {"path": str(USDM), "streams": ["trades", "book"]}
