"""The A-share risk checks (t-plus-one, lot-size, price-limit) and the simulated executor's
A-share options (fees, locked_limits), on the real A-share daily bars of shared/data where the
rule is about the market (the limit days SOURCES.md lists), by hand where it is about an
account (T+1, board lots)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gridkit import Bar, Fill, Order, Reject, Rejected, Strategy
from gridkit.core.config import structure
from gridkit.core.errors import ConfigError
from gridkit.plugins.executors import SimulatedExecutor
from gridkit.plugins.risk.ashare import LotSize, PriceLimit, TPlusOne
from gridkit.plugins.sources import CsvSource
from gridkit.runtime.context import Context, RunInfo
from gridkit.testing import RiskCheckContract, advance, build, context, run_toml, step_strategy
from gridkit.trading import ashare
from helpers import REPO, STRATEGY, ExecutorHarness, full_data_reason

# --- the real files ---------------------------------------------------------------------------

QBOT = {"600519.SH": "qbot/600519.csv", "000001.SZ": "qbot/000001.SZ.csv",
        "000953.SZ": "qbot/000953.SZ.csv"}
VRM = {"300033.SZ": "volatility-regime-momentum/300033.csv",
       "688981.SH": "volatility-regime-momentum/688981.csv"}


def a_share_bars(data_dir: Path, symbol: str) -> list[Bar]:
    """The daily bars of ``symbol`` from shared/data/ohlcv/a-share (skip when absent)."""
    rel = QBOT.get(symbol) or VRM[symbol]
    path = data_dir / "ohlcv" / "a-share" / rel
    if not path.is_file():
        pytest.skip(full_data_reason(f"no {path.name} in the data in use"))
    options: dict[str, Any] = {"path": str(path)}
    if symbol in QBOT:
        options["columns"] = {"ts": "trade_date"}
    src = build(CsvSource, options)
    src.setup(RunInfo("t", "backtest", symbol, 1.0, path.parent))
    return list(src.events())


def day(bar: Bar) -> str:
    return ashare.trading_day(bar.ts).isoformat()


def cst(text: str) -> int:
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone(timedelta(hours=8)))
    return int(dt.timestamp() * 1000)


# What shared/data/ohlcv/a-share/SOURCES.md lists: closes at limit-up and at limit-down.
LIMIT_DAYS = {
    "600519.SH": (["2015-04-16", "2015-04-21"], ["2018-10-29"]),
    "000001.SZ": ([], ["2020-02-03"]),
    "000953.SZ": (
        ["2019-02-11", "2019-02-28", "2019-03-06", "2019-03-13", "2019-03-21", "2019-04-17",
         "2019-05-09", "2019-06-21", "2019-06-26", "2019-06-27", "2019-08-01", "2019-08-05",
         "2019-08-07", "2019-08-16", "2019-08-30", "2019-11-21", "2019-12-04", "2019-12-06",
         "2019-12-12", "2019-12-25", "2020-02-04", "2020-02-05", "2020-02-06", "2020-02-07",
         "2020-02-10", "2020-02-17", "2020-02-18", "2020-02-19", "2020-02-20", "2020-02-21",
         "2020-02-24", "2020-02-25", "2020-03-05", "2020-03-09", "2020-03-16", "2020-03-20",
         "2020-03-23", "2020-03-24", "2020-03-25", "2020-03-30", "2020-04-13", "2020-04-14"],
        ["2019-01-22", "2019-01-31", "2019-03-08", "2019-03-14", "2019-04-23", "2019-05-06",
         "2019-05-07", "2019-05-17", "2019-05-20", "2019-05-23", "2019-06-18", "2019-06-20",
         "2019-07-08", "2019-10-16", "2020-01-21", "2020-02-03", "2020-02-11", "2020-02-26",
         "2020-02-27", "2020-02-28", "2020-03-13", "2020-04-29", "2020-04-30"]),
    "300033.SZ": (["2020-02-20", "2020-02-21", "2020-04-09", "2020-07-02", "2020-07-06",
                   "2024-09-27", "2024-09-30", "2024-10-08", "2024-11-07"],
                  ["2020-02-03", "2020-02-26"]),
    "688981.SH": (["2024-09-30", "2024-10-08", "2024-10-18"], []),
}
OPTIONS: dict[str, dict[str, Any]] = {"000953.SZ": {"st": ["000953.SZ"]},
                                      "688981.SH": {"listed": {"688981": "2020-07-16"}}}


def bands(bars: list[Bar], symbol: str, options: dict[str, Any]
          ) -> tuple[PriceLimit, Context, list[Any]]:
    """Walk ``bars`` through a price-limit check; the band it gives on each bar (for the
    orders decided on it, which trade on the next bar's day)."""
    check = build(PriceLimit, options)
    check.setup(RunInfo("t", "backtest", symbol, 1e7, Path.cwd(), (symbol,)))
    ctx = context(symbol, 1e7)
    out = []
    for bar in bars:
        advance(ctx, bar)
        check.on_bar(ctx)
        out.append(check.band(ctx))
    return check, ctx, out


@pytest.mark.parametrize("symbol", sorted(LIMIT_DAYS))
def test_every_listed_limit_day_closes_at_the_limit_price(data_dir: Path, symbol: str) -> None:
    """The band of each day (from the exchange's pre_close where the file has it) holds every
    price of the day, and its edges are the closes SOURCES.md lists as limit hits."""
    bars = a_share_bars(data_dir, symbol)
    options = dict(OPTIONS.get(symbol, {}))
    if symbol in QBOT:
        options["pre_close"] = str(data_dir / "ohlcv" / "a-share" / QBOT[symbol])
    _, _, got = bands(bars, symbol, options)
    ups, downs = [], []
    for prev_band, bar in zip(got, bars[1:], strict=False):
        if prev_band is None:
            continue
        down, up, _, _ = prev_band
        assert down - 1e-9 <= bar.low and bar.high <= up + 1e-9, (
            f"{day(bar)} traded outside its band {prev_band}")
        if bar.close == up:
            ups.append(day(bar))
        if bar.close == down:
            downs.append(day(bar))
    assert (ups, downs) == (LIMIT_DAYS[symbol][0], LIMIT_DAYS[symbol][1])


def test_ex_dividend_days_take_the_exchanges_pre_close(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "600519.SH")
    path = str(data_dir / "ohlcv" / "a-share" / QBOT["600519.SH"])
    check, _, exch = bands(bars, "600519.SH", {"pre_close": path})
    _, _, prev = bands(bars, "600519.SH", {})
    moved = {day(nxt) for a, b, nxt in zip(exch, prev, bars[1:], strict=False) if a != b}
    # SOURCES.md's ten ex-dividend days of 600519, and no other.
    assert moved == {"2010-07-05", "2011-07-01", "2012-07-05", "2013-06-07", "2014-06-25",
                     "2015-07-17", "2016-07-01", "2017-07-07", "2018-06-15", "2019-06-28"}
    assert check.stats()["from_pre_close"] == 10
    i = [day(b) for b in bars].index("2011-06-30")  # bonus shares: 212.63 -> 191.21
    assert prev[i][3] == 212.63 and exch[i][3] == 191.21
    assert exch[i][:2] == ashare.limit_prices(191.21, 10) == (172.09, 210.33)
    # With the previous close, 2011-07-01's low of 189.90 would be "below the limit-down".
    assert bars[i + 1].low < prev[i][0]


def test_st_limit_is_five_percent_only_when_named(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "000953.SZ")
    _, _, st = bands(bars, "000953.SZ", {"st": ["000953"]})
    _, _, plain = bands(bars, "000953.SZ", {})
    assert {b[2] for b in st if b} == {5} and {b[2] for b in plain if b} == {10}
    # At ±10 % none of the 65 limit closes would be one.
    assert not [b for b, nxt in zip(plain, bars[1:], strict=False)
                if b and nxt.close in (b[0], b[1])]


def test_chinext_band_widens_to_twenty_percent_on_2020_08_24(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "300033.SZ")
    _, _, got = bands(bars, "300033.SZ", {})
    by_day = {day(b): band for b, band in zip(bars, got, strict=False)}
    # Decided on Thursday 08-20: trades on 08-21 (10 %); on Friday 08-21: trades 08-24 (20 %).
    assert by_day["2020-08-20"][2] == 10 and by_day["2020-08-21"][2] == 20
    ref = bars[[day(b) for b in bars].index("2020-08-21")].close
    assert by_day["2020-08-21"][:2] == ashare.limit_prices(ref, 20)


def test_star_has_no_limit_in_its_first_five_sessions(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "688981.SH")
    _, _, got = bands(bars, "688981.SH", {"listed": {"688981.SH": "2020-07-16"}})
    # Orders decided on sessions 1-4 trade on sessions 2-5: no limit; from session 5's
    # close on they are limited at 20 % (SOURCES.md: 2020-07-16 to 07-22 unlimited).
    assert [day(b) for b, band in zip(bars, got, strict=False) if band is None] == [
        "2020-07-16", "2020-07-17", "2020-07-20", "2020-07-21"]
    assert got[4][2] == 20 and day(bars[4]) == "2020-07-22"
    # The IPO day's +202 % would have been "outside the band" of an unlisted reading.
    check = build(PriceLimit, {"listed": {"688981": "2020-07-16"}})
    ctx = context("688981.SH", 1e7, bars[0])
    check.on_bar(ctx)
    assert isinstance(check.check(ctx.order("buy", 200, bars[0].close * 1.5), ctx), Order)
    assert check.stats()["unlimited"] == 1


def test_orders_outside_the_band_are_refused(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "600519.SH")
    i = [day(b) for b in bars].index("2018-10-26")  # the day before the locked limit-down
    check = build(PriceLimit, {})
    ctx = context("600519.SH", 1e7)
    for bar in bars[: i + 1]:
        advance(ctx, bar)
        check.on_bar(ctx)
    assert bars[i].close == 610.10 and check.band(ctx) == (549.09, 671.11, 10, 610.10)
    assert isinstance(check.check(ctx.order("buy", 100, 549.09), ctx), Order)
    assert isinstance(check.check(ctx.order("sell", 100, 671.11), ctx), Order)
    low = check.check(ctx.order("buy", 100, 549.08), ctx)
    high = check.check(ctx.order("sell", 100, 671.12), ctx)
    assert isinstance(low, Reject) and low.reason == (
        "buy priced below the day's limit-down (-10% of the previous close)")
    assert isinstance(high, Reject) and high.reason == (
        "sell priced above the day's limit-up (+10% of the previous close)")
    assert isinstance(check.check(ctx.order("buy", 100, 700.0, "market"), ctx), Order)
    assert check.stats() == {"refused": 2, "refused_above": 1, "refused_below": 1,
                             "unlimited": 0}


def test_price_limit_options_fail_in_one_line() -> None:
    assert structure({"st": ["abc"]}, PriceLimit.Config, "risk[0]")[1] == [
        "risk[0].st: 'abc' is not a six-digit A-share code"]
    assert structure({"listed": {"688981": "2020-13-01"}}, PriceLimit.Config, "risk[0]")[1] == [
        "risk[0].listed: 688981: '2020-13-01' is not a date (YYYY-MM-DD)"]


# --- the market must be A-shares --------------------------------------------------------------


class TestTPlusOneContract(RiskCheckContract):
    component_class = TPlusOne


class TestLotSizeContract(RiskCheckContract):
    component_class = LotSize


class TestPriceLimitContract(RiskCheckContract):
    component_class = PriceLimit
    options = {"st": ["000953"]}


@pytest.mark.parametrize("use", ["t-plus-one", "lot-size", "price-limit"])
def test_a_crypto_symbol_is_refused_before_the_run(use: str) -> None:
    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{{sample}}"
{STRATEGY}
[[risk]]
use = "{use}"
"""
    with pytest.raises(ConfigError) as err:
        run_toml(text)
    assert str(err.value).splitlines()[-1].strip().endswith(
        f"risk[0]: {use}: 'BTC/USDT' is not an A-share symbol: use the six-digit code, "
        f"e.g. 600519.SH, 000001.SZ or 600519/CNY")
    # ...and an order of such a symbol that reaches a check anyway is refused, not raised.
    check = build({"t-plus-one": TPlusOne, "lot-size": LotSize, "price-limit": PriceLimit}[use])
    ctx = context("BTC/USDT", bar=Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0))
    check.on_bar(ctx)
    out = check.check(ctx.order("sell", 1.0, 1.0), ctx)
    assert isinstance(out, Reject) and "not an A-share symbol" in out.reason


@pytest.mark.parametrize("option", ["fees", "locked_limits"])
def test_executor_a_share_options_refuse_a_crypto_symbol(option: str) -> None:
    ex = build(SimulatedExecutor, {option: "a-share"})
    with pytest.raises(ConfigError) as err:
        ex.validate(RunInfo("t", "backtest", "BTC/USDT", 1.0, Path.cwd(), ("BTC/USDT",)))
    assert str(err.value) == (f"{option} = \"a-share\": 'BTC/USDT' is not an A-share symbol: "
                              f"use the six-digit code, e.g. 600519.SH, 000001.SZ or 600519/CNY")


# --- T+1 --------------------------------------------------------------------------------------


def buy_fill(ctx: Context, qty: float, price: float, ts: int) -> None:
    """Book a filled buy as the engine does: the ledger, then the account."""
    order = ctx.order("buy", qty, price)
    ctx.ledger.request(order, ts)
    fill = Fill(order.id, ts, "buy", qty, price, 0.0, symbol=ctx.symbol)
    ctx.ledger.apply(fill)
    ctx.account.apply(fill, ctx.symbol, order)


def bar_at(ts: int, price: float = 10.0) -> Bar:
    return Bar(ts, price, price, price, price, 1000.0)


def test_t_plus_one_refuses_a_same_day_sell_on_intraday_bars() -> None:
    check = build(TPlusOne)
    ctx = context("600519.SH", 1e6)
    advance(ctx, bar_at(cst("2019-06-27 10:00")))
    check.on_bar(ctx)
    buy_fill(ctx, 1000, 10.0, cst("2019-06-27 10:30"))  # filled on the next bar
    advance(ctx, bar_at(cst("2019-06-27 10:30")))
    check.on_bar(ctx)
    out = check.check(ctx.order("sell", 100, 10.5), ctx)
    assert isinstance(out, Reject) and out.reason.startswith("T+1: sells shares bought today")
    assert isinstance(check.check(ctx.order("buy", 100, 9.5), ctx), Order)
    # 15:00 and later: the order trades tomorrow; so does one decided on the next day.
    advance(ctx, bar_at(cst("2019-06-27 15:00")))
    check.on_bar(ctx)
    assert isinstance(check.check(ctx.order("sell", 1000, 10.5), ctx), Order)
    advance(ctx, bar_at(cst("2019-06-28 09:31")))
    check.on_bar(ctx)
    assert isinstance(check.check(ctx.order("sell", 1000, 10.5), ctx), Order)
    assert check.stats() == {"refused": 1}


def test_t_plus_one_counts_open_sells_of_older_shares() -> None:
    """A grid holds 1,000 older shares, all offered in open sells; 100 bought today cannot
    be offered too, though the executor's free base (1,100 - 1,000) would allow it."""
    check = build(TPlusOne)
    ctx = context("600519.SH", 1e6)
    advance(ctx, bar_at(cst("2019-06-27 10:00")))
    buy_fill(ctx, 1000, 10.0, cst("2019-06-27 10:00"))
    check.on_bar(ctx)
    advance(ctx, bar_at(cst("2019-06-28 10:00")))  # a new day: the 1,000 are sellable
    check.on_bar(ctx)
    for _ in range(10):
        ctx.ledger.request(ctx.order("sell", 100, 11.0), ctx.bar.ts)
    # Nothing bought today: more than the free base is the executor's to refuse, not T+1's.
    assert isinstance(check.check(ctx.order("sell", 100, 11.0), ctx), Order)
    buy_fill(ctx, 100, 9.9, cst("2019-06-28 10:30"))
    advance(ctx, bar_at(cst("2019-06-28 10:30")))
    check.on_bar(ctx)
    assert isinstance(check.check(ctx.order("sell", 100, 10.1), ctx), Reject)
    # Cancel one older sell: that 100 may be offered again, the new 100 still not.
    from gridkit import Cancelled

    oid = next(iter(ctx.ledger.open))
    ctx.ledger.apply(Cancelled(oid, ctx.bar.ts))
    assert isinstance(check.check(ctx.order("sell", 100, 10.1), ctx), Order)
    assert isinstance(check.check(ctx.order("sell", 200, 10.1), ctx), Reject)


def test_t_plus_one_state_survives_a_resume() -> None:
    """Stopped after a buy and resumed the same day: the resumed check and ledger still know
    what was bought today and what is offered."""
    import pickle

    from gridkit.runtime.ledger import Ledger

    check = build(TPlusOne)
    ctx = context("600519.SH", 1e6)
    advance(ctx, bar_at(cst("2019-06-27 10:00")))
    check.on_bar(ctx)
    buy_fill(ctx, 300, 10.0, cst("2019-06-27 10:00"))
    ctx.ledger.request(ctx.order("sell", 100, 11.0), ctx.bar.ts)  # an open sell
    advance(ctx, bar_at(cst("2019-06-27 10:30")))
    check.on_bar(ctx)
    resumed = build(TPlusOne)
    resumed.restore(pickle.loads(pickle.dumps(check.snapshot())))
    ledger = Ledger("t")
    ledger.restore(pickle.loads(pickle.dumps(ctx.ledger.snapshot())))
    assert ledger.bought == {"600519.SH": 300.0}
    assert ledger.open_sell_qty == ctx.ledger.open_sell_qty == {"600519.SH": 100.0}
    ctx.ledger = ledger
    assert resumed.bought_today(ctx) == 300.0
    assert isinstance(resumed.check(ctx.order("sell", 100, 10.5), ctx), Reject)


def test_t_plus_one_on_daily_bars_never_binds() -> None:
    check = build(TPlusOne)
    ctx = context("600519.SH", 1e6)
    ts = int(datetime(2019, 6, 27, tzinfo=timezone.utc).timestamp() * 1000)
    advance(ctx, bar_at(ts))
    buy_fill(ctx, 1000, 10.0, ts)
    check.on_bar(ctx)
    # Decided after the day's close: it trades from the next session, when the buy settled.
    assert isinstance(check.check(ctx.order("sell", 1000, 10.5), ctx), Order)


class BuyThenSell(Strategy):
    """Buys 100 shares at once, then offers them at every bar until a sell is live."""

    name = "buy-then-sell"

    def start(self, ctx: Context) -> Sequence[Order]:
        return [ctx.order("buy", 100, ctx.bar.close * 1.05)]

    def on_bar(self, ctx: Context) -> Sequence[Order]:
        if ctx.position.qty > 0 and not ctx.open_orders:
            return [ctx.order("sell", 100, ctx.bar.close)]
        return []


def intraday(stamps: list[str]) -> list[Bar]:
    return [Bar(cst(s), 10.0, 10.2, 9.8, 10.0, 1000.0) for s in stamps]


def test_t_plus_one_in_a_backtest_holds_the_sell_to_the_next_day() -> None:
    bars = intraday(["2019-06-27 10:00", "2019-06-27 10:30", "2019-06-27 11:00",
                     "2019-06-28 10:00", "2019-06-28 10:30"])
    check = build(TPlusOne)
    run = step_strategy(BuyThenSell, bars, symbol="600519.SH", capital=1e5, risk=[check],
                        fill_options={"maker_fee": 0.0, "taker_fee": 0.0})
    refused = [r for r in run.records if type(r) is Rejected]
    fills = [r for r in run.records if type(r) is Fill]
    # Bought at 10:30; the sells decided at 10:30 and 11:00 are refused; the one decided on
    # the 28th fills at its next bar.
    assert [(r.by, r.ts) for r in refused] == [("t-plus-one", cst("2019-06-27 10:30")),
                                               ("t-plus-one", cst("2019-06-27 11:00"))]
    assert [(f.side, f.ts) for f in fills] == [("buy", cst("2019-06-27 10:30")),
                                               ("sell", cst("2019-06-28 10:30"))]
    assert run.summary["components"]["risk[0]"] == {"refused": 2}
    # The same bars stamped as days: nothing to refuse.
    days = [Bar(int(datetime(2019, 6, d, tzinfo=timezone.utc).timestamp() * 1000), 10.0,
                10.2, 9.8, 10.0, 1000.0) for d in (24, 25, 26, 27, 28)]
    run = step_strategy(BuyThenSell, days, symbol="600519.SH", capital=1e5,
                        risk=[build(TPlusOne)])
    assert not [r for r in run.records if type(r) is Rejected]


# --- board lots -------------------------------------------------------------------------------


def test_lot_size_refuses_or_rounds() -> None:
    ctx = context("600519.SH", 1e6, bar_at(cst("2019-06-27 10:00")), base=250)
    check = build(LotSize)
    assert isinstance(check.check(ctx.order("buy", 300, 10.0), ctx), Order)
    out = check.check(ctx.order("buy", 150, 10.0), ctx)
    assert isinstance(out, Reject) and out.reason == (
        "buy of 150 shares is not a whole number of 100-share lots")
    assert isinstance(check.check(ctx.order("sell", 150, 10.0), ctx), Order)  # lot + odd 50
    assert isinstance(check.check(ctx.order("sell", 250, 10.0), ctx), Order)  # all of it
    assert isinstance(check.check(ctx.order("sell", 120, 10.0), ctx), Reject)
    rounding = build(LotSize, {"round": True})
    cut = rounding.check(ctx.order("buy", 150, 10.0), ctx)
    assert isinstance(cut, Order) and cut.qty == 100
    assert isinstance(rounding.check(ctx.order("buy", 60, 10.0), ctx), Reject)
    assert rounding.stats() == {"refused": 1, "rounded": 1}
    star = context("688981.SH", 1e6, bar_at(cst("2021-06-01 10:00")), base=150)
    assert isinstance(check.check(star.order("buy", 201, 50.0), star), Order)
    assert isinstance(check.check(star.order("buy", 100, 50.0), star), Reject)
    assert isinstance(check.check(star.order("sell", 150, 50.0), star), Order)  # the rest


# --- the simulated executor: locked limits and A-share fees ------------------------------------


def locked_days(bars: list[Bar], symbol: str) -> dict[str, str]:
    sec = ashare.parse_symbol(symbol)
    out = {}
    for prev, bar in itertools.pairwise(bars):
        side = ashare.locked_side(bar.high, bar.low, prev.close, ashare.board_percents(
            sec.board, ashare.trading_day(bar.ts)))
        if side:
            out[day(bar)] = side
    return out


def test_locked_days_of_the_real_files(data_dir: Path) -> None:
    # 600519's one-price limit-down of 2018-10-29 (SOURCES.md) and 000953's 16 locked days.
    assert locked_days(a_share_bars(data_dir, "600519.SH"), "600519.SH") == {
        "2018-10-29": "down"}
    locked = locked_days(a_share_bars(data_dir, "000953.SZ"), "000953.SZ")
    assert len(locked) == 16 and locked["2020-02-03"] == "down"
    assert sum(side == "up" for side in locked.values()) == 14


@pytest.mark.parametrize("symbol", ["600519.SH", "000953.SZ"])
def test_a_locked_bar_fills_nothing_on_its_locked_side(data_dir: Path, symbol: str) -> None:
    """Before each locked day, a buy (locked up) or sell (locked down) at the limit price:
    with locked_limits it does not fill on the locked day, without it does."""
    bars = a_share_bars(data_dir, symbol)
    locked = locked_days(bars, symbol)
    for limits, expect_fill in (("a-share", False), ("none", True)):
        for i, bar in enumerate(bars[1:], start=1):
            side = locked.get(day(bar))
            if side is None:
                continue
            h = ExecutorHarness(SimulatedExecutor, {"locked_limits": limits, "maker_fee": 0.0},
                                symbol=symbol, qty=1000.0)
            h.feed(bars[i - 1])
            assert h.submit("o", "buy" if side == "up" else "sell", 100, bar.close) is None
            h.submit("m", "buy" if side == "up" else "sell", 100, bar.close, "market")
            got = [r for r in h.feed(bar) if type(r) is Fill]
            assert bool(got) == expect_fill, (limits, day(bar), got)
            if limits == "a-share":
                assert h.open_ids() == {"o"}  # the limit order waits; the market one expired
                assert h.ex.stats()["locked_bars"] == 1


class ChaseLimits(Strategy):
    """Bids 100 shares at the next day's limit-up and, holding shares, offers 100 at its
    limit-down: orders that trade whenever the day is not locked against them."""

    name = "chase-limits"

    def start(self, ctx: Context) -> Sequence[Order]:
        return self.on_bar(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order]:
        if ctx.open_orders:
            return []
        down, up = ashare.limit_prices(ctx.bar.close, 5)
        out = [ctx.order("buy", 100, up)]
        if ctx.position.qty >= 100:
            out.append(ctx.order("sell", 100, down))
        return out


def test_backtest_fills_nothing_on_the_locked_side(data_dir: Path) -> None:
    bars = a_share_bars(data_dir, "000953.SZ")
    locked = locked_days(bars, "000953.SZ")
    by_ts = {b.ts: day(b) for b in bars}

    def on_locked_side(limits: str) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        run = step_strategy(ChaseLimits, bars, symbol="000953.SZ", capital=1e6,
                            risk=[build(PriceLimit, {"st": ["000953"]})],
                            fill_options={"locked_limits": limits, "fees": "a-share",
                                          "maker_fee": 0.0003, "taker_fee": 0.0003})
        fills = [r for r in run.records if type(r) is Fill]
        assert fills
        return [(by_ts[f.ts], f.side) for f in fills
                if (locked.get(by_ts[f.ts]) == "up" and f.side == "buy")
                or (locked.get(by_ts[f.ts]) == "down" and f.side == "sell")], run.summary

    without, _ = on_locked_side("none")
    assert len(without) >= 10, "the test needs fills that the rule takes away"
    assert ("2020-02-04", "buy") in without and ("2020-02-03", "sell") in without
    with_rule, summary = on_locked_side("a-share")
    assert with_rule == []
    assert summary["components"]["executor"]["locked_bars"] == 16
    assert summary["components"]["risk[0]"]["refused"] == 0  # at the band's edge: inside


def test_a_share_fees_in_the_executor_follow_the_fill_date() -> None:
    for when, stamp in (("2023-08-25 10:00", 10.0), ("2023-08-28 10:00", 5.0)):
        h = ExecutorHarness(SimulatedExecutor, {"fees": "a-share", "maker_fee": 0.0003,
                                                "taker_fee": 0.0003},
                            symbol="600519.SH", qty=1000.0)
        ts = cst(when)
        h.feed(Bar(ts - 1800_000, 10.0, 10.0, 10.0, 10.0, 1.0))
        assert h.submit("b", "buy", 1000, 10.0) is None
        assert h.submit("s", "sell", 1000, 10.0) is None
        got = {r.side: r.fee for r in h.feed(Bar(ts, 10.0, 10.0, 10.0, 10.0, 1.0))
               if type(r) is Fill}
        # 10,000 CNY each way: commission 5 (minimum), transfer 0.1, stamp duty on the sell.
        assert got == pytest.approx({"buy": 5.1, "sell": 5.1 + stamp})


def test_a_share_fees_are_reserved_with_the_buy() -> None:
    # 5,000 CNY of cash cannot buy 500 shares at 10 with a 5 CNY commission on top.
    h = ExecutorHarness(SimulatedExecutor, {"fees": "a-share", "maker_fee": 0.0003},
                        symbol="600519.SH", capital=5000.0)
    h.feed(Bar(cst("2024-01-02 10:00"), 10.0, 10.0, 10.0, 10.0, 1.0))
    assert h.submit("b", "buy", 500, 10.0) == "insufficient cash"
    assert h.submit("c", "buy", 400, 10.0) is None


# --- the example --------------------------------------------------------------------------------


def test_the_a_share_example_runs_offline_and_shows_each_check() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gridkit", "run", "--json", str(REPO / "examples" / "a-share.toml")],
        capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(out.stdout)
    assert summary["status"] == "finished" and summary["bars_accepted"] == 317
    comps = summary["components"]
    assert summary["pipeline"]["risk[0]"]["use"] == "price-limit"
    assert comps["risk[0]"]["refused"] > 0
    assert comps["risk[0]"]["refused"] == (comps["risk[0]"]["refused_above"]
                                           + comps["risk[0]"]["refused_below"])
    assert comps["risk[1]"] == {"refused": 0, "rounded": 0}
    assert comps["risk[2]"] == {"refused": 0}
    assert comps["executor"]["locked_bars"] == 16
    assert comps["risk[0]"]["from_pre_close"] == 0  # no ex-dividend day in this file
    assert all(k.startswith("price-limit: ") for k in summary["rejected_by"])
    assert "price-limit: buy priced below the day's limit-down (-5% of the previous close)" in (
        summary["rejected_by"])
    assert sum(summary["rejected_by"].values()) == comps["risk[0]"]["refused"]
    assert summary["fees_paid"] > 5.0 * (summary["buy_fills"] + summary["sell_fills"]) - 1e-9
    assert date.fromtimestamp(summary["last_ts"] / 1000) == date(2020, 5, 8)
