"""The trading exchange server: market data, signed REST, user streams and a live tape.

:class:`ExchangeServer` extends the market-data server
(:class:`~gridkit.testing_exchange.market_data.MarketDataServer`) with the matching engine: in
trading mode one :class:`~gridkit.testing_exchange.tape.Tape` replays the capture's prints live,
fills resting orders from them and streams them to every market-data websocket; Binance's signed
endpoints (:mod:`~gridkit.testing_exchange.private`) and user-data streams
(:mod:`~gridkit.testing_exchange.user_stream`) answer on their real paths. The inspection
methods read the exchange's truth from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from gridkit.testing_exchange.market_data import MarketDataServer, _KlineBuilder
from gridkit.testing_exchange.matching import BinanceError, Engine, Fill, Order, Position
from gridkit.testing_exchange.private import PrivateApi, sign
from gridkit.testing_exchange.tape import Tape
from gridkit.testing_exchange.user_stream import UserStreams

#: The test account's credentials when none are given (they guard nothing: loopback only).
DEFAULT_API_KEY = "gridkit-test-api-key-0000000000000000000000000000000000000000000000"
DEFAULT_SECRET = "gridkit-test-secret-00000000000000000000000000000000000000000000000000"
MARKETS = ("spot", "usdm")


def rehost(value: Any, base: str) -> Any:
    """Every URL in ``value`` (a string or nested mapping) on ``base``'s host, path kept."""
    if isinstance(value, Mapping):
        return {k: rehost(v, base) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    m = re.match(r"(https?|wss?)://[^/]+(.*)", value)
    if not m:
        return value
    scheme = "ws" if m.group(1).startswith("ws") else "http"
    return f"{scheme}://{base.split('://', 1)[1].rstrip('/')}{m.group(2)}"


@attrs.define(eq=False)
class _MarketSub:
    """One live market-data websocket: its streams and what is waiting to be sent."""

    streams: set[str]
    queue: asyncio.Queue[str]
    klines: dict[str, _KlineBuilder] = attrs.field(factory=dict)


class ExchangeServer(MarketDataServer):
    """A local Binance (spot or USDT-M) that trades, on 127.0.0.1, in Binance's formats.

    Every argument of :class:`~gridkit.testing_exchange.market_data.MarketDataServer` is
    accepted (``exchange_info``, ``klines``, ``capture``, ``speed``, ``lifetime``, ...), and:

    :param market: ``"spot"`` or ``"usdm"`` (one server serves one market kind).
    :param trading: replay the capture as one live tape that fills orders (default: on when
        ``balances`` are given). Off, websockets replay the capture per connection as before.
    :param api_key: the test account's API key; ``secret`` its HMAC secret.
    :param balances: the account's starting balances, e.g. ``{"USDT": 10000, "BTC": 0.1}``.
    :param maker_fee: commission rate of resting orders' fills; ``taker_fee`` of takers'.
    :param loop: start the tape over at its end (trade ids and times keep increasing).
    :param fill_fraction: cap each fill of a resting order at this fraction of its quantity.
    :param leverage: USDT-M leverage before ``/fapi/v1/leverage`` sets one.
    :param candles: a freqtrade-json OHLCV file (.json or .gz) whose candles make the tape
        instead of a capture's prints (:func:`~gridkit.testing_exchange.tape.candle_messages`):
        real price paths that move further than a few minutes of ticks, for rehearsing a
        grid; ``candle_seconds`` is how long each candle lasts (before ``speed``) and
        ``candle_symbol`` the Binance symbol the prints are of.
    """

    def __init__(self, exchange_info: str | Path | None = None, *, market: str = "spot",
                 trading: bool | None = None, api_key: str = DEFAULT_API_KEY,
                 secret: str = DEFAULT_SECRET,
                 balances: Mapping[str, float | str | Decimal] | None = None,
                 maker_fee: float | str = "0.001", taker_fee: float | str = "0.001",
                 loop: bool = False, fill_fraction: float = 1.0, leverage: int = 20,
                 candles: str | Path | None = None, candle_seconds: float = 1.0,
                 candle_symbol: str = "BTCUSDT", **kwargs: Any) -> None:
        if market not in MARKETS:
            raise ValueError(f"market must be one of {', '.join(MARKETS)}, not {market!r}")
        super().__init__(exchange_info, **kwargs)
        if candles is not None:
            from gridkit.testing_exchange.market_data import load_candles
            from gridkit.testing_exchange.tape import candle_messages

            rules = [x for x in self.exchange_info.get("symbols", [])
                     if x.get("symbol") == candle_symbol]
            tick = next((float(f["tickSize"]) for x in rules for f in x.get("filters", [])
                         if f.get("filterType") == "PRICE_FILTER"), 0.0)
            self.messages = candle_messages(load_candles(candles), candle_symbol,
                                            candle_seconds, tick)
        self.market = market
        self.api_key = api_key
        self.secret = secret
        self.trading = balances is not None if trading is None else trading
        #: Guards the engine: REST handlers and the tape run on the server's loop, the
        #: inspection methods on the caller's thread.
        self.engine_lock = threading.RLock()
        self.engine = Engine(market, self.exchange_info, maker_fee=maker_fee,
                             taker_fee=taker_fee, on_event=self._on_event,
                             fill_fraction=fill_fraction, leverage=leverage)
        self.user_streams = UserStreams(self.engine)
        self.engine.add_account(api_key, secret, balances or {}, int(time.time() * 1000))
        self.private = PrivateApi(self.engine, self.engine_lock, self.user_streams.listen_key)
        self.tape: Tape | None = None
        if self.trading and self.messages:
            self.tape = Tape(self.messages, speed=self.speed or 1.0, loop=loop)
            self.engine.last.update(self.tape.first_prices())
        self._market_subs: list[_MarketSub] = []
        #: While set (:meth:`freeze`), prints are published but fill nothing.
        self.frozen = False
        self._tape_task: asyncio.Future[None] | None = None

    def _on_event(self, key: str, kind: str, data: Any) -> None:
        self.user_streams.on_event(key, kind, data)

    # --- ccxt ----------------------------------------------------------------------------------

    def ccxt_config(self, market: str | None = None) -> dict[str, Any]:
        """The config for ``ccxt.binance(...)`` / ``ccxt.pro.binance(...)`` (``market="spot"``)
        or ``ccxt.binanceusdm(...)`` / ``ccxt.pro.binanceusdm(...)`` (``"usdm"``): the keys,
        every URL (REST and websocket) on this server, and options that load only this
        market kind and skip the endpoints a test exchange has no use for."""
        import ccxt.pro

        kind = market or self.market
        if kind not in MARKETS:
            raise ValueError(f"market must be one of {', '.join(MARKETS)}, not {kind!r}")
        cls = ccxt.pro.binance if kind == "spot" else ccxt.pro.binanceusdm
        api = rehost(cls().urls["api"], self.url)
        return {"apiKey": self.api_key, "secret": self.secret, "urls": {"api": api},
                "options": {"fetchMarkets": {"types": ["spot" if kind == "spot" else "linear"]},
                            "fetchCurrencies": False, "fetchMargins": False}}

    def signature(self, payload: str, secret: str | None = None) -> str:
        """Binance's HMAC-SHA256 signature of ``payload`` with ``secret`` (the account's)."""
        return sign(secret or self.secret, payload)

    # --- inspection (thread-safe) --------------------------------------------------------------

    def add_account(self, api_key: str, secret: str,
                    balances: Mapping[str, float | str | Decimal] | None = None) -> None:
        """Another account (another trader, or a second bot)."""
        with self.engine_lock:
            self.engine.add_account(api_key, secret, balances, int(time.time() * 1000))

    def orders(self, api_key: str | None = None, symbol: str | None = None, *,
               open_only: bool = False) -> list[Order]:
        """Copies of an account's orders (all, or the open ones), oldest first."""
        with self.engine_lock:
            acct = self.engine.account(api_key or self.api_key)
            return [attrs.evolve(o) for o in acct.orders
                    if (symbol is None or o.symbol == symbol) and (o.is_open or not open_only)]

    def open_orders(self, api_key: str | None = None, symbol: str | None = None) -> list[Order]:
        return self.orders(api_key, symbol, open_only=True)

    def order(self, client_id: str, api_key: str | None = None) -> Order | None:
        """The latest order with this client order id (None: there is none)."""
        found = [o for o in self.orders(api_key) if o.client_id == client_id]
        return found[-1] if found else None

    def fills(self, api_key: str | None = None, symbol: str | None = None) -> list[Fill]:
        """Copies of an account's fills (its trades), oldest first."""
        with self.engine_lock:
            acct = self.engine.account(api_key or self.api_key)
            return [attrs.evolve(f) for f in acct.fills if symbol is None or f.symbol == symbol]

    def balances(self, api_key: str | None = None) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (free, locked)}`` (spot), ``{asset: (wallet balance, 0)}`` (USDT-M)."""
        with self.engine_lock:
            acct = self.engine.account(api_key or self.api_key)
            return {a: (b[0], b[1]) for a, b in acct.balances.items()}

    def positions(self, api_key: str | None = None) -> list[Position]:
        """Copies of an account's open USDT-M positions."""
        with self.engine_lock:
            acct = self.engine.account(api_key or self.api_key)
            return [attrs.evolve(p) for p in acct.positions.values() if p.amt]

    def last_price(self, symbol: str = "BTCUSDT") -> Decimal | None:
        with self.engine_lock:
            return self.engine.last.get(symbol)

    def place_order(self, params: Mapping[str, Any], api_key: str | None = None) -> Order:
        """Place an order straight on the exchange, not through the API: as "someone else"
        (``api_key`` of another account) or, on the test account, an order the bot did not
        make (a client id it does not know). ``params`` are Binance's (``symbol``, ``side``,
        ``type``, ``quantity``, ``price``, ``timeInForce``, ``newClientOrderId``, ...)."""
        p = {k: str(v) for k, v in params.items()}
        with self.engine_lock:
            typ = p.get("type", "")
            algo = self.market == "usdm" and ("STOP" in typ or "TAKE_PROFIT" in typ)
            order = self.engine.new_order(api_key or self.api_key, p,
                                          int(time.time() * 1000), algo=algo)
            return attrs.evolve(order)

    def charge_funding(self, rate: float | str | Decimal = "0.0001") -> list[dict[str, Any]]:
        """A USDT-M funding time now: every open position pays ``rate`` × its notional at the
        last price (``/fapi/v1/income`` then lists it as ``FUNDING_FEE``); the records."""
        with self.engine_lock:
            return self.engine.charge_funding(Decimal(str(rate)), int(time.time() * 1000))

    def partial_fills(self, fraction: float) -> None:
        """Fault: cap each fill of a resting order at ``fraction`` of its quantity from now on
        (1: no cap), so orders fill over several prints."""
        with self.engine_lock:
            self.engine.fill_fraction = Decimal(str(fraction))

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or, with False, restart) matching: the tape goes on publishing market data,
        but its prints fill no order and the last price stays where it was. For a test that
        compares a bot's books with the exchange's: nothing changes under it meanwhile."""
        with self.engine_lock:
            self.frozen = frozen

    def disconnect_user_streams(self, after: int = 0) -> None:
        """Fault: close every open user-data websocket now, or after ``after`` more events."""
        self.user_streams.disconnect(after)

    def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``condition`` until it is truthy (returned) or ``timeout`` s pass (TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.02)

    # --- server --------------------------------------------------------------------------------

    async def _started(self) -> None:
        if self.tape is not None:
            self._tape_task = asyncio.ensure_future(
                self.tape.run(self._publish, self._on_print, self._stopped))

    async def _stopping(self) -> None:
        if self._tape_task is not None:
            self._tape_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tape_task

    def _on_print(self, symbol: str, price: Decimal, qty: Decimal, now: int) -> None:
        with self.engine_lock:
            if not self.frozen:
                self.engine.on_print(symbol, price, qty, now)

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        trade = stream.endswith("@trade")
        for sub in self._market_subs:
            if stream in sub.streams:
                sub.queue.put_nowait(text)
                self.counts["sent"] += 1
            if trade:
                prefix = stream[:-len("trade")] + "kline_"
                for name in sub.streams:
                    if name.startswith(prefix):
                        builder = sub.klines.setdefault(name, _KlineBuilder(name))
                        for event in builder.add(data):
                            sub.queue.put_nowait(event)
                            self.counts["sent"] += 1

    async def _answer(self, request: Any, path: str, query: dict[str, str]) -> Any:
        from aiohttp import web

        method = request.method
        if self.private.handles(method, path):
            body = await request.text()
            try:
                out = self.private.handle(method, path, request.headers.get("X-MBX-APIKEY"),
                                          request.rel_url.raw_query_string, body,
                                          int(time.time() * 1000))
            except BinanceError as err:
                return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)
            return web.json_response(out)
        if path in ("/sapi/v1/margin/allPairs", "/sapi/v1/margin/isolated/allPairs"):
            return web.json_response([])  # ccxt asks with keys set; no margin pairs here
        return await super()._answer(request, path, query)

    async def _websocket(self, request: Any) -> Any:
        path = request.path
        if path.startswith("/ws-api/"):
            return await self._ws_api(request)
        key = request.query.get("listenKey") or path.rstrip("/").rsplit("/", 1)[-1]
        owner = self.user_streams.owner(key)
        if owner is not None:
            return await self._user_ws(request, owner)
        if self.tape is not None:
            return await self._live_ws(request)
        return await super()._websocket(request)

    async def _user_ws(self, request: Any, owner: str) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sub = self.user_streams.subscribe(owner)
        pump = asyncio.ensure_future(self.user_streams.pump(ws, sub))
        try:
            async for _ in ws:  # a user stream takes no requests
                pass
        finally:
            pump.cancel()
            self.user_streams.unsubscribe(sub)
        return ws

    async def _ws_api(self, request: Any) -> Any:
        """Binance's WebSocket API, as far as user-data subscriptions go (how ccxt.pro
        subscribes to spot's user stream): ``userDataStream.subscribe.signature``,
        ``userDataStream.unsubscribe``, ``ping``, ``time``."""
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        pumps: dict[int, tuple[Any, asyncio.Future[None]]] = {}

        def error(rid: Any, code: int, msg: str, status: int = 400) -> str:
            return json.dumps({"id": rid, "status": status, "error": {"code": code, "msg": msg}})

        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    await ws.send_str(error(None, -1000, "Malformed request."))
                    continue
                rid, method = req.get("id"), req.get("method")
                params = req.get("params") or {}
                if method == "userDataStream.subscribe.signature":
                    acct = self.engine.accounts.get(params.get("apiKey", ""))
                    if acct is None:
                        await ws.send_str(error(rid, -2015, "Invalid API-key, IP, or "
                                                            "permissions for action.", 401))
                        continue
                    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items())
                                       if k != "signature")
                    if sign(acct.secret, payload) != params.get("signature"):
                        await ws.send_str(error(rid, -1022, "Signature for this request is not "
                                                            "valid."))
                        continue
                    sid = self.user_streams.next_subscription
                    self.user_streams.next_subscription += 1
                    sub = self.user_streams.subscribe(acct.key, sid)
                    await ws.send_str(json.dumps({"id": rid, "status": 200,
                                                  "result": {"subscriptionId": sid}}))
                    pumps[sid] = (sub, asyncio.ensure_future(self.user_streams.pump(ws, sub)))
                elif method == "userDataStream.unsubscribe":
                    for sid, (sub, task) in list(pumps.items()):
                        if params.get("subscriptionId") in (None, sid):
                            task.cancel()
                            self.user_streams.unsubscribe(sub)
                            del pumps[sid]
                    await ws.send_str(json.dumps({"id": rid, "status": 200, "result": {}}))
                elif method == "ping":
                    await ws.send_str(json.dumps({"id": rid, "status": 200, "result": {}}))
                elif method == "time":
                    await ws.send_str(json.dumps({"id": rid, "status": 200, "result": {
                        "serverTime": int(time.time() * 1000)}}))
                else:
                    await ws.send_str(error(rid, -1000, f"Unknown method {method!r}."))
        finally:
            for sub, task in pumps.values():
                task.cancel()
                self.user_streams.unsubscribe(sub)
        return ws

    async def _live_ws(self, request: Any) -> Any:
        """A market-data websocket on the live tape: what is printed from now on."""
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self.counts["connections"] += 1
        sub = _MarketSub(set(), asyncio.Queue())
        self._market_subs.append(sub)

        async def send() -> None:
            sent = 0
            try:
                while not ws.closed:
                    await ws.send_str(await sub.queue.get())
                    sent += 1
                    if self.drop_after and sent >= self.drop_after:
                        self.counts["dropped"] += 1
                        await ws.close()
                        return
            except (ConnectionError, RuntimeError):
                return

        sender = asyncio.ensure_future(send())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    continue
                names = req.get("params") or []
                if req.get("method") == "SUBSCRIBE":
                    sub.streams.update(names)
                elif req.get("method") == "UNSUBSCRIBE":
                    sub.streams.difference_update(names)
                else:
                    continue
                await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
        finally:
            sender.cancel()
            self._market_subs.remove(sub)
        return ws


__all__ = ["DEFAULT_API_KEY", "DEFAULT_SECRET", "MARKETS", "ExchangeServer", "rehost"]
