"""gridkit stress (issue 11): the example grid over bootstrapped and shocked paths of its real
bars; each path's figures are those the engine gives on the same bars."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridkit import ConfigError
from gridkit.research.runners import FusedRunner
from gridkit.research.space import Space
from gridkit.research.stress import SCENARIOS, Shocks, _bootstrap, _path, stress
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(end: str = "2021-05-01T00:00:00Z") -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["pipeline"]["end"] = end
    return data


def accepted_bars() -> tuple[FusedRunner, Any, np.ndarray]:
    runner = FusedRunner.make(example(), Space(()), EXAMPLES, "<t>")
    assert isinstance(runner, FusedRunner)
    real = np.flatnonzero(runner.accepted)
    bars = runner.arrays._replace(**{k: getattr(runner.arrays, k)[real] for k in
                                     ("ts", "open", "high", "low", "close", "volume")})
    return runner, bars, np.ones(len(real), dtype=np.bool_)


def test_bootstrap_paths_are_real_blocks_chained_at_the_last_close() -> None:
    _, bars, _ = accepted_bars()
    path = _bootstrap(bars, 60, np.random.default_rng(4))
    n = len(bars.close)
    assert len(path.close) == n
    assert np.array_equal(path.close[:60], bars.close[:60])  # laid on the real start
    opens = path.open[60::60]
    closes = path.close[59:-1:60]
    assert np.allclose(opens[:len(closes)], closes, rtol=1e-12)
    assert np.all(path.low <= np.minimum(path.open, path.close) * (1 + 1e-12))
    assert np.all(path.high >= np.maximum(path.open, path.close) * (1 - 1e-12))
    # Each block is a real block, scaled: its bar-to-bar ratios are the data's.
    ratios = path.close[61:120] / path.close[60:119]
    real = bars.close[1:] / bars.close[:-1]
    assert any(np.allclose(ratios, real[k:k + 59]) for k in range(n - 60))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_path_scores_as_the_engine_runs_it(scenario: str,
                                                           tmp_path: Path) -> None:
    runner, bars, every = accepted_bars()
    shocks = Shocks(block=120, outage=500)
    path, ok = _path(scenario, bars, every, shocks, np.random.default_rng(11))
    fused = runner.run({}, path, ok)
    rows = [[int(t), o, h, lo, c, v] for t, o, h, lo, c, v, keep in zip(
        path.ts, path.open, path.high, path.low, path.close, path.volume, ok, strict=True)
        if keep]
    (tmp_path / "path.json").write_text(json.dumps(rows))
    data = example(end="")
    data["source"]["path"] = str(tmp_path / "path.json")
    data["pipeline"]["fuse"] = "off"
    summary = run_pipeline(build_pipeline(pipeline_from_data(data, "<t>", EXAMPLES)))
    assert summary["bars_dropped"] == 0
    assert (fused["final_equity"], fused["max_drawdown"], fused["orders_placed"]) == (
        summary["final_equity"], summary["max_drawdown"], summary["orders_placed"])


def test_stress_is_seeded_and_reports_every_scenario() -> None:
    shocks = Shocks(paths=12, block=120, outage=500, seed=3)
    one = stress(example(), shocks, base_dir=EXAMPLES)
    assert one == stress(example(), shocks, base_dir=EXAMPLES)
    assert stress(example(), Shocks(paths=12, block=120, outage=500, seed=4),
                  base_dir=EXAMPLES) != one
    assert set(one["scenarios"]) == set(SCENARIOS)
    for dist in one["scenarios"].values():
        assert dist["paths"] == 12
        dd = dist["max_drawdown"]
        assert dd["p5"] <= dd["p50"] <= dd["p95"] <= dd["worst"]
    # A gap down through the grid costs drawdown on every path.
    assert one["scenarios"]["gap"]["max_drawdown"]["p5"] > one["real"]["max_drawdown"] - 1e-12
    real = run_pipeline(build_pipeline(pipeline_from_data(example(), "<t>", EXAMPLES)))
    assert one["real"]["final_equity"] == real["final_equity"]


def test_bad_input_is_one_line() -> None:
    daily = copy.deepcopy(example())
    daily["risk"] = [{"use": "daily-loss", "limit": 0.1}]
    with pytest.raises(ConfigError, match="has no fused form: risk\\[0\\] \\(daily-loss\\)"):
        stress(daily, Shocks(paths=2), base_dir=EXAMPLES)
    with pytest.raises(ConfigError, match="block: 40000 bars is too long"):
        stress(example(), Shocks(paths=2, block=40_000), base_dir=EXAMPLES)
    proc = subprocess.run([sys.executable, "-m", "gridkit", "stress",
                           str(EXAMPLES / "pipeline.toml"), "--gap", "1.5"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--gap" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "gridkit", "stress", "nowhere.toml"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "nowhere.toml" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_the_cli_prints_the_table_and_json(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gridkit", "stress",
                           str(EXAMPLES / "pipeline.toml"), "--paths", "5", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["shocks"]["paths"] == 5 and set(got["scenarios"]) == set(SCENARIOS)
