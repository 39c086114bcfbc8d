"""The store's schema: declared once, created and migrated by sqlite-utils, in one transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gridkit.core.errors import DataError
from gridkit.plugins.stores import SqliteStore
from gridkit.runtime.context import RunInfo
from gridkit.runtime.store_schema import (
    APPLICATION_ID,
    MEMORY_DDL,
    SCHEMA_VERSION,
    TABLES,
    migrate,
    render_ddl,
)
from helpers import STORE_V1

V1 = STORE_V1 + """
INSERT INTO orders (run_id, order_id, ts, status) VALUES (1, 7, 1000, 'requested');
"""


def _store(path: Path | str) -> SqliteStore:
    store = SqliteStore(SqliteStore.Config(path=str(path)))
    store.setup(RunInfo(name="t", mode="backtest", symbol="BTC/USDT", capital=1000.0,
                        base_dir=Path(".")))
    return store


def _shape(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every table's columns (name, type, default, pk), foreign keys and indexes."""
    out = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                "ORDER BY name"):
        out[name] = (
            [(r[1], r[2].upper().replace("FLOAT", "REAL"), r[4], r[5])
             for r in conn.execute(f"PRAGMA table_info({name})")],
            sorted((r[3], r[2], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({name})")),
            sorted(r[1] for r in conn.execute(f"PRAGMA index_list({name})")))
    return out


def test_the_in_memory_ddl_is_what_sqlite_utils_renders() -> None:
    """MEMORY_DDL is sqlite-utils' own text for TABLES (regenerate it with ``python -m
    gridkit.runtime.store_schema`` when a table changes)."""
    assert render_ddl() == MEMORY_DDL


def test_a_new_file_store_and_an_in_memory_one_have_one_schema(tmp_path: Path) -> None:
    f, m = _store(tmp_path / "s.db"), _store(":memory:")
    try:
        assert f.migrated_from is None
        sql = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        assert f.db.execute(sql).fetchall() == m.db.execute(sql).fetchall()
        for conn in (f.db, m.db):
            assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert set(_shape(f.db)) == {t.name for t in TABLES}
        fks = _shape(f.db)["fills"][1]
        assert fks == [("run_id", "runs", "id")]  # (Datasette links rows to their run)
    finally:
        f.close()
        m.close()


def test_a_version_1_store_is_migrated_to_the_schema_keeping_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1)
    store = _store(db)
    try:
        assert store.migrated_from == 1
        fresh = sqlite3.connect(":memory:")
        migrate(fresh)
        assert _shape(store.db) == _shape(fresh)
        assert store.db.execute("SELECT name, status, resumed FROM runs").fetchall() == [
            ("old", "finished", 0)]
        # the old integer order ids are text now, as every order id is
        assert store.db.execute("SELECT order_id, typeof(order_id), ts FROM orders"
                                ).fetchall() == [("7", "text", 1000)]
    finally:
        store.close()
    # and it is current now: opened again, nothing is migrated
    again = _store(db)
    assert again.migrated_from is None
    again.close()


def test_a_version_2_store_gains_the_audit_table(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    ddl = MEMORY_DDL[:MEMORY_DDL.index('CREATE TABLE "audit"')]
    with sqlite3.connect(db) as conn:
        conn.executescript(f"{ddl}PRAGMA application_id = {APPLICATION_ID};"
                           "PRAGMA user_version = 2;")
    store = _store(db)
    try:
        assert store.migrated_from == 2
        assert "audit" in _shape(store.db)
    finally:
        store.close()


def test_a_migration_that_fails_half_way_leaves_the_file_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables rebuilt and columns added, then the process fails before the end: the file holds
    the old schema and its rows, untouched, and the next open migrates it whole."""
    import sqlite_utils.db

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1)
    with sqlite3.connect(db) as conn:
        before = _shape(conn)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_utils.db.Table, "create_index", fail)
    with pytest.raises(DataError, match="not a usable SQLite database: disk I/O error"):
        _store(db)
    with sqlite3.connect(db) as conn:
        assert _shape(conn) == before
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
    monkeypatch.undo()
    store = _store(db)
    assert store.migrated_from == 1
    store.close()


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(f"{MEMORY_DDL}PRAGMA application_id = {APPLICATION_ID};"
                           f"PRAGMA user_version = {SCHEMA_VERSION + 1};")
    before = db.read_bytes()
    with pytest.raises(DataError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        _store(db)
    assert db.read_bytes() == before
