"""Funding rates and mark prices of the real XRP/USDT:USDT perpetual (freqtrade's files), the
other accepted formats, and files that must be refused with one line."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridkit.core.errors import DataError
from gridkit.trading.funding import (
    FUNDING_INTERVAL_MS,
    FundingSeries,
    MarkSeries,
    load_funding,
    load_marks,
)
from gridkit.trading.margin import funding_payment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
FUNDING = EXAMPLES / "XRP_USDT_USDT-8h-funding_rate.feather"
MARK_8H = EXAMPLES / "XRP_USDT_USDT-8h-mark.feather"
CANDLES = EXAMPLES / "XRP_USDT_USDT-5m-futures.feather"
H8 = 8 * 3_600_000


def ms(text: str) -> int:
    """Epoch ms of a UTC time written ``2021-11-18 00:00:00.017``."""
    return int(np.datetime64(text.replace(" ", "T"), "ms").astype(np.int64))


def candle_times() -> np.ndarray:
    return feather.read_table(CANDLES).column("date").cast(pa.int64()).to_numpy() // 1_000_000


@pytest.fixture(scope="module")
def funding() -> FundingSeries:
    return load_funding(FUNDING)


@pytest.fixture(scope="module")
def marks() -> MarkSeries:
    return load_marks(MARK_8H)


# --- the real files ---------------------------------------------------------------------------


def test_shipped_files_are_the_shared_copies(data_dir: Path) -> None:
    shared = data_dir / "ohlcv" / "freqtrade" / "futures"
    for path in (FUNDING, MARK_8H, CANDLES):
        assert path.read_bytes() == (shared / path.name).read_bytes(), path.name


def test_funding_feather(funding: FundingSeries) -> None:
    assert len(funding) == 91
    assert funding.ts.dtype == np.int64 and funding.rate.dtype == np.float64
    # The exchange's few-ms offset survives the ns → ms conversion.
    assert funding.ts[0] == ms("2021-11-18 00:00:00.017")
    assert funding.ts[-1] == ms("2021-12-18 00:00:00.014")
    assert (np.diff(funding.ts) > 0).all()
    assert funding.rate[0] == 0.0001
    assert funding.rate.min() == pytest.approx(-0.00219334)
    assert funding.rate.max() == pytest.approx(0.00058316)
    assert funding.interval_ms == FUNDING_INTERVAL_MS


def test_funding_events_inside_the_5m_candles(funding: FundingSeries) -> None:
    """The 5m candles run 2021-11-15 00:00 → 11-21 22:30 (open times). Funding times
    2021-11-18 00:00 through 11-21 16:00 fall inside: 4 days × 3 = 12 events (SOURCES.md
    §1.5b counts 11; the file has 12)."""
    bars = candle_times()
    assert len(bars) == 1999 and set(np.diff(bars)) == {300_000}
    times, rates = funding.between(int(bars[0]), int(bars[-1]) + 300_000)
    assert len(times) == 12
    assert times[0] == ms("2021-11-18 00:00:00.017") and times[-1] == ms("2021-11-21 16:00")
    assert len(rates) == 12
    # Walking bar by bar hands each event to exactly one bar.
    seen = [t for a, b in itertools.pairwise(bars)
            for t in funding.between(int(a), int(b))[0]]
    assert seen == list(times)


def test_covers_reports_the_first_missing_funding_time(funding: FundingSeries) -> None:
    bars = candle_times()
    t0, t1 = int(bars[0]), int(bars[-1]) + 300_000
    ok, missing = funding.covers(t0, t1)
    assert not ok and missing == ms("2021-11-15 08:00")
    with pytest.raises(DataError) as e:
        funding.require(t0, t1)
    line = str(e.value)
    assert "\n" not in line and line.startswith(str(FUNDING))
    assert "no funding rate for 2021-11-15 08:00:00 UTC" in line
    assert "2021-11-18 00:00:00.017 .. 2021-12-18 00:00:00.014" in line
    # From the first funding time on, the file covers the candles.
    assert funding.covers(ms("2021-11-17 23:00"), t1) == (True, None)
    funding.require(ms("2021-11-18 00:00"), t1)
    # Past its end it does not.
    assert funding.covers(ms("2021-12-17 00:00"), ms("2021-12-19 00:00")) == \
        (False, ms("2021-12-18 08:00"))
    # A run shorter than the interval with no funding time in it needs nothing.
    assert funding.covers(ms("2021-11-15 01:00"), ms("2021-11-15 07:59")) == (True, None)


def test_covers_finds_a_hole_inside() -> None:
    ts = np.array([0, H8, 3 * H8, 4 * H8], dtype=np.int64) + 17
    series = FundingSeries(ts, np.full(4, 1e-4))
    assert series.covers(-1, 4 * H8) == (False, 2 * H8)
    assert series.covers(-1, H8 + 5) == (True, None)  # slot H8, event at H8 + 17 ms
    empty = FundingSeries(np.array([], dtype=np.int64), np.array([]))
    assert empty.covers(0, H8) == (False, H8)
    with pytest.raises(DataError, match="it has no events"):
        empty.require(0, H8)


def test_marks_8h(marks: MarkSeries, funding: FundingSeries) -> None:
    assert len(marks) == 91 and marks.timeframe_ms == H8
    assert marks.ts[0] == ms("2021-11-18 00:00") and marks.end_ms == ms("2021-12-18 08:00")
    # At a funding time the mark is the open of the candle starting then, as freqtrade uses.
    for t in funding.ts:
        i = int(np.searchsorted(marks.ts, t, side="right")) - 1
        assert marks.ts[i] == t - t % 1000 and marks.at(int(t)) == marks.open[i]
    assert marks.at(ms("2021-11-18 00:00")) == 1.0959
    assert marks.at(ms("2021-11-18 07:59")) == 1.0959  # the close (1.1074) is not known yet
    assert marks.at(ms("2021-11-18 08:00")) == 1.1075
    assert math.isnan(marks.at(ms("2021-11-17 23:59")))
    assert marks.at(ms("2021-12-18 08:00")) == 0.8124  # past the end: the last close
    assert marks.covers(ms("2021-11-18 00:00"), ms("2021-12-18 08:00")) == (True, None)
    assert marks.covers(ms("2021-11-15 00:00"), ms("2021-11-19 00:00")) == \
        (False, ms("2021-11-15 00:00"))
    assert marks.covers(ms("2021-12-01 00:00"), ms("2021-12-19 00:00")) == \
        (False, ms("2021-12-18 08:00"))


def test_marks_1h(data_dir: Path) -> None:
    path = data_dir / "ohlcv" / "freqtrade" / "futures" / "XRP_USDT_USDT-1h-mark.feather"
    marks = load_marks(path)  # volume is null in this file: not needed, not refused
    assert len(marks) == 100 and marks.timeframe_ms == 3_600_000
    assert marks.ts[0] == ms("2021-11-15 06:00") and marks.ts[-1] == ms("2021-11-19 09:00")
    assert marks.at(ms("2021-11-15 06:30")) == 1.20932


@given(st.lists(st.integers(min_value=ms("2021-11-17 00:00"), max_value=ms("2021-12-19 00:00")),
                min_size=1, max_size=60))
def test_cursor_and_batch_agree_with_at(times: list[int]) -> None:
    marks = load_marks(MARK_8H)
    ordered = sorted(times)
    cursor = marks.cursor()
    got = [cursor.at(t) for t in ordered]
    want = [marks.at(t) for t in ordered]
    assert np.array_equal(got, want, equal_nan=True)
    # Out of order too (slower path), and the batch path.
    back = marks.cursor()
    assert np.array_equal([back.at(t) for t in times], [marks.at(t) for t in times],
                          equal_nan=True)
    assert np.array_equal(marks.values_at(np.array(times)), [marks.at(t) for t in times],
                          equal_nan=True)


def test_funding_of_a_long_over_the_candles(funding: FundingSeries, marks: MarkSeries) -> None:
    """A 1 000 XRP long held over the 5m candles: each event pays −qty × mark × rate."""
    bars = candle_times()
    times, rates = funding.between(int(bars[0]), int(bars[-1]) + 300_000)
    cursor = marks.cursor()
    cash = sum(funding_payment(1000.0, cursor.at(int(t)), float(r))
               for t, r in zip(times, rates, strict=True))
    expected = -1000.0 * float(np.sum(marks.values_at(times) * rates))
    assert cash == pytest.approx(expected, rel=1e-12)
    assert cash < 0  # the rate was positive at most of these times: the long paid


# --- other formats ----------------------------------------------------------------------------


def test_csv_and_ccxt_json_read_the_same_series(tmp_path: Path,
                                                funding: FundingSeries) -> None:
    path = tmp_path / "xrp.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts", "rate"])
        w.writerows(zip(funding.ts.tolist(), funding.rate.tolist(), strict=True))
    from_csv = load_funding(path)
    assert np.array_equal(from_csv.ts, funding.ts) and np.array_equal(from_csv.rate,
                                                                      funding.rate)
    records = [{"info": {"symbol": "XRPUSDT"}, "symbol": "XRP/USDT:USDT", "fundingRate": r,
                "timestamp": t, "datetime": "..."}
               for t, r in zip(funding.ts.tolist(), funding.rate.tolist(), strict=True)]
    path = tmp_path / "xrp.json"
    path.write_text(json.dumps(records))
    from_json = load_funding(path)
    assert np.array_equal(from_json.ts, funding.ts) and np.array_equal(from_json.rate,
                                                                       funding.rate)
    assert from_json.interval_ms == H8


# --- hostile files ----------------------------------------------------------------------------


def write_feather(path: Path, columns: dict[str, list]) -> Path:
    arrays = {}
    for name, values in columns.items():
        if name == "date" and values and isinstance(values[0], int):
            arrays[name] = pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        else:
            arrays[name] = pa.array(values)
    feather.write_feather(pa.table(arrays), path)
    return path


def one_line(error: pytest.ExceptionInfo, path: Path, *parts: str) -> None:
    line = str(error.value)
    assert "\n" not in line, line
    assert str(path) in line, line
    for part in parts:
        assert part in line, line


T0 = ms("2021-11-18 00:00")

BAD_FUNDING = {
    "empty": ("f.csv", b"", ["file is empty"]),
    "header only": ("f.csv", b"ts,rate\n", ["no funding events"]),
    "wrong header": ("f.csv", b"time,value\n1,2\n", ["line 1 must be the header 'ts,rate'"]),
    "NaN in CSV": ("f.csv", f"ts,rate\n{T0},0.0001\n{T0 + H8},nan\n".encode(),
                   ["line 3", "2021-11-18 08:00:00", "funding rate is nan"]),
    "inf in CSV": ("f.csv", f"ts,rate\n{T0},inf\n".encode(), ["line 2", "is inf"]),
    "unsorted CSV": ("f.csv", f"ts,rate\n{T0 + H8},0.0001\n{T0},0.0001\n".encode(),
                     ["line 3", "goes back from", "must be sorted without duplicates"]),
    "duplicate JSON": ("f.json", json.dumps([{"timestamp": T0, "fundingRate": 1e-4}] * 2)
                       .encode(), ["row 2", "repeats"]),
    "ts in seconds": ("f.csv", b"ts,rate\n1637193600.5,0.0001\n",
                      ["line 2", "not integer epoch milliseconds"]),
    "ts huge": ("f.csv", f"ts,rate\n{10**30},0.0001\n".encode(), ["between 1970 and 2100"]),
    "text rate": ("f.csv", f"ts,rate\n{T0},lots\n".encode(), ["line 2", "'lots' is not a number"]),
    "short row": ("f.csv", f"ts,rate\n{T0}\n".encode(), ["line 2", "expected ts,rate"]),
    "bad UTF-8": ("f.csv", b"ts,rate\n\xff\xfe,1\n", ["not a readable CSV"]),
    "JSON object": ("f.json", b'{"XRP": 1}', ["expected a list of ccxt funding-rate records"]),
    "JSON records": ("f.json", b'[{"time": 1, "rate": 2}]', ["row 1", "'timestamp'"]),
    "JSON null rate": ("f.json", json.dumps([{"timestamp": T0, "fundingRate": None}]).encode(),
                       ["row 1", "funding rate is nan"]),
    "JSON 1e400": ("f.json", f'[{{"timestamp": {T0}, "fundingRate": 1e400}}]'.encode(),
                   ["row 1", "funding rate is inf"]),
    "JSON bool ts": ("f.json", b'[{"timestamp": true, "fundingRate": 0.0001}]',
                     ["row 1", "timestamp True"]),
    "not JSON": ("f.json", b"[{]", ["not JSON"]),
    "deep JSON": ("f.json", b"[" * 100_000 + b"]" * 100_000, ["not JSON"]),
    "not feather": ("f.feather", b"PAR1 this is not arrow", ["not a readable Feather file"]),
    "extension": ("f.txt", b"ts,rate\n", ["cannot tell the format", ".txt"]),
}


@pytest.mark.parametrize("name", list(BAD_FUNDING))
def test_bad_funding_file(tmp_path: Path, name: str) -> None:
    filename, content, parts = BAD_FUNDING[name]
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, *parts)


def test_bad_funding_feathers(tmp_path: Path) -> None:
    path = write_feather(tmp_path / "cols.feather", {"a": [1.0], "b": [2.0]})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "no 'date' column (columns: a, b)")
    path = write_feather(tmp_path / "noopen.feather", {"date": [T0], "rate": [1e-4]})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "no 'open' column", "open (the rate)")
    path = write_feather(tmp_path / "nan.feather",
                         {"date": [T0, T0 + H8, T0 + 2 * H8], "open": [1e-4, math.nan, 1e-4]})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "row 2 (2021-11-18 08:00:00): funding rate is nan")
    path = write_feather(tmp_path / "unsorted.feather",
                         {"date": [T0 + H8, T0], "open": [1e-4, 1e-4]})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "row 2", "goes back")
    path = write_feather(tmp_path / "strdate.feather", {"date": ["2021-11-18"], "open": [1e-4]})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "column 'date' is string, expected a timestamp")
    table = pa.table({"date": pa.array([T0, None], pa.int64()).cast(pa.timestamp("ms")),
                      "open": [1e-4, 1e-4]})
    path = tmp_path / "nulldate.feather"
    feather.write_feather(table, path)
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path, "row 2: date is missing")
    path = write_feather(tmp_path / "empty.feather", {"date": [], "open": []})
    with pytest.raises(DataError) as e:
        load_funding(path)
    one_line(e, path)


def test_mark_file_passed_as_funding_is_refused() -> None:
    with pytest.raises(DataError) as e:
        load_funding(MARK_8H)
    one_line(e, MARK_8H, "row 1", "funding rate 1.0959 is not a fraction", "mark")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_funding(tmp_path / "nope.feather")
    with pytest.raises(DataError, match="not a file"):
        load_marks(tmp_path)


def test_bad_mark_files(tmp_path: Path) -> None:
    path = write_feather(tmp_path / "zero-8h-mark.feather",
                         {"date": [T0, T0 + H8], "open": [1.0, 0.0], "close": [1.0, 1.0]})
    with pytest.raises(DataError) as e:
        load_marks(path)
    one_line(e, path, "row 2", "mark open is 0.0, not a positive price")
    path = write_feather(tmp_path / "dense-8h-mark.feather",
                         {"date": [T0, T0 + 3_600_000], "open": [1.0, 1.0], "close": [1.0, 1.0]})
    with pytest.raises(DataError) as e:
        load_marks(path)
    one_line(e, path, "row 2", "less than the 28800000 ms timeframe")
    path = write_feather(tmp_path / "one.feather", {"date": [T0], "open": [1.0], "close": [1.0]})
    with pytest.raises(DataError) as e:
        load_marks(path)
    one_line(e, path, "pass timeframe_ms")
    assert load_marks(path, timeframe_ms=H8).at(T0 + H8) == 1.0
    path = write_feather(tmp_path / "noclose.feather", {"date": [T0], "open": [1.0]})
    with pytest.raises(DataError) as e:
        load_marks(path)
    one_line(e, path, "no 'close' column")
    path = tmp_path / "marks.csv"
    path.write_text("ts,close\n")
    with pytest.raises(DataError) as e:
        load_marks(path)
    one_line(e, path, ".feather")
