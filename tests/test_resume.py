"""Resume: a backtest stopped at any point (SIGINT, SIGTERM, SIGKILL) and resumed ends exactly
as a run straight through — every fill, the final equity to the last bit (DESIGN.md §11 rule 4).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridkit import Context, Monitor, hookimpl
from helpers import STORE_V1

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"
GRIDKIT = [sys.executable, "-m", "gridkit.cli"]


def gridkit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*GRIDKIT, *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"gridkit {' '.join(args)} -> {out.returncode}: {out.stderr}")
    return out


def outcome(db: Path) -> tuple[list[tuple], dict]:
    """The last run's fills, in order, and its summary."""
    conn = sqlite3.connect(db)
    run_id, summary = conn.execute("SELECT id, summary FROM runs ORDER BY id DESC").fetchone()
    fills = conn.execute("SELECT order_id, ts, side, price, qty, fee FROM fills WHERE run_id = ? "
                         "ORDER BY rowid", (run_id,)).fetchall()
    conn.close()
    return fills, json.loads(summary)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple], dict]:
    db = tmp_path_factory.mktemp("straight") / "run.db"
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet", "--json")
    return outcome(db)


def _same(got: tuple[list[tuple], dict], want: tuple[list[tuple], dict],
          same_run: bool = True) -> None:
    fills, summary = got
    assert summary["status"] == "finished"
    if same_run:
        assert fills == want[0]  # every fill, with its client order id
    else:  # started afresh after a kill before the first commit: a new run key, same sequence
        assert [(f[0].split("-", 1)[1], *f[1:]) for f in fills] == [
            (f[0].split("-", 1)[1], *f[1:]) for f in want[0]]
    for key in ("final_equity", "final_cash", "final_base", "realized_profit", "fees_paid",
                "max_drawdown", "orders_placed", "bars_seen", "buy_fills", "sell_fills"):
        assert summary[key] == want[1][key], key  # to the last bit
    assert summary["unreconciled_orders"] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_resume_finishes_identically(
        tmp_path: Path, straight: tuple[list[tuple], dict], sig: signal.Signals) -> None:
    db = tmp_path / "run.db"
    proc = subprocess.Popen([*GRIDKIT, "run", str(EXAMPLE), "--db", str(db), "--quiet", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait for the run to start trading, then stop it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT COUNT(*) FROM state").fetchone()[0]:
                        break
                except sqlite3.OperationalError:
                    pass
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "stopped" and 0 < summary["bars_seen"] < 42915
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "stopped"
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet", "--resume")
    _same(outcome(db), straight)


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_random_points_then_resume_ends_identically(
        tmp_path: Path, straight: tuple[list[tuple], dict], seed: int) -> None:
    rng = random.Random(seed)
    db = tmp_path / "run.db"
    args = ["run", str(EXAMPLE), "--db", str(db), "--quiet"]
    kills = 0
    resume = False
    afresh = False
    for _ in range(6):
        proc = subprocess.Popen([*GRIDKIT, *args, *(["--resume"] if resume else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 2:
            time.sleep(rng.uniform(0.2, 1.6))
            proc.kill()
            kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0 or (proc.returncode == 2 and "finished; there is nothing to "
                                                               "resume" in err):
            break  # (killed after its last commit: the run had finished)
        if proc.returncode == -signal.SIGKILL:
            # A kill before the first commit leaves nothing to resume: start again.
            has_state = False
            if db.exists():
                with sqlite3.connect(db) as conn:
                    try:
                        has_state = bool(conn.execute("SELECT COUNT(*) FROM state "
                                                      "WHERE run_id = (SELECT MAX(id) FROM "
                                                      "runs)").fetchone()[0])
                    except sqlite3.OperationalError:
                        has_state = False
            resume = has_state
            afresh = afresh or (not has_state and db.exists())
            continue
        raise AssertionError(f"exit {proc.returncode}: {err}")
    else:
        raise AssertionError("the run never finished")
    _same(outcome(db), straight, same_run=not afresh)


def test_resume_refuses_a_finished_run_and_another_pipeline(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet")
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--resume", check=False)
    assert out.returncode == 2 and "finished; there is nothing to resume" in out.stderr
    assert out.stderr.count("\n") == 1  # one line, no traceback
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'stopped'")
    other = tmp_path / "other.toml"
    other.write_text(EXAMPLE.read_text().replace("grids = 30", "grids = 31"))
    (tmp_path / "data").symlink_to(EXAMPLE.parent / "data")
    out = gridkit("run", str(other), "--db", str(db), "--resume", check=False)
    assert out.returncode == 2
    assert "strategy.grids: 30 -> 31" in out.stderr


def test_resume_refuses_a_corrupt_state_row(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'stopped'")
        conn.execute("UPDATE state SET data = X'00010203'")
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--resume", check=False)
    assert out.returncode == 2 and "saved state is corrupt" in out.stderr
    assert out.stderr.count("\n") == 1


def test_a_run_killed_before_its_first_commit_resumes_afresh(
        tmp_path: Path, straight: tuple[list[tuple], dict]) -> None:
    """Killed after its run row, before its first commit: no state and nothing journalled, so
    --resume starts it again under the same run; with journal rows but no state it refuses."""
    db = tmp_path / "run.db"
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet")
    with sqlite3.connect(db) as conn:  # as the file is when the kill comes that early
        for table in ("state", "orders", "fills", "equity", "journal"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE runs SET status = 'running', summary = NULL")
    gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet", "--resume")
    _same(outcome(db), straight)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM state")
        conn.execute("UPDATE runs SET status = 'stopped'")
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--resume", check=False)
    assert out.returncode == 2 and "saved no state to resume from" in out.stderr


def test_resume_needs_a_store_file() -> None:
    out = gridkit("run", str(EXAMPLE), "--resume", check=False)
    assert out.returncode == 2 and "--resume needs a store file" in out.stderr


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    before = db.read_bytes()
    out = gridkit("run", str(EXAMPLE), "--db", str(db), check=False)
    assert out.returncode == 2
    assert f"store {db} belongs to another program (tables: customers)" in out.stderr
    assert db.read_bytes() == before


def test_an_older_gridkit_store_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the schema of gridkit 0.1's store
        conn.executescript(STORE_V1)
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--json", "--quiet")
    summary = json.loads(out.stdout)
    assert summary["components"]["store"]["migrated_from_schema"] == 1
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM runs ORDER BY id")] == [
            "old", "btc-static-grid"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


if os.name != "posix":  # pragma: no cover
    pytestmark = pytest.mark.skip("signals are POSIX")


class FeatureLog(Monitor):
    """Keeps every accepted bar's feature values (a test's window into the run)."""

    name = "feature-log"
    log: list[str] = []

    def on_event(self, ctx: Context) -> None:
        FeatureLog.log.append(json.dumps(ctx.features))


def test_fused_features_resume_exactly(tmp_path: Path, gridkit_host: Any) -> None:
    """The dynamic example with its features fused (their state in compiled arrays), stopped
    half way and resumed: every bar's feature values, and every trade, equal a run straight
    through — the fused state is restored, not warmed up again."""
    import os

    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(FeatureLog)

    gridkit_host.register(Plugin, "feature-log")
    text = (EXAMPLE.parent / "dynamic.toml").read_text().replace(
        "capital = 10000", 'capital = 10000\nfuse_features = "on"') + (
        '\n[[monitors]]\nuse = "feature-log"\n')

    def build(db: str) -> Any:
        config = parse_pipeline(text, base_dir=EXAMPLE.parent)
        return build_pipeline(config, gridkit_host, store_path=str(tmp_path / db))

    FeatureLog.log = []
    whole = run_pipeline(build("a.db"))
    straight = FeatureLog.log
    assert whole["features_fused"]
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 20_000 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    FeatureLog.log = []
    first = run_pipeline(build("b.db"), stop)
    assert first["status"] == "stopped" and first["bars_seen"] < whole["bars_seen"]
    resumed = run_pipeline(build("b.db"), resume=True)
    assert FeatureLog.log == straight
    assert resumed["final_equity"] == whole["final_equity"]
    assert outcome(tmp_path / "b.db")[0] == outcome(tmp_path / "a.db")[0]


def test_a_store_whose_creation_was_cut_short_is_completed(tmp_path: Path) -> None:
    """A kill while an earlier version created the schema left some of gridkit's tables and
    no mark: that is still gridkit's file, not another program's."""
    db = tmp_path / "run.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, mode TEXT, "
                     "symbol TEXT, capital FLOAT, status TEXT, started FLOAT, finished FLOAT, "
                     "config TEXT, summary TEXT, error TEXT, run_key TEXT, "
                     "resumed INTEGER DEFAULT 0)")
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet", "--json")
    assert json.loads(out.stdout)["status"] == "finished"


def test_a_portfolio_stopped_mid_run_resumes_identically(tmp_path: Path) -> None:
    """Several lanes: each lane skips exactly the events it had handled (the merge of the
    lanes reads one event ahead on every lane, which must not count as taken)."""
    import os

    from gridkit.cli import _load
    from gridkit.runtime.engine import run_pipeline

    portfolio = EXAMPLE.parent / "portfolio.toml"
    whole = run_pipeline(_load(str(portfolio), str(tmp_path / "a.db")))
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 20_000 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)  # the engine's handler: stop after the event

    first = run_pipeline(_load(str(portfolio), str(tmp_path / "b.db")), stop)
    assert first["status"] == "stopped" and first["bars_seen"] < whole["bars_seen"]
    again = run_pipeline(_load(str(portfolio), str(tmp_path / "b.db")), resume=True)
    for key in ("bars_seen", "bars_accepted", "final_equity", "final_cash", "fees_paid",
                "orders_placed", "orders_rejected", "dropped_by"):
        assert again[key] == whole[key], key
    for sym, lane in whole["symbols"].items():
        assert again["symbols"][sym] == lane, sym
    assert outcome(tmp_path / "b.db")[0] == outcome(tmp_path / "a.db")[0]
