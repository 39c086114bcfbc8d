"""What the portfolio risk stack costs: the four-coin example with and without its risk checks.

Two measurements, each beside a baseline taken in the same run:

* **per event** — ``examples/portfolio-risk.toml`` (four lanes of real Binance 5m bars, May
  2021) timed with its whole ``[[risk]]`` stack, with that stack plus ``safe-size``, and with
  no risk check at all (the baseline). The event loop in this process (``run_pipeline``), best
  of N interleaved rounds: every variant and the baseline run once per round, in turn. The
  checks refuse orders, so the variants do not trade alike: the difference is the stack's
  cost *and* the trading it prevents (the notes give the orders each placed).
* **per order** — one ``check()`` call of each statistics check on a book warmed on the same
  data (the statistics already computed), against ``position-size``'s ``check()``, the
  cheapest check there is, timed in the same loop.

Run from the repository root: ``python benchmarks/bench_risk.py [--quick]``.
"""

from __future__ import annotations

import gc
import gzip
import json
import time
from pathlib import Path
from typing import Any

from common import EXAMPLES, Row, Section, main

EXAMPLE = EXAMPLES / "portfolio-risk.toml"
SAFE_SIZE = '[[risk]]\nuse = "safe-size"\nwindow = 288\nevery = 12\n\n'


def _texts() -> dict[str, str]:
    """The example without its ``[[risk]]`` blocks, as it is, and with ``safe-size`` first."""
    text = EXAMPLE.read_text()
    head, *blocks = text.split("[[risk]]")
    tail = blocks[-1][blocks[-1].index("[executor]"):]
    blocks[-1] = blocks[-1][:blocks[-1].index("[executor]")]
    stack = "".join("[[risk]]" + b for b in blocks)
    return {"none": head + tail, "stack": head + stack + tail,
            "stack + safe-size": head + SAFE_SIZE + stack + tail}


def _run(config: Any) -> dict[str, Any]:
    from gridkit.runtime.engine import build_pipeline, run_pipeline

    return run_pipeline(build_pipeline(config))


def _per_event(quick: bool) -> Section:
    from gridkit.runtime.pipeline_file import parse_pipeline

    repeat = 2 if quick else 5
    texts = _texts()
    configs = {name: parse_pipeline(t, base_dir=EXAMPLE.parent) for name, t in texts.items()}
    results = {name: _run(cfg) for name, cfg in configs.items()}  # warm: imports, caches
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeat):
        for name, cfg in configs.items():
            gc.collect()
            t0 = time.perf_counter()
            _run(cfg)
            times[name].append(time.perf_counter() - t0)
    events = results["none"]["bars_accepted"]
    base = min(times["none"]) / events
    rows = [Row("four-coin example, no risk check", base * 1e6, "us",
                how=f"event loop / accepted bars, best of {repeat} interleaved rounds")]
    notes = [f"{events:,} accepted bars over 4 lanes"]
    for name in ("stack", "stack + safe-size"):
        t = min(times[name]) / events
        got = results[name]
        rows.append(Row(f"with the risk {name}", t * 1e6, "us", baseline=base * 1e6,
                        baseline_unit="us", baseline_name="no risk check",
                        how=f"same pipeline, same rounds; {t / base:.2f}x the baseline"))
        risk = got.get("risk") or {}
        notes.append(f"{name}: {got['orders_placed']:,} orders placed (baseline "
                     f"{results['none']['orders_placed']:,}), "
                     f"{got['orders_rejected']:,} refused, "
                     f"{risk.get('recomputes', 0)} recomputes of the risk book")
    return Section("risk", "Portfolio risk stack",
                   "The four-coin example (real Binance 5m, May 2021) timed with its risk "
                   "checks and without any.", rows, notes)


def _per_order(quick: bool) -> Section:
    from gridkit import Bar, Fill
    from gridkit.plugins.risk import PositionSize
    from gridkit.plugins.risk.stats import Correlation, SafeSize, Var
    from gridkit.runtime.account import Account, Position
    from gridkit.runtime.context import Context, RunInfo
    from gridkit.runtime.ledger import Ledger
    from gridkit.testing import advance, build

    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT")
    bars = {}
    for s in symbols:
        with gzip.open(EXAMPLES / "data" / f"{s.replace('/', '_')}-5m.json.gz", "rt") as f:
            bars[s] = [Bar(int(r[0]), *map(float, r[1:6])) for r in json.load(f)[:400]]
    run = RunInfo("bench", "backtest", symbols[0], 1e6, Path.cwd(), symbols)
    acct, ledger = Account(1e6, "USDT"), Ledger("b")
    ctxs = {s: Context(run, acct, ledger, s, acct.add(Position(s))) for s in symbols}
    checks = {
        "position-size": build(PositionSize, {"max_fraction": 0.5}),
        "correlation": build(Correlation, {"limit": 0.99, "window": 288, "every": 12}),
        "var (historical)": build(Var, {"limit": 0.5, "window": 288, "every": 12}),
        "var (cornish-fisher)": build(Var, {"limit": 0.5, "window": 288, "every": 12,
                                            "method": "cornish-fisher"}),
        "safe-size": build(SafeSize, {"window": 288, "every": 12, "max_fraction": None}),
    }
    for k in range(400):
        for s, ctx in ctxs.items():
            advance(ctx, bars[s][k])
            for c in checks.values():
                c.on_bar(ctx)
    for s, ctx in ctxs.items():  # a position in every coin: the checks have work to do
        ctx.portfolio.apply(Fill(f"h-{s}", ctx.bar.ts, "buy", 1000.0 / ctx.bar.close,
                                 ctx.bar.close, 0.0, symbol=s))
    book = checks["correlation"].book
    assert book is not None and book.ready
    ctx = ctxs["ETH/USDT"]
    order = ctx.order("buy", 0.01, ctx.bar.close)
    n = 20_000 if quick else 200_000
    times: dict[str, float] = {}
    for _ in range(3 if quick else 7):
        for name, c in checks.items():
            check = c.check
            t0 = time.perf_counter()
            for _ in range(n):
                check(order, ctx)
            t = (time.perf_counter() - t0) / n
            times[name] = min(times.get(name, t), t)
    base = times["position-size"]
    rows = [Row("position-size check()", base * 1e6, "us",
                how=f"best of interleaved rounds of {n:,} calls")]
    for name, t in times.items():
        if name != "position-size":
            rows.append(Row(f"{name} check()", t * 1e6, "us", baseline=base * 1e6,
                            baseline_unit="us", baseline_name="position-size",
                            how=f"same loop; {t / base:.1f}x position-size"))
    return Section("risk-order", "Portfolio risk checks per order",
                   "One check() of each statistics check on a risk book warmed on 400 real "
                   "5m bars of four coins, with a position in each, beside position-size.",
                   rows, [f"{len(symbols)} symbols, window 288, every 12; "
                          f"{book.recomputes} recomputes while warming"])


def collect(quick: bool) -> list[Section]:
    return [_per_event(quick), _per_order(quick)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
