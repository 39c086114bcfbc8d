"""Built-in run store: ``sqlite``, through sqlite-utils, in WAL mode, written in batches."""

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

        import sqlite_utils

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
        self.db = sqlite_utils.Database(conn)
        try:
            if path != ":memory:":
                self.db.enable_wal()
            self._create_tables()
        except sqlite3.DatabaseError as err:
            raise DataError(f"store {self.path} is not a usable SQLite database: {err}") from None

    def _create_tables(self) -> None:
        db = self.db
        db["runs"].create({
            "id": int, "name": str, "mode": str, "symbol": str, "capital": float,
            "status": str, "started": float, "finished": float, "config": str,
            "summary": str, "error": str,
        }, pk="id", if_not_exists=True)
        db["orders"].create({
            "run_id": int, "order_id": int, "ts": int, "status": str, "side": str, "kind": str,
            "price": float, "qty": float, "tag": int,
        }, foreign_keys=[("run_id", "runs", "id")], if_not_exists=True)
        db["fills"].create({
            "run_id": int, "order_id": int, "ts": int, "side": str, "price": float,
            "qty": float, "fee": float, "liquidity": str, "tag": int,
        }, foreign_keys=[("run_id", "runs", "id")], if_not_exists=True)
        db["equity"].create({
            "run_id": int, "ts": int, "close": float, "cash": float, "base": float,
            "equity": float,
        }, foreign_keys=[("run_id", "runs", "id")], if_not_exists=True)
        for table in ("orders", "fills", "equity"):
            db[table].create_index(["run_id", "ts"], if_not_exists=True)

    def open_run(self, run: RunInfo, config: Mapping[str, Any]) -> int:
        runs = self.db["runs"]  # one Table object: last_pk lives on it
        with self.db.conn:
            runs.insert({
                "name": run.name, "mode": run.mode, "symbol": run.symbol,
                "capital": run.capital, "status": "running", "started": time.time(),
                "config": json.dumps(config, default=str),
            })
        self.run_id = runs.last_pk
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
        conn = self.db.conn
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
        with self.db.conn:
            self.db["runs"].update(self.run_id, {
                "status": status, "finished": time.time(),
                "summary": json.dumps(summary, default=str), "error": error,
            })

    def close(self) -> None:
        if self.db is not None:
            self.db.conn.close()
            self.db = None

    def stats(self) -> dict[str, Any]:
        return {"path": self.path, "run_id": self.run_id, "rows_written": self.rows_written}


@hookimpl
def gridkit_register_stores(register: Any) -> None:
    register(SqliteStore)
