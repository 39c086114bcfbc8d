"""Multi-symbol scans (issue 11, seed 004): one search on each of the example's four pairs, each
symbol's trials those of a plain search of its pipeline, the winner written runnable."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from gridkit.plugins.optimizers import RandomSearch
from gridkit.research import optimize
from gridkit.research.scan import ranking, scan, symbol_pipeline
from gridkit.research.search_file import load_search
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_each_symbol_is_searched_as_its_own_pipeline() -> None:
    search = load_search(EXAMPLES / "scan.toml")
    assert list(search.scan or {}) == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"]
    kw = {"objective": "calmar", "seed": 1, "base_dir": EXAMPLES, "budget": 4}
    results = scan(search.pipeline_data, search.space,
                   lambda: build(RandomSearch, {"trials": 4}), search.scan or {}, **kw)
    for symbol, overrides in (search.scan or {}).items():
        alone = optimize(symbol_pipeline(search.pipeline_data, symbol, overrides),
                         search.space, build(RandomSearch, {"trials": 4}), **kw)
        assert [(t.params, t.score) for t in results[symbol]] == [
            (t.params, t.score) for t in alone]
        assert {t.path for t in alone} == {"fused"}
    ranked = ranking(results)
    scores = [t.score for _, t in ranked if t is not None]
    assert scores == sorted(scores, reverse=True)


def test_the_cli_ranks_the_pairs_keeps_the_trials_and_writes_the_winner(
        tmp_path: Path) -> None:
    text = (EXAMPLES / "scan.toml").read_text().replace(
        'pipeline = "scan-pipeline.toml"',
        f'pipeline = "{(EXAMPLES / "scan-pipeline.toml").as_posix()}"').replace(
        "trials = 16", "trials = 3")
    (tmp_path / "scan.toml").write_text(text)
    got = subprocess.run([sys.executable, "-m", "gridkit", "optimize", "scan.toml", "--json",
                          "--db", "s.db", "--write-best", "best.toml", "--workers", "1"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert len(out["symbols"]) == 4
    scores = [r["best"]["score"] for r in out["symbols"] if r["best"] is not None]
    assert scores and scores == sorted(scores, reverse=True)  # ranked, best first
    with sqlite3.connect(tmp_path / "s.db") as conn:
        rows = conn.execute("SELECT number, params FROM trials ORDER BY number").fetchall()
    assert [n for n, _ in rows] == list(range(12))  # 4 symbols x 3 trials, none doubled
    assert {json.loads(p)["pipeline.symbol"] for _, p in rows} == set(
        r["symbol"] for r in out["symbols"])
    best = tomllib.loads((tmp_path / "best.toml").read_text())
    assert best["pipeline"]["symbol"] == out["symbols"][0]["symbol"]
    run = subprocess.run([sys.executable, "-m", "gridkit", "run", "best.toml", "--json"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["return_pct"] == out["symbols"][0]["best"]["return_pct"]


def test_a_bad_scan_table_is_one_line(tmp_path: Path) -> None:
    base = (EXAMPLES / "scan.toml").read_text().replace(
        'pipeline = "scan-pipeline.toml"',
        f'pipeline = "{(EXAMPLES / "scan-pipeline.toml").as_posix()}"')
    for name, text, says in (
            ("missing", base.replace("data/SOL_USDT-5m.json.gz", "data/nothing.json"), None),
            ("option", base.replace('"strategy.qty" = 2.0', '"strategy.qtyy" = 2.0'),
             "scan.'SOL/USDT'"),
            ("walk", base + "\n[walk_forward]\nwindows = 2\n", "one or the other")):
        (tmp_path / f"{name}.toml").write_text(text)
        got = subprocess.run([sys.executable, "-m", "gridkit", "optimize", f"{name}.toml",
                              "--workers", "1"], cwd=tmp_path, capture_output=True, text=True)
        assert got.returncode == 2, (name, got.stderr)
        assert "Traceback" not in got.stderr and got.stderr.count("\n") == 1, got.stderr
        assert says is None or says in got.stderr, got.stderr
    got = subprocess.run([sys.executable, "-m", "gridkit", "optimize", "walk.toml".replace(
        "walk", "missing"), "--db", "x.db", "--resume"], cwd=tmp_path, capture_output=True,
        text=True)
    assert got.returncode == 2
