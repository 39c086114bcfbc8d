"""Built-in run store: ``sqlite``, in WAL mode; journal rows and state in one transaction.

Its schema is declared once in :mod:`gridkit.runtime.store_schema`, and sqlite-utils creates a
store file or migrates an older one in place. The hot path is batched inserts through the
standard library's ``sqlite3``. ``gridkit`` marks its files (``PRAGMA application_id``) and
numbers its schema (``PRAGMA user_version``): a file of another program is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from gridkit.core.components import Store
from gridkit.core.config import at_least, option
from gridkit.core.errors import DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Rejected
from gridkit.runtime.audit import GENESIS, canonical, entry, link
from gridkit.runtime.context import RunInfo
from gridkit.runtime.journal import Mark, OrderRequested
from gridkit.runtime.store_schema import (
    APPLICATION_ID,
    BY_NAME,
    MEMORY_DDL,
    SCHEMA_VERSION,
    V1_TABLES,
    migrate,
)

_STATUS = {Accepted: "open", Cancelled: "cancelled", Expired: "expired"}


class SqliteStore(Store):
    """Runs, the order journal, fills, the equity curve and resume state in one SQLite file.

    Rows are buffered and written in one transaction with the run's state at each commit: every
    ``batch`` events in backtests, and before every order is sent and as reports arrive in paper
    and live runs. So the file always holds a consistent point to resume from; a run that
    stopped halfway keeps everything up to its last commit.
    """

    name = "sqlite"

    @frozen
    class Config:
        path: str = option(":memory:", doc="Database file (relative to pipeline.toml's "
                                           "folder), or ':memory:' to keep nothing.")
        batch: int = option(1000, doc="Events per write transaction in backtests.",
                            validator=at_least(1))
        equity: bool = option(True, doc="Record the equity curve (one row per bar).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.db: Any = None
        self.run_id: int | None = None
        self.path = self.config.path
        self._orders: list[tuple[Any, ...]] = []
        self._fills: list[tuple[Any, ...]] = []
        self._equity: list[tuple[Any, ...]] = []
        self._journal: list[tuple[Any, ...]] = []
        #: Audit entries to chain and write with the next commit: (ts, kind, data as JSON).
        self._audit: list[tuple[Any, str, str]] = []
        #: The audit chain's last (seq, hash), read from the file when first needed.
        self._audit_head: tuple[int, str] | None = None
        self.rows_written = 0
        self.migrated_from: int | None = None
        self._keep_equity = self.config.equity
        self.durable = self.journaled = self.config.path != ":memory:"

    def snapshot(self) -> None:
        return None  # the store is where snapshots go, not what they hold

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
            self._prepare(conn)
        except sqlite3.DatabaseError as err:
            conn.close()
            self.db = None
            raise DataError(f"store {self.path} is not a usable SQLite database: {err}") from None
        except DataError:
            conn.close()
            self.db = None
            raise

    def _prepare(self, conn: Any) -> None:
        """Create, check or migrate the schema; refuse another program's database."""
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        # app 0 with only gridkit's table names: a gridkit store, or one whose creation was
        # cut short (before schema version 2 it was not one transaction)
        if app not in (0, APPLICATION_ID) or (app == 0 and not tables <= set(BY_NAME)):
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise DataError(f"store {self.path} belongs to another program (tables: {shown}); "
                            f"give gridkit a file of its own (--db or [store] path)")
        if app == APPLICATION_ID and version > SCHEMA_VERSION:
            raise DataError(f"store {self.path} has schema version {version}, newer than this "
                            f"gridkit reads ({SCHEMA_VERSION}); upgrade gridkit")
        if self.path == ":memory:":  # new and throwaway: sqlite-utils' DDL, without its import
            conn.executescript(f"BEGIN;\n{MEMORY_DDL}PRAGMA application_id = {APPLICATION_ID};\n"
                               f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
            return
        conn.execute("PRAGMA journal_mode=WAL")
        if app == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        if tables and tables >= V1_TABLES:
            self.migrated_from = version or 1  # an older gridkit store
        migrate(conn)  # (sqlite-utils: created, or migrated in place, in one transaction)

    # --- runs --------------------------------------------------------------------------------

    def open_run(self, run: RunInfo, config: Mapping[str, Any]) -> tuple[int, str]:
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (name, mode, symbol, capital, status, started, config) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run.name, run.mode, ",".join(run.symbols) or run.symbol, run.capital,
                 time.time(), json.dumps(config, default=str, sort_keys=True)))
            self.run_id = cursor.lastrowid
            # Backtests: ids that repeat run after run. Paper and live: unique on the exchange
            # too, since a client order id may not be reused among its open orders.
            key = (f"r{self.run_id}" if run.mode == "backtest"
                   else f"g{secrets.token_hex(4)}{self.run_id}")
            self.db.execute("UPDATE runs SET run_key = ? WHERE id = ?", (key, self.run_id))
        return self.run_id, key  # type: ignore[return-value]

    def resume_run(self, run: RunInfo, config: Mapping[str, Any]
                   ) -> tuple[int, str, bytes | None]:
        row = self.db.execute("SELECT id, status, config, run_key, name FROM runs "
                              "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise DataError(f"store {self.path} holds no run to resume")
        run_id, status, saved, key, name = row
        if status == "finished" and run.mode == "backtest":
            # A backtest that finished has nothing left; a paper or live run that ended (its
            # duration was up) can go on trading where it stopped.
            raise DataError(f"run {run_id} in {self.path} finished; there is nothing to "
                            f"resume (run without --resume to start a new one)")
        old = json.loads(saved or "{}")
        new = json.loads(json.dumps(config, default=str, sort_keys=True))
        # [live] is how the run starts and reports itself, not what it trades: an operator may
        # resume with another policy (on_start = "flatten", say).
        old.pop("live", None)
        new.pop("live", None)
        diff = first_difference(old, new)
        if diff is not None:
            raise DataError(f"run {run_id} in {self.path} ('{name}') was started with another "
                            f"pipeline: {diff}; resume it with the pipeline it started with")
        state = self.db.execute("SELECT digest, data FROM state WHERE run_id = ?",
                                (run_id,)).fetchone()
        data: bytes | None = None
        if state is None:
            # Killed before its first commit: journal rows are only ever committed with a
            # state, so if there are none either, nothing was sent and the run starts afresh
            # (same id and run key).
            journalled = self.db.execute(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE run_id = ?) "
                "OR EXISTS (SELECT 1 FROM fills WHERE run_id = ?)", (run_id, run_id)).fetchone()[0]
            if journalled:
                raise DataError(f"run {run_id} in {self.path} saved no state to resume from "
                                f"(it stopped before its first commit); start it again")
        else:
            digest, data = state
        if data is not None and (not isinstance(data, bytes)
                                 or hashlib.sha256(data).hexdigest() != digest):
            raise DataError(f"run {run_id} in {self.path}: the saved state is corrupt "
                            f"(checksum mismatch); it cannot be resumed")
        with self.db:
            self.db.execute("UPDATE runs SET status = 'running', resumed = resumed + 1, "
                            "finished = NULL WHERE id = ?", (run_id,))
        self.run_id = run_id
        return run_id, key, data

    # --- the journal -------------------------------------------------------------------------

    def mark(self, ts: int, symbol: str, price: float, cash: float, position: float,
             equity: float) -> None:
        """Take one point of the equity curve (the journal's fast lane for marks)."""
        if self._keep_equity:
            self._equity.append((self.run_id, ts, price, cash, position, equity, symbol))

    def write(self, record: Any) -> None:
        kind = type(record)
        rid = self.run_id
        if kind is Mark:
            self.mark(record.ts, record.symbol, record.price, record.cash, record.position,
                      record.equity)
        elif kind is Fill:
            f = record
            self._fills.append((rid, f.order_id, f.ts, f.side, f.price, f.qty, f.fee,
                                f.liquidity, f.tag, f.symbol, f.remaining, f.fee_currency))
            self._orders.append((rid, f.order_id, f.ts, "filled" if f.remaining <= 0 else
                                 "partial", f.side, None, f.price, f.qty, f.tag, f.symbol, None))
        elif kind is OrderRequested:
            o = record.order
            self._orders.append((rid, o.id, record.ts, "requested", o.side, o.kind, o.price,
                                 o.qty, o.tag, o.symbol, None))
        elif kind is Rejected:
            self._orders.append((rid, record.order_id, record.ts, "rejected", None, None, None,
                                 None, None, None, f"{record.by}: {record.reason}"))
        elif kind in _STATUS:
            self._orders.append((rid, record.order_id, record.ts, _STATUS[kind], None, None,
                                 None, None, None, None, getattr(record, "reason", None)))
        else:
            data = {k: v for k, v in _fields(record).items() if k != "ts"}
            self._journal.append((rid, getattr(record, "ts", None), kind.__name__,
                                  json.dumps(data, default=str)))

    def audit(self, ts: Any, kind: str, data: Mapping[str, Any]) -> None:
        """Append an entry to the audit log (``gridkit.runtime.audit``): chained and written
        with the journal rows of the next commit, in the same transaction."""
        # (encoded now: a string waits for the commit at no cost to the garbage collector)
        self._audit.append((ts, kind, canonical(data)))

    def commit(self, state: bytes | None = None) -> None:
        if not (self._orders or self._fills or self._equity or self._journal or self._audit
                or state is not None):
            return
        conn = self.db
        head = None
        with conn:  # one transaction: all of it or none of it
            if self._audit:
                head = self._chain(conn)
            if self._orders:
                conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                 self._orders)
            if self._fills:
                conn.executemany("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                                 self._fills)
            if self._equity:
                conn.executemany("INSERT INTO equity VALUES (?,?,?,?,?,?,?)", self._equity)
            if self._journal:
                conn.executemany("INSERT INTO journal VALUES (?,?,?,?)", self._journal)
            if state is not None:
                conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                             (self.run_id, time.time(), hashlib.sha256(state).hexdigest(),
                              state))
        self.rows_written += (len(self._orders) + len(self._fills) + len(self._equity)
                              + len(self._journal) + len(self._audit))
        self._orders, self._fills, self._equity, self._journal = [], [], [], []
        if head is not None:  # (only once the transaction holding it committed)
            self._audit_head, self._audit = head, []

    def _chain(self, conn: Any) -> tuple[int, str]:
        """Insert the queued audit entries, each hashed with the one before; the new head."""
        if self._audit_head is None:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            self._audit_head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        seq, prev = self._audit_head
        rows = []
        run = self.run_id
        for ts, kind, data in self._audit:
            seq += 1
            text = entry(run, seq, ts, kind, data)
            digest = link(prev, text)
            rows.append((seq, run, ts, kind, text, prev, digest))
            prev = digest
        conn.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?)", rows)
        return seq, prev

    def finish_run(self, status: str, summary: Mapping[str, Any], error: str | None,
                   state: bytes | None = None) -> None:
        self.commit(state)
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = ?, finished = ?, summary = ?, error = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary, default=str), error, self.run_id))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def stats(self) -> dict[str, Any]:
        out = {"path": self.path, "run_id": self.run_id, "rows_written": self.rows_written}
        if self.migrated_from is not None:
            out["migrated_from_schema"] = self.migrated_from
        return out


def _fields(record: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(record, recurse=True) if attrs.has(type(record)) else {"value": record}


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """Where two config documents first differ, as ``path: old -> new``, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            here = f"{path}.{key}" if path else str(key)
            if key not in old:
                return f"{here} was added"
            if key not in new:
                return f"{here} was removed"
            found = first_difference(old[key], new[key], here)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return f"{path} has {len(new)} entries, was {len(old)}"
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else f"{path}: {old!r} -> {new!r}"


@hookimpl
def gridkit_register_stores(register: Any) -> None:
    register(SqliteStore)
