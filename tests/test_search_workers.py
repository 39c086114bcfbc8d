"""A search's trials on several processes and on a real Dask cluster (issue 11): the same
trials as one process runs, a worker killed mid-search costing nothing (no trial lost or
doubled), and a scheduler that cannot be reached said in one line."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError
from gridkit.plugins.optimizers import Genetic, RandomSearch
from gridkit.research import Trial, optimize, parse_space
from gridkit.runtime.pipeline_file import tomllib
from gridkit.testing import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPACE = {"strategy.grids": {"low": 8, "high": 60, "int": True},
         "strategy.lower": {"low": 42000, "high": 54000},
         "strategy.qty": {"low": 0.002, "high": 0.02, "log": True}}


def example(risk: bool = False) -> dict[str, Any]:
    """The example pipeline; ``risk``: with a daily-loss check, which has no fused form (the
    trials then run through the engine: long enough to kill a worker in the middle)."""
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    if risk:
        data["risk"] = [{"use": "daily-loss", "limit": 0.2}]
    data["pipeline"]["end"] = "2021-05-01T00:00:00Z"
    return data


def figures(trials: list[Trial]) -> list[tuple[Any, ...]]:
    return [(t.number, t.params, None if math.isnan(t.score) else t.score, t.return_pct,
             t.max_drawdown, t.orders, t.error, t.path) for t in trials]


def test_processes_run_the_same_trials_as_one_process() -> None:
    space = parse_space(SPACE)
    kw: dict[str, Any] = {"objective": "calmar", "base_dir": EXAMPLES, "seed": 3}
    genetic = {"population": 6, "generations": 3, "elite": 1}
    one = optimize(example(), space, build(Genetic, genetic), workers=1, **kw)
    two = optimize(example(), space, build(Genetic, genetic), workers=2, **kw)
    assert figures(one) == figures(two)
    assert {t.path for t in one} == {"fused"}
    plugin = optimize(example(risk=True), space, build(RandomSearch, {"trials": 5}),
                      workers=2, **kw)
    assert figures(plugin) == figures(optimize(example(risk=True), space,
                                               build(RandomSearch, {"trials": 5}), **kw))
    assert {t.path for t in plugin} == {"plugin"}


@pytest.fixture(scope="module")
def cluster() -> Any:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as c:
        yield c


def test_a_dask_cluster_runs_the_same_trials_even_when_a_worker_dies(cluster: Any) -> None:
    from distributed import Client

    space = parse_space(SPACE)
    kw: dict[str, Any] = {"objective": "return", "base_dir": EXAMPLES, "seed": 5}
    # The plugin path (a daily-loss check): trials long enough for a worker to die mid-way.
    straight = optimize(example(risk=True), space, build(RandomSearch, {"trials": 10}), **kw)
    with Client(cluster.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_one(trial: Trial) -> None:
        if trial.number == 1 and not killed:  # the other worker's trials are under way
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    on_dask = optimize(example(risk=True), space, build(RandomSearch, {"trials": 10}),
                       scheduler=cluster.scheduler_address, on_trial=kill_one, **kw)
    assert killed
    assert figures(on_dask) == figures(straight)  # each trial once, none lost
    fused = optimize(example(), space, build(RandomSearch, {"trials": 6}),
                     scheduler=cluster.scheduler_address, **kw)
    assert figures(fused) == figures(optimize(example(), space,
                                              build(RandomSearch, {"trials": 6}), **kw))


def test_an_unreachable_scheduler_is_one_line_and_no_hang() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ConfigError, match=r"--scheduler tcp://127.0.0.1:9: cannot reach the "
                                          r"Dask scheduler"):
        optimize(example(), parse_space(SPACE), build(RandomSearch, {"trials": 2}),
                 base_dir=EXAMPLES, scheduler="tcp://127.0.0.1:9")
