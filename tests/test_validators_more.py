"""The ``anomaly`` and ``staleness`` validators, and ``price``/``volume``/``timestamp`` on trades
and quotes, on real data (BTC 1m with the 19 May 2021 crash and the 25 April maintenance gap,
real trade prints and quotes) and on hostile values.
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit.core.types import Bar, BookUpdate, Trade
from gridkit.plugins.validators import (
    AnomalyValidator,
    PriceValidator,
    RollingMedianMad,
    StalenessValidator,
    TimestampValidator,
    VolumeValidator,
)
from gridkit.runtime.context import Context, RunInfo
from gridkit.testing import ValidatorContract, build, feed
from helpers import expect, ms, require_full_data, xrp_trades_pipeline

NAN, INF = float("nan"), float("inf")
FLAGS = ("flagged_up", "flagged_down", "dropped_up", "dropped_down")


@pytest.fixture(scope="module")
def btc_bars(btc_1m: Path) -> list[Bar]:
    return [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in json.loads(btc_1m.read_text())]


def flagged_ts(v: AnomalyValidator, bars: list[Bar]) -> list[int]:
    out = []
    for b in bars:
        before = sum(v.counts.get(k, 0) for k in FLAGS)
        feed([v], b)
        if sum(v.counts.get(k, 0) for k in FLAGS) != before:
            out.append(b.ts)
    return out


# --- rolling median / MAD ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.integers(1, 15),
       st.lists(st.one_of(st.floats(-1e6, 1e6), st.integers(-3, 3).map(float)), min_size=1,
                max_size=60))
def test_rolling_median_mad_equals_numpy(size: int, values: list[float]) -> None:
    w = RollingMedianMad(size)
    for k, x in enumerate(values):
        w.add(x)
        held = np.array(values[max(0, k + 1 - size):k + 1])
        med = w.median()
        assert med == np.median(held)
        assert w.mad(med) == pytest.approx(np.median(np.abs(held - med)), rel=1e-12, abs=1e-12)


# --- anomaly -------------------------------------------------------------------------------------

def test_anomaly_flags_the_19_may_crash(btc_bars: list[Bar]) -> None:
    v = build(AnomalyValidator)
    flags = flagged_ts(v, btc_bars)
    stats = v.stats()
    # Flag policy passes everything on, and counts: about 1 % of real 1m returns are outliers
    # at |z| > 3.5 (fat tails), in both directions.
    assert stats["flagged_up"] + stats["flagged_down"] == len(flags)
    assert 0.002 * len(btc_bars) < len(flags) < 0.03 * len(btc_bars)
    assert stats["flagged_down"] > 50 and stats["flagged_up"] > 50
    # The crash: BTC hit 30,000 at 13:10 UTC; the minutes of the sell-off are outliers.
    crash = set(flags)
    for minute in ("2021-05-19 13:10", "2021-05-19 13:03", "2021-05-19 12:45"):
        assert ms(minute) in crash, minute
    # The z-score is relative to the last two hours, so a calm day has flags too; but the
    # crash day has more than twice the average, and the 40 minutes of the sell-off most.
    days = (btc_bars[-1].ts - btc_bars[0].ts) / 86_400_000
    may19 = [t for t in flags if ms("2021-05-19 00:00") <= t < ms("2021-05-20 00:00")]
    assert len(may19) > 2 * len(flags) / days
    selloff = [t for t in flags if ms("2021-05-19 12:40") <= t < ms("2021-05-19 13:20")]
    assert len(selloff) >= 15


def test_anomaly_drop_policy(btc_bars: list[Bar]) -> None:
    v = build(AnomalyValidator, {"policy": "drop"})
    accepted = [b for b in btc_bars if feed([v], b)]
    stats = v.stats()
    dropped = stats["dropped_up"] + stats["dropped_down"]
    assert len(accepted) == len(btc_bars) - dropped
    assert stats["level_shift"] > 0  # the crash is a real move: the new level is accepted
    assert accepted[-1] == btc_bars[-1]


def test_anomaly_lone_bad_print_dropped_alone(btc_bars: list[Bar]) -> None:
    bars = btc_bars[:300]
    spike = bars[200]
    hostile = [*bars[:200], Bar(spike.ts, spike.open, spike.high * 3, spike.low,
                                spike.close * 3, spike.volume), *bars[201:]]
    v = build(AnomalyValidator, {"policy": "drop"})
    dropped = [b for b in hostile if not feed([v], b)]
    assert dropped == [hostile[200]]
    assert v.stats()["dropped_up"] == 1


def test_anomaly_dropped_bar_does_not_enter_the_window(btc_bars: list[Bar]) -> None:
    v = build(AnomalyValidator, {"policy": "drop", "window": 5})
    for b in btc_bars[:10]:
        feed([v], b)
    held = list(v.window.sorted)
    b = btc_bars[10]
    crazy = Bar(b.ts, b.open, b.high * 10, b.low, b.close * 10, b.volume)
    assert not feed([v], crazy)
    assert v.window.sorted == held


def test_anomaly_flat_market_is_not_scored() -> None:
    v = build(AnomalyValidator, {"window": 5})
    bars = [Bar(i * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(20)]
    assert all(feed([v], b) for b in bars)
    assert v.stats()["mad_zero"] == 20 - 1 - 5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80),
           st.sampled_from(["flag", "drop"]))
def test_anomaly_never_raises(closes: list[float], policy: str) -> None:
    v = build(AnomalyValidator, {"window": 5, "policy": policy})
    for i, c in enumerate(closes):
        assert feed([v], Bar(i, c, c, c, c, 1.0)) in (True, False)
    assert all(isinstance(n, int) for n in v.stats().values())


class TestAnomalyContract(ValidatorContract):
    component_class = AnomalyValidator
    min_accepted = 0.97


class TestAnomalyDropContract(ValidatorContract):
    component_class = AnomalyValidator
    options = {"policy": "drop"}
    min_accepted = 0.97


# --- staleness -----------------------------------------------------------------------------------

def test_staleness_pauses_over_the_maintenance_gap(btc_bars: list[Bar]) -> None:
    v = build(StalenessValidator)
    ctx = Context(RunInfo("t", "backtest", "BTC/USDT", 10_000.0))
    v.bind(ctx)
    paused_at, resumed_at = [], []
    for b in btc_bars:
        was = ctx.paused
        assert feed([v], b)
        if ctx.paused != was:
            (paused_at if ctx.paused else resumed_at).append(b.ts)
    assert paused_at == [ms("2021-04-25 08:45")]
    assert resumed_at == [ms("2021-04-25 08:48")]  # three fresh bars later
    assert v.stats() == {"stale": 1, "pauses": 1, "resumes": 1, "max_age_seen_ms": 285 * 60_000}


def test_staleness_through_a_pipeline_defers_orders(btc_1m: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{btc_1m.as_posix()}"
[[validators]]
use = "timestamp"
[[validators]]
use = "price"
[[validators]]
use = "staleness"
max_age = "5m"
fresh = 3
[strategy]
use = "static"
lower = 48000
upper = 52000
grids = 80
qty = 0.001
""")
    assert summary["status"] == "finished"
    assert summary["dropped_by"]["staleness"] == {
        "stale": 1, "pauses": 1, "resumes": 1, "max_age_seen_ms": 285 * 60_000}
    assert summary["orders_deferred"] > 0
    assert summary["orders_deferred_at_end"] == 0
    assert summary["paused"] is None
    assert summary["unreconciled_orders"] == []


def test_staleness_wall_clock_and_limit() -> None:
    v = build(StalenessValidator, {"max_age": "10s", "limit": 2, "fresh": 2, "clock": "wall"})
    now = [1_000_000.0]
    v.clock = lambda: now[0]
    ctx = Context(RunInfo("t", "live", "BTC/USDT", 10_000.0))
    v.bind(ctx)
    trade = Trade(int(now[0]) - 20_000, 1.0, 1.0, "buy")
    feed([v], trade)
    assert ctx.paused is None  # one stale event: below the limit
    feed([v], trade)
    assert ctx.paused == "stale data"
    fresh = Trade(int(now[0]) - 1_000, 1.0, 1.0, "buy")
    feed([v], fresh)
    assert ctx.paused == "stale data"
    feed([v], fresh)
    assert ctx.paused is None
    assert v.stats()["pauses"] == v.stats()["resumes"] == 1


def test_staleness_does_not_clear_another_pause() -> None:
    v = build(StalenessValidator, {"max_age": "1m", "fresh": 1})
    ctx = Context(RunInfo("t", "backtest", "BTC/USDT", 10_000.0))
    v.bind(ctx)
    feed([v], Bar(0, 1, 1, 1, 1, 1))
    feed([v], Bar(600_000, 1, 1, 1, 1, 1))
    assert ctx.paused == "stale data"
    ctx.paused = "something else"
    feed([v], Bar(660_000, 1, 1, 1, 1, 1))
    assert ctx.paused == "something else"


def test_staleness_auto_clock_follows_the_mode() -> None:
    v = build(StalenessValidator)
    v.bind(Context(RunInfo("t", "paper", "BTC/USDT", 10_000.0)))
    assert v.wall
    v = build(StalenessValidator)
    v.bind(Context(RunInfo("t", "backtest", "BTC/USDT", 10_000.0)))
    assert not v.wall


def test_staleness_bad_max_age() -> None:
    from gridkit.core.config import OptionError

    with pytest.raises(OptionError, match="not an interval") as err:
        StalenessValidator.Config(max_age="soon")
    assert err.value.option == "max_age"


class TestStalenessContract(ValidatorContract):
    component_class = StalenessValidator


# --- price / volume / timestamp on trades and quotes ---------------------------------------------

@pytest.fixture(scope="module")
def real_trades(data_dir: Path) -> list[Trade]:
    import gzip

    rows = json.loads(gzip.decompress(
        (data_dir / "trades_orderbook" / "freqtrade" / "XRP_ETH-trades.json.gz").read_bytes()))
    return [Trade(int(r[0]), float(r[4]), float(r[5]), r[3], str(r[1])) for r in rows]


@pytest.fixture(scope="module")
def real_quotes(data_dir: Path) -> list[BookUpdate]:
    import pyarrow.parquet as pq

    t = pq.read_table(data_dir / "trades_orderbook" / "nautilus_trader" / "binance" /
                      "btcusdt-quotes.parquet").to_pydict()
    return [BookUpdate(int(ts.timestamp() * 1000), b, bq, a, aq) for ts, b, bq, a, aq in
            zip(t["timestamp"], t["bid"], t["bid_size"], t["ask"], t["ask_size"], strict=True)]


def tick_chain() -> list[Any]:
    return [build(TimestampValidator), build(PriceValidator), build(VolumeValidator)]


def test_real_trades_pass(real_trades: list[Trade]) -> None:
    validators = tick_chain()
    assert all(feed(validators, t) for t in real_trades)
    assert [v.stats() for v in validators] == [{}, {}, {}]
    # Trades share milliseconds in this file: equal timestamps are not duplicates.
    assert any(a.ts == b.ts for a, b in pairwise(real_trades))


def test_real_quotes_pass(real_quotes: list[BookUpdate]) -> None:
    validators = [build(TimestampValidator), build(PriceValidator)]
    assert all(feed(validators, q) for q in real_quotes)
    assert [v.stats() for v in validators] == [{}, {}]


def test_hostile_trades_are_dropped_and_counted(real_trades: list[Trade]) -> None:
    t = real_trades[100]
    hostile = [
        Trade(t.ts, NAN, t.qty, "buy"), Trade(t.ts, INF, t.qty, "buy"),
        Trade(t.ts, 0.0, t.qty, "buy"), Trade(t.ts, -t.price, t.qty, "buy"),
        Trade(t.ts, t.price, 0.0, "sell"), Trade(t.ts, t.price, -1.0, "sell"),
        Trade(t.ts, t.price, NAN, "sell"), Trade(t.ts, t.price, INF, "sell"),
        Trade(t.ts - 1, t.price, t.qty, "sell"),  # earlier than the last accepted trade
    ]
    validators = tick_chain()
    assert all(feed(validators, x) for x in real_trades[:101])
    assert not any(feed(validators, x) for x in hostile)
    assert feed(validators, real_trades[101])
    ts, price, volume = (v.stats() for v in validators)
    assert ts == {"trades_out_of_order": 1}
    assert price == {"trades_nan": 1, "trades_infinite": 1, "trades_non_positive": 2}
    assert volume == {"trades_zero": 1, "trades_negative": 1, "trades_nan": 1,
                      "trades_infinite": 1}


def test_crossed_and_bad_quotes(real_quotes: list[BookUpdate]) -> None:
    q = real_quotes[10]
    v = build(PriceValidator)
    assert feed([v], q)
    assert not feed([v], BookUpdate(q.ts, q.ask, 1.0, q.ask, 1.0))  # locked
    assert not feed([v], BookUpdate(q.ts, q.ask + 1, 1.0, q.bid, 1.0))  # crossed
    assert not feed([v], BookUpdate(q.ts, NAN, 1.0, q.ask, 1.0))
    assert not feed([v], BookUpdate(q.ts, q.bid, 1.0, -1.0, 1.0))
    assert not feed([v], BookUpdate(q.ts, q.bid, 1.0, INF, 1.0))
    assert v.stats() == {"crossed": 2, "book_nan": 1, "book_non_positive": 1,
                         "book_infinite": 1}


def test_timestamp_keeps_a_baseline_per_kind(real_trades: list[Trade]) -> None:
    # trade-built bars carry their open time, earlier than the trades that closed them
    v = build(TimestampValidator)
    t = real_trades[0]
    assert feed([v], t)
    assert feed([v], Bar(t.ts - t.ts % 60_000, 1, 1, 1, 1, 1))
    assert feed([v], Trade(t.ts, 1.0, 1.0, "buy"))  # same ms as the last trade: kept
    assert not feed([v], Bar(t.ts - t.ts % 60_000, 1, 1, 1, 1, 1))  # duplicate bar
    assert v.stats() == {"duplicate": 1}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**15, 10**15), st.floats(), st.floats(),
                          st.floats(), st.floats()), max_size=30))
def test_tick_validators_never_raise(rows: list[tuple[int, float, float, float, float]]) -> None:
    validators = tick_chain()
    for ts, a, b, c, d in rows:
        assert feed(validators, Trade(ts, a, b, "buy")) in (True, False)
        assert feed(validators, BookUpdate(ts, a, b, c, d)) in (True, False)
    for v in validators:
        assert all(isinstance(n, int) and n > 0 for n in v.stats().values())


def test_declared_inputs() -> None:
    assert PriceValidator.inputs == {"bars", "trades", "book"}
    assert VolumeValidator.inputs == {"bars", "trades"}
    assert TimestampValidator.inputs == {"bars", "trades", "book"}
    assert AnomalyValidator.inputs == {"bars", "trades"}
    assert build(AnomalyValidator).inputs == {"bars", "trades"}
    assert build(AnomalyValidator, {"inputs": ["trades"]}).inputs == {"trades"}
    assert StalenessValidator.inputs == {"bars", "trades", "book"}


def test_bar_results_unchanged(btc_bars: list[Bar]) -> None:
    """The bar path gives what it gave before trades were added (cf. tests/test_validators)."""
    bars = btc_bars[:2000]
    hostile = [Bar(b.ts, NAN if i % 97 == 0 else b.open, b.high, b.low,
                   -b.close if i % 89 == 0 else b.close, 0.0 if i % 83 == 0 else b.volume)
               for i, b in enumerate(bars)]
    validators = [build(TimestampValidator), build(PriceValidator), build(VolumeValidator)]
    kept = [b for b in hostile if feed(validators, b)]
    bad = {i for i in range(len(bars)) if i % 97 == 0 or i % 89 == 0}
    assert len(kept) == len(bars) - len(bad)
    assert validators[1].stats() == {"nan": len([i for i in bad if i % 97 == 0]),
                                     "non_positive": len([i for i in bad if i % 97])}
    assert not math.isnan(kept[0].open)


def test_default_validators_pass_a_real_binance_capture(data_dir: Path) -> None:
    """Trades, quotes and depth of the real websocket capture pass the default chain intact."""
    from gridkit.core.types import EVENT_KINDS
    from gridkit.plugins.binance_capture import BinanceCapture

    run = RunInfo("t", "backtest", "BTC/USDT", 10_000.0, data_dir / "trades_orderbook")
    source = build(BinanceCapture, {"path": "hftbacktest/spot/btcusdt_20240808.gz",
                                    "streams": ["trades", "book"], "bars": "1m"})
    source.validate(run)
    source.setup(run)
    validators = tick_chain()
    seen: dict[str, int] = {}
    for event in source.events():
        kind = EVENT_KINDS[type(event)]
        seen[kind] = seen.get(kind, 0) + 1
        assert feed([v for v in validators if kind in v.inputs], event)
    assert (seen["trades"], seen["book"]) == expect((9757, 28040), (2744, 10906))
    assert [v.stats() for v in validators] == [{}, {}, {}]


# --- anomaly on trade prints ---------------------------------------------------------------------

def _capture_trades(path: Path) -> list[Trade]:
    """Trade lines of a raw Binance websocket capture (``m`` true: the taker sold)."""
    import gzip

    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if '@trade"' in line:
                d = json.loads(line.split(" ", 1)[1])["data"]
                out.append(Trade(int(d["T"]), float(d["p"]), float(d["q"]),
                                 "sell" if d["m"] else "buy", str(d["t"])))
    return out


TAPES = ["xrp-eth", "btcusdt-spot", "btcusdt-usdm", "ethusdt-spot"]
_tapes: dict[str, list[Trade]] = {}


@pytest.fixture(params=TAPES)
def tape(request: pytest.FixtureRequest, data_dir: Path, real_trades: list[Trade]) -> list[Trade]:
    """Real trade tapes: Binance XRP/ETH (an illiquid pair, ~8 bps ticks, 2.5 days) and the
    raw websocket captures of BTC/USDT spot and USDT-M and ETH/USDT spot (liquid, 6 minutes)."""
    name = request.param
    if name == "xrp-eth":
        return real_trades
    if name not in _tapes:
        path = {"btcusdt-spot": "spot/btcusdt_20240808.gz",
                "btcusdt-usdm": "usdm/btcusdt_20240808.gz",
                "ethusdt-spot": "spot/ethusdt_20240808.gz"}[name]
        _tapes[name] = _capture_trades(data_dir / "trades_orderbook" / "hftbacktest" / path)
    return _tapes[name]


TRADE_FLAGS = ("trades_flagged_up", "trades_flagged_down")
#: Injected bad prints: a price off by 1.5 % or 5 % either way, or by a decimal place.
FACTORS = (1.015, 0.985, 1.05, 0.95, 10.0, 0.1)


def inject(trades: list[Trade], every: int = 700) -> tuple[list[Trade], list[int]]:
    """Real trades with a bad copy of every ``every``-th print inserted before it."""
    out: list[Trade] = []
    at: list[int] = []
    for i, t in enumerate(trades):
        if i > 300 and i % every == 0:
            at.append(len(out))
            out.append(Trade(t.ts, t.price * FACTORS[len(at) % len(FACTORS)], t.qty, t.side,
                             "bad"))
        out.append(t)
    return out, at


def test_anomaly_real_trade_tapes_are_clean(tape: list[Trade],
                                            request: pytest.FixtureRequest) -> None:
    """Real prints, including bid-ask bounce and multi-tick sweeps, are (almost) never flagged;
    the bare z-score (g = 0) flags ordinary one- or few-tick moves, at least ten times more."""
    if request.node.callspec.params["tape"] != "xrp-eth":
        require_full_data("the bare z-score flags (almost) none of the first minutes of a "
                          "capture, all that its slice holds")
    v = build(AnomalyValidator)
    assert all(feed([v], t) for t in tape)
    stats = v.stats()
    flags = sum(stats.get(k, 0) for k in TRADE_FLAGS)
    assert flags <= 0.0005 * len(tape), stats
    assert set(stats) <= set(TRADE_FLAGS)  # nothing unscored: every print has a usable price
    bare = build(AnomalyValidator, {"trade_granularity_bps": 0.0})
    for t in tape:
        feed([bare], t)
    bare_flags = sum(bare.stats().get(k, 0) for k in TRADE_FLAGS)
    assert bare_flags >= 10 * max(flags, 1)


def test_anomaly_drops_injected_bad_prints(tape: list[Trade]) -> None:
    hostile, at = inject(tape)
    v = build(AnomalyValidator, {"policy": "drop"})
    dropped = [i for i, t in enumerate(hostile) if not feed([v], t)]
    assert len(at) >= expect(8, 3) and set(at) <= set(dropped)  # 3 in a capture's slice
    assert len(set(dropped) - set(at)) <= 0.0005 * len(tape)  # the clean tape's own few
    stats = v.stats()
    ups = sum(1 for i in at if hostile[i].price > hostile[i + 1].price)
    assert stats["trades_dropped_up"] >= ups and stats["trades_dropped_down"] >= len(at) - ups
    assert "trades_level_shift" not in stats  # one bad print is dropped alone
    assert v.trade_ref == tape[-1].price


def test_anomaly_flags_injected_bad_prints(tape: list[Trade]) -> None:
    hostile, at = inject(tape)
    v = build(AnomalyValidator)
    flagged = []
    for i, t in enumerate(hostile):
        before = sum(v.counts.get(k, 0) for k in TRADE_FLAGS)
        assert feed([v], t)  # flag policy: everything passes
        if sum(v.counts.get(k, 0) for k in TRADE_FLAGS) != before:
            flagged.append(i)
    assert set(at) <= set(flagged)
    # A flagged print passes and becomes the reference: the way back is flagged too.
    extra = set(flagged) - set(at) - {i + 1 for i in at}
    assert len(extra) <= 0.0005 * len(tape)


def test_anomaly_level_shift_on_trades(real_trades: list[Trade]) -> None:
    """A real move to a new level (every later print 3 % higher) is accepted after max_drops."""
    trades = real_trades[:1000]
    moved = [*trades[:500], *(Trade(t.ts, t.price * 1.03, t.qty, t.side) for t in trades[500:])]
    v = build(AnomalyValidator, {"policy": "drop", "max_drops": 2})
    kept = [t for t in moved if feed([v], t)]
    assert len(kept) == len(moved) - 2
    assert v.stats() == {"trades_dropped_up": 2, "trades_level_shift": 1}


def test_anomaly_keeps_bars_and_trades_apart(real_trades: list[Trade]) -> None:
    """Trade-built bars and the trades they come from: each kind is judged on its own window,
    exactly as if it came alone."""
    from gridkit.data.bars import TimeBars

    trades, _ = inject(real_trades, every=500)
    tb = TimeBars(60_000)
    events: list[Any] = []
    for t in trades:
        events.append(t)
        bar = tb.add(t)
        if bar is not None:
            events.append(bar)
    both = build(AnomalyValidator, {"policy": "drop", "window": 30})
    verdicts = [feed([both], e) for e in events]
    alone = {}
    for kind in (Bar, Trade):
        v = build(AnomalyValidator, {"policy": "drop", "window": 30})
        alone[kind] = [feed([v], e) for e in events if type(e) is kind]
    assert [x for x, e in zip(verdicts, events, strict=True) if type(e) is Bar] == alone[Bar]
    assert [x for x, e in zip(verdicts, events, strict=True) if type(e) is Trade] == alone[Trade]
    stats = both.stats()
    assert stats["trades_dropped_up"] + stats["trades_dropped_down"] >= 20
    assert any(not k.startswith("trades_") for k in stats)  # the bars were scored too


def test_anomaly_trade_granularity() -> None:
    """A flat tape has MAD 0: with g = 0 nothing is scored, with g > 0 the bound is g."""
    flat = [Trade(i, 100.0, 1.0, "buy") for i in range(20)]
    v = build(AnomalyValidator, {"window": 5, "trade_granularity_bps": 0.0})
    assert all(feed([v], t) for t in flat)
    assert v.stats() == {"trades_mad_zero": 20 - 1 - 5}
    v = build(AnomalyValidator, {"window": 5, "policy": "drop", "trade_granularity_bps": 20.0})
    for t in flat:
        feed([v], t)
    assert feed([v], Trade(20, 100.19, 1.0, "buy"))  # 19 bps: within g
    assert not feed([v], Trade(21, 100.19 * 1.0021, 1.0, "buy"))  # 21 bps above the last
    assert v.stats() == {"trades_dropped_up": 1}


@pytest.mark.parametrize("inputs", [[], ["book"], ["bars", "depth"]])
def test_anomaly_bad_inputs(inputs: list[str]) -> None:
    from gridkit.core.config import OptionError

    with pytest.raises(OptionError, match="bars") as err:
        AnomalyValidator.Config(inputs=inputs)
    assert err.value.option == "inputs"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True)), max_size=80),
       st.sampled_from(["flag", "drop"]), st.sampled_from([0.0, 50.0]))
def test_anomaly_never_raises_on_trades(rows: list[tuple[float, float]], policy: str,
                                        g: float) -> None:
    v = build(AnomalyValidator, {"window": 5, "policy": policy, "trade_granularity_bps": g})
    for i, (p, q) in enumerate(rows):
        assert feed([v], Trade(i, p, q, "buy")) in (True, False)
        assert feed([v], Bar(i, p, p, p, p, 1.0)) in (True, False)
    assert all(isinstance(n, int) for n in v.stats().values())


def test_anomaly_on_trades_in_a_pipeline(tmp_path: Path, data_dir: Path,
                                         gridkit_run_toml: Any) -> None:
    """A real trades file with bad prints, replayed by ``trades-file`` with 5m bars: the bad
    prints are dropped and counted in the run summary; the bars are checked too."""
    import gzip

    rows = json.loads(gzip.decompress(
        (data_dir / "trades_orderbook" / "freqtrade" / "XRP_ETH-trades.json.gz").read_bytes()))
    bad = 0
    out = []
    for i, r in enumerate(rows):
        if i > 300 and i % 1000 == 0:
            out.append([r[0], f"bad{i}", r[2], r[3], r[4] * (1.2 if bad % 2 else 0.8), r[5],
                        r[6]])
            bad += 1
        out.append(r)
    (tmp_path / "trades.json").write_text(json.dumps(out))
    summary = gridkit_run_toml(xrp_trades_pipeline(
        "trades.json", '[[validators]]\nuse = "anomaly"\npolicy = "drop"'))
    assert summary["status"] == "finished"
    assert summary["events"]["trades"]["dropped"] >= bad == 12
    counts = summary["dropped_by"]["anomaly"]
    assert counts["trades_dropped_up"] + counts["trades_dropped_down"] == \
        summary["events"]["trades"]["dropped"] <= bad + 0.0005 * len(rows)
    assert summary["bars_accepted"] > 500


def _bad_print_trades(data_dir: Path, out: Path) -> int:
    """The real XRP/ETH trades with a bad print (price x1.2 or x0.8) every 1000 trades, written
    to ``out``; returns how many were added."""
    import gzip

    rows = json.loads(gzip.decompress(
        (data_dir / "trades_orderbook" / "freqtrade" / "XRP_ETH-trades.json.gz").read_bytes()))
    bad, kept = 0, []
    for i, r in enumerate(rows):
        if i > 300 and i % 1000 == 0:
            kept.append([r[0], f"bad{i}", r[2], r[3], r[4] * (1.2 if bad % 2 else 0.8), r[5],
                         r[6]])
            bad += 1
        kept.append(r)
    out.write_text(json.dumps(kept))
    return bad


_ANOMALY_ON_TRADES = xrp_trades_pipeline(
    "{path}", '[[validators]]\nuse = "anomaly"\npolicy = "drop"\ninputs = {inputs}')


def test_anomaly_inputs_may_be_one_name(tmp_path: Path, data_dir: Path,
                                        gridkit_run_toml: Any) -> None:
    """``inputs = "trades"`` (a bare TOML string) is the one kind ``trades``, not its letters:
    ``gridkit validate`` accepts it, and a run checks the trades only (no bar is scored)."""
    import subprocess
    import sys

    bad = _bad_print_trades(data_dir, tmp_path / "trades.json")
    toml = _ANOMALY_ON_TRADES.replace("{path}", (tmp_path / "trades.json").as_posix())
    good = tmp_path / "one.toml"
    good.write_text(toml.replace("{inputs}", '"trades"'))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(toml.replace("{inputs}", '"book"'))

    def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()",
                               *args], capture_output=True, text=True, cwd=tmp_path)

    out = gridkit("validate", str(good))
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout and "anomaly" in out.stdout
    out = gridkit("validate", str(wrong))
    assert out.returncode != 0
    assert "inputs" in out.stderr and "['book']" in out.stderr and "'b', 'o'" not in out.stderr

    summary = gridkit_run_toml(toml.replace("{inputs}", '"trades"'))
    assert summary["status"] == "finished"
    counts = summary["dropped_by"]["anomaly"]
    assert counts["trades_dropped_up"] + counts["trades_dropped_down"] >= bad == 12
    assert all(k.startswith("trades_") for k in counts)  # the bars were not checked
    both = gridkit_run_toml(toml.replace("{inputs}", '["bars", "trades"]'))
    assert both["dropped_by"]["anomaly"].keys() - counts.keys()  # ... as they are by default


def test_anomaly_inputs_from_python() -> None:
    # pipeline.toml's path: the config converter reads one name as a one-item list.
    assert build(AnomalyValidator, {"inputs": "bars"}).inputs == {"bars"}
    from gridkit.core.config import OptionError, structure

    for value in (5, ["trades", 2]):
        config, problems = structure({"inputs": value}, AnomalyValidator.Config, "v.anomaly")
        assert config is None and problems == [
            f"v.anomaly.inputs: expected a string or a list of strings, got {value!r}"]
    # Python's path: a list of known kinds, or an OptionError naming the option.
    assert AnomalyValidator.Config(inputs=["trades"]).inputs == ["trades"]
    for bad in ([], ["book"], "trades"):
        with pytest.raises(OptionError, match="choose from 'bars' and 'trades'") as err:
            AnomalyValidator.Config(inputs=bad)
        assert err.value.option == "inputs"


# --- a stock market's calendar -----------------------------------------------------------------


def _gaps_of(bars: list[Bar], calendar: str) -> dict[str, Any]:
    v = build(TimestampValidator, {"calendar": calendar})
    assert all(feed([v], b) for b in bars)
    return {k: v.stats().get(k, 0) for k in ("gaps", "missing_bars")}


def test_weekdays_calendar_counts_holidays_and_suspensions_not_weekends() -> None:
    """000953.SZ's real daily bars, 2019-01-02 .. 2020-05-08 (examples/data): 27 weekday
    holidays and 9 suspended days (2019-03-12, 2019-08-21 to 08-29, 2019-12-11) are missing;
    the weekends between them are not."""
    from gridkit.plugins.sources import CsvSource

    path = Path(__file__).resolve().parent.parent / "examples" / "data" / "000953.SZ.csv"
    src = build(CsvSource, {"path": str(path), "columns": {"ts": "trade_date"}})
    src.setup(RunInfo("t", "backtest", "000953.SZ", 1.0, path.parent))
    bars = list(src.events())
    assert len(bars) == 317
    assert _gaps_of(bars, "weekdays") == {"gaps": 13, "missing_bars": 36}
    assert _gaps_of(bars, "24/7")["missing_bars"] == 176  # every weekend day too
    # The suspension of August 2019 is one gap of seven weekdays; data starting on a Friday
    # does not take the first weekend for a jump.
    aug = [b for b in bars if ms("2019-08-16 00:00") <= b.ts <= ms("2019-09-02 00:00")]
    assert _gaps_of(aug, "weekdays") == {"gaps": 1, "missing_bars": 7}


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**13, 10**13), st.integers(0, 10**11))
def test_weekday_time_is_what_a_day_by_day_count_gives(start: int, length: int) -> None:
    from datetime import datetime, timezone

    from gridkit.plugins.validators import _DAY_MS, _weekday_ms

    day = _DAY_MS
    counted, t = 0, start
    while t < start + length:  # day by day, clipped to [start, start + length)
        end = min((t // day + 1) * day, start + length)
        if datetime.fromtimestamp(t / 1000, timezone.utc).weekday() < 5:
            counted += end - t
        t = end
    assert _weekday_ms(start + length) - _weekday_ms(start) == counted
