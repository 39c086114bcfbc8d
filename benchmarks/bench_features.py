"""Features: the numba batch kernels (values/s) and the streaming ``update`` (ns per bar).

No target is set by the issue; the figures show what the batch path buys over plain numpy or
Python, and what each feature costs the engine per bar. Batch: ``Feature().batch(columns)`` on
the example's close/volume tiled to ~10M values, after a warm-up call (the first call imports
numba and loads or compiles the cached kernel, timed separately in a fresh process). Streaming:
``update(bar)`` over the example's 42,915 Bar objects.

Run from the repository root: ``python benchmarks/bench_features.py [--quick]``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from common import Row, Section, best_of, load_rows, main, median, run_python

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
        rows, notes)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
