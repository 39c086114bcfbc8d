"""The local exchange trading USDT-M futures with ccxt's REAL ``ccxt.binanceusdm`` and
``ccxt.pro.binanceusdm`` classes: orders, batches, conditional (algo) orders, positions and
PnL, reduce-only, hedge mode, leverage, the futures user stream. Data: the real futures
exchangeInfo; the hftbacktest USDT-M BTCUSDT capture when the full data set is there, else the
spot slice's real BTCUSDT prints."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gridkit.testing_exchange import ExchangeServer

ccxt = pytest.importorskip("ccxt")
ccxt_pro = pytest.importorskip("ccxt.pro")

SYMBOL = "BTC/USDT:USDT"
# ccxt picks its futures-only error table by Binance's host names (fapi.binance.com), so on a
# rehosted URL the codes only its shared table knows (-2010, -2011, -2013, -1022, ...) map to
# their classes and the futures-only ones (-2019, -2021, -2022, -4164, ...) surface as plain
# ExchangeError, code in the message: the tests check the code.
_keys = itertools.count()


@pytest.fixture(scope="module")
def server(data_dir: Path):
    info = (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_futures_market_exchange_info.json")
    tapes = data_dir / "trades_orderbook" / "hftbacktest"
    capture = next(p for p in (tapes / "usdm" / "btcusdt_20240808.gz",
                               tapes / "spot" / "btcusdt_20240808.gz") if p.is_file())
    with ExchangeServer(info, market="usdm", capture=capture, balances={"USDT": 10_000},
                        speed=10.0, loop=True, lifetime=300.0) as s:
        yield s


def client(server: ExchangeServer, usdt: float = 10_000) -> Any:
    key = f"fkey-{next(_keys)}"
    server.add_account(key, f"secret-{key}", {"USDT": usdt})
    ex = ccxt.binanceusdm({**server.ccxt_config(), "apiKey": key, "secret": f"secret-{key}"})
    ex.load_markets()
    return ex


def last(server: ExchangeServer) -> float:
    return float(server.last_price("BTCUSDT"))


def test_positions_reduce_only_and_pnl(server: ExchangeServer) -> None:
    ex = client(server)
    assert ex.fetch_balance()["USDT"]["free"] == 10_000.0
    buy = ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert (buy["status"], buy["filled"]) == ("closed", 0.01)
    [pos] = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
    assert (pos["side"], pos["contracts"], pos["entryPrice"]) == ("long", 0.01, buy["average"])
    with pytest.raises(ccxt.ExchangeError, match="-2022"):  # reduce-only, but grows the long
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"reduceOnly": True})
    sell = ex.create_order(SYMBOL, "market", "sell", 0.01, params={"reduceOnly": True})
    assert (sell["status"], sell["reduceOnly"]) == ("closed", True)
    assert server.positions(ex.apiKey) == []
    trades = ex.fetch_my_trades(SYMBOL)
    pnl = Decimal(trades[-1]["info"]["realizedPnl"])
    assert pnl == (Decimal(str(sell["average"])) - Decimal(str(buy["average"]))) * Decimal("0.01")
    fees = sum(Decimal(t["info"]["commission"]) for t in trades)
    assert fees == sum(Decimal(t["info"]["quoteQty"]) for t in trades) * Decimal("0.001")
    wallet = server.balances(ex.apiKey)["USDT"][0]
    assert wallet == Decimal(10_000) + pnl - fees


def test_batch_post_only_and_refusals(server: ExchangeServer) -> None:
    ex = client(server)
    price = last(server)
    orders = ex.create_orders([
        {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.002,
         "price": price - 300, "params": {"clientOrderId": "b-1"}},
        {"symbol": SYMBOL, "type": "limit", "side": "sell", "amount": 0.002,
         "price": price + 300, "params": {"postOnly": True}},
    ])
    assert [(o["status"], o["side"]) for o in orders] == [("open", "buy"), ("open", "sell")]
    assert server.order("b-1", ex.apiKey).price == Decimal(str(round(price - 300, 1)))
    assert server.orders(ex.apiKey)[1].tif == "GTX"
    # Post-only that would take: Binance refuses it (-5022) and does not record it.
    with pytest.raises(ccxt.InvalidOrder, match="-5022"):
        ex.create_order(SYMBOL, "limit", "buy", 0.002, price + 300, params={"postOnly": True})
    with pytest.raises(ccxt.ExchangeError, match="-2019"):  # margin
        ex.create_order(SYMBOL, "limit", "buy", 10, price - 300)
    with pytest.raises(ccxt.ExchangeError, match="-4164"):  # notional under 10 USDT
        ex.create_order(SYMBOL, "limit", "buy", 0.001, 5000)
    with pytest.raises(ccxt.ExchangeError, match="-4116"):
        ex.create_order(SYMBOL, "limit", "buy", 0.002, price - 300,
                        params={"clientOrderId": "b-1"})
    assert len(ex.fetch_open_orders(SYMBOL)) == 2
    ex.cancel_all_orders(SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []


def test_conditional_orders_through_the_algo_api(server: ExchangeServer) -> None:
    ex = client(server)
    ex.create_order(SYMBOL, "market", "buy", 0.005)
    price = last(server)
    stop = ex.create_order(SYMBOL, "market", "sell", 0.005,
                           params={"triggerPrice": price - 800, "reduceOnly": True})
    assert (stop["status"], stop["triggerPrice"]) == ("open", round(price - 800, 1))
    assert server.orders(ex.apiKey)[-1].type == "STOP_MARKET"
    [seen] = ex.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert seen["id"] == stop["id"]
    ex.cancel_order(stop["id"], SYMBOL, params={"trigger": True})
    assert server.open_orders(ex.apiKey) == []
    with pytest.raises(ccxt.ExchangeError, match="-2021"):  # it would trigger at once
        ex.create_order(SYMBOL, "market", "sell", 0.005, params={"triggerPrice": price + 800})


def test_hedge_mode_and_leverage(server: ExchangeServer) -> None:
    ex = client(server)
    ex.set_leverage(5, SYMBOL)
    ex.set_position_mode(True)
    ex.create_order(SYMBOL, "market", "buy", 0.003, params={"positionSide": "LONG"})
    ex.create_order(SYMBOL, "market", "sell", 0.002, params={"positionSide": "SHORT"})
    sides = {(p["side"], p["contracts"], p["leverage"]) for p in ex.fetch_positions([SYMBOL])
             if p["contracts"]}
    assert sides == {("long", 0.003, 5), ("short", 0.002, 5)}


def test_futures_user_stream(server: ExchangeServer) -> None:
    """ccxt.pro's watch_orders / watch_my_trades / watch_balance over the futures listen-key
    stream (``/private/ws?listenKey=``): ORDER_TRADE_UPDATE and ACCOUNT_UPDATE."""
    key = f"fkey-{next(_keys)}"
    server.add_account(key, f"secret-{key}", {"USDT": 10_000})
    config = {**server.ccxt_config(), "apiKey": key, "secret": f"secret-{key}"}

    async def main() -> tuple[Any, Any, Any]:
        ex = ccxt_pro.binanceusdm(config)
        try:
            await ex.load_markets()
            orders = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            trades = asyncio.ensure_future(ex.watch_my_trades(SYMBOL))
            await asyncio.sleep(0.5)
            balance = asyncio.ensure_future(ex.watch_balance())
            await asyncio.sleep(0.3)
            await ex.create_order(SYMBOL, "market", "buy", 0.004)
            return await orders, await trades, await balance
        finally:
            await ex.close()

    orders, trades, balance = asyncio.run(asyncio.wait_for(main(), 30))
    assert orders[-1]["side"] == "buy" and orders[-1]["amount"] == 0.004
    assert [(t["side"], t["amount"]) for t in trades] == [("buy", 0.004)]
    wallet = float(server.balances(key)["USDT"][0])
    assert balance["USDT"]["total"] == pytest.approx(wallet)
