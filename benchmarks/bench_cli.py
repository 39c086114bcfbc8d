"""Start-up cost: ``gridkit --help`` and ``import gridkit`` in fresh processes.

Target (issue): ``gridkit --help`` under 0.3 s cold, importing no plugin module, and
``import gridkit`` loads no numeric or storage library (numpy, numba, sqlite_utils, ccxt).
"Cold" here is a fresh interpreter process with the bytecode caches already written (one
discarded warm-up run writes them); the OS file cache is warm, as it is for a user who runs
gridkit twice.

Run from the repository root: ``python benchmarks/bench_cli.py [--quick]``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict

from common import (
    ALL_PLUGINS_ENV,
    GRIDKIT_SCRIPT,
    NO_PYC_ENV,
    REPO,
    SUBPROCESS_ENV,
    Row,
    Section,
    at_most,
    main,
    median,
    run_python,
    spread,
    time_command,
)

#: Modules that ``import gridkit`` and ``gridkit --help`` must not load (DESIGN.md §3).
HEAVY = ("numpy", "numba", "llvmlite", "sqlite_utils", "sqlite3", "ccxt", "pandas", "pyarrow",
         "aiohttp", "scipy")
#: Modules worth knowing about even if they are allowed.
WATCH = ("click", "pluggy", "attrs", "cattrs", "packaging", "importlib.metadata", "email",
         "tomllib", "gridkit.plugins")

_PROBE = """
import sys, json, time
t0 = time.perf_counter()
{stmt}
t1 = time.perf_counter()
mods = set(sys.modules)
def loaded(name):
    return name in mods or any(m.startswith(name + ".") for m in mods)
print(json.dumps({{
    "seconds": t1 - t0,
    "heavy": [m for m in {heavy!r} if loaded(m)],
    "watch": [m for m in {watch!r} if loaded(m)],
    "modules": len(mods),
    "plugin_modules": sorted(m for m in mods if m.startswith("gridkit.plugins.")),
}}))
"""

_HELP_STMT = """
import io, contextlib
from gridkit.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
"""

_SPLIT = """
import io, contextlib, json, time
t0 = time.perf_counter()
from gridkit.cli import main
t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1]))
"""


def third_party() -> list[str]:
    """Distributions other than gridkit that declare ``gridkit`` or ``gridkit.commands`` entry
    points."""
    from importlib import metadata

    names = {ep.dist.metadata["Name"] for group in ("gridkit", "gridkit.commands")
             for ep in metadata.entry_points(group=group) if ep.dist is not None}
    return sorted(names - {"gridkit"}) or ["none installed"]


def probe(stmt: str) -> dict:
    """Time ``stmt`` in a fresh interpreter and report which watched modules it loaded."""
    code = _PROBE.format(stmt=stmt, heavy=HEAVY, watch=WATCH)
    return json.loads(run_python(code).strip().splitlines()[-1])


def import_profile(stmt: str) -> list[tuple[str, float]]:
    """``python -X importtime``: self time per top-level package (seconds), largest first."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], cwd=REPO,
                          env=SUBPROCESS_ENV, capture_output=True, text=True)
    per_pkg: dict[str, float] = defaultdict(float)
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            per_pkg[m.group(4).split(".")[0]] += int(m.group(1)) / 1e6
    return sorted(per_pkg.items(), key=lambda kv: -kv[1])


def collect(quick: bool) -> list[Section]:
    runs = 3 if quick else 15
    py = sys.executable
    how_fresh = f"median of {runs} fresh processes after 1 warm-up, wall time fork to exit"

    raw = {
        "python -c pass": time_command([py, "-c", "pass"], runs),
        "python -c 'import click'": time_command([py, "-c", "import click"], runs),
        "python -c 'import gridkit'": time_command([py, "-c", "import gridkit"], runs),
        "gridkit --help": time_command([str(GRIDKIT_SCRIPT), "--help"], runs),
        "gridkit --help, no bytecode cache": time_command(
            [str(GRIDKIT_SCRIPT), "--help"], runs, env=NO_PYC_ENV),
        "gridkit --help, all installed plugins": time_command(
            [str(GRIDKIT_SCRIPT), "--help"], runs, env=ALL_PLUGINS_ENV),
    }
    t_pass, t_click, t_import, t_help, t_help_nopyc, t_help_all = (
        median(t) for t in raw.values())

    inproc = [probe("import gridkit") for _ in range(runs)]
    t_import_in = median([p["seconds"] for p in inproc])
    help_probe = probe(_HELP_STMT)
    splits = [json.loads(run_python(_SPLIT).strip().splitlines()[-1]) for _ in range(runs)]
    t_cli_import = median([s[0] for s in splits])
    t_cli_call = median([s[1] for s in splits])

    heavy_import = inproc[0]["heavy"]
    rows = [
        Row("gridkit --help (console script)", t_help, "s", "< 0.3 s", at_most(t_help, 0.3),
            t_pass, "s", "python -c pass", how_fresh),
        Row("gridkit --help, no bytecode cache", t_help_nopyc, "s", "", None, t_pass, "s",
            "python -c pass", how_fresh + " with PYTHONDONTWRITEBYTECODE=1 and an empty "
            "PYTHONPYCACHEPREFIX: every module, standard library included, is compiled from "
            "source on every start (the worst case, e.g. an install without .pyc files)"),
        Row("gridkit --help, all installed plugins", t_help_all, "s", "", None, t_pass, "s",
            "python -c pass", how_fresh + " without GRIDKIT_LOAD_PLUGINS: the commands of "
            "every installed third-party distribution are listed too (" + ", ".join(
                third_party()) + "); no plugin is imported either way"),
        Row("python -c 'import gridkit'", t_import, "s", "", None, t_pass, "s",
            "python -c pass", how_fresh),
        Row("python -c 'import click'", t_click, "s", "", None, t_pass, "s", "python -c pass",
            how_fresh + " (baseline: the CLI framework alone)"),
        Row("import gridkit, in process", t_import_in, "s", "", None, None, "", "",
            "perf_counter around the import statement in a fresh process, median"),
        Row("  of --help: import gridkit.cli", t_cli_import, "s", "", None, None, "", "",
            "perf_counter in a fresh process, median"),
        Row("  of --help: main(['--help'])", t_cli_call, "s", "", None, None, "", "",
            "perf_counter in a fresh process, median (includes reading the entry points "
            "and the listed commands' help from their source)"),
        Row("heavy modules after import gridkit", float(len(heavy_import)), "", "0",
            not heavy_import, None, "", "", "sys.modules in a fresh process; watched: "
            + ", ".join(HEAVY)),
        Row("heavy modules after gridkit --help", float(len(help_probe["heavy"])), "", "0",
            not help_probe["heavy"], None, "", "", "sys.modules after main(['--help'])"),
        Row("plugin modules after gridkit --help", float(len(help_probe["plugin_modules"])), "",
            "0", not help_probe["plugin_modules"], None, "", "",
            "gridkit.plugins.* in sys.modules after main(['--help'])"),
    ]
    notes = [f"{name}: {spread(times)}" for name, times in raw.items()]
    notes += [
        "import gridkit loads heavy modules: " + (", ".join(heavy_import) or "none")
        + f"; also loads: {', '.join(inproc[0]['watch']) or 'none'}"
        + f" ({inproc[0]['modules']} modules in sys.modules)",
        "gridkit --help loads heavy modules: " + (", ".join(help_probe["heavy"]) or "none")
        + f"; also loads: {', '.join(help_probe['watch']) or 'none'}"
        + f" ({help_probe['modules']} modules)",
    ]
    top = import_profile(_HELP_STMT)[:10]
    notes.append("python -X importtime of --help, self time by top-level package: "
                 + ", ".join(f"{name} {sec * 1000:.0f} ms" for name, sec in top))
    return [Section(
        "cli", "Start-up: gridkit --help and import gridkit",
        "Fresh subprocesses of the venv's interpreter and its installed ``gridkit`` console "
        "script, run from the repository root with ``GRIDKIT_LOAD_PLUGINS=''`` (built-in "
        "plugins only) and a private ``PYTHONPYCACHEPREFIX``. One warm-up run is discarded (it "
        "writes the bytecode caches a normal installation has), then the median of the rest is "
        "reported; the OS file cache is warm. Baselines are the bare "
        "interpreter (``python -c pass``) and the CLI framework (``python -c 'import click'``).",
        rows, notes)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
