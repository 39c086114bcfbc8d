"""The ``simulated`` executor rule by rule: DESIGN.md §6 rules 4, 7 and 8, OCO groups, post-only,
IOC / FOK and reduce-only — on hand-made bars, against an independent reference on 3,000 real
BTC/USDT bars, and as a property over arbitrary bars."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import Bar, Fill, Order
from gridkit.core.types import Accepted, Cancelled, Expired, Rejected
from gridkit.plugins.executors import SimulatedExecutor
from gridkit.testing import sample_bars
from helpers import ExecutorHarness

SYM = "X/Y"
MAKER, TAKER = 0.001, 0.002

# B0 is the bar the orders are decided on; they are live from B1.
B0 = Bar(0, 100.0, 101.0, 99.0, 100.0, 1.0)
B1 = Bar(1, 100.5, 102.0, 98.0, 101.0, 1.0)
B2 = Bar(2, 101.0, 101.5, 100.8, 101.2, 1.0)
B3 = Bar(3, 101.0, 101.2, 99.5, 100.0, 1.0)
GAP_DOWN = Bar(1, 96.0, 97.0, 95.0, 96.5, 1.0)
GAP_UP = Bar(1, 104.0, 105.0, 103.5, 104.5, 1.0)


def Sim(capital: float = 1e9, kind: str = "spot", qty: float = 0.0,
        check_balance: bool = False) -> ExecutorHarness:
    """A ``simulated`` executor with a ledger beside it (see :class:`helpers.ExecutorHarness`),
    the decision bar B0 seen."""
    s = ExecutorHarness(SimulatedExecutor, {"maker_fee": MAKER, "taker_fee": TAKER,
                                            "check_balance": check_balance},
                        SYM, capital, kind, qty)
    s.ctx.bar = B0
    s.ctx.portfolio.mark(B0.close)
    return s


def fills(reports: list[Any]) -> list[Fill]:
    return [r for r in reports if type(r) is Fill]


def ends(reports: list[Any]) -> list[tuple[str, str, str]]:
    """How orders ended without a fill: (type, id, reason)."""
    return [(type(r).__name__, r.order_id, r.reason) for r in reports
            if type(r) in (Cancelled, Expired, Rejected)]


# --- rule 7: stops -------------------------------------------------------------------------------


def test_rule7_stops_trigger_on_the_low_or_high_and_fill_at_the_stop_as_taker() -> None:
    s = Sim()
    s.submit("s1", "sell", 2.0, 0.0, "stop", stop_price=98.5)   # low 98 <= 98.5
    s.submit("s2", "sell", 1.0, 0.0, "stop", stop_price=97.9)   # not reached
    s.submit("b1", "buy", 1.0, 0.0, "stop", stop_price=101.5)   # high 102 >= 101.5
    s.submit("b2", "buy", 1.0, 0.0, "stop", stop_price=102.5)
    got = {f.order_id: f for f in fills(s.feed(B1))}
    assert set(got) == {"s1", "b1"}
    assert (got["s1"].price, got["s1"].qty, got["s1"].liquidity) == (98.5, 2.0, "taker")
    assert got["s1"].fee == pytest.approx(98.5 * 2.0 * TAKER)
    assert (got["b1"].price, got["b1"].liquidity) == (101.5, "taker")
    assert got["b1"].remaining == 0.0
    assert s.open_ids() == {"s2", "b2"}


def test_rule7_a_stop_at_exactly_the_low_or_high_triggers() -> None:
    s = Sim()
    s.submit("s", "sell", 1.0, 0.0, "stop", stop_price=B1.low)
    s.submit("b", "buy", 1.0, 0.0, "stop", stop_price=B1.high)
    got = {f.order_id: f.price for f in fills(s.feed(B1))}
    assert got == {"s": B1.low, "b": B1.high}


@pytest.mark.parametrize(("bar", "side", "stop"), [(GAP_DOWN, "sell", 98.0),
                                                   (GAP_UP, "buy", 103.0)])
def test_rule7_a_bar_that_opens_beyond_the_stop_fills_it_at_the_open(bar: Bar, side: str,
                                                                     stop: float) -> None:
    s = Sim()
    s.submit("x", side, 1.0, 0.0, "stop", stop_price=stop)
    [f] = fills(s.feed(bar))
    assert f.price == bar.open != stop
    assert f.fee == pytest.approx(bar.open * TAKER)


def test_rule7_a_stop_decided_on_bar_t_waits_for_t_plus_1() -> None:
    s = Sim()
    s.feed(B1)  # reaches 98.5, but the order comes after it
    s.submit("s", "sell", 1.0, 0.0, "stop", stop_price=98.5)
    assert fills(s.feed(B2)) == []  # low 100.8: not reached
    [f] = fills(s.feed(Bar(3, 100.0, 100.5, 98.0, 99.0, 1.0)))
    assert (f.order_id, f.ts, f.price) == ("s", 3, 98.5)


def test_rule7_a_stop_limit_rests_as_a_limit_from_the_bar_after_its_trigger() -> None:
    s = Sim()
    s.submit("sl", "sell", 1.0, 99.0, "stop_limit", stop_price=98.5)
    s.submit("bl", "buy", 1.0, 101.0, "stop_limit", stop_price=101.5)
    s.submit("far", "buy", 1.0, 100.0, "stop_limit", stop_price=101.5)
    # B1 triggers all three; its high (102) and low (98) also reach the limits, but a
    # triggered stop-limit is not live as a limit before B2 (no intra-bar path is assumed).
    assert s.feed(B1) == []
    assert {o.id: o.kind for o in s.ex.open_orders()} == {
        "sl": "limit", "bl": "limit", "far": "limit"}
    got = {f.order_id: f for f in fills(s.feed(B2))}  # high 101.5, low 100.8
    assert set(got) == {"sl", "bl"}
    assert (got["sl"].price, got["sl"].liquidity) == (99.0, "maker")  # its own price
    assert (got["bl"].price, got["bl"].liquidity) == (101.0, "maker")
    assert got["sl"].fee == pytest.approx(99.0 * MAKER)
    [f] = fills(s.feed(Bar(3, 100.5, 100.6, 99.9, 100.2, 1.0)))  # reaches 100
    assert (f.order_id, f.price) == ("far", 100.0)


def test_rule7_a_triggered_stop_limit_can_be_cancelled() -> None:
    s = Sim()
    s.submit("sl", "sell", 1.0, 97.0, "stop_limit", stop_price=98.5)
    s.feed(B1)  # triggered, rests as a limit from the next bar
    assert s.cancel("sl") is None
    assert s.feed(Bar(2, 97.0, 97.5, 96.0, 97.0, 1.0)) == [] and s.open_ids() == set()


# --- rule 8 and OCO groups -----------------------------------------------------------------------


@pytest.mark.parametrize(("bar", "stop_fill"), [
    (B1, 98.5),                                      # low 98, high 102: both legs reached
    (Bar(1, 103.0, 104.0, 98.0, 99.0, 1.0), 98.5),    # even opening through the take-profit
    (GAP_DOWN, GAP_DOWN.open),                       # opening through the stop: at the open
])
def test_rule8_a_bar_reaching_both_legs_fills_the_stop_and_cancels_the_take_profit(
        bar: Bar, stop_fill: float) -> None:
    s = Sim()
    s.submit("tp", "sell", 1.0, 101.5, group="long")
    s.submit("sl", "sell", 1.0, 0.0, "stop", stop_price=98.5, group="long")
    got = s.feed(bar)
    assert [(f.order_id, f.price, f.liquidity) for f in fills(got)] == [
        ("sl", stop_fill, "taker")]
    assert ends(got) == [("Cancelled", "tp", "oco")]
    assert s.open_ids() == set()
    assert s.feed(B2) == []  # the cancelled take-profit never fills later


def test_rule8_short_bracket() -> None:
    s = Sim()
    s.submit("tp", "buy", 1.0, 98.5, group="short")
    s.submit("sl", "buy", 1.0, 0.0, "stop", stop_price=101.5, group="short")
    got = s.feed(B1)
    assert [(f.order_id, f.price) for f in fills(got)] == [("sl", 101.5)]
    assert ends(got) == [("Cancelled", "tp", "oco")]


def test_oco_a_take_profit_fill_cancels_the_stop() -> None:
    s = Sim()
    s.submit("tp", "sell", 1.0, 101.2, group="g")
    s.submit("sl", "sell", 1.0, 0.0, "stop", stop_price=99.0, group="g")
    got = s.feed(B2)  # high 101.5 reaches the take-profit, low 100.8 not the stop
    assert [(f.order_id, f.price, f.liquidity) for f in fills(got)] == [("tp", 101.2, "maker")]
    assert ends(got) == [("Cancelled", "sl", "oco")]
    assert s.feed(Bar(3, 100.0, 100.0, 90.0, 95.0, 1.0)) == []


def test_oco_a_sibling_not_yet_live_is_cancelled_too() -> None:
    s = Sim()
    s.submit("a", "buy", 1.0, 99.0, group="g")
    s.feed(B2)  # "a" is live now (not reached)
    s.submit("b", "sell", 1.0, 110.0, group="g")  # queued: live from the next bar
    got = s.feed(B1)
    assert [f.order_id for f in fills(got)] == ["a"]
    assert ends(got) == [("Cancelled", "b", "oco")]
    assert s.open_ids() == set()


def test_oco_a_cancel_request_leaves_the_other_members() -> None:
    s = Sim()
    s.submit("a", "sell", 1.0, 101.5, group="g")
    s.submit("b", "sell", 1.0, 0.0, "stop", stop_price=90.0, group="g")
    assert s.cancel("a") is None
    assert s.open_ids() == {"b"}
    assert s.feed(B1) == []


@pytest.mark.parametrize("other", [
    dict(side="sell", qty=1.0, price=100.0, tif="PO"),   # would cross: would be rejected
    dict(side="sell", qty=1.0, price=105.0, tif="IOC"),  # would not cross: would expire
    dict(side="sell", qty=1.0, price=0.0, kind="market"),  # would fill
])
def test_oco_an_arrival_fill_cancels_siblings_arriving_on_the_same_bar(other: dict) -> None:
    """Bug fixed: a sibling arriving on the same bar as a fill (a market or IOC fill at the
    open) was still processed after it had been cancelled: filled, rejected or expired a
    second time, which the ledger counts as unreconciled."""
    s = Sim()
    s.submit("ioc", "buy", 1.0, 101.0, tif="IOC", group="g")  # crosses the open 100.5
    s.submit("other", **other, group="g")
    got = s.feed(B1)  # Sim.book asserts the ledger has no anomaly
    assert [(f.order_id, f.price) for f in fills(got)] == [("ioc", B1.open)]
    assert ends(got) == [("Cancelled", "other", "oco")]
    assert s.ex.open_orders() == []


# --- post-only, IOC, FOK -------------------------------------------------------------------------


def test_post_only_is_rejected_when_it_would_cross_at_arrival() -> None:
    s = Sim()
    s.submit("b_cross", "buy", 1.0, 101.0, tif="PO")   # >= open 100.5
    s.submit("b_open", "buy", 1.0, 100.5, tif="PO")    # at the open: crosses too
    s.submit("b_rest", "buy", 1.0, 99.0, tif="PO")     # rests; the bar's low 98 fills it
    s.submit("s_cross", "sell", 1.0, 100.0, tif="PO")  # <= open
    s.submit("s_rest", "sell", 1.0, 101.0, tif="PO")
    got = s.feed(B1)
    rejected = [r for r in got if type(r) is Rejected]
    assert {r.order_id for r in rejected} == {"b_cross", "b_open", "s_cross"}
    assert {(r.reason, r.by, r.ts) for r in rejected} == {
        ("post-only order would cross", "simulated", 1)}
    assert {(f.order_id, f.price, f.liquidity) for f in fills(got)} == {
        ("b_rest", 99.0, "maker"), ("s_rest", 101.0, "maker")}


def test_post_only_accepted_first_then_rejected_by_a_report() -> None:
    s = Sim()
    order = Order("po", "buy", 1.0, 101.0, tif="PO", symbol=SYM)
    assert s.ex.submit(order, s.ctx) is None  # not refused at once: the exchange decides
    assert s.ex.reports(None, SYM) == [Accepted("po", 0)]
    assert s.ex.reports(B1, SYM) == [Rejected("po", 1, "post-only order would cross",
                                              "simulated")]


@pytest.mark.parametrize("tif", ["IOC", "FOK"])
def test_ioc_and_fok_limits_trade_at_the_open_if_they_cross_else_expire(tif: str) -> None:
    s = Sim()
    s.submit("b_cross", "buy", 2.0, 101.0, tif=tif)
    s.submit("b_miss", "buy", 1.0, 99.0, tif=tif)     # the bar reaches 99 later: too late
    s.submit("s_cross", "sell", 1.0, 100.0, tif=tif)
    s.submit("s_miss", "sell", 1.0, 101.0, tif=tif)
    got = s.feed(B1)
    assert {(f.order_id, f.price, f.qty, f.liquidity) for f in fills(got)} == {
        ("b_cross", 100.5, 2.0, "taker"), ("s_cross", 100.5, 1.0, "taker")}
    assert all(f.fee == pytest.approx(f.price * f.qty * TAKER) for f in fills(got))
    assert sorted(ends(got)) == [("Expired", "b_miss", tif), ("Expired", "s_miss", tif)]
    assert s.ex.open_orders() == []


# --- reduce-only ---------------------------------------------------------------------------------


REDUCE = "reduce-only order would open or grow the position"


@pytest.mark.parametrize(("held", "refused", "accepted"), [
    (0.0, ["buy", "sell"], []),   # flat: anything would open a position
    (2.0, ["buy"], ["sell"]),     # long: a buy would grow it
    (-2.0, ["sell"], ["buy"]),    # short: a sell would grow it
])
def test_reduce_only_refused_when_it_would_open_or_grow_a_perpetual_position(
        held: float, refused: list[str], accepted: list[str]) -> None:
    s = Sim(kind="linear", qty=held, check_balance=True)
    for side in refused:
        assert s.submit(f"r-{side}", side, 1.0, 100.0, reduce_only=True) == REDUCE
    for side in accepted:
        assert s.submit(f"a-{side}", side, 1.0, 100.0, reduce_only=True) is None
    assert s.open_ids() == {f"a-{side}" for side in accepted}
    assert [f.order_id for f in fills(s.feed(B1))] == [f"a-{side}" for side in accepted]


def test_reduce_only_is_not_checked_on_spot() -> None:
    s = Sim()
    assert s.submit("r", "buy", 1.0, 99.0, reduce_only=True) is None


# --- rule 4: market orders -----------------------------------------------------------------------


def test_rule4_market_orders_fill_at_the_next_open_before_stops_and_limits() -> None:
    s = Sim()
    s.submit("limit", "sell", 1.0, 101.5)
    s.submit("stop", "sell", 1.0, 0.0, "stop", stop_price=98.5)
    s.submit("mkt_b", "buy", 3.0, 0.0, "market")
    s.submit("mkt_s", "sell", 1.0, 0.0, "market")
    got = fills(s.feed(B1))
    assert [f.order_id for f in got] == ["mkt_b", "mkt_s", "stop", "limit"]
    assert [(f.price, f.liquidity) for f in got[:2]] == [(B1.open, "taker")] * 2
    assert got[0].fee == pytest.approx(B1.open * 3.0 * TAKER)


def test_rule4_a_market_order_decided_on_bar_t_never_fills_on_t() -> None:
    s = Sim()
    s.feed(B0)
    s.submit("m", "buy", 1.0, 0.0, "market")
    [f] = fills(s.feed(B1))
    assert (f.ts, f.price) == (B1.ts, B1.open)


# --- real bars -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> list[Bar]:
    return sample_bars()


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_real_gap_fills_a_stop_at_the_open(real: list[Bar], side: str) -> None:
    """The sample's widest gap each way (1m bars whose open is not the last close): a stop
    inside the gap fills at the open."""
    sign = -1 if side == "sell" else 1
    i = max(range(1, len(real)), key=lambda k: sign * (real[k].open - real[k - 1].close))
    prev, bar = real[i - 1], real[i]
    assert sign * (bar.open - prev.close) > 5.0  # a real gap of more than $5
    stop = (prev.close + bar.open) / 2
    s = Sim()
    s.feed(prev)
    s.submit("g", side, 0.01, 0.0, "stop", stop_price=stop)
    [f] = fills(s.feed(bar))
    assert f.price == bar.open and f.ts == bar.ts
    assert sign * (f.price - stop) > 0  # worse than the stop: the gap is the taker's


def flow(bars: list[Bar]) -> dict[int, list[Order]]:
    """A deterministic mix of orders decided on the real bars: OCO brackets, stops,
    stop-limits, IOC / FOK, post-only and market orders, priced off each bar's close."""
    out: dict[int, list[Order]] = {}
    for t, bar in enumerate(bars[:-1]):
        c = bar.close
        orders = []
        if t % 5 == 0:
            g = f"g{t}"
            orders += [Order(f"tp{t}", "sell", 0.01, round(c * 1.0015, 2), group=g, symbol=SYM),
                       Order(f"sl{t}", "sell", 0.01, 0.0, "stop", stop_price=round(c * 0.9985, 2),
                             group=g, symbol=SYM)]
        if t % 9 == 0:
            orders += [Order(f"bs{t}", "buy", 0.02, 0.0, "stop",
                             stop_price=round(c * 1.001, 2), symbol=SYM),
                       Order(f"sx{t}", "sell", 0.02, round(c * 0.9985, 2), "stop_limit",
                             stop_price=round(c * 0.999, 2), symbol=SYM)]
        if t % 11 == 0:
            orders += [Order(f"ioc{t}", "buy", 0.01, round(c + 1.0, 2), tif="IOC", symbol=SYM),
                       Order(f"fok{t}", "sell", 0.01, round(c + 1.0, 2), tif="FOK", symbol=SYM),
                       Order(f"po{t}", "sell", 0.01, round(c - 2.0, 2), tif="PO", symbol=SYM),
                       Order(f"pb{t}", "buy", 0.01, round(c - 10.0, 2), tif="PO", symbol=SYM)]
        if t % 13 == 0:
            orders.append(Order(f"m{t}", "buy" if t % 2 else "sell", 0.01, 0.0, "market",
                                symbol=SYM))
        out[t] = orders
    return out


def reference_bars(bars: list[Bar], decided: dict[int, list[Order]],
                   maker: float, taker: float) -> tuple[list[tuple], set[str]]:
    """DESIGN.md §6 rules 1, 2, 4, 7 and 8 written as plainly as possible, every open order
    checked on every bar (no heaps, no executor): the events (bar index, what, order id,
    price or reason, fee) and the ids still open at the end."""
    live: list[Order] = []      # live on this bar
    now: list[Order] = []       # arriving at this bar's open, not yet looked at
    arriving: list[Order] = []  # live from the next bar
    events: list[tuple] = []

    def fill(order: Order, t: int, price: float, rate: float, liq: str) -> None:
        events.append((t, liq, order.id, price, round(price * order.qty * rate, 12)))
        if order.group:  # OCO: the others of the group are cancelled, wherever they are
            for pool in (live, now, arriving):
                for other in [o for o in pool if o.group == order.group]:
                    pool.remove(other)
                    events.append((t, "cancelled", other.id, "oco", 0.0))

    for t, bar in enumerate(bars):
        now, arriving = arriving, []
        # Arrival at the open (rule 1): market orders fill (rule 4), post-only, IOC, FOK.
        while now:
            o = now.pop(0)
            crosses = o.price >= bar.open if o.side == "buy" else o.price <= bar.open
            if o.kind == "market":
                fill(o, t, bar.open, taker, "taker")
            elif o.kind == "limit" and o.tif == "PO" and crosses:
                events.append((t, "rejected", o.id, "post-only order would cross", 0.0))
            elif o.kind == "limit" and o.tif in ("IOC", "FOK"):
                if crosses:
                    fill(o, t, bar.open, taker, "taker")
                else:
                    events.append((t, "expired", o.id, o.tif, 0.0))
            else:
                live.append(o)
        # Stops (rule 7), before the limits (rule 8).
        for o in [o for o in live if o.kind in ("stop", "stop_limit")]:
            if o not in live:
                continue  # cancelled by a sibling on this bar
            s = o.stop_price
            if (bar.high >= s) if o.side == "buy" else (bar.low <= s):
                live.remove(o)
                if o.kind == "stop":
                    gap = bar.open > s if o.side == "buy" else bar.open < s
                    fill(o, t, bar.open if gap else s, taker, "taker")
                else:  # rests as a limit from the next bar
                    arriving.append(Order(o.id, o.side, o.qty, o.price, "limit",
                                          group=o.group, symbol=o.symbol))
        # Limits at their own price (rule 2).
        for o in [o for o in live if o.kind == "limit"]:
            if o not in live:
                continue
            if (bar.low <= o.price) if o.side == "buy" else (bar.high >= o.price):
                live.remove(o)
                fill(o, t, o.price, maker, "maker")
        arriving.extend(decided.get(t, []))
    return events, {o.id for o in live + arriving}


def executor_events(bars: list[Bar], decided: dict[int, list[Order]]) -> tuple[list[tuple],
                                                                                set[str]]:
    s = Sim()
    events = []
    for t, bar in enumerate(bars):
        for r in s.feed(bar):
            if type(r) is Fill:
                assert r.ts == bar.ts and r.remaining == 0.0
                events.append((t, r.liquidity, r.order_id, r.price, round(r.fee, 12)))
            elif type(r) is not Accepted:
                events.append((t, type(r).__name__.lower(), r.order_id, r.reason, 0.0))
        for order in decided.get(t, []):
            assert s.submit(order.id, order.side, order.qty, order.price, order.kind,
                            tif=order.tif, stop_price=order.stop_price, group=order.group) is None
    return events, s.open_ids()


def test_real_bars_match_the_reference_event_for_event(real: list[Bar]) -> None:
    decided = flow(real)
    got, still_open = executor_events(real, decided)
    want, want_open = reference_bars(real, decided, MAKER, TAKER)
    # The same events on the same bars (their order inside a bar is not part of the model).
    assert Counter(got) == Counter(want)
    assert still_open == want_open
    # ... and the rules were really exercised on the real bars.
    kinds = Counter(e[1] for e in got)
    assert kinds["taker"] > 300 and kinds["maker"] > 300
    assert kinds["rejected"] > 10 and kinds["expired"] > 10 and kinds["cancelled"] > 100
    # Rule 8 on real bars: a bracket's stop filled on a bar that reached its take-profit too.
    at = {(e[1], e[2]): e[0] for e in got}
    rule8 = 0
    for t0, orders in decided.items():
        t = at.get(("taker", f"sl{t0}"))
        if t is not None and at.get(("cancelled", f"tp{t0}")) == t:
            rule8 += real[t].high >= orders[0].price
    assert rule8 >= 5, "the real bars should reach both legs of some brackets"


# --- a property for stops ------------------------------------------------------------------------

prices = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False)


@st.composite
def bars_and_stops(draw: st.DrawFn) -> tuple[list[Bar], list[list[tuple[Any, ...]]]]:
    n = draw(st.integers(2, 30))
    bars = []
    for t in range(n):
        a, b, c, d = (draw(prices) for _ in range(4))
        lo, hi = min(a, b, c, d), max(a, b, c, d)
        bars.append(Bar(t, b if lo <= b <= hi else lo, hi, lo, c if lo <= c <= hi else hi, 1.0))
    orders = [draw(st.lists(st.tuples(st.sampled_from(["buy", "sell"]),
                                      st.sampled_from(["stop", "stop_limit"]),
                                      prices, prices, st.floats(0.001, 10.0)), max_size=5))
              for _ in range(n)]
    return bars, orders


def expected_stop(bars: list[Bar], t_sub: int, side: str, kind: str, stop: float,
                  limit: float) -> tuple[int, float, str] | None:
    """Where and how one stop order fills, straight from rule 7: (bar, price, liquidity)."""
    is_buy = side == "buy"
    for t1 in range(t_sub + 1, len(bars)):
        b = bars[t1]
        if (b.high >= stop) if is_buy else (b.low <= stop):
            break
    else:
        return None
    if kind == "stop":
        gap = (b.open > stop) if is_buy else (b.open < stop)
        return t1, b.open if gap else stop, "taker"
    for t2 in range(t1 + 1, len(bars)):
        b = bars[t2]
        if (b.low <= limit) if is_buy else (b.high >= limit):
            return t2, limit, "maker"
    return None


@settings(max_examples=200, deadline=None)
@given(bars_and_stops())
def test_stop_model_properties(case: tuple[list[Bar], list[list[tuple[Any, ...]]]]) -> None:
    """Every stop fills on the first bar after its submission that reaches its trigger, at the
    trigger or at that bar's open when it opened beyond it, as taker; every stop-limit on the
    first bar after its trigger bar that reaches its limit, at the limit, as maker; fees are
    price * qty * rate; an order that never fills is still open, as a limit once triggered."""
    bars, flows = case
    s = Sim()
    expected: dict[str, tuple[int, float, str] | None] = {}
    triggered: dict[str, bool] = {}
    qty: dict[str, float] = {}
    got: dict[str, tuple[int, float, str]] = {}
    n = 0
    for t, bar in enumerate(bars):
        for f in fills(s.feed(bar)):
            assert f.order_id not in got
            got[f.order_id] = (t, f.price, f.liquidity)
            rate = TAKER if f.liquidity == "taker" else MAKER
            assert f.qty == qty[f.order_id]
            assert f.fee == pytest.approx(f.price * f.qty * rate)
        for side, kind, stop, limit, q in flows[t]:
            n += 1
            oid = f"o{n}"
            assert s.submit(oid, side, q, limit, kind, stop_price=stop) is None
            expected[oid] = expected_stop(bars, t, side, kind, stop, limit)
            triggered[oid] = any(
                (b.high >= stop) if side == "buy" else (b.low <= stop) for b in bars[t + 1:])
            qty[oid] = q
    assert got == {oid: e for oid, e in expected.items() if e is not None}
    open_kinds = {o.id: o.kind for o in s.ex.open_orders()}
    assert set(open_kinds) == {oid for oid, e in expected.items() if e is None}
    for oid, kind in open_kinds.items():
        assert (kind == "limit") == triggered[oid]
