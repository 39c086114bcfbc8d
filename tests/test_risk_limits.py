"""Order and account limits (``concurrent-orders``, ``daily-loss``, ``concentration``,
``cooldown``): their contracts, their options, and what they refuse on real Binance bars."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gridkit import (
    Accepted,
    Bar,
    Cancelled,
    Expired,
    Fill,
    Mark,
    Order,
    OrderRequested,
    Reject,
    Rejected,
)
from gridkit.core.config import structure
from gridkit.plugins.grids.static import StaticGrid
from gridkit.plugins.risk.limits import (
    Concentration,
    ConcurrentOrders,
    Cooldown,
    DailyLoss,
    adds_risk,
)
from gridkit.runtime.account import Account, Position
from gridkit.runtime.context import Context
from gridkit.testing import RiskCheckContract, advance, build, context, step_strategy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
#: A geometric static grid over the May 2021 range: it buys all the way down the 19 May crash.
GRID = {"lower": 30000.0, "upper": 60000.0, "grids": 30, "qty": 0.01, "mode": "geometric"}


@cache
def btc_5m() -> tuple[Bar, ...]:
    """Binance spot BTC/USDT 5m bars from 2021-05-01 (examples/data, see its SOURCE.md)."""
    path = EXAMPLES / "BTC_USDT-5m.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = json.loads(gzip.decompress(path.read_bytes()))
    return tuple(Bar(int(r[0]), *map(float, r[1:6])) for r in rows)


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def day_of(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0)


def grid_run(check: Any, bars: int = 7000, capital: float = 10_000.0) -> Any:
    return step_strategy(StaticGrid, btc_5m()[:bars], options=GRID, risk=[check],
                         capital=capital, fill_options={"maker_fee": 0.001, "taker_fee": 0.001})


def accepted_orders(run: Any) -> set[str]:
    return {r.order_id for r in run.records if type(r) is Accepted}


# --- contracts ------------------------------------------------------------------------------


class TestConcurrentOrdersContract(RiskCheckContract):
    component_class = ConcurrentOrders
    options = {"max_per_symbol": 10, "max_total": 12}


class TestDailyLossContract(RiskCheckContract):
    component_class = DailyLoss
    options = {"limit": 0.02}


class TestConcentrationContract(RiskCheckContract):
    component_class = Concentration
    options = {"max_fraction": 0.25, "groups": {"L1": ["BTC/USDT", "ETH/USDT"]}}


class TestCooldownContract(RiskCheckContract):
    component_class = Cooldown
    options = {"bars": 12, "losses": 2, "lookback": 60}


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, options, line", [
    (ConcurrentOrders, {"max_per_symbol": 12, "max_total": 8},
     "risk[0].max_per_symbol: must be <= max_total (8), got 12"),
    (ConcurrentOrders, {}, "risk[0]: at least one of max_per_symbol, max_total is required"),
    (ConcurrentOrders, {"max_total": 0}, "risk[0].max_total: must be >= 1, got 0"),
    (DailyLoss, {"limit": -0.01}, "risk[0].limit: must be in (0, 1], got -0.01"),
    (DailyLoss, {"limit": 2.0}, "risk[0].limit: must be in (0, 1], got 2.0"),
    (DailyLoss, {"limit": 0.02, "timezone": "Mars/Olympus"},
     "risk[0].timezone: unknown time zone 'Mars/Olympus' (ZoneInfoNotFoundError); give an "
     "IANA name like 'Asia/Shanghai'"),
    (DailyLoss, {"limit": 0.02, "day_start": 24.0},
     "risk[0].day_start: must be in [0, 24), got 24.0"),
    (DailyLoss, {"limit": 0.02, "day_start": -1.0},
     "risk[0].day_start: must be >= 0, got -1.0"),
    (Concentration, {"max_fraction": 0.0}, "risk[0].max_fraction: must be in (0, 1], got 0.0"),
    (Concentration, {"max_fraction": 0.3, "groups": {"A": ["BTC/USDT"], "B": ["BTC/USDT"]}},
     "risk[0].groups: BTC/USDT is in two groups, 'A' and 'B'; a symbol belongs to one"),
    (Concentration, {"max_fraction": 0.3, "groups": {"A": []}},
     "risk[0].groups: group 'A' lists no symbol"),
    (Cooldown, {"bars": 0}, "risk[0].bars: must be >= 1, got 0"),
    (Cooldown, {"bars": 5, "losses": 10, "lookback": 5},
     "risk[0].losses: must be <= lookback (5) bars, got 10: at most one loss counts per bar"),
    (Cooldown, {"bars": 5, "min_loss": -1.0}, "risk[0].min_loss: must be >= 0, got -1.0"),
])
def test_bad_options_are_one_clear_line(cls: type, options: dict[str, Any], line: str) -> None:
    config, problems = structure(options, cls.Config, "risk[0]")
    assert config is None and problems == [line]


def test_the_checks_are_registered_under_their_catalogue_names() -> None:
    from gridkit.testing import registry

    reg = registry()
    for name, cls in [("concurrent-orders", ConcurrentOrders), ("daily-loss", DailyLoss),
                      ("concentration", Concentration), ("cooldown", Cooldown)]:
        assert reg.get("risk", name).cls is cls


# --- what adds risk -------------------------------------------------------------------------


def test_adds_risk_buys_on_a_long_sells_on_a_short_never_reduce_only() -> None:
    bar = Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0)
    spot = context(bar=bar, base=1.0)
    assert adds_risk(spot.order("buy", 1.0, 99.0), spot)
    assert not adds_risk(spot.order("sell", 1.0, 101.0), spot)
    perp = context(bar=bar)
    perp.position.kind = "linear"
    assert adds_risk(perp.order("sell", 1.0, 101.0), perp)  # flat: opening a short
    perp.position.qty = -2.0
    assert adds_risk(perp.order("sell", 1.0, 101.0), perp)
    assert not adds_risk(perp.order("buy", 1.0, 99.0), perp)
    assert not adds_risk(perp.order("sell", 1.0, 101.0, reduce_only=True), perp)


# --- concurrent-orders ----------------------------------------------------------------------


def test_concurrent_orders_counts_per_symbol_and_in_total() -> None:
    check = build(ConcurrentOrders, {"max_per_symbol": 2, "max_total": 3})
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    for i in range(2):
        ctx.ledger.request(Order(f"b{i}", "buy", 0.1, 99.0 - i, symbol="BTC/USDT"), 0)
    refused = check.check(ctx.order("sell", 0.1, 101.0), ctx)
    assert refused == Reject("max_per_symbol 2 orders of BTC/USDT live")
    eth = Order("e1", "buy", 1.0, 2000.0, symbol="ETH/USDT")
    assert check.check(eth, ctx) is eth
    ctx.ledger.request(eth, 0)
    assert check.check(Order("e2", "buy", 1.0, 1990.0, symbol="ETH/USDT"), ctx) == Reject(
        "max_total 3 orders live")
    ctx.ledger.apply(Cancelled("b0", 1))  # one ends: room again, per symbol and in all
    assert isinstance(check.check(ctx.order("sell", 0.1, 101.0), ctx), Order)
    assert check.stats() == {"refused": 2, "peak_live_orders": 3}


def test_concurrent_orders_caps_a_grid_on_real_bars() -> None:
    """The grid lays 28 orders at its first bar: 8 go live, the rest are refused with one
    line; afterwards the orders live never exceed 8."""
    check = build(ConcurrentOrders, {"max_per_symbol": 8})
    run = grid_run(check, bars=3000)
    first = btc_5m()[0].ts
    refused = [r for r in run.rejected if r.by == "concurrent-orders"]
    assert {r.reason for r in refused} == {"max_per_symbol 8 orders of BTC/USDT live"}
    assert check.stats()["refused"] == len(refused) > 20
    at_start = [r.order.id for r in run.records if type(r) is OrderRequested and r.ts == first]
    assert len(set(at_start) - {r.order_id for r in refused}) == 8
    live: set[str] = set()
    most = 0
    for r in run.records:
        if type(r) is Accepted:
            live.add(r.order_id)
            most = max(most, len(live))
        elif (type(r) is Fill and r.remaining <= 0) or type(r) in (Cancelled, Expired):
            live.discard(r.order_id)
    assert most == 8 == check.stats()["peak_live_orders"]


# --- daily-loss -----------------------------------------------------------------------------


def test_daily_loss_trading_day_in_a_time_zone() -> None:
    """A-shares: the day runs from midnight in Shanghai (16:00 UTC the day before); with
    ``day_start`` it starts that many hours later."""
    at = int(datetime(2021, 5, 19, 17, 0, tzinfo=timezone.utc).timestamp() * 1000)
    sh = build(DailyLoss, {"limit": 0.02, "timezone": "Asia/Shanghai"})
    start, end = sh._day_bounds(at)
    assert (utc(start), utc(end)) == ("2021-05-19 16:00", "2021-05-20 16:00")
    late = build(DailyLoss, {"limit": 0.02, "timezone": "Asia/Shanghai", "day_start": 9.5})
    assert tuple(map(utc, late._day_bounds(at))) == ("2021-05-19 01:30", "2021-05-20 01:30")
    plain = build(DailyLoss, {"limit": 0.02})
    assert tuple(map(utc, plain._day_bounds(at))) == ("2021-05-19 00:00", "2021-05-20 00:00")


def test_daily_loss_refuses_new_risk_from_the_breach_to_the_next_day_on_real_bars() -> None:
    limit = 0.02
    check = build(DailyLoss, {"limit": limit})
    run = grid_run(check)
    # The trips, worked out from the equity marked at each close: E0 is the last mark of the
    # day before (the first mark on the first day).
    trips: list[int] = []
    day, e0, last, tripped = None, 0.0, None, False
    for r in run.records:
        if type(r) is not Mark:
            continue
        if day_of(r.ts) != day:
            day, tripped = day_of(r.ts), False
            e0 = last if last is not None else r.equity
        if not tripped and (e0 - r.equity) / e0 >= limit:
            trips.append(r.ts)
            tripped = True
        last = r.equity
    assert len(trips) >= 3 and check.stats()["trips"] == len(trips)
    refused = [r for r in run.rejected if r.by == "daily-loss"]
    assert refused and check.stats()["refused"] == len(refused)
    side = {o.id: o.side for o in run.orders}
    for r in refused:
        trip = max(t for t in trips if t <= r.ts)
        assert day_of(trip) == day_of(r.ts)  # refused only on the day it tripped
        end = day_of(trip) + timedelta(days=1)
        assert r.reason == (f"daily loss reached the limit 2.00% at {utc(trip)} UTC; no new "
                            f"risk until {end:%Y-%m-%d %H:%M} UTC")
        assert side[r.order_id] == "buy"  # a long grid's sells (risk off) still go out
    # Trading resumes by itself the next day: buys go live again before any later trip.
    first_end = int((day_of(trips[0]) + timedelta(days=1)).timestamp() * 1000)
    later = [t for t in trips if t >= first_end]
    until = later[0] if later else float("inf")
    live = accepted_orders(run)
    requested = [r for r in run.records if type(r) is OrderRequested]
    assert any(r.order.side == "buy" and r.order.id in live and first_end <= r.ts < until
               for r in requested)
    assert not any(first_end <= r.ts < until for r in refused)


# --- concentration --------------------------------------------------------------------------


def two_coin_ctx() -> Any:
    acct = Account(10_000.0, "USDT")
    btc, eth = acct.add(Position("BTC/USDT")), acct.add(Position("ETH/USDT"))
    acct.apply(Fill("f1", 0, "buy", 0.02, 50_000.0, 0.0, symbol="BTC/USDT"), "BTC/USDT")
    acct.apply(Fill("f2", 0, "buy", 0.5, 2_000.0, 0.0, symbol="ETH/USDT"), "ETH/USDT")
    acct.mark(btc, 50_000.0)
    acct.mark(eth, 2_000.0)  # 1,000 in BTC, 1,000 in ETH, equity 10,000
    ctx = context()
    return Context(ctx.run, acct, ctx.ledger, "BTC/USDT", btc)


def test_concentration_counts_position_open_orders_and_the_group() -> None:
    check = build(Concentration, {"max_fraction": 0.25, "groups": {"L1": ["BTC/USDT",
                                                                        "ETH/USDT"]}})
    ctx = two_coin_ctx()
    # At the mark (50,000), BTC: 1,000 held + 250 open + 1,000 new = 22.5 %, below the cap on
    # its own; but the group L1, with ETH's 1,000, would be 32.5 %.
    ctx.ledger.request(Order("o1", "buy", 0.005, 49_000.0, symbol="BTC/USDT"), 0)
    assert check.check(ctx.order("buy", 0.02, 49_000.0), ctx) == Reject(
        "group L1 would exceed max_fraction 25% of equity")
    assert check.check(ctx.order("buy", 0.026, 49_000.0), ctx) == Reject(  # 25.5 % alone
        "BTC/USDT would exceed max_fraction 25% of equity")
    assert isinstance(check.check(ctx.order("buy", 0.004, 49_000.0), ctx), Order)
    assert isinstance(check.check(ctx.order("sell", 0.02, 51_000.0), ctx), Order)  # reduces
    alone = build(Concentration, {"max_fraction": 0.25})
    assert isinstance(alone.check(ctx.order("buy", 0.02, 49_000.0), ctx), Order)
    assert check.stats() == {"refused": 2, "refused_by_group": 1}


def test_concentration_holds_a_grid_near_its_cap_on_real_bars() -> None:
    """Through the May 2021 crash a plain grid ends up holding most of the account in BTC;
    with the check, the share of equity in BTC stays below the cap: the open buys count as if
    they had filled, so what is held stays below it by what they would add."""

    def worst(run: Any) -> float:
        return max(r.position * r.price / r.equity for r in run.records if type(r) is Mark)

    plain = step_strategy(StaticGrid, btc_5m()[:7000], options=GRID)
    check = build(Concentration, {"max_fraction": 0.3})
    run = grid_run(check)
    assert worst(plain) > 0.5
    assert 0.15 < worst(run) <= 0.3
    refused = [r for r in run.rejected if r.by == "concentration"]
    assert refused and {r.reason for r in refused} == {
        "BTC/USDT would exceed max_fraction 30% of equity"}
    assert check.stats()["refused"] == len(refused)


# --- cooldown -------------------------------------------------------------------------------


def test_cooldown_locks_after_losses_within_the_lookback_then_unlocks() -> None:
    check = build(Cooldown, {"bars": 3, "losses": 2, "lookback": 4})
    bars = [Bar(i * 60_000, 100.0, 100.0, 100.0, 100.0, 1.0) for i in range(12)]
    ctx = context(bar=bars[0])
    ctx.portfolio.apply(Fill("b", 0, "buy", 4.0, 100.0, 0.0))
    check.on_bar(ctx)
    answers = []
    for i, bar in enumerate(bars[1:], start=1):
        advance(ctx, bar)
        if i in (2, 4):  # a sell below the average cost: a realized loss
            ctx.portfolio.apply(Fill(f"s{i}", bar.ts, "sell", 1.0, 95.0, 0.0))
        check.on_bar(ctx)
        answers.append((i, check.check(ctx.order("buy", 0.1, 99.0), ctx),
                        check.check(ctx.order("sell", 0.1, 101.0), ctx)))
    reason = ("2 losses on BTC/USDT within 4 bars; locked for 3 bars from "
              f"{utc(bars[4].ts)} UTC")
    for i, buy, sell in answers:
        assert isinstance(sell, Order)  # reducing the position always passes
        if 4 <= i < 7:
            assert buy == Reject(reason), i
        else:
            assert isinstance(buy, Order), i
    assert check.stats() == {"locks": 1, "refused": 3, "losses": 2}


def test_cooldown_block_all_refuses_the_symbols_sells_too() -> None:
    check = build(Cooldown, {"bars": 2, "block": "all"})
    bar = Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0)
    ctx = context(bar=bar)
    ctx.portfolio.apply(Fill("b", 0, "buy", 2.0, 100.0, 0.0))
    check.on_bar(ctx)
    ctx.portfolio.apply(Fill("s", 0, "sell", 1.0, 90.0, 0.0))
    check.on_bar(ctx)
    assert isinstance(check.check(ctx.order("sell", 0.1, 101.0), ctx), Reject)


def test_cooldown_locks_at_the_bars_where_losses_pile_up_on_real_bars() -> None:
    """The locks, worked out from the fills booked into an account of their own: a bar whose
    realized profit fell is a loss; ``losses`` of them within ``lookback`` bars lock."""
    opts = {"bars": 12, "losses": 2, "lookback": 288}
    check = build(Cooldown, opts)
    run = grid_run(check)
    acct = Account(10_000.0, "USDT")
    pos = acct.add(Position("BTC/USDT"))
    last, index, recent, starts = 0.0, -1, [], []
    for r in run.records:
        if type(r) is Fill:
            acct.apply(r, "BTC/USDT")
        elif type(r) is Mark:
            index += 1
            if last - pos.realized > 1e-12:
                recent = [i for i in recent if i > index - opts["lookback"]] + [index]
                if len(recent) >= opts["losses"]:
                    recent = []
                    starts.append(r.ts)
            last = pos.realized
    assert len(starts) >= 5 and check.stats()["locks"] == len(starts)
    refused = [r for r in run.rejected if r.by == "cooldown"]
    assert refused and check.stats()["refused"] == len(refused)
    side = {o.id: o.side for o in run.orders}
    for r in refused:
        start = max(t for t in starts if t <= r.ts)
        assert r.ts < start + opts["bars"] * 300_000  # within the lock
        assert r.reason == (f"2 losses on BTC/USDT within 288 bars; locked for 12 bars from "
                            f"{utc(start)} UTC")
        assert side[r.order_id] == "buy"



def test_concentration_caps_a_sector_of_a_portfolio_sharing_one_account(tmp_path: Path) -> None:
    """examples/portfolio.toml (BTC, ETH and SOL grids on one USDT balance) with BTC and ETH
    in one group: what the two hold together stays within the cap, SOL is capped alone."""
    import sqlite3

    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = (EXAMPLES.parent / "portfolio.toml").read_text().replace(
        'use = "drawdown"\nlimit = 0.4',
        'use = "concentration"\nmax_fraction = 0.3\ngroups = {L1 = ["BTC/USDT", "ETH/USDT"]}')
    assert "concentration" in text
    db = tmp_path / "run.db"
    config = parse_pipeline(text, base_dir=EXAMPLES.parent)
    summary = run_pipeline(build_pipeline(config, store_path=str(db)))
    stats = summary["components"]["risk[0]"]
    by = summary["rejected_by"]
    assert by.get("concentration: group L1 would exceed max_fraction 30% of equity", 0) == \
        stats["refused_by_group"] > 0
    held: dict[str, float] = {}
    worst = 0.0
    with sqlite3.connect(db) as conn:
        for close, base, equity, symbol in conn.execute(
                "SELECT close, base, equity, symbol FROM equity ORDER BY rowid"):
            held[symbol] = base * close
            worst = max(worst, (held.get("BTC/USDT", 0.0) + held.get("ETH/USDT", 0.0)) / equity)
    assert 0.15 < worst <= 0.3


def test_the_ledger_counts_live_orders_and_open_sells_per_symbol() -> None:
    """What concurrent-orders and concentration read in O(1), kept as orders come and go, and
    counted afresh when a run is restored."""
    from gridkit.runtime.ledger import Ledger

    ledger = Ledger("t")
    ledger.request(Order("s1", "sell", 2.0, 101.0, symbol="BTC/USDT"), 0)
    ledger.request(Order("s2", "sell", 1.0, 102.0, symbol="BTC/USDT"), 0)
    ledger.request(Order("b1", "buy", 1.0, 99.0, symbol="BTC/USDT"), 0)
    ledger.request(Order("e1", "sell", 5.0, 2000.0, symbol="ETH/USDT"), 0)
    assert ledger.open_count == {"BTC/USDT": 3, "ETH/USDT": 1}
    assert ledger.open_sell_qty == {"BTC/USDT": 3.0, "ETH/USDT": 5.0}
    ledger.apply(Fill("s1", 1, "sell", 0.5, 101.0, 0.0, remaining=1.5))
    assert ledger.open_sell_qty["BTC/USDT"] == 2.5 and ledger.open_count["BTC/USDT"] == 3
    ledger.apply(Cancelled("s1", 2))
    assert ledger.open_sell_qty["BTC/USDT"] == 1.0 and ledger.open_count["BTC/USDT"] == 2
    restored = Ledger()
    restored.restore(ledger.snapshot())
    assert restored.open_count == ledger.open_count
    assert restored.open_sell_qty == ledger.open_sell_qty
    ledger.apply(Fill("s2", 3, "sell", 1.0, 102.0, 0.0))
    ledger.apply(Rejected("e1", 3, "no", "x"))
    assert ledger.open_sell_qty == {"BTC/USDT": 0.0, "ETH/USDT": 0.0}
    assert ledger.open_count == {"BTC/USDT": 1, "ETH/USDT": 0}


def test_a_run_with_every_limit_stopped_and_resumed_ends_as_one_straight_through(
        tmp_path: Path) -> None:
    """The checks' state (the day's start equity and trip, the cooldown's losses and locks, the
    breaker's windows) is saved with the run: stopped half way and resumed, the run refuses the
    same orders and ends with the same equity, to the last bit."""
    import os
    import signal

    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = (EXAMPLES.parent / "pipeline.toml").read_text() + """
[[risk]]
use = "concurrent-orders"
max_per_symbol = 12
[[risk]]
use = "daily-loss"
limit = 0.01
[[risk]]
use = "concentration"
max_fraction = 0.6
[[risk]]
use = "cooldown"
bars = 30
losses = 2
lookback = 600
[[risk]]
use = "circuit-breaker"
max_drop = 0.2
window = 240
"""

    def build_at(db: str) -> Any:
        return build_pipeline(parse_pipeline(text, base_dir=EXAMPLES.parent),
                              store_path=str(tmp_path / db))

    whole = run_pipeline(build_at("a.db"))
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 20_000 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    first = run_pipeline(build_at("b.db"), stop)
    assert first["status"] == "stopped" and first["bars_seen"] < whole["bars_seen"]
    again = run_pipeline(build_at("b.db"), resume=True)
    for key in ("final_equity", "orders_placed", "orders_rejected", "rejected_by", "halted"):
        assert again[key] == whole[key], key
    for i in range(2, 7):  # (the breaker's file differs, and its polls follow the clock too)
        stats = {k: v for k, v in whole["components"][f"risk[{i}]"].items()
                 if k not in ("store", "polls")}
        assert {k: again["components"][f"risk[{i}]"][k] for k in stats} == stats, i
    refused = {k.split(":")[0] for k in whole["rejected_by"]}
    assert {"concurrent-orders", "daily-loss", "cooldown"} <= refused
