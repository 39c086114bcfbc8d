"""Where a search's trials run: in this process, in worker processes on this machine, or on a
Dask cluster — the same trials, the same results.

A worker builds the search's runner (:mod:`gridkit.research.runners`: its own plugin host, its
data read and validated once) the first time it is handed a trial, and keeps it for every
trial after. Worker processes are forked from the search after it built its runner, so they
share its arrays (copy-on-write pages) instead of reading the data again. A Dask worker builds
its own from the same files, which it must be able to read at the same paths.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.errors import ConfigError
from gridkit.research.space import Space

#: A trial's result as a worker hands it back: ``("ok", summary)``, ``("error", why it could
#: not run)``, ``("config", the pipeline's refusal of the point)`` or ``("stopped", None)``.
Result = tuple[str, Any]
#: Seconds to wait for a Dask scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 5


@frozen
class RunnerSpec:
    """What a worker needs to build the search's runner (picklable, small)."""

    pipeline: Mapping[str, Any]
    space: Space
    base_dir: str | None
    source: str
    fused: bool = True
    #: The summary keys the objective reads (None: the whole summary: no fused runner).
    reads: tuple[str, ...] | None = ()

    def key(self) -> str:
        """The runner's identity: workers keep one runner per key."""
        return json.dumps([self.pipeline, [d.path for d in self.space.dimensions],
                           self.base_dir, self.source, self.fused, self.reads],
                          sort_keys=True, default=str)


_RUNNERS: dict[str, Any] = {}


def runner(spec: RunnerSpec) -> Any:
    """This process's runner of ``spec``, built once."""
    key = spec.key()
    built = _RUNNERS.get(key)
    if built is None:
        from gridkit.research.runners import PluginRunner, runner_for

        base = Path(spec.base_dir) if spec.base_dir is not None else None
        built = (runner_for(spec.pipeline, spec.space, base, spec.source, spec.reads)[0]
                 if spec.fused else PluginRunner(spec.pipeline, base, spec.source))
        _RUNNERS.clear()  # one search at a time: the last one's arrays are let go
        _RUNNERS[key] = built
    return built


def run_point(spec: RunnerSpec, params: Mapping[str, Any]) -> Result:
    """Run one point of the search (in whichever process this is)."""
    try:
        got = runner(spec)(params)
    except ConfigError as err:
        return ("config", str(err))
    except KeyboardInterrupt:
        return ("stopped", None)
    return ("error", got) if isinstance(got, str) else ("ok", dict(got))


class InProcess:
    """Trials one after the other, in this process."""

    def map(self, spec: RunnerSpec, points: Sequence[Mapping[str, Any]]) -> Iterator[Result]:
        for params in points:
            yield run_point(spec, params)

    def close(self) -> None:
        pass


class Processes:
    """Trials on ``workers`` processes of this machine, forked from the search (spawned where
    fork is not available: each then reads the data itself). Stopping waits for the trials
    already running (seconds) and drops the rest."""

    def __init__(self, workers: int, spec: RunnerSpec) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        runner(spec)  # built before the fork: the workers share its arrays
        self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start)

    def map(self, spec: RunnerSpec, points: Sequence[Mapping[str, Any]]) -> Iterator[Result]:
        from functools import partial

        return self.executor.map(partial(run_point, spec), points)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _worker_start() -> None:
    """A worker ignores SIGINT: the search (its parent) stops, and stops the workers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskCluster:
    """Trials on a Dask cluster (``dask.distributed``) at ``address``. A worker that dies
    mid-trial has its trials re-run elsewhere by the scheduler; each trial's result is taken
    once, in the order the points were asked."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError(f"--scheduler {address}: Dask is not installed: pip install "
                              f"'gridkit[distributed]'") from None
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError(f"--scheduler {address}: cannot reach the Dask scheduler "
                              f"({type(err).__name__}: {err})") from None
        self._futures: list[Any] = []

    def map(self, spec: RunnerSpec, points: Sequence[Mapping[str, Any]]) -> Iterator[Result]:
        futures = self.client.map(run_point, [spec] * len(points), list(points), pure=False)
        self._futures = futures
        return (future.result() for future in futures)

    def close(self) -> None:
        left = [f for f in self._futures if not f.done()]
        if left:  # a stopped search: its trials not yet run are dropped
            self.client.cancel(left)
        self.client.close()


def pool(spec: RunnerSpec, workers: int | None = None, scheduler: str | None = None) -> Any:
    """Where to run the search: a Dask cluster (``scheduler``), else ``workers`` processes
    (None: every core), else this process."""
    if scheduler:
        return DaskCluster(scheduler)
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ConfigError(f"--workers: must be at least 1, got {n}")
    return InProcess() if n == 1 else Processes(n, spec)


__all__ = ["DaskCluster", "InProcess", "Processes", "RunnerSpec", "pool", "run_point"]
