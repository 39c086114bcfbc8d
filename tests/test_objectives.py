"""Search objectives (issue 11): the built-ins are plugins of kind ``objective``, a plugin adds
its own, and a search runs fused only when the objective reads what the fused runner computes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError, Objective
from gridkit.core.hookspecs import hookimpl
from gridkit.plugins.optimizers import RandomSearch
from gridkit.research import objective_for, optimize, parse_space
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPACE = {"strategy.grids": {"low": 8, "high": 60, "int": True},
         "strategy.lower": {"low": 40000, "high": 54000}}


def example() -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["pipeline"]["end"] = "2021-05-02T00:00:00Z"
    return data


def scores(objective: Any, fused: bool) -> list[tuple[float | None, str]]:
    trials = optimize(example(), parse_space(SPACE), build(RandomSearch, {"trials": 5}),
                      objective=objective, seed=4, base_dir=EXAMPLES, fused=fused)
    return [(None if math.isnan(t.score) else t.score, t.path) for t in trials]


@pytest.mark.parametrize("name", ["return", "calmar", "sharpe", "sortino", "profit-factor",
                                  "grid-profit", "grid-apr"])
def test_built_in_objectives_score_fused_trials_as_the_engine(name: str) -> None:
    fused, plugin = scores(name, True), scores(name, False)
    assert [s for s, _ in fused] == [s for s, _ in plugin]
    assert {p for _, p in fused} == {"fused"} and {p for _, p in plugin} == {"plugin"}
    assert any(s is not None for s, _ in fused)


class FeesPaid(Objective):
    """Fewer fees is better: minus the fees paid (reads the whole summary)."""

    name = "low-fees"

    def score(self, summary: Mapping[str, Any]) -> float:
        return -float(summary["fees_paid"])


class Halved(Objective):
    """Half the return (reads only what the fused runner computes)."""

    name = "half-return"
    reads = frozenset({"return_pct"})

    def score(self, summary: Mapping[str, Any]) -> float:
        return float(summary["return_pct"]) / 2


class ObjectivesPlugin:
    @staticmethod
    @hookimpl
    def gridkit_register_objectives(register: Callable[..., None]) -> None:
        register(FeesPaid)
        register(Halved)


def test_a_plugin_objective_scores_trials(gridkit_register_plugin: Any) -> None:
    gridkit_register_plugin(ObjectivesPlugin, "test-objectives")
    low = scores("low-fees", True)
    assert {p for _, p in low} == {"plugin"}  # it reads the whole summary: the engine runs
    assert all(s is not None and s < 0 for s, _ in low)
    half = scores({"use": "half-return"}, True)
    assert {p for _, p in half} == {"fused"}
    assert [s for s, _ in half] == [s / 2 for s, _ in scores("return", True)]


def test_an_unknown_objective_names_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match="objective: unknown 'sharpe-ish'; objectives are: "
                                          "calmar, grid-apr, grid-profit, profit-factor, "
                                          "return, sharpe, sortino"):
        objective_for("sharpe-ish")
    with pytest.raises(ConfigError, match="objective: a name"):
        objective_for({"options": 1})
