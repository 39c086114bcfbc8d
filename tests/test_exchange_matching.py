"""gridkit.testing_exchange.matching on its own: Binance's filters and error codes from the real
exchangeInfo files, spot balances and fees, USDT-M positions and PnL, and property tests of
the engine's bookkeeping over generated order flow."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit.testing_exchange import BinanceError, Engine, load_json

D = Decimal
INFO = "api_fixtures/nautilus_trader/binance_http_responses/http_{}_market_exchange_info.json"
SPOT_INFO = load_json(Path(__file__).parent / "data" / (INFO.format("spot") + ".gz"))
FUTURES_INFO = load_json(Path(__file__).parent / "data" / (INFO.format("futures") + ".gz"))


def spot(balances: dict[str, Any] | None = None, **kw: Any) -> Engine:
    e = Engine("spot", SPOT_INFO, **kw)
    e.add_account("k", "s", balances or {"USDT": 10_000, "BTC": 1})
    e.last["BTCUSDT"] = D("60000")
    return e


def usdm(**kw: Any) -> Engine:
    e = Engine("usdm", FUTURES_INFO, **kw)
    e.add_account("k", "s", {"USDT": 10_000})
    e.last["BTCUSDT"] = D("60000")
    return e


def order(e: Engine, **p: Any) -> Any:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "0.001", "price": "59990", **{k: str(v) for k, v in p.items()}}
    params = {k: v for k, v in params.items() if v != "None"}
    return e.new_order("k", params, 1)


def test_real_exchange_info_holds_btcusdt() -> None:
    assert SPOT_INFO["symbols"][0]["symbol"] == "BTCUSDT"
    assert any(s["symbol"] == "BTCUSDT" for s in FUTURES_INFO["symbols"])


@pytest.mark.parametrize(("params", "code", "msg"), [
    ({"price": "59990.001"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.0001"}, -1013, "Filter failure: NOTIONAL"),
    ({"quantity": "1"}, -2010, "Account has insufficient balance for requested action."),
    ({"type": "LIMIT_MAKER", "timeInForce": None, "price": "60010"}, -2010,
     "Order would immediately match and take."),
    ({"type": "STOP_LOSS_LIMIT", "side": "SELL", "stopPrice": "60100"}, -2010,
     "Stop price would trigger immediately."),
    ({"type": "STOP_LOSS", "timeInForce": None, "price": None, "stopPrice": "59000",
      "side": "SELL"}, -2010, "Stop loss orders are not supported for this symbol."),
    ({"symbol": "XRPUSDT"}, -1121, "Invalid symbol."),
    ({"timeInForce": "GTX"}, -1115, "Invalid timeInForce."),
])
def test_spot_refusals_use_binance_codes(params: dict[str, Any], code: int, msg: str) -> None:
    e = spot()
    with pytest.raises(BinanceError) as err:
        order(e, **params)
    assert (err.value.code, err.value.msg) == (code, msg)
    assert not e.accounts["k"].orders


def test_spot_fills_move_balances_with_fees_in_the_received_asset() -> None:
    e = spot(maker_fee="0.001", taker_fee="0.002")
    buy = order(e, price="59990", quantity="0.01")
    acct = e.accounts["k"]
    assert acct.balances["USDT"] == [D("9400.1"), D("599.9")]
    e.on_print("BTCUSDT", D("59990"), D("0.004"), 2)  # at the price: fills, up to 0.004
    assert (buy.status, buy.filled) == ("PARTIALLY_FILLED", D("0.004"))
    e.on_print("BTCUSDT", D("59980"), D("1"), 3)  # through it: the rest, at its own price
    assert (buy.status, buy.filled, buy.quote) == ("FILLED", D("0.01"), D("599.9"))
    assert acct.balances["USDT"] == [D("9400.1"), D("0")]
    assert acct.balances["BTC"][0] == D("1.01") - D("0.00001")  # maker fee in BTC
    sell = order(e, side="SELL", type="MARKET", timeInForce=None, price=None, quantity="0.5")
    assert (sell.status, sell.avg_price) == ("FILLED", D("59980"))
    fee = D("0.5") * D("59980") * D("0.002")
    assert acct.balances["USDT"][0] == D("9400.1") + D("29990") - fee
    assert [f.maker for f in acct.fills] == [True, True, False]


def test_spot_ioc_fok_and_client_ids() -> None:
    e = spot()
    ioc = order(e, timeInForce="IOC", newClientOrderId="a")
    assert ioc.status == "EXPIRED" and e.accounts["k"].balances["USDT"][1] == 0
    fok = order(e, timeInForce="FOK", price="60010", newClientOrderId="a")  # "a" is closed
    assert (fok.status, fok.avg_price) == ("FILLED", D("60000"))
    order(e, newClientOrderId="b")
    with pytest.raises(BinanceError, match="Duplicate order sent"):
        order(e, newClientOrderId="b")
    assert e.query("k", "BTCUSDT", orig_client_id="a") is fok
    e.cancel("k", "BTCUSDT", 5, orig_client_id="b")
    with pytest.raises(BinanceError) as err:
        e.cancel("k", "BTCUSDT", 5, orig_client_id="b")
    assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(BinanceError) as err:
        e.query("k", "BTCUSDT", order_id=1)
    assert (err.value.code, err.value.msg) == (-2013, "Order does not exist.")


def test_spot_stop_limit_triggers_on_the_tape() -> None:
    e = spot()
    stop = order(e, type="STOP_LOSS_LIMIT", side="SELL", stopPrice="59900", price="59890",
                 quantity="0.01")
    e.on_print("BTCUSDT", D("59950"), D("1"), 2)
    assert not stop.triggered
    e.on_print("BTCUSDT", D("59895"), D("1"), 3)  # triggers; a sell limit at 59890 takes
    assert (stop.status, stop.avg_price) == ("FILLED", D("59895"))


def test_forced_partial_fills() -> None:
    e = spot(fill_fraction=0.25)
    buy = order(e, quantity="0.004")
    for t in range(4):
        e.on_print("BTCUSDT", D("59990"), D("1"), t)
    assert [f.qty for f in e.accounts["k"].fills] == [D("0.001")] * 4
    assert buy.status == "FILLED"


@pytest.mark.parametrize(("params", "code"), [
    ({"price": "59990.05"}, -4014),
    ({"quantity": "0.0015"}, -1111),
    ({"quantity": "0.0001"}, -1111),
    ({"price": "5000"}, -4164),
    ({"price": "400"}, -4013),
    ({"quantity": "1000.001"}, -4005),
    ({"quantity": "10", "price": "50000"}, -2019),
    ({"timeInForce": "GTX", "price": "60010"}, -5022),
    ({"positionSide": "LONG"}, -4061),
    ({"type": "STOP_MARKET"}, -4120),
    ({"reduceOnly": "true"}, -2022),
])
def test_usdm_refusals(params: dict[str, Any], code: int) -> None:
    e = usdm()
    with pytest.raises(BinanceError) as err:
        order(e, **params)
    assert err.value.code == code


def test_usdm_positions_pnl_and_hedge_mode() -> None:
    e = usdm(maker_fee="0.0002", taker_fee="0.0005")
    acct = e.accounts["k"]
    order(e, type="MARKET", timeInForce=None, price=None, quantity="0.1")
    pos = acct.positions[("BTCUSDT", "BOTH")]
    assert (pos.amt, pos.entry) == (D("0.1"), D("60000"))
    e.on_print("BTCUSDT", D("61000"), D("1"), 2)
    close = order(e, side="SELL", type="MARKET", timeInForce=None, price=None,
                  quantity="0.2", reduceOnly="true")
    # More than the position: the rest expires, as Binance's reduce-only orders do.
    assert (close.status, close.filled, pos.amt) == ("EXPIRED", D("0.1"), D("0"))
    fees = D("0.1") * D("60000") * D("0.0005") + D("0.1") * D("61000") * D("0.0005")
    assert acct.balances["USDT"][0] == D("10000") + D("100") - fees
    e.set_dual("k", True)
    long = order(e, positionSide="LONG", type="MARKET", timeInForce=None, price=None)
    short = order(e, positionSide="SHORT", side="SELL", type="MARKET", timeInForce=None,
                  price=None)
    assert long.status == short.status == "FILLED"
    assert acct.positions[("BTCUSDT", "LONG")].amt == D("0.001")
    assert acct.positions[("BTCUSDT", "SHORT")].amt == D("-0.001")
    with pytest.raises(BinanceError) as err:
        e.set_dual("k", False)
    assert err.value.code == -4068


# --- properties --------------------------------------------------------------------------------

prices = st.integers(-300, 300).map(lambda k: D("60000") + D(k) / 10)
qtys = st.integers(20, 2000).map(lambda n: D(n) / 100_000)
ops = st.lists(st.one_of(
    st.tuples(st.just("limit"), st.sampled_from(["BUY", "SELL"]), prices, qtys,
              st.sampled_from(["GTC", "IOC", "FOK"])),
    st.tuples(st.just("market"), st.sampled_from(["BUY", "SELL"]), qtys),
    st.tuples(st.just("maker"), st.sampled_from(["BUY", "SELL"]), prices, qtys),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("print"), prices, qtys),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, fraction=st.sampled_from([1.0, 0.3]),
       start=st.tuples(st.integers(0, 3000), st.integers(0, 5)))
def test_spot_bookkeeping_properties(ops: list[tuple[Any, ...]], fraction: float,
                                     start: tuple[int, int]) -> None:
    """Whatever the flow: balances never go negative, locked = what open orders reserve,
    filled <= quantity, and every asset is conserved net of fees."""
    usdt0, btc0 = D(start[0]), D(start[1]) / 10
    e = spot({"USDT": usdt0, "BTC": btc0}, fill_fraction=fraction, maker_fee="0.001",
             taker_fee="0.00075")
    acct = e.accounts["k"]
    for t, op in enumerate(ops):
        try:
            if op[0] == "limit":
                order(e, side=op[1], price=op[2], quantity=op[3], timeInForce=op[4])
            elif op[0] == "maker":
                order(e, side=op[1], price=op[2], quantity=op[3], type="LIMIT_MAKER",
                      timeInForce=None)
            elif op[0] == "market":
                order(e, side=op[1], quantity=op[2], type="MARKET", timeInForce=None,
                      price=None)
            elif op[0] == "cancel" and acct.orders:
                o = acct.orders[op[1] % len(acct.orders)]
                e.cancel("k", "BTCUSDT", t, o.order_id)
            elif op[0] == "print":
                e.on_print("BTCUSDT", op[1], op[2], t)
        except BinanceError as err:
            assert err.code in (-1013, -2010, -2011)
        for asset, (free, locked) in acct.balances.items():
            assert free >= 0 and locked >= 0, asset
            held = sum((o.reserved for o in acct.orders
                        if o.is_open and o.reserved_asset == asset), D(0))
            assert locked == held, asset
        for o in acct.orders:
            assert 0 <= o.filled <= o.qty
            assert o.is_open or o.reserved == 0
    bought = sum((f.qty for f in acct.fills if f.side == "BUY"), D(0))
    sold = sum((f.qty for f in acct.fills if f.side == "SELL"), D(0))
    paid = sum((f.quote.quantize(D("1e-8")) for f in acct.fills if f.side == "BUY"), D(0))
    got = sum((f.quote.quantize(D("1e-8")) for f in acct.fills if f.side == "SELL"), D(0))
    fee = {a: sum((f.commission for f in acct.fills if f.commission_asset == a), D(0))
           for a in ("BTC", "USDT")}
    assert sum(acct.balances["BTC"]) == btc0 + bought - sold - fee["BTC"]
    assert sum(acct.balances["USDT"]) == usdt0 - paid + got - fee["USDT"]
