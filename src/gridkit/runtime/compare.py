"""Several runs side by side, and the gap between each and the first, broken down.

``gridkit compare`` reads the runs from their stores (read-only, :mod:`gridkit.runtime.runs`).
The figures are each run's summary (a run without one, still running or killed, has its
equity rows' return and drawdown). The gap of a run from the first — a paper run against the
backtest of the same pipeline, say — is split the way users of grid bots ask about it:

* **fees** — what it paid in fees beyond the first run;
* **slippage** — over the fills the two runs have in common, what the run's prices cost it
  against the first run's: for each buy ``(price - first price) * qty``, for each sell
  ``(first price - price) * qty`` (positive: it did worse);
* **missed fills** — fills of the first run the run does not have, and extra ones it has.

Fills are matched by symbol, grid cell (the order's tag), side and rank: the k-th buy of a
cell in one run is matched with the k-th buy of that cell in the other, so a run that traded
the same grid on the same market lines up fill for fill whatever the order ids.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from gridkit.runtime.runs import open_store, show_run

#: The figures compared, with the summary key each comes from.
FIGURES = (("status", "status"), ("mode", "mode"), ("from", "from"), ("to", "to"),
           ("return %", "return_pct"), ("max drawdown", "max_drawdown"),
           ("final equity", "final_equity"), ("buy fills", "buy_fills"),
           ("sell fills", "sell_fills"), ("fees paid", "fees_paid"),
           ("grid profit", "grid_profit"), ("round trips", "round_trips"),
           ("sharpe", "sharpe"))


def compare(specs: list[tuple[Path, int | None]]) -> dict[str, Any]:
    """The runs of ``specs`` (store, run id or None for its last run) side by side:
    ``{"runs": [...figures...], "gaps": [...one per run after the first...]}``."""
    runs, fills = [], []
    for path, run_id in specs:
        with open_store(path) as conn:
            info = show_run(conn, path, run_id)
            runs.append(_figures(path, info))
            fills.append(_fills(conn, info["run"]))
    gaps = [_gap(runs[0], fills[0], r, f) for r, f in zip(runs[1:], fills[1:], strict=True)]
    return {"runs": runs, "gaps": gaps}


def _figures(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    summary = info.get("summary") or {}
    grid = summary.get("grid") or {}
    out: dict[str, Any] = {"store": str(path), "run": info["run"], "name": info["name"]}
    for label, key in FIGURES:
        if key in ("grid_profit", "round_trips"):
            out[label] = grid.get(key)
        elif key in info:
            out[label] = info[key]
        else:
            out[label] = summary.get(key)
    return out


def _fills(conn: sqlite3.Connection, run_id: int) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT symbol, tag, side, price, qty, fee FROM fills WHERE run_id = ? "
                        "ORDER BY rowid", (run_id,)).fetchall()


def _ranked(fills: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Each fill keyed by (symbol, tag, side, its rank among those)."""
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    out = {}
    for symbol, tag, side, price, qty, fee in fills:
        k = (symbol, tag, side)
        out[(*k, seen[k])] = (price, qty, fee)
        seen[k] += 1
    return out


def _gap(base: dict[str, Any], base_fills: list[tuple[Any, ...]], run: dict[str, Any],
         fills: list[tuple[Any, ...]]) -> dict[str, Any]:
    a, b = _ranked(base_fills), _ranked(fills)
    common = a.keys() & b.keys()
    slippage = 0.0
    for key in common:
        (pa, _, _), (pb, qb, _) = a[key], b[key]
        slippage += (pb - pa) * qb if key[2] == "buy" else (pa - pb) * qb
    missed = [a[k] for k in a.keys() - b.keys()]
    extra = [b[k] for k in b.keys() - a.keys()]

    def diff(label: str) -> float | None:
        x, y = base.get(label), run.get(label)
        return y - x if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None

    return {"run": run["run"], "against": base["run"], "return_gap_pct": diff("return %"),
            "equity_gap": diff("final equity"), "fees": diff("fees paid"),
            "slippage": slippage, "matched_fills": len(common), "missed_fills": len(missed),
            "missed_qty": sum(q for _, q, _ in missed), "extra_fills": len(extra),
            "extra_qty": sum(q for _, q, _ in extra)}
