"""Book features: the numba batch kernels over a book tape (values/s) beside the streaming loop.

Every order-book feature (``spread-bps``, ``order-imbalance``, ``spread-analysis``,
``l2-delta``, ``hidden-liquidity``, ``spoofing``, ``liquidity-vacuum``), default options plus
the other stream where there is one, on the real Binance spot BTCUSDT capture read by the
``binance-capture`` source. *Batch*: ``Feature().batch(tape)`` on the capture's book tape
(:func:`gridkit.plugins.features.book.book_columns`, 100 levels) tiled to about 400k rows,
after a warm-up call; values/s counts the rows of the kinds the feature reads. *Baseline*, in
the same run: the streaming path, ``update(event)`` called in a plain loop over the capture's
events of those kinds. The depth events of that loop carry a private copy of the best 100
levels of each side (the features read no deeper), since a source's book is live. Also the
cost of building the tape from the events.

Run from the repository root: ``python benchmarks/bench_book_features.py [--quick]``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from common import REPO, Row, Section, best_of, main

CAPTURE = Path("trades_orderbook") / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
LEVELS = 100
#: (label, feature name, options)
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("spread-bps (book)", "spread-bps", {}),
    ("spread-bps (depth)", "spread-bps", {"stream": "depth"}),
    ("order-imbalance (book)", "order-imbalance", {}),
    ("order-imbalance (depth, 10 levels)", "order-imbalance", {"levels": 10}),
    ("spread-analysis (book)", "spread-analysis", {}),
    ("spread-analysis (depth)", "spread-analysis", {"stream": "depth"}),
    ("l2-delta (depth, 5 levels)", "l2-delta", {}),
    ("l2-delta (book)", "l2-delta", {"levels": 1, "stream": "book"}),
    ("hidden-liquidity (trades + depth)", "hidden-liquidity", {}),
    ("spoofing (trades + depth)", "spoofing", {}),
    ("liquidity-vacuum (depth)", "liquidity-vacuum", {}),
]


def data_dir() -> Path:
    env = os.environ.get("GRIDKIT_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def load_events() -> tuple[list[Any], float]:
    """The capture's events, each depth event with its own copy of the best LEVELS levels;
    and the seconds the source took to replay them (parse and book sync)."""
    from gridkit import BookDepth
    from gridkit.data.book import OrderBook
    from gridkit.plugins.binance_capture import BinanceCapture
    from gridkit.runtime.context import RunInfo
    from gridkit.testing import build

    src = build(BinanceCapture, {"path": str(CAPTURE)})
    src.setup(RunInfo("bench", "backtest", "BTC/USDT", 1.0, data_dir()))
    t0 = time.perf_counter()
    n = sum(1 for _ in src.events())
    replay = time.perf_counter() - t0
    src.close()
    src = build(BinanceCapture, {"path": str(CAPTURE)})
    src.setup(RunInfo("bench", "backtest", "BTC/USDT", 1.0, data_dir()))
    events: list[Any] = []
    for e in src.events():
        if type(e) is BookDepth:
            copy = OrderBook()
            copy.load(e.book.levels("bid", LEVELS), e.book.levels("ask", LEVELS))
            e = BookDepth(e.ts, copy, e.changes)
        events.append(e)
    src.close()
    assert len(events) == n
    return events, replay


def tile(tape: dict[str, Any], reps: int) -> dict[str, Any]:
    """The tape repeated ``reps`` times end to end (times shifted, change offsets re-based)."""
    import numpy as np

    span = int(tape["ts"][-1] - tape["ts"][0]) + 1
    c = tape["change_price"].shape[0]
    out = {k: np.concatenate([v] * reps) for k, v in tape.items()
           if k not in ("ts", "change_offset")}
    out["ts"] = np.concatenate([tape["ts"] + r * span for r in range(reps)])
    off = tape["change_offset"]
    out["change_offset"] = np.concatenate([off[:-1] + r * c for r in range(reps)]
                                          + [np.array([reps * c])])
    return out


def collect(quick: bool) -> list[Section]:
    import numpy as np

    from gridkit.core.plugins import new_host
    from gridkit.core.registry import build_registry
    from gridkit.core.types import EVENT_KINDS
    from gridkit.plugins.features.book import ROW_KINDS, book_columns
    from gridkit.testing import build

    registry = build_registry(new_host(env={"GRIDKIT_LOAD_PLUGINS": ""}))
    events, replay_s = load_events()
    repeat = 2 if quick else 5
    t_tape, _ = best_of(lambda: book_columns(events, levels=LEVELS), max(1, repeat // 2))
    tape = book_columns(events, levels=LEVELS)
    n_rows = tape["kind"].shape[0]
    target = 100_000 if quick else 400_000  # the tiled tape: ~150 MB at 400k rows
    reps = max(1, -(-target // n_rows))
    big = tile(tape, reps)
    rows: list[Row] = [Row(
        "book_columns: events -> tape", n_rows / t_tape, "events/s", "", None,
        n_rows / replay_s, "events/s", "binance-capture replay (parse, book sync)",
        f"best of {max(1, repeat // 2)}: book_columns(events, levels={LEVELS}) over the "
        f"{n_rows:,} events of the capture")]
    notes: list[str] = []
    agree = []
    for label, name, options in CONFIGS:
        cls = registry.get("feature", name).cls
        feat = build(cls, options)
        codes = [ROW_KINDS[k] for k in feat.inputs]
        mine = [e for e in events if EVENT_KINDS[type(e)] in feat.inputs]
        n_big = int(np.isin(big["kind"], codes).sum())
        first = feat.batch(tape)  # warm-up: numba import and kernel load are not measured
        t_batch, _ = best_of(lambda f=feat: f.batch(big), repeat)

        def stream(cls: Any = cls, options: dict[str, Any] = options,
                   mine: list[Any] = mine) -> list[float]:
            f = build(cls, options)
            update = f.update
            return [update(e) for e in mine]

        t_stream, _ = best_of(stream, max(1, repeat // 2))
        streamed = np.array(stream())
        same = np.array_equal(streamed, first[np.isin(tape["kind"], codes)], equal_nan=True)
        agree.append(f"{label} {'yes' if same else 'NO'}")
        rows.append(Row(f"{label}: batch (numba)", n_big / t_batch, "values/s", "", None,
                        len(mine) / t_stream, "values/s", "streaming update() loop",
                        f"best of {repeat} calls on the tape tiled {reps}x ({n_big:,} values "
                        f"of {big['kind'].shape[0]:,} rows); baseline: update() on the "
                        f"capture's {len(mine):,} events of those kinds"))
    notes.append("batch == streaming update on the capture (np.array_equal, NaN where NaN): "
                 + ", ".join(agree))
    notes.append(f"capture: {CAPTURE.as_posix()}, {n_rows:,} events (trades, bookTicker, "
                 f"depth); tape {sum(v.nbytes for v in tape.values()) / 2**20:.1f} MiB at "
                 f"{LEVELS} levels")
    return [Section(
        "book-features", "Book features: batch kernels over the book tape and streaming updates",
        "Real Binance spot BTCUSDT capture (hftbacktest, ``../shared/data``) read by "
        "``binance-capture``. Batch: ``Feature().batch(tape)`` with the default options (and "
        "the other stream where there is one) on the capture's book tape "
        f"(``book_columns(events, levels={LEVELS})``) tiled to ~{target // 1000:,}k rows, "
        "after a warm-up call, best of the calls; values/s counts the rows of the kinds the "
        "feature reads. Baseline: ``update(event)`` in a plain loop over the capture's events "
        "of those kinds, in the same run. The tape build is timed beside the source's replay "
        "of the same capture.",
        rows, notes)]


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
