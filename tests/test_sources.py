"""The file sources ``freqtrade-json`` and ``csv`` on the real market data, and on broken input.

Every real file must replay exactly what SOURCES.md says it holds (row counts, first and last
candle). Every way a user can hand over a bad file must end in one :class:`gridkit.DataError`
naming the file (DESIGN.md §9); bad rows inside a good file are counted and skipped, bad values
become NaN for the validators to drop.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import gridkit
from gridkit.plugins.sources import CsvSource, FreqtradeJson
from gridkit.runtime.context import RunInfo
from gridkit.testing import SourceContract, build, sample_path
from helpers import STRATEGY, expect, ms

NAUTILUS_CSV = "ohlcv/nautilus_trader/btc-perp-20211231-20220201_1m.csv"
CANDLES = "ohlcv/freqtrade/orderflow/candles.json"




def run_info(base_dir: Path) -> RunInfo:
    return RunInfo("test", "backtest", "BTC/USDT", 10_000.0, base_dir)


def load(cls: type, options: dict[str, Any], base_dir: Path) -> tuple[Any, list[gridkit.Bar]]:
    """Build, validate and set up a source; return it with every bar it yields."""
    source = build(cls, options)
    source.validate(run_info(base_dir))
    source.setup(run_info(base_dir))
    try:
        return source, list(source.events())
    finally:
        source.close()


def setup_error(cls: type, options: dict[str, Any], base_dir: Path) -> str:
    """The one DataError line a source's setup (and first events) raises."""
    source = build(cls, options)
    with pytest.raises(gridkit.DataError) as info:
        source.setup(run_info(base_dir))
        list(source.events())
    message = str(info.value)
    assert "\n" not in message, "a DataError is one line"
    return message


@pytest.fixture(scope="module")
def btc_rows(btc_1m: Path) -> list[list[Any]]:
    """The first 500 raw rows of the real BTC/USDT 1m file."""
    return json.loads(btc_1m.read_text())[:500]


def write_json(path: Path, rows: Any) -> Path:
    path.write_text(json.dumps(rows))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


# --- real files ----------------------------------------------------------------------------------

FREQTRADE_FILES = [
    # (path, rows, first candle, last candle, step in minutes) — SOURCES.md §1.1 and §1.2, or
    # the first rows that the slices of tests/data keep (tests/data/SOURCE.md)
    ("ohlcv/nostalgiaforinfinity/BTC_USDT-5m.json", *expect(
        (65_741, "2020-12-01 00:00", "2021-07-17 21:05"),
        (7_500, "2020-12-01 00:00", "2020-12-27 05:45")), 5),
    ("ohlcv/nostalgiaforinfinity/ETH_USDT-5m.json", *expect(
        (65_742, "2020-12-01 00:00", "2021-07-17 21:10"),
        (7_500, "2020-12-01 00:00", "2020-12-27 05:45")), 5),
    ("ohlcv/nostalgiaforinfinity/SOL_USDT-5m.json", *expect(
        (65_744, "2020-12-01 00:00", "2021-07-17 21:20"),
        (7_500, "2020-12-01 00:00", "2020-12-27 05:45")), 5),
    ("ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json", 42_915, "2021-04-20 20:42",
     "2021-05-20 20:40", 1),
    ("ohlcv/tooyipjee-freqtrade/ETH_USDT-1m.json", *expect(
        (42_915, "2021-04-20 20:40", "2021-05-20 20:38"),
        (7_000, "2021-04-20 20:40", "2021-04-25 22:03")), 1),
    ("ohlcv/tooyipjee-freqtrade/DOGE_USDT-1m.json", *expect(
        (42_915, "2021-04-20 20:41", "2021-05-20 20:39"),
        (16_700, "2021-04-20 20:41", "2021-05-02 15:44")), 1),
    ("ohlcv/tooyipjee-freqtrade/BTC_USDT-5m.json", 8_583, "2021-04-20 20:45",
     "2021-05-20 20:35", 5),
    ("ohlcv/tooyipjee-freqtrade/ETH_USDT-5m.json", *expect(
        (8_583, "2021-04-20 20:40", "2021-05-20 20:30"),
        (3_000, "2021-04-20 20:40", "2021-05-01 11:15")), 5),
]


@pytest.mark.parametrize(("path", "rows", "first", "last", "step"), FREQTRADE_FILES,
                         ids=[p.split("/", 1)[1] for p, *_ in FREQTRADE_FILES])
def test_freqtrade_json_real_files(data_dir: Path, path: str, rows: int, first: str, last: str,
                                   step: int) -> None:
    source, bars = load(FreqtradeJson, {"path": path}, data_dir)
    assert len(bars) == rows
    assert source.size_hint() == rows
    assert source.stats() == {"rows": rows, "malformed_rows": 0}
    assert bars[0].ts == ms(first)
    assert bars[-1].ts == ms(last)
    # Sorted, on the timeframe's grid, values exactly as in the file.
    assert all(b.ts > a.ts and (b.ts - a.ts) % (step * 60_000) == 0
               for a, b in pairwise(bars))
    raw = json.loads((data_dir / path).read_text())
    for i in (0, len(raw) // 2, -1):
        assert [bars[i].ts, bars[i].open, bars[i].high, bars[i].low, bars[i].close,
                bars[i].volume] == [float(x) for x in raw[i][:6]]


def test_freqtrade_json_reads_pandas_column_json(data_dir: Path) -> None:
    source, bars = load(FreqtradeJson, {"path": CANDLES}, data_dir)
    assert len(bars) == expect(10_999, 2_000)
    assert bars[0].ts == ms("2023-01-02 16:45")
    assert bars[-1].ts == ms(expect("2023-02-09 21:15", "2023-01-09 15:20"))
    assert all(b.ts - a.ts == 300_000 for a, b in pairwise(bars)), "contiguous 5m"
    assert bars[0] == gridkit.Bar(1672677900000, 16727.3, 16728.8, 16726.0, 16726.1, 691.508)
    assert all(16_000 < b.low <= b.high < 25_000 for b in bars)
    assert source.stats()["malformed_rows"] == 0


def test_freqtrade_json_reads_raw_binance_klines(data_dir: Path) -> None:
    # 12-field rows with prices as strings, exactly as Binance's REST API sends them.
    path = "api_fixtures/nautilus_trader/binance_http_responses/http_spot_market_klines.json"
    source, bars = load(FreqtradeJson, {"path": path}, data_dir)
    assert len(bars) == 10
    assert bars[0] == gridkit.Bar(ms("2021-10-22 23:03"), 60685.22, 60729.84, 60670.90, 60719.27,
                                  21.63272)
    assert bars[-1].ts == ms("2021-10-22 23:12")
    assert source.stats()["malformed_rows"] == 0


def test_freqtrade_json_reads_gzip(tmp_path: Path, btc_1m: Path) -> None:
    (tmp_path / "btc.json.gz").write_bytes(gzip.compress(btc_1m.read_bytes()))
    _, bars = load(FreqtradeJson, {"path": "btc.json.gz"}, tmp_path)
    assert len(bars) == 42_915
    assert bars[0].ts == ms("2021-04-20 20:42")


def test_csv_iso_timestamps_real_file(data_dir: Path) -> None:
    source, bars = load(CsvSource, {"path": NAUTILUS_CSV}, data_dir)
    rows = expect(45_031, 3_000)
    assert len(bars) == rows
    assert bars[0] == gridkit.Bar(ms("2021-12-31 23:01"), 46319.0, 46385.0, 46319.0, 46377.0,
                                  2300413.7295)
    assert bars[-1].ts == ms(expect("2022-02-01 05:31", "2022-01-03 01:00"))
    assert all(b.ts - a.ts == 60_000 for a, b in pairwise(bars)), "contiguous 1m"
    assert source.stats() == {"rows": rows, "malformed_rows": 0, "ts_unit": "iso"}


def test_relative_path_resolves_against_base_dir(data_dir: Path) -> None:
    _, bars = load(FreqtradeJson, {"path": "tooyipjee-freqtrade/BTC_USDT-5m.json"},
                   data_dir / "ohlcv")
    assert len(bars) == 8_583


# --- CSV: timestamp units, column mapping, overrides --------------------------------------------

UNITS = {"s": 1e-3, "ms": 1, "us": 1_000, "ns": 1_000_000}


@pytest.mark.parametrize("unit", list(UNITS))
def test_csv_autodetects_epoch_unit(tmp_path: Path, btc_rows: list[list[Any]], unit: str) -> None:
    rows = [[int(r[0] * UNITS[unit]), *r[1:6]] for r in btc_rows]
    write_csv(tmp_path / "bars.csv", ["timestamp", "open", "high", "low", "close", "volume"], rows)
    source, bars = load(CsvSource, {"path": "bars.csv"}, tmp_path)
    assert source.stats()["ts_unit"] == unit
    assert [b.ts for b in bars] == [r[0] for r in btc_rows]
    assert [b.close for b in bars] == [float(r[4]) for r in btc_rows]


def test_csv_columns_mapping_and_delimiter(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    header = ["Kline Open", "Open Price", "High Price", "Low Price", "Close Price", "Quote Volume",
              "Base Volume"]
    rows = [[r[0], *r[1:5], r[4] * r[5], r[5]] for r in btc_rows]
    write_csv(tmp_path / "k.csv", header, rows, delimiter=";")
    options = {"path": "k.csv", "delimiter": ";",
               "columns": {"ts": "kline open", "open": "Open Price", "high": "High Price",
                           "low": "Low Price", "close": "Close Price", "volume": "Base Volume"}}
    _, bars = load(CsvSource, options, tmp_path)
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (r[0], *(float(x) for x in r[1:6])) for r in btc_rows]


def test_csv_short_aliases(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    write_csv(tmp_path / "a.csv", ["Date", "o", "h", "l", "c", "v"], [r[:6] for r in btc_rows])
    _, bars = load(CsvSource, {"path": "a.csv"}, tmp_path)
    assert [b.ts for b in bars] == [r[0] for r in btc_rows]
    assert bars[7].volume == float(btc_rows[7][5])


@pytest.mark.parametrize(("option", "message"), [
    ('columns = {price = "close"}', "source.columns: unknown role(s) price"),
    ('delimiter = ";;"', "source.delimiter: must be one character"),
    ('ts_unit = "minutes"', "source.ts_unit"),
])
def test_csv_bad_options_are_config_errors(tmp_path: Path, gridkit_host: Any, option: str,
                                           message: str) -> None:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    write_csv(tmp_path / "x.csv", ["timestamp", "open", "high", "low", "close", "volume"], [])
    text = pipeline_text("x.csv", use="csv").replace('use = "csv"', f'use = "csv"\n{option}')
    config = parse_pipeline(text, base_dir=tmp_path)
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    assert message in str(info.value)


def test_csv_ts_unit_override(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    # Millisecond times of the first days of 1970 look like seconds to the auto-detection; the
    # override reads them as written.
    rows = [[86_400_000 + 60_000 * i, *r[1:6]] for i, r in enumerate(btc_rows)]
    write_csv(tmp_path / "early.csv", ["time", "open", "high", "low", "close", "volume"], rows)
    source, bars = load(CsvSource, {"path": "early.csv", "ts_unit": "ms"}, tmp_path)
    assert source.stats()["ts_unit"] == "ms"
    assert [b.ts for b in bars] == [r[0] for r in rows]
    auto, auto_bars = load(CsvSource, {"path": "early.csv"}, tmp_path)
    assert auto.stats()["ts_unit"] == "s"
    assert auto_bars[0].ts == rows[0][0] * 1000

    secs = [[r[0] // 1000, *r[1:6]] for r in btc_rows]
    write_csv(tmp_path / "s.csv", ["time", "open", "high", "low", "close", "volume"], secs)
    _, bars = load(CsvSource, {"path": "s.csv", "ts_unit": "s"}, tmp_path)
    assert [b.ts for b in bars] == [r[0] for r in btc_rows]


def test_csv_mixed_timestamp_units_are_counted_malformed(tmp_path: Path,
                                                         btc_rows: list[list[Any]]) -> None:
    rows = [list(r[:6]) for r in btc_rows[:100]]
    for i in range(60, 70):  # these rows switch to epoch seconds
        rows[i][0] = rows[i][0] // 1000
    rows[80][0] = rows[80][0] * 1000  # and this one to microseconds
    write_csv(tmp_path / "mixed.csv", ["timestamp", "open", "high", "low", "close", "volume"],
              rows)
    source, bars = load(CsvSource, {"path": "mixed.csv"}, tmp_path)
    assert source.stats() == {"rows": 100, "malformed_rows": 11, "ts_unit": "ms"}
    kept = [r[0] for i, r in enumerate(btc_rows[:100]) if not (60 <= i < 70 or i == 80)]
    assert [b.ts for b in bars] == kept


def test_csv_short_rows_and_bad_timestamps_are_counted(tmp_path: Path,
                                                       btc_rows: list[list[Any]]) -> None:
    rows: list[list[Any]] = [list(r[:6]) for r in btc_rows[:50]]
    rows[10] = rows[10][:4]                       # too few cells
    rows[20][0] = "not a time"                    # unparsable timestamp
    rows[30][0] = ""                              # empty timestamp
    rows[40][4] = "n/a"                           # bad price: kept as NaN
    write_csv(tmp_path / "r.csv", ["timestamp", "open", "high", "low", "close", "volume"], rows)
    source, bars = load(CsvSource, {"path": "r.csv"}, tmp_path)
    assert source.stats()["malformed_rows"] == 3
    assert len(bars) == 47
    bad = next(b for b in bars if b.ts == btc_rows[40][0])
    assert math.isnan(bad.close) and bad.open == float(btc_rows[40][1])


@pytest.mark.parametrize("first_ts", ["abc", "nan"])
def test_csv_bad_first_timestamp_does_not_decide_the_unit(tmp_path: Path,
                                                          btc_rows: list[list[Any]],
                                                          first_ts: str) -> None:
    rows = [list(r[:6]) for r in btc_rows[:50]]
    rows[0][0] = first_ts
    write_csv(tmp_path / "f.csv", ["timestamp", "open", "high", "low", "close", "volume"], rows)
    source, bars = load(CsvSource, {"path": "f.csv"}, tmp_path)
    assert source.stats()["malformed_rows"] == 1
    assert [b.ts for b in bars] == [r[0] for r in btc_rows[1:50]]


# --- freqtrade-json: bad rows and bad values -----------------------------------------------------


def test_wrong_arity_rows_are_counted_malformed(tmp_path: Path,
                                                btc_rows: list[list[Any]]) -> None:
    rows: list[Any] = [list(r) for r in btc_rows[:200]]
    bad = [rows[5][:5], rows[6][:1], [], "row", None, {"ts": rows[7][0]},
           ["1619000000000", *rows[8][1:6]], [True, *rows[9][1:6]], [None, *rows[10][1:6]]]
    for i, b in enumerate(bad):
        rows.insert(20 + 10 * i, b)
    write_json(tmp_path / "x.json", rows)
    source, bars = load(FreqtradeJson, {"path": "x.json"}, tmp_path)
    assert source.stats() == {"rows": 200, "malformed_rows": len(bad)}
    assert [b.ts for b in bars] == [r[0] for r in btc_rows[:200]]
    # Extra columns (freqtrade's newer formats) are fine: the first six are read.
    write_json(tmp_path / "wide.json", [[*r, 123, "x"] for r in btc_rows[:10]])
    _, wide = load(FreqtradeJson, {"path": "wide.json"}, tmp_path)
    assert [b.close for b in wide] == [float(r[4]) for r in btc_rows[:10]]


def test_bad_values_become_nan(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    r = btc_rows[0]
    text = json.dumps([list(r) for r in btc_rows[:3]])[:-1]
    text += f', [{r[0] + 180_000}, null, "abc", NaN, Infinity, -Infinity]'
    text += f', [{r[0] + 240_000}, "{r[1]}", {{}}, [], true, "1e3"]]'
    (tmp_path / "v.json").write_text(text)
    _, bars = load(FreqtradeJson, {"path": "v.json"}, tmp_path)
    assert len(bars) == 5
    b = bars[3]
    assert math.isnan(b.open) and math.isnan(b.high) and math.isnan(b.low)
    assert b.close == math.inf and b.volume == -math.inf
    c = bars[4]
    # A numeric string is a number; an object, a list or a bool is not.
    assert c.open == float(r[1]) and c.volume == 1000.0
    assert math.isnan(c.high) and math.isnan(c.low) and math.isnan(c.close)


def test_bad_values_are_dropped_downstream(tmp_path: Path, btc_rows: list[list[Any]],
                                          gridkit_run_toml: Any) -> None:
    rows: list[list[Any]] = [list(r) for r in btc_rows[:300]]
    rows[50][4] = None
    rows[60][2] = "garbage"
    rows[70][5] = None
    write_json(tmp_path / "v.json", rows)
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "v.json"
{STRATEGY}""")
    assert summary["status"] == "finished"
    assert summary["bars_seen"] == 300
    assert summary["bars_dropped"] == 3
    assert summary["dropped_by"]["price"] == {"nan": 2}
    assert summary["dropped_by"]["volume"] == {"nan": 1}
    assert summary["last_ts"] == btc_rows[299][0]


def test_huge_integer_timestamp_is_a_malformed_row(tmp_path: Path,
                                                   btc_rows: list[list[Any]]) -> None:
    rows: list[Any] = [list(r) for r in btc_rows[:20]]
    text = json.dumps(rows)[:-1] + f", [{10**400}, 1, 2, 0.5, 1, 1]]"
    (tmp_path / "big.json").write_text(text)
    source, bars = load(FreqtradeJson, {"path": "big.json"}, tmp_path)
    assert source.stats()["malformed_rows"] == 1
    assert len(bars) == 20


def test_huge_integer_price_does_not_crash(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    rows: list[Any] = [list(r) for r in btc_rows[:20]]
    r = rows[5]
    text = json.dumps(rows)[:-1] + f", [{rows[-1][0] + 60_000}, {10**400}, {r[2]}, {r[3]}, " \
                                   f"{r[4]}, {r[5]}]]"
    (tmp_path / "big.json").write_text(text)
    _, bars = load(FreqtradeJson, {"path": "big.json"}, tmp_path)
    assert len(bars) == 21
    assert not (0 < bars[-1].open < math.inf)


# --- files that cannot be read at all: one DataError naming the file ----------------------------

SOURCES = [(FreqtradeJson, "x.json"), (CsvSource, "x.csv")]
SOURCE_IDS = ["freqtrade-json", "csv"]


@pytest.mark.parametrize(("cls", "name"), SOURCES, ids=SOURCE_IDS)
def test_missing_file(tmp_path: Path, cls: type, name: str) -> None:
    message = setup_error(cls, {"path": name}, tmp_path)
    assert str(tmp_path / name) in message and "not found" in message
    with pytest.raises(gridkit.DataError, match="not found"):
        build(cls, {"path": name}).validate(run_info(tmp_path))


@pytest.mark.parametrize(("cls", "name"), SOURCES, ids=SOURCE_IDS)
def test_directory(tmp_path: Path, cls: type, name: str) -> None:
    (tmp_path / name).mkdir()
    message = setup_error(cls, {"path": name}, tmp_path)
    assert str(tmp_path / name) in message and "directory" in message
    with pytest.raises(gridkit.DataError, match="not a file"):
        build(cls, {"path": name}).validate(run_info(tmp_path))


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n   \n"], ids=["empty", "whitespace"])
@pytest.mark.parametrize(("cls", "name"), SOURCES, ids=SOURCE_IDS)
def test_empty_file(tmp_path: Path, cls: type, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    message = setup_error(cls, {"path": name}, tmp_path)
    assert str(tmp_path / name) in message and "empty" in message


def test_empty_gzip(tmp_path: Path) -> None:
    (tmp_path / "x.json.gz").write_bytes(gzip.compress(b""))
    message = setup_error(FreqtradeJson, {"path": "x.json.gz"}, tmp_path)
    assert str(tmp_path / "x.json.gz") in message and "empty" in message


@pytest.mark.parametrize("name", ["BTC_USDT-1m.json", "candles.json"])
def test_truncated_json(tmp_path: Path, data_dir: Path, name: str) -> None:
    src = next((data_dir / "ohlcv").rglob(name))
    raw = src.read_bytes()
    (tmp_path / name).write_bytes(raw[: len(raw) // 2])
    message = setup_error(FreqtradeJson, {"path": name}, tmp_path)
    assert str(tmp_path / name) in message and "truncated" in message


def test_truncated_gzip(tmp_path: Path) -> None:
    raw = sample_path().read_bytes()
    (tmp_path / "x.json.gz").write_bytes(raw[: len(raw) // 2])
    message = setup_error(FreqtradeJson, {"path": "x.json.gz"}, tmp_path)
    assert str(tmp_path / "x.json.gz") in message and "gzip" in message


def test_gzip_with_bad_checksum(tmp_path: Path) -> None:
    raw = bytearray(sample_path().read_bytes())
    raw[-8:-4] = bytes(b ^ 0xFF for b in raw[-8:-4])  # the CRC32 of the trailer
    (tmp_path / "x.json.gz").write_bytes(bytes(raw))
    message = setup_error(FreqtradeJson, {"path": "x.json.gz"}, tmp_path)
    assert str(tmp_path / "x.json.gz") in message and "corrupt" in message


@pytest.mark.parametrize("offset", [10, 50, 1000])
def test_gzip_with_corrupt_deflate_stream(tmp_path: Path, offset: int) -> None:
    raw = bytearray(sample_path().read_bytes())
    raw[offset:offset + 8] = b"\xff" * 8
    (tmp_path / "x.json.gz").write_bytes(bytes(raw))
    message = setup_error(FreqtradeJson, {"path": "x.json.gz"}, tmp_path)
    assert str(tmp_path / "x.json.gz") in message


NOT_OHLCV = {
    "object": {"pair": "BTC/USDT", "timeframe": "1m", "data": [[1, 2, 3, 4, 5, 6]]},
    "columns-missing": {"date": {"0": 1}, "open": {"0": 1.0}},
    "columns-uneven": {c: ({"0": 1, "1": 2} if c == "date" else {"0": 1.0})
                       for c in ("date", "open", "high", "low", "close", "volume")},
    "number": 42,
    "string": "BTC/USDT",
    "null": None,
    "empty-array": [],
    "array-of-numbers": [1, 2, 3],
    "array-of-objects": [{"ts": 1, "open": 1.0}],
}


@pytest.mark.parametrize("doc", list(NOT_OHLCV.values()), ids=list(NOT_OHLCV))
def test_json_that_is_not_ohlcv(tmp_path: Path, doc: Any) -> None:
    write_json(tmp_path / "x.json", doc)
    message = setup_error(FreqtradeJson, {"path": "x.json"}, tmp_path)
    assert str(tmp_path / "x.json") in message and "OHLCV" in message


@pytest.mark.parametrize("path", [
    "api_fixtures/bbgo/btcusdt-trades.json",                       # an array of trade objects
    "api_fixtures/nautilus_trader/binance_http_responses/http_spot_market_exchange_info.json",
])
def test_real_json_files_that_are_not_ohlcv(data_dir: Path, path: str) -> None:
    message = setup_error(FreqtradeJson, {"path": path}, data_dir)
    assert str(data_dir / path) in message


def test_real_trades_file_is_refused_as_not_ohlcv(data_dir: Path, gridkit_run_toml: Any) -> None:
    # freqtrade's trades format is also an array of rows led by an ms timestamp, but no row has
    # four numeric prices after it: refused up front rather than run with every bar dropped.
    path = data_dir / "trades_orderbook/freqtrade/XRP_ETH-trades.json.gz"
    with pytest.raises(gridkit.DataError, match="has no OHLCV rows") as err:
        gridkit_run_toml(pipeline_text(path))
    assert str(path) in str(err.value)


def test_real_binary_files(data_dir: Path) -> None:
    feather = "ohlcv/freqtrade/futures/XRP_USDT_USDT-5m-futures.feather"
    assert str(data_dir / feather) in setup_error(FreqtradeJson, {"path": feather}, data_dir)
    assert str(data_dir / feather) in setup_error(CsvSource, {"path": feather}, data_dir)
    # A gzip whose content is not JSON: a raw websocket capture.
    cap = "trades_orderbook/hftbacktest/spot/btcusdt_20240808.gz"
    assert str(data_dir / cap) in setup_error(FreqtradeJson, {"path": cap}, data_dir)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("cls", "name"), SOURCES, ids=SOURCE_IDS)
def test_binary_garbage(tmp_path: Path, cls: type, name: str, seed: int) -> None:
    rng = random.Random(seed)
    (tmp_path / name).write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    message = setup_error(cls, {"path": name}, tmp_path)
    assert str(tmp_path / name) in message


def test_nul_bytes(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_bytes(b"\x00" * 64)
    assert str(tmp_path / "x.json") in setup_error(FreqtradeJson, {"path": "x.json"}, tmp_path)


def test_csv_missing_a_column(tmp_path: Path, btc_rows: list[list[Any]]) -> None:
    write_csv(tmp_path / "x.csv", ["timestamp", "open", "high", "low", "close"],
              [r[:5] for r in btc_rows])
    message = setup_error(CsvSource, {"path": "x.csv"}, tmp_path)
    assert str(tmp_path / "x.csv") in message and "'volume'" in message
    # A mapping to a column that is not there names the role too.
    write_csv(tmp_path / "y.csv", ["timestamp", "open", "high", "low", "close", "volume"],
              [r[:6] for r in btc_rows])
    message = setup_error(CsvSource, {"path": "y.csv", "columns": {"close": "last"}}, tmp_path)
    assert str(tmp_path / "y.csv") in message and "'close'" in message


def test_csv_with_header_only(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("timestamp,open,high,low,close,volume\n")
    message = setup_error(CsvSource, {"path": "x.csv"}, tmp_path)
    assert str(tmp_path / "x.csv") in message


# --- the same through a pipeline and the CLI ------------------------------------------------------


def pipeline_text(path: Path | str, use: str = "freqtrade-json") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "{use}"
path = "{Path(path).as_posix()}"
{STRATEGY}"""


def test_pipeline_with_truncated_file_raises_data_error(tmp_path: Path, btc_1m: Path,
                                                        gridkit_run_toml: Any) -> None:
    raw = btc_1m.read_bytes()
    (tmp_path / "t.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(gridkit.DataError, match=str(tmp_path / "t.json")):
        gridkit_run_toml(pipeline_text("t.json"))


def test_pipeline_with_missing_file_is_refused_before_running(tmp_path: Path,
                                                              gridkit_run_toml: Any) -> None:
    with pytest.raises(gridkit.GridkitError, match="source: data file not found") as info:
        gridkit_run_toml(pipeline_text("nope.json", use="csv"))
    assert str(tmp_path / "nope.json") in str(info.value)


def cli_run(toml: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()", "run",
                           str(toml)], capture_output=True, text=True, timeout=120,
                          cwd=toml.parent)


def _truncated(tmp_path: Path, btc_1m: Path) -> str:
    raw = btc_1m.read_bytes()
    (tmp_path / "data.json").write_bytes(raw[: len(raw) // 2])
    return "data.json"


def _empty(tmp_path: Path, btc_1m: Path) -> str:
    (tmp_path / "data.json").write_bytes(b"")
    return "data.json"


def _garbage(tmp_path: Path, btc_1m: Path) -> str:
    (tmp_path / "data.json").write_bytes(bytes(random.Random(7).randrange(256)
                                               for _ in range(2048)))
    return "data.json"


def _missing(tmp_path: Path, btc_1m: Path) -> str:
    return "data.json"


def _corrupt_gzip(tmp_path: Path, btc_1m: Path) -> str:
    raw = bytearray(gzip.compress(btc_1m.read_bytes()[:200_000]))
    raw[50:58] = b"\xff" * 8
    (tmp_path / "data.json.gz").write_bytes(bytes(raw))
    return "data.json.gz"


@pytest.mark.parametrize("make", [
    _truncated, _empty, _garbage, _missing,
    _corrupt_gzip,
], ids=["truncated", "empty", "garbage", "missing", "corrupt-gzip"])
def test_cli_bad_data_file_is_one_line_exit_2(tmp_path: Path, btc_1m: Path, make: Any) -> None:
    name = make(tmp_path, btc_1m)
    toml = tmp_path / "pipeline.toml"
    toml.write_text(pipeline_text(name))
    proc = cli_run(toml)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error:")
    assert str(tmp_path / name) in lines[0]
    assert proc.stdout == ""


# --- contract tests ------------------------------------------------------------------------------


class _OnRealData:
    """Sets ``base_dir`` to the real data folder (the tests skip when it is absent)."""

    @pytest.fixture(autouse=True)
    def _real_data(self, data_dir: Path) -> None:
        self.base_dir = data_dir


class TestFreqtradeJsonContract(_OnRealData, SourceContract):
    component_class = FreqtradeJson
    options = {"path": "ohlcv/nostalgiaforinfinity/ETH_USDT-5m.json"}


class TestFreqtradeJsonColumnsContract(_OnRealData, SourceContract):
    component_class = FreqtradeJson
    options = {"path": CANDLES}


class TestFreqtradeJsonGzipSampleContract(SourceContract):
    component_class = FreqtradeJson
    options = {"path": sample_path().name}
    base_dir = sample_path().parent


class TestCsvContract(_OnRealData, SourceContract):
    component_class = CsvSource
    options = {"path": NAUTILUS_CSV}
