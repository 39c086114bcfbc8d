"""Kill tests: a live run (the ``ccxt`` executor against the local exchange) and a paper run
are killed with SIGKILL at random points and resumed with ``--resume``; afterwards the exchange,
the journal and the account agree: no order lost, none duplicated, every fill booked once.

The short version runs in the suite (``GRIDKIT_KILLS``, default 8 kills each); the long one
(50 kills each) is marked ``slow`` (``pytest -m slow``) and is ``benchmarks/kill_resume.py``.

Data: the first 2,000 one-minute candles of ``examples/data/BTC_USDT-1m.json.gz`` (real
Binance BTC/USDT, 52.6k to 57.1k) replayed as the exchange's tape, looping; the real Binance
spot exchangeInfo of ``tests/data/api_fixtures``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import pickle
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import define, field

from kill_harness import KillReport, kill_and_resume

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from gridkit.testing_exchange import ExchangeServer

REPO = Path(__file__).resolve().parents[1]
CANDLES = REPO / "examples" / "data" / "BTC_USDT-1m.json.gz"
INFO = (REPO / "tests" / "data" / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
        / "http_spot_market_exchange_info.json.gz")
START = {"USDT": 10_000.0, "BTC": 0.0}
#: Kills per run in the suite's short version (GRIDKIT_KILLS overrides).
SHORT = 8
LONG = 50
EPS = 1e-6

GRID = """
[strategy]
use = "static"
lower = 52600
upper = 57400
grids = 24
mode = "arithmetic"
qty = 0.006
"""


def live_toml(url: str) -> str:
    return f"""
[pipeline]
name = "kill-live"
mode = "live"
symbol = "BTC/USDT"
capital = 10000
[source]
use = "ccxt-stream"
exchange = "binance"
url = "{url}"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "1s"
{GRID}
[[risk]]
use = "exchange-rules"
[executor]
use = "ccxt"
exchange = "binance"
url = "{url}"
keys = "env"
poll = 1.0
backoff = 0.1
max_backoff = 1.0
[live]
on_start = "resume"
"""


def paper_toml(url: str) -> str:
    return f"""
[pipeline]
name = "kill-paper"
mode = "paper"
symbol = "BTC/USDT"
capital = 10000
[source]
use = "ccxt-stream"
exchange = "binance"
url = "{url}"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "1s"
{GRID}
[executor]
use = "paper"
maker_fee = 0.001
taker_fee = 0.001
"""


def kills_wanted(default: int) -> int:
    return int(os.environ.get("GRIDKIT_KILLS", default))


# --- the exchange ------------------------------------------------------------------------------


def tape_file(folder: Path) -> Path:
    """The first 2,000 candles, as a file: a tape that stays within the grid, looping."""
    rows = json.loads(gzip.decompress(CANDLES.read_bytes()))[:2000]
    path = folder / "candles.json"
    path.write_text(json.dumps(rows))
    return path


@contextlib.contextmanager
def local_exchange(folder: Path) -> Iterator[ExchangeServer]:
    """The local exchange trading the tape (20 candles a second), stopped at the end."""
    server = ExchangeServer(INFO, candles=tape_file(folder), candle_seconds=0.05, loop=True,
                            balances=dict(START), lifetime=None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[ExchangeServer]:
    with local_exchange(tmp_path) as server:
        yield server


# --- reading the store -------------------------------------------------------------------------


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        return list(con.execute(sql, args))


def journal_orders(db: Path) -> dict[str, list[str]]:
    """Every order id of the journal, with its statuses in the order they were written."""
    out: dict[str, list[str]] = {}
    for oid, status in rows(db, "SELECT order_id, status FROM orders ORDER BY rowid"):
        out.setdefault(oid, []).append(status)
    return out


def journal_open(db: Path) -> set[str]:
    return {oid for oid, st in journal_orders(db).items()
            if st[-1] in ("requested", "open", "partial")}


def saved_state(db: Path) -> dict[str, Any]:
    (data,) = rows(db, "SELECT data FROM state ORDER BY run_id DESC LIMIT 1")[0]
    return pickle.loads(zlib.decompress(data))  # type: ignore[no-any-return]


def ledger_open(db: Path) -> set[str]:
    return {entry[0].id for entry in saved_state(db)["ledger"]["open"]}


def fills_by_order(db: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for oid, qty in rows(db, "SELECT order_id, qty FROM fills"):
        out[oid] = out.get(oid, 0.0) + qty
    return out


def summary_of(report: KillReport) -> dict[str, Any]:
    assert report.final_code == 0, report.final_err[-3000:]
    return json.loads(report.final_out)  # type: ignore[no-any-return]


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --- live --------------------------------------------------------------------------------------


@define
class InFlight:
    """What the kills of a live run caught in the middle. ``kills``: kills that came between
    the exchange taking an order and the bot getting the answer to its request (the exchange
    counts the answers it could not deliver); ``unacked``: orders journalled (committed) but
    with no report yet when the process died, summed over the kills; ``taken``: those of them
    the exchange had taken (the user stream usually tells the bot before the REST answer
    comes, so these are rarer)."""

    kills: int = 0
    unacked: int = 0
    taken: int = 0
    by_kill: list[int] = field(factory=list)


def live_kills(exchange: ExchangeServer, tmp_path: Path, kills: int, seed: int,
               window: tuple[float, float] = (0.3, 2.5)) -> tuple[KillReport, InFlight]:
    """The live run killed ``kills`` times; order creation answered 0.15 s after the exchange
    took the order, so a kill often lands between an order being taken and its
    acknowledgement."""
    # The first creates are taken but never answered (the executor must look them up, not
    # send them twice); every later one is taken at once and answered 0.15 s later.
    exchange.fail("drop-after-take", "/api/v3/order", times=3, method="POST")
    exchange.fail("late", "/api/v3/order", times=10**9, method="POST", delay=0.15)
    pipeline = tmp_path / "live.toml"
    pipeline.write_text(live_toml(exchange.url))
    db = tmp_path / "live.db"
    env = {**os.environ, "GRIDKIT_API_KEY": exchange.api_key,
           "GRIDKIT_API_SECRET": exchange.secret}
    caught = InFlight()
    unanswered = [0]

    def between(i: int) -> None:
        if db.exists():
            unacked = {oid for oid, st in journal_orders(db).items() if st == ["requested"]}
            taken = len(unacked & {o.client_id for o in exchange.orders()})
            caught.unacked += len(unacked)
            caught.taken += taken
        time.sleep(0.2)  # the exchange finds the answer it was holding cannot be delivered
        now = exchange.counts["unanswered"]
        caught.by_kill.append(now - unanswered[0])
        caught.kills += now > unanswered[0]
        unanswered[0] = now

    def settle() -> None:
        """Freeze the market; wait until neither the exchange nor the journal changes."""
        exchange.freeze()
        last: Any = None
        since = time.monotonic()
        deadline = since + 40
        while time.monotonic() < deadline:
            now = (len(exchange.orders()), len(exchange.open_orders()), len(exchange.fills()),
                   rows(db, "SELECT count(*) FROM orders")[0][0],
                   rows(db, "SELECT count(*) FROM fills")[0][0])
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > 2.5:
                return
            time.sleep(0.1)

    report = kill_and_resume(pipeline, db, kills=kills, seed=seed, window=window, final=3.0,
                             extra=["--live", "--json"], env=env, between=between,
                             settle=settle)
    check_live(exchange, db, report)
    return report, caught


def check_live(exchange: ExchangeServer, db: Path, report: KillReport) -> None:
    summary = summary_of(report)
    assert not report.early_exits, report.early_exits
    assert summary["status"] == "stopped"
    assert rows(db, "SELECT status FROM runs")[-1][0] == "stopped"
    journal = journal_orders(db)
    ex_orders = exchange.orders()
    # (a) every order on the exchange is in the journal; no client id twice on the exchange
    cids = Counter(o.client_id for o in ex_orders)
    assert [c for c, n in cids.items() if n > 1] == []
    assert sorted(set(cids) - set(journal)) == []
    # no order requested twice in the journal
    assert [o for o, st in journal.items() if st.count("requested") > 1] == []
    # (b) the journal's open orders are the exchange's, and the ledger's
    ex_open = {o.client_id for o in exchange.open_orders()}
    assert journal_open(db) == ex_open
    assert ledger_open(db) == ex_open
    assert summary["open_orders"] == len(ex_open)
    # (c) per order, the journal's fills add up to what the exchange executed
    booked = fills_by_order(db)
    executed = {o.client_id: float(o.filled) for o in ex_orders if o.filled}
    assert set(booked) == set(executed)
    bad = {c: (booked[c], executed[c]) for c in executed
           if abs(booked[c] - executed[c]) > EPS}
    assert bad == {}
    n_fills = rows(db, "SELECT count(*) FROM fills")[0][0]
    assert n_fills == len(exchange.fills())
    # (d) the account is the exchange's balances less the starting ones
    bal = {a: float(free + locked) for a, (free, locked) in exchange.balances().items()}
    assert abs(summary["final_cash"] - summary["capital"] - (bal["USDT"] - START["USDT"])) < 1e-4
    assert abs(summary["final_base"] - (bal["BTC"] - START["BTC"])) < 1e-9
    assert summary["unreconciled_orders"] == []


def test_live_run_killed_and_resumed_agrees_with_the_exchange(exchange: ExchangeServer,
                                                              tmp_path: Path) -> None:
    report, _ = live_kills(exchange, tmp_path, kills_wanted(SHORT), seed=7)
    assert len(report.kills) == kills_wanted(SHORT)
    assert exchange.fills(), "the tape should have filled orders"


@pytest.mark.slow
def test_live_run_killed_50_times(exchange: ExchangeServer, tmp_path: Path) -> None:
    report, caught = live_kills(exchange, tmp_path, kills_wanted(LONG), seed=50)
    assert len(report.kills) >= 50
    assert caught.kills > 0


# --- paper -------------------------------------------------------------------------------------


def paper_kills(exchange: ExchangeServer, tmp_path: Path, kills: int, seed: int,
                window: tuple[float, float] = (0.3, 2.5)) -> KillReport:
    pipeline = tmp_path / "paper.toml"
    pipeline.write_text(paper_toml(exchange.url))
    db = tmp_path / "paper.db"
    report = kill_and_resume(pipeline, db, kills=kills, seed=seed, window=window, final=3.0,
                             extra=["--json"])
    check_paper(db, report)
    return report


def check_paper(db: Path, report: KillReport) -> None:
    summary = summary_of(report)
    assert not report.early_exits, report.early_exits
    assert summary["status"] == "stopped"
    journal = journal_orders(db)
    # no order id requested twice
    assert [o for o, st in journal.items() if st.count("requested") > 1] == []
    # every fill booked once: the account recomputed from the fills table is the summary's
    cash, base, fees = summary["capital"], 0.0, 0.0
    for side, price, qty, fee in rows(db, "SELECT side, price, qty, fee FROM fills"):
        sign = 1 if side == "buy" else -1
        cash -= sign * price * qty + fee
        base += sign * qty
        fees += fee
    assert abs(cash - summary["final_cash"]) < 1e-6 * max(1.0, abs(cash))
    assert abs(base - summary["final_base"]) < 1e-9
    assert abs(fees - summary["fees_paid"]) < 1e-6
    # no fill beyond its order's quantity
    qty = {oid: q for oid, q in rows(db, "SELECT order_id, qty FROM orders "
                                         "WHERE status = 'requested'")}
    over = {o: f for o, f in fills_by_order(db).items() if f > qty[o] * (1 + 1e-9)}
    assert over == {}
    # the journal's open orders are the ledger's and the paper executor's
    opened = journal_open(db)
    assert opened == ledger_open(db)
    assert summary["open_orders"] == len(opened)
    assert summary["components"]["executor"]["open_orders"] == len(opened)
    assert summary["unreconciled_orders"] == []


def test_paper_run_killed_and_resumed_keeps_its_books(exchange: ExchangeServer,
                                                      tmp_path: Path) -> None:
    report = paper_kills(exchange, tmp_path, kills_wanted(SHORT), seed=11)
    assert len(report.kills) == kills_wanted(SHORT)


@pytest.mark.slow
def test_paper_run_killed_50_times(exchange: ExchangeServer, tmp_path: Path) -> None:
    report = paper_kills(exchange, tmp_path, kills_wanted(LONG), seed=51)
    assert len(report.kills) >= 50
