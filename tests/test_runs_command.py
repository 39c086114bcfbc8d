"""``gridkit runs list | show | export --db PATH``: the runs of a store, read-only (issue 12)."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Two real runs of the example in one store: the month, then its first ten days."""
    folder = tmp_path_factory.mktemp("runs")
    db = folder / "runs.db"
    short = folder / "short.toml"
    text = EXAMPLE.read_text().replace('path = "', f'path = "{EXAMPLE.parent.as_posix()}/')
    short.write_text(text.replace('mode = "backtest"',
                                  'mode = "backtest"\nend = "2021-04-30T00:00:00Z"', 1))
    summaries = []
    for pipeline in (EXAMPLE, short):
        out = gridkit("run", str(pipeline), "--db", str(db), "--json", "-q")
        assert out.returncode == 0, out.stderr
        summaries.append(json.loads(out.stdout))
    return db, summaries


def test_list_shows_each_run_as_its_summary_says(store: tuple[Path, list[dict]]) -> None:
    db, summaries = store
    before = db.read_bytes()
    out = gridkit("runs", "list", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["run"] for r in rows] == [s["run_id"] for s in summaries]
    for row, s in zip(rows, summaries, strict=True):
        assert (row["status"], row["return_pct"], row["max_drawdown"]) == (
            "finished", s["return_pct"], s["max_drawdown"])
    assert rows[0]["to"] == "2021-05-20 20:40:00" and rows[1]["to"] < rows[0]["to"]
    text = gridkit("runs", "list", "--db", str(db)).stdout.splitlines()
    assert text[0].split() == ["run", "name", "mode", "status", "from", "to", "return",
                               "drawdown"]
    assert f"{summaries[0]['return_pct']:+.2f}%" in text[1] and "29.72%" in text[1]
    assert db.read_bytes() == before  # read-only


def test_a_running_run_is_read_from_its_marks(store: tuple[Path, list[dict]],
                                              tmp_path: Path) -> None:
    db, summaries = store
    copy = tmp_path / "running.db"
    copy.write_bytes(db.read_bytes())
    with sqlite3.connect(copy) as conn:  # as a run killed mid-way leaves it: no summary yet
        conn.execute("UPDATE runs SET status = 'running', summary = NULL, finished = NULL")
    rows = json.loads(gridkit("runs", "list", "--db", str(copy), "--json").stdout)
    for row, s in zip(rows, summaries, strict=True):
        assert row["status"] == "running" and row["finished"] is None
        assert row["return_pct"] == pytest.approx(s["return_pct"], rel=1e-12)
        assert row["max_drawdown"] == pytest.approx(s["max_drawdown"], rel=1e-12)


def test_show_one_run_or_the_last(store: tuple[Path, list[dict]]) -> None:
    db, summaries = store
    last = json.loads(gridkit("runs", "show", "--db", str(db), "--json").stdout)
    first = json.loads(gridkit("runs", "show", "1", "--db", str(db), "--json").stdout)
    assert last["run"] == summaries[1]["run_id"] and first["run"] == summaries[0]["run_id"]
    assert first["summary"]["final_equity"] == summaries[0]["final_equity"]
    assert first["config"]["strategy"]["use"] == "static"
    assert first["fills"] == summaries[0]["buy_fills"] + summaries[0]["sell_fills"]
    assert first["marks"] == summaries[0]["bars_accepted"]
    text = gridkit("runs", "show", "1", "--db", str(db)).stdout
    assert "status        finished" in text and "fills         677" in text
    out = gridkit("runs", "show", "9", "--db", str(db))
    assert out.returncode == 2 and out.stderr.strip() == f"Error: store {db} holds no run 9"


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_writes_the_rows_of_the_store(store: tuple[Path, list[dict]], tmp_path: Path,
                                             fmt: str) -> None:
    db, _ = store
    with sqlite3.connect(db) as conn:
        fills = conn.execute("SELECT order_id, ts, side, price, qty, fee FROM fills WHERE "
                             "run_id = 1 ORDER BY rowid").fetchall()
    out = tmp_path / f"fills.{fmt}"
    res = gridkit("runs", "export", "1", "--db", str(db), "--table", "fills", "--out", str(out),
                  "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"table": "fills", "format": fmt, "rows": len(fills),
                                      "out": str(out)}
    if fmt == "csv":
        with out.open(newline="") as f:
            got = [(r["order_id"], int(r["ts"]), r["side"], float(r["price"]), float(r["qty"]),
                    float(r["fee"])) for r in csv.DictReader(f)]
    elif fmt == "json":
        got = [(r["order_id"], r["ts"], r["side"], r["price"], r["qty"], r["fee"])
               for r in json.loads(out.read_text())]
    else:
        import pyarrow.parquet as pq

        t = pq.read_table(out).to_pydict()
        got = list(zip(t["order_id"], t["ts"], t["side"], t["price"], t["qty"], t["fee"],
                       strict=True))
    assert got == fills and len(fills) == 677


def test_export_failures_are_one_line_and_write_nothing(store: tuple[Path, list[dict]],
                                                        tmp_path: Path) -> None:
    db, _ = store
    kept = tmp_path / "kept.csv"
    kept.write_text("mine\n")
    for args, message in (
            (["--out", str(tmp_path / "no" / "such" / "dir.csv")], "no folder"),
            (["--out", str(tmp_path)], "it is a folder"),
            (["9", "--out", str(kept)], "holds no run 9")):
        res = gridkit("runs", "export", "--db", str(db), "--table", "equity", *args)
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1
    assert kept.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]  # no temporary left
    res = gridkit("runs", "list", "--db", str(tmp_path / "missing.db"))
    assert res.returncode == 2 and "store not found" in res.stderr


def test_datasette_opens_the_store_with_every_table_described(store: tuple[Path, list[dict]],
                                                               tmp_path: Path) -> None:
    db, summaries = store
    meta = tmp_path / "metadata.json"
    out = gridkit("runs", "metadata", "--db", str(db), "--out", str(meta))
    assert out.returncode == 0, out.stderr
    described = json.loads(meta.read_text())["databases"][db.stem]["tables"]
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE "
                                             "type = 'table'")]
        for table in tables:  # every table and every column says what it holds
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            assert sorted(described[table]["columns"]) == sorted(columns), table
            assert described[table]["description"]
    datasette = Path(sys.executable).with_name("datasette")
    got = subprocess.run([str(datasette), str(db), "-m", str(meta), "--get",
                          f"/{db.stem}/runs.json?_shape=array"], capture_output=True,
                         text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert [r["name"] for r in json.loads(got.stdout)] == [s["name"] for s in summaries]
    page = subprocess.run([str(datasette), str(db), "-m", str(meta), "--get",
                           f"/{db.stem}/fills"], capture_output=True, text=True, timeout=120)
    assert "Every fill, in the order the run booked them." in page.stdout
    # a row's run is shown by its name: the store's foreign keys and the runs' label column
    labelled = subprocess.run([str(datasette), str(db), "-m", str(meta), "--get",
                               f"/{db.stem}/fills.json?_labels=on&_shape=array&_size=1"],
                              capture_output=True, text=True, timeout=120)
    row = json.loads(labelled.stdout)[0]
    assert row["run_id"] == {"value": 1, "label": summaries[0]["name"]}
