"""How often the raw regime label flips, per 1,000 bars, on the real 1m/5m/1h files — and what
a minimum dwell of d bars leaves (the default of ``[pipeline] regime_dwell`` comes from this).

For each file and each built-in rule set — the four score rules together (``ranging``,
``trending``, ``volatile``, ``dormant`` on ``rsi``, ``volatility``, ``volume-ratio``), the
label rule ``garch-vol`` (on ``garch``) and the label rule ``markov`` (on ``volatility``), all
with their default options — the components are stepped bar by bar exactly as the engine's
regime stage runs them, and the script prints:

* ``bars``: bars with a label (after the warm-up);
* ``flips``: raw label changes per 1,000 labelled bars;
* ``1-bar``, ``2-bar``: share of the raw label runs (between two flips) that last one bar and
  two bars — the flicker a dwell is for;
* ``d=2``, ``d=3``, ``d=5``: label changes per 1,000 bars after the minimum dwell
  (:func:`gridkit.runtime.regime.held_labels`); a dwell of d delays a real change by d − 1
  bars.

The 1h rows: the one real 1h file (XRP/USDT perpetual, 100 bars: too short for the GARCH fit
and the Markov window) and the 5m files folded into 1h bars (open of the first, high/low
extremes, close of the last, summed volume). Not a speed benchmark: it prints no time.

What it showed (this machine's data, default options): the four score rules flip about 150
times per 1,000 bars on every file and timeframe, ~31 % of their label runs last one bar and
~14 % two; ``markov`` flips 350–470 times, 51–57 % one-bar runs and ~22 % two-bar runs;
``garch-vol`` hardly flips at the seed's 30 %/45 % thresholds (crypto in 2021 is HIGH nearly
all the time; 17 flips per 1,000 on BTC/USDT 5m, 23 % of them one-bar). A dwell of 2 removes
every one-bar run by construction but leaves the two-bar runs, the next most common: 76–128
flips per 1,000 remain. **d = 3** removes both (score rules −64 %, markov −90 %: 45 flips per
1,000 on BTC 1m) for a lag of two bars on a real change; d = 5 gains less per added bar of lag.
So ``regime_dwell`` defaults to 3 for every rule (:data:`gridkit.runtime.regime.
DEFAULT_DWELL`); ``regime_dwell = 1`` gives the plain highest score of every bar.

    python benchmarks/regime_flicker.py [DATA_DIR]
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

os.environ["GRIDKIT_LOAD_PLUGINS"] = ""

from gridkit.core.types import Bar
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
from gridkit.plugins.features.models import Garch
from gridkit.plugins.regime_models import GarchVol, Markov
from gridkit.plugins.regimes import Dormant, Ranging, Trending, Volatile
from gridkit.plugins.sources import FreqtradeJson, ParquetSource
from gridkit.runtime.regime import flips, held_labels
from gridkit.testing import advance, context

DWELLS = (2, 3, 5)
HOUR = 3_600_000


def load(path: Path) -> list[Bar]:
    from gridkit.runtime.context import RunInfo

    cls = ParquetSource if path.suffix == ".feather" else FreqtradeJson
    source = cls(cls.Config(path=str(path)))
    source.setup(RunInfo("flicker", "backtest", "X", 1.0))
    return list(source.events())


def fold_hours(bars: list[Bar]) -> list[Bar]:
    out: list[Bar] = []
    for b in bars:
        h = b.ts - b.ts % HOUR
        if out and out[-1].ts == h:
            o = out[-1]
            out[-1] = Bar(h, o.open, max(o.high, b.high), min(o.low, b.low), b.close,
                          o.volume + b.volume)
        else:
            out.append(Bar(h, b.open, b.high, b.low, b.close, b.volume))
    return out


def raw_score_labels(bars: list[Bar]) -> list[str | None]:
    """The four score rules, argmax as the engine's regime stage (ties to the first)."""
    feats = [("rsi", Rsi()), ("volatility", Volatility()), ("volume-ratio", VolumeRatio())]
    rules = [Ranging(), Trending(), Volatile(), Dormant()]
    ctx = context()
    out: list[str | None] = []
    for bar in bars:
        advance(ctx, bar)
        for key, f in feats:
            ctx.features[key] = f.update(bar)
        best_label, best = None, float("nan")
        for r in rules:
            s = r.score(ctx)
            if s == s and (best != best or s > best):
                best_label, best = r.label, s
        out.append(best_label)
    return out


def raw_rule_labels(bars: list[Bar], feats: list[tuple[str, Any]], rule: Any
                    ) -> list[str | None]:
    ctx = context()
    out: list[str | None] = []
    for bar in bars:
        advance(ctx, bar)
        for key, f in feats:
            ctx.features[key] = f.update(bar)
        out.append(rule.classify(ctx))
    return out


def row(name: str, rules: str, raw: list[str | None]) -> list[str]:
    labelled = [x for x in raw if x is not None]
    n = len(labelled)
    if n < 2:
        return [name, rules, str(n), "n/a", "", "", *([""] * len(DWELLS))]
    runs = Counter()
    length, prev = 0, labelled[0]
    for x in labelled:
        if x == prev:
            length += 1
        else:
            runs[length] += 1
            length, prev = 1, x
    total = sum(runs.values()) or 1
    per_k = 1000.0 / n
    cells = [name, rules, str(n), f"{flips(raw) * per_k:.1f}",
             f"{100 * runs[1] / total:.0f} %", f"{100 * runs[2] / total:.0f} %"]
    for d in DWELLS:
        cells.append(f"{flips(held_labels(raw, d)) * per_k:.1f}")
    return cells


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (root / "ohlcv").is_dir():
        root = Path("/work/shared/data")
    ohlcv = root / "ohlcv"
    files = [
        ("BTC/USDT 1m", ohlcv / "tooyipjee-freqtrade" / "BTC_USDT-1m.json", False),
        ("ETH/USDT 1m", ohlcv / "tooyipjee-freqtrade" / "ETH_USDT-1m.json", False),
        ("DOGE/USDT 1m", ohlcv / "tooyipjee-freqtrade" / "DOGE_USDT-1m.json", False),
        ("BTC/USDT 5m", ohlcv / "nostalgiaforinfinity" / "BTC_USDT-5m.json", False),
        ("ETH/USDT 5m", ohlcv / "nostalgiaforinfinity" / "ETH_USDT-5m.json", False),
        ("SOL/USDT 5m", ohlcv / "nostalgiaforinfinity" / "SOL_USDT-5m.json", False),
        ("XRP/USDT:USDT 1h", ohlcv / "freqtrade" / "futures" /
         "XRP_USDT_USDT-1h-futures.feather", False),
        ("BTC/USDT 1h*", ohlcv / "nostalgiaforinfinity" / "BTC_USDT-5m.json", True),
        ("ETH/USDT 1h*", ohlcv / "nostalgiaforinfinity" / "ETH_USDT-5m.json", True),
        ("SOL/USDT 1h*", ohlcv / "nostalgiaforinfinity" / "SOL_USDT-5m.json", True),
    ]
    head = ["file", "rules", "bars", "flips", "1-bar", "2-bar", *(f"d={d}" for d in DWELLS)]
    rows = []
    for name, path, fold in files:
        if not path.is_file():
            continue
        bars = load(path)
        if fold:
            bars = fold_hours(bars)
        rows.append(row(name, "4 score rules", raw_score_labels(bars)))
        rows.append(row(name, "garch-vol", raw_rule_labels(
            bars, [("garch", Garch())], GarchVol())))
        rows.append(row(name, "markov", raw_rule_labels(
            bars, [("volatility", Volatility())], Markov())))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("Regime label flips per 1,000 labelled bars: raw, and after a minimum dwell of d bars")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print("* 5m bars folded into 1h bars.  1-bar / 2-bar: share of raw label runs that short.")


if __name__ == "__main__":
    main()
