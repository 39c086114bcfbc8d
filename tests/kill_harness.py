"""Kill a running ``gridkit run`` with SIGKILL at random points and resume it, many times.

Used by the kill tests (a short version in the suite, the long one marked ``slow`` and in
``benchmarks/kill_resume.py``): whatever the point a run dies at — mid-request, mid-commit,
between sending an order and hearing it was taken — ``gridkit run --resume`` must bring it
back to a state that agrees with the exchange and the store.
"""

from __future__ import annotations

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


@define
class KillReport:
    """What a kill run did: the kill times, and the last (clean) run's exit and output."""

    kills: list[float] = field(factory=list)
    #: Exit statuses of the resumed runs that ended by themselves before their kill.
    early_exits: list[tuple[int, str]] = field(factory=list)
    final_code: int | None = None
    final_out: str = ""
    final_err: str = ""


def _run_opened(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _start(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gridkit", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_and_resume(pipeline: Path, db: Path, *, kills: int, seed: int,
                    window: tuple[float, float] = (0.2, 2.0), final: float = 2.0,
                    extra: Sequence[str] = (), env: dict[str, str] | None = None,
                    between: Callable[[int], None] | None = None) -> KillReport:
    """Run ``gridkit run PIPELINE --db DB``, SIGKILL it after a random time in ``window``
    (counted from the moment its run is in the store), resume it with ``--resume`` and kill
    it again, ``kills`` times in all; then resume once more, let it run ``final`` seconds and
    stop it with SIGTERM. ``between(i)`` runs after the i-th kill (to check or disturb)."""
    rng = random.Random(seed)
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    report = KillReport()
    base = ["run", str(pipeline), "--db", str(db), "--quiet", *extra]
    cwd = pipeline.parent
    for i in range(kills):
        args = base if i == 0 else [*base, "--resume"]
        proc = _start(args, env, cwd)
        t0 = time.monotonic()
        if i == 0:  # the first kill must leave a run to resume
            while not _run_opened(db) and proc.poll() is None and time.monotonic() - t0 < 60:
                time.sleep(0.02)
            t0 = time.monotonic()
        wait = rng.uniform(*window)
        while proc.poll() is None and time.monotonic() - t0 < wait:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            report.kills.append(wait)
        out, err = proc.communicate(timeout=30)
        if proc.returncode not in (-signal.SIGKILL,):
            report.early_exits.append((proc.returncode, err.strip()[-400:]))
        if between is not None:
            between(i)
    proc = _start([*base, "--resume"], env, cwd)
    time.sleep(final)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    report.final_code, report.final_out, report.final_err = proc.returncode, out, err
    return report
