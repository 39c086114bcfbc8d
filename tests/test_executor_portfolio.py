"""The simulated executor (DESIGN.md §6) and the portfolio's accounting, rule by rule and as
properties over arbitrary order flows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import Bar, Fill, Order
from gridkit.plugins.executors import SimulatedExecutor
from gridkit.runtime.account import Portfolio
from gridkit.runtime.context import Context, RunInfo
from gridkit.testing import ExecutorContract, build


def ctx_at(bar: Bar, capital: float = 1e9) -> Context:
    ctx = Context(RunInfo("t", "backtest", "X/Y", capital))
    ctx.bar = bar
    ctx.portfolio.mark(bar.close)
    return ctx


def match_bar(e: SimulatedExecutor, bar: Bar) -> list[Fill]:
    """The fills a bar brings (the executor's other reports left out)."""
    return [r for r in e.reports(bar, "") if type(r) is Fill]


def ex(maker: float = 0.001, taker: float = 0.002,
       check_balance: bool = False) -> SimulatedExecutor:
    return build(SimulatedExecutor, {"maker_fee": maker, "taker_fee": taker,
                                     "check_balance": check_balance})


B0 = Bar(0, 100.0, 101.0, 99.0, 100.0, 1.0)
B1 = Bar(1, 100.5, 102.0, 98.0, 101.0, 1.0)
B2 = Bar(2, 101.0, 101.5, 100.8, 101.2, 1.0)


def test_rule1_an_order_decided_on_bar_t_is_live_from_t_plus_1() -> None:
    e = ex()
    ctx = ctx_at(B0)
    match_bar(e, B0)
    e.submit(Order(1, "buy", 1.0, 99.5), ctx)  # B0 reached 99 but the order came after it
    fills = match_bar(e, B1)
    assert [(f.order_id, f.ts) for f in fills] == [(1, 1)]


def test_rule2_limit_fills_when_the_bar_reaches_it_at_its_price_with_maker_fee() -> None:
    e = ex()
    ctx = ctx_at(B0)
    e.submit(Order(1, "buy", 2.0, 98.0), ctx)    # low 98 <= 98: fills
    e.submit(Order(2, "buy", 2.0, 97.99), ctx)   # not reached
    e.submit(Order(3, "sell", 1.0, 102.0), ctx)  # high 102 >= 102: fills
    e.submit(Order(4, "sell", 1.0, 102.01), ctx)
    fills = {f.order_id: f for f in match_bar(e, B1)}
    assert set(fills) == {1, 3}
    assert fills[1].price == 98.0 and fills[1].fee == pytest.approx(98.0 * 2.0 * 0.001)
    assert fills[3].price == 102.0 and fills[3].liquidity == "maker"
    assert {o.id for o in e.open_orders()} == {2, 4}


def test_rule4_market_orders_fill_at_next_open_with_taker_fee_before_limits() -> None:
    e = ex()
    ctx = ctx_at(B0)
    e.submit(Order(1, "buy", 1.0, 0.0, kind="market"), ctx)
    e.submit(Order(2, "sell", 1.0, 101.5), ctx)
    fills = match_bar(e, B1)
    assert [f.order_id for f in fills] == [1, 2]
    assert fills[0].price == B1.open and fills[0].liquidity == "taker"
    assert fills[0].fee == pytest.approx(B1.open * 0.002)


def test_cancel_removes_live_and_queued_orders() -> None:
    e = ex()
    ctx = ctx_at(B0)
    e.submit(Order(1, "buy", 1.0, 99.0), ctx)
    match_bar(e, B2)  # now live (not reached: low 100.8)
    e.submit(Order(2, "buy", 1.0, 99.0), ctx)  # queued
    assert e.cancel(1, ctx) is None and e.cancel(2, ctx) is None
    assert e.cancel(3, ctx) == "unknown order (not open)"
    assert match_bar(e, B1) == [] and e.open_orders() == []


def test_balance_check_refuses_what_an_exchange_would() -> None:
    e = ex(check_balance=True)
    ctx = ctx_at(B0, capital=1000.0)
    assert e.submit(Order(1, "buy", 5.0, 100.0), ctx) is None  # 500 + fee
    assert e.submit(Order(2, "buy", 5.0, 100.0), ctx) == "insufficient cash"
    assert e.submit(Order(3, "sell", 1.0, 100.0), ctx) == "insufficient base"
    e.submit(Order(4, "buy", 1.0, 0.0, kind="market"), ctx)  # brings base before the sells
    assert e.submit(Order(5, "sell", 1.0, 110.0), ctx) is None
    assert e.cancel(1, ctx) is None  # releases its cash
    assert e.submit(Order(6, "buy", 4.0, 100.0), ctx) is None


def test_stale_heap_entries_are_compacted() -> None:
    e = ex()
    ctx = ctx_at(B0)
    for i in range(1000):
        e.submit(Order(i, "buy", 1.0, 50.0), ctx)
    match_bar(e, B2)
    for i in range(1000):
        e.cancel(i, ctx)
    assert len(e._books[""].buys) <= 64


class TestSimulatedContract(ExecutorContract):
    component_class = SimulatedExecutor


prices = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False)


@st.composite
def bars_and_orders(draw: st.DrawFn) -> tuple[list[Bar], list[list[tuple[str, float, float]]]]:
    n = draw(st.integers(2, 30))
    bars = []
    for t in range(n):
        a, b, c, d = (draw(prices) for _ in range(4))
        lo, hi = min(a, b, c, d), max(a, b, c, d)
        bars.append(Bar(t, b if lo <= b <= hi else lo, hi, lo, c if lo <= c <= hi else hi, 1.0))
    orders = [draw(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), prices,
                                      st.floats(0.001, 10.0)), max_size=5)) for _ in range(n)]
    return bars, orders


@settings(max_examples=200, deadline=None)
@given(bars_and_orders())
def test_fill_model_properties(case: tuple[list[Bar], list[list[tuple[str, float, float]]]]
                               ) -> None:
    """Every fill is at its limit price, on a bar after the one it was submitted on, on a bar
    that reached the price; each order fills at most once; open + filled = submitted."""
    bars, flows = case
    e = ex()
    submitted: dict[int, tuple[int, Order]] = {}
    filled: list[Fill] = []
    oid = 0
    for t, bar in enumerate(bars):
        for f in match_bar(e, bar):
            t_sub, order = submitted[f.order_id]
            assert t_sub < t
            assert f.price == order.price and f.qty == order.qty
            assert (bar.low <= f.price) if f.side == "buy" else (bar.high >= f.price)
            assert f.fee == pytest.approx(f.price * f.qty * 0.001)
            filled.append(f)
        ctx = ctx_at(bar)
        for side, price, qty in flows[t]:
            oid += 1
            order = Order(oid, side, qty, price)  # type: ignore[arg-type]
            assert e.submit(order, ctx) is None
            submitted[oid] = (t, order)
    ids = [f.order_id for f in filled]
    assert len(ids) == len(set(ids))
    assert len(ids) + len(e.open_orders()) == len(submitted)
    # An order still open was never reachable on any bar after it was submitted.
    for order in e.open_orders():
        t_sub = submitted[order.id][0]
        for bar in bars[t_sub + 1:]:
            assert not ((bar.low <= order.price) if order.side == "buy"
                        else (bar.high >= order.price))


fills = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), prices, st.floats(0.001, 5.0),
                           st.floats(0.0, 0.01)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(fills, prices)
def test_equity_is_capital_plus_realized_plus_unrealized(flow: list[tuple[str, float, float,
                                                                          float]],
                                                         mark: float) -> None:
    """equity - capital == realized + base * (price - avg_cost), whatever the fills."""
    pf = Portfolio(1_000_000.0)
    for i, (side, price, qty, fee_rate) in enumerate(flow):
        if side == "sell":
            qty = min(qty, pf.base)  # never sell base we do not hold
            if qty <= 0:
                continue
        pf.apply(Fill(i, i, side, qty, price, price * qty * fee_rate))  # type: ignore[arg-type]
        equity = pf.mark(mark)
        unrealized = pf.base * (mark - pf.avg_cost)
        assert math.isclose(equity - pf.capital, pf.realized + unrealized,
                            rel_tol=1e-9, abs_tol=1e-6)
        assert pf.base >= -1e-12
        assert 0 <= pf.max_drawdown <= 1


def test_round_trip_realizes_spread_less_fees() -> None:
    pf = Portfolio(10_000.0)
    pf.apply(Fill(1, 1, "buy", 2.0, 100.0, 0.2))
    pf.apply(Fill(2, 2, "sell", 2.0, 110.0, 0.22))
    assert pf.realized == pytest.approx(2.0 * 10.0 - 0.2 - 0.22)
    assert pf.cash == pytest.approx(10_000.0 + 20.0 - 0.42)
    assert pf.base == 0.0 and pf.fees == pytest.approx(0.42)
    assert (pf.buy_fills, pf.sell_fills) == (1, 1)


def test_drawdown_tracks_the_peak() -> None:
    pf = Portfolio(100.0)
    pf.apply(Fill(1, 1, "buy", 1.0, 100.0, 0.0))
    pf.mark(150.0)  # equity 150
    pf.mark(120.0)  # 20% below the peak
    pf.mark(140.0)
    assert pf.max_drawdown == pytest.approx(0.2)
    assert pf.drawdown == pytest.approx(10 / 150)
