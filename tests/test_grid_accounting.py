"""Grid accounting: what exchange grid bots report (grid profit, floating PnL, funding, fees,
total PnL, APR, round trips, buy-and-hold), computed by the kernel from fills, checked against
independent computations from the store's fills and the raw data files."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridkit
from gridkit import Context, Monitor, hookimpl
from gridkit.core.types import Fill
from gridkit.runtime.account import LINEAR, Account, Position
from gridkit.testing import run_toml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DAY_MS = 86_400_000


def static_grid(path: Path, capital: float = 1_000_000.0, extra: str = "") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
capital = {capital}
[source]
use = "freqtrade-json"
path = "{path.as_posix()}"
[strategy]
use = "static"
lower = 40000
upper = 60000
grids = 40
qty = 0.01
[executor]
use = "simulated"
maker_fee = 0.001
taker_fee = 0.002
{extra}
"""


def store_fills(db: Path) -> list[tuple[str, str, str, float, float, float]]:
    """(order id, symbol, side, price, qty, fee) of the last run's fills, in booking order."""
    with sqlite3.connect(db) as conn:
        run_id = conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        return conn.execute("SELECT order_id, symbol, side, price, qty, fee FROM fills "
                            "WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()


def stored_summary(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        return json.loads(conn.execute("SELECT summary FROM runs ORDER BY id DESC")
                          .fetchone()[0])


def fifo(fills: list[tuple[str, str, str, float, float, float]]
         ) -> dict[str, tuple[float, int, list[list[float]]]]:
    """Per symbol: FIFO realized profit after fees, closing orders, open lots ([signed qty,
    price, fee per unit]) — written out plainly, apart from the account's code."""
    books: dict[str, tuple[list[float], set[str], deque[list[float]]]] = {}
    for oid, sym, side, price, qty, fee in fills:
        profit, closers, lots = books.setdefault(sym, ([0.0], set(), deque()))
        sign = 1.0 if side == "buy" else -1.0
        left = qty
        while left > 1e-12 and lots and (lots[0][0] > 0) != (sign > 0):
            lot = lots[0]
            take = min(left, abs(lot[0]))
            # long lot closed by a sell: (price - cost) ; short lot closed by a buy: (cost - price)
            cost = lot[1] + lot[2] if lot[0] > 0 else lot[1] - lot[2]
            profit[0] += (price - cost) * take * (1.0 if lot[0] > 0 else -1.0)
            profit[0] -= fee * take / qty
            closers.add(oid)
            lot[0] -= take * (1.0 if lot[0] > 0 else -1.0)
            left -= take
            if abs(lot[0]) <= 1e-12:
                lots.popleft()
        if left > 1e-12:
            lots.append([sign * left, price, fee / qty])
    return {sym: (p[0], len(c), list(lots)) for sym, (p, c, lots) in books.items()}


def assert_reconciles(s: dict[str, Any]) -> None:
    """total PnL == final equity - capital, to 1e-9 of the capital; the parts add up; the
    symbols add up to the run."""
    g = s["grid"]
    scale = max(abs(s["capital"]), abs(s["final_equity"]))
    assert abs(g["total_pnl"] - (s["final_equity"] - s["capital"])) <= 1e-9 * scale
    assert g["total_pnl"] == pytest.approx(
        g["grid_profit"] + g["floating_pnl"] + g["funding"] - g["other_fees"], abs=1e-9)
    assert g["funding"] == -s["funding_paid"]
    assert g["fees"] + g["other_fees"] == pytest.approx(s["fees_paid"], rel=1e-12)
    lanes = [lane["grid"] for lane in s["symbols"].values()]
    for key in ("grid_profit", "floating_pnl", "funding", "fees", "other_fees", "total_pnl"):
        assert sum(lane[key] for lane in lanes) == pytest.approx(g[key], rel=1e-12, abs=1e-9)
    assert sum(lane["round_trips"] for lane in lanes) == g["round_trips"]


# --- (a) grid profit = FIFO round trips of the store's fills; (b) the identity --------------


def test_static_grid_profit_is_the_fifo_round_trips_of_the_stored_fills(
        btc_1m: Path, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    s = run_toml(static_grid(btc_1m), db=str(db))
    fills = store_fills(db)
    assert len(fills) > 500 and all(f[1] == "BTC/USDT" for f in fills)
    profit, trips, lots = fifo(fills)["BTC/USDT"]
    g = s["grid"]
    assert g["round_trips"] == trips > 200
    assert g["grid_profit"] == pytest.approx(profit, rel=1e-9)
    assert g["avg_round_trip_profit"] == pytest.approx(profit / trips, rel=1e-9)
    # Floating: the open lots at the last close against their cost, buy fees included.
    last = s["final_price"]
    floating = sum(q * (last - (price + fee)) for q, price, fee in lots)
    assert g["floating_pnl"] == pytest.approx(floating, rel=1e-9)
    assert sum(q for q, _, _ in lots) == pytest.approx(s["final_base"], abs=1e-9)
    assert_reconciles(s)
    # The store keeps the same figures (the summary column, JSON).
    assert stored_summary(db)["grid"] == json.loads(json.dumps(s["grid"]))
    # The strategy's own cell-based figure stays, beside it.
    cells = s["components"]["strategy"]
    assert g["strategy_grid_profit"] == cells["grid_profit"] == s["symbols"]["BTC/USDT"][
        "grid_profit"]
    # Cells do not count the sells of the inventory bought at market at the start; FIFO does.
    assert g["round_trips"] >= cells["round_trips"]


def test_fifo_closes_the_oldest_lot_first() -> None:
    acct = Account(10_000.0, "USDT")
    pos = acct.add(Position("X/USDT"))
    acct.apply(Fill("a", 0, "buy", 1.0, 100.0, 0.1), "X/USDT")
    acct.apply(Fill("b", 1, "buy", 1.0, 110.0, 0.11), "X/USDT")
    acct.apply(Fill("c", 2, "sell", 1.0, 120.0, 0.12), "X/USDT")
    # The 100 lot closes (not the average 105, not the last 110): 20 less both fees.
    assert pos.grid_profit == pytest.approx(20.0 - 0.1 - 0.12)
    assert [tuple(lot) for lot in pos.lots] == [(1.0, pytest.approx(110.11))]
    assert pos.round_trips == 1
    acct.mark(pos, 90.0)
    assert pos.floating() == pytest.approx(90.0 - 110.11)
    assert acct.equity - acct.capital == pytest.approx(pos.grid_profit + pos.floating())


def test_shorts_close_fifo_and_a_fill_can_close_and_open() -> None:
    acct = Account(10_000.0, "USDT")
    pos = acct.add(Position("X/USDT:USDT", LINEAR, leverage=5))
    acct.apply(Fill("a", 0, "sell", 1.0, 100.0, 0.0), "X/USDT:USDT")
    acct.apply(Fill("b", 1, "sell", 1.0, 90.0, 0.0), "X/USDT:USDT")
    acct.apply(Fill("c", 2, "buy", 3.0, 80.0, 0.3), "X/USDT:USDT")  # closes 2, opens 1 long
    assert pos.grid_profit == pytest.approx(20.0 + 10.0 - 0.2)
    assert [tuple(lot) for lot in pos.lots] == [(1.0, pytest.approx(80.1))]
    assert pos.round_trips == 1
    acct.mark(pos, 85.0)
    assert acct.equity - acct.capital == pytest.approx(pos.grid_profit + pos.floating())


def test_a_partly_filled_closing_order_is_one_round_trip() -> None:
    acct = Account(10_000.0, "USDT")
    pos = acct.add(Position("X/USDT"))
    acct.apply(Fill("a", 0, "buy", 2.0, 100.0, 0.0), "X/USDT")
    acct.apply(Fill("b", 1, "sell", 0.5, 110.0, 0.0, remaining=1.5), "X/USDT")
    acct.apply(Fill("b", 2, "sell", 1.5, 111.0, 0.0), "X/USDT")
    assert pos.round_trips == 1 and not pos.lots
    assert pos.grid_profit == pytest.approx(5.0 + 16.5)


def test_portfolio_figures_per_symbol_add_up_and_reconcile(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    from gridkit.cli import _load
    from gridkit.runtime.engine import run_pipeline

    s = run_pipeline(_load(str(EXAMPLES / "portfolio.toml"), str(db)))
    assert list(s["symbols"]) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert_reconciles(s)
    books = fifo(store_fills(db))
    for sym, lane in s["symbols"].items():
        profit, trips, _ = books[sym]
        assert lane["grid"]["grid_profit"] == pytest.approx(profit, rel=1e-9), sym
        assert lane["grid"]["round_trips"] == trips, sym
    # The benchmark of a portfolio: the capital split evenly, so the mean of the symbols'.
    bh = [lane["grid"]["buy_hold_return"] for lane in s["symbols"].values()]
    assert s["grid"]["buy_hold_return"] == pytest.approx(sum(bh) / 3, rel=1e-12)


# --- (c) buy and hold ----------------------------------------------------------------------


def test_buy_and_hold_is_first_and_last_close_of_the_data(btc_1m: Path) -> None:
    rows = json.loads(btc_1m.read_text())
    first, last = float(rows[0][4]), float(rows[-1][4])
    s = run_toml(static_grid(btc_1m))
    assert s["bars_dropped"] == 0
    g, lane = s["grid"], s["symbols"]["BTC/USDT"]["grid"]
    assert lane["first_price"] == first and lane["last_price"] == last
    assert g["buy_hold_return"] == pytest.approx(last / first - 1.0, rel=1e-12)
    assert g["buy_hold_return"] < -0.25  # the month of the May 2021 crash
    assert g["total_return"] == pytest.approx(
        (s["final_equity"] - s["capital"]) / s["capital"], rel=1e-9)
    assert g["excess_return"] == pytest.approx(g["total_return"] - (last / first - 1.0),
                                               rel=1e-12)


# --- (d) a neutral perpetual grid with funding ---------------------------------------------


def _perpetual(tmp_path: Path, **changes: str) -> Path:
    text = (EXAMPLES / "perpetual.toml").read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    if not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(EXAMPLES / "data")
    (tmp_path / "p.toml").write_text(text)
    return tmp_path / "p.toml"


def test_neutral_perpetual_grid_with_real_funding(tmp_path: Path) -> None:
    from gridkit.cli import _load
    from gridkit.runtime.engine import run_pipeline

    db = tmp_path / "perp.db"
    s = run_pipeline(_load(str(_perpetual(tmp_path)), str(db)))
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    g = s["grid"]
    assert g["funding"] != 0.0 and g["funding"] == -s["funding_paid"]
    assert_reconciles(s)
    fills = store_fills(db)
    # Neutral: the upper cells sold short: some sells opened shorts that buys later closed.
    profit, trips, _ = fifo(fills)["XRP/USDT:USDT"]
    assert g["grid_profit"] == pytest.approx(profit, rel=1e-9)
    assert g["round_trips"] == trips > 10
    shorts_closed = _short_closes(fills)
    assert shorts_closed > 0
    # Wallet = capital + FIFO realized (fees included) + funding: the lots say the same as the
    # average-cost account.
    assert s["final_cash"] == pytest.approx(s["capital"] + g["grid_profit"] + g["funding"]
                                            + (g["floating_pnl"] - _unrealized(s)), rel=1e-9)


def _short_closes(fills: list[tuple]) -> int:
    """Buys that closed part of a short, replaying the signed position."""
    pos, closes = 0.0, 0
    for _, _, side, _, qty, _ in fills:
        if side == "buy" and pos < -1e-12:
            closes += 1
        pos += qty if side == "buy" else -qty
    return closes


def _unrealized(s: dict[str, Any]) -> float:
    lane = s["symbols"]["XRP/USDT:USDT"]
    return lane["position"] * (lane["price"] - lane["avg_price"])


def test_hedge_mode_and_liquidation_reconcile(tmp_path: Path) -> None:
    hedge = gridkit.run(_perpetual(tmp_path, **{"leverage = 3": 'leverage = 3\n'
                                                'position_mode = "hedge"'}))
    assert set(hedge["symbols"]["XRP/USDT:USDT"]["hedge"]) == {"long", "short"}
    assert_reconciles(hedge)
    liq = gridkit.run(_perpetual(tmp_path, **{
        "capital = 1000": "capital = 200", "leverage = 3": "leverage = 20",
        "qty = 100 ": "qty = 330 ", 'direction = "neutral"': 'direction = "long"',
        "limit = 0.3": "limit = 0.99"}))
    assert liq["halted"].startswith("liquidated")
    g = liq["grid"]
    assert g["other_fees"] > 0 and g["floating_pnl"] == 0.0
    assert abs(g["total_pnl"] - (liq["final_equity"] - liq["capital"])) <= 1e-9 * 200


# --- (e) the invariant, on random fills ----------------------------------------------------

_fill = st.tuples(st.sampled_from(["buy", "sell"]),
                  st.floats(0.001, 5.0), st.floats(10.0, 1000.0), st.floats(0.0, 0.003),
                  st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["spot", LINEAR]), fills=st.lists(_fill, min_size=1, max_size=40),
       marks=st.lists(st.floats(1.0, 2000.0), min_size=1, max_size=3),
       funding=st.lists(st.floats(-0.003, 0.003), max_size=3))
def test_fifo_realized_plus_floating_is_the_equity_change(
        kind: str, fills: list[tuple], marks: list[float], funding: list[float]) -> None:
    """For any fills (partial ones of one order too, base-asset fees on spot), realized FIFO
    profit + floating profit at any price + funding == equity - capital."""
    acct = Account(1_000_000.0, "USDT")
    sym = "X/USDT" if kind == "spot" else "X/USDT:USDT"
    pos = acct.add(Position(sym, kind, leverage=10))
    oid = 0
    for i, (side, qty, price, rate, same_order, base_fee) in enumerate(fills):
        if kind == "spot" and side == "sell":
            qty = min(qty, pos.qty)
            if qty <= 1e-9:
                continue
            base_fee = False
        oid += not same_order
        fee = qty * rate if base_fee and kind == "spot" else qty * price * rate
        acct.apply(Fill(str(oid), i, side, qty, price, fee,
                        fee_currency="X" if base_fee and kind == "spot" else ""), sym)
        if kind != "spot" and i < len(funding):
            acct.fund(sym, funding[i], price)
    for mark in marks:
        equity = acct.mark(pos, mark)
        total = pos.grid_profit + pos.floating() + acct.funding - pos.liquidation_fees
        assert total == pytest.approx(equity - acct.capital, abs=1e-7 * acct.capital)
    assert sum(q for q, _ in pos.lots) == pytest.approx(pos.qty, abs=1e-9)
    assert pos.round_trips <= oid + 1  # one per order at most (ids 0..oid)


# --- (f) APR on a run of known duration ----------------------------------------------------


def test_apr_over_one_day_of_real_bars(btc_1m: Path, tmp_path: Path) -> None:
    rows = json.loads(btc_1m.read_text())
    day = [r for r in rows if r[0] - rows[0][0] <= DAY_MS][:1441]
    assert day[-1][0] - day[0][0] == DAY_MS  # 1,441 one-minute bars: exactly one day
    path = tmp_path / "day.json"
    path.write_text(json.dumps(day))
    s = run_toml(static_grid(path, capital=100_000.0).replace(
        "lower = 40000\nupper = 60000", "lower = 53000\nupper = 57000"))
    g = s["grid"]
    assert g["duration_days"] == 1.0 and g["round_trips"] > 0
    assert g["grid_apr"] == pytest.approx(g["grid_profit"] / 100_000.0 * 365, rel=1e-12)
    assert g["total_apr"] == pytest.approx(
        (s["final_equity"] - 100_000.0) / 100_000.0 * 365, rel=1e-9)
    assert s["first_ts"] == day[0][0] and s["last_ts"] == day[-1][0]


def test_a_run_without_duration_has_no_apr(btc_1m: Path, tmp_path: Path) -> None:
    rows = json.loads(btc_1m.read_text())
    path = tmp_path / "one.json"
    path.write_text(json.dumps(rows[:1]))
    g = run_toml(static_grid(path))["grid"]
    assert g["duration_days"] == 0.0 and g["grid_apr"] is None and g["total_apr"] is None
    assert g["round_trips"] == 0 and g["avg_round_trip_profit"] is None


# --- resume: the lots survive a stop ---------------------------------------------------------


def test_a_stopped_and_resumed_run_reports_as_a_straight_one(tmp_path: Path) -> None:
    from gridkit.cli import _load
    from gridkit.runtime.engine import run_pipeline

    example = str(EXAMPLES / "pipeline.toml")
    whole = run_pipeline(_load(example, str(tmp_path / "a.db")))
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 20_000 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)  # the engine's handler: stop after the event

    first = run_pipeline(_load(example, str(tmp_path / "b.db")), stop)
    assert first["status"] == "stopped" and first["grid"]["round_trips"] > 0
    again = run_pipeline(_load(example, str(tmp_path / "b.db")), resume=True)
    assert again["resumed"] and again["grid"] == whole["grid"]
    assert again["symbols"]["BTC/USDT"]["grid"] == whole["symbols"]["BTC/USDT"]["grid"]


class StopAt(Monitor):
    """Sends the run SIGTERM once, at its ``at``-th accepted event."""

    name = "stop-at"
    at = 600
    seen = 0
    fired = False

    def on_event(self, ctx: Context) -> None:
        StopAt.seen += 1
        if StopAt.seen == StopAt.at and not StopAt.fired:
            StopAt.fired = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_perpetual_stopped_and_resumed_keeps_its_short_lots(tmp_path: Path,
                                                              gridkit_host: Any) -> None:
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(StopAt)

    gridkit_host.register(Plugin, "stop-at")
    path = _perpetual(tmp_path)
    text = path.read_text() + '\n[[monitors]]\nuse = "stop-at"\n'

    def build(db: str) -> Any:
        return build_pipeline(parse_pipeline(text, base_dir=tmp_path), gridkit_host,
                              store_path=str(tmp_path / db))

    StopAt.fired = True  # the straight run is not stopped
    whole = run_pipeline(build("a.db"))
    StopAt.seen, StopAt.fired = 0, False
    first = run_pipeline(build("b.db"))
    assert first["status"] == "stopped" and first["bars_seen"] < whole["bars_seen"]
    again = run_pipeline(build("b.db"), resume=True)
    assert again["grid"] == whole["grid"]
    assert_reconciles(again)
    assert not math.isnan(again["grid"]["floating_pnl"])
