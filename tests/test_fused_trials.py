"""A search's fused trials (issue 11): the data read and validated once, each point one kernel
call, and the same figures as the point built and run by the engine, to the last bit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gridkit.plugins.optimizers import GridSearch, RandomSearch
from gridkit.research import optimize, parse_space
from gridkit.research.runners import FusedRunner, PluginRunner, runner_for
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def plain_example(end: str = "2021-05-05T00:00:00Z") -> dict[str, Any]:
    """The example pipeline (its position-size and drawdown checks have fused forms)."""
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["pipeline"]["end"] = end
    return data


SPACE = {"strategy.grids": {"low": 8, "high": 60, "int": True},
         "strategy.lower": {"low": 42000, "high": 54000},
         "strategy.qty": {"low": 0.002, "high": 0.05, "log": True},
         "executor.maker_fee": {"choices": [0.0, 0.00075, 0.001]},
         "pipeline.capital": {"low": 2000, "high": 20000}}


def test_fused_trials_score_as_the_engine_runs_each_point() -> None:
    space = parse_space(SPACE)
    kw: dict[str, Any] = {"objective": "calmar", "budget": 8, "seed": 7, "base_dir": EXAMPLES}
    fused = optimize(plain_example(), space, build(RandomSearch, {"trials": 8}), **kw)
    plugin = optimize(plain_example(), space, build(RandomSearch, {"trials": 8}),
                      fused=False, **kw)
    assert [t.path for t in fused] == ["fused"] * 8
    assert [t.path for t in plugin] == ["plugin"] * 8
    for f, p in zip(fused, plugin, strict=True):
        assert f.params == p.params
        assert (f.return_pct, f.max_drawdown, f.orders, f.error) == (
            p.return_pct, p.max_drawdown, p.orders, p.error)
        assert f.score == p.score or (math.isnan(f.score) and math.isnan(p.score))
    # Some points run out of cash (small capital, big cells) or into the position cap, some
    # halt at the example's drawdown limit: refusals and halts are in the figures.
    assert len({t.orders for t in fused}) > 4


def test_grid_profit_objective_agrees_to_the_bit() -> None:
    space = parse_space({"strategy.grids": {"low": 10, "high": 40, "int": True, "steps": 4}})
    kw: dict[str, Any] = {"objective": "grid-profit", "base_dir": EXAMPLES}
    fused = optimize(plain_example(), space, build(GridSearch), **kw)
    plugin = optimize(plain_example(), space, build(GridSearch), fused=False, **kw)
    assert [t.score for t in fused] == [t.score for t in plugin]
    assert all(t.score > 0 for t in fused)


def test_a_space_that_moves_the_data_runs_each_point_through_the_engine() -> None:
    space = parse_space({"pipeline.end": {"choices": ["2021-04-25T00:00:00Z",
                                                      "2021-04-30T00:00:00Z"]}})
    runner, why = runner_for(plain_example(), space, EXAMPLES, "<t>")
    assert isinstance(runner, PluginRunner)
    assert why.startswith("the space varies pipeline.end")
    daily = {**plain_example(), "risk": [{"use": "daily-loss", "limit": 0.05}]}
    runner, why = runner_for(daily, parse_space(SPACE), EXAMPLES, "<t>")
    assert isinstance(runner, PluginRunner) and "risk[0] (daily-loss)" in why


def test_points_without_a_fused_form_fall_back_to_the_engine() -> None:
    space = parse_space({"strategy.on_exit": {"choices": ["hold", "pause"]}})
    runner, why = runner_for(plain_example(), space, EXAMPLES, "<t>")
    assert isinstance(runner, FusedRunner) and why == ""
    trials = optimize(plain_example(), space, build(GridSearch), base_dir=EXAMPLES)
    assert [(t.params["strategy.on_exit"], t.path) for t in trials] == [
        ("hold", "fused"), ("pause", "plugin")]
    assert all(t.error is None for t in trials)


def random_trials_agree(data: dict[str, Any], space: dict[str, Any], objective: str,
                        seed: int) -> list[Any]:
    """Six random points run fused and through the engine: the same figures; the fused ones."""
    kw: dict[str, Any] = {"objective": objective, "budget": 6, "seed": seed,
                          "base_dir": EXAMPLES}
    fused = optimize(data, parse_space(space), build(RandomSearch, {"trials": 6}), **kw)
    plugin = optimize(data, parse_space(space), build(RandomSearch, {"trials": 6}),
                      fused=False, **kw)
    assert [t.path for t in fused] == ["fused"] * 6
    assert [(t.score, t.return_pct, t.max_drawdown, t.orders) for t in fused] == [
        (t.score, t.return_pct, t.max_drawdown, t.orders) for t in plugin]
    return fused


def test_symmetric_trials_recentre_as_the_engine_does() -> None:
    data = plain_example()
    data["strategy"] = {"use": "symmetric", "levels": 5, "spacing": 0.005, "qty": 0.01,
                        "cooldown": 30}
    random_trials_agree(data, {"strategy.spacing": {"low": 0.002, "high": 0.02, "log": True},
                               "strategy.levels": {"low": 2, "high": 10, "int": True},
                               "strategy.mode": {"choices": ["arithmetic", "geometric"]}},
                        "sharpe", 3)


def test_volatility_adjusted_trials_lay_as_the_engine_does() -> None:
    data = plain_example()
    data["strategy"] = {"use": "volatility-adjusted", "levels": 5, "qty": 0.01}
    data["features"] = [{"use": "rsi"}, {"use": "atr"}]
    fused = random_trials_agree(data, {
        "strategy.k": {"low": 1.0, "high": 6.0},
        "strategy.threshold": {"low": 0.1, "high": 0.6},
        "strategy.cooldown": {"low": 0, "high": 60, "int": True},
        "strategy.mode": {"choices": ["arithmetic", "geometric"]}}, "sortino", 5)
    assert len({t.orders for t in fused}) > 3
