"""Optimizers and the trial driver (issue 11, first part): the ask/tell protocol, the search
space, ``grid-search`` and ``random``, on the example's real BTC/USDT 1m bars."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import ConfigError, Optimizer
from gridkit.plugins.optimizers import GridSearch, RandomSearch
from gridkit.research import Space, best, optimize, parse_space, set_option
from gridkit.research.space import Dimension, option_path
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build, run_toml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Five days of the example's bars (2021-04-20 20:42 to 04-25 20:42 UTC): fast trials.
END = "2021-04-25T20:42:00Z"


def example(end: str = END) -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["pipeline"]["end"] = end
    return data


GRIDS = {"strategy.grids": {"low": 10, "high": 40, "int": True, "steps": 3},
         "strategy.lower": {"low": 48000, "high": 52000, "steps": 2}}


def test_grid_search_tries_every_point_and_each_trial_is_a_plain_run() -> None:
    space = parse_space(GRIDS)
    assert space.size == 6
    trials = optimize(example(), space, build(GridSearch), base_dir=EXAMPLES)
    assert [t.params for t in trials] == [
        {"strategy.grids": g, "strategy.lower": lo}
        for g in (10, 25, 40) for lo in (48000.0, 52000.0)]
    assert all(t.error is None and not math.isnan(t.score) for t in trials)
    assert len({t.score for t in trials}) == 6  # the options change what the grid does
    # A trial is the pipeline run as gridkit run runs it: the same summary, to the last bit.
    for t in (trials[0], trials[5]):
        data = example()
        for path, v in t.params.items():
            set_option(data, path, v)
        summary = run_toml(tomli_w.dumps(data), base_dir=EXAMPLES)
        assert (summary["return_pct"], summary["max_drawdown"], summary["orders_placed"]) == (
            t.return_pct, t.max_drawdown, t.orders) == (t.score, t.max_drawdown, t.orders)
    top = best(trials)
    assert top is not None and top.score == max(t.score for t in trials)


def test_random_is_seeded_draws_distinct_points_and_respects_the_budget() -> None:
    space = parse_space({"strategy.grids": {"low": 5, "high": 60, "int": True},
                         "strategy.qty": {"low": 0.001, "high": 0.01, "log": True},
                         "strategy.mode": {"choices": ["arithmetic", "geometric"]}})
    one = optimize(example(), space, build(RandomSearch, {"trials": 5}), seed=7,
                   base_dir=EXAMPLES, objective="calmar")
    two = optimize(example(), space, build(RandomSearch, {"trials": 5}), seed=7,
                   base_dir=EXAMPLES, objective="calmar")
    assert [t.params for t in one] == [t.params for t in two] and len(one) == 5
    assert [t.score for t in one] == [t.score for t in two]
    other = optimize(example(), space, build(RandomSearch, {"trials": 5}), seed=8,
                     base_dir=EXAMPLES, budget=2)
    assert len(other) == 2 and other[0].params != one[0].params
    for t in one:
        p = t.params
        assert 5 <= p["strategy.grids"] <= 60 and isinstance(p["strategy.grids"], int)
        assert 0.001 <= p["strategy.qty"] <= 0.01
        assert p["strategy.mode"] in ("arithmetic", "geometric")
        assert t.score == pytest.approx(t.return_pct / (t.max_drawdown * 100))


def test_a_small_space_is_not_tried_twice() -> None:
    opt = build(RandomSearch, {"trials": 50})
    opt.start(parse_space({"strategy.grids": {"low": 10, "high": 12, "int": True}}), 1)
    points = []
    while (p := opt.ask()) is not None:
        points.append(p["strategy.grids"])
    assert sorted(points) == [10, 11, 12]
    assert opt.stats() == {"drawn": 50, "repeats": 47}


def test_a_drawdown_constraint_scores_the_trial_out() -> None:
    space = parse_space(GRIDS)
    free = optimize(example(), space, build(GridSearch), base_dir=EXAMPLES)
    cap = sorted(t.max_drawdown for t in free)[2]
    trials = optimize(example(), space, build(GridSearch), base_dir=EXAMPLES, max_drawdown=cap)
    kept = [t for t in trials if not math.isnan(t.score)]
    assert len(kept) == 3
    assert all(t.max_drawdown <= cap for t in kept)
    assert all(t.max_drawdown > cap for t in trials if math.isnan(t.score))


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "says"), [
    ({"strategy.grids": {"low": 60, "high": 10}}, "space.strategy.grids: low 60 is above high 10"),
    ({"strategy.qty": {"low": 0, "high": 1, "log": True}}, "a log range needs low above 0"),
    ({"strategy.qty": {"low": 1, "high": math.inf}}, "must be finite numbers"),
    ({"strategy.qty": {"low": 1}}, "a range needs low and high"),
    ({"strategy.qty": {"low": 1, "high": 2, "stepz": 3}}, "unknown key 'stepz'"),
    ({"strategy.mode": {"choices": []}}, "choices must be a non-empty list"),
    ({"strategy.mode": {"choices": [{"a": 1}]}}, "choices must be strings, numbers or"),
    ({"grids": {"low": 1, "high": 2}}, "not an option path: 'grids'"),
    ({"strategy..x": {"low": 1, "high": 2}}, "not an option path"),
    ({}, "expected a table of option paths"),
])
def test_a_bad_space_is_one_line_naming_the_dimension(table: Any, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_space(table)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_point_the_pipeline_refuses_is_one_line_before_any_trial() -> None:
    space = parse_space({"strategy.gridz": {"low": 10, "high": 20, "int": True}})
    with pytest.raises(ConfigError) as err:
        optimize(example(), space, build(GridSearch), base_dir=EXAMPLES)
    line = str(err.value)
    assert line.startswith("the first point of the space does not fit the pipeline: ")
    assert "strategy.gridz" in line and "\n" not in line
    with pytest.raises(ConfigError, match=r"space\.risk\[3\]\.limit: the pipeline has no"):
        optimize(example(), parse_space({"risk[3].limit": {"low": 0.1, "high": 0.2,
                                                           "steps": 2}}),
                 build(GridSearch), base_dir=EXAMPLES)
    with pytest.raises(ConfigError, match="objective: unknown 'sharp'"):
        optimize(example(), space, build(GridSearch), objective="sharp")


def test_grid_search_needs_steps_for_a_float_range() -> None:
    space = parse_space({"strategy.qty": {"low": 0.001, "high": 0.01}})
    assert space.size is None
    with pytest.raises(ConfigError, match="a grid search needs steps = N"):
        optimize(example(), space, build(GridSearch), base_dir=EXAMPLES)


def test_option_paths() -> None:
    assert option_path("strategy.grids") == ["strategy", "grids"]
    assert option_path("risk[1].limit") == ["risk", 1, "limit"]
    assert option_path('lanes."ETH/USDT".strategy.qty') == ["lanes", "ETH/USDT", "strategy",
                                                           "qty"]
    data: dict[str, Any] = {"strategy": {}, "risk": [{"use": "drawdown"}]}
    set_option(data, "risk[0].limit", 0.3)
    set_option(data, 'lanes."ETH/USDT".strategy.qty', 0.2)
    assert data["risk"][0]["limit"] == 0.3
    assert data["lanes"] == {"ETH/USDT": {"strategy": {"qty": 0.2}}}


def test_an_optimizer_plugin_needs_only_ask_and_tell() -> None:
    """The protocol as a third party uses it: a hill climb over one integer."""

    class Climb(Optimizer):
        name = "climb"

        def start(self, space: Space, seed: int) -> None:
            self.dim, self.at, self.best = space.dimensions[0], 10, -math.inf
            self.next: int | None = 10

        def ask(self) -> dict[str, Any] | None:
            if self.next is None:
                return None
            point, self.next = {self.dim.path: self.next}, None
            return point

        def tell(self, params: Any, score: float) -> None:
            if score > self.best:
                self.best, self.at = score, params[self.dim.path]
                if self.at + 5 <= self.dim.high:
                    self.next = self.at + 5

    space = parse_space({"strategy.grids": {"low": 10, "high": 40, "int": True}})
    trials = optimize(example(), space, Climb(), base_dir=EXAMPLES)
    grids = [t.params["strategy.grids"] for t in trials]
    assert grids[:1] == [10] and grids == sorted(grids) and len(grids) >= 2


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(0, 1e6), st.floats(0, 0.999999),
       st.integers(1, 20), st.booleans())
def test_every_dimension_stays_in_its_range(low: float, width: float, u: float, steps: int,
                                            integer: bool) -> None:
    if integer:
        low, width = float(int(low)), float(int(width))
    d = Dimension("strategy.x", low=low, high=low + width, integer=integer, steps=steps)
    v = d.sample(u)
    assert low <= v <= low + width
    pts = d.points()
    assert pts[0] == low and all(low <= p <= low + width + 1e-9 for p in pts)
    assert len(pts) == (min(steps, int(width) + 1) if integer else steps)


# --- genetic ----------------------------------------------------------------------------------


def _drive(opt: Optimizer, space: Space, f: Any, seed: int = 3) -> list[tuple[dict, float]]:
    """ask/tell without backtests: score each point with ``f``."""
    opt.start(space, seed)
    seen = []
    while (p := opt.ask()) is not None:
        score = f(p)
        opt.tell(p, score)
        seen.append((p, score))
    return seen


def test_genetic_climbs_keeps_its_elite_and_is_seeded() -> None:
    from gridkit.plugins.optimizers import Genetic

    space = parse_space({"a.x": {"low": 0.0, "high": 1.0}, "a.y": {"low": 0.0, "high": 1.0},
                         "a.k": {"choices": ["p", "q", "r"]}})

    def bowl(p: dict) -> float:
        return -((p["a.x"] - 0.3) ** 2 + (p["a.y"] - 0.7) ** 2) - (p["a.k"] != "q")

    opt = build(Genetic, {"population": 12, "generations": 12})
    seen = _drive(opt, space, bowl)
    firsts = [s for _, s in seen[:12]]
    curve = opt.stats()["best_by_generation"]
    assert len(curve) == 12 and curve == sorted(curve)  # the elite: the best never falls
    assert curve[-1] > max(firsts) and curve[-1] > -0.01  # near (0.3, 0.7, q)
    assert len(seen) < 12 * 12  # elites and repeats are not re-run
    again = _drive(build(Genetic, {"population": 12, "generations": 12}), space, bowl)
    assert again == seen


def test_genetic_treats_a_failed_trial_as_least_fit_and_runs_on_real_data() -> None:
    from gridkit.plugins.optimizers import Genetic

    space = parse_space({"a.x": {"low": 0.0, "high": 1.0}})
    opt = build(Genetic, {"population": 4, "generations": 5, "elite": 1})
    seen = _drive(opt, space, lambda p: math.nan if p["a.x"] > 0.5 else p["a.x"])
    curve = opt.stats()["best_by_generation"]
    assert any(math.isnan(s) for _, s in seen)  # some trials failed ...
    assert all(math.isfinite(b) and b <= 0.5 for b in curve)  # ... and none was the best
    trials = optimize(example(), parse_space(GRIDS | {"strategy.lower": {"low": 45000,
                                                                         "high": 52000}}),
                      build(Genetic, {"population": 3, "generations": 2, "elite": 1}),
                      seed=2, base_dir=EXAMPLES)
    assert 3 <= len(trials) <= 6 and best(trials) is not None


def test_genetic_options_are_checked() -> None:
    from gridkit.plugins.optimizers import Genetic

    with pytest.raises(ConfigError, match="elite: 4 leaves no room for children"):
        build(Genetic, {"population": 4, "elite": 4})


# --- bayesian ---------------------------------------------------------------------------------


def test_bayesian_learns_from_its_scores_and_is_seeded() -> None:
    pytest.importorskip("optuna")
    from gridkit.plugins.optimizers import Bayesian

    space = parse_space({"a.x": {"low": 0.0, "high": 1.0}, "a.n": {"low": 1, "high": 50,
                                                                    "int": True, "log": True},
                         "a.k": {"choices": ["p", "q", "r"]}})

    def bowl(p: dict) -> float:
        if p["a.n"] > 40:
            return math.nan  # a failed trial
        return -(p["a.x"] - 0.3) ** 2 - abs(math.log(p["a.n"] / 8)) - (p["a.k"] != "q")

    seen = _drive(build(Bayesian, {"trials": 40, "startup": 10}), space, bowl)
    assert len(seen) == 40
    assert all(isinstance(p["a.n"], int) and 1 <= p["a.n"] <= 50 for p, _ in seen)
    startup = max(s for _, s in seen[:10] if not math.isnan(s))
    guided = [s for _, s in seen[10:] if not math.isnan(s)]
    assert max(guided) > startup  # the model found better than the random start
    assert sum(s > startup - 0.5 for s in guided) > len(guided) / 2  # and stays near it
    again = _drive(build(Bayesian, {"trials": 40, "startup": 10}), space, bowl)
    assert [p for p, _ in again] == [p for p, _ in seen]


def test_bayesian_runs_trials_on_real_data() -> None:
    pytest.importorskip("optuna")
    from gridkit.plugins.optimizers import Bayesian

    trials = optimize(example(), parse_space({"strategy.grids": {"low": 5, "high": 40,
                                                                 "int": True}}),
                      build(Bayesian, {"trials": 4, "startup": 2}), seed=1, base_dir=EXAMPLES)
    assert len(trials) == 4 and best(trials) is not None


def test_integer_ranges_log_scale_and_stay_lazy() -> None:
    d = Dimension("strategy.grids", low=1, high=1000, integer=True, log=True)
    assert [d.sample(u) for u in (0.0, 0.5, 0.999999)] == [1, 32, 1000]
    assert list(Dimension("a.b", low=1, high=1000, integer=True, log=True, steps=4).points()
                ) == [1, 10, 100, 1000]
    huge = Dimension("a.b", low=0, high=30_000_000, integer=True)
    assert len(huge.points()) == 30_000_001  # a range: nothing built
    assert list(Dimension("a.b", low=0, high=30_000_000, integer=True, steps=3).points()
                ) == [0, 15_000_000, 30_000_000]


def test_set_option_refuses_what_the_pipeline_does_not_have() -> None:
    data: dict[str, Any] = {"strategy": {"use": "static"}, "risk": [{"use": "drawdown"}]}
    for path, says in (("risk.x.limit", "[risk] is not a table"),
                       ("risk[2].limit", "no [risk[2]]"),
                       ("executor.maker_fee", "no [executor]"),
                       ("strategy.use.x", "[strategy.use] is not a table")):
        with pytest.raises(ConfigError) as err:
            set_option(data, path, 1)
        assert says in str(err.value), (path, str(err.value))


def test_a_point_that_fails_to_run_is_a_failed_trial_and_the_search_goes_on() -> None:
    """A point whose run fails (here: a file that is not market data, found when the source
    reads it, after the pipeline was built) is a failed trial saying why; the points after it
    still run."""
    space = parse_space({"source.path": {"choices": ["data/BTC_USDT-1m.json.gz",
                                                     "data/SOURCE.md",
                                                     "data/BTC_USDT-1m.json.gz"]}})
    trials = optimize(example(), space, build(GridSearch), base_dir=EXAMPLES)
    assert [t.error is None for t in trials] == [True, False, True]
    assert "SOURCE.md is truncated or not valid JSON" in (trials[1].error or "")
    assert math.isnan(trials[1].score)
    assert trials[2].score == trials[0].score
