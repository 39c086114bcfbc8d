"""The run store's schema, declared once: tables, columns and what they hold, for sqlite-utils
to create and migrate and for Datasette to describe.

:data:`TABLES` is the one declaration. :func:`migrate` brings a store file to it through
sqlite-utils (``create_table(..., transform=True)``: new tables created, missing columns
added, changed types and defaults rebuilt, foreign keys added), in one transaction, so a
process killed half way leaves the file as it was. An in-memory store, which keeps nothing
and is made for every backtest, runs :data:`MEMORY_DDL` instead: the statements sqlite-utils
renders from :data:`TABLES`, kept verbatim here because importing sqlite-utils also imports
pandas when it is installed (about 0.36 s, a third of the example's whole run). A test holds
the two to the same text; ``python -m gridkit.runtime.store_schema`` prints it afresh.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

#: ``PRAGMA application_id`` of a gridkit store: "grkt".
APPLICATION_ID = 0x67726B74
#: ``PRAGMA user_version``: the schema's number. 0 with gridkit's run tables is version 1.
SCHEMA_VERSION = 3


@frozen
class Column:
    """A column: its name, Python type (sqlite-utils maps it to SQL), what it holds, and its
    default."""

    name: str
    type: type
    doc: str
    default: Any = None


@frozen
class Table:
    """A table of the store: its columns in order, primary key, indexes and description."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    pk: str | None = None
    #: Column tuples to index (named ``idx_<table>_<columns>``, sqlite-utils' way).
    indexes: tuple[tuple[str, ...], ...] = ()

    def create_args(self) -> dict[str, Any]:
        """The arguments of sqlite-utils' ``create_table`` for this table."""
        fks = [("run_id", "runs", "id")] if self.name != "runs" and any(
            c.name == "run_id" for c in self.columns) else []
        return {"columns": {c.name: c.type for c in self.columns}, "pk": self.pk,
                "foreign_keys": fks,
                "defaults": {c.name: c.default for c in self.columns if c.default is not None},
                "column_order": [c.name for c in self.columns]}


def _run(doc: str = "The run.") -> Column:
    return Column("run_id", int, doc)


#: Every table of a store, in creation order. Every row carries its run's id, so runs can
#: share one file.
TABLES: tuple[Table, ...] = (
    Table("runs", "One row per run: what ran, how it ended, its configuration and summary.", (
        Column("id", int, "Run number, as gridkit runs and --run name it."),
        Column("name", str, "[pipeline] name."),
        Column("mode", str, "backtest, paper or live."),
        Column("symbol", str, "The symbols traded, comma-separated."),
        Column("capital", float, "Starting capital."),
        Column("status", str, "running, finished, stopped or failed."),
        Column("started", float, "Start time, Unix seconds."),
        Column("finished", float, "End time, Unix seconds."),
        Column("config", str, "The pipeline file as read (JSON)."),
        Column("summary", str, "The run summary (JSON)."),
        Column("error", str, "The one-line error of a failed run."),
        Column("run_key", str, "Prefix of the run's client order ids."),
        Column("resumed", int, "Times the run was resumed.", 0),
    ), pk="id"),
    Table("orders", "The order journal: one row per event of an order, first its request.", (
        _run(),
        Column("order_id", str, "Client order id."),
        Column("ts", int, "Event time, epoch ms."),
        Column("status", str, "requested, open, partial, filled, cancelled, expired or "
                              "rejected."),
        Column("side", str, "buy or sell (on the request)."),
        Column("kind", str, "limit or market (on the request)."),
        Column("price", float, "Limit price, or the fill's price."),
        Column("qty", float, "Quantity, base units."),
        Column("tag", int, "The grid cell (-1: a market order of the strategy)."),
        Column("symbol", str, "Instrument."),
        Column("reason", str, "Why it was rejected, cancelled or expired."),
    ), indexes=(("run_id", "ts"),)),
    Table("fills", "Every fill, in the order the run booked them.", (
        _run(),
        Column("order_id", str, "Client order id."),
        Column("ts", int, "Fill time, epoch ms."),
        Column("side", str, "buy or sell."),
        Column("price", float, "Fill price."),
        Column("qty", float, "Quantity, base units."),
        Column("fee", float, "Fee, in fee_currency."),
        Column("liquidity", str, "maker or taker."),
        Column("tag", int, "The grid cell."),
        Column("symbol", str, "Instrument."),
        Column("remaining", float, "What of the order is still open."),
        Column("fee_currency", str, "Currency of the fee (empty: the quote)."),
    ), indexes=(("run_id", "ts"),)),
    Table("equity", "The equity curve: the account marked after each bar.", (
        _run(),
        Column("ts", int, "Bar time, epoch ms."),
        Column("close", float, "The bar's close."),
        Column("cash", float, "Cash, quote currency."),
        Column("base", float, "Position, base units."),
        Column("equity", float, "Account equity, quote currency."),
        Column("symbol", str, "Instrument marked."),
    ), indexes=(("run_id", "ts"),)),
    Table("journal", "Other journal records: halts, pauses, funding, parameter and phase "
                     "changes.", (
        _run(),
        Column("ts", int, "Time, epoch ms."),
        Column("kind", str, "Record type."),
        Column("data", str, "Its fields (JSON)."),
    )),
    Table("state", "What a stopped run resumes from (pickled, with its SHA-256).", (
        _run(),
        Column("saved", float, "When, Unix seconds."),
        Column("digest", str, "SHA-256 of data."),
        Column("data", bytes, "The state."),
    ), pk="run_id"),
    Table("audit", "The audit log: a SHA-256 chain over order events, halts and changes "
                   "(gridkit audit verify).", (
        Column("seq", int, "Position in the chain."),
        _run(),
        Column("ts", int, "Time, epoch ms."),
        Column("kind", str, "Record type."),
        Column("entry", str, "The record as canonical JSON."),
        Column("prev", str, "Hash of the entry before."),
        Column("hash", str, "SHA-256 of prev + entry."),
    ), pk="seq"),
)
#: Made on first use by ``gridkit halt`` (:mod:`gridkit.plugins.risk.breaker`), not by a run.
HALT_REQUESTS = Table(
    "halt_requests", "Operators' gridkit halt and resume-trading requests, which a "
                     "circuit-breaker check acts on.", (
        Column("id", int, "Request number."),
        Column("requested", float, "When, Unix seconds."),
        Column("action", str, "halt or resume."),
        Column("reason", str, "The operator's reason."),
        Column("run_id", int, "The run it was made for (empty: the next one)."),
    ), pk="id")
#: Table name -> its declaration, every table a store may hold.
BY_NAME = {t.name: t for t in (*TABLES, HALT_REQUESTS)}
#: The run tables of schema version 1 (gridkit 0.1's store), which it is migrated from.
V1_TABLES = frozenset({"runs", "orders", "fills", "equity"})

#: The statements sqlite-utils renders from :data:`TABLES` (``render_ddl()``), run by an
#: in-memory store. ``tests/test_store_schema.py`` holds it to that text.
MEMORY_DDL = '''\
CREATE TABLE "runs" (
   "id" INTEGER PRIMARY KEY,
   "name" TEXT,
   "mode" TEXT,
   "symbol" TEXT,
   "capital" REAL,
   "status" TEXT,
   "started" REAL,
   "finished" REAL,
   "config" TEXT,
   "summary" TEXT,
   "error" TEXT,
   "run_key" TEXT,
   "resumed" INTEGER DEFAULT 0
);
CREATE TABLE "orders" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "order_id" TEXT,
   "ts" INTEGER,
   "status" TEXT,
   "side" TEXT,
   "kind" TEXT,
   "price" REAL,
   "qty" REAL,
   "tag" INTEGER,
   "symbol" TEXT,
   "reason" TEXT
);
CREATE INDEX "idx_orders_run_id_ts"
    ON "orders" ("run_id", "ts");
CREATE TABLE "fills" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "order_id" TEXT,
   "ts" INTEGER,
   "side" TEXT,
   "price" REAL,
   "qty" REAL,
   "fee" REAL,
   "liquidity" TEXT,
   "tag" INTEGER,
   "symbol" TEXT,
   "remaining" REAL,
   "fee_currency" TEXT
);
CREATE INDEX "idx_fills_run_id_ts"
    ON "fills" ("run_id", "ts");
CREATE TABLE "equity" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "ts" INTEGER,
   "close" REAL,
   "cash" REAL,
   "base" REAL,
   "equity" REAL,
   "symbol" TEXT
);
CREATE INDEX "idx_equity_run_id_ts"
    ON "equity" ("run_id", "ts");
CREATE TABLE "journal" (
   "run_id" INTEGER REFERENCES "runs"("id"),
   "ts" INTEGER,
   "kind" TEXT,
   "data" TEXT
);
CREATE TABLE "state" (
   "run_id" INTEGER PRIMARY KEY REFERENCES "runs"("id"),
   "saved" REAL,
   "digest" TEXT,
   "data" BLOB
);
CREATE TABLE "audit" (
   "seq" INTEGER PRIMARY KEY,
   "run_id" INTEGER REFERENCES "runs"("id"),
   "ts" INTEGER,
   "kind" TEXT,
   "entry" TEXT,
   "prev" TEXT,
   "hash" TEXT
);
'''


def is_gridkit_store(conn: Any) -> bool:
    """True if the SQLite database open on ``conn`` is a gridkit store that holds runs: it
    bears gridkit's application id, or (a store of schema version 1) gridkit's run tables."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return "runs" in tables and (app == APPLICATION_ID
                                 or (app == 0 and {"orders", "fills", "equity"} <= tables))


def migrate(conn: Any, tables: tuple[Table, ...] = TABLES) -> None:
    """Bring the database on ``conn`` to ``tables`` through sqlite-utils, in one transaction:
    create what is missing, add missing columns and foreign keys, rebuild a table whose types,
    defaults or column order differ; index; stamp gridkit's application id and version."""
    from sqlite_utils import Database

    # (no sqlite-utils plugins or pragmas on the store's own connection)
    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    with db.atomic():
        for table in tables:
            args = table.create_args()
            fks = args.pop("foreign_keys")
            existed = db[table.name].exists()
            added = [c for c in table.columns if c.default is not None and existed
                     and c.name not in db[table.name].columns_dict]
            t = db.create_table(table.name, foreign_keys=fks, transform=True, **args)
            for c in added:  # (a column added with a default holds it in the old rows too)
                conn.execute(f'UPDATE "{table.name}" SET "{c.name}" = ? WHERE "{c.name}" IS '
                             f'NULL', (c.default,))
            have = {(fk.column, fk.other_table, fk.other_column) for fk in t.foreign_keys}
            missing = [(table.name, *fk) for fk in fks if tuple(fk) not in have]
            if existed and missing:
                db.add_foreign_keys(missing)
            for columns in table.indexes:
                t.create_index(columns, if_not_exists=True)
        if tables is TABLES:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def render_ddl() -> str:
    """The statements sqlite-utils creates :data:`TABLES` with, in order (what an in-memory
    store runs, :data:`MEMORY_DDL`)."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    migrate(conn)
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
    return "".join(f"{sql};\n" for (sql,) in rows)


if __name__ == "__main__":  # pragma: no cover - regenerates MEMORY_DDL's text
    print(render_ddl(), end="")
