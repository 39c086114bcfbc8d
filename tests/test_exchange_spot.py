"""The local exchange trading spot with ccxt's REAL, unmodified ``ccxt.binance`` and
``ccxt.pro.binance`` classes (only their URLs changed): orders of every kind, Binance's
refusals as ccxt maps them, fills from the replayed real trades, the user-data stream, and
every injected fault. Data: the real spot exchangeInfo and the hftbacktest BTCUSDT capture."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gridkit.testing_exchange import ExchangeServer

ccxt = pytest.importorskip("ccxt")
ccxt_pro = pytest.importorskip("ccxt.pro")

SYMBOL = "BTC/USDT"
_keys = itertools.count()


@pytest.fixture(scope="module")
def spot_info(data_dir: Path) -> Path:
    return (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_spot_market_exchange_info.json")


@pytest.fixture(scope="module")
def capture(data_dir: Path) -> Path:
    return data_dir / "trades_orderbook" / "hftbacktest" / "spot" / "btcusdt_20240808.gz"


@pytest.fixture(scope="module")
def server(spot_info: Path, capture: Path):
    """One trading server for the module; each test trades on an account of its own."""
    with ExchangeServer(spot_info, capture=capture, balances={"USDT": 10_000, "BTC": 0.1},
                        speed=12.0, loop=True, lifetime=300.0) as s:
        yield s


def account(server: ExchangeServer, usdt: float = 10_000, btc: float = 0.1) -> dict[str, Any]:
    """A fresh account on the server; the ccxt config that trades on it."""
    key = f"key-{next(_keys)}"
    server.add_account(key, f"secret-{key}", {"USDT": usdt, "BTC": btc})
    return {**server.ccxt_config(), "apiKey": key, "secret": f"secret-{key}"}


def client(server: ExchangeServer, **kw: Any) -> Any:
    ex = ccxt.binance(account(server, **kw))
    ex.load_markets()
    return ex


def last(server: ExchangeServer) -> float:
    return float(server.last_price("BTCUSDT"))


def resting_buy(server: ExchangeServer) -> float:
    """A buy price that rests and that the looping tape is sure to reach within a pass: five
    dollars below the last print (the tape goes on while the order travels; a price it passes
    meanwhile would take on arrival), but not below the capture's lowest print."""
    lowest = min(float(json.loads(data)["p"]) for _, name, data in server.messages
                 if name.endswith("@trade"))
    return max(lowest, last(server) - 5)


def test_markets_balance_and_a_market_buy(server: ExchangeServer) -> None:
    ex = client(server)
    assert ex.fetch_balance()["USDT"] == {"free": 10_000.0, "used": 0.0, "total": 10_000.0}
    order = ex.create_order(SYMBOL, "market", "buy", 0.001)
    assert (order["status"], order["filled"], order["type"]) == ("closed", 0.001, "market")
    price = order["average"]
    assert order["fee"] == {"currency": "BTC", "cost": 0.000001}  # 0.1 % of what came in
    bal = server.balances(ex.apiKey)
    assert bal["BTC"] == (Decimal("0.100999"), Decimal(0))
    assert bal["USDT"][0] == Decimal("10000") - (Decimal(str(price)) * Decimal("0.001"))
    trades = ex.fetch_my_trades(SYMBOL)
    assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        (price, 0.001, "taker")]


def test_limit_rests_then_fills_from_the_tape(server: ExchangeServer) -> None:
    ex = client(server)
    price = resting_buy(server)
    order = ex.create_order(SYMBOL, "limit", "buy", 0.002, price,
                            params={"clientOrderId": "grid-1"})
    # It rested (the tape fills it soon after: it may be gone from the open orders already).
    assert (order["status"], order["filled"], order["clientOrderId"]) == ("open", 0.0, "grid-1")
    server.wait_for(lambda: server.order("grid-1", ex.apiKey).status == "FILLED", 60)
    done = ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "grid-1"})
    assert (done["status"], done["filled"], done["average"]) == ("closed", 0.002, price)
    assert all(t["takerOrMaker"] == "maker" and t["price"] == price
               for t in ex.fetch_my_trades(SYMBOL))
    assert ex.fetch_open_orders(SYMBOL) == []


def test_order_kinds(server: ExchangeServer) -> None:
    ex = client(server)
    price = last(server)
    maker = ex.create_order(SYMBOL, "limit", "sell", 0.001, price + 200,
                            params={"postOnly": True})
    assert (maker["status"], maker["info"]["type"], maker["postOnly"]) == (
        "open", "LIMIT_MAKER", True)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.create_order(SYMBOL, "limit", "sell", 0.001, price - 200, params={"postOnly": True})
    ioc = ex.create_order(SYMBOL, "limit", "buy", 0.001, price - 200,
                          params={"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"]) == ("expired", 0.0)
    fok = ex.create_order(SYMBOL, "limit", "buy", 0.001, price + 200,
                          params={"timeInForce": "FOK"})
    assert (fok["status"], fok["filled"]) == ("closed", 0.001)
    stop = ex.create_order(SYMBOL, "limit", "sell", 0.001, price - 600,
                           params={"triggerPrice": price - 500})
    assert (stop["status"], stop["info"]["type"], stop["triggerPrice"]) == (
        "open", "STOP_LOSS_LIMIT", price - 500)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.create_order(SYMBOL, "limit", "sell", 0.001, price, params={"triggerPrice": price + 50})
    canceled = ex.cancel_order(stop["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    assert {o["id"] for o in ex.fetch_open_orders(SYMBOL)} == {maker["id"]}
    ex.cancel_all_orders(SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []
    statuses = {o["id"]: o["status"] for o in ex.fetch_orders(SYMBOL)}
    assert statuses == {maker["id"]: "canceled", ioc["id"]: "expired", fok["id"]: "closed",
                        stop["id"]: "canceled"}
    assert server.balances(ex.apiKey)["BTC"][1] == 0


def test_refusals_map_to_ccxt_errors(server: ExchangeServer) -> None:
    ex = client(server, usdt=100)
    price = last(server)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"price": "1000.001"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"quantity": "0.0000001"})
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        ex.create_order(SYMBOL, "limit", "buy", 0.0001, 1000.0)
    ex.create_order(SYMBOL, "limit", "buy", 0.001, price - 100, params={"clientOrderId": "d"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        ex.create_order(SYMBOL, "limit", "buy", 0.001, price - 100, params={"clientOrderId": "d"})
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order("123", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order("123", SYMBOL)
    assert len(server.open_orders(ex.apiKey)) == 1


def test_authentication(server: ExchangeServer) -> None:
    bad = ccxt.binance({**account(server), "secret": "not-the-secret"})
    bad.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad.fetch_balance()
    unknown = ccxt.binance({**server.ccxt_config(), "apiKey": "nobody"})
    unknown.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        unknown.fetch_balance()


def test_an_order_the_bot_did_not_make(server: ExchangeServer) -> None:
    ex = client(server)
    theirs = server.place_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                 "timeInForce": "GTC", "quantity": "0.001",
                                 "price": str(last(server) + 300),
                                 "newClientOrderId": "manual-7"}, api_key=ex.apiKey)
    [seen] = ex.fetch_open_orders(SYMBOL)
    assert (seen["id"], seen["clientOrderId"]) == (str(theirs.order_id), "manual-7")


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "error"), [
    ("429", ccxt.DDoSProtection), ("418", ccxt.DDoSProtection),
    ("503", ccxt.ExchangeNotAvailable), ("drop", ccxt.NetworkError)])
def test_http_faults(server: ExchangeServer, kind: str, error: type) -> None:
    ex = client(server)
    server.fail(kind, "/api/v3/openOrders", method="GET")
    with pytest.raises(error):
        ex.fetch_open_orders(SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []  # one fault, then normal again


def test_timeout_and_reject(server: ExchangeServer) -> None:
    ex = client(server)
    ex.timeout = 300
    server.fail("timeout", "/api/v3/account", delay=1.0)
    with pytest.raises(ccxt.RequestTimeout):
        ex.fetch_balance()
    server.fail("reject", "/api/v3/order", method="POST", code=-2010,
                msg="Account has insufficient balance for requested action.")
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "market", "buy", 0.001)
    assert server.orders(ex.apiKey) == []


def test_drop_after_take_places_the_order_once(server: ExchangeServer) -> None:
    """The order is placed, the answer lost: a retry must look it up by its client id."""
    ex = client(server)
    server.fail("drop-after-take", "/api/v3/order", method="POST")
    price = last(server) - 300
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"clientOrderId": "r-1"})
    found = ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "r-1"})
    assert (found["status"], found["price"]) == ("open", price)
    assert len(server.open_orders(ex.apiKey)) == 1


# --- websockets --------------------------------------------------------------------------------


def test_user_stream_and_market_data_agree(server: ExchangeServer) -> None:
    """watch_orders / watch_my_trades / watch_balance over ccxt.pro's user stream (Binance's
    WebSocket API), and watch_trades giving the same prints the fills come from."""
    config = account(server)
    server.partial_fills(0.25)

    async def main() -> tuple[list[Any], list[Any]]:
        ex = ccxt_pro.binance(config)
        try:
            await ex.load_markets()
            prints = await ex.watch_trades(SYMBOL)
            assert abs(prints[-1]["timestamp"] - time.time() * 1000) < 5_000  # live: now
            orders = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            await asyncio.sleep(0.3)
            # Matching stands still while the order travels, so it rests and is filled by the
            # prints that follow, in parts; on a busy machine the tape could otherwise pass the
            # price first and the order would take, whole, on arrival.
            server.freeze()
            try:
                price = resting_buy(server)
                await ex.create_order(SYMBOL, "limit", "buy", 0.004, price,
                                      params={"clientOrderId": "ws-1"})
            finally:
                server.freeze(False)
            updates = [dict(o) for o in await orders]
            while updates[-1]["status"] != "closed":
                updates += [dict(o) for o in await ex.watch_orders(SYMBOL)]
            for _ in range(100):  # the last trade's message may still be on its way
                if sum(t["amount"] for t in ex.myTrades or []) >= 0.004 - 1e-12:
                    break
                await asyncio.sleep(0.05)
            return updates, list(ex.myTrades or [])
        finally:
            await ex.close()

    try:
        updates, mine = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        server.partial_fills(1.0)
    assert (updates[-1]["filled"], updates[-1]["status"]) == (0.004, "closed")
    # Capped at a quarter each (and at each print's size), the order filled in parts, each a
    # trade on the stream at the order's price: a print of the tape that reached it.
    parts = [f.qty for f in server.fills(config["apiKey"])]
    assert len(parts) >= 4 and max(parts) <= Decimal("0.001") and sum(parts) == Decimal("0.004")
    assert [t["amount"] for t in mine] == [float(q) for q in parts]
    assert {t["price"] for t in mine} == {updates[-1]["price"]}


def test_watch_my_trades_and_balance(server: ExchangeServer) -> None:
    config = account(server)

    async def main() -> tuple[Any, Any]:
        ex = ccxt_pro.binance(config)
        try:
            await ex.load_markets()
            trades = asyncio.ensure_future(ex.watch_my_trades(SYMBOL))
            balance = asyncio.ensure_future(ex.watch_balance())
            await asyncio.sleep(0.3)
            await ex.create_order(SYMBOL, "market", "sell", 0.01)
            return await trades, await balance
        finally:
            await ex.close()

    trades, balance = asyncio.run(asyncio.wait_for(main(), 30))
    assert [(t["side"], t["amount"], t["fee"]["currency"]) for t in trades] == [
        ("sell", 0.01, "USDT")]
    assert balance["BTC"]["free"] == pytest.approx(0.09)


def test_user_stream_disconnect(server: ExchangeServer) -> None:
    """The exchange closes the user stream: ccxt.pro's pending watch raises, and the next
    watch subscribes again and gets the following events."""
    config = account(server)

    async def main() -> tuple[BaseException | None, Any]:
        ex = ccxt_pro.binance(config)
        try:
            await ex.load_markets()
            pending = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            await asyncio.sleep(0.3)
            server.disconnect_user_streams()
            try:
                await asyncio.wait_for(pending, 10)
                error = None
            except ccxt.NetworkError as err:
                error = err
            again = asyncio.ensure_future(ex.watch_orders(SYMBOL))
            await asyncio.sleep(0.5)
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, last(server) - 400)
            return error, await asyncio.wait_for(again, 10)
        finally:
            await ex.close()

    error, orders = asyncio.run(main())
    assert error is not None
    assert orders[-1]["status"] == "open"
    assert server.user_streams.counts["closed"] >= 1


def test_listen_key_stream(server: ExchangeServer) -> None:
    """The listen-key user stream (``POST /api/v3/userDataStream``, ``/ws/<listenKey>``)
    sends Binance's executionReport and outboundAccountPosition events."""
    import aiohttp

    config = account(server)
    req = urllib.request.Request(f"{server.url}/api/v3/userDataStream", method="POST",
                                 headers={"X-MBX-APIKEY": config["apiKey"]})
    with urllib.request.urlopen(req) as resp:
        key = json.load(resp)["listenKey"]
    ex = ccxt.binance(config)
    ex.load_markets()

    async def main() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"ws://127.0.0.1:{server.port}/ws/{key}") as ws:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(ex.create_order, SYMBOL, "market", "buy", 0.001)
            return [json.loads((await ws.receive(5)).data) for _ in range(4)]

    events = asyncio.run(main())
    kinds = [e["e"] for e in events]
    assert kinds.count("executionReport") == 2 and "outboundAccountPosition" in kinds
    trade = next(e for e in events if e["e"] == "executionReport" and e["x"] == "TRADE")
    assert set("esScSoqpPFgCxXrilzLnNTtwmMOZYQ") <= set(trade)
    assert (trade["X"], trade["l"], trade["N"]) == ("FILLED", "0.00100000", "BTC")


def test_user_stream_closed_after_n_events(server: ExchangeServer) -> None:
    """``disconnect_user_streams(after=N)``: the exchange closes the stream after N more
    events, the ones after them are lost to it, as on a real drop."""
    import aiohttp

    config = account(server)
    req = urllib.request.Request(f"{server.url}/api/v3/userDataStream", method="POST",
                                 headers={"X-MBX-APIKEY": config["apiKey"]})
    with urllib.request.urlopen(req) as resp:
        key = json.load(resp)["listenKey"]
    ex = ccxt.binance(config)
    ex.load_markets()

    async def main() -> list[Any]:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"ws://127.0.0.1:{server.port}/ws/{key}") as ws:
            await asyncio.sleep(0.2)
            server.disconnect_user_streams(after=2)
            await asyncio.to_thread(ex.create_order, SYMBOL, "market", "buy", 0.001)
            return [await ws.receive(5) for _ in range(3)]

    first, second, closed = asyncio.run(main())
    assert json.loads(first.data)["e"] == "executionReport"
    assert json.loads(second.data)["e"] in ("executionReport", "outboundAccountPosition")
    assert closed.type == aiohttp.WSMsgType.CLOSE
