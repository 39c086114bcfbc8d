"""Risk parity: the same real events through a backtest and a paper run give the same risk
decisions, order for order.

The backtest reads the Binance websocket capture from its file (``binance-capture``); the paper
run streams the same capture from the local exchange (``ccxt-stream`` through ccxt's real
client; the market-data server sends the capture's messages as recorded, exchange times
included). Both fold the prints into the same 5 s bars and fill on the same prints
(``simulated-trades``), so every order the grid asks for meets the same account, the same open
orders and the same prices: each risk check must say the same thing to it in both runs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gridkit.testing_exchange import ExchangeServer, load_capture

pytest.importorskip("ccxt")

CAPTURE = Path("trades_orderbook") / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
INFO = (Path("api_fixtures") / "nautilus_trader" / "binance_http_responses"
        / "http_spot_market_exchange_info.json")

#: A grid of 4 USDT cells around the capture's price (61,756 to 61,861), with checks that
#: refuse part of what it asks for on these prints: one counts live orders, one the day's loss
#: (0.01 %, reached in the capture's last minutes), one the position.
RISK = """
[strategy]
use = "static"
lower = 61740
upper = 61880
grids = 35
qty = 0.01
[executor]
use = "simulated-trades"
maker_fee = 0.0
taker_fee = 0.0
[[risk]]
use = "concurrent-orders"
max_per_symbol = 30
[[risk]]
use = "daily-loss"
limit = 0.0001
[[risk]]
use = "position-size"
max_base = 0.3
[[risk]]
use = "drawdown"
limit = 0.5
"""


def _trades_in(capture: Path) -> int:
    messages, _ = load_capture(str(capture))
    return sum(1 for _, name, _ in messages if name.endswith("@trade"))


def _decisions(db: Path) -> list[tuple[Any, ...]]:
    """Every order row the run stored, without its id (ids name the run): when, what became of
    it (and why), side, kind, price, quantity, grid tag."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute(
            "SELECT ts, status, reason, side, kind, price, qty, tag FROM orders ORDER BY rowid"))


def _summary(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT summary FROM runs").fetchone()
    return json.loads(text)


def test_a_backtest_and_a_paper_run_make_the_same_risk_decisions(
        data_dir: Path, gridkit_run_toml: Any, tmp_path: Path) -> None:
    capture = data_dir / CAPTURE
    trades = _trades_in(capture)
    backtest_db, paper_db = tmp_path / "backtest.db", tmp_path / "paper.db"
    gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "binance-capture"
path = "{capture.as_posix()}"
streams = ["trades"]
bars = "5s"
reorder_ms = 0
{RISK}""", db=str(backtest_db))
    with ExchangeServer(data_dir / INFO, capture=capture, speed=20.0, lifetime=90.0) as s:
        gridkit_run_toml(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 100000
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "5s"
max_events = {trades}
backoff = 0.0
stall = 20.0
duration = 90.0  # a guard: the prints take 17 s at 20x
url = "{s.url}"
# ccxt keeps 1,000 trades between two reads by default: a burst of the sped-up capture
# would push prints out before the source reads them.
options = {{ tradesLimit = 100000 }}
{RISK}""", db=str(paper_db))
    backtest, paper = _decisions(backtest_db), _decisions(paper_db)
    refused = [row for row in backtest if row[1] == "rejected"]
    assert len(backtest) > 100 and len(refused) > 5, "the checks must have something to decide"
    assert {row[2].split(":")[0] for row in refused} == {
        "concurrent-orders", "daily-loss", "position-size"}
    # The backtest closes its last, unfinished bar at the end of the file; a live source
    # never sees that bar close. Everything before it is the same, order for order.
    last_bar = max(row[0] for row in backtest)
    assert paper == [row for row in backtest if row[0] < last_bar] or paper == backtest
    b, p = _summary(backtest_db), _summary(paper_db)
    assert b["events"]["trades"]["seen"] == p["events"]["trades"]["seen"] == trades
    assert p["rejected_by"] and all(b["rejected_by"].get(why, 0) >= n
                                    for why, n in p["rejected_by"].items())
