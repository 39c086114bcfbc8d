"""The local exchange's user-data streams: listen keys, Binance's event formats, websockets.

Spot: ``executionReport`` and ``outboundAccountPosition`` events, on ``/ws/<listenKey>`` (the
listen key from ``POST /api/v3/userDataStream``) or on the WebSocket API (``/ws-api/v3``,
``userDataStream.subscribe.signature``, which is how ccxt.pro subscribes: each event then comes
wrapped as ``{"subscriptionId": n, "event": {...}}``). USDT-M: ``ORDER_TRADE_UPDATE`` and
``ACCOUNT_UPDATE`` on ``/ws/<listenKey>`` or ``/private/ws?listenKey=<key>`` (the key from
``POST /fapi/v1/listenKey``). A stream gets the events from when it connects on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from attrs import define, field

from gridkit.testing_exchange.matching import ZERO, Engine, Fill, Order
from gridkit.testing_exchange.private import fmt, new_listen_key


@define(eq=False)
class Subscriber:
    """One open user-data websocket of an account."""

    account: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | None]
    subscription_id: int | None = None  # WebSocket-API subscriptions wrap their events
    close_after: int | None = None  # fault: close after this many more events
    sent: int = 0


@define(eq=False)
class UserStreams:
    """Listen keys per account and the open user-data websockets, fed by the engine."""

    engine: Engine
    keys: dict[str, str] = field(factory=dict)  # listen key -> API key
    subscribers: list[Subscriber] = field(factory=list)
    lock: threading.Lock = field(factory=threading.Lock)
    #: Fault: close every user stream that connects from now on after this many events.
    close_after: int | None = None
    next_subscription: int = 0
    #: Counters: user-stream connections, events sent, connections closed by a fault.
    counts: dict[str, int] = field(factory=lambda: {"connections": 0, "events": 0,
                                                    "closed": 0})

    def listen_key(self, api_key: str, _current: str = "") -> str:
        """The account's listen key (made on first use; Binance returns the same key while it
        is valid)."""
        with self.lock:
            for k, owner in self.keys.items():
                if owner == api_key:
                    return k
            k = new_listen_key()
            self.keys[k] = api_key
            return k

    def owner(self, listen_key: str) -> str | None:
        with self.lock:
            return self.keys.get(listen_key)

    def subscribe(self, api_key: str, subscription_id: int | None = None) -> Subscriber:
        sub = Subscriber(api_key, asyncio.get_running_loop(), asyncio.Queue(), subscription_id,
                         self.close_after)
        with self.lock:
            self.subscribers.append(sub)
            self.counts["connections"] += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)

    def disconnect(self, after: int = 0) -> None:
        """Close every open user stream after ``after`` more events (0: now)."""
        with self.lock:
            for sub in self.subscribers:
                if after:
                    sub.close_after = after
                else:
                    sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)

    # --- events --------------------------------------------------------------------------------

    def on_event(self, api_key: str, kind: str, data: Any) -> None:
        """The engine's callback (under the exchange's lock): format now, send in order."""
        with self.lock:
            subs = [s for s in self.subscribers if s.account == api_key]
        if not subs:
            return
        now = int(time.time() * 1000)
        if kind == "order":
            order, fill, exec_type = data
            event = (self.execution_report(order, fill, exec_type, now) if self.engine.spot
                     else self.order_trade_update(order, fill, exec_type, now))
        elif kind == "account":
            event = (self.account_position(api_key, now) if self.engine.spot
                     else self.account_update(api_key, data, now))
        else:
            return
        for sub in subs:
            payload = event if sub.subscription_id is None else {
                "subscriptionId": sub.subscription_id, "event": event}
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait,
                                          json.dumps(payload, separators=(",", ":")))

    def execution_report(self, o: Order, fill: Fill | None, x: str, now: int) -> dict[str, Any]:
        canceled = x == "CANCELED"
        return {
            "e": "executionReport", "E": now, "s": o.symbol,
            "c": o.cancel_client_id if canceled else o.client_id, "S": o.side, "o": o.type,
            "f": o.tif or "GTC", "q": fmt(o.qty), "p": fmt(o.price), "P": fmt(o.stop_price),
            "F": fmt(ZERO), "g": -1, "C": o.client_id if canceled else "", "x": x,
            "X": o.status, "r": "NONE", "i": o.order_id,
            "l": fmt(fill.qty if fill else ZERO), "z": fmt(o.filled),
            "L": fmt(fill.price if fill else ZERO),
            "n": fmt(fill.commission if fill else ZERO),
            "N": fill.commission_asset if fill else None,
            "T": fill.time if fill else o.update_time, "t": fill.trade_id if fill else -1,
            "v": 0, "I": o.order_id * 2 + (fill.trade_id if fill else 0),
            "w": o.is_open and o.triggered, "m": bool(fill and fill.maker), "M": False,
            "O": o.time, "Z": fmt(o.quote), "Y": fmt(fill.quote if fill else ZERO),
            "Q": fmt(ZERO), "W": o.time if o.triggered else -1, "V": "EXPIRE_MAKER",
        }

    def account_position(self, api_key: str, now: int) -> dict[str, Any]:
        acct = self.engine.accounts[api_key]
        return {"e": "outboundAccountPosition", "E": now, "u": acct.update_time or now,
                "B": [{"a": a, "f": fmt(b[0]), "l": fmt(b[1])}
                      for a, b in sorted(acct.balances.items())]}

    def order_trade_update(self, o: Order, fill: Fill | None, x: str,
                           now: int) -> dict[str, Any]:
        r = self.engine.rules[o.symbol]
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
            "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.tif or "GTC",
            "q": fmt(o.qty, r.qty_dp), "p": fmt(o.price, r.price_dp),
            "ap": fmt(o.avg_price, r.price_dp), "sp": fmt(o.stop_price, r.price_dp),
            "x": x, "X": o.status, "i": o.order_id,
            "l": fmt(fill.qty if fill else ZERO, r.qty_dp), "z": fmt(o.filled, r.qty_dp),
            "L": fmt(fill.price if fill else ZERO, r.price_dp),
            "N": fill.commission_asset if fill else r.quote,
            "n": fmt(fill.commission if fill else ZERO),
            "T": fill.time if fill else o.update_time, "t": fill.trade_id if fill else 0,
            "b": "0", "a": "0", "m": bool(fill and fill.maker), "R": o.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": o.type, "ps": o.position_side, "cp": False,
            "rp": fmt(fill.realized_pnl if fill else ZERO), "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}}

    def account_update(self, api_key: str, reason: str, now: int) -> dict[str, Any]:
        e = self.engine
        acct = e.accounts[api_key]
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
            "m": reason,
            "B": [{"a": a, "wb": fmt(b[0]), "cw": fmt(b[0]), "bc": "0"}
                  for a, b in sorted(acct.balances.items())],
            "P": [{"s": p.symbol, "pa": fmt(p.amt, e.rules[p.symbol].qty_dp),
                   "ep": fmt(p.entry), "bep": fmt(p.entry), "cr": fmt(p.realized),
                   "up": fmt(e._upnl(p)), "mt": "cross", "iw": "0", "ps": p.side}
                  for p in acct.positions.values()]}}

    # --- websocket -----------------------------------------------------------------------------

    async def pump(self, ws: Any, sub: Subscriber) -> None:
        """Send ``sub``'s events on ``ws`` until it closes (or a fault closes it)."""
        try:
            while not ws.closed:
                text = await sub.queue.get()
                if text is None:
                    break
                await ws.send_str(text)
                sub.sent += 1
                with self.lock:
                    self.counts["events"] += 1
                if sub.close_after is not None:
                    sub.close_after -= 1
                    if sub.close_after <= 0:
                        break
            else:
                return
            with self.lock:
                self.counts["closed"] += 1
            await ws.close()
        except (ConnectionError, RuntimeError):
            return
        finally:
            self.unsubscribe(sub)


__all__ = ["Subscriber", "UserStreams"]
