"""freqtrade-json read a row at a time and large files kept as columns (issue 11's memory).

The row-at-a-time reader must see exactly what parsing the whole file saw: the same bars, the
same malformed rows, and for a file it cannot read, the same one-line error. A file of more
than :data:`~gridkit.plugins.sources.COLUMNS_FROM` bars keeps them as columns and replays
Bars made from them; a fused backtest reads the columns directly, with the same fills.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import DataError
from gridkit.plugins import sources
from gridkit.plugins.sources import FreqtradeJson, _Rows
from gridkit.runtime.context import RunInfo

sys.path.insert(0, str(Path(__file__).parent))
import test_fused  # (its two-path comparison)


def load(path: Path) -> FreqtradeJson:
    source = FreqtradeJson(FreqtradeJson.Config(path=str(path)))
    source.setup(RunInfo("t", "backtest", "BTC/USDT", 1.0))
    return source


def whole(raw: bytes) -> tuple[list[tuple[Any, ...]], int]:
    """The rows as the whole-file parse reads them: (bars as tuples, malformed)."""
    rows = _Rows(b"true" in raw or b"false" in raw)
    for r in json.loads(raw):
        rows.add(r)
    return list(zip(*rows.columns, strict=True)), rows.malformed


def key(bars: list[tuple[Any, ...]]) -> str:
    return json.dumps([[repr(x) for x in b] for b in bars])  # NaN equal to NaN, -0.0 kept


def test_a_real_file_reads_the_same_a_row_at_a_time(btc_1m: Path) -> None:
    source = load(btc_1m)
    bars = [tuple(b) for b in ((e.ts, e.open, e.high, e.low, e.close, e.volume)
                               for e in source.events())]
    import gzip
    raw = btc_1m.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    expected, malformed = whole(raw)
    assert key(bars) == key(expected) and source.malformed == malformed
    assert len(bars) == 42_915 or len(bars) > 100
    assert source.columns() is None, "a small file keeps Bar objects"


cell = st.one_of(
    st.integers(-10**20, 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([None, True, False, "1.5", "x", "", [], {}]))
row = st.one_of(
    st.tuples(st.integers(0, 2**60), *[cell] * 5).map(list),
    st.tuples(st.integers(1_600_000_000_000, 1_700_000_000_000),
              *[st.floats(1, 1e6)] * 5).map(list),
    st.lists(cell, max_size=8), cell)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(row, max_size=30), spaces=st.sampled_from(["", " ", "\n  ", "\t"]))
def test_any_array_of_rows_reads_as_the_whole_file_parse(rows: list[Any],
                                                          spaces: str) -> None:
    text = json.dumps(rows, separators=("," + spaces, ":"))
    text = spaces + text.replace("[", "[" + spaces) + spaces
    got = _Rows(b"true" in text.encode() or b"false" in text.encode())
    assert sources._stream_rows(text, got)
    expected, malformed = whole(text.encode())
    assert key(list(zip(*got.columns, strict=True))) == key(expected)
    assert got.malformed == malformed


GOOD = b"[[1618876800000, 1, 2, 0.5, 1.5, 10], [1618876860000, 1.5, 2, 1, 1.2, 3]]"


@pytest.mark.parametrize(("raw", "message"), [
    (GOOD[:-3], "JSON"), (GOOD + b" ]", "JSON"), (GOOD.replace(b"], [", b"] ["), "JSON"),
    (b"\xff\xfe" + GOOD, "is not text"),
    (b'{"a": 1}', "is not OHLCV: a JSON object needs the columns"),
    (b"3", "expected a JSON array of [ms, open, high, low, close, volume] rows, got int"),
    (b"[[1, 2], [3]]", "has no OHLCV rows"),
    (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", "is nested too deeply"),
])
def test_a_bad_file_says_what_the_whole_file_parse_says(tmp_path: Path, raw: bytes,
                                                        message: str) -> None:
    path = tmp_path / "bars.json"
    path.write_bytes(raw)
    if message == "JSON":  # where json itself says the file breaks
        with pytest.raises(json.JSONDecodeError) as bad:
            json.loads(raw)
        e = bad.value
        message = f"is truncated or not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
    with pytest.raises(DataError) as err:
        load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_byte_order_mark_and_other_encodings_still_read(tmp_path: Path) -> None:
    for i, raw in enumerate((b"\xef\xbb\xbf" + GOOD, GOOD.decode().encode("utf-16"))):
        path = tmp_path / f"{i}.json"
        path.write_bytes(raw)
        assert [e.close for e in load(path).events()] == [1.5, 1.2]


def test_a_large_file_keeps_columns_and_replays_the_same_bars(
        btc_1m: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = load(btc_1m)
    bars = list(small.events())
    monkeypatch.setattr(sources, "COLUMNS_FROM", 1000)
    large = load(btc_1m)
    assert large.bars == [] and large.size_hint() == len(bars)
    assert list(large.events()) == bars and list(large.events()) == bars  # twice
    cols = large.columns()
    assert cols is not None and cols["ts"].dtype == np.int64
    assert cols["close"].tolist() == [b.close for b in bars]


def test_a_fused_run_on_columns_fills_as_the_event_loop(
        btc_1m: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "COLUMNS_FROM", 1000)
    source = {"use": "freqtrade-json", "path": str(btc_1m)}
    data = test_fused.pipeline(source, 45000, 60000, 30, 0.01, end="2021-05-12T00:00:00Z")
    data["pipeline"]["start"] = "2021-04-22T06:00:00Z"
    plugin, fills = test_fused.assert_same(data, tmp_path)
    assert len(fills) > 100 and plugin["bars_seen"] < 42_915


def test_hostile_cells_are_nan_and_short_rows_counted(tmp_path: Path) -> None:
    rows = [[1618876800000 + 60_000 * i, 1.0 + i, float("inf") if i == 3 else 2.0 + i,
             "x" if i == 5 else 0.5, None if i == 7 else 1.5, -1.0] for i in range(50)]
    rows.insert(10, [1, 2])
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(rows))
    bars = list(load(path).events())
    assert len(bars) == 50 and math.isnan(bars[5].low) and math.isnan(bars[7].close)
    assert load(path).malformed == 1
