"""The ``audit`` monitor and ``gridkit audit verify`` (issue 12): a hash chain over what a run
sent and heard, kept in the store, that names the row an edit, a deletion or a reordering
broke."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridkit.runtime.audit import GENESIS, canonical, entry, link, verify

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


def audited(folder: Path, end: str = "") -> Path:
    """The example pipeline with the audit monitor (and an earlier end, if given)."""
    text = EXAMPLE.read_text().replace('path = "', f'path = "{EXAMPLE.parent.as_posix()}/')
    if end:
        text = text.replace('mode = "backtest"', f'mode = "backtest"\nend = "{end}"', 1)
    path = folder / f"audited{end[:10]}.toml"
    path.write_text(text + '\n[[monitors]]\nuse = "audit"\n')
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("audit")
    db = folder / "run.db"
    out = gridkit("run", str(audited(folder)), "--db", str(db), "--json", "-q")
    assert out.returncode == 0, out.stderr
    return db, json.loads(out.stdout)


def copy_of(db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.db"
    out.write_bytes(db.read_bytes())
    return out


def test_every_order_event_is_chained_and_the_chain_verifies(store: tuple[Path, dict]) -> None:
    db, summary = store
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM audit GROUP BY kind"))
        order_rows = dict(conn.execute("SELECT status, COUNT(*) FROM orders GROUP BY status"))
        first = conn.execute("SELECT prev, entry, hash FROM audit ORDER BY seq LIMIT 1").fetchone()
    # one entry per journal record of an order: requested, accepted, filled
    assert kinds == {"OrderRequested": order_rows["requested"], "Accepted": order_rows["open"],
                     "Fill": order_rows["filled"] + order_rows.get("partial", 0)}
    assert kinds["Fill"] == summary["buy_fills"] + summary["sell_fills"] == 677
    assert summary["components"]["monitors[0]"] == {"entries": sum(kinds.values())}
    assert first[0] == GENESIS and first[2] == link(GENESIS, first[1])
    entry = json.loads(first[1])
    assert entry["kind"] == "OrderRequested" and entry["data"]["order"]["kind"] == "market"
    out = gridkit("audit", "verify", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"audit chain intact: {sum(kinds.values()):,} entries, head ")
    result = json.loads(gridkit("audit", "verify", "--db", str(db), "--json").stdout)
    assert result["broken"] is None and result["entries"] == sum(kinds.values())


def tamper(db: Path, sql: str) -> str:
    with sqlite3.connect(db) as conn:
        conn.executescript(sql)
    out = gridkit("audit", "verify", "--db", str(db))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    return out.stderr.strip()


def a_buy_request(db: Path) -> int:
    """The sequence number of a limit buy's request in the middle of the log."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT seq FROM audit WHERE kind = 'OrderRequested' AND "
                                "entry LIKE '%\"side\":\"buy\"%' AND seq > 30 ORDER BY seq "
                                "LIMIT 1").fetchone()[0])


def test_an_edited_row_is_named(store: tuple[Path, dict], tmp_path: Path) -> None:
    db = copy_of(store[0], tmp_path)
    seq = a_buy_request(db)
    line = tamper(db, f"UPDATE audit SET entry = replace(entry, '\"qty\":0.005', "
                      f"'\"qty\":0.5') WHERE seq = {seq}")
    assert f"audit row {seq} (rowid {seq}): edited: its hash is not that of its entry" in line


def test_an_edited_and_rehashed_row_breaks_the_next_link(store: tuple[Path, dict],
                                                         tmp_path: Path) -> None:
    db = copy_of(store[0], tmp_path)
    seq = a_buy_request(db)
    with sqlite3.connect(db) as conn:
        prev, entry = conn.execute("SELECT prev, entry FROM audit WHERE seq = ?",
                                   (seq,)).fetchone()
        forged = entry.replace('"side":"buy"', '"side":"sell"')
        assert forged != entry
        conn.execute("UPDATE audit SET entry = ?, hash = ? WHERE seq = ?",
                     (forged, link(prev, forged), seq))
    line = tamper(db, "")
    assert f"audit row {seq + 1} (rowid {seq + 1}): does not follow row {seq}" in line


def test_a_last_row_rewritten_as_other_json_is_named(store: tuple[Path, dict],
                                                     tmp_path: Path) -> None:
    """The chain's head rewritten and rehashed as JSON that is not an entry (a list): one
    line naming it, not a traceback."""
    db = copy_of(store[0], tmp_path)
    with sqlite3.connect(db) as conn:
        seq, prev = conn.execute("SELECT seq, prev FROM audit ORDER BY seq DESC LIMIT 1"
                                 ).fetchone()
        conn.execute("UPDATE audit SET entry = '[1]', hash = ? WHERE seq = ?",
                     (link(prev, "[1]"), seq))
    line = tamper(db, "")
    assert f"audit row {seq} (rowid {seq}): edited: its entry is not a JSON object" in line


def test_a_deleted_row_is_named(store: tuple[Path, dict], tmp_path: Path) -> None:
    db = copy_of(store[0], tmp_path)
    line = tamper(db, "DELETE FROM audit WHERE seq IN (100, 101)")
    assert "audit row 102 (rowid 102): the sequence jumps from 99 to 102: 2 entries deleted" \
        in line


def test_reordered_rows_are_named(store: tuple[Path, dict], tmp_path: Path) -> None:
    db = copy_of(store[0], tmp_path)
    # Two rows' contents swapped, their sequence numbers left in place
    line = tamper(db, """
        CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq IN (200, 201);
        UPDATE audit SET run_id = (SELECT run_id FROM a WHERE a.seq = 401 - audit.seq),
            ts = (SELECT ts FROM a WHERE a.seq = 401 - audit.seq),
            kind = (SELECT kind FROM a WHERE a.seq = 401 - audit.seq),
            entry = (SELECT entry FROM a WHERE a.seq = 401 - audit.seq),
            prev = (SELECT prev FROM a WHERE a.seq = 401 - audit.seq),
            hash = (SELECT hash FROM a WHERE a.seq = 401 - audit.seq)
        WHERE seq IN (200, 201);""")
    assert "audit row 200 (rowid 200): does not follow row 199" in line


def test_a_column_that_disagrees_with_its_entry_is_named(store: tuple[Path, dict],
                                                         tmp_path: Path) -> None:
    db = copy_of(store[0], tmp_path)
    line = tamper(db, "UPDATE audit SET kind = 'Cancelled' WHERE seq = 7")
    assert "audit row 7 (rowid 7): edited: its columns disagree with its entry" in line


def test_the_chain_runs_on_across_the_runs_of_a_file(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    for end in ("2021-04-25T00:00:00Z", "2021-04-27T00:00:00Z"):
        out = gridkit("run", str(audited(tmp_path, end)), "--db", str(db), "-q")
        assert out.returncode == 0, out.stderr
    with sqlite3.connect(db) as conn:
        runs = [r for (r,) in conn.execute("SELECT DISTINCT run_id FROM audit ORDER BY seq")]
        assert runs == [1, 2]
        assert verify(conn)["broken"] is None
        last_of_first = conn.execute("SELECT MAX(seq) FROM audit WHERE run_id = 1").fetchone()[0]
        head, nxt = (conn.execute("SELECT hash FROM audit WHERE seq = ?", (last_of_first,))
                     .fetchone()[0], conn.execute("SELECT prev FROM audit WHERE seq = ?",
                                                  (last_of_first + 1,)).fetchone()[0])
    assert head == nxt


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    out = gridkit("run", str(audited(tmp_path)), "-q")  # no --db: an in-memory store
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "audit needs a store that keeps a file" in out.stderr
    out = gridkit("audit", "verify", "--db", str(tmp_path / "missing.db"))
    assert out.returncode == 2 and "store not found" in out.stderr
    plain = tmp_path / "plain.db"
    assert gridkit("run", str(EXAMPLE), "--db", str(plain), "-q").returncode == 0
    out = gridkit("audit", "verify", "--db", str(plain))
    assert out.returncode == 0 and "holds no audit entries" in out.stdout


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


@given(run=st.integers(0, 2**31), seq=st.integers(1, 2**40),
       ts=st.none() | st.integers(-(2**53), 2**53), kind=st.text(min_size=1),
       data=st.dictionaries(st.text(), _VALUES, max_size=6))
def test_an_entry_put_together_is_the_canonical_json_of_the_whole(
        run: int, seq: int, ts: int | None, kind: str, data: dict) -> None:
    """The store encodes each record's fields when it is journalled and puts the entry
    together at the commit: the same text, byte for byte, as encoding the whole entry."""
    whole = canonical({"run": run, "seq": seq, "ts": ts, "kind": kind, "data": data})
    assert entry(run, seq, ts, kind, canonical(data)) == whole
