"""The local exchange's market data: real Binance REST answers and websocket replay.

:class:`ExchangeServer` answers on 127.0.0.1 (a free port) in Binance's real REST and websocket
formats, from real recorded data, so ccxt's own request building and parsing runs unchanged:
point a ccxt exchange at it by overriding its URLs (:meth:`ExchangeServer.ccxt_urls`).

REST (``/api/v3/...``): ``exchangeInfo`` (a real exchangeInfo response file), ``klines``
(12-field Binance klines built from real freqtrade OHLCV rows, honouring ``symbol``,
``interval``, ``startTime``, ``endTime`` and ``limit`` as Binance does), ``time``, ``ping`` and
``depth`` (the REST snapshot recorded in a websocket capture). Faults are injected with
:meth:`ExchangeServer.fail`: a 429 with Binance's error body and ``Retry-After``, a 418, a 5xx, a
dropped connection, a malformed (truncated) body, or Binance's ``-1121 Invalid symbol.`` error.

Websocket (``/stream/ws/...`` and ``/ws/...``): ccxt.pro subscribes with ``{"method":
"SUBSCRIBE", "params": [...], "id": n}``; the server acknowledges and replays the capture's
lines (``<ns> {"stream": ..., "data": ...}``) for the subscribed ``@trade``, ``@depth@100ms``
and ``@bookTicker`` streams, sending the raw ``data`` payload as Binance does on ``/ws``
endpoints. ``@kline_<tf>`` streams are built from the capture's real trades in Binance's
kline-event format. Options drop the connection after a number of messages (the messages in
between are lost, as on a real reconnect) and send garbage frames.

Everything is bounded: the server listens on the loopback address only, stops after
``lifetime`` seconds even if nobody stops it, and replays at most the capture once.

.. code-block:: python

    from gridkit.testing_exchange import ExchangeServer, load_candles

    with ExchangeServer(klines={("BTCUSDT", "1m"): load_candles(path)}) as server:
        ex = ccxt.binance({"urls": {"api": server.ccxt_urls()}})
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import gzip
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Binance interval names and their length in ms.
INTERVALS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}

#: Binance's real error bodies for the injected faults.
ERRORS = {
    "429": (429, {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is "
                  "6000 requests per minute. Please use the websocket for live updates to "
                  "avoid polling the API."}),
    "418": (418, {"code": -1003, "msg": "Way too many requests; IP(127.0.0.1) banned until "
                  "1700000000000. Please use the websocket for live updates to avoid bans."}),
    "bad-symbol": (400, {"code": -1121, "msg": "Invalid symbol."}),
}
FAULTS = ("429", "418", "500", "502", "503", "504", "drop", "malformed", "bad-symbol",
          "timeout", "reject", "drop-after-take", "late")


def load_json(path: str | Path) -> Any:
    """A JSON file, gzip or not."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def load_candles(path: str | Path) -> list[list[Any]]:
    """Rows ``[ms, open, high, low, close, volume]`` of a freqtrade-json file (.json or .gz)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


@functools.lru_cache(maxsize=4)
def load_capture(path: str | Path
                 ) -> tuple[list[tuple[int, str, str]], dict[str, Any] | None]:
    """A Binance websocket capture (lines ``<ns> <json>``) as ``(local ns, stream, data_json)``
    in order, and the REST depth snapshot it holds (or None). Cached per path."""
    messages: list[tuple[int, str, str]] = []
    snapshot = None
    head = '{"stream":"'
    with gzip.open(path, "rt") as f:
        for line in f:
            ns, _, text = line.rstrip("\n").partition(" ")
            if text.startswith(head):
                # {"stream":"<name>","data":<payload>}: the payload is sent as recorded.
                end = text.index('"', len(head))
                data = text[text.index(":", end + 2) + 1:-1]
                messages.append((int(ns), text[len(head):end], data))
                continue
            msg = json.loads(text)
            if "stream" in msg:
                messages.append((int(ns), msg["stream"],
                                 json.dumps(msg["data"], separators=(",", ":"))))
            elif "lastUpdateId" in msg and snapshot is None:
                snapshot = msg
    return messages, snapshot


def _num(x: Any) -> str:
    """A price or quantity as Binance writes it (8 decimals), exact for the float it came from."""
    text = f"{float(x):.8f}"
    return text if float(text) == float(x) else repr(float(x))


def kline_row(row: Sequence[Any], interval_ms: int) -> list[Any]:
    """Binance's 12-field kline from an OHLCV row; fields the row lacks (quote volume, trade
    count, taker volumes) are zero."""
    ts = int(row[0])
    return [ts, _num(row[1]), _num(row[2]), _num(row[3]), _num(row[4]), _num(row[5]),
            ts + interval_ms - 1, "0.00000000", 0, "0.00000000", "0.00000000", "0"]


class MarketDataServer:
    """Binance-format REST + websocket server on 127.0.0.1 that replays real data (no trading;
    :class:`gridkit.testing_exchange.ExchangeServer` adds it).

    :param exchange_info: path of a real ``/api/v3/exchangeInfo`` response.
    :param klines: OHLCV rows per ``(binance symbol, interval)``, e.g. ``("BTCUSDT", "1m")``.
    :param capture: path of a Binance websocket capture (``<ns> <json>`` lines, gzip) to replay.
    :param now_ms: the exchange clock (``/api/v3/time``); klines after it are not served, and the
        one containing it is the still-open candle. None: the real clock.
    :param retry_after: the ``Retry-After`` header (seconds) of injected 429/418 answers.
    :param drop_after: close each websocket after this many data messages (None: never).
    :param skip_on_reconnect: messages lost while a dropped client reconnects.
    :param garbage_every: send a garbage frame after every this many data messages.
    :param max_messages: stop replaying after this many data messages in all.
    :param speed: replay at the capture's own pace sped up this many times (None: as fast as
        the socket takes them; a client then gets bursts bigger than a live feed's).
    :param lifetime: seconds after which the server stops by itself (None: when stopped).
    :param port: the port to listen on (0: a free one).
    """

    def __init__(self, exchange_info: str | Path | None = None, *,
                 klines: Mapping[tuple[str, str], Sequence[Sequence[Any]]] | None = None,
                 capture: str | Path | None = None, now_ms: int | None = None,
                 retry_after: int = 0, drop_after: int | None = None,
                 skip_on_reconnect: int = 50, garbage_every: int | None = None,
                 max_messages: int | None = None, speed: float | None = None,
                 lifetime: float | None = 120.0, port: int = 0) -> None:
        self.exchange_info = load_json(exchange_info) if exchange_info else {
            "timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
            "symbols": []}
        self.symbols = {s["symbol"] for s in self.exchange_info.get("symbols", [])}
        self.klines: dict[tuple[str, str], tuple[list[int], list[list[Any]]]] = {}
        for (symbol, interval), rows in (klines or {}).items():
            if interval not in INTERVALS:
                raise ValueError(f"unknown interval {interval!r}")
            built = [kline_row(r, INTERVALS[interval]) for r in rows]
            built.sort(key=lambda k: k[0])
            self.klines[(symbol, interval)] = ([k[0] for k in built], built)
        self.messages: list[tuple[int, str, str]] = []
        self.snapshot: dict[str, Any] | None = None
        if capture is not None:
            self.messages, self.snapshot = load_capture(str(capture))
        self.now_ms = now_ms
        self.retry_after = retry_after
        self.drop_after = drop_after
        self.skip_on_reconnect = skip_on_reconnect
        self.garbage_every = garbage_every
        self.max_messages = max_messages
        self.speed = speed
        self.lifetime = lifetime
        #: Every REST request: (path, query dict).
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: Counters: websocket connections, data messages sent, garbage frames, drops, and
        #: ``late`` requests carried out whose client had gone before the answer.
        self.counts = {"connections": 0, "sent": 0, "garbage": 0, "dropped": 0, "faults": 0,
                       "unanswered": 0}
        self._faults: list[list[Any]] = []  # [kind, path or None, times left, method, opts]
        # Position in the capture per websocket path: a reconnect to the same path goes on
        # from where the dropped connection was (less the messages lost meanwhile).
        self._cursors: dict[str, int] = {}
        self._depth_path: str | None = None  # the websocket path that subscribed to depth
        self._book: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self.port = port

    # --- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def ccxt_urls(self) -> dict[str, Any]:
        """A mapping for a ccxt Binance exchange's ``urls['api']``: every REST API and the spot
        websocket at this server (the websocket path contains ``/stream`` as Binance's does,
        which ccxt.pro uses to tell spot streams from futures ones)."""
        base = self.url
        return {
            "public": f"{base}/api/v3", "private": f"{base}/api/v3", "v1": f"{base}/api/v1",
            "sapi": f"{base}/sapi/v1", "fapiPublic": f"{base}/fapi/v1",
            "dapiPublic": f"{base}/dapi/v1",
            "ws": {"spot": f"ws://127.0.0.1:{self.port}/stream/ws",
                   "margin": f"ws://127.0.0.1:{self.port}/stream/ws"},
        }

    def fail(self, kind: str, path: str | None = "/api/v3/klines", times: int = 1, *,
             method: str | None = None, delay: float = 0.0, code: int = -1013,
             msg: str = "Filter failure: PRICE_FILTER") -> None:
        """Answer the next ``times`` requests to ``path`` (any path if None; any method unless
        ``method``, e.g. ``"POST"``) with a fault: ``429``, ``418`` (Binance's bodies, with
        ``Retry-After``), ``500``, ``502``, ``503``, ``504``, ``drop`` (close the connection
        without answering), ``malformed`` (a truncated JSON body), ``bad-symbol``,
        ``timeout`` (answer normally, but only after ``delay`` seconds), ``reject`` (a 400 with
        Binance's ``{"code": code, "msg": msg}``) or ``drop-after-take`` (carry the request out
        -- an order IS placed -- then close the connection without answering) or ``late``
        (carry the request out at once, answer ``delay`` seconds later: a client that dies
        meanwhile placed an order it never heard of)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; faults are {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append([kind, path, times, method,
                                 {"delay": delay, "code": code, "msg": msg}])

    def start(self) -> MarketDataServer:
        """Start serving in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="gridkit-exchange-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("exchange server did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"exchange server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> MarketDataServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- server --------------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as err:  # reported by start()
            self._error = err
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        from aiohttp import web

        app = web.Application()
        # Every path: websocket upgrades go to _websocket, the rest to _rest (ccxt's URLs,
        # rehosted, keep Binance's paths: /ws, /stream, /ws-api/v3, /private/ws, ...).
        app.router.add_route("*", "/{tail:.*}", self._rest)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await self._started()
        self._ready.set()
        deadline = time.monotonic() + (self.lifetime if self.lifetime is not None else 1e18)
        while not self._stopped.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._stopped.set()
        await self._stopping()
        await runner.cleanup()

    async def _started(self) -> None:
        """Called on the server's loop once the port is bound (background tasks start here)."""

    async def _stopping(self) -> None:
        """Called on the server's loop before it closes (background tasks end here)."""

    def _take_fault(self, path: str, method: str = "GET") -> tuple[str | None, dict[str, Any]]:
        with self._lock:
            for fault in self._faults:
                kind, where, left, only, opts = fault
                if left > 0 and (where is None or where == path) and (
                        only is None or only == method):
                    fault[2] -= 1
                    self.counts["faults"] += 1
                    return kind, opts
        return None, {}

    async def _answer(self, request: Any, path: str, query: dict[str, str]) -> Any:
        """The answer to a request no fault took (subclasses add endpoints)."""
        from aiohttp import web

        handler = self._public(path)
        if handler is None:
            return web.json_response({"code": -1000, "msg": f"Unknown path {path}."}, status=404)
        try:
            body = handler(query)
        except _BinanceError as err:
            return web.json_response({"code": err.code, "msg": err.msg}, status=400)
        return web.json_response(body)

    def _public(self, path: str) -> Any:
        # The same public endpoints under spot's and USDT-M's prefixes: one server serves one
        # market kind, whose exchangeInfo it was given.
        for prefix in ("/api/v3/", "/fapi/v1/"):
            if path.startswith(prefix):
                return {
                    "ping": lambda q: {},
                    "time": lambda q: {"serverTime": self._now()},
                    "exchangeInfo": lambda q: self.exchange_info,
                    "klines": self._klines,
                    "depth": self._depth,
                }.get(path[len(prefix):])
        return None

    async def _rest(self, request: Any) -> Any:
        from aiohttp import web

        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        path = request.path
        query = dict(request.query)
        self.requests.append((path, query))
        fault, opts = self._take_fault(path, request.method)
        if fault == "timeout":
            await asyncio.sleep(opts["delay"])
            fault = None
        if fault == "reject":
            return web.json_response({"code": opts["code"], "msg": opts["msg"]}, status=400)
        if fault == "late":
            answer = await self._answer(request, path, query)
            await asyncio.sleep(opts["delay"])
            transport = request.transport
            if transport is None or transport.is_closing():
                self.counts["unanswered"] += 1  # carried out; the client is gone
            return answer
        if fault == "drop-after-take":
            await self._answer(request, path, query)
            fault = "drop"
        if fault == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        if fault == "malformed":
            return web.Response(text='[[1618951320000,"55000.0', content_type="application/json")
        if fault is not None and fault in ERRORS:
            status, body = ERRORS[fault]
            headers = {"Retry-After": str(self.retry_after)} if status in (418, 429) else {}
            return web.json_response(body, status=status, headers=headers)
        if fault is not None:  # 5xx
            return web.Response(status=int(fault), text="Service Unavailable.")
        return await self._answer(request, path, query)

    def _now(self) -> int:
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    def _symbol(self, query: Mapping[str, str]) -> str:
        symbol = query.get("symbol", "")
        if not symbol:
            raise _BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null,"
                                       " or malformed.")
        if symbol not in self.symbols:
            raise _BinanceError(-1121, "Invalid symbol.")
        return symbol

    def _klines(self, query: Mapping[str, str]) -> list[list[Any]]:
        symbol = self._symbol(query)
        interval = query.get("interval", "")
        if interval not in INTERVALS:
            raise _BinanceError(-1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", 500))
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            raise _BinanceError(-1100, "Illegal characters found in a parameter.") from None
        if not 1 <= limit <= 1000:
            raise _BinanceError(-1130, "Invalid data sent for a parameter.")
        times, rows = self.klines.get((symbol, interval), ([], []))
        now = self._now()
        end = now if end is None else min(end, now)
        hi = bisect.bisect_right(times, end)
        if start is None:
            return rows[max(0, hi - limit):hi]
        lo = bisect.bisect_left(times, start)
        return rows[lo:min(hi, lo + limit)]

    def _depth(self, query: Mapping[str, str]) -> dict[str, Any]:
        """The book as Binance would give it now: the capture's REST snapshot, brought up to
        where the depth stream's replay has got to by applying the recorded diffs (Binance's
        own sync rule: diffs with ``u`` <= ``lastUpdateId`` are already in the snapshot)."""
        self._symbol(query)
        if self.snapshot is None:
            raise _BinanceError(-1121, "Invalid symbol.")
        limit = int(query.get("limit", 100))
        with self._lock:
            upto = self._cursors.get(self._depth_path or "", 0)
        book = self._book
        if book is None:
            snap = self.snapshot
            book = self._book = {"id": snap["lastUpdateId"], "pos": 0,
                                 "bids": {p: q for p, q in snap["bids"]},
                                 "asks": {p: q for p, q in snap["asks"]}}
        for _, stream, data in self.messages[book["pos"]:upto]:
            if "@depth" not in stream:
                continue
            diff = json.loads(data)
            if diff["u"] <= book["id"]:
                continue
            for side, key in (("bids", "b"), ("asks", "a")):
                levels = book[side]
                for p, q in diff[key]:
                    if float(q) == 0.0:
                        levels.pop(p, None)
                    else:
                        levels[p] = q
            book["id"] = diff["u"]
        book["pos"] = max(book["pos"], upto)
        bids = sorted(book["bids"].items(), key=lambda pq: -float(pq[0]))[:limit]
        asks = sorted(book["asks"].items(), key=lambda pq: float(pq[0]))[:limit]
        return {"lastUpdateId": book["id"], "bids": [list(x) for x in bids],
                "asks": [list(x) for x in asks]}

    # --- websocket -----------------------------------------------------------------------------

    async def _websocket(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self.counts["connections"] += 1
            path = request.path
            if path in self._cursors:  # a reconnect: what was sent meanwhile is lost
                self._cursors[path] += self.skip_on_reconnect
            else:
                self._cursors[path] = 0
        streams: set[str] = set()
        sender: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    continue
                if req.get("method") == "SUBSCRIBE":
                    streams.update(req.get("params", []))
                    if any("@depth" in name for name in streams):
                        self._depth_path = path
                    await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
                    if sender is None:
                        sender = asyncio.ensure_future(self._replay(ws, path, streams))
                elif req.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(req.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
        finally:
            if sender is not None:
                sender.cancel()
        return ws

    async def _replay(self, ws: Any, path: str, streams: set[str]) -> None:
        sent_here = 0
        klines: dict[str, _KlineBuilder] = {}
        t0 = time.monotonic()
        ns0: int | None = None
        try:
            while not ws.closed and not self._stopped.is_set():
                with self._lock:
                    i = self._cursors[path]
                    if i >= len(self.messages) or (
                            self.max_messages is not None
                            and self.counts["sent"] >= self.max_messages):
                        break
                    self._cursors[path] = i + 1
                ns, stream, data = self.messages[i]
                if self.speed:
                    ns0 = ns if ns0 is None else ns0
                    ahead = (ns - ns0) / 1e9 / self.speed - (time.monotonic() - t0)
                    if ahead > 0.001:
                        await asyncio.sleep(ahead)
                out = [data] if stream in streams else []
                if stream.endswith("@trade"):
                    for name in streams:
                        if name.startswith(stream[:-len("trade")] + "kline_"):
                            builder = klines.setdefault(name, _KlineBuilder(name))
                            out.extend(builder.add(json.loads(data)))
                for payload in out:
                    await ws.send_str(payload)
                    sent_here += 1
                    with self._lock:
                        self.counts["sent"] += 1
                    if self.garbage_every and not sent_here % self.garbage_every:
                        garbage = ("\x00not json at all" if (sent_here // self.garbage_every) % 2
                                   else '{"stream":"btcusdt@trade","data":{"e":"tra')
                        await ws.send_str(garbage)
                        self.counts["garbage"] += 1
                    if self.drop_after and sent_here >= self.drop_after:
                        self.counts["dropped"] += 1
                        await ws.close()
                        return
                if not i % 64:
                    await asyncio.sleep(0)
        except (ConnectionError, RuntimeError):  # the client went away
            return


class _BinanceError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class _KlineBuilder:
    """Binance kline-stream events (``e = "kline"``) folded from real trade events."""

    def __init__(self, stream: str) -> None:
        self.interval = stream.rsplit("_", 1)[1]
        self.ms = INTERVALS[self.interval]
        self.k: dict[str, Any] | None = None

    def _event(self, t: int, closed: bool) -> str:
        assert self.k is not None
        k = dict(self.k, x=closed)
        return json.dumps({"e": "kline", "E": t, "s": k["s"], "k": k}, separators=(",", ":"))

    def add(self, trade: Mapping[str, Any]) -> Iterable[str]:
        ts = int(trade["T"])
        start = ts - ts % self.ms
        price, qty = trade["p"], trade["q"]
        out = []
        k = self.k
        if k is not None and start > k["t"]:
            out.append(self._event(int(trade["E"]), True))
            k = None
        if k is None:
            k = self.k = {"t": start, "T": start + self.ms - 1, "s": trade["s"],
                          "i": self.interval, "f": trade["t"], "L": trade["t"], "o": price,
                          "c": price, "h": price, "l": price, "v": "0", "n": 0,
                          "q": "0", "V": "0", "Q": "0", "B": "0"}
        if float(price) > float(k["h"]):
            k["h"] = price
        if float(price) < float(k["l"]):
            k["l"] = price
        k["c"] = price
        k["L"] = trade["t"]
        k["n"] += 1
        k["v"] = _num(float(k["v"]) + float(qty))
        k["q"] = _num(float(k["q"]) + float(qty) * float(price))
        if not trade.get("m", False):
            k["V"] = _num(float(k["V"]) + float(qty))
            k["Q"] = _num(float(k["Q"]) + float(qty) * float(price))
        out.append(self._event(int(trade["E"]), False))
        return out


__all__ = ["ERRORS", "FAULTS", "INTERVALS", "MarketDataServer", "kline_row", "load_candles",
           "load_capture", "load_json"]
