"""Features: the numba batch kernels (values/s) and the streaming ``update`` (ns per bar).

Two sections. The first (rsi, volatility, volume-ratio) shows what the batch path buys over
plain numpy or Python, and what each feature costs the engine per bar. The second is the core
set of issue 3 against its targets: the bar-reading features together on the streaming path
(p99 per bar <= 5 µs), each batch function (>= 10 M bars/s), each beside a naive
"recompute the window every bar" baseline in the same run, and memory over a long stream.

Batch: ``Feature().batch(columns)`` on the example's columns tiled to ~10M values, after a
warm-up call (the first call imports numba and loads or compiles the cached kernel, timed
separately in a fresh process). Streaming: ``update(bar)`` over the example's 42,915 Bar
objects.

Run from the repository root: ``python benchmarks/bench_features.py [--quick]``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from common import Row, Section, best_of, calibrate, load_rows, main, median, run_python

_COLD = """
import json, time
import numpy as np
t0 = time.perf_counter()
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
cols = {"close": np.linspace(100.0, 200.0, 1000), "volume": np.linspace(1.0, 2.0, 1000)}
out = {"import features": t1 - t0, "import numba": t2 - t1}
for cls in (Rsi, Volatility, VolumeRatio):
    s = time.perf_counter()
    cls().batch(cols)
    out[cls.name] = time.perf_counter() - s
print(json.dumps(out))
"""


_COLD_FUSED = """
import json, time
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
from gridkit.plugins.features.bar_set import FEATURES
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from gridkit.plugins.features.fusion import BAR_FUSER
BAR_FUSER.build([(c.name, c()) for c in (*FEATURES, Rsi, Volatility, VolumeRatio)], {})
t2 = time.perf_counter()
print(json.dumps({"numba": t1 - t0, "build": t2 - t1}))
"""


def python_rsi(close: list[float], period: int = 14) -> list[float]:
    """Wilder's RSI in a plain Python loop (the kernel's recurrence)."""
    out = [math.nan] * len(close)
    g_sum = l_sum = a_gain = a_loss = 0.0
    for i in range(1, len(close)):
        diff = close[i] - close[i - 1]
        gain = diff if diff > 0.0 else 0.0
        loss = -diff if diff < 0.0 else 0.0
        if i < period:
            g_sum += gain
            l_sum += loss
            continue
        if i == period:
            a_gain = (g_sum + gain) / period
            a_loss = (l_sum + loss) / period
        else:
            a_gain = (a_gain * (period - 1) + gain) / period
            a_loss = (a_loss * (period - 1) + loss) / period
        total = a_gain + a_loss
        out[i] = 100.0 * (a_gain / total) if total != 0.0 else 0.0
    return out


def numpy_volatility(close: Any, period: int = 20) -> Any:
    """Rolling sample std of log returns, vectorized with cumulative sums."""
    import numpy as np

    r = np.diff(np.log(close))
    c1 = np.concatenate(([0.0], np.cumsum(r)))
    c2 = np.concatenate(([0.0], np.cumsum(r * r)))
    s1 = c1[period:] - c1[:-period]
    s2 = c2[period:] - c2[:-period]
    var = (s2 - s1 * s1 / period) / (period - 1)
    out = np.full(close.shape[0], np.nan)
    out[period:] = np.sqrt(np.maximum(var, 0.0))
    return out


def numpy_volume_ratio(volume: Any, period: int = 20) -> Any:
    """Volume over the mean of the ``period`` volumes before it, vectorized."""
    import numpy as np

    c = np.concatenate(([0.0], np.cumsum(volume)))
    mean = (c[period:-1] - c[:-period - 1]) / period
    out = np.full(volume.shape[0], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[period:] = np.where(mean > 0.0, volume[period:] / mean, np.nan)
    return out


def collect(quick: bool) -> list[Section]:
    import numpy as np

    from gridkit.core.types import Bar
    from gridkit.plugins.features import Rsi, Volatility, VolumeRatio

    rows_raw = load_rows()
    close = np.array([float(r[4]) for r in rows_raw])
    volume = np.array([float(r[5]) for r in rows_raw])
    target = 1_000_000 if quick else 10_000_000
    reps = -(-target // close.shape[0])
    big = {"close": np.tile(close, reps), "volume": np.tile(volume, reps)}
    n = big["close"].shape[0]
    repeat = 2 if quick else 5

    # The first probe fills the bytecode cache of numba's own modules; it is discarded.
    probes = [json.loads(run_python(_COLD).strip().splitlines()[-1])
              for _ in range(2 if quick else 4)][1:]
    cold = {k: median([p[k] for p in probes]) for k in probes[0]}

    rows: list[Row] = []
    notes = [f"cold start, fresh process, median of {len(probes)} after a discarded one: "
             f"import gridkit.plugins.features {cold['import features'] * 1000:.0f} ms, then "
             f"import numba {cold['import numba'] * 1000:.0f} ms, then the first batch call of "
             "each feature on 1,000 values (loads its cached kernel; the first one also "
             "initializes numba's compiler): "
             + ", ".join(f"{k} {cold[k] * 1000:.0f} ms"
                         for k in ("rsi", "volatility", "volume-ratio"))]
    first = cold["import numba"] + cold["rsi"]
    cold_row = (Row("cold: import numba + first batch call", first, "s", "", None,
                    cold["import features"], "s", "import of the feature classes",
                    "fresh process: import numba, then Rsi().batch on 1,000 values (numba "
                    "initializes and loads the kernel cached on disk); median of runs"))

    small = {"close": close, "volume": volume}
    bars = [Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
            for r in rows_raw]

    py_n = 200_000 if quick else 1_000_000
    py_close = big["close"][:py_n].tolist()
    baselines = {
        "rsi": ("plain Python loop", py_n, lambda: python_rsi(py_close)),
        "volatility": ("numpy cumsum, vectorized", n, lambda: numpy_volatility(big["close"])),
        "volume-ratio": ("numpy cumsum, vectorized", n,
                         lambda: numpy_volume_ratio(big["volume"])),
    }
    for cls in (Rsi, Volatility, VolumeRatio):
        feat = cls()
        feat.batch(small)  # warm-up: numba import and kernel load are not measured here
        t_best, _ = best_of(lambda f=feat: f.batch(big), repeat)
        label, b_n, b_fn = baselines[cls.name]
        b_best, _ = best_of(b_fn, repeat)
        rows.append(Row(f"{cls.name}: batch (numba)", n / t_best, "values/s", "", None,
                        b_n / b_best, "values/s", label,
                        f"best of {repeat} calls of {cls.__name__}().batch on {n:,} values "
                        f"(the example tiled {reps}x), after a warm-up call"))
        stream = cls()
        streamed = np.array([stream.update(b) for b in bars])
        agree = np.array_equal(streamed, feat.batch(small), equal_nan=True)
        notes.append(f"{cls.name}: batch == streaming update on the example bars: {agree}")

    def noop(bar: Bar) -> float:
        return bar.close

    def per_bar(fn: Any) -> float:
        t0 = time.perf_counter()
        for b in bars:
            fn(b)
        return (time.perf_counter() - t0) / len(bars) * 1e9

    loops = 3 if quick else 9
    t_noop = min(per_bar(noop) for _ in range(loops))
    for cls in (Rsi, Volatility, VolumeRatio):
        cost = []
        for _ in range(loops):
            feat = cls()  # a fresh one: warm-up bars are part of a real run too
            cost.append(per_bar(feat.update))
        rows.append(Row(f"{cls.name}: streaming update", min(cost), "ns/bar", "", None,
                        t_noop, "ns/bar", "a function returning bar.close",
                        f"best of {loops} passes over {len(bars):,} Bar objects, "
                        "update() called in a plain loop"))
    rows.append(cold_row)
    return [Section(
        "features", "Features: batch kernels and streaming updates",
        "Batch: ``Rsi().batch({'close': arr})`` etc. with default periods (14, 20, 20) on the "
        "example's close and volume tiled to ~" + (f"{target // 1_000_000}M")
        + " values, after one warm-up call; best of the calls. Baselines: the same "
        "recurrence in a plain Python loop (RSI, on a 1M-value slice: its recursion does not "
        "vectorize) or a numpy cumulative-sum version (volatility, volume ratio). Streaming: "
        "``update(bar)`` per bar over the example's Bar objects, beside the cost of calling a "
        "trivial Python function per bar.",
        rows, notes), collect_core(quick, rows_raw, bars)]


# --- issue 3's core set: targets and the naive recompute-the-window baseline ---------------------

#: The core set's features that read bars (spread-bps and order-imbalance read the book).
CORE_BAR_FEATURES = ("price-change", "price-position", "volume-ratio", "volume-acceleration",
                     "rsi", "bb-position", "volatility", "trend-strength", "atr", "ema")
STREAM_TARGET_US = 5.0
BATCH_TARGET = 10_000_000


def core_classes() -> list[Any]:
    """The feature classes of CORE_BAR_FEATURES, in that order, default options."""
    from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
    from gridkit.plugins.features.bar_set import FEATURES

    by_name = {c.name: c for c in (*FEATURES, Rsi, Volatility, VolumeRatio)}
    return [by_name[n] for n in CORE_BAR_FEATURES]


class NaiveCore:
    """The ten bar features the naive way: keep the whole history in lists and recompute every
    window from its slice on every bar (default periods). rsi, atr, ema and the EMA inside
    volume-acceleration are recurrences with no window to recompute: the baseline runs the same
    O(1) recurrences for them, so the difference between the two is the windows."""

    def __init__(self) -> None:
        from gridkit.plugins.features import Rsi
        from gridkit.plugins.features.bar_set import Atr, Ema, VolumeAcceleration

        self.c: list[float] = []
        self.h: list[float] = []
        self.lo: list[float] = []
        self.v: list[float] = []
        self.rec = [cls().update for cls in (Rsi, Atr, Ema, VolumeAcceleration)]

    def update(self, bar: Any) -> list[float]:
        c, h, lo, v = self.c, self.h, self.lo, self.v
        c.append(bar.close)
        h.append(bar.high)
        lo.append(bar.low)
        v.append(bar.volume)
        n = len(c)
        x = bar.close
        out = [math.nan] * 6
        if n > 5:
            out[0] = x / c[-6] - 1.0  # price-change
        if n >= 20:
            hh, ll = max(h[-20:]), min(lo[-20:])  # price-position
            out[1] = (x - ll) / (hh - ll) if hh > ll else math.nan
            w = c[-20:]  # bb-position
            m = sum(w) / 20
            sd = math.sqrt(sum((y - m) * (y - m) for y in w) / 20)
            out[2] = (x - (m - 2 * sd)) / (4 * sd) if sd > 0 else math.nan
        if n > 20:
            mean = sum(v[-21:-1]) / 20  # volume-ratio
            out[3] = v[-1] / mean if mean > 0 else math.nan
            r = [math.log(c[i] / c[i - 1]) for i in range(n - 20, n)]  # volatility
            m = sum(r) / 20
            out[4] = math.sqrt(sum((y - m) * (y - m) for y in r) / 19)
        if n > 10:
            path = sum(abs(c[i] - c[i - 1]) for i in range(n - 10, n))  # trend-strength
            out[5] = abs(x - c[-11]) / path if path > 0 else 0.0
        for u in self.rec:
            out.append(u(bar))
        return out


def per_bar_ns(updates: list[Any], bars: list[Any]) -> Any:
    """ns of each bar's calls to every function in ``updates`` (perf_counter_ns around them)."""
    import numpy as np

    pc = time.perf_counter_ns
    out = np.empty(len(bars))
    for i, bar in enumerate(bars):
        t0 = pc()
        for u in updates:
            u(bar)
        out[i] = pc() - t0
    return out


def memory_growth(make: Any, bars: list[Any], passes: int) -> float:
    """Bytes still allocated after ``passes`` more passes over ``bars`` than after the first
    (tracemalloc; the values returned are dropped, as the engine keeps only the latest)."""
    import gc
    import tracemalloc

    updates = make()
    tracemalloc.start()
    try:
        for bar in bars:
            for u in updates:
                u(bar)
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(passes):
            for bar in bars:
                for u in updates:
                    u(bar)
        gc.collect()
        return float(tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()


def naive_batch_baselines(big: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Per feature: (label, function of the columns) recomputing each window in numpy
    (sliding_window_view), or TA-Lib's C function for the recurrences (when installed)."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view as swv

    try:
        import talib
    except ImportError:  # the reference libraries are test-only dependencies
        talib = None

    def price_position(col: Any) -> Any:
        h, lo, c = col["high"], col["low"], col["close"]
        hh, ll = swv(h, 20).max(axis=1), swv(lo, 20).min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (c[19:] - ll) / (hh - ll)

    def bb_position(col: Any) -> Any:
        w = swv(col["close"], 20)
        m, sd = w.mean(axis=1), w.std(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (col["close"][19:] - (m - 2 * sd)) / (4 * sd)

    def trend_strength(col: Any) -> Any:
        c = col["close"]
        path = swv(np.abs(np.diff(c)), 10).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(c[10:] - c[:-10]) / path

    window = "numpy sliding window, recomputed per bar"
    out: dict[str, tuple[str, Any]] = {
        "price-change": ("numpy, vectorized", lambda col: col["close"][5:] / col["close"][:-5] - 1),
        "price-position": (window, price_position),
        "volume-ratio": (window, lambda col: col["volume"][20:]
                         / swv(col["volume"][:-1], 20).mean(axis=1)),
        "bb-position": (window, bb_position),
        "volatility": (window, lambda col: swv(np.diff(np.log(col["close"])), 20).std(
            axis=1, ddof=1)),
        "trend-strength": (window, trend_strength),
    }
    if talib is not None:
        out["rsi"] = ("TA-Lib RSI (C)", lambda col: talib.RSI(col["close"], 14))
        out["atr"] = ("TA-Lib ATR (C)", lambda col: talib.ATR(col["high"], col["low"],
                                                                col["close"], 14))
        out["ema"] = ("TA-Lib EMA (C)", lambda col: talib.EMA(col["close"], 20))

        def vacc(col: Any) -> Any:
            e = talib.EMA(col["volume"], 20)
            return e[5:] / e[:-5] - 1

        out["volume-acceleration"] = ("TA-Lib EMA (C) + numpy", vacc)
    return out


def collect_core(quick: bool, rows_raw: list[list[float]], bars: list[Any]) -> Section:
    """The core set against issue 3's targets, each beside the naive baseline."""
    import numpy as np

    classes = core_classes()
    cols = {k: np.array([float(r[i]) for r in rows_raw])
            for i, k in ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"))}
    target = 1_000_000 if quick else 10_000_000
    reps = -(-target // len(bars))
    big = {k: np.tile(v, reps) for k, v in cols.items()}
    n = big["close"].shape[0]
    base_n = min(n, 200_000 if quick else 1_000_000)
    base_cols = {k: v[:base_n] for k, v in big.items()}
    repeat = 2 if quick else 5
    rows: list[Row] = []
    notes: list[str] = [
        "spread-bps and order-imbalance, the other two features of the core set, read the "
        "order book (BBO / L2 events), not bars: they are not in these figures (the book "
        "features' own benchmark measures them)."]

    # Streaming: the ten features per bar, as the engine runs them, timed bar by bar: fused
    # (one compiled step that also publishes the values, as the engine calls it) and one by one
    # (the ten Python update() calls).
    from gridkit.plugins.features.fusion import BAR_FUSER

    def fused_step() -> Any:
        values: dict[str, float] = {}
        return BAR_FUSER.build([(cls.name, cls()) for cls in classes], values)

    call_ns = calibrate()
    passes = 3 if quick else 7
    fused, ours, naive, empty = [], [], [], []
    for _ in range(passes):
        fused.append(per_bar_ns([fused_step()], bars))
        ours.append(per_bar_ns([cls().update for cls in classes], bars))
        naive.append(per_bar_ns([NaiveCore().update], bars))
        empty.append(per_bar_ns([], bars))

    def q(runs: list[Any], pct: float) -> float:
        return min(float(np.percentile(r, pct)) for r in runs) / 1000.0

    p99, p50 = q(fused, 99), q(fused, 50)
    rows.append(Row("10 bar features together, fused: streaming p99 per bar", p99, "µs",
                    f"<= {STREAM_TARGET_US:g} µs", p99 <= STREAM_TARGET_US, q(naive, 99), "µs",
                    "naive: recompute every window per bar",
                    f"perf_counter_ns around the fused step (one compiled call, values "
                    f"published to a dict) of each of {len(bars):,} bars; lowest p99 of "
                    f"{passes} passes with fresh features"))
    rows.append(Row("  p50 per bar", p50, "µs", "", None, q(naive, 50), "µs", "naive",
                    "as above, the median bar"))
    rows.append(Row("10 bar features one by one (Python update): p99 per bar", q(ours, 99),
                    "µs", "", None, q(naive, 99), "µs", "naive",
                    "perf_counter_ns around the ten update() calls (not published); what the "
                    "engine runs when it does not fuse (fuse_features = 'off', or 'auto' on a "
                    "short backtest)"))
    rows.append(Row("  p50 per bar", q(ours, 50), "µs", "", None, q(naive, 50), "µs", "naive",
                    "as above, the median bar"))
    cold = [json.loads(run_python(_COLD_FUSED).strip().splitlines()[-1])
            for _ in range(2 if quick else 4)][1:]
    notes.append("cost of fusing, fresh process (median of the runs after a discarded one): "
                 f"import numba {median([c['numba'] for c in cold]) * 1000:.0f} ms, then load "
                 f"the cached fused kernel and build the step "
                 f"{median([c['build'] for c in cold]) * 1000:.0f} ms — paid once per run")
    notes.append(f"fused streaming p99 / p50 per bar of each of the {passes} passes (µs): "
                 + ", ".join(f"{np.percentile(r, 99) / 1000:.1f} / "
                             f"{np.percentile(r, 50) / 1000:.1f}" for r in fused))
    notes.append(f"one-by-one p99 / p50 per bar of each of the {passes} passes (µs): "
                 + ", ".join(f"{np.percentile(r, 99) / 1000:.1f} / "
                             f"{np.percentile(r, 50) / 1000:.1f}" for r in ours)
                 + f"; the timer and loop alone: p50 {q(empty, 50) * 1000:.0f} ns; a trivial "
                 f"Python call costs {call_ns:.0f} ns on this machine now (calibration: every "
                 "streaming figure scales with it)")
    single = []
    for cls in classes:
        best = min(float(np.median(per_bar_ns([cls().update], bars)))
                   for _ in range(2 if quick else 3))
        single.append(f"{cls.name} {best - q(empty, 50) * 1000:.0f}")
    notes.append("streaming update alone, median ns per bar less the timer: " + ", ".join(single))

    # Batch: each kernel on ~10M values; the naive baseline on a slice (its windows are big).
    baselines = naive_batch_baselines(base_cols)
    met_all = True
    for cls in classes:
        feat = cls()
        feat.batch(cols)  # warm-up: numba import and kernel load are not measured here
        t_best, _ = best_of(lambda f=feat: f.batch(big), repeat)
        rate = n / t_best
        met_all &= rate >= BATCH_TARGET
        label, fn = baselines.get(cls.name, ("", None))
        b_rate = None
        if fn is not None:
            b_best, _ = best_of(lambda fn=fn: fn(base_cols), repeat)
            b_rate = base_n / b_best
        rows.append(Row(f"{cls.name}: batch (numba)", rate, "values/s", ">= 10 M values/s",
                        rate >= BATCH_TARGET, b_rate, "values/s", label or "TA-Lib not installed",
                        f"best of {repeat} calls of {cls.__name__}().batch on {n:,} values "
                        f"(the example tiled {reps}x); baseline on the first {base_n:,}"))

    # Memory over a long stream: the state is ring buffers and deques of fixed size.
    more = 1 if quick else 3
    grown = memory_growth(lambda: [cls().update for cls in classes], bars, more)
    grown_fused = memory_growth(lambda: [fused_step()], bars, more)
    naive_grown = memory_growth(lambda: [NaiveCore().update], bars, more)
    rows.append(Row(f"10 bar features: memory growth over {more * len(bars):,} more bars",
                    grown / 1024, "KiB", "flat", grown < 1024, naive_grown / 1024, "KiB",
                    "naive: history kept in lists",
                    "tracemalloc: bytes allocated after the extra passes minus after the first"))
    rows.append(Row("  the same, fused", grown_fused / 1024, "KiB", "flat", grown_fused < 1024,
                    naive_grown / 1024, "KiB", "naive", "as above, the fused step"))
    notes.append("batch: every kernel >= 10 M values/s: " + ("yes" if met_all else "no"))
    return Section(
        "features-core", "Features: the core set's bar features against issue 3's targets",
        "The ten core features that read bars (" + ", ".join(CORE_BAR_FEATURES) + "), default "
        "options. Streaming, for every bar of the example (42,915 real BTC/USDT 1m bars), each "
        "bar timed: the fused step the engine runs (one compiled call for all ten, values "
        "published to a dict; see the docs' *Fused features*), and a fresh instance of each "
        "with their ``update(bar)`` called in turn; baseline: "
        "the same ten computed the naive way, keeping the history and recomputing every window "
        "from its slice per bar (the recurrences rsi, atr, ema are run as they are). Batch: "
        "``Feature().batch(columns)`` on the example tiled to ~" + f"{target // 1_000_000}M"
        + " values after a warm-up call; baseline: numpy recomputing each window "
        "(``sliding_window_view``) or TA-Lib's C function for the recurrences. Memory: "
        "tracemalloc over extra passes of the same bars.",
        rows, notes)


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
