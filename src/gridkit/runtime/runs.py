"""The runs a store holds, read-only: for ``gridkit runs list | show | export``.

A store (:class:`~gridkit.plugins.stores.SqliteStore`) keeps every run of a file: its row in
``runs`` (status, configuration, summary once it ended) and its ``orders``, ``fills`` and
``equity`` rows. These functions read them without writing (the store is in WAL mode, so a
running bot is never blocked) through sqlite-utils, and write an export atomically: to a
temporary file beside the target, renamed over it once complete, so a failed export leaves
nothing half-written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gridkit.core.errors import DataError

#: The tables ``gridkit runs export`` writes, with their columns in order.
EXPORTS = {
    "orders": ("order_id", "ts", "status", "side", "kind", "price", "qty", "tag", "symbol",
               "reason"),
    "fills": ("order_id", "ts", "side", "price", "qty", "fee", "liquidity", "tag", "symbol",
              "remaining", "fee_currency"),
    "equity": ("ts", "symbol", "close", "cash", "base", "equity"),
}
FORMATS = ("csv", "json", "parquet")

@contextmanager
def open_store(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the gridkit store at ``path``; one DataError line if it is
    missing, not SQLite or not a gridkit store."""
    if not path.is_file():
        raise DataError(f"store not found: {path}")
    from gridkit.runtime.store_schema import is_gridkit_store

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise DataError(f"cannot open store {path}: {err}") from None
    try:
        if not is_gridkit_store(conn):
            raise DataError(f"{path} is not a gridkit store")
        yield conn
    except sqlite3.DatabaseError as err:
        raise DataError(f"store {path} is not a usable SQLite database: {err}") from None
    finally:
        conn.close()


def datasette_metadata(path: Path, conn: sqlite3.Connection) -> dict[str, Any]:
    """Datasette's metadata for the store at ``path``: what each of its tables and columns
    holds (``datasette PATH -m metadata.json``); the runs table labelled by name."""
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    from gridkit.runtime.store_schema import BY_NAME

    tables: dict[str, Any] = {}
    for table, declared in BY_NAME.items():
        if table not in present:
            continue
        have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        docs = {c.name: c.doc for c in declared.columns}
        entry: dict[str, Any] = {"description": declared.doc,
                                 "columns": {c: docs[c] for c in have if c in docs}}
        if table == "runs":
            entry["label_column"] = "name"
        elif "ts" in have:
            entry["sort_desc"] = "ts" if table != "audit" else "seq"
        tables[table] = entry
    return {"title": f"gridkit store {path.name}",
            "description": "Runs recorded by gridkit: each table below says what it holds; "
                           "gridkit runs, compare, report and audit verify read them too.",
            "databases": {path.stem: {"tables": tables}}}


def list_runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """One row per run, oldest first: id, name, mode, symbols, status, period, return and
    drawdown (from the summary of an ended run, from its equity rows while it runs)."""
    from sqlite_utils import Database

    db = Database(conn)
    return [_row(conn, r) for r in db["runs"].rows_where(order_by="id")]


def show_run(conn: sqlite3.Connection, path: Path, run_id: int | None) -> dict[str, Any]:
    """Run ``run_id`` (default: the last) whole: its row, its configuration and summary, and
    how many orders (by id), fills and marks (equity rows) it has."""
    from sqlite_utils import Database

    db = Database(conn)
    where, args = ("id = ?", [run_id]) if run_id is not None else (None, None)
    rows = list(db["runs"].rows_where(where, args, order_by="id desc", limit=1))
    if not rows:
        raise DataError(f"store {path} holds {'no run' if run_id is None else f'no run {run_id}'}")
    r = rows[0]
    out = _row(conn, r)
    out["config"] = _json(r.get("config"))
    out["summary"] = _json(r.get("summary"))
    if r.get("error"):
        out["error"] = r["error"]
    rid = [r["id"]]
    out["orders"] = conn.execute("SELECT COUNT(DISTINCT order_id) FROM orders WHERE run_id = ?",
                                 rid).fetchone()[0]
    out["fills"] = db["fills"].count_where("run_id = ?", rid)
    out["marks"] = db["equity"].count_where("run_id = ?", rid)
    return out


def export(conn: sqlite3.Connection, path: Path, run_id: int | None, table: str, fmt: str,
           out: Path) -> int:
    """Write ``table``'s rows of run ``run_id`` (default: the last) to ``out`` as ``fmt``;
    how many. Written to a temporary file and renamed: ``out`` is whole or untouched."""
    from sqlite_utils import Database

    if table not in EXPORTS:
        raise DataError(f"no table {table!r} to export (tables: {', '.join(EXPORTS)})")
    if fmt not in FORMATS:
        raise DataError(f"no format {fmt!r} (formats: {', '.join(FORMATS)})")
    rid = show_run(conn, path, run_id)["run"]
    columns = EXPORTS[table]
    rows = [tuple(r[c] for c in columns) for r in Database(conn)[table].rows_where(
        "run_id = ?", [rid], select=", ".join(columns), order_by="rowid")]
    write_atomically(out, lambda f: _WRITERS[fmt](f, columns, rows))
    return len(rows)


def journal_records(conn: sqlite3.Connection, run_id: int, kind: str
                    ) -> list[tuple[Any, dict[str, Any]]]:
    """The run's journal records of ``kind`` (``"FundingPaid"``, ``"RegimeChanged"`` ...) in
    the order they were journalled: ``[(ts, fields), ...]``; a row whose data is not a JSON
    object (another program's edit) gives empty fields."""
    out = []
    for ts, data in conn.execute("SELECT ts, data FROM journal WHERE run_id = ? AND kind = ? "
                                 "ORDER BY rowid", (run_id, kind)):
        fields = _json(data)
        out.append((ts, fields if isinstance(fields, dict) else {}))
    return out


def _row(conn: sqlite3.Connection, r: dict[str, Any]) -> dict[str, Any]:
    summary = _json(r.get("summary")) or {}
    out: dict[str, Any] = {"run": r["id"], "name": r["name"], "mode": r["mode"],
                           "symbols": r["symbol"], "status": r["status"],
                           "started": _when(r["started"]), "finished": _when(r["finished"])}
    first, last = summary.get("first_ts"), summary.get("last_ts")
    ret, dd = summary.get("return_pct"), summary.get("max_drawdown")
    if not summary:  # running, or stopped without a summary: its marks say how it stands
        first, last, ret, dd = _from_marks(conn, r["id"], r["capital"])
    out["from"] = _when(first / 1000) if isinstance(first, (int, float)) else None
    out["to"] = _when(last / 1000) if isinstance(last, (int, float)) else None
    out["return_pct"] = ret
    out["max_drawdown"] = dd
    return out


def _from_marks(conn: sqlite3.Connection, run_id: int,
                capital: float | None) -> tuple[Any, Any, Any, Any]:
    """First and last mark, return and largest drawdown of the run's equity (summed over its
    symbols' marks at each time, as the account's equity is one number)."""
    rows = conn.execute("SELECT ts, MAX(rowid), equity FROM equity WHERE run_id = ? "
                        "GROUP BY ts ORDER BY ts", (run_id,)).fetchall()
    if not rows:
        return None, None, None, None
    peak, dd = -math.inf, 0.0
    for _, _, eq in rows:
        peak = max(peak, eq)
        if peak > 0:
            dd = max(dd, (peak - eq) / peak)
    ret = (rows[-1][2] / capital - 1.0) * 100.0 if capital else None
    return rows[0][0], rows[-1][0], ret, dd


def _json(text: Any) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _when(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


def write_atomically(out: Path, write: Any) -> None:
    """Call ``write(f)`` on a temporary file beside ``out``, then rename it over ``out``: the
    file is whole or untouched; one DataError line if it cannot be written."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"cannot write {out}: no folder {folder}")
    if out.is_dir():
        raise DataError(f"cannot write {out}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
    except OSError as err:
        raise DataError(f"cannot write {out}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # (mkstemp's file is private; an export is not)
        os.replace(tmp, out)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise DataError(f"cannot write {out}: {err.strerror or err}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _csv(f: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    import io

    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.writer(text)
    w.writerow(columns)
    w.writerows(rows)
    text.flush()
    text.detach()


def _json_rows(f: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    # (NaN and infinities are not JSON: null, as a reader of the file expects)
    data = [{c: None if isinstance(v, float) and not math.isfinite(v) else v
             for c, v in zip(columns, r, strict=True)} for r in rows]
    f.write(json.dumps(data, allow_nan=False).encode())


def _parquet(f: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("parquet export needs pyarrow: pip install 'gridkit[parquet]'") from None
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    pq.write_table(table, f)


_WRITERS = {"csv": _csv, "json": _json_rows, "parquet": _parquet}
