"""Constraints between a search's options (issue 11): arithmetic over option paths, checked
before a point runs; bad ones are one line, code is never run."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError
from gridkit.plugins.optimizers import GridSearch
from gridkit.research import optimize, parse_space
from gridkit.research.constraints import broken, parse_constraints
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEP = ("(strategy.upper - strategy.lower) / strategy.grids / strategy.lower"
        " > 2 * executor.maker_fee")


def example() -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["pipeline"]["end"] = "2021-04-25T00:00:00Z"
    return data


def test_a_constraint_reads_the_point_and_the_pipeline() -> None:
    known = {p: True for p in ("strategy.upper", "strategy.lower", "strategy.grids",
                               "executor.maker_fee")}
    [step] = parse_constraints([STEP], known)
    assert step.paths == ("strategy.upper", "strategy.lower", "strategy.grids",
                          "strategy.lower", "executor.maker_fee")
    point = {"strategy.upper": 60000, "strategy.lower": 45000, "executor.maker_fee": 0.001}
    assert step.holds({**point, "strategy.grids": 30})  # a step of 1.1 % > 0.2 %
    assert not step.holds({**point, "strategy.grids": 2000})  # 0.017 % < 0.2 %
    [chain] = parse_constraints(["0 < strategy.grids <= 40 and not strategy.grids == 7"],
                                known)
    assert chain.holds({"strategy.grids": 40}) and not chain.holds({"strategy.grids": 7})
    [div] = parse_constraints(["strategy.upper / strategy.grids > 1"], known)
    assert not div.holds({"strategy.upper": 1, "strategy.grids": 0})  # no ZeroDivisionError
    assert broken([step, chain], {**point, "strategy.grids": 7}) == chain.text


@pytest.mark.parametrize(("text", "says"), [
    ("__import__('os').system('true')", "Call is not allowed"),
    ("strategy.grids > x", "'x' is not an option path"),
    ("strategy.grids >", "invalid syntax"),
    ("strategy.grids[0] > 1", "Subscript is not allowed"),
    ("strategy.gridz > 1", "reads strategy.gridz, which is neither in the space nor set"),
])
def test_bad_constraints_are_refused_and_never_run(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace("[", r"\[")):
        parse_constraints([text], {"strategy.grids": True})


def test_points_that_break_a_constraint_are_not_run() -> None:
    space = parse_space({"strategy.grids": {"choices": [10, 30, 3000]}})
    known = {"strategy.grids": True, "strategy.upper": True, "strategy.lower": True,
             "executor.maker_fee": True}
    trials = optimize(example(), space, build(GridSearch), base_dir=EXAMPLES,
                      constraints=parse_constraints([STEP], known))
    assert [t.error for t in trials][:2] == [None, None]
    assert trials[2].error == f"constraint not met: {STEP}" and math.isnan(trials[2].score)
    assert trials[2].orders is None  # not run
    with pytest.raises(ConfigError, match="none of the 1 points tried meets them"):
        optimize(example(), parse_space({"strategy.grids": {"choices": [3000]}}),
                 build(GridSearch), base_dir=EXAMPLES,
                 constraints=parse_constraints([STEP], known))


def test_the_search_file_takes_constraints(tmp_path: Path) -> None:
    text = (EXAMPLES / "optimize.toml").read_text().replace(
        'pipeline = "pipeline.toml"', f'pipeline = "{(EXAMPLES / "pipeline.toml").as_posix()}"'
    ).replace("[optimizer]", f'constraints = ["{STEP}"]\n\n[optimizer]').replace(
        "trials = 24", "trials = 4")
    (tmp_path / "s.toml").write_text(text)
    ok = subprocess.run([sys.executable, "-m", "gridkit", "optimize", "s.toml", "--quiet",
                         "--workers", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "bad.toml").write_text(text.replace("executor.maker_fee", "executor.maker_fe"))
    bad = subprocess.run([sys.executable, "-m", "gridkit", "optimize", "bad.toml"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "reads executor.maker_fe" in bad.stderr
    assert bad.stderr.count("\n") == 1
