"""Run every benchmark, print one table, and write ``benchmarks/RESULTS.rst``.

Usage, from the repository root with the project's interpreter::

    python benchmarks/run_all.py            # full run (a few minutes), writes RESULTS.rst
    python benchmarks/run_all.py --quick    # smoke run (< 1 minute), writes nothing

Each ``bench_*.py`` runs in its own fresh process (so one area's imports and caches do not
colour another's figures) and hands its sections back as JSON. A missed target is a finding,
reported in the table; only a benchmark that cannot run makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, REPO, Section, calibrate, cpu_seconds, machine, text_table

SCRIPTS = ("bench_cli.py", "bench_example.py", "bench_engine.py", "bench_features.py",
           "bench_book.py", "bench_book_features.py", "bench_attention.py", "bench_risk.py",
           "bench_fused.py", "bench_monitors.py")
RESULTS = BENCH_DIR / "RESULTS.rst"


def run_script(script: str, quick: bool) -> tuple[list[Section], float, str | None]:
    """Run one bench script; return its sections, its wall time and an error, if any."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sections.json"
        cmd = [sys.executable, str(BENCH_DIR / script), "--json", str(out)]
        if quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return [], elapsed, "\n".join(tail) or f"exit status {proc.returncode}"
        data = json.loads(out.read_text())
    return [Section.from_dict(d) for d in data], elapsed, None


# --- reStructuredText ---------------------------------------------------------------------------


def rst_text(text: str) -> str:
    """Plain text made safe for reST inline content."""
    text = text.replace("\\", "\\\\")
    for ch in "*`|":
        text = text.replace(ch, "\\" + ch)
    # A word ending in "_" is a reference; "__" an anonymous one.
    return re.sub(r"_(?=\W|$)", r"\\_", text)


def rst_cell(text: str) -> str:
    """A list-table cell: sub-rows keep their nesting with a marker, not leading spaces."""
    stripped = text.lstrip(" ")
    marker = "↳ " if len(stripped) != len(text) else ""
    return marker + rst_text(stripped) if stripped else ".."  # ".." renders an empty cell


def list_table(headers: list[str] | None, rows: list[list[str]], widths: list[int]) -> str:
    lines = [".. list-table::"]
    if headers:
        lines.append("   :header-rows: 1")
    lines.append("   :widths: " + " ".join(map(str, widths)))
    lines.append("")
    for row in ([headers] if headers else []) + rows:
        for i, cell in enumerate(row):
            lines.append(("   * - " if i == 0 else "     - ") + cell)
    return "\n".join(lines) + "\n"


def section_rst(s: Section) -> str:
    title = rst_text(s.title)
    out = [title, "-" * len(title), "", s.method, ""]
    rows = [[rst_cell(r.name), rst_cell(r.value_text()), rst_cell(r.target),
             rst_cell(r.status()), rst_cell(r.baseline_text()), rst_cell(r.how)]
            for r in s.rows]
    out.append(list_table(["Measure", "Value", "Target", "Met", "Baseline", "How measured"],
                          rows, [22, 12, 10, 7, 20, 29]))
    if s.notes:
        out += [f"- {rst_text(n)}" for n in s.notes]
        out.append("")
    return "\n".join(out)


def busy_note(info: dict[str, str]) -> str:
    """A warning when other work loaded the machine during the run."""
    busy = float(info.get("_others_cores", "0"))
    if busy >= 0.1:
        return (f" Other work ran on the machine during this run (on average {busy:.2f} cores "
                "busy with other processes or stolen by the hypervisor, see below): "
                "in-process figures are the best of several runs and subprocess figures "
                "medians, but all are slower and noisier than on an idle machine; compare "
                "each figure with its baseline, measured alongside.")
    return ""


def write_rst(path: Path, sections: list[Section], info: dict[str, str], durations: list[str],
              errors: list[str], quick: bool) -> None:
    title = "Benchmark results"
    out = [
        title, "=" * len(title), "",
        "Figures from ``python benchmarks/run_all.py" + (" --quick" if quick else "")
        + "`` (how to run: ``benchmarks/README.md``). The scripts measure and never assert; "
        "each figure stands beside a baseline measured in the same run on the same machine, "
        "and the targets are those of the issue. A missed target is a finding for the "
        "code, not a failure of the benchmark." + busy_note(info), "",
        "Machine", "-------", "",
        list_table(None, [[rst_text(k), rst_text(v)] for k, v in info.items()
                          if not k.startswith("_")], [25, 75]),
        "Run time of each script: " + rst_text(", ".join(durations)) + ".", "",
    ]
    targets = [(s, r) for s in sections for r in s.rows if r.met is not None]
    if targets:
        out += ["Targets", "-------", ""]
        out.append(list_table(
            ["Area", "Measure", "Value", "Target", "Met", "Baseline"],
            [[rst_text(s.title.split(":")[0]), rst_cell(r.name), rst_cell(r.value_text()),
              rst_cell(r.target), rst_cell(r.status()), rst_cell(r.baseline_text())]
             for s, r in targets], [14, 26, 13, 13, 8, 26]))
    for s in sections:
        out.append(section_rst(s))
    if errors:
        out += ["Errors", "------", ""]
        out += [f"- {rst_text(e)}" for e in errors]
        out.append("")
    path.write_text("\n".join(out).rstrip("\n") + "\n", encoding="utf-8")


def check_rst(path: Path) -> list[str]:
    """Problems docutils finds in the written file (empty if none, or docutils is missing)."""
    try:
        import docutils.core
        import docutils.utils
    except ImportError:
        return []
    try:
        docutils.core.publish_doctree(path.read_text(encoding="utf-8"),
                                      settings_overrides={"halt_level": 2,
                                                          "report_level": 2,
                                                          "warning_stream": False})
    except docutils.utils.SystemMessage as err:
        return [str(err)]
    return []


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller inputs (CI smoke, < 1 minute); "
                             "writes no RESULTS.rst unless --output is given")
    parser.add_argument("--output", metavar="PATH",
                        help=f"reST file to write (default: {RESULTS.relative_to(REPO)} on a "
                             "full run, none on a quick one)")
    parser.add_argument("--only", nargs="+", choices=[s[6:-3] for s in SCRIPTS],
                        help="run only these areas")
    args = parser.parse_args()
    output = Path(args.output) if args.output else (None if args.quick else RESULTS)

    info = machine()
    speed_before = calibrate()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    sections: list[Section] = []
    durations: list[str] = []
    errors: list[str] = []
    for script in SCRIPTS:
        if args.only and script[6:-3] not in args.only:
            continue
        print(f"running {script}{' --quick' if args.quick else ''} ...", end=" ", flush=True)
        got, elapsed, error = run_script(script, args.quick)
        print(f"{elapsed:.0f} s" + (" FAILED" if error else ""), flush=True)
        durations.append(f"{script} {elapsed:.0f} s")
        sections += got
        if error:
            errors.append(f"{script} failed: {error}")
    total = time.perf_counter() - started
    durations.append(f"total {total:.0f} s")
    cpu_after = cpu_seconds()
    info["Python call cost (calibration)"] = (
        f"{speed_before:.0f} ns at the start, {calibrate():.0f} ns at the end (a trivial "
        "function call in a loop, best of 5; lower is faster)")
    if cpu_before is not None and cpu_after is not None:
        others = max(0.0, (cpu_after[0] - cpu_before[0]) - (cpu_after[2] - cpu_before[2]))
        stolen = cpu_after[1] - cpu_before[1]
        info["other work during the run"] = (
            f"{others:.0f} CPU-seconds by other processes (on average {others / total:.2f} of "
            f"{info['cores']} cores), {stolen:.0f} CPU-seconds stolen by the hypervisor")
        info["_others_cores"] = f"{(others + stolen) / total:.3f}"

    table = []
    for s in sections:
        area = s.title.split(":")[0]
        for r in s.rows:
            table.append((area, r.name, r.value_text(), r.target, r.status(), r.baseline_text()))
    print()
    print(text_table(("area", "measure", "value", "target", "", "baseline"), table))
    for s in sections:
        if s.notes:
            print(f"\n{s.title}:")
            for n in s.notes:
                print(f"  - {n}")
    targets = [r for s in sections for r in s.rows if r.met is not None]
    missed = [r for r in targets if not r.met]
    print(f"\ntargets: {len(targets) - len(missed)} met, {len(missed)} missed"
          + (" (" + "; ".join(f"{r.name}: {r.value_text()}, target {r.target}"
                              for r in missed) + ")" if missed else ""))
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items() if not k.startswith("_")))
    print(f"total time {total:.0f} s")
    for e in errors:
        print(f"\nERROR {e}", file=sys.stderr)

    if output is not None:
        write_rst(output, sections, info, durations, errors, args.quick)
        problems = check_rst(output)
        print(f"wrote {output}" + (f" (reST problems: {problems})" if problems else ""))
        if problems:
            return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
