"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pipeline.toml"

#: Every built-in of issue 2's slice, by (kind, name).
BUILTINS = {
    ("source", "freqtrade-json"), ("source", "csv"),
    ("validator", "price"), ("validator", "volume"), ("validator", "timestamp"),
    ("validator", "ohlc"),
    ("feature", "rsi"), ("feature", "volatility"), ("feature", "volume-ratio"),
    ("attention", "progressive"),
    ("regime", "ranging"), ("regime", "trending"), ("regime", "volatile"), ("regime", "dormant"),
    ("strategy", "static"), ("strategy", "symmetric"),
    ("risk", "position-size"), ("risk", "drawdown"),
    ("executor", "simulated"), ("store", "sqlite"),
}


def gridkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


def one_line_error(out: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_help_lists_the_commands() -> None:
    out = gridkit("--help")
    assert out.returncode == 0
    for command in ("run", "validate", "plugins", "components"):
        assert command in out.stdout


def test_run_example_prints_the_summary() -> None:
    out = gridkit("run", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    for label in ("bars", "fills", "fees paid", "final equity", "realized profit",
                  "max drawdown", "latency (µs)"):
        assert label in out.stdout
    assert out.stderr == ""  # no progress bar when stderr is not a terminal


def test_run_json_is_one_object_with_the_design_fields() -> None:
    out = gridkit("run", str(EXAMPLE), "--json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["status"] == "finished"
    assert s["bars_seen"] == 42915 and s["bars_dropped"] == 0
    assert s["dropped_by"]["timestamp"] == {"gaps": 1, "missing_bars": 284}
    assert s["buy_fills"] > 100 and s["sell_fills"] > 100
    assert s["pipeline"]["strategy"] == {"use": "static", "plugin": "gridkit.grids",
                                         "distribution": "gridkit"}
    assert s["unreconciled_orders"] == []


def test_run_db_records_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet")
    assert out.returncode == 0, out.stderr
    assert f"in {db}" in out.stdout
    conn = sqlite3.connect(db)
    status, summary = conn.execute("SELECT status, summary FROM runs").fetchone()
    assert status == "finished"
    assert json.loads(summary)["bars_seen"] == 42915
    assert conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 42915
    n_fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert n_fills == json.loads(summary)["buy_fills"] + json.loads(summary)["sell_fills"]


def test_validate_says_ok_and_what_it_checked() -> None:
    out = gridkit("validate", str(EXAMPLE))
    assert out.returncode == 0
    assert "OK (backtest, BTC/USDT)" in out.stdout and "strategy static" in out.stdout


@pytest.mark.parametrize(("text", "expected"), [
    ("[pipeline\n", "TOML syntax error"),
    ('[pipeline]\nsymbol = "X/Y"\n[strategy]\nuse = "static"\n', "missing section [source]"),
    ('[pipeline]\nsymbol = "X/Y"\n[source]\nuse = "nope"\n[strategy]\nuse = "static"\n',
     "source: unknown source 'nope'"),
])
def test_bad_pipelines_are_one_line_with_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    for command in ("run", "validate"):
        line = one_line_error(gridkit(command, str(p)))
        assert expected in line and str(p) in line


def test_missing_pipeline_file() -> None:
    assert "pipeline file not found" in one_line_error(gridkit("run", "no/such/file.toml"))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("[pipeline\n")
    out = gridkit("--debug", "run", str(p))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_components_json_lists_every_builtin_from_gridkit() -> None:
    out = gridkit("components", "--json")
    assert out.returncode == 0
    items = json.loads(out.stdout)
    found = {(c["kind"], c["name"]) for c in items}
    assert found >= BUILTINS
    for c in items:
        if (c["kind"], c["name"]) in BUILTINS:
            assert c["distribution"] == "gridkit" and c["plugin"].startswith("gridkit.")
            assert c["summary"]
    static = next(c for c in items if c["name"] == "static")
    fields = {f["name"]: f for f in static["config"]}
    assert fields["grids"]["type"] == "int" and fields["grids"]["required"]
    assert fields["mode"]["default"] == "arithmetic"


def test_components_kind_filter_and_unknown_kind() -> None:
    out = gridkit("components", "--kind", "strategy")
    assert out.returncode == 0
    assert "static" in out.stdout and "rsi" not in out.stdout
    assert "unknown kind 'strategi'" in one_line_error(gridkit("components", "--kind", "strategi"))


def test_components_all_shows_options() -> None:
    out = gridkit("components", "--all", "--kind", "strategy")
    assert "grids: int (required)" in out.stdout


def test_plugins_json() -> None:
    out = gridkit("plugins", "--json")
    data = json.loads(out.stdout)
    names = {p["name"]: p for p in data["plugins"]}
    assert names["gridkit.grids"]["hooks"] == ["gridkit_register_strategies"]
    assert names["gridkit.grids"]["distribution"] == "gridkit"


def test_db_option_is_relative_to_the_current_directory(tmp_path: Path) -> None:
    out = gridkit("run", str(EXAMPLE), "--db", "here.db", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "here.db").exists()
    assert not (EXAMPLE.parent / "here.db").exists()
