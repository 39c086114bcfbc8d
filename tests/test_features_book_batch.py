"""The order-book features' batch functions equal their streaming updates, bit for bit, on the
real Binance captures (through the ``binance-capture`` source) and on random books; the book
tape's format; and the errors a bad tape gives."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import Bar, BookDepth, BookUpdate, Trade
from gridkit.core.types import EVENT_KINDS
from gridkit.data.book import OrderBook
from gridkit.plugins.binance_capture import BinanceCapture
from gridkit.plugins.features.book import (
    BOOK_ROW,
    DEPTH_ROW,
    ROW_KINDS,
    TRADE_ROW,
    HiddenLiquidity,
    L2Delta,
    LiquidityVacuum,
    OrderImbalance,
    Spoofing,
    SpreadAnalysis,
    SpreadBps,
    book_columns,
)
from gridkit.runtime.context import RunInfo
from gridkit.testing import build

HFT = Path("trades_orderbook") / "hftbacktest"
CAPTURES = {
    "spot-btc": HFT / "spot" / "btcusdt_20240808.gz",
    "spot-eth": HFT / "spot" / "ethusdt_20240808.gz",
    "usdm-btc": HFT / "usdm" / "btcusdt_20240808.gz",  # @depth@0ms: twice the depth updates
}
TAPE_LEVELS = 100  # what the defaults need (hidden-liquidity reads 100 levels)

#: Every feature with its stream options and some non-default settings that reach other paths
#: (a narrow copy that leaves trades unattributed, a short window, eviction of placements, ...).
CONFIGS: list[tuple[type, dict[str, Any]]] = [
    (SpreadBps, {}),
    (SpreadBps, {"stream": "depth"}),
    (OrderImbalance, {}),
    (OrderImbalance, {"levels": 1, "stream": "depth"}),
    (OrderImbalance, {"levels": 10}),
    (SpreadAnalysis, {}),
    (SpreadAnalysis, {"stream": "depth", "window": 50}),
    (SpreadAnalysis, {"output": "ratio", "window": 20}),
    (SpreadAnalysis, {"min_rel_std": 0.0, "window": 30}),
    (L2Delta, {}),
    (L2Delta, {"levels": 1, "stream": "book"}),
    (L2Delta, {"levels": 20}),
    (HiddenLiquidity, {}),
    (HiddenLiquidity, {"window": 20, "levels": 10}),
    (Spoofing, {}),
    (Spoofing, {"window_ms": 5000, "size_factor": 2.0, "max_pending": 4, "min_rank": 0}),
    (LiquidityVacuum, {}),
    (LiquidityVacuum, {"size": 5.0, "levels": 20, "window": 30}),
]
IDS = [f"{c.name}-" + ("-".join(f"{k}={v}" for k, v in o.items()) or "defaults")
       for c, o in CONFIGS]
#: The deeper USDM capture runs the defaults of each feature only (time).
USDM_CONFIGS = {0, 1, 2, 4, 5, 9, 12, 14, 16}


def assert_same(streamed: Any, batch: Any) -> None:
    """Equal element for element, NaN where NaN, and the same sign bits (0.0 vs -0.0)."""
    streamed = np.asarray(streamed, dtype=np.float64)
    assert batch.dtype == np.float64 and batch.shape == streamed.shape
    nan = np.isnan(streamed)
    assert np.array_equal(nan, np.isnan(batch)), np.flatnonzero(nan != np.isnan(batch))[:10]
    bad = np.flatnonzero(streamed[~nan] != batch[~nan])
    assert bad.size == 0, (bad[:10], streamed[~nan][bad[:3]], batch[~nan][bad[:3]])
    assert np.array_equal(np.signbit(streamed[~nan]), np.signbit(batch[~nan]))


def kind_codes(feature: Any) -> list[int]:
    return [ROW_KINDS[k] for k in feature.inputs]


@cache
def _capture_run(path: Path, which: tuple[int, ...]) -> tuple[dict[str, Any], list[Any],
                                                              list[Any]]:
    """The tape of a capture and, for the configs ``which``, what streaming gave on each event
    it reads and the feature after the run; one pass of the source for all of them."""
    source = build(BinanceCapture, {"path": str(path)})
    source.setup(RunInfo("test", "backtest", "BTC/USDT", 10_000.0, path.parent))
    feats = [build(*CONFIGS[i]) for i in which]
    streamed: list[list[float]] = [[] for _ in feats]

    def events() -> Any:
        for e in source.events():
            kind = EVENT_KINDS[type(e)]
            for f, out in zip(feats, streamed, strict=True):
                if kind in f.inputs:
                    out.append(f.update(e))
            yield e

    try:
        tape = book_columns(events(), levels=TAPE_LEVELS)
    finally:
        source.close()
    return tape, streamed, feats


def capture_run(data_dir: Path, name: str) -> tuple[dict[str, Any], list[Any], list[Any]]:
    which = tuple(sorted(USDM_CONFIGS)) if name == "usdm-btc" else tuple(range(len(CONFIGS)))
    return _capture_run(data_dir / CAPTURES[name], which)


# --- batch == streaming on the real captures ---------------------------------------------------


RUNS = [pytest.param(name, i, id=f"{name}-{IDS[i]}") for name in CAPTURES
        for i in range(len(CONFIGS)) if name != "usdm-btc" or i in USDM_CONFIGS]


@pytest.mark.parametrize(("name", "i"), RUNS)
def test_batch_equals_streaming_on_real_captures(data_dir: Path, name: str, i: int) -> None:
    tape, streamed, feats = capture_run(data_dir, name)
    which = sorted(USDM_CONFIGS) if name == "usdm-btc" else list(range(len(CONFIGS)))
    k = which.index(i)
    cls, options = CONFIGS[i]
    fresh = build(cls, options)
    out = fresh.batch(tape)
    assert out.shape == tape["kind"].shape
    mine = np.isin(tape["kind"], kind_codes(fresh))
    assert_same(streamed[k], out[mine])
    assert np.isnan(out[~mine]).all()  # rows of kinds it does not read
    assert np.isfinite(out[mine]).sum() > 0.5 * mine.sum() or cls is Spoofing
    # batch reads the tape only: the feature's own state is untouched, twice gives the same
    assert not fresh.ready
    assert_same(out, fresh.batch(tape))
    assert feats[k].ready


def test_real_captures_reach_the_interesting_paths(data_dir: Path) -> None:
    """The configs above exercise what makes the kernels hard: spoofs found and cleared,
    trades beyond the copied levels, placements evicted, spreads that move."""
    tape, streamed, feats = capture_run(data_dir, "spot-btc")
    by_id = dict(zip(IDS, feats, strict=True))
    spoof = by_id["spoofing-defaults"].stats()
    assert spoof["spoof_cancels"] > 0 and spoof["large_placements"] > spoof["spoof_cancels"]
    busy = by_id["spoofing-window_ms=5000-size_factor=2.0-max_pending=4-min_rank=0"]
    assert busy.stats()["cleared_by_trades"] > 0 and busy.stats()["large_placements"] > 100
    assert by_id["hidden-liquidity-window=20-levels=10"].stats()["unattributed_trades"] > 0
    assert by_id["hidden-liquidity-defaults"].stats()["hidden_volume"] > 0
    # the size is beyond the walked levels on as many depth rows as the tape shows, counted
    # independently here: sides holding less than `size` in their first `levels` levels
    bid, ask = tape["depth_bid_price"][:, 0], tape["depth_ask_price"][:, 0]
    two_sided = (bid + ask) * 0.5 > 0.0
    for key, levels, size in (("liquidity-vacuum-defaults", 50, 1.0),
                              ("liquidity-vacuum-size=5.0-levels=20-window=30", 20, 5.0)):
        short = ((tape["depth_bid_qty"][:, :levels].sum(axis=1) < size)
                 | (tape["depth_ask_qty"][:, :levels].sum(axis=1) < size))
        assert by_id[key].stats()["size_beyond_levels"] == np.sum(short & two_sided)
    assert by_id["liquidity-vacuum-size=5.0-levels=20-window=30"].stats()[
        "size_beyond_levels"] > 1000  # 5 BTC is often beyond the best 20 levels
    z = np.asarray(streamed[IDS.index("spread-analysis-defaults")])
    assert np.nanmax(np.abs(z)) > 1.0


# --- batch == streaming on random books (empty sides, thin books, every option) ----------------


def random_events(seed: int, n: int) -> list[Any]:
    """Trades, BBO updates and depth diffs of a small random book around 100: sides empty out,
    levels come and go, the book is now and then locked or crossed, trades print at and
    beyond the touch. Depth diffs are ("depth", ts, changes): :func:`live` applies them."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    ts = 0
    for _ in range(n):
        ts += int(rng.integers(-40, 300))  # now and then back in time (a clamped source)
        r = rng.random()
        if r < 0.35:
            side = "buy" if rng.random() < 0.5 else "sell"
            price = float(100 + rng.integers(-4, 5))
            out.append(Trade(ts, price, float(rng.choice([0.5, 1.0, 3.0, 10.0])), side))
        elif r < 0.5:
            bid = math.nan if rng.random() < 0.05 else float(99 - rng.integers(0, 2))
            out.append(BookUpdate(ts, bid, float(rng.integers(0, 4)),
                                  float(101 + rng.integers(-2, 2)), float(rng.integers(1, 4))))
        else:
            changes = []
            for _ in range(int(rng.integers(0, 5))):
                side = "bid" if rng.random() < 0.5 else "ask"
                price = float(99 - rng.integers(0, 8)) if side == "bid" else float(
                    100 + rng.integers(-1, 8))
                qty = float(rng.choice([0.0, 0.0, 1.0, 2.0, 25.0, 60.0]))
                changes.append((side, price, qty))
            out.append(("depth", ts, tuple(changes)))
    return out


def live(events: list[Any]) -> Any:
    """The events of :func:`random_events` as a source yields them: each depth diff applied to
    one live book, then a BookDepth showing it (valid until the next one)."""
    book = OrderBook()
    for e in events:
        if type(e) is tuple:
            _, ts, changes = e
            for side, price, qty in changes:
                book.set(side, price, qty)
            yield BookDepth(ts, book, changes)
        else:
            yield e


SMALL: list[tuple[type, dict[str, Any]]] = [
    (SpreadBps, {}), (SpreadBps, {"stream": "depth"}),
    (OrderImbalance, {}), (OrderImbalance, {"levels": 1, "stream": "depth"}),
    (OrderImbalance, {"levels": 3}),
    (SpreadAnalysis, {"window": 4}), (SpreadAnalysis, {"window": 3, "stream": "depth"}),
    (SpreadAnalysis, {"window": 5, "output": "ratio"}),
    (SpreadAnalysis, {"window": 2, "min_rel_std": 0.0}),
    (L2Delta, {"levels": 3}), (L2Delta, {"levels": 1, "stream": "book"}),
    (HiddenLiquidity, {"window": 3, "levels": 2}), (HiddenLiquidity, {"window": 1, "levels": 6}),
    (Spoofing, {"levels": 3, "min_rank": 0, "size_factor": 1.0, "max_life_ms": 800,
                "window_ms": 1500, "max_pending": 2}),
    (Spoofing, {"levels": 5, "min_rank": 1, "size_factor": 0.5, "cancel_fraction": 0.3,
                "max_life_ms": 3000, "window_ms": 1000, "max_pending": 16}),
    (LiquidityVacuum, {"size": 2.0, "levels": 2, "window": 3}),
    (LiquidityVacuum, {"size": 0.5, "levels": 6, "window": 1}),
]


@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
@settings(max_examples=150, deadline=None)
def test_batch_equals_streaming_on_random_books(seed: int, n: int) -> None:
    events = random_events(seed, n)
    feats = [build(c, o) for c, o in SMALL]
    streamed: list[list[float]] = [[] for _ in feats]

    def fed() -> Any:
        for e in live(events):
            kind = EVENT_KINDS[type(e)]
            for f, out in zip(feats, streamed, strict=True):
                if kind in f.inputs:
                    out.append(f.update(e))
            yield e

    tape = book_columns(fed(), levels=6)
    for (cls, options), s in zip(SMALL, streamed, strict=True):
        f = build(cls, options)
        out = f.batch(tape)
        assert_same(s, out[np.isin(tape["kind"], kind_codes(f))])


# --- tapes of one kind, without ``kind`` ------------------------------------------------------


def test_a_tape_of_one_kind_needs_no_kind_column(data_dir: Path) -> None:
    tape, _, _ = capture_run(data_dir, "spot-btc")
    book = tape["kind"] == BOOK_ROW
    quotes = {k: tape[k][book] for k in ("ts", "bid", "bid_qty", "ask", "ask_qty")}
    depth = {k: tape[k] for k in tape if k.startswith("depth_")}
    for cls, options, part, rows in [
            (SpreadBps, {}, quotes, book), (OrderImbalance, {}, quotes, book),
            (L2Delta, {"levels": 1, "stream": "book"}, quotes, book),
            (SpreadAnalysis, {"stream": "depth"}, depth, tape["kind"] == DEPTH_ROW),
            (LiquidityVacuum, {}, depth, tape["kind"] == DEPTH_ROW)]:
        f = build(cls, options)
        assert_same(f.batch(tape)[rows], f.batch(part))


# --- the tape's format ----------------------------------------------------------------------


def test_book_columns_format() -> None:
    book = OrderBook()
    book.load([(99.0, 1.0), (98.0, 2.0), (97.0, 3.0)], [(101.0, 4.0)])
    events = iter([
        Trade(1, 100.5, 0.25, "buy"),
        BookUpdate(2, 99.0, 1.0, 101.0, 4.0),
        Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0),  # not a book event: left out
        BookDepth(3, book, ()),
        Trade(4, 99.0, 0.5, "sell"),
    ])

    def then_change() -> Any:
        for e in events:
            yield e
            if type(e) is BookDepth and e.ts == 3:  # the next depth event changes the book
                book.set("ask", 101.0, 0.0)
                book.set("bid", 99.5, 7.0)
                yield BookDepth(5, book, (("ask", 101.0, 0.0), ("bid", 99.5, 7.0)))

    tape = book_columns(then_change(), levels=3)
    assert tape["kind"].dtype == np.int8 and tape["ts"].dtype == np.int64
    assert tape["kind"].tolist() == [TRADE_ROW, BOOK_ROW, DEPTH_ROW, DEPTH_ROW, TRADE_ROW]
    assert tape["ts"].tolist() == [1, 2, 3, 5, 4]
    nan = math.nan
    np.testing.assert_array_equal(tape["price"], [100.5, nan, nan, nan, 99.0])
    np.testing.assert_array_equal(tape["qty"], [0.25, nan, nan, nan, 0.5])
    np.testing.assert_array_equal(tape["side"], [1.0, 0.0, 0.0, 0.0, -1.0])
    np.testing.assert_array_equal(tape["bid"], [nan, 99.0, nan, nan, nan])
    np.testing.assert_array_equal(tape["ask_qty"], [nan, 4.0, nan, nan, nan])
    # the book as it was at each depth event (it is live: copied while iterating)
    np.testing.assert_array_equal(tape["depth_bid_price"], [[99.0, 98.0, 97.0],
                                                            [99.5, 99.0, 98.0]])
    np.testing.assert_array_equal(tape["depth_bid_qty"], [[1.0, 2.0, 3.0], [7.0, 1.0, 2.0]])
    np.testing.assert_array_equal(tape["depth_ask_price"], [[101.0, nan, nan], [nan, nan, nan]])
    np.testing.assert_array_equal(tape["depth_ask_qty"], [[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert tape["change_offset"].tolist() == [0, 0, 2]
    assert tape["change_side"].tolist() == [-1, 1]
    assert tape["change_price"].tolist() == [101.0, 99.5]
    assert tape["change_qty"].tolist() == [0.0, 7.0]
    for k in ("price", "qty", "side", "bid", "bid_qty", "ask", "ask_qty", "change_price"):
        assert tape[k].dtype == np.float64 and tape[k].flags.c_contiguous
    # kinds: only the rows asked for
    only = book_columns([Trade(1, 1.0, 1.0, "buy"), BookUpdate(2, 1.0, 1.0, 2.0, 1.0)],
                        kinds=["book"])
    assert only["kind"].tolist() == [BOOK_ROW] and only["depth_bid_price"].shape == (0, 100)
    assert book_columns([Trade(1, 1.0, 1.0, "buy")], kinds="trades")["kind"].tolist() == [0]
    empty = book_columns([], levels=5)
    assert all(v.shape[0] == (1 if k == "change_offset" else 0) for k, v in empty.items())
    assert empty["depth_ask_qty"].shape == (0, 5)
    assert np.isnan(build(SpreadBps, {}).batch(empty)).shape == (0,)


def test_book_columns_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        book_columns([], levels=0)
    with pytest.raises(ValueError, match="unknown kind"):
        book_columns([], kinds=["bars"])
    with pytest.raises(TypeError, match="not a market event: dict"):
        book_columns([{"ts": 1}])


# --- bad tapes: clear errors ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_tape() -> dict[str, Any]:
    return book_columns(live(random_events(7, 300)), levels=6)


def test_missing_columns_are_named(small_tape: dict[str, Any]) -> None:
    t = dict(small_tape)
    del t["ask"]
    with pytest.raises(ValueError, match="spread-bps batch: missing column 'ask'"):
        build(SpreadBps, {}).batch(t)
    build(SpreadBps, {"stream": "depth"}).batch(t)  # reads the depth arrays only
    t = dict(small_tape)
    del t["change_offset"]
    with pytest.raises(ValueError, match="spoofing batch: missing column 'change_offset'"):
        build(Spoofing, {"levels": 3}).batch(t)
    t = {k: v for k, v in small_tape.items() if k != "kind"}
    with pytest.raises(ValueError, match="missing column 'kind': it reads depth and trades"):
        build(HiddenLiquidity, {"levels": 3}).batch(t)
    with pytest.raises(ValueError, match="missing column 'depth_bid_price'"):
        build(LiquidityVacuum, {}).batch({"bid": np.ones(3)})


def test_columns_of_the_wrong_length_or_shape(small_tape: dict[str, Any]) -> None:
    t = dict(small_tape, bid_qty=small_tape["bid_qty"][:-1])
    with pytest.raises(ValueError, match=r"column 'bid_qty' has shape \(\d+,\); the tape has"):
        build(OrderImbalance, {}).batch(t)
    t = dict(small_tape, depth_ask_qty=small_tape["depth_ask_qty"][1:])
    with pytest.raises(ValueError, match=r"'depth_ask_qty' has shape .* one row per depth row"):
        build(L2Delta, {"levels": 3}).batch(t)
    with pytest.raises(ValueError, match="holds 6 levels; this feature reads 100 "
                                         r"\(book_columns\(events, levels=100\)\)"):
        build(HiddenLiquidity, {}).batch(small_tape)
    t = dict(small_tape, change_price=small_tape["change_price"][:-1])
    with pytest.raises(ValueError, match="'change_side', 'change_price' and 'change_qty' must"):
        build(Spoofing, {"levels": 3}).batch(t)
    t = dict(small_tape, change_offset=small_tape["change_offset"][:-1])
    with pytest.raises(ValueError, match="'change_offset' must rise from 0"):
        build(Spoofing, {"levels": 3}).batch(t)
    t = dict(small_tape, kind=np.where(small_tape["kind"] == 1, 7, small_tape["kind"]))
    with pytest.raises(ValueError, match="'kind' holds a value that is not a row kind"):
        build(SpreadBps, {}).batch(t)
    t = dict(small_tape, kind=small_tape["kind"].astype(float))
    with pytest.raises(ValueError, match="'kind' holds a value that is not a row kind"):
        build(SpreadBps, {}).batch(t)


def test_spoofing_batch_buffers_stay_small(data_dir: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """The spoofing kernel keeps its cancelled volumes in a buffer sized for one window, grown
    by doubling, and its placements in 2 * max_pending + 2 slots squeezed when full: started
    at one slot, so that every cancel grows or squeezes it, it still gives streaming's values,
    on the real capture and on random books."""
    from gridkit.plugins.features import kernels_book

    kernel = kernels_book.spoofing_batch

    def one_slot(*args: Any) -> Any:
        return kernel(*args, 1)

    monkeypatch.setattr(kernels_book, "spoofing_batch", one_slot)
    tape, streamed, feats = capture_run(data_dir, "spot-btc")
    checked = 0
    for k, (cls, options) in enumerate(CONFIGS):
        if cls is Spoofing:
            f = build(cls, options)
            assert_same(streamed[k], f.batch(tape)[np.isin(tape["kind"], kind_codes(f))])
            assert feats[k].stats()["spoof_cancels"] > 10
            checked += 1
    assert checked == 2
    small_options = [o for c, o in SMALL if c is Spoofing]
    cancels = 0
    for seed in range(20):
        events = random_events(seed, 400)
        spoof = [build(Spoofing, o) for o in small_options]
        seen: list[list[float]] = [[] for _ in spoof]
        for e in live(events):
            if EVENT_KINDS[type(e)] in ("trades", "depth"):
                for f, out in zip(spoof, seen, strict=True):
                    out.append(f.update(e))
        small = book_columns(live(events), levels=6)
        for f, o, s in zip(spoof, small_options, seen, strict=True):
            fresh = build(Spoofing, o)
            assert_same(s, fresh.batch(small)[np.isin(small["kind"], kind_codes(fresh))])
            cancels += f.stats()["spoof_cancels"]
    assert cancels > 100
