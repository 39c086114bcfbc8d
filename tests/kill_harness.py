"""Kill a running ``gridkit run`` with SIGKILL at random points and resume it, many times.

Used by the kill tests (a short version in the suite, the long one marked ``slow`` and in
``benchmarks/kill_resume.py``): whatever the point a run dies at — mid-request, mid-commit,
between sending an order and hearing it was taken — ``gridkit run --resume`` must bring it
back to a state that agrees with the exchange and the store.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from attrs import define, field

#: The ``src`` folder of the checkout this file is in: the package the subprocesses must run
#: (in a worktree, another checkout may be the one installed).
SRC = Path(__file__).resolve().parents[1] / "src"


@define
class KillReport:
    """What a kill run did: the kill times, the restarts, and the last (clean) run's exit and
    output."""

    kills: list[float] = field(factory=list)
    #: Exit statuses of the resumed runs that ended by themselves before their kill.
    early_exits: list[tuple[int, str]] = field(factory=list)
    #: Seconds from starting a ``--resume`` process to its run being reopened in the store.
    resume_times: list[float] = field(factory=list)
    #: Kills that came before the resumed run had reopened its run (still starting up).
    kills_starting: int = 0
    final_code: int | None = None
    final_out: str = ""
    final_err: str = ""
    elapsed: float = 0.0


def subprocess_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``python -m gridkit``: ``env`` (default os.environ) with this
    checkout's ``src`` first on PYTHONPATH when the checkout has one."""
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if (SRC / "gridkit").is_dir():
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(SRC) + (os.pathsep + rest if rest else "")
    return env


def _query(db: Path, sql: str) -> int | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
            row = con.execute(sql).fetchone()
            return None if row is None else int(row[0] or 0)
    except sqlite3.Error:
        return None


def _run_opened(db: Path) -> bool:
    return bool(_query(db, "SELECT count(*) FROM runs"))


def _resumed(db: Path) -> int | None:
    return _query(db, "SELECT resumed FROM runs ORDER BY id DESC LIMIT 1")


def _start(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gridkit", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, and reap it (no process outlives a test)."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        proc.communicate(timeout=30)


def _wait_resumed(proc: subprocess.Popen[str], db: Path, before: int | None,
                  limit: float) -> float | None:
    """Seconds until the run's ``resumed`` count passes ``before`` (None: not within
    ``limit``, or the process ended)."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < limit:
        now = _resumed(db)
        if now is not None and before is not None and now > before:
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


def kill_and_resume(pipeline: Path, db: Path, *, kills: int, seed: int,
                    window: tuple[float, float] = (0.2, 2.0), final: float = 2.0,
                    extra: Sequence[str] = (), env: dict[str, str] | None = None,
                    between: Callable[[int], None] | None = None,
                    settle: Callable[[], None] | None = None,
                    early: float = 0.15) -> KillReport:
    """Run ``gridkit run PIPELINE --db DB``, SIGKILL it after a random time in ``window``
    (counted from the moment its run is in the store, or reopened in it), resume it with
    ``--resume`` and kill it again, ``kills`` times in all; then resume once more, let it run
    ``final`` seconds (then ``settle()``, which may wait for quiet) and stop it with SIGTERM.
    ``between(i)`` runs after the i-th kill (to check or disturb).

    A share ``early`` of the kills land at a random time from the process's start instead,
    whatever it was doing: starting up, reopening the run, reconciling with the exchange."""
    rng = random.Random(seed)
    env = subprocess_env(env)
    report = KillReport()
    base = ["run", str(pipeline), "--db", str(db), "--quiet", *extra]
    cwd = pipeline.parent
    started = time.monotonic()
    proc: subprocess.Popen[str] | None = None
    try:
        for i in range(kills):
            args = base if i == 0 else [*base, "--resume"]
            before = _resumed(db)
            proc = _start(args, env, cwd)
            wait = rng.uniform(*window)
            blind = i > 0 and rng.random() < early
            if i == 0:  # the first kill must leave a run to resume
                t0 = time.monotonic()
                while not _run_opened(db) and proc.poll() is None and time.monotonic() - t0 < 60:
                    time.sleep(0.005)
            elif blind:
                wait = rng.uniform(0.0, 2.0)
            else:
                took = _wait_resumed(proc, db, before, 60)
                if took is not None:
                    report.resume_times.append(took)
            t0 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t0 < wait:
                time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                report.kills.append(wait)
                if blind and (_resumed(db) or 0) <= (before or 0):
                    report.kills_starting += 1
            _out, err = proc.communicate(timeout=30)
            if proc.returncode != -signal.SIGKILL:
                report.early_exits.append((proc.returncode, err.strip()[-400:]))
            proc = None
            if between is not None:
                between(i)
        before = _resumed(db)
        proc = _start([*base, "--resume"], env, cwd)
        took = _wait_resumed(proc, db, before, 60)
        if took is not None:
            report.resume_times.append(took)
        time.sleep(final)
        if settle is not None:
            settle()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        report.final_code, report.final_out, report.final_err = proc.returncode, out, err
        proc = None
    finally:
        if proc is not None:
            _stop(proc)
        report.elapsed = time.monotonic() - started
    return report
