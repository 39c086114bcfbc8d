"""The grid study: every built-in grid and the regime selector, with and without progressive
attention, on real data they were not tuned on — measured, not argued.

Each grid is laid by one rule relative to the first close ``p0`` of each file (no parameter is
fitted to any file); ``qty`` per cell spends about the capital over 40 cells. The attended
selector is the same selector with ``regime-attention`` and ``feature-attention`` governed by a
``progressive`` controller at seed 002's production thresholds (1,000 learning trades, 200
shadow trades, max influence 0.3). Fees: 0.1 % maker and taker (Binance's base tier).

Run from the repository root: ``python benchmarks/grid_study.py [--write docs/grid-study.rst]``
(needs the shared data: ``../shared/data`` or ``$GRIDKIT_TEST_DATA``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ["GRIDKIT_LOAD_PLUGINS"] = ""  # built-ins only

CAPITAL = 10_000.0
FEATURES = """
[[features]]
use = "rsi"
period = 14
[[features]]
use = "volatility"
period = 30
[[features]]
use = "volume-ratio"
period = 30
[[features]]
use = "atr"
period = 14
"""
REGIMES = "".join(f'[[regimes]]\nuse = "{r}"\n' for r in ("ranging", "trending", "volatile",
                                                           "dormant"))
def _example_map() -> str:
    """The ``[strategy.map.*]`` tables of ``examples/selector.toml``, as written there."""
    text = (REPO / "examples" / "selector.toml").read_text()
    start = text.index("[strategy.map.")
    end = text.index("[[", start)
    return text[start:end]


SELECTOR_MAP = _example_map()
ATTENTION = """
[[attention]]
use = "regime-attention"
[[attention]]
use = "feature-attention"
[[attention]]
use = "progressive"
"""


def data_root() -> Path:
    env = os.environ.get("GRIDKIT_TEST_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not (root / "ohlcv").is_dir():
        sys.exit(f"grid_study: no shared data at {root} (set GRIDKIT_TEST_DATA)")
    return root


def datasets(root: Path) -> list[dict[str, Any]]:
    o = root / "ohlcv"
    fut = o / "freqtrade" / "futures"
    return [
        {"name": "BTC 5m", "symbol": "BTC/USDT", "use": "freqtrade-json",
         "path": o / "nostalgiaforinfinity" / "BTC_USDT-5m.json"},
        {"name": "ETH 5m", "symbol": "ETH/USDT", "use": "freqtrade-json",
         "path": o / "nostalgiaforinfinity" / "ETH_USDT-5m.json"},
        {"name": "SOL 5m", "symbol": "SOL/USDT", "use": "freqtrade-json",
         "path": o / "nostalgiaforinfinity" / "SOL_USDT-5m.json"},
        {"name": "DOGE 1m", "symbol": "DOGE/USDT", "use": "freqtrade-json",
         "path": o / "tooyipjee-freqtrade" / "DOGE_USDT-1m.json"},
        {"name": "XRP perp 5m", "symbol": "XRP/USDT:USDT", "use": "parquet",
         "path": fut / "XRP_USDT_USDT-5m-futures.feather",
         "market": f'[market]\ntype = "linear"\nleverage = 1\n'
                   f'funding = "{(fut / "XRP_USDT_USDT-8h-funding_rate.feather").as_posix()}"\n'
                   f'mark = "{(fut / "XRP_USDT_USDT-8h-mark.feather").as_posix()}"\n',
         "start": "2021-11-18"},
    ]


def bars_of(ds: dict[str, Any]) -> list[tuple[int, float]]:
    """(ts, close) of every bar of the file, in order."""
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = head(ds) + '[strategy]\nuse = "disabled"\n'
    p = build_pipeline(parse_pipeline(text))
    source = p.lanes[0].source
    source.setup(p.run)
    from gridkit.runtime.pipeline_file import parse_time

    first = parse_time(ds["start"]) if ds.get("start") else None  # (the engine applies it)
    try:
        return [(e.ts, float(e.close)) for e in source.events()
                if hasattr(e, "close") and (first is None or e.ts >= first)]
    finally:
        source.close()


def windows(bars: list[tuple[int, float]], days: int) -> list[tuple[int, int, float]]:
    """Consecutive windows of ``days`` (the last one only if at least half as long; a file
    shorter than that is one window): start ms, end ms and the first close."""
    out = []
    span = days * 86_400_000
    i = 0
    while i < len(bars):
        start = bars[i][0]
        j = i
        while j < len(bars) and bars[j][0] < start + span:
            j += 1
        if bars[j - 1][0] - start >= span // 2:
            out.append((start, bars[j - 1][0], bars[i][1]))
        i = j
    if not out and bars:
        out.append((bars[0][0], bars[-1][0], bars[0][1]))
    return out


def first_close(ds: dict[str, Any]) -> float:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = head(ds) + '[strategy]\nuse = "disabled"\n'
    p = build_pipeline(parse_pipeline(text))
    source = p.lanes[0].source
    source.setup(p.run)
    for event in source.events():
        close = getattr(event, "close", None)
        if close:
            source.close()
            return float(close)
    raise SystemExit(f"grid_study: {ds['path']} has no bar")


def head(ds: dict[str, Any], window: tuple[int, int] | None = None) -> str:
    start = f'start = "{ds["start"]}"\n' if ds.get("start") else ""
    if window is not None:
        start = f'start = "{window[0]}"\nend = "{window[1]}"\n'

    return (f'[pipeline]\nname = "study"\nsymbol = "{ds["symbol"]}"\ncapital = {CAPITAL}\n'
            f'{start}{ds.get("market", "")}'
            f'[source]\nuse = "{ds["use"]}"\npath = "{Path(ds["path"]).as_posix()}"\n'
            f'{FEATURES}[executor]\nuse = "simulated"\nmaker_fee = 0.001\ntaker_fee = 0.001\n')


def strategies(p0: float) -> dict[str, str]:
    qty = float(f"{CAPITAL / (p0 * 40):.3g}")
    return {
        "static": f'use = "static"\nlower = {p0 * 0.8:.6g}\nupper = {p0 * 1.2:.6g}\n'
                  f'grids = 30\nqty = {qty}\n',
        "symmetric": f'use = "symmetric"\nspacing = 0.01\nlevels = 8\ncooldown = 288\n'
                     f'qty = {qty}\n',
        "geometric": f'use = "geometric"\nspacing = 0.01\nlevels = 6\ngrowth = 1.2\n'
                     f'qty = {qty}\n',
        "fibonacci": f'use = "fibonacci"\nlower = {p0 * 0.8:.6g}\nupper = {p0 * 1.2:.6g}\n'
                     f'qty = {qty * 3:.3g}\n',
        "asymmetric": f'use = "asymmetric"\nspacing_up = 0.008\nspacing_down = 0.012\n'
                      f'levels_up = 6\nlevels_down = 4\nqty = {qty}\n',
        "volatility-adjusted": f'use = "volatility-adjusted"\nlevels = 8\nmeasure = "atr"\n'
                               f'qty = {qty}\ncooldown = 288\n',
        "trailing": f'use = "trailing"\nlower = {p0 * 0.9:.6g}\nupper = {p0 * 1.1:.6g}\n'
                    f'grids = 20\ntrail = "both"\nqty = {qty}\n',
        "regime-selector": f'use = "regime-selector"\nqty = {qty}\nmin_bars = 24\n'
                           + SELECTOR_MAP,
        "regime-selector (keep)": f'use = "regime-selector"\nqty = {qty}\nmin_bars = 24\n'
                                  f'handover = "keep"\n' + SELECTOR_MAP,
        "selector + attention": f'use = "regime-selector"\nqty = {qty}\nmin_bars = 24\n'
                                + SELECTOR_MAP,
        "selector + attention (fast)": f'use = "regime-selector"\nqty = {qty}\n'
                                       f'min_bars = 24\n' + SELECTOR_MAP,
    }


def run_one(ds: dict[str, Any], name: str, strategy: str,
            window: tuple[int, int] | None = None) -> dict[str, Any]:
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    extra = REGIMES if "selector" in name else ""
    if name == "selector + attention":
        extra += ATTENTION
    elif name == "selector + attention (fast)":  # thresholds a month of bars can reach
        extra += ATTENTION + "learn_trades = 200\nshadow_trades = 50\n"
    strategy_table, _, maps = strategy.partition("[strategy.map.")
    text = head(ds, window) + extra + "[strategy]\n" + strategy_table + (
        "[strategy.map." + maps if maps else "")
    started = time.perf_counter()
    s = run_pipeline(build_pipeline(parse_pipeline(text)))
    s["_seconds"] = time.perf_counter() - started
    return s


def figures(s: dict[str, Any]) -> dict[str, Any]:
    comps = s.get("components", {})
    attn = next((v for k, v in comps.items() if k.startswith("attention") and "phase" in v), {})
    g = s.get("grid", {})
    return {
        "return": s["final_equity"] / CAPITAL - 1,
        "max_dd": s["max_drawdown"],
        "grid_apr": g.get("grid_apr"),
        "round_trips": g.get("round_trips", 0),
        "fees": s["fees_paid"],
        "hold": g.get("buy_hold_return"),
        "halted": bool(s.get("halted")),
        "phase": attn.get("phase", ""),
        "rollbacks": attn.get("rollbacks", 0),
        "seconds": s["_seconds"],
    }


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and x == x]
    return sum(xs) / len(xs) if xs else math.nan


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One line per data set and strategy: the mean over its windows (worst drawdown)."""
    keys: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        keys.setdefault((r["data"], r["strategy"]), []).append(r)
        keys.setdefault(("all", r["strategy"]), []).append(r)
    head = ("Data", "Strategy", "Windows", "Mean return", "Beat hold", "Worst DD",
            "Grid APR", "Round trips", "Fees", "Buy & hold", "Attention phases")
    out = [" | ".join(head), " | ".join("---" for _ in head)]
    for (data, name), rs in sorted(keys.items(), key=lambda kv: kv[0][0] == "all"):
        phases: dict[str, int] = {}
        for r in rs:
            if r["phase"]:
                phases[r["phase"]] = phases.get(r["phase"], 0) + 1
        beat = sum(1 for r in rs if r["hold"] is not None and r["return"] > r["hold"])
        out.append(" | ".join([
            data, name, str(len(rs)), f"{_mean([r['return'] for r in rs]):+.2%}",
            f"{beat}/{len(rs)}", f"{max(r['max_dd'] for r in rs):.1%}",
            f"{_mean([r['grid_apr'] for r in rs]):+.0%}",
            str(sum(r["round_trips"] for r in rs)),
            f"{_mean([r['fees'] for r in rs]):,.0f}",
            f"{_mean([r['hold'] for r in rs]):+.2%}",
            ", ".join(f"{k} {v}" for k, v in sorted(phases.items())) or "-"]))
    return "\n".join(out)


def attention_verdict(rows: list[dict[str, Any]], variant: str) -> str:
    """Window by window: the attended selector's return minus the plain selector's."""
    plain = {(r["data"], r["window"]): r for r in rows if r["strategy"] == "regime-selector"}
    diffs = []
    for r in rows:
        if r["strategy"] == variant:
            base = plain.get((r["data"], r["window"]))
            if base is not None:
                diffs.append(r["return"] - base["return"])
    if not diffs:
        return "no window ran both selectors"
    better = sum(1 for d in diffs if d > 1e-12)
    worse = sum(1 for d in diffs if d < -1e-12)
    return (f"{variant} vs the plain selector over {len(diffs)} windows: mean difference "
            f"{_mean(diffs):+.3%}, better in {better}, worse in {worse}, equal in "
            f"{len(diffs) - better - worse}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write every window's figures to this JSON file")
    ap.add_argument("--only", help="run only strategies whose name contains this")
    ap.add_argument("--days", type=int, default=30, help="window length in days (30)")
    args = ap.parse_args()
    root = data_root()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for ds in datasets(root):
        bars = bars_of(ds)
        for w0, w1, p0 in windows(bars, args.days):
            for name, strategy in strategies(p0).items():
                if args.only and args.only not in name:
                    continue
                try:
                    s = run_one(ds, name, strategy, (w0, w1))
                except Exception as err:  # a row that cannot run says why; the study goes on
                    print(f"{ds['name']} {name}: {type(err).__name__}: {err}", file=sys.stderr)
                    continue
                rows.append({"data": ds["name"], "window": w0, "strategy": name,
                             **figures(s)})
        print(f"{ds['name']}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(summary_table(rows))
    print()
    for variant in ("selector + attention", "selector + attention (fast)"):
        print(attention_verdict(rows, variant))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
