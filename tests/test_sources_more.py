"""The ``parquet``, ``sqlite`` and ``trades-file`` sources on real files, and on bad ones."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridkit
from gridkit.core.types import Bar, Trade
from gridkit.data.bars import TimeBars
from gridkit.plugins.sources import (
    CANDLES_COLUMNS,
    ParquetSource,
    SqliteSource,
    TradesFile,
    create_candles_table,
    write_candles,
)
from gridkit.runtime.context import RunInfo
from gridkit.testing import SourceContract, build
from helpers import STRATEGY, expect, ms, xrp_trades_pipeline

FEATHER = "ohlcv/freqtrade/futures/XRP_USDT_USDT-5m-futures.feather"
NT = "trades_orderbook/nautilus_trader/binance/"
XRP_ETH = "trades_orderbook/freqtrade/XRP_ETH-trades.json.gz"
XRP_OLD = "trades_orderbook/freqtrade/XRP_OLD-trades.json.gz"
PUBLIC = "trades_orderbook/freqtrade/orderflow/public_trades_list.csv"
BBGO = "api_fixtures/bbgo/btcusdt-trades.json"
HTTP = "api_fixtures/nautilus_trader/binance_http_responses/"


def run_info(base: Path, symbol: str = "BTC/USDT") -> RunInfo:
    return RunInfo("t", "backtest", symbol, 10_000.0, base)


def load(cls: type, options: dict[str, Any], base: Path, symbol: str = "BTC/USDT"
         ) -> tuple[Any, list[Any]]:
    source = build(cls, options)
    source.validate(run_info(base, symbol))
    source.setup(run_info(base, symbol))
    return source, list(source.events())


def error(cls: type, options: dict[str, Any], base: Path) -> str:
    with pytest.raises(gridkit.DataError) as info:
        load(cls, options, base)
    text = str(info.value)
    assert "\n" not in text
    return text


# --- parquet / feather ---------------------------------------------------------------------------

def test_feather_real_file_matches_pyarrow(data_dir: Path) -> None:
    import pyarrow.feather as feather

    source, bars = load(ParquetSource, {"path": FEATHER}, data_dir)
    table = feather.read_table(data_dir / FEATHER)
    assert len(bars) == table.num_rows == 1999
    dates = table.column("date").to_pylist()
    assert bars[0].ts == int(dates[0].timestamp() * 1000) == ms("2021-11-15 00:00")
    assert bars[-1].ts == int(dates[-1].timestamp() * 1000) == ms("2021-11-21 22:30")
    assert [b.close for b in bars] == table.column("close").to_pylist()
    assert [b.volume for b in bars] == table.column("volume").to_pylist()
    assert all(b2.ts - b1.ts == 300_000 for b1, b2 in itertools.pairwise(bars))
    assert source.stats() == {"rows": 1999, "malformed_rows": 0}


def test_parquet_round_trip_int_timestamps_and_mapping(tmp_path: Path, data_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, bars = load(ParquetSource, {"path": FEATHER}, data_dir)
    table = pa.table({"OpenTime": [b.ts // 1000 for b in bars],  # epoch seconds
                      "o": [b.open for b in bars], "h": [b.high for b in bars],
                      "l": [b.low for b in bars], "c": [b.close for b in bars],
                      "qty": [b.volume for b in bars]})
    pq.write_table(table, tmp_path / "x.parquet")
    _, again = load(ParquetSource, {"path": "x.parquet", "columns": {"ts": "OpenTime",
                                                                     "volume": "qty"}}, tmp_path)
    assert again == bars


def test_parquet_datetime_units_and_zones(tmp_path: Path, data_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather

    _, bars = load(ParquetSource, {"path": FEATHER}, data_dir)
    bars = bars[:50]
    for unit, tz in (("s", None), ("ms", "UTC"), ("us", "Europe/Berlin"), ("ns", None)):
        stamps = pa.array([b.ts for b in bars], pa.int64()).cast(pa.timestamp("ms"))
        stamps = stamps.cast(pa.timestamp(unit, tz=tz))
        t = pa.table({"date": stamps, **{f: [getattr(b, f) for b in bars] for f in
                                          ("open", "high", "low", "close", "volume")}})
        feather.write_feather(t, tmp_path / f"{unit}.feather")
        assert load(ParquetSource, {"path": f"{unit}.feather"}, tmp_path)[1] == bars


@pytest.mark.parametrize("name", ["btcusdt-trades.parquet", "btcusdt-quotes.parquet"])
def test_parquet_refuses_trades_and_quotes(data_dir: Path, name: str) -> None:
    text = error(ParquetSource, {"path": NT + name}, data_dir)
    assert name in text and "not OHLCV" in text and "trades-file" in text


def test_parquet_bad_files(tmp_path: Path, data_dir: Path) -> None:
    raw = (data_dir / FEATHER).read_bytes()
    (tmp_path / "trunc.feather").write_bytes(raw[: len(raw) // 2])
    assert "trunc.feather" in error(ParquetSource, {"path": "trunc.feather"}, tmp_path)
    (tmp_path / "empty.parquet").write_bytes(b"")
    assert "empty" in error(ParquetSource, {"path": "empty.parquet"}, tmp_path)
    (tmp_path / "csv.parquet").write_text("ts,open\n1,2\n")
    assert "not a parquet or feather" in error(ParquetSource, {"path": "csv.parquet"}, tmp_path)


def test_parquet_mistyped_and_bad_values(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"ts": [1_600_000_000_000, None, 1_600_000_120_000, 1_600_000_180],
                  "open": [1.0, 1.0, None, 1.0], "high": ["2", "x", "2", "2"],
                  "low": [1.0, 1.0, 1.0, 1.0], "close": [float("inf"), 1.0, 1.0, 1.0],
                  "volume": [1, 2, 3, 4]})
    pq.write_table(t, tmp_path / "bad.parquet")
    source, bars = load(ParquetSource, {"path": "bad.parquet"}, tmp_path)
    # a missing timestamp and one in another unit (s among ms) are malformed rows
    assert source.stats() == {"rows": 4, "malformed_rows": 2}
    assert [b.ts for b in bars] == [1_600_000_000_000, 1_600_000_120_000]
    assert math.isinf(bars[0].close) and math.isnan(bars[1].open)
    t = pa.table({"ts": [[1], [2]], "open": [1.0, 1.0], "high": [1.0, 1.0], "low": [1.0, 1.0],
                  "close": [1.0, 1.0], "volume": [1.0, 1.0]})
    pq.write_table(t, tmp_path / "list.parquet")
    assert "timestamp column" in error(ParquetSource, {"path": "list.parquet"}, tmp_path)


def test_parquet_without_pyarrow(tmp_path: Path, data_dir: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    text = error(ParquetSource, {"path": FEATHER}, data_dir)
    assert "pip install 'gridkit[parquet]'" in text and FEATHER.split("/")[-1] in text


def test_parquet_pipeline(data_dir: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "XRP/USDT:USDT"
[source]
use = "parquet"
path = "{(data_dir / FEATHER).as_posix()}"
[strategy]
use = "static"
lower = 1.0
upper = 1.3
grids = 12
qty = 50
""")
    assert summary["status"] == "finished"
    assert summary["bars_accepted"] == 1999 and summary["bars_dropped"] == 0
    assert summary["buy_fills"] > 0 and summary["sell_fills"] > 0


class TestParquetContract(SourceContract):
    component_class = ParquetSource
    options = {"path": FEATHER}

    @pytest.fixture(autouse=True)
    def _real_data(self, data_dir: Path) -> None:
        self.base_dir = data_dir


# --- sqlite --------------------------------------------------------------------------------------

@pytest.fixture
def candle_db(tmp_path: Path, btc_1m: Path) -> Path:
    rows = json.loads(btc_1m.read_text())
    path = tmp_path / "gridkit.db"
    db = sqlite3.connect(path)
    try:
        create_candles_table(db)
        assert write_candles(db, "binance", "BTC/USDT", "1m", rows) == len(rows)
        write_candles(db, "binance", "BTC/USDT", "1m", rows[:10])  # upsert: no duplicates
        write_candles(db, "binance", "ETH/USDT", "1m", rows[:5])
    finally:
        db.close()
    return path


def test_candles_schema(candle_db: Path) -> None:
    db = sqlite3.connect(candle_db)
    cols = [r[1] for r in db.execute("PRAGMA table_info(candles)")]
    pk = [r[1] for r in sorted(db.execute("PRAGMA table_info(candles)"), key=lambda r: r[5])
          if r[5]]
    db.close()
    assert tuple(cols) == CANDLES_COLUMNS
    assert pk == ["exchange", "symbol", "timeframe", "ts"]


def test_sqlite_reads_back_real_candles(candle_db: Path, btc_1m: Path) -> None:
    rows = json.loads(btc_1m.read_text())
    source, bars = load(SqliteSource, {"path": candle_db.name, "timeframe": "1m"},
                        candle_db.parent)
    assert bars == [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
    assert source.size_hint() == 42_915


def test_sqlite_since_until(candle_db: Path) -> None:
    _, bars = load(SqliteSource, {"path": candle_db.name, "timeframe": "1m",
                                  "since": "2021-05-19T12:00:00Z",
                                  "until": str(ms("2021-05-19 13:59"))}, candle_db.parent)
    assert len(bars) == 120
    assert bars[0].ts == ms("2021-05-19 12:00") and bars[-1].ts == ms("2021-05-19 13:59")
    assert min(b.low for b in bars) == 30_000.0


def test_sqlite_errors(candle_db: Path, tmp_path: Path) -> None:
    base = candle_db.parent
    text = error(SqliteSource, {"path": candle_db.name, "timeframe": "5m"}, base)
    assert "no BTC/USDT 5m candles" in text and "binance BTC/USDT 1m" in text
    assert "on kraken" in error(SqliteSource, {"path": candle_db.name, "timeframe": "1m",
                                               "exchange": "kraken"}, base)
    db = sqlite3.connect(candle_db)
    write_candles(db, "kraken", "BTC/USDT", "1m", [[1, 1, 1, 1, 1, 1]])
    db.close()
    assert "set exchange" in error(SqliteSource, {"path": candle_db.name, "timeframe": "1m"},
                                   base)
    _, bars = load(SqliteSource, {"path": candle_db.name, "timeframe": "1m",
                                  "exchange": "kraken"}, base)
    assert len(bars) == 1
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert "no candles table" in error(SqliteSource, {"path": "empty.db", "timeframe": "1m"},
                                       tmp_path)
    (tmp_path / "text.db").write_text("not a database, just text " * 100)
    assert "text.db" in error(SqliteSource, {"path": "text.db", "timeframe": "1m"}, tmp_path)
    assert "not found" in error(SqliteSource, {"path": "nope.db", "timeframe": "1m"}, tmp_path)


def test_sqlite_bad_since_is_an_option_error() -> None:
    from gridkit.core.config import OptionError

    with pytest.raises(OptionError):
        SqliteSource.Config(path="x.db", timeframe="1m", since="yesterday")
    with pytest.raises(OptionError):
        SqliteSource.Config(path="x.db", timeframe="1m", since="2021-05-02", until="2021-05-01")


def test_sqlite_pipeline(candle_db: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "sqlite"
path = "{candle_db.as_posix()}"
timeframe = "1m"
{STRATEGY}""")
    assert summary["bars_accepted"] == 42_915
    assert summary["dropped_by"] == {"timestamp": {"gaps": 1, "missing_bars": 284}}


def test_ccxt_download_db_is_readable(candle_db: Path) -> None:
    """The download helper's own table definition is the same table (same columns)."""
    from gridkit.plugins import ccxt_sources

    if not hasattr(ccxt_sources, "_db_last"):
        pytest.skip("gridkit data download --db not available")
    assert ccxt_sources._db_last(candle_db, "binance", "BTC/USDT", "1m") == ms("2021-05-20 20:40")


# --- trades-file ---------------------------------------------------------------------------------

def test_freqtrade_and_ccxt_trade_files_are_the_same_stream(data_dir: Path) -> None:
    a_src, a = load(TradesFile, {"path": XRP_ETH}, data_dir)
    b_src, b = load(TradesFile, {"path": XRP_OLD}, data_dir)
    n = expect(12_477, 3_000)  # the slice of the ccxt file holds the first 3,000 prints
    assert len(a) == 12_477 and len(b) == n
    assert a[:n] == b
    assert sum(t.side == "buy" for t in a) == 6_524 and sum(t.side == "sell" for t in a) == 5_953
    assert a[0] == Trade(1570752011620, 0.00141342, 23.0, "sell", "13519807")
    raw = json.loads(gzip.decompress((data_dir / XRP_ETH).read_bytes()))
    assert [(t.ts, t.price, t.qty, t.side, t.id) for t in a] == [
        (r[0], r[4], r[5], r[3], r[1]) for r in raw]
    assert a_src.stats() == {"rows": 12_477, "malformed_rows": 0, "trades": 12_477}
    assert b_src.stats() == {"rows": n, "malformed_rows": 0, "trades": n}


def test_public_trades_csv(data_dir: Path) -> None:
    _, trades = load(TradesFile, {"path": PUBLIC}, data_dir)
    assert len(trades) == 1000
    assert trades[0] == Trade(1675329600138, 1666.8, 26.062, "buy", "1206419187")
    assert trades[-1].ts == 1675329807493


def test_nautilus_parquet_trades(data_dir: Path) -> None:
    import pyarrow.parquet as pq

    _, trades = load(TradesFile, {"path": NT + "btcusdt-trades.parquet"}, data_dir)
    t = pq.read_table(data_dir / NT / "btcusdt-trades.parquet").to_pydict()
    assert len(trades) == 2001
    assert [x.price for x in trades] == t["price"]
    assert [x.side for x in trades] == ["sell" if m == "True" else "buy"
                                        for m in t["buyer_maker"]]
    assert trades[0].ts == 1610064000278 and trades[-1].ts == 1610064046355


def test_bbgo_fills_taker_side(data_dir: Path) -> None:
    _, trades = load(TradesFile, {"path": BBGO, "sort": True}, data_dir)
    raw = json.loads((data_dir / BBGO).read_text())
    assert len(trades) == 3432
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(trades))
    by_id = {str(r["id"]): r for r in raw}
    for t in trades[:500]:
        r = by_id[t.id]
        own = r["side"].lower()
        assert t.side == (("sell" if own == "buy" else "buy") if r["isMaker"] else own)


@pytest.mark.parametrize(("name", "n"), [("http_spot_market_trades.json", None),
                                         ("http_spot_market_agg_trades.json", None)])
def test_binance_rest_trades(data_dir: Path, name: str, n: Any) -> None:
    raw = json.loads((data_dir / HTTP / name).read_text())
    _, trades = load(TradesFile, {"path": HTTP + name}, data_dir)
    assert len(trades) == len(raw)
    flag = "isBuyerMaker" if "isBuyerMaker" in raw[0] else "m"
    assert [t.side for t in trades] == ["sell" if r[flag] else "buy" for r in raw]
    assert [t.price for t in trades] == [float(r.get("price", r.get("p"))) for r in raw]


def test_trades_to_bars(data_dir: Path) -> None:
    # The source yields the trades and names the interval; the engine folds them (as here).
    source, yielded = load(TradesFile, {"path": XRP_ETH, "bars": "1m"}, data_dir)
    assert all(isinstance(e, Trade) for e in yielded)
    assert source.bar_interval == 60_000 and source.provides == {"trades", "bars"}
    events = list(TimeBars(source.bar_interval).fold(yielded))
    trades = [e for e in events if isinstance(e, Trade)]
    bars = [e for e in events if isinstance(e, Bar)]
    assert len(trades) == 12_477
    assert len(bars) == len({t.ts - t.ts % 60_000 for t in trades})  # one per traded minute
    assert all(b2.ts > b1.ts for b1, b2 in itertools.pairwise(bars))
    assert sum(b.volume for b in bars) == pytest.approx(sum(t.qty for t in trades))
    # each bar comes right after the trade that closed it (the first of a later minute)
    for k, e in enumerate(events[:-1]):
        if isinstance(e, Bar) and k:
            assert events[k - 1].ts >= e.ts + 60_000
    # a bar from its own minute's trades
    first = [t for t in trades if t.ts - t.ts % 60_000 == bars[0].ts]
    assert bars[0] == Bar(bars[0].ts, first[0].price, max(t.price for t in first),
                          min(t.price for t in first), first[-1].price,
                          pytest.approx(sum(t.qty for t in first)))
    assert build(TradesFile, {"path": "x"}).provides == {"trades"}


def test_trades_pipeline_rsi_and_grid(data_dir: Path, gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(xrp_trades_pipeline(
        (data_dir / XRP_ETH).as_posix(), '[[features]]\nuse = "rsi"\nperiod = 14', bars="1m"))
    assert summary["status"] == "finished"
    assert summary["events"]["trades"] == {"seen": 12_477, "accepted": 12_477, "dropped": 0,
                                           "not_in_bars": 0}
    assert summary["bars_accepted"] > 1000
    assert summary["buy_fills"] > 0 and summary["sell_fills"] > 0
    assert summary["unreconciled_orders"] == []


def test_feature_on_trades_refused_without_trades(data_dir: Path, gridkit_run_toml: Any) -> None:
    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "trades-file"
path = "{(data_dir / PUBLIC).as_posix()}"
[[features]]
use = "rsi"
{STRATEGY}"""
    with pytest.raises(gridkit.ConfigError, match="rsi"):
        gridkit_run_toml(text)


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return name


def test_trades_bad_rows_counted(tmp_path: Path, data_dir: Path) -> None:
    lines = (data_dir / PUBLIC).read_text().splitlines()[:21]
    bad = [*lines[:5], "3,not-a-time,1,,buy,1666.8,1,1,x", "4,1675329600300,2,,sideways,1,1,1,x",
           "5,1675329600,3,,buy,1,1,1,x",  # seconds among milliseconds
           "6,1675329600301,4,,buy,nan,1,1,x", "7,1675329600302,5,,sell,1666,-2,1,x",
           "8,1675329600303", *lines[5:]]
    source, trades = load(TradesFile, {"path": write(tmp_path, "t.csv", "\n".join(bad))},
                          tmp_path)
    assert source.stats()["malformed_rows"] == 4
    assert len(trades) == 20 + 2
    assert any(math.isnan(t.price) for t in trades) and any(t.qty < 0 for t in trades)


def test_trades_bad_values_dropped_by_validators(tmp_path: Path, data_dir: Path,
                                                 gridkit_run_toml: Any) -> None:
    raw = json.loads(gzip.decompress((data_dir / XRP_ETH).read_bytes()))
    raw[10][4] = None
    raw[20][5] = -1
    raw[30][4] = 0
    raw[40][0] = raw[39][0] - 5000  # back in time
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    summary = gridkit_run_toml(xrp_trades_pipeline("bad.json", bars="1m"))
    assert summary["status"] == "finished"
    assert summary["events"]["trades"]["dropped"] == 4
    assert summary["dropped_by"]["price"] == {"trades_nan": 1, "trades_non_positive": 1}
    assert summary["dropped_by"]["volume"] == {"trades_negative": 1}
    assert summary["dropped_by"]["timestamp"]["trades_out_of_order"] == 1
    # The dropped prints never reach a bar (the engine folds accepted trades only).
    assert summary["events"]["trades"]["not_in_bars"] == 0


@pytest.mark.parametrize(("content", "says"), [
    (b"", "empty"),
    (b"[]", "not a list of trades"),
    (b'[[1570752011620, "1", null, "sell", 0.0014', "truncated"),
    (b'{"a": 1}', "not a list of trades"),
    (b'[{"foo": 1, "bar": 2}]', "no ts, price, qty, side"),
    (b"timestamp,foo\n1,2\n", "no 'price', 'qty', 'side' column"),
    (b"timestamp,price,amount,side\n", "no trade rows"),
    (b"\x00\x01\x02garbage\xff\xfe", "not UTF-8"),
    (b"PAR1 not really", "parquet"),
])
def test_trades_bad_files(tmp_path: Path, content: bytes, says: str) -> None:
    name = write(tmp_path, "bad.json", content)
    text = error(TradesFile, {"path": name}, tmp_path)
    assert says in text and "bad.json" in text


def test_trades_truncated_gzip(tmp_path: Path, data_dir: Path) -> None:
    raw = (data_dir / XRP_ETH).read_bytes()
    name = write(tmp_path, "t.json.gz", raw[: len(raw) // 2])
    assert "truncated" in error(TradesFile, {"path": name}, tmp_path)


def test_ohlcv_file_is_not_trades(btc_1m: Path) -> None:
    assert "not freqtrade trades" in error(TradesFile, {"path": btc_1m.name}, btc_1m.parent)


def test_trades_bad_bars_option() -> None:
    from gridkit.core.config import OptionError

    with pytest.raises(OptionError):
        TradesFile.Config(path="x", bars="1 minute")


class _OnRealData:
    @pytest.fixture(autouse=True)
    def _real_data(self, data_dir: Path) -> None:
        self.base_dir = data_dir


class TestTradesFileJsonContract(_OnRealData, SourceContract):
    component_class = TradesFile
    options = {"path": XRP_ETH, "bars": "1m"}


class TestTradesFileCsvContract(_OnRealData, SourceContract):
    component_class = TradesFile
    options = {"path": PUBLIC}


class TestTradesFileParquetContract(_OnRealData, SourceContract):
    component_class = TradesFile
    options = {"path": NT + "btcusdt-trades.parquet"}


# --- csv decimal comma; garbage never crashes ----------------------------------------------------

def test_csv_decimal_comma(tmp_path: Path, btc_1m: Path) -> None:
    from gridkit.plugins.sources import CsvSource

    rows = json.loads(btc_1m.read_text())[:300]
    lines = ["date;open;high;low;close;volume"] + [
        ";".join([str(r[0]), *(repr(float(x)).replace(".", ",") for x in r[1:6])]) for r in rows]
    name = write(tmp_path, "eu.csv", "\n".join(lines))
    _, bars = load(CsvSource, {"path": name, "delimiter": ";", "decimal": ","}, tmp_path)
    assert bars == [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
    from gridkit.core.config import OptionError

    with pytest.raises(OptionError):
        CsvSource.Config(path="x", decimal=",")  # the delimiter is a comma too


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.sampled_from([b"", b"[", b"PAR1", b"ARROW1", b"\x1f\x8b",
                                                 b"timestamp,price,amount,side\n"]))
def test_garbage_is_a_data_error_or_trades(tmp_path: Path, blob: bytes, head: bytes) -> None:
    name = write(tmp_path, "g.bin", head + blob)
    for cls, opts in ((TradesFile, {}), (TradesFile, {"bars": "1m"}), (ParquetSource, {})):
        try:
            _, events = load(cls, {"path": name, **opts}, tmp_path)
        except gridkit.DataError as err:
            assert "g.bin" in str(err) and "\n" not in str(err)
        else:
            assert all(isinstance(e, (Trade, Bar)) for e in events)


_CELL = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
                  st.text(max_size=8), st.sampled_from(["buy", "sell", "True", "2021-01-08"]))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.lists(st.lists(_CELL, max_size=8), max_size=20),
    st.lists(st.fixed_dictionaries({}, optional={
        k: _CELL for k in ("timestamp", "price", "amount", "side", "id", "m", "isMaker")}),
        max_size=20)))
def test_mistyped_json_trades_never_crash(tmp_path: Path, doc: Any) -> None:
    name = write(tmp_path, "j.json", json.dumps(doc))
    try:
        _, events = load(TradesFile, {"path": name, "bars": "1m"}, tmp_path)
    except gridkit.DataError as err:
        assert "j.json" in str(err)
    else:
        assert all(isinstance(e, (Trade, Bar)) for e in events)


class TestSqliteContract(SourceContract):
    component_class = SqliteSource
    options = {"path": "candles.db", "timeframe": "1m"}

    @pytest.fixture(autouse=True)
    def _db(self, tmp_path: Path, btc_1m: Path) -> None:
        db = sqlite3.connect(tmp_path / "candles.db")
        write_candles(db, "binance", "BTC/USDT", "1m", json.loads(btc_1m.read_text())[:6000])
        db.close()
        self.base_dir = tmp_path


@pytest.mark.parametrize(("text", "ms"), [
    ("2020-01-08T03:35:31.69Z", 1578454531690),       # bbgo: two fraction digits
    ("2020-01-08T03:35:31.123456789+00:00", 1578454531123),  # nanoseconds: cut to µs
    ("2020-01-08T04:35:31+0100", 1578454531000),      # an offset without its colon
    ("2020-01-08 03:35:31", 1578454531000),            # naive: UTC
])
def test_iso_times_parse_the_same_on_every_python(text: str, ms: int) -> None:
    from gridkit.plugins.sources import parse_iso_ms

    assert parse_iso_ms(text) == ms
