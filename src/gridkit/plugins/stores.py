"""Built-in run store: ``sqlite``, in WAL mode, written in batches.

It talks to SQLite through the standard library: it needs a schema, one insert and one update per
run and batched inserts, and importing sqlite-utils would import pandas and numpy whenever they
are installed (about a second per run, measured).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from gridkit.core.components import Store
from gridkit.core.config import at_least, option
from gridkit.core.context import RunInfo
from gridkit.core.errors import DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Fill, Order

#: The store's tables. Every row of orders, fills and equity carries the id of its run, so runs
#: can share one file.
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, name TEXT, mode TEXT, symbol TEXT, capital FLOAT, status TEXT,
    started FLOAT, finished FLOAT, config TEXT, summary TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id INTEGER REFERENCES runs(id), order_id INTEGER, ts INTEGER, status TEXT, side TEXT,
    kind TEXT, price FLOAT, qty FLOAT, tag INTEGER
);
CREATE TABLE IF NOT EXISTS fills (
    run_id INTEGER REFERENCES runs(id), order_id INTEGER, ts INTEGER, side TEXT, price FLOAT,
    qty FLOAT, fee FLOAT, liquidity TEXT, tag INTEGER
);
CREATE TABLE IF NOT EXISTS equity (
    run_id INTEGER REFERENCES runs(id), ts INTEGER, close FLOAT, cash FLOAT, base FLOAT,
    equity FLOAT
);
CREATE INDEX IF NOT EXISTS idx_orders_run_id_ts ON orders (run_id, ts);
CREATE INDEX IF NOT EXISTS idx_fills_run_id_ts ON fills (run_id, ts);
CREATE INDEX IF NOT EXISTS idx_equity_run_id_ts ON equity (run_id, ts);
"""


class SqliteStore(Store):
    """Runs, orders, fills and the equity curve in one SQLite file (``:memory:`` by default).

    Rows are buffered and written in one transaction every ``batch`` events and when the run
    ends, fails or is interrupted, so the file is always consistent: a run that stopped halfway
    keeps everything up to its last batch and is marked ``failed`` with the error.
    """

    name = "sqlite"

    @frozen
    class Config:
        path: str = option(":memory:", doc="Database file (relative to pipeline.toml's "
                                           "folder), or ':memory:' to keep nothing.")
        batch: int = option(1000, doc="Events per write transaction.", validator=at_least(1))
        equity: bool = option(True, doc="Record the equity curve (one row per bar).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.db: Any = None
        self.run_id: int | None = None
        self.path = self.config.path
        self._orders: list[tuple[Any, ...]] = []
        self._fills: list[tuple[Any, ...]] = []
        self._equity: list[tuple[Any, ...]] = []
        self._pending = 0
        self.rows_written = 0

    def setup(self, run: RunInfo) -> None:
        import sqlite3

        path = self.config.path
        if path != ":memory:":
            target = run.resolve(path)
            self.path = str(target)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(target))
            except (OSError, sqlite3.Error) as err:
                raise DataError(f"cannot open store {target}: {err}") from None
        else:
            conn = sqlite3.connect(":memory:")
        self.db = conn
        try:
            if path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise DataError(f"store {self.path} is not a usable SQLite database: {err}") from None

    def open_run(self, run: RunInfo, config: Mapping[str, Any]) -> int:
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (name, mode, symbol, capital, status, started, config) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run.name, run.mode, run.symbol, run.capital, time.time(),
                 json.dumps(config, default=str)))
        self.run_id = cursor.lastrowid
        return self.run_id  # type: ignore[return-value]

    def record_order(self, order: Order, ts: int, status: str) -> None:
        self._orders.append((self.run_id, order.id, ts, status, order.side, order.kind,
                             order.price, order.qty, order.tag))

    def record_fill(self, fill: Fill) -> None:
        self._fills.append((self.run_id, fill.order_id, fill.ts, fill.side, fill.price,
                            fill.qty, fill.fee, fill.liquidity, fill.tag))

    def record_equity(self, ts: int, close: float, cash: float, base: float,
                      equity: float) -> None:
        if self.config.equity:
            self._equity.append((self.run_id, ts, close, cash, base, equity))
        self._pending += 1
        if self._pending >= self.config.batch:
            self.flush()

    def flush(self) -> None:
        self._pending = 0
        if not (self._orders or self._fills or self._equity):
            return
        conn = self.db
        with conn:  # one transaction: all of the batch or none of it
            if self._orders:
                conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", self._orders)
            if self._fills:
                conn.executemany("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?)", self._fills)
            if self._equity:
                conn.executemany("INSERT INTO equity VALUES (?,?,?,?,?,?)", self._equity)
        self.rows_written += len(self._orders) + len(self._fills) + len(self._equity)
        self._orders, self._fills, self._equity = [], [], []

    def finish_run(self, status: str, summary: Mapping[str, Any], error: str | None) -> None:
        self.flush()
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = ?, finished = ?, summary = ?, error = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary, default=str), error, self.run_id))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def stats(self) -> dict[str, Any]:
        return {"path": self.path, "run_id": self.run_id, "rows_written": self.rows_written}


@hookimpl
def gridkit_register_stores(register: Any) -> None:
    register(SqliteStore)
