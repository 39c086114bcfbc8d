"""``gridkit status --db PATH``: a run as its store shows it, read-only."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_status_agrees_with_the_run_summary(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    summary = json.loads(gridkit("run", str(EXAMPLE), "--db", str(db), "--json", "-q").stdout)
    before = db.read_bytes()
    out = gridkit("status", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["status"] == "finished" and info["run"] == summary["run_id"]
    assert info["fills"] == summary["buy_fills"] + summary["sell_fills"]
    assert info["open_orders"] == summary["open_orders"] == 30
    assert info["equity"] == summary["final_equity"]
    assert db.read_bytes() == before  # read-only
    text = gridkit("status", "--db", str(db)).stdout
    assert "status       finished" in text and "open_orders  30" in text


def test_status_of_what_is_not_a_store_is_one_line(tmp_path: Path) -> None:
    out = gridkit("status", "--db", str(tmp_path / "missing.db"))
    assert out.returncode == 2 and out.stderr.strip() == (
        f"Error: store not found: {tmp_path / 'missing.db'}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    out = gridkit("status", "--db", str(other))
    assert out.returncode == 2 and "is not a gridkit store" in out.stderr
    assert out.stderr.count("\n") == 1
    text = tmp_path / "text.db"
    text.write_text("not a database " * 100)
    out = gridkit("status", "--db", str(text))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
