"""The audit log: a hash chain over what a run sent and heard, and its verification.

Each entry is one journal record (an order request, a cancel request, an exchange report, a
halt, a parameter or phase change) as canonical JSON — sorted keys, no spaces — holding the
run, its sequence number in the file, the time, the kind and the record's fields. Its hash is
SHA-256 of the previous entry's hash (hex) followed by the entry; the first entry of a file
follows :data:`GENESIS`. The store writes the entries in the same transaction as the journal
rows they describe (:meth:`gridkit.plugins.stores.SqliteStore.audit`), so the log is never
behind the journal, and continues one chain across the runs and resumptions of a file.

:func:`verify` walks the chain in sequence order and names the first row that breaks it: an
edited row (its hash is not that of its entry, or its columns disagree with its entry), a
deleted one (a gap in the sequence, or a row whose ``prev`` is not the hash before it) or a
reordered one (a row whose ``prev`` is another row's hash). A chain proves the order and
content of what it holds, not that nothing was cut from its end or that it was not rewritten
whole: keep its head (``gridkit audit verify`` prints it) elsewhere to anchor it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

#: The ``prev`` of a file's first entry.
GENESIS = "0" * 64


#: (one encoder for every entry: ``json.dumps`` with options makes one per call)
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def canonical(entry: Any) -> str:
    """``entry`` as canonical JSON: keys sorted, no whitespace, non-JSON values as text."""
    return _ENCODE(entry)


def entry(run: Any, seq: int, ts: Any, kind: str, data: str) -> str:
    """The canonical entry of one record, ``data`` being its fields' canonical JSON already:
    the same text as ``canonical({"run", "seq", "ts", "kind", "data"})``, put together from
    parts (the keys in sorted order) so each record's fields are encoded once, when it is
    journalled, and wait for the commit as a string."""
    return (f'{{"data":{data},"kind":{_scalar(kind)},"run":{_scalar(run)},"seq":{int(seq)},'
            f'"ts":{_scalar(ts)}}}')


def _scalar(value: Any) -> str:
    """JSON of an entry's scalar: an int or a plain name written directly (the common case,
    a third of an entry's cost through the encoder), anything else through the encoder."""
    if type(value) is int:
        return str(value)
    if type(value) is str and value.isidentifier() and value.isascii():
        return f'"{value}"'
    return _ENCODE(value)


def link(prev: str, entry: str) -> str:
    """The hash of ``entry`` chained after ``prev``: SHA-256 of their concatenation, hex."""
    return hashlib.sha256((prev + entry).encode()).hexdigest()


def verify(conn: sqlite3.Connection) -> dict[str, Any]:
    """Walk the audit chain of the store on ``conn``: ``{"entries", "head", "broken"}``, where
    ``broken`` is None for an intact chain, else one line naming the first bad row."""
    prev, expected, n = GENESIS, 1, 0
    rows = conn.execute("SELECT rowid, seq, run_id, ts, kind, entry, prev, hash FROM audit "
                        "ORDER BY seq")
    for rowid, seq, run_id, ts, kind, entry, row_prev, digest in rows:
        problem = _check(seq, expected, run_id, ts, kind, entry, row_prev, digest, prev)
        if problem is not None:
            return {"entries": n, "head": prev, "broken": f"audit row {seq} (rowid {rowid}): "
                                                          f"{problem}"}
        prev, expected, n = digest, seq + 1, n + 1
    return {"entries": n, "head": prev, "broken": None}


def _check(seq: Any, expected: int, run_id: Any, ts: Any, kind: Any, entry: Any,
           row_prev: Any, digest: Any, prev: str) -> str | None:
    if seq != expected:
        return (f"the sequence jumps from {expected - 1} to {seq}: "
                f"{seq - expected} entr{'y' if seq - expected == 1 else 'ies'} deleted")
    if not isinstance(entry, str) or link(str(row_prev), entry) != digest:
        return "edited: its hash is not that of its entry"
    if row_prev != prev:
        return (f"does not follow row {seq - 1}: that row was edited and rehashed, or rows "
                f"were deleted or reordered (its prev is not the hash before it)")
    try:
        data = json.loads(entry)
    except ValueError:
        return "edited: its entry is not JSON"
    if not isinstance(data, dict):
        return "edited: its entry is not a JSON object"
    if (data.get("seq"), data.get("run"), data.get("ts"), data.get("kind")) != (
            seq, run_id, ts, kind):
        return "edited: its columns disagree with its entry"
    return None
