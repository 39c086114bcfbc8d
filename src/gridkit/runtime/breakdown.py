"""A stored run's figures split by regime and by attention phase, from its journal.

The engine journals each change of a lane's regime label (``RegimeChanged``) and of an attention
module's phase (``PhaseChanged``). Every mark of the equity curve, and every fill, is given the
label in force *before* its time: a bar's price move and its fills happened under the label
the previous bars decided, and a change decided on a bar's close applies from the next one.
A label's profit is the sum of the equity changes from the mark before to each of its marks,
so the labels' profits add up to the run's whole change of equity.
"""

from __future__ import annotations

import bisect
import sqlite3
from typing import Any

from gridkit.runtime.runs import journal_records

#: The label of the time before a lane's first regime (no rule ready yet).
NO_LABEL = "(none)"


def regime_changes(conn: sqlite3.Connection, run_id: int) -> dict[str, list[tuple[int, str]]]:
    """Per symbol, the regime changes of the run in time order: ``[(ts, label), ...]``."""
    out: dict[str, list[tuple[int, str]]] = {}
    for ts, d in journal_records(conn, run_id, "RegimeChanged"):
        out.setdefault(str(d.get("symbol") or ""), []).append(
            (int(ts), str(d.get("label") or NO_LABEL)))
    return out


def phase_changes(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, str]]:
    """The run's attention phase changes in time order, ``[(ts, phase), ...]``, starting with
    the first phase at the run's first moment; a run with several phased modules labels each
    phase ``path: phase``."""
    rows = [(int(ts), d) for ts, d in journal_records(conn, run_id, "PhaseChanged")]
    if not rows:
        return []
    paths = {str(d.get("path")) for _, d in rows}

    def name(d: dict[str, Any], key: str) -> str:
        return str(d.get(key)) if len(paths) == 1 else f"{d.get('path')}: {d.get(key)}"

    return [(-(2**62), name(rows[0][1], "old"))] + [(ts, name(d, "new")) for ts, d in rows]


def split(marks: list[tuple[Any, ...]], fills: list[tuple[Any, ...]],
          changes: dict[str, list[tuple[int, str]]], capital: float) -> list[dict[str, Any]]:
    """Per label, in order of first appearance: bars, share of the bars, profit (equity change),
    its return on ``capital``, fills and fees. ``marks`` are ``(ts, close, base, equity,
    symbol)`` in journal order, ``fills`` ``(ts, side, price, qty, fee, symbol)``, ``changes``
    per symbol (key ``""``: every symbol) ``[(ts, label), ...]``."""
    index = {sym: ([ts for ts, _ in rows], [label for _, label in rows])
             for sym, rows in changes.items()}

    def label(ts: int, symbol: str | None) -> str:
        times, labels = index.get(symbol or "") or index.get("") or ((), ())
        i = bisect.bisect_left(times, ts) - 1  # (in force before ts)
        return labels[i] if i >= 0 else NO_LABEL

    out: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        r = out.get(name)
        if r is None:
            r = out[name] = {"label": name, "bars": 0, "profit": 0.0, "fills": 0, "fees": 0.0}
        return r

    prev = capital
    for ts, _, _, equity, symbol in marks:
        r = row(label(ts, symbol))
        r["bars"] += 1
        r["profit"] += equity - prev
        prev = equity
    for ts, _, _, _, fee, symbol in fills:
        r = row(label(ts, symbol))
        r["fills"] += 1
        r["fees"] += fee or 0.0
    total = sum(r["bars"] for r in out.values()) or 1
    for r in out.values():
        r["share"] = r["bars"] / total
        r["return_pct"] = r["profit"] / capital * 100 if capital else None
    return list(out.values())

