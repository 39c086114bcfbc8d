"""``gridkit optimize``: the example search offline, its store, --write-best, an interrupted
search resumed to the same trials, and bad input in one line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GRIDKIT = [sys.executable, "-m", "gridkit"]


def gridkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GRIDKIT, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT number, params, score, return_pct, max_drawdown, "
                                 "orders, error FROM trials ORDER BY search_id, number"))


def test_the_example_search_keeps_its_trials_and_writes_a_runnable_winner(
        tmp_path: Path) -> None:
    out = gridkit("optimize", str(EXAMPLES / "optimize.toml"), "--db", "s.db",
                  "--write-best", "best.toml", "--budget", "4", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["trials"] == 4 and result["written"] == "best.toml"
    assert [line.split("  ")[0] for line in out.stderr.splitlines()] == [
        f"trial {i}/4" for i in range(1, 5)]
    kept = rows(tmp_path / "s.db")
    assert [r[0] for r in kept] == [0, 1, 2, 3]
    top = result["best"]
    assert json.loads(kept[top["number"]][1]) == top["params"]
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT status FROM searches").fetchall() == [("finished",)]
    # The winner runs as it scored, from another folder.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = gridkit("run", str(tmp_path / "best.toml"), "--json", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert (summary["return_pct"], summary["max_drawdown"]) == (top["return_pct"],
                                                               top["max_drawdown"])
    text = (tmp_path / "best.toml").read_text()
    assert text.startswith("# Written by gridkit optimize optimize.toml: trial ")


def test_an_interrupted_search_resumes_to_the_trials_of_a_straight_one(tmp_path: Path) -> None:
    space = str(EXAMPLES / "optimize.toml")
    straight = gridkit("optimize", space, "--db", "straight.db", "--budget", "6", "--quiet",
                       cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen([*GRIDKIT, "optimize", space, "--db", "cut.db", "--budget", "6"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("trial 2/6"):
            os.kill(proc.pid, signal.SIGINT)  # during trial 3, or just before it
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0 and "--resume goes on" in rest
    cut = rows(tmp_path / "cut.db")
    assert 2 <= len(cut) < 6
    with sqlite3.connect(tmp_path / "cut.db") as conn:
        assert conn.execute("SELECT status FROM searches").fetchall() == [("stopped",)]
    again = gridkit("optimize", space, "--db", "cut.db", "--budget", "6", "--resume",
                    "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert rows(tmp_path / "cut.db") == rows(tmp_path / "straight.db")  # nothing lost or doubled
    done = gridkit("optimize", space, "--db", "cut.db", "--resume", cwd=tmp_path)
    assert done.returncode == 2 and "has finished" in done.stderr


def test_bad_input_is_one_line_with_status_2(tmp_path: Path) -> None:
    space = (EXAMPLES / "optimize.toml").read_text()
    (tmp_path / "pipeline.toml").write_text((EXAMPLES / "pipeline.toml").read_text()
                                            .replace('"data/', f'"{EXAMPLES.as_posix()}/data/'))
    cases = {
        "range": space.replace("low = 6, high = 40", "low = 40, high = 6"),
        "objective": space.replace('"calmar"', '"sharpe-ish"'),
        "option": space.replace('"strategy.grids"', '"strategy.gridz"'),
        "optimizer": space.replace('use = "random"', 'use = "randum"'),
        "missing": space.replace('"pipeline.toml"', '"nowhere.toml"'),
    }
    says = {
        "range": "space.strategy.grids: low 40 is above high 6",
        "objective": "objective: unknown 'sharpe-ish'",
        "option": "strategy.gridz",
        "optimizer": "randum",
        "missing": "nowhere.toml: no such file",
    }
    for name, text in cases.items():
        (tmp_path / f"{name}.toml").write_text(text)
        out = gridkit("optimize", f"{name}.toml", "--db", f"{name}.db", cwd=tmp_path)
        assert out.returncode == 2, (name, out.stderr)
        assert says[name] in out.stderr and len(out.stderr.strip().splitlines()) == 1, name
        assert "Traceback" not in out.stderr
    # Another program's database is not written into.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    (tmp_path / "ok.toml").write_text(space)
    out = gridkit("optimize", "ok.toml", "--db", "other.db", "--budget", "1", cwd=tmp_path)
    assert out.returncode == 2 and "is not a gridkit search store" in out.stderr
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    # A resume of a changed search names the change.
    assert gridkit("optimize", "ok.toml", "--db", "s.db", "--budget", "1", "--quiet",
                   cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE searches SET status = 'stopped'")
    (tmp_path / "ok.toml").write_text(space.replace("high = 66000", "high = 70000"))
    out = gridkit("optimize", "ok.toml", "--db", "s.db", "--resume", cwd=tmp_path)
    assert out.returncode == 2
    assert "the search changed since search 1 began (space.strategy.upper: " in out.stderr


def test_nothing_is_written_when_no_trial_scored_and_a_bad_target_is_refused_first(
        tmp_path: Path) -> None:
    space = (EXAMPLES / "optimize.toml").read_text().replace(
        "max_drawdown = 0.25", "max_drawdown = 0.0001")
    (tmp_path / "s.toml").write_text(space.replace('"pipeline.toml"',
                                                   f'"{EXAMPLES.as_posix()}/pipeline.toml"'))
    out = gridkit("optimize", "s.toml", "--budget", "2", "--write-best", "best.toml", "--json",
                  "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["best"] is None and result["written"] is None
    assert not (tmp_path / "best.toml").exists()
    out = gridkit("optimize", "s.toml", "--write-best", "nowhere/best.toml", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        "Error: --write-best: no such folder nowhere") and out.stdout == ""


def test_a_broken_pipeline_is_named_as_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text((EXAMPLES / "pipeline.toml").read_text()
                                            + "\n[executorz]\nuse = 'x'\n")
    (tmp_path / "s.toml").write_text((EXAMPLES / "optimize.toml").read_text())
    out = gridkit("optimize", "s.toml", cwd=tmp_path)
    assert out.returncode == 2
    assert "pipeline: " in out.stderr and "pipeline.toml: unknown section [executorz]" in \
        out.stderr and "first point" not in out.stderr
