"""Risk checks and the sqlite store against their contracts, plus their own rules."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gridkit import Bar, Cancelled, Fill, Order, Reject
from gridkit.plugins.risk import Drawdown, PositionSize
from gridkit.plugins.stores import SqliteStore
from gridkit.runtime.context import Context, RunInfo
from gridkit.testing import RiskCheckContract, StoreContract, build


class TestPositionSizeContract(RiskCheckContract):
    component_class = PositionSize
    options = {"max_base": 1.0}


class TestDrawdownContract(RiskCheckContract):
    component_class = Drawdown
    options = {"limit": 0.1}


class TestSqliteContract(StoreContract):
    component_class = SqliteStore
    options = {"path": "runs.db", "batch": 2}


def ctx_with(base: float, price: float, capital: float = 10_000.0) -> Context:
    ctx = Context(RunInfo("t", "backtest", "BTC/USDT", capital))
    ctx.bar = Bar(0, price, price, price, price, 1.0)
    if base:
        ctx.portfolio.apply(Fill(0, 0, "buy", base, price, 0.0))
    ctx.portfolio.mark(price)
    return ctx


def test_position_size_counts_open_buys_and_lets_sells_through() -> None:
    check = build(PositionSize, {"max_base": 1.0})
    ctx = ctx_with(base=0.5, price=100.0)
    ctx.ledger.request(Order("1", "buy", 0.4, 99.0, symbol="BTC/USDT"), 0)
    assert check.check(Order(2, "buy", 0.1, 98.0), ctx) == Order(2, "buy", 0.1, 98.0)
    refused = check.check(Order(3, "buy", 0.2, 98.0), ctx)
    assert isinstance(refused, Reject) and refused.reason == "position above max_base 1"
    assert isinstance(check.check(Order(4, "sell", 5.0, 101.0), ctx), Order)
    ctx.ledger.apply(Cancelled("1", 0))  # the open buy is cancelled: room again
    assert isinstance(check.check(Order(5, "buy", 0.5, 98.0), ctx), Order)


def test_position_size_by_share_of_equity() -> None:
    check = build(PositionSize, {"max_fraction": 0.5})
    ctx = ctx_with(base=40.0, price=100.0)  # 4,000 of 10,000 equity in base
    assert isinstance(check.check(Order(1, "buy", 10.0, 100.0), ctx), Order)  # 50%
    assert isinstance(check.check(Order(2, "buy", 10.1, 100.0), ctx), Reject)


def test_position_size_needs_a_cap() -> None:
    from gridkit.core.config import describe_fields, structure

    _, problems = structure({}, PositionSize.Config, "risk[0]")
    assert problems == ["risk[0]: at least one of max_base, max_fraction is required"]
    # Declared, not hand-checked: the listings and the docs show the group with each option.
    assert [f["one_of"] for f in describe_fields(PositionSize.Config)] == [
        [["max_base", "max_fraction"]], [["max_base", "max_fraction"]]]
    for options in ({"max_base": 1.0}, {"max_fraction": 0.5},
                    {"max_base": 1.0, "max_fraction": 0.5}):
        config, problems = structure(options, PositionSize.Config, "risk[0]")
        assert problems == [] and config is not None
    # A bad value counts as set: its own problem is the one to show.
    assert structure({"max_base": -1.0}, PositionSize.Config, "risk[0]")[1] == [
        "risk[0].max_base: must be > 0, got -1.0"]


def test_drawdown_trips_at_the_limit() -> None:
    check = build(Drawdown, {"limit": 0.1})
    ctx = ctx_with(base=100.0, price=100.0, capital=10_000.0)  # all in base
    assert check.on_bar(ctx) is None
    ctx.portfolio.mark(91.0)  # equity 9,100: 9% below the peak
    assert check.on_bar(ctx) is None
    ctx.portfolio.mark(89.0)
    reason = check.on_bar(ctx)
    assert reason is not None and "reached the limit 10.00%" in reason


def test_store_buffers_until_commit_and_finishes_with_the_summary(tmp_path: Path) -> None:
    store = build(SqliteStore, {"path": "r.db", "batch": 3})
    run = RunInfo("t", "backtest", "BTC/USDT", 1.0, tmp_path)
    store.setup(run)
    run_id, key = store.open_run(run, {"pipeline": {}})
    assert key == f"r{run_id}"
    conn = sqlite3.connect(tmp_path / "r.db")
    for ts in range(3):
        store.mark(ts, "BTC/USDT", 1.0, 1.0, 0.0, 1.0)
    assert conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 0  # buffered
    store.commit(b"state")
    assert conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 3  # one transaction
    assert conn.execute("SELECT data FROM state").fetchone()[0] == b"state"
    store.mark(3, "BTC/USDT", 1.0, 1.0, 0.0, 1.0)
    store.finish_run("finished", {"bars": 4}, None)
    store.close()
    assert conn.execute("SELECT COUNT(*) FROM equity WHERE run_id = ?", (run_id,)
                        ).fetchone()[0] == 4
    assert conn.execute("SELECT status, summary FROM runs").fetchone() == (
        "finished", '{"bars": 4}')
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_runs_share_one_database(tmp_path: Path) -> None:
    for _ in range(2):
        store = build(SqliteStore, {"path": "r.db"})
        run = RunInfo("t", "backtest", "BTC/USDT", 1.0, tmp_path)
        store.setup(run)
        store.open_run(run, {})
        store.finish_run("finished", {}, None)
        store.close()
    conn = sqlite3.connect(tmp_path / "r.db")
    assert [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")] == [1, 2]


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    from gridkit import DataError

    (tmp_path / "r.db").write_bytes(b"this is not a database, just text" * 100)
    store = build(SqliteStore, {"path": "r.db"})
    with pytest.raises(DataError, match="not a usable SQLite database"):
        store.setup(RunInfo("t", "backtest", "BTC/USDT", 1.0, tmp_path))
