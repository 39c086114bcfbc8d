"""Walk-forward searches (issue 11): windows cut from the data, each fitted in sample and its
best point run out of sample, as ``gridkit run`` would run it on that stretch."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError
from gridkit.plugins.optimizers import RandomSearch
from gridkit.research import parse_space
from gridkit.research.walk_forward import stability, walk_forward, windows
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPACE = {"strategy.lower": {"low": 30000, "high": 52000},
         "strategy.upper": {"low": 56000, "high": 66000},
         "strategy.grids": {"low": 6, "high": 40, "int": True}}


def example() -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / "pipeline.toml").read_text())


@pytest.mark.parametrize("anchored", [False, True])
def test_windows_follow_one_another_to_the_end(anchored: bool) -> None:
    ws = windows(1_000, 101_000, 4, 0.75, anchored)
    assert [w.number for w in ws] == [0, 1, 2, 3]
    assert ws[-1].out_end == 101_000
    for a, b in itertools.pairwise(ws):
        assert b.out_start == a.out_end + 1  # contiguous, none shared
    for w in ws:
        assert w.in_end == w.out_start - 1  # fitted on what came just before
        assert w.in_start == 1_000 if anchored else w.in_start >= 1_000
    lengths = [w.in_end - w.in_start for w in ws]
    if anchored:
        assert lengths == sorted(lengths) and len(set(lengths)) == 4  # growing
    else:
        assert max(lengths) - min(lengths) <= 1  # sliding
    # in : out = 3 : 1 for the first window
    first = ws[0]
    assert abs((first.in_end - first.in_start) / (first.out_end - first.out_start) - 3) < 0.01
    with pytest.raises(ConfigError, match="in_sample"):
        windows(0, 10, 2, 1.0, False)


def test_each_window_runs_its_best_point_out_of_sample_as_gridkit_run() -> None:
    space = parse_space(SPACE)
    done = walk_forward(example(), space, lambda: build(RandomSearch, {"trials": 8}), count=3,
                        objective="return", seed=2, base_dir=EXAMPLES)
    assert len(done) == 3
    for w in done:
        assert w.fit is not None and w.result is not None
        assert w.result.params == w.fit.params and w.result.path == "fused"
        data = example()
        for path, value in w.fit.params.items():
            section, key = path.split(".")
            data[section][key] = value
        data["pipeline"].update(start=str(w.out_start), end=str(w.out_end))
        summary = run_pipeline(build_pipeline(pipeline_from_data(data, "<t>", EXAMPLES)))
        assert summary["return_pct"] == w.result.score == w.result.return_pct
        assert summary["first_ts"] >= w.out_start and summary["last_ts"] <= w.out_end
    st = stability(done)
    assert set(st) == set(SPACE)
    assert st["strategy.grids"]["values"] == [w.fit.params["strategy.grids"] for w in done]
    lower = st["strategy.lower"]
    mean = sum(lower["values"]) / 3
    assert lower["mean"] == pytest.approx(mean)
    assert lower["cv"] == pytest.approx(lower["std"] / mean) and lower["std"] > 0


def search_file(tmp_path: Path, walk: str) -> Path:
    space = "\n".join(f'"{k}" = {{ low = {v["low"]}, high = {v["high"]}'
                      + (", int = true }" if v.get("int") else " }") for k, v in SPACE.items())
    f = tmp_path / "wf.toml"
    f.write_text(f'pipeline = "{(EXAMPLES / "pipeline.toml").as_posix()}"\nobjective = '
                 f'"calmar"\nseed = 1\n[optimizer]\nuse = "random"\ntrials = 6\n[space]\n'
                 f"{space}\n[walk_forward]\n{walk}\n")
    return f


def gridkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_the_cli_reports_out_of_sample_only_and_keeps_the_windows(tmp_path: Path) -> None:
    f = search_file(tmp_path, 'windows = 3\nmode = "anchored"')
    got = gridkit("optimize", str(f), "--json", "--db", "wf.db", "--write-best", "best.toml",
                  "--workers", "1", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert len(out["windows"]) == 3 and out["out_of_sample"]["windows_scored"] >= 1
    assert set(out["stability"]) == set(SPACE)
    with sqlite3.connect(tmp_path / "wf.db") as conn:
        rows = conn.execute("SELECT number, out_score FROM windows ORDER BY number").fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert [None if r[1] is None else r[1] for r in rows] == [
        None if w["out_score"] is None or math.isnan(w["out_score"]) else w["out_score"]
        for w in out["windows"]]
    last = out["windows"][-1]["params"]
    best = tomllib.loads((tmp_path / "best.toml").read_text())
    assert best["strategy"]["grids"] == last["strategy.grids"]
    run = gridkit("run", "best.toml", "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr


def test_bad_walk_forward_tables_are_one_line(tmp_path: Path) -> None:
    for walk, says in (("windows = 0", "walk_forward.windows"),
                       ('mode = "sideways"', "walk_forward.mode"),
                       ("in_sample = 1.5", "walk_forward.in_sample"),
                       ("folds = 3", "walk_forward: unknown key 'folds'")):
        got = gridkit("optimize", str(search_file(tmp_path, walk)), cwd=tmp_path)
        assert got.returncode == 2 and says in got.stderr, (walk, got.stderr)
        assert "Traceback" not in got.stderr
    got = gridkit("optimize", str(search_file(tmp_path, "windows = 2")), "--db", "x.db",
                  "--resume", cwd=tmp_path)
    assert got.returncode == 2 and "walk-forward search runs whole" in got.stderr


def test_the_data_file_is_read_once_for_every_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridkit.plugins.sources import FreqtradeJson

    reads: list[str] = []
    setup = FreqtradeJson.setup

    def counted(self: Any, run: Any) -> None:
        reads.append(self.config.path)
        setup(self, run)

    monkeypatch.setattr(FreqtradeJson, "setup", counted)
    done = walk_forward(example(), parse_space(SPACE),
                        lambda: build(RandomSearch, {"trials": 3}), count=3, base_dir=EXAMPLES)
    assert len(done) == 3 and all(w.result is not None for w in done)
    assert len(reads) == 1  # the span, 3 fits and 3 out-of-sample runs: one parse
