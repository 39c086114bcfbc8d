"""Monitors on the hot path: the example's event loop with and without them, in the same run.

Target (issue 12): monitors never slow the hot path by more than 10 %. The baseline is the
example pipeline (static grid, 42,915 real 1m bars) as shipped, journalling into a SQLite
store; the measured runs add ``metrics``, ``prometheus`` (its server up, not scraped),
``alerts`` (thresholds checked every 100 events; a webhook that is never called) and ``audit``
(every order event chained into the store), each alone, then all four. Each figure is the
event loop's own time (``summary["elapsed_s"]``), best of N runs alternated with the
baseline's.

Run from the repository root: ``python benchmarks/bench_monitors.py [--quick]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common import EXAMPLES, Row, Section, at_most, main

_ALERTS = {"use": "alerts", "url": "http://127.0.0.1:9/never",
           "above": {"drawdown": 0.99, "rss_mb": 100_000}}
MONITORS = {
    "metrics": [{"use": "metrics"}],
    "prometheus": [{"use": "prometheus", "port": 0}],
    "alerts": [_ALERTS],
    "audit": [{"use": "audit"}],
    "all four": [{"use": "metrics"}, {"use": "prometheus", "port": 0}, _ALERTS,
                 {"use": "audit"}],
}


def _run(monitors: list[dict[str, Any]], folder: Path, k: int) -> float:
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib

    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["source"]["path"] = str(EXAMPLES / "data" / "BTC_USDT-1m.json.gz")
    data["monitors"] = monitors
    data["store"] = {"use": "sqlite", "path": str(folder / f"run{k}.db")}
    summary = run_pipeline(build_pipeline(pipeline_from_data(data, "<bench>", folder)))
    return float(summary["elapsed_s"])


def collect(quick: bool) -> list[Section]:
    folder = Path(tempfile.mkdtemp())
    repeat = 3 if quick else 9
    best: dict[str, float] = {}
    k = 0
    _run([], folder, k)  # warm: imports, the OS file cache
    for _ in range(repeat):
        for name, monitors in (("none", []), *MONITORS.items()):
            k += 1
            t = _run(monitors, folder, k)
            best[name] = min(best.get(name, 1e9), t)
    rows = [Row("event loop, no monitor", best["none"], "s",
                how=f"the example into a SQLite store, best of {repeat}")]
    for name in MONITORS:
        ratio = best[name] / best["none"]
        rows.append(Row(f"event loop, {name}", ratio, "x", "<= 1.1", at_most(ratio, 1.1),
                        best["none"], "s", "no monitor",
                        f"{best[name]:.3f} s against {best['none']:.3f} s"))
    return [Section("monitors", "Monitors on the hot path",
                    "The example's event loop with monitors beside the same loop without, "
                    "alternated in one process; best of N.", rows, [])]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
