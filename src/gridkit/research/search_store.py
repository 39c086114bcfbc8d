"""Where ``gridkit optimize`` keeps its searches: a SQLite file, one row per trial.

Tables: ``searches`` (one row per search: what it searched, as JSON, and its status),
``trials`` (one row per trial that ran: the point, its score and figures, or its error) and
``windows`` (a walk-forward search's windows: the in-sample best and its out-of-sample result). Each
trial is committed as it ends, so an interrupted search loses at most the trial it was in and
``--resume`` goes on from the last row.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from gridkit.core.errors import DataError
from gridkit.research.trials import Trial

#: "gkrs" (gridkit research store) in SQLite's application_id: another program's file is
#: refused, not written into.
APPLICATION_ID = 0x676B7273

SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY, started FLOAT, finished FLOAT, status TEXT, file TEXT,
    identity TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    search_id INTEGER REFERENCES searches(id), number INTEGER, params TEXT, score FLOAT,
    return_pct FLOAT, max_drawdown FLOAT, orders INTEGER, error TEXT, path TEXT,
    PRIMARY KEY (search_id, number)
);
CREATE TABLE IF NOT EXISTS windows (
    search_id INTEGER REFERENCES searches(id), number INTEGER, in_start INTEGER,
    in_end INTEGER, out_start INTEGER, out_end INTEGER, params TEXT, in_score FLOAT,
    out_score FLOAT, out_return_pct FLOAT, out_max_drawdown FLOAT, out_error TEXT,
    PRIMARY KEY (search_id, number)
);
"""


class SearchStore:
    """A search store at ``path`` (made if new)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise DataError(f"{self.path}: not a file")
        if not self.path.parent.is_dir():
            raise DataError(f"{self.path}: no such folder {self.path.parent}")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=10.0)
            app = self.conn.execute("PRAGMA application_id").fetchone()[0]
            tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise DataError(f"{self.path} is not a SQLite file ({err}); nothing written") \
                from None
        if app != APPLICATION_ID and tables:
            self.conn.close()
            raise DataError(f"{self.path} is not a gridkit search store (another program's "
                            f"database?); nothing written")
        with self.conn:
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.executescript(SCHEMA)

    def open_search(self, file: str, identity: dict[str, Any]) -> int:
        """Record a new search; its id."""
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO searches (started, status, file, identity) VALUES (?, ?, ?, ?)",
                (time.time(), "running", file, json.dumps(identity, sort_keys=True,
                                                          default=str)))
        return int(cur.lastrowid or 0)

    def last_search(self) -> tuple[int, str, dict[str, Any], list[Trial]] | None:
        """The newest search: its id, status, identity and trials (None: there is none)."""
        row = self.conn.execute("SELECT id, status, identity FROM searches "
                                "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        trials = [Trial(n, json.loads(params), math.nan if score is None else score, ret, dd,
                        orders, error, path or "plugin")
                  for n, params, score, ret, dd, orders, error, path in self.conn.execute(
                      "SELECT number, params, score, return_pct, max_drawdown, orders, error, "
                      "path "
                      "FROM trials WHERE search_id = ? ORDER BY number", (row[0],))]
        return int(row[0]), str(row[1]), json.loads(row[2]), trials

    def add_trial(self, search_id: int, trial: Trial) -> None:
        """Keep one trial (committed at once)."""
        score = None if math.isnan(trial.score) else trial.score
        with self.conn:
            self.conn.execute(
                "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (search_id, trial.number, json.dumps(trial.params), score, trial.return_pct,
                 trial.max_drawdown, trial.orders, trial.error, trial.path))

    def add_window(self, search_id: int, window: Any) -> None:
        """Keep one walk-forward window (:class:`~gridkit.research.walk_forward.Window`)."""
        fit, res = window.fit, window.result

        def num(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else x

        with self.conn:
            self.conn.execute(
                "INSERT INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (search_id, window.number, window.in_start, window.in_end, window.out_start,
                 window.out_end, json.dumps(fit.params) if fit else None,
                 num(fit.score) if fit else None, num(res.score) if res else None,
                 res.return_pct if res else None, res.max_drawdown if res else None,
                 res.error if res else "no in-sample trial scored"))

    def finish(self, search_id: int, status: str) -> None:
        """Mark a search ``finished`` or ``stopped``."""
        with self.conn:
            self.conn.execute("UPDATE searches SET status = ?, finished = ? WHERE id = ?",
                              (status, time.time(), search_id))

    def close(self) -> None:
        self.conn.close()


__all__ = ["APPLICATION_ID", "SearchStore"]
