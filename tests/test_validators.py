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
from helpers import STRATEGY, ms

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


@pytest.mark.parametrize(("name", "zero_volume"),
                         [("BTC_USDT-5m.json", 28), ("ETH_USDT-5m.json", 28),
                          ("SOL_USDT-5m.json", 39)])
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
    assert ts.stats() == {"gaps": 6, "missing_bars": 177}
    assert gap_after == [ms(after) for _, after in NFI_GAPS]
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
    assert summary["bars_seen"] == summary["bars_accepted"] == 65_741
    assert summary["bars_dropped"] == 0
    assert summary["dropped_by"] == {"timestamp": {"gaps": 6, "missing_bars": 177},
                                     "volume": {"zero_kept": 28}}


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
    assert summary["bars_seen"] == 65_744
    assert summary["bars_dropped"] == 39
    assert summary["dropped_by"]["volume"] == {"zero": 39}


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


def test_timestamp_gap_is_counted_not_dropped(gridkit_sample_bars: list[Bar]) -> None:
    b = gridkit_sample_bars[:50]
    v = build(TimestampValidator)
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
    rows: list[Any] = [list(r) for r in btc_rows]
    rows.insert(200, [rows[199][0] + 10**12, None, None, None, None, 1.0])
    dump(tmp_path / "future.json", rows)
    summary = gridkit_run_toml(pipeline("future.json"))
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
    assert refused[0] == t.get("duplicate", 0) + t.get("out_of_order", 0)
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
