"""What a run's store says about it, read-only: for ``gridkit status`` on a running or stopped
run (the store is in WAL mode, so reading never blocks the run writing it)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gridkit.core.errors import DataError


def read_status(path: Path, run_id: int | None = None) -> dict[str, Any]:
    """The state of run ``run_id`` (default: the last) in the store at ``path``."""
    from gridkit.runtime.runs import open_store

    with open_store(path) as conn:
        return _status(conn, path, run_id)


def _status(conn: sqlite3.Connection, path: Path, run_id: int | None) -> dict[str, Any]:
    where, args = ("WHERE id = ?", (run_id,)) if run_id is not None else ("", ())
    row = conn.execute(f"SELECT id, name, mode, symbol, status, started, finished, error, "
                       f"resumed FROM runs {where} ORDER BY id DESC LIMIT 1", args).fetchone()
    if row is None:
        what = f"no run {run_id}" if run_id is not None else "no run"
        raise DataError(f"store {path} holds {what}")
    rid, name, mode, symbols, status, started, finished, error, resumed = row
    out: dict[str, Any] = {"run": rid, "name": name, "mode": mode, "symbols": symbols,
                           "status": status, "started": _when(started)}
    if finished:
        out["finished"] = _when(finished)
    if resumed:
        out["resumed"] = resumed
    mark = conn.execute("SELECT ts, symbol, close, cash, equity FROM equity WHERE run_id = ? "
                        "ORDER BY rowid DESC LIMIT 1", (rid,)).fetchone()
    if mark is not None:
        ts, symbol, price, cash, equity = mark
        out.update({"last_event": _when(ts / 1000), "last_price": f"{symbol} {price:g}",
                    "cash": cash, "equity": equity})
    out["fills"] = conn.execute("SELECT COUNT(*) FROM fills WHERE run_id = ?",
                                (rid,)).fetchone()[0]
    # An order's last status row says where it stands; open ones are those not yet ended.
    last = conn.execute(
        "SELECT o.status FROM orders o JOIN (SELECT order_id, MAX(rowid) AS r FROM orders "
        "WHERE run_id = ? GROUP BY order_id) l ON o.rowid = l.r", (rid,)).fetchall()
    out["open_orders"] = sum(1 for (s,) in last if s in ("requested", "open", "partial"))
    out["orders"] = len(last)
    summary = conn.execute("SELECT summary FROM runs WHERE id = ?", (rid,)).fetchone()[0]
    if summary:
        halted = json.loads(summary).get("halted")
        if halted:
            out["halted"] = halted
    if error:
        out["error"] = error
    return out


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
