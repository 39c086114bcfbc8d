"""China A-share rules as plain functions (gridkit.trading.ashare): symbols, trading days,
limit prices, board lots and the fee schedule, by hand-computed examples; and the csv source
reading tushare's YYYYMMDD dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gridkit.plugins.sources import CsvSource
from gridkit.runtime.context import RunInfo
from gridkit.testing import build
from gridkit.trading import ashare
from gridkit.trading.ashare import (
    fee,
    fee_parts,
    limit_percent,
    limit_prices,
    lot_problem,
    parse_symbol,
    round_lot,
)


def cst(text: str) -> int:
    """Epoch ms of a 'YYYY-MM-DD HH:MM' Asia/Shanghai time."""
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone(timedelta(hours=8)))
    return int(dt.timestamp() * 1000)


def utc_midnight(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


# --- symbols ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "exchange", "board"), [
    ("600519.SH", "SH", "main"), ("600519", "SH", "main"), ("600519/CNY", "SH", "main"),
    ("000001.SZ", "SZ", "main"), ("002594.sz", "SZ", "main"), ("000953.SZ", "SZ", "main"),
    ("300033.SZ", "SZ", "chinext"), ("301001", "SZ", "chinext"),
    ("688981.SH", "SH", "star"), ("688981.SS", "SH", "star"),
])
def test_symbols_give_exchange_and_board(symbol: str, exchange: str, board: str) -> None:
    sec = parse_symbol(symbol)
    assert (sec.exchange, sec.board, len(sec.code)) == (exchange, board, 6)


@pytest.mark.parametrize(("symbol", "says"), [
    ("BTC/USDT", "'BTC/USDT' is not an A-share symbol"),
    ("600519.SZ", "code 600519 trades on SH, not SZ"),
    ("830799.BJ", "is not an A-share symbol"),
    ("830799", "Beijing and B-share codes are not covered"),
    ("900901", "Beijing and B-share codes are not covered"),
])
def test_other_symbols_are_refused_in_one_line(symbol: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_symbol(symbol)
    assert says in str(err.value) and "\n" not in str(err.value)


# --- days -------------------------------------------------------------------------------------


def test_trading_day_is_the_shanghai_date_of_any_stamp() -> None:
    day = date(2023, 8, 28)
    assert ashare.trading_day(utc_midnight("2023-08-28")) == day  # csv date label
    assert ashare.trading_day(cst("2023-08-28 00:00")) == day  # 16:00 UTC the day before
    assert ashare.trading_day(cst("2023-08-28 09:30")) == day
    assert ashare.trading_day(cst("2023-08-28 14:59")) == day
    assert ashare.trading_day(cst("2023-08-27 23:59")) == date(2023, 8, 27)


def test_orders_decided_on_daily_bars_or_after_the_close_trade_the_next_session() -> None:
    assert ashare.decided_after_session(utc_midnight("2019-06-28"))
    assert ashare.decided_after_session(cst("2019-06-28 00:00"))
    assert ashare.decided_after_session(cst("2019-06-28 15:00"))
    assert not ashare.decided_after_session(cst("2019-06-28 09:31"))
    assert not ashare.decided_after_session(cst("2019-06-28 14:59"))


# --- price limits -----------------------------------------------------------------------------


def test_limit_percent_by_board_day_and_st() -> None:
    d = date(2019, 6, 28)
    assert limit_percent("main", d) == 10
    assert limit_percent("main", d, st=True) == 5
    assert limit_percent("star", d) == 20 and limit_percent("star", d, st=True) == 20
    # ChiNext: the registration reform of 2020-08-24 (the last 10 % day was Friday 08-21).
    assert limit_percent("chinext", date(2020, 8, 21)) == 10
    assert limit_percent("chinext", date(2020, 8, 21), st=True) == 5
    assert limit_percent("chinext", date(2020, 8, 24)) == 20
    assert limit_percent("chinext", date(2020, 8, 24), st=True) == 20
    # Main-board ST stocks at ±10 % from 2025-07-07.
    assert limit_percent("main", date(2025, 7, 4), st=True) == 5
    assert limit_percent("main", date(2025, 7, 7), st=True) == 10


def test_limit_prices_round_half_up_to_the_cent() -> None:
    # 1.15 * 1.10 = 1.265 and 1.10 * 0.95 = 1.045: half a cent goes up (Python's round() of
    # the binary floats gives 1.26 and 1.04).
    assert limit_prices(1.15, 10) == (1.04, 1.27)
    assert limit_prices(1.10, 5) == (1.05, 1.16)
    assert limit_prices(3.89, 5) == (3.70, 4.08)  # 4.0845 -> 4.08, 3.6955 -> 3.70
    assert limit_prices(610.10, 10) == (549.09, 671.11)  # 600519 on 2018-10-29
    assert limit_prices(59.99, 20) == (47.99, 71.99)  # 688981 on 2024-10-08


def test_locked_side_needs_one_price_at_a_limit() -> None:
    assert ashare.locked_side(549.09, 549.09, 610.10, (10,)) == "down"
    assert ashare.locked_side(4.08, 4.08, 3.89, (5, 10)) == "up"
    assert ashare.locked_side(4.08, 4.00, 3.89, (5, 10)) == ""  # traded below the limit too
    assert ashare.locked_side(4.00, 4.00, 3.89, (5, 10)) == ""  # one price, not a limit
    assert ashare.locked_side(4.08, 4.08, 3.89, (10,)) == ""  # +5 % is no limit at 10 %


# --- board lots -------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "qty", "held", "board", "ok"), [
    ("buy", 100, 0, "main", True), ("buy", 1000, 0, "chinext", True),
    ("buy", 150, 0, "main", False), ("buy", 50, 0, "main", False),
    ("buy", 100.5, 0, "main", False),
    ("sell", 200, 1000, "main", True),
    ("sell", 50, 150, "main", True),  # the odd 50, all at once
    ("sell", 150, 250, "main", True),  # a lot and the odd 50
    ("sell", 120, 250, "main", False),  # 20 of the odd 50
    ("sell", 30, 150, "main", False),
    ("sell", 150, 150, "main", True),  # the whole holding
    ("buy", 200, 0, "star", True), ("buy", 201, 0, "star", True),
    ("buy", 199, 0, "star", False), ("buy", 100, 0, "star", False),
    ("sell", 250, 300, "star", True), ("sell", 150, 150, "star", True),
    ("sell", 150, 300, "star", False),
])
def test_lot_rules(side: str, qty: float, held: float, board: str, ok: bool) -> None:
    problem = lot_problem(side, qty, held, board)
    assert (problem is None) == ok, problem


def test_round_lot_cuts_down_to_what_the_rules_accept() -> None:
    assert round_lot("buy", 150, 0, "main") == 100
    assert round_lot("buy", 99, 0, "main") == 0
    assert round_lot("buy", 250.7, 0, "star") == 250
    assert round_lot("buy", 150, 0, "star") == 0
    assert round_lot("sell", 180, 250, "main") == 150  # a lot and the odd 50
    assert round_lot("sell", 140, 1000, "main") == 100
    assert round_lot("sell", 150, 150, "star") == 150
    for side, qty, held, board in (("sell", 180, 250, "main"), ("buy", 250.7, 0, "star")):
        assert lot_problem(side, round_lot(side, qty, held, board), held, board) is None


# --- fees -------------------------------------------------------------------------------------


def test_commission_has_a_five_yuan_minimum() -> None:
    # 10,000 CNY at 0.03 % is 3 CNY: the minimum 5 applies; 100,000 CNY pays 30.
    assert fee_parts("buy", 10.0, 1000, 0.0003, date(2024, 1, 2), "SZ")[0] == 5.0
    assert fee_parts("buy", 100.0, 1000, 0.0003, date(2024, 1, 2), "SZ")[0] == pytest.approx(30.0)
    assert fee_parts("buy", 100.0, 1000, 0.0, date(2024, 1, 2), "SZ")[0] == 0.0


def test_stamp_duty_on_sells_halves_on_2023_08_28() -> None:
    # 1,000 shares at 10.00 = 10,000 CNY on SSE: commission 5 (minimum), transfer 0.1.
    before, after = date(2023, 8, 25), date(2023, 8, 28)  # a Friday and the Monday after
    assert fee_parts("sell", 10.0, 1000, 0.0003, before, "SH") == pytest.approx((5.0, 10.0, 0.1))
    assert fee_parts("sell", 10.0, 1000, 0.0003, after, "SH") == pytest.approx((5.0, 5.0, 0.1))
    assert fee_parts("buy", 10.0, 1000, 0.0003, before, "SH") == pytest.approx((5.0, 0.0, 0.1))
    assert fee_parts("buy", 10.0, 1000, 0.0003, after, "SH") == pytest.approx((5.0, 0.0, 0.1))


def test_stamp_duty_became_sell_only_on_2008_09_19() -> None:
    assert ashare.stamp_duty_rate("buy", date(2008, 9, 18)) == 0.001
    assert ashare.stamp_duty_rate("buy", date(2008, 9, 19)) == 0.0
    assert ashare.stamp_duty_rate("sell", date(2008, 9, 19)) == 0.001


def test_transfer_fee_halves_on_2022_04_29() -> None:
    # 10,000 shares at 50 = 500,000 CNY on SZSE: commission 150, stamp duty 500 (0.1 %).
    assert fee_parts("sell", 50.0, 10_000, 0.0003, date(2022, 4, 28), "SZ") == pytest.approx(
        (150.0, 500.0, 10.0))  # 0.002 %
    assert fee_parts("sell", 50.0, 10_000, 0.0003, date(2022, 4, 29), "SZ") == pytest.approx(
        (150.0, 500.0, 5.0))  # 0.001 %


def test_transfer_fee_before_2015_08_01_was_per_share_on_sse() -> None:
    # SSE: 0.3 per mille of par (1 CNY a share) = 0.0003 per share; SZSE 0.0255 per mille.
    assert fee_parts("buy", 10.0, 1000, 0.0003, date(2015, 7, 31), "SH")[2] == pytest.approx(0.3)
    assert fee_parts("buy", 10.0, 1000, 0.0003, date(2015, 7, 31), "SZ")[2] == pytest.approx(
        0.255)
    assert fee_parts("buy", 10.0, 1000, 0.0003, date(2015, 8, 3), "SH")[2] == pytest.approx(0.2)
    assert fee_parts("buy", 10.0, 1000, 0.0003, date(2015, 8, 3), "SZ")[2] == pytest.approx(0.2)


def test_fee_reads_the_shanghai_date_of_the_fill() -> None:
    # 2023-08-28 00:00 in Shanghai is still 08-27 in UTC: the new stamp duty applies.
    ts = cst("2023-08-28 00:00")
    assert datetime.fromtimestamp(ts / 1000, timezone.utc).day == 27
    assert fee("sell", 10.0, 1000, 0.0003, ts, "SH") == pytest.approx(10.1)
    assert fee("sell", 10.0, 1000, 0.0003, cst("2023-08-25 14:00"), "SH") == pytest.approx(15.1)


# --- the csv source reads YYYYMMDD --------------------------------------------------------------


def _csv_bars(path: Path, options: dict[str, object]) -> tuple[list, dict]:
    src = build(CsvSource, {"path": str(path), **options})
    src.setup(RunInfo("t", "backtest", "600519.SH", 1.0, path.parent))
    return list(src.events()), src.stats()


def test_csv_reads_yyyymmdd_dates_as_utc_midnight(tmp_path: Path) -> None:
    text = (",ts_code,trade_date,open,high,low,close,pre_close,vol\n"
            "2,600519.SH,20190102,1,2,0.5,1.5,1,10\n"
            "1,600519.SH,2019013x,1,2,0.5,1.5,1,10\n"
            "0,600519.SH,20190103,1,2,0.5,1.5,1,10\n")
    p = tmp_path / "a.csv"
    p.write_text(text)
    for options in ({"columns": {"ts": "trade_date"}},
                    {"columns": {"ts": "trade_date"}, "ts_unit": "yyyymmdd"}):
        bars, stats = _csv_bars(p, options)
        assert [b.ts for b in bars] == [utc_midnight("2019-01-02"), utc_midnight("2019-01-03")]
        assert stats == {"rows": 3, "malformed_rows": 1, "ts_unit": "yyyymmdd"}
    # The same dates written as ISO give the same stamps.
    iso = tmp_path / "b.csv"
    iso.write_text("date,open,high,low,close,volume\n2019-01-02,1,2,0.5,1.5,10\n")
    assert _csv_bars(iso, {})[0][0].ts == utc_midnight("2019-01-02")
    # Epoch seconds still read as seconds.
    sec = tmp_path / "c.csv"
    sec.write_text("ts,open,high,low,close,volume\n1546387200,1,2,0.5,1.5,10\n")
    assert _csv_bars(sec, {})[0][0].ts == utc_midnight("2019-01-02")
