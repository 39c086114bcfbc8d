"""Markets in ccxt's format: the real Binance exchangeInfo fixtures, the shipped file, the order
filters, and files that are not what they claim to be."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridkit.core.errors import ConfigError, DataError
from gridkit.trading.markets import (
    REL_TOL,
    MarketInfo,
    check_order,
    get_market,
    load_markets,
    markets_from_ccxt,
    markets_from_exchange_info,
    price_on_tick,
    qty_on_lot,
    round_price,
    round_qty,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "examples" / "data" / "markets.json"


def _script() -> ModuleType:
    """scripts/make_markets.py, imported by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_markets", REPO / "scripts" /
                                                  "make_markets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cryptofeed(data_dir: Path) -> Path:
    return data_dir / "api_fixtures" / "cryptofeed"


@pytest.fixture(scope="module")
def spot_raw(cryptofeed: Path) -> dict:
    body = _script().read_recording(cryptofeed / "BINANCE.0")
    return markets_from_exchange_info(body, "binance", source="BINANCE.0")


@pytest.fixture(scope="module")
def usdm_raw(cryptofeed: Path) -> dict:
    body = _script().read_recording(cryptofeed / "BINANCE_FUTURES.0")
    return markets_from_exchange_info(body, "binanceusdm", source="BINANCE_FUTURES.0")


# --- the real fixtures ------------------------------------------------------------------------


def test_spot_btcusdt_2021_10(spot_raw: dict) -> None:
    m = MarketInfo.from_ccxt(spot_raw["BTC/USDT"])
    assert (m.kind, m.base, m.quote, m.settle, m.id) == ("spot", "BTC", "USDT", None, "BTCUSDT")
    assert (m.tick, m.lot, m.min_qty, m.min_notional) == (0.01, 0.00001, 0.00001, 10.0)
    assert (m.min_price, m.max_price, m.max_qty) == (0.01, 1_000_000.0, 9000.0)
    assert m.contract_size == 1.0 and m.notional_filter == "MIN_NOTIONAL"
    assert len(spot_raw) == 1695


def test_usdm_btcusdt_2021_07(usdm_raw: dict) -> None:
    m = MarketInfo.from_ccxt(usdm_raw["BTC/USDT:USDT"])
    assert (m.kind, m.settle, m.id) == ("linear", "USDT", "BTCUSDT")
    # BINANCE_FUTURES.0: PRICE_FILTER tickSize "0.01", LOT_SIZE stepSize "0.001", notional "5".
    assert (m.tick, m.lot, m.min_qty, m.min_notional) == (0.01, 0.001, 0.001, 5.0)
    assert (m.min_price, m.max_price, m.max_qty) == (556.72, 1_000_000.0, 1000.0)
    assert m.contract_size == 1.0
    assert (m.maker, m.taker) == (0.0002, 0.0005)  # ccxt's default linear fee tier


def test_usdm_xrpusdt_perpetual(usdm_raw: dict) -> None:
    raw = usdm_raw["XRP/USDT:USDT"]
    m = MarketInfo.from_ccxt(raw)
    # From the file: tickSize "0.0001", minPrice "0.0143", maxPrice "100000", stepSize "0.1",
    # minQty "0.1", maxQty "1000000", MIN_NOTIONAL notional "5".
    assert (m.kind, m.base, m.quote, m.settle) == ("linear", "XRP", "USDT", "USDT")
    assert (m.tick, m.lot, m.min_qty, m.max_qty) == (0.0001, 0.1, 0.1, 1_000_000.0)
    assert (m.min_price, m.max_price, m.min_notional) == (0.0143, 100_000.0, 5.0)
    assert raw["type"] == "swap" and raw["swap"] and raw["linear"] and raw["contractSize"] == 1.0
    assert raw["info"]["contractType"] == "PERPETUAL"


def test_every_fixture_market_loads_and_minimums_sit_on_the_grid(spot_raw: dict,
                                                                 usdm_raw: dict) -> None:
    """Backs the module's reading of ``price % tickSize`` from 0: minPrice/minQty are on it."""
    spot = markets_from_ccxt(spot_raw, "BINANCE.0")
    usdm = markets_from_ccxt(usdm_raw, "BINANCE_FUTURES.0")
    assert len(spot) == 1695
    assert len(usdm) == 120 and len(usdm_raw) == 122  # the two dated futures are left out
    for m in [*spot.values(), *usdm.values()]:
        if m.min_price:
            assert price_on_tick(m.min_price, m), m
        if m.min_qty:
            assert qty_on_lot(m.min_qty, m), m


def test_full_dump_round_trips_through_json(tmp_path: Path, usdm_raw: dict) -> None:
    path = tmp_path / "usdm.json"
    path.write_text(json.dumps(usdm_raw), encoding="utf-8")
    loaded = load_markets(path)
    assert loaded == markets_from_ccxt(usdm_raw)
    assert loaded["XRP/USDT:USDT"].tick == 0.0001


def test_nautilus_exchange_info_later_snapshots(data_dir: Path) -> None:
    """The same symbols months later: USDⓈ-M BTCUSDT's tick went 0.01 → 0.10 by 2022-02."""
    base = data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
    spot = markets_from_exchange_info(
        (base / "http_spot_market_exchange_info.json").read_text(), "binance")
    usdm = markets_from_exchange_info(
        (base / "http_futures_market_exchange_info.json").read_text(), "binanceusdm")
    btc = MarketInfo.from_ccxt(spot["BTC/USDT"])
    assert (btc.tick, btc.lot, btc.min_notional) == (0.01, 0.00001, 10.0)
    perp = MarketInfo.from_ccxt(usdm["BTC/USDT:USDT"])
    assert (perp.tick, perp.lot, perp.min_notional, perp.min_price) == (0.1, 0.001, 10.0, 402.0)
    assert set(markets_from_ccxt(usdm)) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}


def test_exchange_class_must_match_the_response(cryptofeed: Path) -> None:
    body = _script().read_recording(cryptofeed / "BINANCE.0")
    with pytest.raises(DataError, match="spot exchangeInfo; use exchange='binance'"):
        markets_from_exchange_info(body, "binanceusdm")
    with pytest.raises(DataError, match="not in the response: NOSUCHUSDT"):
        markets_from_exchange_info(body, "binance", symbols=["BTCUSDT", "NOSUCHUSDT"])
    picked = markets_from_exchange_info(body, "binance", symbols=["ETH/USDT"])
    assert list(picked) == ["ETH/USDT"]


@pytest.mark.parametrize("raw", ["", "[1, 2]", '{"symbols": 3}', b"\xff\xfe\x00"])
def test_exchange_info_that_is_not_one(raw: str | bytes) -> None:
    with pytest.raises(DataError) as e:
        markets_from_exchange_info(raw, "binance", source="resp.json")
    assert str(e.value).startswith("resp.json: ") and "\n" not in str(e.value)


# --- the shipped file -------------------------------------------------------------------------


def test_shipped_markets_file() -> None:
    markets = load_markets(SHIPPED)
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT:USDT"]
    btc, eth, sol, xrp = (markets[s] for s in sorted(markets))
    assert (btc.tick, btc.lot, btc.min_notional) == (0.01, 0.00001, 10.0)
    assert (eth.tick, eth.lot, eth.min_notional) == (0.01, 0.0001, 10.0)
    assert (sol.tick, sol.lot, sol.min_notional) == (0.01, 0.01, 10.0)
    assert (xrp.kind, xrp.tick, xrp.lot, xrp.min_notional) == ("linear", 0.0001, 0.1, 5.0)
    # It is ccxt's format, not ours: the keys load_markets() gives, the raw record in info.
    raw = json.loads(SHIPPED.read_text(encoding="utf-8"))
    for key in ("id", "symbol", "base", "quote", "settle", "type", "spot", "swap", "linear",
                "contractSize", "precision", "limits", "maker", "taker", "info"):
        assert key in raw["XRP/USDT:USDT"], key
    assert raw["BTC/USDT"]["info"]["symbol"] == "BTCUSDT"


def test_shipped_file_is_what_the_script_makes(cryptofeed: Path) -> None:
    script = _script()
    built = script.build(cryptofeed)
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert markets_from_ccxt(built) == markets_from_ccxt(shipped)
    assert {s: m["info"] for s, m in built.items()} == {s: m["info"] for s, m in shipped.items()}


def test_get_market_names_close_matches() -> None:
    markets = load_markets(SHIPPED)
    assert get_market(markets, "XRP/USDT:USDT").kind == "linear"
    with pytest.raises(ConfigError, match=r"'XRP/USDT' is not in .*did you mean XRP/USDT:USDT"):
        get_market(markets, "XRP/USDT", source="markets.json")


# --- rounding and order checks ----------------------------------------------------------------

BTC = MarketInfo(symbol="BTC/USDT", base="BTC", quote="USDT", settle=None, kind="spot",
                 tick=0.01, lot=0.00001, min_qty=0.00001, min_notional=10.0, max_qty=9000.0,
                 min_price=0.01, max_price=1_000_000.0)
XRP = MarketInfo(symbol="XRP/USDT:USDT", base="XRP", quote="USDT", settle="USDT",
                 kind="linear", tick=0.0001, lot=0.1, min_qty=0.1, min_notional=5.0,
                 max_qty=1_000_000.0, min_price=0.0143, max_price=100_000.0)


def test_round_price_favours_the_trader() -> None:
    assert round_price(60000.014, BTC, "buy") == 60000.01
    assert round_price(60000.014, BTC, "sell") == 60000.02
    assert round_price(60000.01, BTC, "buy") == 60000.01  # on the grid: unchanged
    assert round_price(60000.01, BTC, "SELL") == 60000.01
    # 0.1 + 0.2 is 0.30000000000000004: on the grid, and returned as the clean decimal.
    assert round_price(0.1 + 0.2, BTC, "sell") == 0.3
    assert round_price(1.23456789, XRP, "buy") == 1.2345
    assert round_price(1.23456789, XRP, "sell") == 1.2346


def test_round_qty_down_to_the_lot() -> None:
    assert round_qty(0.3, XRP) == 0.3  # 0.3 / 0.1 == 2.9999999999999996 must not drop a lot
    assert round_qty(0.39, XRP) == 0.3
    assert round_qty(0.123456, BTC) == 0.12345
    assert round_qty(-0.39, XRP) == -0.3
    with pytest.raises(ValueError, match="finite"):
        round_qty(math.nan, XRP)
    with pytest.raises(ValueError, match="side"):
        round_price(1.0, XRP, "long")


@given(st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
def test_round_price_properties(price: float) -> None:
    down, up = round_price(price, BTC, "buy"), round_price(price, BTC, "sell")
    assert price_on_tick(down, BTC) and price_on_tick(up, BTC)
    # Within REL_TOL of a grid price counts as on it; otherwise buys go down, sells up.
    assert down <= price * (1 + REL_TOL) and up >= price * (1 - REL_TOL)
    assert up - down <= 0.01 * (1 + 1e-6)
    assert round_price(down, BTC, "sell") == down and round_price(up, BTC, "buy") == up


@given(st.floats(min_value=0.0, max_value=1e7, allow_nan=False))
def test_round_qty_properties(qty: float) -> None:
    q = round_qty(qty, XRP)
    assert qty_on_lot(q, XRP) and q <= qty * (1 + REL_TOL) and qty - q < 0.1 * (1 + 1e-6)
    assert round_qty(q, XRP) == q


def test_check_order_in_binance_words() -> None:
    assert check_order("buy", 0.001, 60000.01, BTC) is None
    assert check_order("buy", 0.001, 60000.015, BTC) == "Filter failure: PRICE_FILTER"
    assert check_order("buy", 0.001, 0.0, BTC) == "Filter failure: PRICE_FILTER"
    assert check_order("buy", 0.001, math.nan, BTC) == "Filter failure: PRICE_FILTER"
    assert check_order("sell", 0.001, 2_000_000.0, BTC) == "Filter failure: PRICE_FILTER"
    assert check_order("buy", 0.000005, 60000.0, BTC) == "Filter failure: LOT_SIZE"
    assert check_order("buy", 0.0010001, 60000.0, BTC) == "Filter failure: LOT_SIZE"
    assert check_order("buy", 9001.0, 60000.0, BTC) == "Filter failure: LOT_SIZE"
    assert check_order("buy", 0.0001, 60000.0, BTC) == "Filter failure: MIN_NOTIONAL"  # 6 USDT
    # The price is tested first, as exchangeInfo lists PRICE_FILTER first.
    assert check_order("buy", 0.0, 1.000001, BTC) == "Filter failure: PRICE_FILTER"
    with pytest.raises(ValueError, match="side"):
        check_order("hold", 1.0, 1.0, BTC)


def test_check_order_market_and_reduce_only() -> None:
    assert check_order("buy", 0.001, None, BTC, is_market=True) is None
    assert check_order("buy", 0.0001, 60000.003, BTC, is_market=True) == \
        "Filter failure: MIN_NOTIONAL"
    assert check_order("sell", 4.0, 1.2, XRP) == "Filter failure: MIN_NOTIONAL"  # 4.8 USDT
    assert check_order("sell", 4.0, 1.2, XRP, reduce_only=True) is None
    # Spot has no reduce-only exemption: 0.00005 BTC at 60000 is 3 USDT.
    assert check_order("sell", 0.00005, 60000.0, BTC, reduce_only=True) == \
        "Filter failure: MIN_NOTIONAL"


def test_newer_notional_filter_is_named() -> None:
    market = json.loads(SHIPPED.read_text(encoding="utf-8"))["BTC/USDT"]
    for f in market["info"]["filters"]:
        if f["filterType"] == "MIN_NOTIONAL":
            f["filterType"] = "NOTIONAL"
    m = MarketInfo.from_ccxt(market)
    assert check_order("buy", 0.0001, 60000.0, m) == "Filter failure: NOTIONAL"


# --- files that are not markets ---------------------------------------------------------------


def _market(**changes: object) -> dict:
    market = json.loads(SHIPPED.read_text(encoding="utf-8"))["XRP/USDT:USDT"]
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = market
        for p in parents:
            node = node[p]
        node[leaf] = value
    return market


BAD_MARKETS = {
    "no tick": (_market(precision__price=None), "precision.price (the tick) is missing"),
    "zero lot": (_market(precision__amount=0), "precision.amount (the lot) is 0, must be > 0"),
    "negative tick": (_market(precision__price=-0.01), "must be > 0"),
    "NaN string": (_market(precision__price="NaN"), "'NaN', not a finite number"),
    "huge int": (_market(precision__price=10**400), "a huge integer, not a finite number"),
    "bool": (_market(precision__amount=True), "True, not a number"),
    "text": (_market(limits__cost__min="five"), "limits.cost.min is 'five', not a number"),
    "tiny tick": (_market(precision__price=1e-300, limits__price__min=None), "plausible range"),
    "decimal places": (_market(precision__amount=1), "DECIMAL_PLACES"),
    "no type": (_market(type=None), "type None is not supported"),
    "no settle": (_market(settle=None), "needs its 'settle' currency"),
    "precision list": (_market(precision=[1, 2]), "'precision' is a list, expected an object"),
}


@pytest.mark.parametrize("name", list(BAD_MARKETS))
def test_bad_market_is_one_line_naming_file_and_symbol(tmp_path: Path, name: str) -> None:
    market, message = BAD_MARKETS[name]
    path = tmp_path / "markets.json"
    path.write_text(json.dumps({"XRP/USDT:USDT": market}), encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_markets(path)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{path}: XRP/USDT:USDT: "), line
    assert message in line


BAD_FILES = {
    "empty": (b"  \n", "is empty"),
    "not JSON": (b"BTC/USDT,0.01\n", "is not JSON"),
    "bad UTF-8": (b'{"a": "\xff\xfe"}', "is not JSON"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "is not JSON"),
    "long int": (b'{"x": ' + b"9" * 5000 + b"}", "is not JSON"),
    "candles": (b"[[1622505600000, 1.0, 1.1, 0.9, 1.05, 100.0]]", "a market is a list"),
    "scalar": (b"42", "got a number"),
    "other program": (b'{"name": "my-bot", "version": 3}', "entry 'name' is a string"),
    "dict of dicts": (b'{"x": {"a": 1}}', "a market has no 'symbol'"),
    "none": (b"{}", "no spot or linear swap markets"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_one_line(tmp_path: Path, name: str) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_markets(path)
    line = str(e.value)
    assert "\n" not in line and str(path) in line and message in line, line


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_markets(tmp_path / "nope.json")
    with pytest.raises(DataError, match="cannot be read"):
        load_markets(tmp_path)


def test_nan_and_infinite_literals(tmp_path: Path) -> None:
    """Python's json reads NaN and 1e400 (as inf); both must be refused, not used."""
    text = json.dumps({"XRP/USDT:USDT": _market()})
    for literal in ("NaN", "1e400", "-Infinity"):
        path = tmp_path / "m.json"
        path.write_text(text.replace('"price": 0.0001', f'"price": {literal}'), encoding="utf-8")
        with pytest.raises(DataError, match="not a finite number"):
            load_markets(path)


def test_key_mismatch_duplicates_and_unsupported_types(tmp_path: Path) -> None:
    xrp = _market()
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"BTC/USDT": xrp}), encoding="utf-8")
    with pytest.raises(DataError, match="entry 'BTC/USDT' holds the market of XRP/USDT:USDT"):
        load_markets(path)
    path.write_text(json.dumps([xrp, xrp]), encoding="utf-8")
    with pytest.raises(DataError, match="XRP/USDT:USDT is listed twice"):
        load_markets(path)
    future = _market(type="future", symbol="BTC/USDT:USDT-210924")
    inverse = _market(linear=False, inverse=True, symbol="BTC/USD:BTC")
    path.write_text(json.dumps([xrp, future, inverse]), encoding="utf-8")
    assert list(load_markets(path)) == ["XRP/USDT:USDT"]
    path.write_text(json.dumps([future, inverse]), encoding="utf-8")
    with pytest.raises(DataError, match="only 2 of types gridkit does not trade"):
        load_markets(path)


def test_trading_imports_nothing_of_the_kernel_but_its_errors() -> None:
    """The kernel imports gridkit.trading, never the reverse; heavy modules load lazily."""
    for path in sorted((REPO / "src" / "gridkit" / "trading").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("gridkit"):
                    assert name.startswith("gridkit.trading") or name == "gridkit.core.errors", \
                        f"{path.name} imports {name}"
                if node in top:
                    assert name.split(".")[0] not in {"pyarrow", "ccxt", "numba", "pandas"}, \
                        f"{path.name} imports {name} at top level"
