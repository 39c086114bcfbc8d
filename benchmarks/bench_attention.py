"""What attention costs: the regime-selector example with and without its attention stage.

Target (issue): the example pipeline with attention active stays within 2x of the same pipeline
without it, and a shadow book costs at most the real book's time again. All timings are of the
event loop in this process (``run_pipeline``), best of N rounds in which every variant and the
baseline — the same pipeline without ``[[attention]]`` — run once each, in turn:

The example's drawdown halt is left out of every variant, so that each times a whole run of
trading.

* **learning**: the attention modules and the controller at seed 002's thresholds (1,000
  learning trades, then shadow);
* **shadow**: the controller leaves learning at once (``learn_trades = 0``) and runs a shadow
  book, a second copy of the strategy on simulated fills, on every bar;
* **active**: it is active from the first window on (``margin`` so wide that the shadow always
  wins), so the proposals reach the grid and a base-parameter shadow book runs beside it.

Run from the repository root: ``python benchmarks/bench_attention.py [--quick]``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from common import EXAMPLES, Row, Section, main

SELECTOR = EXAMPLES / "selector.toml"
MODULES = """
[[attention]]
use = "regime-attention"
[[attention]]
use = "feature-attention"
[[attention]]
use = "progressive"
"""
PHASES = {
    "learning": "",
    "shadow": "learn_trades = 0\nshadow_trades = 1000000\n",
    "active": "learn_trades = 0\nshadow_trades = 50\nmargin = 100\n",
}


def _pipeline(attention: str | None) -> Any:
    import re

    from gridkit.runtime.pipeline_file import parse_pipeline

    # The example as shipped has attention: the baseline is the same file without it. Its
    # drawdown halt goes too: a halt stops the real book's trading at a point that depends on
    # what attention changed, which would time two different amounts of trading.
    text = re.sub(r"\[\[attention\]\]\nuse = \"[a-z-]+\"[^\n]*\n+", "", SELECTOR.read_text())
    text = re.sub(r"\[\[risk\]\]\nuse = \"drawdown\"\nlimit = [0-9.]+[^\n]*\n", "", text)
    if attention is not None:
        text = text.replace("[strategy]", MODULES + attention + "\n[strategy]", 1)
    return parse_pipeline(text, base_dir=SELECTOR.parent)


def _run(config: Any) -> dict[str, Any]:
    from gridkit.runtime.engine import build_pipeline, run_pipeline

    return run_pipeline(build_pipeline(config))


def collect(quick: bool) -> list[Section]:
    repeat = 2 if quick else 7
    configs = {"none": _pipeline(None)}
    configs.update({phase: _pipeline(options) for phase, options in PHASES.items()})
    results = {name: _run(cfg) for name, cfg in configs.items()}  # warm: numba caches, imports
    # Interleaved rounds: each variant is timed once per round, so a slower stretch of the
    # machine (or a heap grown by the earlier runs) falls on all of them alike.
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeat):
        for name, cfg in configs.items():
            gc.collect()  # the previous run's garbage is not this run's time
            t0 = time.perf_counter()
            _run(cfg)
            times[name].append(time.perf_counter() - t0)
    base = min(times["none"])
    rows = [Row("selector example, no attention", base, "s",
                how=f"event loop, best of {repeat} interleaved rounds")]
    notes = []
    for phase in PHASES:
        got = results[phase]
        stats = next(v for k, v in got["components"].items()
                     if k.startswith("attention") and "windows" in v)
        t = min(times[phase])
        rows.append(Row(f"with attention ({phase}; ended {stats['phase']})", t / base, "x",
                        target="<= 2x", met=t / base <= 2.0, baseline=base, baseline_unit="s",
                        baseline_name="no attention", how="same pipeline, same rounds"))
        notes.append(f"{phase}: {got['bars_accepted']:,} bars, phase {stats['phase']}, "
                     f"shadow trades {stats['shadow'].get('trades', 0)}, "
                     f"windows {stats['windows']}")
    return [Section("attention", "Attention overhead",
                    "The regime-selector example (real BTC/USDT 5m) timed with and without "
                    "feature and regime attention under a progressive controller.", rows,
                    notes)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
