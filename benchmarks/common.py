"""Helpers shared by the benchmark scripts: paths, timing, result rows, tables.

The benchmarks *measure*; they never assert a wall time. Every figure is printed beside a
baseline measured in the same run on the same machine, so a reader can tell the cost of gridkit
from the speed of the machine. Each ``bench_*.py`` script has a ``collect(quick)`` function that
returns :class:`Section` objects; run alone it prints its tables, and ``--json PATH`` writes them
for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
EXAMPLES = REPO / "examples"
EXAMPLE_PIPELINE = EXAMPLES / "pipeline.toml"
EXAMPLE_DATA = EXAMPLES / "data" / "BTC_USDT-1m.json.gz"
#: The installed console script, next to the interpreter running the benchmarks.
GRIDKIT_SCRIPT = Path(sys.executable).parent / ("gridkit.exe" if os.name == "nt" else "gridkit")

# The figures are about gridkit and its built-ins: third-party plugins installed in the same
# environment (gridkit-ewma, say, which replaces the built-in ``volatility``) are not loaded, in
# this process or in the subprocesses the benchmarks start (the tests do the same). Set before
# any plugin host is created.
os.environ["GRIDKIT_LOAD_PLUGINS"] = ""
os.environ.pop("GRIDKIT_DISABLE_PLUGINS", None)
SUBPROCESS_ENV = dict(os.environ)
#: The environment as a user has it: every installed plugin loads.
ALL_PLUGINS_ENV = {k: v for k, v in SUBPROCESS_ENV.items() if k != "GRIDKIT_LOAD_PLUGINS"}
# A user's installation has bytecode caches (pip writes them; Python writes them on first
# import). Some sandboxes and CI set PYTHONDONTWRITEBYTECODE, which makes every start compile
# gridkit from source; the subprocesses instead keep their caches in a private folder, so the
# repository and the venv are not written to and the first (discarded) run fills the cache.
PYCACHE = Path(tempfile.gettempdir()) / f"gridkit-bench-pycache-{os.getuid()}" \
    if hasattr(os, "getuid") else Path(tempfile.gettempdir()) / "gridkit-bench-pycache"
SUBPROCESS_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
SUBPROCESS_ENV["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
#: No bytecode cache at all: an empty cache folder that is never written, so every module
#: (gridkit's, click's, the standard library's) is compiled from source on each start.
NO_PYC_ENV = {**SUBPROCESS_ENV, "PYTHONDONTWRITEBYTECODE": "1",
              "PYTHONPYCACHEPREFIX": str(PYCACHE) + "-empty"}
ALL_PLUGINS_ENV["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
ALL_PLUGINS_ENV.pop("PYTHONDONTWRITEBYTECODE", None)


# --- result rows --------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured figure, its target (if the issue sets one) and the baseline beside it."""

    name: str
    value: float | None
    unit: str
    #: The target as text ("< 0.5 s"), empty when the figure is informational.
    target: str = ""
    #: Whether the target is met; None when there is no target.
    met: bool | None = None
    baseline: float | None = None
    baseline_unit: str = ""
    baseline_name: str = ""
    #: How the figure was measured, one sentence.
    how: str = ""

    def value_text(self) -> str:
        return fmt(self.value, self.unit)

    def baseline_text(self) -> str:
        if self.baseline is None and not self.baseline_name:
            return ""
        text = fmt(self.baseline, self.baseline_unit or self.unit) if self.baseline is not None \
            else ""
        return f"{text} ({self.baseline_name})" if self.baseline_name and text else \
            text or self.baseline_name

    def status(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")


@dataclass
class Section:
    """A table of rows about one area, with a paragraph on method and free-form notes."""

    key: str
    title: str
    method: str
    rows: list[Row] = field(default_factory=list)
    #: Extra lines (evidence, breakdowns) shown under the table.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        rows = [Row(**r) for r in data.pop("rows")]
        return cls(rows=rows, **data)


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


# --- formatting ---------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    """A number with its unit, at a precision that suits its size."""
    if value is None:
        return "n/a"
    if unit in ("bars/s", "values/s", "events/s"):
        if value >= 1e8:
            return f"{value / 1e6:,.0f} M {unit}"
        if value >= 1e6:
            return f"{value / 1e6:,.1f} M {unit}"
        return f"{value:,.0f} {unit}"
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
        return f"{value:.2f} s"
    if unit in ("µs", "ns/bar", "ns", "µs/bar"):
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    if unit == "x":  # (two decimals near 1: a 1.14x must not print as a target's 1.1x)
        return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"
    if unit == "":
        return f"{value:g}"
    return f"{value:,.3g} {unit}"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(r[i])) for r in (headers, *rows)) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def print_sections(sections: Sequence[Section], file: Any = None) -> None:
    """Each section as a titled text table with its notes."""
    file = file or sys.stdout
    for s in sections:
        print(f"\n== {s.title} ==", file=file)
        rows = [(r.name, r.value_text(), r.target, r.status(), r.baseline_text()) for r in s.rows]
        print(text_table(("measure", "value", "target", "", "baseline"), rows), file=file)
        for note in s.notes:
            print(f"  {note}", file=file)
    file.flush()


# --- timing -------------------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def time_command(cmd: Sequence[str], runs: int, warmup: int = 1, *,
                 cwd: Path = REPO, env: dict[str, str] | None = None) -> list[float]:
    """Wall time of ``runs`` fresh subprocesses after ``warmup`` discarded ones (seconds).

    The clock spans fork/exec to exit: interpreter start-up, imports, work and shutdown, as a
    user at a shell sees it. Output is discarded; a failing command stops the benchmark.
    """
    return time_command_output(cmd, runs, warmup, cwd=cwd, env=env)[0]


def time_command_output(cmd: Sequence[str], runs: int, warmup: int = 1, *,
                        cwd: Path = REPO, env: dict[str, str] | None = None
                        ) -> tuple[list[float], list[str]]:
    """Like :func:`time_command`, and also return each measured run's stdout."""
    times, outputs = [], []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        proc = subprocess.run(list(cmd), cwd=cwd, env=env or SUBPROCESS_ENV,
                              capture_output=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace')[-2000:]}")
        if i >= warmup:
            times.append(elapsed)
            outputs.append(proc.stdout.decode(errors="replace"))
    return times, outputs


def spread(times: Sequence[float]) -> str:
    """min / median / max of wall times, in ms: how noisy the machine was."""
    return (f"min {min(times) * 1000:.0f} / median {median(times) * 1000:.0f} / "
            f"max {max(times) * 1000:.0f} ms over {len(times)} runs")


def run_python(code: str, *args: str, cwd: Path = REPO) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (raises on failure)."""
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=SUBPROCESS_ENV,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"python -c ... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(min, median) wall seconds of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), median(times)


def profile_top(fn: Callable[[], Any], limit: int = 25, sort: str = "tottime") -> str:
    """cProfile ``fn`` once; the ``limit`` top entries by ``sort`` as text."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(limit)
    return out.getvalue()


# --- the example data ---------------------------------------------------------------------------


def load_rows() -> list[list[float]]:
    """The example's OHLCV rows ``[ms, open, high, low, close, volume]`` as Python lists."""
    with gzip.open(EXAMPLE_DATA) as f:
        return json.loads(f.read())


# --- machine ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Facts about the machine and the code that the figures depend on."""
    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    if hasattr(os, "getloadavg"):
        info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for dist in ("numpy", "numba", "click", "pluggy", "attrs", "cattrs", "sqlite-utils"):
        try:
            from importlib import metadata

            info[dist] = metadata.version(dist)
        except Exception:
            info[dist] = "not installed"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        info["gridkit commit"] = rev + (" (src/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["gridkit commit"] = "unknown"
    return info


def calibrate(n: int = 500_000) -> float:
    """ns per call of a trivial Python function (best of 5): how fast the machine is right now.

    On shared or virtual machines this moves by up to 2x with the neighbours' load, and every
    pure-Python figure moves with it; it is recorded beside the figures for that reason.
    """
    def f(x: int) -> int:
        return x

    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            f(i)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e9


def cpu_seconds() -> tuple[float, float, float] | None:
    """(CPU seconds all processes used, CPU seconds stolen by the hypervisor, CPU seconds this
    process and its finished children used) so far; None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        import resource
    except (OSError, IndexError, ImportError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    ticks = [int(x) for x in fields]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    steal = ticks[7] if len(ticks) > 7 else 0
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return busy / hz, steal / hz, mine


# --- script entry point -------------------------------------------------------------------------


def main(collect: Callable[[bool], list[Section]], description: str,
         profile: Callable[[], str] | None = None) -> None:
    """Command line of a bench script: ``[--quick] [--json PATH] [--profile]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller inputs (CI smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the sections as JSON here")
    if profile is not None:
        parser.add_argument("--profile", action="store_true",
                            help="print cProfile's top entries instead of benchmarking")
    args = parser.parse_args()
    if profile is not None and args.profile:
        print(profile())
        return
    sections = collect(args.quick)
    print_sections(sections)
    if args.json:
        Path(args.json).write_text(json.dumps([s.to_dict() for s in sections], indent=1))
