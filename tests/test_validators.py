"""The bar validators ``timestamp``, ``price``, ``volume`` and ``ohlc`` on real and hostile data.

On the real files they must find exactly the quirks SOURCES.md documents (maintenance gaps,
zero-volume bars) and drop nothing. On hostile bars made from real ones they drop each bad bar,
count it under the right reason, and let the run go on (DESIGN.md §6 rule 6, §9).
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit.core.types import Bar
from gridkit.plugins.validators import (
    OhlcValidator,
    PriceValidator,
    TimestampValidator,
    VolumeValidator,
)
from gridkit.testing import ValidatorContract, build, feed
from helpers import STRATEGY, expect, ms

NAN, INF = float("nan"), float("inf")




def bars_of(path: Path) -> list[Bar]:
    return [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in json.loads(path.read_text())]


def chain() -> list[Any]:
    """The default validators, in the default order."""
    return [build(TimestampValidator), build(PriceValidator), build(VolumeValidator),
            build(OhlcValidator)]


def accepted_by(validators: list[Any], bars: list[Bar]) -> list[Bar]:
    """The bars the validators let through, applied as the engine does (first refusal wins)."""
    return [b for b in bars if feed(validators, b)]


def pipeline(path: Path | str, validators: str = "") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{Path(path).as_posix()}"
{validators}
{STRATEGY}"""


@pytest.fixture(scope="module")
def btc_rows(btc_1m: Path) -> list[list[Any]]:
    """The first 400 raw rows of the real BTC/USDT 1m file (contiguous, no quirks)."""
    return json.loads(btc_1m.read_text())[:400]


# --- real files: the documented quirks, and nothing dropped -------------------------------------

NFI_GAPS = [  # SOURCES.md §1.1: last bar before each gap -> first bar after it
    ("2020-12-21 14:05", "2020-12-21 18:00"), ("2020-12-25 01:55", "2020-12-25 03:00"),
    ("2021-02-11 03:40", "2021-02-11 05:00"), ("2021-03-06 01:55", "2021-03-06 03:30"),
    ("2021-04-20 01:55", "2021-04-20 04:30"), ("2021-04-25 04:00", "2021-04-25 08:45"),
]
#: What the files in use hold: the slices of tests/data end on 2020-12-27, after two gaps.
NFI_GAPS_IN = expect(NFI_GAPS, NFI_GAPS[:2])
NFI_MISSING = expect(177, 58)


@pytest.mark.parametrize(("name", "zero_volume"),
                         [("BTC_USDT-5m.json", expect(28, 10)),
                          ("ETH_USDT-5m.json", expect(28, 10)),
                          ("SOL_USDT-5m.json", expect(39, 22))])
def test_nfi_gaps_and_zero_volume(data_dir: Path, name: str, zero_volume: int) -> None:
    bars = bars_of(data_dir / "ohlcv" / "nostalgiaforinfinity" / name)
    ts, price, volume, ohlc = validators = chain()
    gap_after: list[int] = []
    accepted = 0
    for bar in bars:
        gaps = ts.counts.get("gaps", 0)
        if feed(validators, bar):
            accepted += 1
        if ts.counts.get("gaps", 0) != gaps:
            gap_after.append(bar.ts)
    assert accepted == len(bars)
    assert ts.stats() == {"gaps": len(NFI_GAPS_IN), "missing_bars": NFI_MISSING}
    assert gap_after == [ms(after) for _, after in NFI_GAPS_IN]
    assert volume.stats() == {"zero_kept": zero_volume}
    assert price.stats() == {} and ohlc.stats() == {}


@pytest.mark.parametrize(("name", "missing"),
                         [("BTC_USDT-1m.json", 284), ("ETH_USDT-1m.json", 284),
                          ("DOGE_USDT-1m.json", 284), ("BTC_USDT-5m.json", 56),
                          ("ETH_USDT-5m.json", 56)])
def test_tooyipjee_maintenance_gap(data_dir: Path, name: str, missing: int) -> None:
    bars = bars_of(data_dir / "ohlcv" / "tooyipjee-freqtrade" / name)
    validators = chain()
    assert accepted_by(validators, bars) == bars
    assert validators[0].stats() == {"gaps": 1, "missing_bars": missing}
    assert [v.stats() for v in validators[1:]] == [{}, {}, {}]


def test_clean_file_drops_nothing(data_dir: Path) -> None:
    rows = json.loads((data_dir / "ohlcv" / "freqtrade" / "orderflow" / "candles.json").read_text())
    bars = [Bar(*(rows[c][k] for c in ("date", "open", "high", "low", "close", "volume")))
            for k in rows["date"]]
    validators = chain()
    assert accepted_by(validators, bars) == bars
    assert [v.stats() for v in validators] == [{}, {}, {}, {}], "contiguous, no quirks"


def test_nfi_through_a_pipeline(data_dir: Path, gridkit_run_toml: Any) -> None:
    path = data_dir / "ohlcv" / "nostalgiaforinfinity" / "BTC_USDT-5m.json"
    summary = gridkit_run_toml(pipeline(path))
    assert summary["status"] == "finished"
    assert summary["bars_seen"] == summary["bars_accepted"] == expect(65_741, 7_500)
    assert summary["bars_dropped"] == 0
    assert summary["dropped_by"] == {
        "timestamp": {"gaps": len(NFI_GAPS_IN), "missing_bars": NFI_MISSING},
        "volume": {"zero_kept": expect(28, 10)}}


def test_zero_volume_can_be_dropped(data_dir: Path, gridkit_run_toml: Any) -> None:
    path = data_dir / "ohlcv" / "nostalgiaforinfinity" / "SOL_USDT-5m.json"
    summary = gridkit_run_toml(pipeline(path, """
[[validators]]
use = "timestamp"
[[validators]]
use = "price"
[[validators]]
use = "volume"
zero = "drop"
[[validators]]
use = "ohlc"
"""))
    assert summary["bars_seen"] == expect(65_744, 7_500)
    assert summary["bars_dropped"] == expect(39, 22)
    assert summary["dropped_by"]["volume"] == {"zero": expect(39, 22)}


def test_tooyipjee_btc_through_a_pipeline(btc_1m: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(pipeline(btc_1m))
    assert summary["bars_accepted"] == 42_915 and summary["bars_dropped"] == 0
    assert summary["dropped_by"] == {"timestamp": {"gaps": 1, "missing_bars": 284}}


# --- hostile bars made from real ones -----------------------------------------------------------


def corrupt(bar: Bar, **changes: float) -> Bar:
    values = {f: getattr(bar, f) for f in ("ts", "open", "high", "low", "close", "volume")}
    values.update(changes)
    return Bar(**values)  # type: ignore[arg-type]


CASES: list[tuple[type, dict[str, Any], str | None]] = [
    # (validator, changes to a real bar, reason counted; None = accepted, nothing counted)
    (PriceValidator, {}, None),
    (PriceValidator, {"open": NAN}, "nan"),
    (PriceValidator, {"close": NAN, "high": INF}, "nan"),
    (PriceValidator, {"high": INF}, "infinite"),
    (PriceValidator, {"low": -INF}, "infinite"),
    (PriceValidator, {"close": 0.0}, "non_positive"),
    (PriceValidator, {"low": -1.0}, "non_positive"),
    (PriceValidator, {"open": -0.0}, "non_positive"),
    (VolumeValidator, {}, None),
    (VolumeValidator, {"volume": NAN}, "nan"),
    (VolumeValidator, {"volume": INF}, "infinite"),
    (VolumeValidator, {"volume": -1e-9}, "negative"),
    (OhlcValidator, {}, None),
    (OhlcValidator, {"high": 1.0}, "high_below_low"),
    (OhlcValidator, {"open": 1e9, "high": 1e9 - 1}, "open_close_outside_range"),
    (OhlcValidator, {"close": 1.0}, "open_close_outside_range"),
    (OhlcValidator, {"open": NAN}, "open_close_outside_range"),
]


@pytest.mark.parametrize(("cls", "changes", "reason"), CASES)
def test_drops_and_counts_corrupt_copies_of_real_bars(
        gridkit_sample_bars: list[Bar], cls: type, changes: dict[str, Any],
        reason: str | None) -> None:
    v = build(cls)
    real = gridkit_sample_bars[100:110]
    assert all(feed([v], b) for b in real)
    assert feed([v], corrupt(gridkit_sample_bars[110], **changes)) is (reason is None)
    assert v.stats() == ({} if reason is None else {reason: 1})
    # The run goes on: the next real bars pass.
    assert all(feed([v], b) for b in gridkit_sample_bars[111:120])


def test_zero_volume_kept_or_dropped(gridkit_sample_bars: list[Bar]) -> None:
    bar = corrupt(gridkit_sample_bars[5], volume=0.0)
    keep, drop = build(VolumeValidator), build(VolumeValidator, {"zero": "drop"})
    assert keep.accept(bar) is True and keep.stats() == {"zero_kept": 1}
    assert drop.accept(bar) is False and drop.stats() == {"zero": 1}


def test_timestamp_duplicates_and_out_of_order(gridkit_sample_bars: list[Bar]) -> None:
    b = gridkit_sample_bars
    v = build(TimestampValidator)
    stream = [b[0], b[1], b[2], b[2], corrupt(b[2], close=1.0), b[1], b[0], b[3], b[4],
              corrupt(b[4], ts=b[4].ts - 1), b[5]]
    got = [feed([v], x) for x in stream]
    assert got == [True, True, True, False, False, False, False, True, True, False, True]
    assert v.stats() == {"duplicate": 2, "out_of_order": 3}


@pytest.mark.parametrize("interval_ms", [0, 60_000])
def test_timestamp_gap_is_counted_not_dropped(gridkit_sample_bars: list[Bar],
                                              interval_ms: int) -> None:
    b = gridkit_sample_bars[:50]
    v = build(TimestampValidator, {"interval_ms": interval_ms})
    kept = [x for i, x in enumerate(b) if not 20 <= i < 27]  # 7 bars missing
    assert all(feed([v], x) for x in kept)
    assert v.stats() == {"gaps": 1, "missing_bars": 7}


def hostile_file(rows: list[list[Any]]) -> tuple[list[Any], dict[str, dict[str, int]], int]:
    """Real rows with corrupted copies injected; returns (rows, expected dropped_by, n bad)."""
    out: list[Any] = [list(r) for r in rows]
    # Replace real bars by corrupt versions of themselves (same timestamp: the timestamp
    # validator passes them, the later validator at fault drops them).
    replacements = {
        30: (1, None), 40: (2, "NaN"), 50: (3, "Infinity"), 60: (4, 0), 70: (3, -5.0),
        80: (1, "x"), 90: (5, None), 100: (5, "-Infinity"), 110: (5, -1.0), 120: (5, "NaN"),
    }
    for i, (col, value) in replacements.items():
        out[i][col] = value
    out[130][2] = out[130][3] * 0.99   # high < low
    out[140][1] = out[140][2] * 1.01   # open above high
    out[150][4] = out[150][3] * 0.99   # close below low
    out[160][5] = 0                    # zero volume: kept
    # Duplicates and out-of-order bars: copies inserted after their original (from the end,
    # so the indices above stay valid).
    for i, back in ((300, 0), (250, 0), (200, 5), (180, 100)):
        out.insert(i + 1, list(rows[i - back]))
    expected = {
        "timestamp": {"duplicate": 2, "out_of_order": 2},
        "price": {"nan": 3, "infinite": 1, "non_positive": 2},
        "volume": {"nan": 2, "infinite": 1, "negative": 1, "zero_kept": 1},
        "ohlc": {"high_below_low": 1, "open_close_outside_range": 2},
    }
    return out, expected, 17


def dump(path: Path, rows: list[Any]) -> Path:
    text = json.dumps(rows).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
    path.write_text(text.replace('"-Infinity"', "-Infinity"))
    return path


def test_hostile_rows_in_a_real_file(tmp_path: Path, btc_rows: list[list[Any]],
                                     gridkit_run_toml: Any) -> None:
    rows, expected, n_bad = hostile_file(btc_rows)
    dump(tmp_path / "hostile.json", rows)
    summary = gridkit_run_toml(pipeline("hostile.json"))
    assert summary["status"] == "finished"
    assert summary["bars_seen"] == len(rows) == len(btc_rows) + 4
    assert summary["bars_dropped"] == n_bad
    assert summary["bars_accepted"] == len(btc_rows) - 13
    # Gaps are counted, not dropped: whether the holes left by dropped bars count as gaps is
    # the timestamp validator's business; every drop reason must be exact.
    dropped_by = summary["dropped_by"]
    for counts in dropped_by.values():
        counts.pop("gaps", None)
        counts.pop("missing_bars", None)
    assert dropped_by == expected
    assert summary["first_ts"] == btc_rows[0][0]
    assert summary["last_ts"] == btc_rows[-1][0], "the run went on to the end of the file"
    assert summary["components"]["source"] == {"rows": len(rows), "malformed_rows": 0}
    assert math.isfinite(summary["final_equity"])


def test_dropped_bar_does_not_move_the_timestamp_baseline(tmp_path: Path,
                                                          btc_rows: list[list[Any]],
                                                          gridkit_run_toml: Any) -> None:
    # Ten minutes ahead: had it become the baseline, the next nine bars would be dropped.
    rows: list[Any] = [list(r) for r in btc_rows]
    rows.insert(200, [rows[199][0] + 10 * 60_000, None, None, None, None, 1.0])
    dump(tmp_path / "ahead.json", rows)
    summary = gridkit_run_toml(pipeline("ahead.json"))
    assert summary["bars_dropped"] == 1
    assert summary["dropped_by"] == {"price": {"nan": 1}}
    assert summary["bars_accepted"] == len(btc_rows)


def test_corrected_resend_after_a_dropped_copy_is_accepted(tmp_path: Path,
                                                          btc_rows: list[list[Any]],
                                                          gridkit_run_toml: Any) -> None:
    rows: list[Any] = [list(r) for r in btc_rows]
    rows.insert(200, [*rows[200][:4], None, rows[200][5]])
    dump(tmp_path / "resend.json", rows)
    summary = gridkit_run_toml(pipeline("resend.json"))
    assert summary["bars_accepted"] == len(btc_rows)
    assert summary["dropped_by"] == {"price": {"nan": 1}}


# --- implausible timestamps: one bad row is dropped, not the rest of the file -------------------

DAY = 86_400_000
#: What a run must reproduce exactly for a file to count as read the same.
OUTCOME = ("bars_accepted", "buy_fills", "sell_fills", "orders_placed", "fees_paid",
           "final_cash", "final_base", "final_equity", "realized_profit", "max_drawdown",
           "first_ts", "last_ts")


@pytest.fixture(scope="module")
def btc_all(btc_1m: Path) -> list[list[Any]]:
    """Every row of the real BTC/USDT 1m file (42,915 bars, one maintenance gap)."""
    return json.loads(btc_1m.read_text())


@pytest.fixture(scope="module")
def clean_run(btc_all: list[list[Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    from gridkit import run

    path = tmp_path_factory.mktemp("clean") / "BTC_USDT-1m.json"
    path.write_text(json.dumps(btc_all))
    return run(pipeline(path))


def with_row(rows: list[list[Any]], at: int, ts: int) -> list[list[Any]]:
    """A copy of ``rows`` with a copy of row ``at`` re-dated ``ts`` inserted after it: a real
    bar whose prices are fine and whose timestamp is wrong."""
    out = [list(r) for r in rows]
    out.insert(at + 1, [ts, *rows[at][1:]])
    return out


@pytest.mark.parametrize(("at", "ts", "reason"), [
    (10_000, ms("2099-01-01 00:00"), "future"),        # a typo'd year, past the wall clock
    (10_000, 2**53, "future"),                          # garbage
    (25_000, ms("2024-05-01 00:00"), "time_jump"),     # in the past, but years ahead of the file
    (25_000, 3 * DAY, "time_jump"),                     # a day typo: three days ahead
    (42_913, ms("2030-01-01 00:00"), "future"),         # just before the last bar
    (42_914, ms("2023-01-01 00:00"), "time_jump"),     # the last row: nothing follows it
])
def test_one_misdated_row_in_a_real_file_loses_only_that_row(
        tmp_path: Path, btc_all: list[list[Any]], clean_run: dict[str, Any], at: int, ts: int,
        reason: str, gridkit_run_toml: Any) -> None:
    if ts < 10 * DAY:  # relative to the row it follows
        ts += btc_all[at][0]
    dump(tmp_path / "misdated.json", with_row(btc_all, at, ts))
    summary = gridkit_run_toml(pipeline("misdated.json"))
    assert summary["status"] == "finished"
    assert summary["bars_seen"] == len(btc_all) + 1
    assert summary["bars_dropped"] == 1
    assert summary["dropped_by"]["timestamp"] == {"gaps": 1, "missing_bars": 284, reason: 1}
    for key in OUTCOME:  # every other bar accepted, and the same fills as the clean file
        assert summary[key] == clean_run[key], key


def test_a_real_jump_is_confirmed_by_the_next_bar(tmp_path: Path, btc_all: list[list[Any]],
                                                  gridkit_run_toml: Any) -> None:
    # Eight days cut out of the file: a real outage. The bar after it cannot be told from a bad
    # row when it comes, so it is held; the next bar confirms the jump and the run goes on.
    start = next(i for i, r in enumerate(btc_all) if r[0] >= ms("2021-05-01 00:00"))
    end = next(i for i, r in enumerate(btc_all) if r[0] >= ms("2021-05-09 00:00"))
    rows = btc_all[:start] + btc_all[end:]
    dump(tmp_path / "outage.json", rows)
    summary = gridkit_run_toml(pipeline("outage.json"))
    assert summary["bars_accepted"] == len(rows) - 1
    assert summary["dropped_by"]["timestamp"] == {
        "gaps": 2, "missing_bars": 284 + (end - start) + 1, "held_at_jump": 1}
    assert summary["last_ts"] == rows[-1][0]
    # With the check off the bar after the outage is accepted at once.
    off = gridkit_run_toml(pipeline("outage.json", '[[validators]]\nuse = "timestamp"\n'
                                                   'max_jump = "off"\n'))
    assert off["bars_accepted"] == len(rows)


def clocked(options: dict[str, Any] | None = None, now: int = ms("2021-06-01 00:00")) -> Any:
    v = build(TimestampValidator, options or {})
    v.clock = lambda: float(now)
    return v


def at(ts: int, close: float = 100.0) -> Bar:
    return Bar(ts, close, close, close, close, 1.0)


def test_future_is_past_the_wall_clock_plus_the_tolerance() -> None:
    now = ms("2021-06-01 00:00")
    v = clocked({"interval_ms": 60_000, "max_jump": "off"})
    assert feed([v], at(now - 60_000))
    assert feed([v], at(now + DAY))            # within the default tolerance of 1d
    assert not feed([v], at(now + DAY + 1))
    assert v.stats()["future"] == 1
    tight = clocked({"future_tolerance": "5m"})
    assert not feed([tight], at(now + 300_001)) and feed([tight], at(now + 300_000))
    off = clocked({"future_tolerance": "off"})
    assert feed([off], at(ms("2999-01-01 00:00")))


def test_the_horizon_follows_the_clock_in_a_long_live_run() -> None:
    now = [ms("2021-06-01 00:00")]
    v = build(TimestampValidator, {"future_tolerance": "1m", "max_jump": "off"})
    v.clock = lambda: float(now[0])
    for _ in range(3):  # days of bars, each stamped when it arrives
        now[0] += DAY
        assert feed([v], at(now[0]))
    assert "future" not in v.stats()


def test_trades_and_quotes_past_the_wall_clock_are_dropped() -> None:
    from gridkit.core.types import Trade

    now = ms("2021-06-01 00:00")
    v = clocked()
    assert feed([v], Trade(now, 1.0, 1.0, "buy", "1"))
    assert not feed([v], Trade(now + 2 * DAY, 1.0, 1.0, "buy", "2"))
    assert feed([v], Trade(now + 1, 1.0, 1.0, "buy", "3"))  # the baseline did not move
    assert v.stats() == {"trades_future": 1}


def test_a_held_jump_is_settled_by_the_next_bar() -> None:
    t0 = ms("2021-04-01 00:00")
    bad = t0 + 30 * DAY
    # A bad row: the next bar continues the old sequence.
    v = clocked({"interval_ms": 60_000})
    got = [feed([v], at(t)) for t in (t0, t0 + 60_000, bad, t0 + 120_000, t0 + 180_000)]
    assert got == [True, True, False, True, True]
    assert v.stats() == {"time_jump": 1}
    # A real jump: the next bar continues after it (the held bar itself stays dropped).
    v = clocked({"interval_ms": 60_000})
    got = [feed([v], at(t)) for t in (t0, t0 + 60_000, bad, bad + 60_000, bad + 120_000)]
    assert got == [True, True, False, True, True]
    # 30 days of one-minute bars missing, less one: the held bar is one of them.
    assert v.stats() == {"held_at_jump": 1, "gaps": 1, "missing_bars": 30 * 1440 - 1}
    # A duplicate of the held bar does not confirm it; a second jump elsewhere replaces it.
    v = clocked({"interval_ms": 60_000})
    got = [feed([v], at(t)) for t in (t0, bad, bad, bad + 10 * DAY, t0 + 60_000)]
    assert got == [True, False, False, False, True]
    assert v.stats() == {"duplicate": 1, "time_jump": 2}
    # A run that ends on a held bar counts it: nothing confirmed it.
    v = clocked({"interval_ms": 60_000})
    assert [feed([v], at(t)) for t in (t0, bad)] == [True, False]
    assert v.stats() == {"time_jump": 1}


def test_the_jump_threshold_grows_with_the_bar_interval() -> None:
    # Daily bars: weekends and holidays are gaps of days, never jumps (100 intervals).
    t0 = ms("2020-01-02 00:00")
    v = clocked({"max_jump": "1d"}, now=ms("2021-06-01 00:00"))
    days = [0, 1, 2, 5, 6, 7, 8, 9, 20, 21, 22, 90, 91]
    assert all(feed([v], at(t0 + d * DAY)) for d in days)
    assert not feed([v], at(t0 + (91 + 101) * DAY))
    assert feed([v], at(t0 + 92 * DAY))
    assert v.stats()["time_jump"] == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"future_tolerance": "soon"}, "future_tolerance: not an interval: 'soon'"),
    ({"max_jump": "0d"}, "max_jump: not an interval: '0d'"),
])
def test_timestamp_options_are_intervals_or_off(options: dict[str, Any], message: str) -> None:
    from gridkit.core.config import structure

    _, problems = structure(options, TimestampValidator.Config, "validators[0]")
    assert problems and problems[0].startswith(f"validators[0].{message}")
    assert problems[0].endswith(", or 'off'")


# --- property: validators never raise, and what they accept is sane -----------------------------

prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1.0, max_value=100_000.0),
    st.sampled_from([0.0, -0.0, -1.0, 5e-324, 1e308, NAN, INF, -INF]),
)
timestamps = st.one_of(st.integers(), st.integers(min_value=0, max_value=50))
bars = st.builds(Bar, timestamps, prices, prices, prices, prices, prices)



def _sane(ts: int, a: float, b: float, volume: float) -> Bar:
    lo, hi = min(a, b), max(a, b)
    return Bar(ts, lo, hi, lo, hi, volume)


# Mostly garbage, with enough plausible bars mixed in that some are accepted.
sane_bars = st.builds(_sane, timestamps, st.floats(1.0, 1e5), st.floats(1.0, 1e5),
                      st.sampled_from([0.0, 1.0, 2.5]))


def _mostly_increasing(seq: list[Bar]) -> list[Bar]:
    """Re-time a sequence onto a 1m grid, leaving about one bar in five at its own timestamp."""
    return [b if b.ts % 5 == 0 else Bar(60_000 * i, b.open, b.high, b.low, b.close, b.volume)
            for i, b in enumerate(seq)]


mixed = st.lists(st.one_of(bars, sane_bars, sane_bars), max_size=60)
sequences = st.one_of(mixed, mixed.map(_mostly_increasing))


@settings(max_examples=300, deadline=None)
@given(sequences, st.sampled_from(["keep", "drop"]))
def test_property_validators_never_raise_and_accept_only_sane_bars(seq: list[Bar],
                                                                    zero: str) -> None:
    ts, price, volume, ohlc = validators = [
        build(TimestampValidator), build(PriceValidator), build(VolumeValidator, {"zero": zero}),
        build(OhlcValidator)]
    refused = [0, 0, 0, 0]
    accepted: list[Bar] = []
    for bar in seq:
        for i, v in enumerate(validators):
            ok = v.accept(bar)
            assert ok is True or ok is False
            if not ok:
                refused[i] += 1
                break
        else:
            for v in validators:
                v.accepted(bar)
            accepted.append(bar)
    for a, b in pairwise(accepted):
        assert b.ts > a.ts
    for b in accepted:
        for p in (b.open, b.high, b.low, b.close):
            assert 0.0 < p < INF
        assert b.low <= b.open <= b.high and b.low <= b.close <= b.high
        assert 0.0 <= b.volume < INF
        if zero == "drop":
            assert b.volume > 0.0
    # Every refusal is counted under exactly one reason.
    t = ts.stats()
    assert refused[0] == sum(n for k, n in t.items() if k not in ("gaps", "missing_bars"))
    assert refused[1] == sum(price.stats().values())
    vs = volume.stats()
    assert refused[2] == sum(n for k, n in vs.items() if k != "zero_kept")
    assert refused[3] == sum(ohlc.stats().values())
    assert len(accepted) + sum(refused) == len(seq)


@settings(max_examples=200, deadline=None)
@given(st.lists(bars, max_size=40))
def test_property_each_validator_alone_never_raises(seq: list[Bar]) -> None:
    for cls in (TimestampValidator, PriceValidator, VolumeValidator, OhlcValidator):
        v = build(cls)
        for bar in seq:
            assert feed([v], bar) in (True, False)
        assert all(isinstance(k, str) and n >= 0 for k, n in v.stats().items())


# --- contract tests ------------------------------------------------------------------------------


class TestTimestampContract(ValidatorContract):
    component_class = TimestampValidator


class TestPriceContract(ValidatorContract):
    component_class = PriceValidator


class TestVolumeContract(ValidatorContract):
    component_class = VolumeValidator


class TestVolumeDropZeroContract(ValidatorContract):
    component_class = VolumeValidator
    options = {"zero": "drop"}


class TestOhlcContract(ValidatorContract):
    component_class = OhlcValidator
