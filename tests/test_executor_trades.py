"""The ``simulated-trades`` executor: fills from trade prints. Rule by rule on hand-made prints
(the numbers are those of its docstring), its own contract on real prints, the real XRP/ETH
tape through the engine against an independent reference grid, and a raw Binance capture with
its book, where the queue rule is checked order by order against a plain reference."""

from __future__ import annotations

import gzip
import json
import math
import pickle
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridkit import Bar, BookDepth, BookUpdate, Fill, Trade
from gridkit.core.types import Cancelled, Expired, Rejected
from gridkit.data.book import OrderBook
from gridkit.plugins.binance_capture import BinanceCapture
from gridkit.plugins.executors.trades import SimulatedTradesExecutor
from gridkit.runtime.context import RunInfo
from gridkit.testing import ComponentContract, ExecutorContract, build, run_toml
from helpers import ExecutorHarness, expect, xrp_trades_pipeline

SYM = "X/Y"
MAKER, TAKER = 0.001, 0.002
XRP_ETH = Path("trades_orderbook") / "freqtrade" / "XRP_ETH-trades.json.gz"
CAPTURE = Path("trades_orderbook") / "hftbacktest" / "spot" / "btcusdt_20240808.gz"


def tape(capital: float = 1e9, **options: Any) -> ExecutorHarness:
    return ExecutorHarness(SimulatedTradesExecutor,
                           {"maker_fee": MAKER, "taker_fee": TAKER, "check_balance": False,
                            **options}, SYM, capital)


def T(ts: int, price: float, qty: float, side: str = "sell") -> Trade:
    return Trade(ts, price, qty, side)  # type: ignore[arg-type]


def fills(reports: list[Any]) -> list[tuple[str, float, float, str, float]]:
    """The fills among reports as (id, qty, price, liquidity, remaining)."""
    return [(r.order_id, r.qty, r.price, r.liquidity, r.remaining) for r in reports
            if type(r) is Fill]


def ends(reports: list[Any]) -> list[tuple[str, str, str]]:
    return [(type(r).__name__, r.order_id, r.reason) for r in reports
            if type(r) in (Cancelled, Expired, Rejected)]


# --- rule 1: live from the next print; market, crossing, post-only, IOC / FOK ------------------


def test_an_order_is_live_from_the_next_print() -> None:
    s = tape()
    s.feed(T(1, 99.0, 5.0))  # through 100, but before the orders existed
    s.submit("b", "buy", 1.0, 100.0)
    s.submit("m", "sell", 1.0, 0.0, "market")
    got = s.feed(T(2, 100.5, 5.0))
    assert fills(got) == [("m", 1.0, 100.5, "taker", 0.0)]  # the next print's price
    got = s.feed(T(3, 99.9, 0.4))
    assert fills(got) == [("b", 0.4, 100.0, "maker", pytest.approx(0.6))]


def test_market_orders_take_the_next_prints_in_parts_before_resting_limits() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("rest", "buy", 1.0, 99.0)
    s.submit("m", "buy", 2.5, 0.0, "market")
    assert fills(s.feed(T(2, 100.2, 1.0))) == [("m", 1.0, 100.2, "taker", 1.5)]
    # The print goes through the resting buy too, but the market order takes it first.
    assert fills(s.feed(T(3, 98.5, 1.2))) == [("m", 1.2, 98.5, "taker", pytest.approx(0.3))]
    got = s.feed(T(4, 98.0, 1.0))
    assert fills(got) == [("m", pytest.approx(0.3), 98.0, "taker", 0.0),
                          ("rest", pytest.approx(0.7), 99.0, "maker", pytest.approx(0.3))]
    fees = [r.fee for r in got if type(r) is Fill]
    assert fees == [pytest.approx(98.0 * 0.3 * TAKER), pytest.approx(99.0 * 0.7 * MAKER)]


def test_post_only_is_rejected_if_it_would_cross_the_print_it_arrives_at() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("po_b", "buy", 1.0, 100.0, tif="PO")   # at the print: would cross
    s.submit("po_s", "sell", 1.0, 99.5, tif="PO")
    s.submit("ok_b", "buy", 1.0, 99.9, tif="PO")
    s.submit("ok_s", "sell", 1.0, 100.1, tif="PO")
    got = s.feed(T(2, 100.0, 1.0))
    assert sorted(ends(got)) == [("Rejected", "po_b", "post-only order would cross"),
                                 ("Rejected", "po_s", "post-only order would cross")]
    assert {r.by for r in got if type(r) is Rejected} == {"simulated-trades"}
    assert fills(got) == [] and s.open_ids() == {"ok_b", "ok_s"}


def test_with_a_book_crossing_is_judged_against_the_best_opposite_price() -> None:
    s = tape()
    s.feed(BookUpdate(1, 100.0, 5.0, 100.1, 2.0))
    s.submit("at_bid", "buy", 1.0, 100.0, tif="PO")   # below the ask: rests
    s.submit("at_ask", "buy", 1.0, 100.1, tif="PO")   # at the ask: would cross
    got = s.feed(T(2, 100.0, 1.0))                    # a seller hits the bid
    assert ends(got) == [("Rejected", "at_ask", "post-only order would cross")]
    assert s.open_ids() == {"at_bid"}


def test_ioc_takes_the_print_it_arrives_at_and_its_rest_expires() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("ioc", "buy", 3.0, 100.5, tif="IOC")
    s.submit("miss", "sell", 1.0, 101.0, tif="IOC")  # does not cross
    got = s.feed(T(2, 100.2, 2.0))
    assert fills(got) == [("ioc", 2.0, 100.2, "taker", 1.0)]
    assert sorted(ends(got)) == [("Expired", "ioc", "IOC"), ("Expired", "miss", "IOC")]
    assert s.ex.open_orders() == []


def test_fok_fills_whole_from_the_print_it_arrives_at_or_expires() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("big", "buy", 3.0, 100.5, tif="FOK")   # the print has 2.0: expires, takes nothing
    s.submit("fits", "buy", 1.5, 100.5, tif="FOK")
    got = s.feed(T(2, 100.2, 2.0))
    assert fills(got) == [("fits", 1.5, 100.2, "taker", 0.0)]
    assert ends(got) == [("Expired", "big", "FOK")]


def test_a_gtc_limit_that_crosses_takes_its_arrival_print_then_rests_first_in_line() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("b", "buy", 3.0, 100.5)
    assert fills(s.feed(T(2, 100.2, 1.0))) == [("b", 1.0, 100.2, "taker", 2.0)]
    assert fills(s.feed(T(3, 100.7, 5.0))) == []
    # At its own price with nothing ahead: the whole print.
    assert fills(s.feed(T(4, 100.5, 0.5))) == [("b", 0.5, 100.5, "maker", 1.5)]


# --- rules 2 and 3: print size, through and at the price ---------------------------------------


def test_one_print_is_shared_best_price_first_then_oldest() -> None:
    s = tape()
    s.feed(T(1, 102.0, 1.0))
    s.submit("a", "buy", 1.0, 100.0)
    s.submit("b", "buy", 1.0, 101.0)
    s.submit("c", "buy", 1.0, 101.0)
    s.submit("s", "sell", 1.0, 103.0)
    s.feed(T(2, 101.5, 1.0))  # they arrive; none crosses
    got = s.feed(T(3, 99.0, 2.5))
    assert fills(got) == [("b", 1.0, 101.0, "maker", 0.0), ("c", 1.0, 101.0, "maker", 0.0),
                          ("a", 0.5, 100.0, "maker", 0.5)]
    # The other side has its own share of a print.
    s.submit("s2", "sell", 1.0, 103.0)
    s.feed(T(4, 102.9, 0.1))
    assert fills(s.feed(T(5, 104.0, 1.5))) == [("s", 1.0, 103.0, "maker", 0.0),
                                                ("s2", 0.5, 103.0, "maker", 0.5)]


def test_without_book_data_a_print_at_the_price_fills_only_after_one_went_through() -> None:
    s = tape()
    s.feed(T(1, 101.0, 1.0))
    s.submit("b", "buy", 3.0, 100.0)
    s.feed(T(2, 100.5, 1.0))
    assert fills(s.feed(T(3, 100.0, 50.0))) == []  # the unknown queue ahead takes it all
    assert fills(s.feed(T(4, 99.9, 1.0))) == [("b", 1.0, 100.0, "maker", 2.0)]
    # Everything that was ahead of it traded: now it is first at its price.
    assert fills(s.feed(T(5, 100.0, 1.5))) == [("b", 1.5, 100.0, "maker", 0.5)]
    assert fills(s.feed(T(6, 100.0, 7.0))) == [("b", 0.5, 100.0, "maker", 0.0)]
    assert s.ex.stats() == {"fills": 3, "open_orders": 0, "partial_fills": 2}


def test_front_queue_fills_every_print_at_the_price() -> None:
    s = tape(queue="front")
    s.feed(T(1, 101.0, 1.0))
    s.submit("b", "buy", 3.0, 100.0)
    s.feed(T(2, 100.5, 1.0))
    assert fills(s.feed(T(3, 100.0, 0.5))) == [("b", 0.5, 100.0, "maker", 2.5)]


# --- rule 4: the queue rule with book data -------------------------------------------------------


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_the_queue_ahead_is_the_best_size_shown_when_it_arrived(side: str) -> None:
    s = tape()
    s.feed(BookUpdate(1, 100.0, 5.0, 100.1, 2.0))
    price, ahead = (100.0, 5.0) if side == "buy" else (100.1, 2.0)
    s.submit("o", side, 2.0, price)
    s.feed(T(2, 100.05, 1.0))  # arrival (inside the spread: reaches nothing)
    assert fills(s.feed(T(3, price, ahead - 1.0))) == []  # the queue ahead trades first
    assert fills(s.feed(T(4, price, 1.5))) == [("o", 0.5, price, "maker", 1.5)]
    assert fills(s.feed(T(5, price, 9.0))) == [("o", 1.5, price, "maker", 0.0)]


def test_an_order_improving_on_the_best_has_no_queue_ahead() -> None:
    s = tape()
    s.feed(BookUpdate(1, 100.0, 5.0, 100.1, 2.0))
    s.submit("b", "buy", 1.0, 100.05)
    s.feed(T(2, 100.1, 1.0, "buy"))
    assert fills(s.feed(T(3, 100.05, 0.4))) == [("b", 0.4, 100.05, "maker", 0.6)]


def test_book_data_only_shortens_the_queue_ahead() -> None:
    s = tape()
    s.feed(BookUpdate(1, 100.0, 5.0, 100.1, 2.0))
    s.submit("best", "buy", 1.0, 100.0)
    s.submit("behind", "buy", 1.0, 99.9)  # behind the best: its queue is not known yet
    s.feed(T(2, 100.05, 1.0))
    s.feed(BookUpdate(3, 100.0, 8.0, 100.1, 2.0))  # orders joining behind: nothing changes
    assert fills(s.feed(T(4, 100.0, 4.0))) == []  # 5 - 4 = 1 still ahead
    s.feed(BookUpdate(5, 100.0, 0.3, 100.1, 2.0))  # cancellations ahead: at most 0.3 left
    assert fills(s.feed(T(6, 100.0, 0.5))) == [("best", pytest.approx(0.2), 100.0, "maker",
                                                 pytest.approx(0.8))]
    assert fills(s.feed(T(7, 99.9, 1e6))) == [("best", pytest.approx(0.8), 100.0, "maker", 0.0)]
    # "behind" waited for an unknown queue until a quote showed its price as the best.
    s.feed(BookUpdate(8, 99.9, 0.25, 100.0, 1.0))
    assert fills(s.feed(T(9, 99.9, 1.0))) == [("behind", 0.75, 99.9, "maker", 0.25)]


def test_depth_changes_cap_the_queue_and_a_reloaded_book_is_read_whole() -> None:
    s = tape()
    book = OrderBook()
    book.load([(100.0, 5.0), (99.9, 4.0), (99.8, 3.0)], [(100.1, 2.0)], 1)
    s.feed(BookDepth(1, book))
    s.submit("a", "buy", 1.0, 99.9)
    s.submit("b", "buy", 1.0, 99.8)
    s.feed(T(2, 100.05, 1.0))
    book.set("bid", 99.9, 0.5)
    s.feed(BookDepth(3, book, (("bid", 99.9, 0.5),)))  # a depth change at a's price
    book.load([(100.0, 5.0), (99.9, 0.5), (99.8, 0.1)], [(100.1, 2.0)], 2)
    s.feed(BookDepth(4, book))  # a reloaded book: every level is read
    s.feed(T(5, 99.95, 0.1))  # above both: no change
    got = s.feed(T(6, 99.9, 1.0))
    assert fills(got) == [("a", 0.5, 99.9, "maker", 0.5)]
    # Through a's price (the rest of it first), at b's: 0.1 of what is left is ahead of b.
    assert fills(s.feed(T(7, 99.8, 1.1))) == [("a", 0.5, 99.9, "maker", 0.0),
                                              ("b", pytest.approx(0.5), 99.8, "maker",
                                               pytest.approx(0.5))]


# --- rules 5 and 6: stops, OCO ------------------------------------------------------------------


def test_stops_trigger_on_a_print_and_arrive_at_the_next_one() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("sl", "sell", 1.0, 0.0, "stop", stop_price=99.0)
    s.submit("bl", "buy", 1.0, 101.0, "stop_limit", stop_price=100.5)
    s.feed(T(2, 99.5, 1.0))
    assert s.feed(T(3, 99.0, 0.3)) == []  # triggers the stop, which is not live yet
    assert fills(s.feed(T(4, 98.0, 0.6))) == [("sl", 0.6, 98.0, "taker", pytest.approx(0.4))]
    assert fills(s.feed(T(5, 98.2, 1.0))) == [("sl", pytest.approx(0.4), 98.2, "taker", 0.0)]
    assert s.feed(T(6, 100.6, 0.2, "buy")) == []  # triggers the stop-limit
    assert {o.id: o.kind for o in s.ex.open_orders()} == {"bl": "limit"}
    # It arrives as a limit at 101 and crosses the print at 100.8: a taker there.
    assert fills(s.feed(T(7, 100.8, 0.3, "buy"))) == [("bl", 0.3, 100.8, "taker", 0.7)]


def test_oco_the_first_fill_even_partial_cancels_the_other_orders() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("tp", "sell", 2.0, 101.0, group="g")
    s.submit("sl", "sell", 2.0, 0.0, "stop", stop_price=99.0, group="g")
    s.feed(T(2, 100.0, 1.0))
    got = s.feed(T(3, 101.5, 0.5))
    assert fills(got) == [("tp", 0.5, 101.0, "maker", 1.5)]
    assert ends(got) == [("Cancelled", "sl", "oco")]
    assert s.feed(T(4, 98.0, 5.0)) == [] and s.open_ids() == {"tp"}


# --- what the executor ignores, balances, state ------------------------------------------------


def test_bars_are_not_matched() -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("b", "buy", 1.0, 99.0)
    s.submit("m", "buy", 1.0, 0.0, "market")
    assert s.feed(Bar(0, 100.0, 101.0, 90.0, 95.0, 10.0)) == []
    # Both arrive at the next print; the market order first, though sent second.
    assert fills(s.feed(T(2, 98.0, 5.0))) == [("m", 1.0, 98.0, "taker", 0.0),
                                              ("b", 1.0, 98.0, "taker", 0.0)]


@pytest.mark.parametrize("bad", [T(2, math.nan, 1.0), T(2, -1.0, 1.0), T(2, 0.0, 1.0),
                                 T(2, 99.0, -1.0), T(2, 99.0, math.inf)])
def test_a_bad_print_is_ignored(bad: Trade) -> None:
    s = tape()
    s.feed(T(1, 100.0, 1.0))
    s.submit("m", "buy", 1.0, 0.0, "market")
    assert s.feed(bad) == []
    assert fills(s.feed(T(3, 100.0, 1.0))) == [("m", 1.0, 100.0, "taker", 0.0)]


def test_a_part_filled_order_holds_cash_only_for_its_rest() -> None:
    s = ExecutorHarness(SimulatedTradesExecutor, {"maker_fee": MAKER, "taker_fee": TAKER},
                        SYM, capital=1000.0, book_account=True)
    s.feed(T(1, 101.0, 1.0))
    assert s.submit("a", "buy", 5.0, 100.0) is None  # holds 500.5
    assert s.submit("x", "buy", 5.0, 100.0) == "insufficient cash"
    s.feed(T(2, 100.5, 1.0))
    assert fills(s.feed(T(3, 99.0, 2.0))) == [("a", 2.0, 100.0, "maker", 3.0)]
    # cash 1000 - 200.2 = 799.8, of which the rest of "a" holds 300.3: 499.5 free
    assert s.submit("b", "buy", 4.0, 100.0) is None
    assert s.submit("c", "buy", 1.0, 100.0) == "insufficient cash"
    # A part-filled sell frees its share of base too.
    s.feed(T(4, 99.0, 100.0))  # a and b fill in full: 9 base
    assert s.submit("s", "sell", 9.0, 120.0) is None
    s.feed(T(5, 119.0, 1.0))
    s.feed(T(6, 121.0, 4.0))
    assert s.ctx.position.qty == pytest.approx(5.0)
    assert s.submit("s2", "sell", 1.0, 130.0) == "insufficient base"
    assert s.cancel("s") is None
    assert s.submit("s2", "sell", 5.0, 130.0) is None


def test_the_state_pickles_mid_run_and_goes_on_identically() -> None:
    prints = [T(k, 100.0 + (k * 7919 % 13 - 6) * 0.1, 0.2 + k % 5 * 0.3) for k in range(1, 80)]

    def run(restart_at: int | None) -> list[Any]:
        s = tape()
        s.feed(BookUpdate(0, 100.0, 1.0, 100.1, 1.0))
        out = []
        for k, p in enumerate(prints):
            if k == restart_at:
                fresh = build(SimulatedTradesExecutor, {"maker_fee": MAKER, "taker_fee": TAKER,
                                                        "check_balance": False})
                fresh.restore(pickle.loads(pickle.dumps(s.ex.snapshot())))
                s.ex = fresh
            out += s.feed(p)
            if k % 10 == 0:
                s.submit(f"b{k}", "buy", 1.0, 99.6 + k % 3 * 0.1)
                s.submit(f"s{k}", "sell", 1.0, 100.2 + k % 4 * 0.1)
                s.submit(f"m{k}", "buy", 0.7, 0.0, "market")
        return out

    assert run(None) == run(37)


# --- the contract of an executor on trade prints --------------------------------------------------


class TradesExecutorContract(ComponentContract):
    """An executor on trade prints fills nothing on the print before an order was submitted,
    ignores bars, and reports fills that add up to the order, on real prints."""

    def test_orders_are_live_from_the_next_print(self, xrp: list[Trade]) -> None:
        h = ExecutorHarness(self.component_class, dict(self.options), SYM, kind="linear")
        for k in range(0, 200, 20):
            h.feed(xrp[k])
            oid = f"m{k}"
            assert h.submit(oid, "buy", 1e9, 0.0, "market") is None
            assert h.feed(Bar(xrp[k].ts, 1.0, 1.0, 1.0, 1.0, 1.0)) == []  # not on a bar
            got = [r for r in h.feed(xrp[k + 1]) if type(r) is Fill]
            assert [(f.order_id, f.price, f.qty) for f in got] == [
                (oid, xrp[k + 1].price, xrp[k + 1].qty)]
            assert h.cancel(oid) is None

    def test_part_fills_add_up_to_the_order(self, xrp: list[Trade]) -> None:
        h = ExecutorHarness(self.component_class, dict(self.options), SYM, kind="linear")
        total = sum(p.qty for p in xrp[1:40]) - 0.5
        h.feed(xrp[0])
        assert h.submit("m", "sell", total, 0.0, "market") is None
        got = [r for p in xrp[1:40] for r in h.feed(p) if type(r) is Fill]
        assert len(got) > 10 and got[-1].remaining == 0.0
        assert all(f.remaining > 0 for f in got[:-1])
        assert sum(f.qty for f in got) == pytest.approx(total)
        assert h.ledger.closed == {"filled": 1}


class TestSimulatedTradesContract(TradesExecutorContract):
    component_class = SimulatedTradesExecutor


def test_the_bar_contract_skips_an_executor_that_matches_on_prints(
        gridkit_sample_bars: list[Bar]) -> None:
    class Bars(ExecutorContract):
        component_class = SimulatedTradesExecutor

    with pytest.raises(pytest.skip.Exception, match="trades, not on bars"):
        Bars().test_orders_are_live_from_next_bar(gridkit_sample_bars)


# --- the real XRP/ETH tape -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def xrp(data_dir: Path) -> list[Trade]:
    """The freqtrade XRP/ETH prints, read here (not by the trades-file source)."""
    rows = json.loads(gzip.decompress((data_dir / XRP_ETH).read_bytes()))
    return [Trade(r[0], float(r[4]), float(r[5]), r[3], r[1]) for r in rows]


def drive(prints: list[Trade], queue: str = "back") -> tuple[dict[str, tuple[int, Any]],
                                                             list[tuple[int, Fill]]]:
    """A mix of orders on real prints, sent after print k by a fixed rule (never by what
    filled): limits larger than most prints a little off the last price, market orders, IOC,
    FOK and post-only ones; a resting order is cancelled 300 prints after it was sent.
    Returns the orders (with the index of the print they were sent after) and every fill with
    the index of the print that made it."""
    s = tape(queue=queue)
    sent: dict[str, tuple[int, Any]] = {}
    made: list[tuple[int, Fill]] = []
    expiry: dict[int, list[str]] = defaultdict(list)
    for k, p in enumerate(prints):
        made += [(k, r) for r in s.feed(p) if type(r) is Fill]
        for oid in expiry.pop(k, []):
            if oid in s.open_ids():
                assert s.cancel(oid) is None
        x = p.price
        orders = []
        if k % 25 == 0:
            orders += [("b", "buy", 1500.0, round(x * 0.9995, 8), "limit", "GTC"),
                       ("s", "sell", 1500.0, round(x * 1.0005, 8), "limit", "GTC")]
        if k % 60 == 0:
            orders += [("m", "buy" if k % 120 else "sell", 400.0, 0.0, "market", "GTC"),
                       ("i", "sell", 300.0, round(x * 0.9995, 8), "limit", "IOC"),
                       ("f", "buy", 200.0, round(x * 1.0005, 8), "limit", "FOK")]
        if k % 90 == 0:
            orders += [("p", "buy", 100.0, x, "limit", "PO"),
                       ("c", "sell", 800.0, round(x * 0.999, 8), "limit", "GTC")]
        for tag, side, qty, price, kind, tif in orders:
            oid = f"{tag}{k}"
            assert s.submit(oid, side, qty, price, kind, tif=tif) is None
            sent[oid] = (k, s.ledger.get(oid).order)
            expiry[k + 300].append(oid)
    return sent, made


def test_real_tape_fills_keep_the_rules(xrp: list[Trade]) -> None:
    sent, made = drive(xrp)
    filled: dict[str, float] = defaultdict(float)
    used: dict[tuple[int, str], float] = defaultdict(float)
    crossed: set[str] = set()

    def through(p: Trade, order: Any) -> bool:
        return p.price < order.price if order.side == "buy" else p.price > order.price

    for k, f in made:
        k_sent, order = sent[f.order_id]
        p = xrp[k]
        assert k > k_sent, "filled by a print before it was live"
        assert f.ts == p.ts
        if f.liquidity == "maker":
            assert f.price == order.price and order.kind == "limit"
            if not through(p, order):
                # At its price. With no book data only once a print went through it (or it
                # crossed on arrival and rests first in line).
                assert p.price == order.price
                assert f.order_id in crossed or any(
                    through(q, order) for q in xrp[k_sent + 1:k])
            assert f.fee == pytest.approx(f.price * f.qty * MAKER)
        else:
            assert f.price == p.price
            assert order.kind == "market" or order.tif in ("IOC", "FOK") or (
                k == k_sent + 1 and order.tif == "GTC")  # a crossing limit, at arrival
            assert f.fee == pytest.approx(f.price * f.qty * TAKER)
            if order.tif == "FOK":
                assert f.qty == order.qty
            crossed.add(f.order_id)
        filled[f.order_id] += f.qty
        assert filled[f.order_id] <= order.qty * (1 + 1e-12)
        assert f.remaining == pytest.approx(order.qty - filled[f.order_id], abs=1e-9)
        used[k, f.side] += f.qty
    # A print never gives more than its size to each side.
    for (k, _), qty in used.items():
        assert qty <= xrp[k].qty * (1 + 1e-12)
    # The real tape makes every kind of fill, and partial ones in numbers.
    partial = [f for _, f in made if f.remaining > 0]
    assert len(partial) > 300
    kinds = Counter((sent[f.order_id][1].tif, sent[f.order_id][1].kind, f.liquidity)
                    for _, f in made)
    assert kinds["GTC", "limit", "maker"] > 200 and kinds["GTC", "market", "taker"] > 50
    assert kinds["IOC", "limit", "taker"] > 10 and kinds["FOK", "limit", "taker"] > 5
    assert kinds["GTC", "limit", "taker"] > 5


def test_front_queue_fills_at_least_as_soon_as_back(xrp: list[Trade]) -> None:
    """Each order fills at least as much by every print under the optimistic queue rule (the
    order flow does not depend on fills)."""
    prints = xrp[:4000]
    _, back = drive(prints, "back")
    _, front = drive(prints, "front")
    assert len(front) > len(back)

    def cumulative(made: list[tuple[int, Fill]]) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for k, f in made:
            total = out[f.order_id][-1][1] if out[f.order_id] else 0.0
            out[f.order_id].append((k, total + f.qty))
        return out

    b, f = cumulative(back), cumulative(front)
    for oid, steps in b.items():
        for k, total in steps:
            by_front = max((t for kf, t in f.get(oid, []) if kf <= k), default=0.0)
            assert by_front >= total - 1e-9, (oid, k)


def reference_grid_on_prints(prints: list[Trade], interval: int, lower: float, upper: float,
                             n: int, qty: float, maker: float, taker: float,
                             capital: float) -> dict[str, Any]:
    """DESIGN.md §7's static grid run on trade prints by the rules of ``simulated-trades`` for
    a tape without book data, written as plainly as possible: every open order looked at on
    every print, no heaps, no executor, no ledger, no engine. Prints fold into ``interval``
    bars; the grid starts at the first bar's close and sends each fill's follow-up at the next
    bar close (the engine runs a strategy's decisions on bars). Returns the fills (ts, side,
    price, qty, liquidity) and the final balances."""
    lines = [lower + i * (upper - lower) / n for i in range(n + 1)]
    cash, base = capital, 0.0
    out: list[tuple[Any, ...]] = []
    holding = [False] * n
    resting: list[dict[str, Any]] = []
    markets: list[dict[str, Any]] = []
    decided: list[dict[str, Any]] = []  # follow-ups, sent at the next bar close
    sent: list[dict[str, Any]] = []     # sent after the last print: arrive at the next one
    seq = 0
    start, last, started = None, 0.0, False

    def order(cell: int) -> dict[str, Any]:
        side = "sell" if holding[cell] else "buy"
        return {"cell": cell, "side": side, "kind": "limit", "left": qty,
                "price": lines[cell + 1] if holding[cell] else lines[cell]}

    def fill(o: dict[str, Any], q: float, price: float, liq: str, ts: int) -> None:
        nonlocal cash, base
        fee = price * q * (maker if liq == "maker" else taker)
        if o["side"] == "buy":
            cash -= price * q + fee
            base += q
        else:
            cash += price * q - fee
            base -= q
        o["left"] -= q
        out.append((ts, o["side"], price, q, liq))
        if o["left"] == 0 and o["cell"] >= 0:  # the cell flips when its order is done
            holding[o["cell"]] = o["side"] == "buy"
            decided.append(order(o["cell"]))

    for p in prints:
        x, avail = p.price, {"buy": p.qty, "sell": p.qty}
        for o in markets:  # market orders already taking, oldest first
            q = min(o["left"], avail[o["side"]])
            if q > 0:
                avail[o["side"]] -= q
                fill(o, q, x, "taker", p.ts)
        crossed = []
        for o in sent:  # arrivals
            if o["kind"] == "market":
                markets.append(o)
                crosses = True
            else:
                crosses = x <= o["price"] if o["side"] == "buy" else x >= o["price"]
            if crosses:
                q = min(o["left"], avail[o["side"]])
                if q > 0:
                    avail[o["side"]] -= q
                    fill(o, q, x, "taker", p.ts)
                if o["left"] > 0 and o["kind"] == "limit":
                    crossed.append(o)
            else:
                seq += 1
                o.update(seq=seq, ahead=math.inf)  # no book data: the queue ahead is unknown
                resting.append(o)
        sent = []
        for side in ("buy", "sell"):
            reached = [o for o in resting if o["side"] == side and o["left"] > 0 and (
                x <= o["price"] if side == "buy" else x >= o["price"])]
            reached.sort(key=lambda o: (-o["price"] if side == "buy" else o["price"], o["seq"]))
            for o in reached:
                a = avail[side]
                if o["price"] != x:  # through: all that was ahead traded
                    o["ahead"] = 0.0
                    q = min(o["left"], a)
                else:  # at its price: the queue ahead first
                    q = min(o["left"], max(0.0, a - o["ahead"]))
                    o["ahead"] = max(0.0, o["ahead"] - a)
                if q > 0:
                    avail[side] -= q
                    fill(o, q, o["price"], "maker", p.ts)
        resting = [o for o in resting if o["left"] > 0]
        markets = [o for o in markets if o["left"] > 0]
        for o in crossed:  # a crossing limit's rest, first in line at its price
            seq += 1
            o.update(seq=seq, ahead=0.0)
            resting.append(o)
        s = p.ts - p.ts % interval
        if start is None:
            start = s
        elif s > start:  # this print closed a bar
            start = s
            if not started:
                started = True
                for i in range(n):
                    holding[i] = lines[i] >= last
                cells = sum(holding)
                if cells:
                    sent.append({"cell": -1, "side": "buy", "kind": "market",
                                 "left": cells * qty, "price": 0.0})
                sent += [order(i) for i in range(n)]
            else:
                sent += decided
                decided = []
        last = x
    return {"fills": out, "cash": cash, "base": base}


XRP_GRID = dict(lower=0.00138, upper=0.00156, n=12, qty=100.0)
EXECUTOR = """
[executor]
use = "simulated-trades"
maker_fee = 0.001
taker_fee = 0.002
"""


def test_real_tape_grid_matches_the_reference_fill_for_fill(xrp: list[Trade], data_dir: Path,
                                                           tmp_path: Path) -> None:
    db = str(tmp_path / "run.db")
    summary = run_toml(xrp_trades_pipeline((data_dir / XRP_ETH).as_posix(), EXECUTOR), db=db)
    assert summary["status"] == "finished"
    assert summary["unreconciled_orders"] == [] and summary["orders_rejected"] == 0
    ref = reference_grid_on_prints(xrp, 300_000, maker=0.001, taker=0.002, capital=10.0,
                                   **XRP_GRID)
    conn = sqlite3.connect(db)
    got = conn.execute("SELECT ts, side, price, qty, liquidity FROM fills ORDER BY rowid"
                       ).fetchall()
    assert len(ref["fills"]) > 40
    assert Counter(got) == Counter(ref["fills"])
    assert summary["final_cash"] == pytest.approx(ref["cash"], rel=1e-12)
    assert summary["final_base"] == pytest.approx(ref["base"], abs=1e-9)
    # Partial fills on the real tape: 100 XRP a cell, more than most prints.
    parts = conn.execute("SELECT COUNT(*) FROM fills WHERE remaining > 0").fetchone()[0]
    assert parts > 20 and summary["components"]["executor"]["partial_fills"] == parts
    # Every maker fill at its order's limit; every taker fill at a print of its time.
    limits = dict(conn.execute("SELECT order_id, price FROM orders WHERE status = 'requested'"
                               ).fetchall())
    at = defaultdict(set)
    for p in xrp:
        at[p.ts].add(p.price)
    for oid, ts, price, liq in conn.execute("SELECT order_id, ts, price, liquidity FROM fills"):
        assert price == limits[oid] if liq == "maker" else price in at[ts]
    conn.close()


# --- a raw Binance capture: the queue rule with a book -------------------------------------------


def capture_events(data_dir: Path) -> Iterator[Any]:
    """The capture's trades, quotes and depth updates, streamed (a BookDepth's book is live)."""
    source = build(BinanceCapture, {"path": CAPTURE.as_posix()})
    run = RunInfo("test", "backtest", "BTC/USDT", 1e6, data_dir)
    source.validate(run)
    source.setup(run)
    try:
        yield from source.events()
    finally:
        source.close()


class QueueReference:
    """Rules 1, 3 and 4 for one resting limit at a time, as plainly as possible: the best bid
    and ask with their sizes from every quote and depth update, the queue ahead of the order
    from them when it arrives, prints at its price taking from that queue first, book data
    only shortening it, a print through its price emptying it."""

    def __init__(self) -> None:
        self.bid = self.bid_qty = self.ask = self.ask_qty = math.nan
        self.order: dict[str, Any] | None = None
        self.fills: list[tuple[str, int, float, float, str]] = []
        self.crossed = 0  # orders the book had moved onto before they arrived
        self.at_price = 0  # fills by prints at the order's price, through its queue

    def submit(self, oid: str, side: str, qty: float, price: float) -> None:
        self.order = {"id": oid, "buy": side == "buy", "price": price, "left": qty,
                      "arrived": False, "ahead": math.inf}

    def cancel(self) -> None:
        self.order = None

    def shown(self, is_buy: bool, price: float, size: float) -> None:
        o = self.order
        if o is not None and o["arrived"] and o["buy"] == is_buy and o["price"] == price:
            o["ahead"] = min(o["ahead"], size)

    def feed(self, e: Any) -> None:
        o = self.order
        if type(e) is BookUpdate:
            self.bid, self.bid_qty, self.ask, self.ask_qty = e.bid, e.bid_qty, e.ask, e.ask_qty
            self.shown(True, e.bid, e.bid_qty)
            self.shown(False, e.ask, e.ask_qty)
        elif type(e) is BookDepth:
            b = e.book
            self.bid, self.ask = b.best_bid, b.best_ask
            self.bid_qty, self.ask_qty = b.qty("bid", self.bid), b.qty("ask", self.ask)
            self.shown(True, self.bid, self.bid_qty)
            self.shown(False, self.ask, self.ask_qty)
            for side, price, size in e.changes:
                self.shown(side == "bid", price, size)
            if not e.changes and o is not None:
                self.shown(o["buy"], o["price"], b.qty("bid" if o["buy"] else "ask", o["price"]))
        elif type(e) is Trade and o is not None:
            x, q, p = e.price, e.qty, o["price"]
            if not o["arrived"]:
                o["arrived"] = True
                opposite = self.ask if o["buy"] else self.bid
                if (p >= opposite) if o["buy"] else (p <= opposite):
                    # The book moved onto it before it arrived: a taker on this print if
                    # within its limit, the rest first in line at its price.
                    self.crossed += 1
                    o["ahead"] = 0.0
                    if (x <= p) if o["buy"] else (x >= p):
                        self.fill(e.ts, x, min(q, o["left"]), "taker")
                    return
                best = self.bid if o["buy"] else self.ask
                improves = p > best if o["buy"] else p < best
                size = self.bid_qty if o["buy"] else self.ask_qty
                o["ahead"] = 0.0 if improves else size if p == best else math.inf
            through = x < p if o["buy"] else x > p
            if through:
                o["ahead"] = 0.0
                got = min(q, o["left"])
            elif x == p:
                got = min(o["left"], max(0.0, q - o["ahead"]))
                o["ahead"] = max(0.0, o["ahead"] - q)
                self.at_price += got > 0
            else:
                got = 0.0
            if got > 0:
                self.fill(e.ts, p, got, "maker")

    def fill(self, ts: int, price: float, qty: float, liquidity: str) -> None:
        o = self.order
        assert o is not None
        o["left"] -= qty
        self.fills.append((o["id"], ts, price, qty, liquidity))
        if o["left"] <= 1e-12:
            self.order = None


def capture_run(data_dir: Path, queue: str = "back") -> tuple[list[tuple[Any, ...]],
                                                               QueueReference, int]:
    """One order at a time on the capture, by a fixed rule: every 150 prints a limit of 0.02
    BTC (30 times the median print) at the best bid, the best ask or 0.5 USDT behind the best
    bid, cancelled 120 prints later if not filled; the executor and the reference see the same
    events."""
    s = ExecutorHarness(SimulatedTradesExecutor, {"maker_fee": MAKER, "taker_fee": TAKER,
                                                  "check_balance": False, "queue": queue},
                        "BTC/USDT")
    ref = QueueReference()
    got: list[tuple[Any, ...]] = []
    k = 0
    live: str | None = None
    for e in capture_events(data_dir):
        ref.feed(e)
        got += [(f.order_id, f.ts, f.price, f.qty, f.liquidity) for f in s.feed(e)
                if type(f) is Fill]
        if type(e) is not Trade:
            continue
        k += 1
        if live is not None and k % 150 == 120:
            if live in s.open_ids():
                assert s.cancel(live) is None
            ref.cancel()
            live = None
        if k % 150 == 0 and ref.bid == ref.bid:
            live = f"o{k}"
            side, price = [("buy", ref.bid), ("sell", ref.ask),
                           ("buy", round(ref.bid - 0.5, 2))][k // 150 % 3]
            assert s.submit(live, side, 0.02, price) is None
            ref.submit(live, side, 0.02, price)
    return got, ref, k


def test_capture_queue_rule_matches_the_reference_order_by_order(data_dir: Path) -> None:
    got, ref, prints = capture_run(data_dir)
    assert prints > expect(9000, 2500)  # 9,757 prints, or 2,744 in the slice of tests/data
    assert len(got) == len(ref.fills) > expect(200, 60)
    for g, r in zip(got, ref.fills, strict=True):
        assert g[:3] == r[:3] and g[3] == pytest.approx(r[3]) and g[4] == r[4]
    # The queue rule at work: fills by prints at the order's price, after its queue.
    assert ref.at_price > 5
    by_order = Counter(g[0] for g in got)
    partial = sum(1 for c in by_order.values() if c > 1)
    assert partial > expect(20, 6), "partial fills on the capture"


def test_capture_front_queue_fills_more(data_dir: Path) -> None:
    back, _, _ = capture_run(data_dir)
    front, _, _ = capture_run(data_dir, "front")
    assert sum(f[3] for f in front) > sum(f[3] for f in back)


def test_capture_grid_pipeline(data_dir: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "binance-capture"
path = "{(data_dir / CAPTURE.parent).as_posix()}/btcusdt_2024080*.gz"
bars = "1m"
[strategy]
use = "static"
lower = 61500
upper = 61900
grids = 20
qty = 0.01
{EXECUTOR}""")
    assert summary["status"] == "finished"
    assert summary["unreconciled_orders"] == [] and summary["orders_rejected"] == 0
    stats = summary["components"]["executor"]
    # The slice of tests/data holds 2 of the 11 minutes (and only the first day's file).
    assert summary["buy_fills"] > 5 and summary["sell_fills"] > expect(5, 2)
    assert stats["partial_fills"] > 5
