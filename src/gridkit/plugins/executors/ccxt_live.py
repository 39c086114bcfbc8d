"""Built-in executor ``ccxt``: real orders on any ccxt exchange, reported back as the kernel's
reports, without ever losing or duplicating one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Executor
from gridkit.core.config import at_least, non_negative, option, positive
from gridkit.core.errors import ConfigError, ExchangeUnreachable, GridkitError
from gridkit.core.types import (
    Accepted,
    Cancelled,
    Expired,
    Fill,
    FundingPaid,
    Order,
    Rejected,
)
from gridkit.runtime.context import Context, RunInfo

log = logging.getLogger("gridkit.executor")

#: ccxt order statuses that end an order.
_DONE = ("closed", "canceled", "cancelled", "expired", "rejected")
#: A fill within this share of the order's quantity of filling it fills it (float residue).
_RESIDUE = 1e-9


class _Tracked:
    """One order of this run as the exchange has shown it so far."""

    __slots__ = ("done", "filled", "order", "reported_open", "symbol", "terminal", "trades",
                 "xid")

    def __init__(self, order: Order, symbol: str) -> None:
        self.order = order
        self.symbol = symbol
        #: The exchange's order id, once known.
        self.xid: str | None = None
        #: Quantity reported filled so far (the sum of the Fill reports given).
        self.filled = 0.0
        #: Exchange trade ids already reported.
        self.trades: set[str] = set()
        self.reported_open = False
        #: A terminal report waiting for fills the exchange has but we have not seen yet:
        #: (report, the exchange's filled quantity).
        self.terminal: tuple[Any, float] | None = None
        self.done = False


def _check_keys(_instance: Any, attribute: Any, value: str) -> None:
    if value not in ("env", "keyring") and not value.startswith("file:"):
        from gridkit.core.config import OptionError

        raise OptionError(attribute.name, f"expected 'env', 'keyring' or 'file:PATH', got "
                                          f"{value!r}")


class CcxtExecutor(Executor):
    """Live orders on any ccxt exchange (ccxt.pro), with reports from its user-data stream.

    **Sending.** Orders go out on the run's event loop, in the order the strategy made them,
    each with its client order id (``newClientOrderId`` on Binance), so the exchange itself
    refuses a duplicate. Where the exchange has ``createOrders`` (Binance USDT-M), orders
    decided together go in batches of up to ``batch`` orders. ccxt's rate limiter spaces the
    requests. Limit (GTC, IOC, FOK, post-only), market, stop and stop-limit orders,
    reduce-only and hedge-mode ``positionSide`` map to ccxt's unified parameters.

    ``placement = "smart"`` (seed 000) sends a GTC limit order as post-only when its price is
    on its own side of the spread (a buy below the best ask), and as IOC when it would cross,
    so a grid order is a maker or trades at once, never a surprise taker resting half-filled.

    **Retrying without duplicates.** A request that fails on the network (timeout, 5xx, a
    dropped connection, 429/418 with ``Retry-After``) is retried with capped exponential
    backoff and jitter, up to ``retries`` times — and before each retry of a create the order
    is looked up by its client order id: if the exchange took it, the order is adopted, not
    sent twice. An order still in doubt after the retries is looked up again on every poll
    until the exchange answers. Refusals (insufficient balance, post-only would cross, min
    notional, price or lot filter) become :class:`gridkit.Rejected` reports with the
    exchange's message, which the strategy sees in ``on_rejected``.

    **Hearing back.** Fills come from ``watch_my_trades`` (one report per exchange trade,
    de-duplicated by trade id, with its real price, fee and fee currency), order states from
    ``watch_orders``. While that user-data stream is down, and every ``poll`` seconds anyway
    as a safety net, open orders and recent trades are fetched over REST
    (``fetch_open_orders``, ``fetch_my_trades``, ``fetch_order``) and go through the same
    de-duplication. A terminal state (cancelled, expired) is reported only after every fill
    the exchange counted for the order.

    **Perpetuals.** Every ``funding_poll`` seconds the funding the exchange booked
    (``fetch_funding_history``) comes back as :class:`gridkit.FundingPaid` reports, one per
    record, so the account's wallet follows the exchange's.

    **Starting.** ``setup`` loads the markets and the balance: an exchange that cannot be
    reached, or refuses the keys, stops the run with exit status 3 before anything is sent.
    :meth:`reconcile` compares the journal with the exchange (see ``[live]`` in
    pipeline.toml). API keys come from ``keys``: ``env``, ``keyring`` or ``file:PATH`` (an
    encrypted file), never from pipeline.toml.
    """

    name = "ccxt"
    live = True

    @frozen
    class Config:
        exchange: str = option(doc="ccxt exchange id, e.g. 'binance' or 'binanceusdm'.")
        keys: str = option("env", doc="Where the API keys come from: env, keyring or "
                                      "file:PATH (encrypted).", validator=_check_keys)
        placement: Literal["as-is", "smart"] = option(
            "as-is", doc="as-is, or smart: post-only when passive, IOC when it would cross.")
        batch: int = option(5, doc="Orders per createOrders request where the exchange has "
                                   "it (1: one request per order).", validator=at_least(1))
        retries: int = option(6, doc="Retries of a request that failed on the network.",
                              validator=non_negative())
        backoff: float = option(0.5, doc="Seconds before the first retry; doubled each time.",
                                validator=non_negative())
        max_backoff: float = option(30.0, doc="Longest wait between retries, in seconds.",
                                    validator=positive())
        poll: float = option(5.0, doc="Seconds between REST checks of open orders and "
                                      "trades (the fallback while the user stream is down).",
                             validator=positive())
        timeout: float = option(10.0, doc="Seconds before a request times out.",
                                validator=positive())
        funding_poll: float = option(60.0, doc="Perpetuals: seconds between looks at the "
                                               "funding the exchange booked.",
                                     validator=positive())
        url: str | None = option(None, doc="Base URL replacing the host of every API URL "
                                           "(a local exchange, a proxy).")
        urls: dict[str, Any] = option(factory=dict, doc="Entries merged into the exchange's "
                                                        "``urls['api']``.")
        options: dict[str, Any] = option(factory=dict, doc="ccxt exchange options to set.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.ex: Any = None
        self.aio: Any = None
        self.mode = ""
        self.quote = ""
        self.orders: dict[str, _Tracked] = {}
        self.by_xid: dict[str, str] = {}
        self.out: dict[str, list[Any]] = {}
        self.outbox: list[tuple[Order, str]] = []
        self.cancels: list[tuple[str, str]] = []
        self.flusher: Any = None
        self.doubt: set[str] = set()
        #: Why the user-data stream is down, or None while it is up (trading pauses).
        self.down: str | None = None
        self.balances: dict[str, float] = {}
        #: Open orders on the exchange that this run did not send: (symbol, client id, id).
        self.unknown: list[tuple[str, str, str]] = []
        self.counts = {"sent": 0, "batches": 0, "retries": 0, "adopted_after_retry": 0,
                       "rejected": 0, "fills": 0, "cancels": 0, "polls": 0,
                       "stream_errors": 0, "unknown_orders": 0, "unknown_cancelled": 0,
                       "fills_while_away": 0, "resent": 0}
        self.last_error: str | None = None
        self._symbols: tuple[str, ...] = ()
        self._batch_ok = True
        #: Perpetuals: funding records asked for since (per symbol), and those reported.
        self._funding_since: dict[str, int] = {}
        self._funding_seen: set[str] = set()
        self._market_tables: dict[str, Any] = {}
        self._since: dict[str, int] = {}

    # --- life cycle -----------------------------------------------------------------------

    def validate(self, run: RunInfo) -> None:
        if run.mode != "live":
            raise ConfigError(f"executor 'ccxt' sends real orders: it runs only with mode = "
                              f"\"live\" (this pipeline's mode is {run.mode!r}; paper runs use "
                              f"the 'paper' executor)")
        import ccxt.pro

        if self.config.exchange not in ccxt.pro.exchanges:
            raise ConfigError(f"ccxt.pro has no exchange {self.config.exchange!r}")

    def setup(self, run: RunInfo) -> None:
        from gridkit.plugins.ccxt_sources import _Tasks

        self.mode = run.mode
        self._symbols = run.symbols or (run.symbol,)
        self._market_tables = dict(run.markets)
        self.quote = run.symbol.split("/")[-1].split(":")[0]
        self.aio = _Tasks(run.loop)
        self.aio.run(self._open())
        have = self.balances.get(self.quote, 0.0)
        if have < run.capital:
            # Said before the first order: the grid is sized on capital, and what the wallet
            # cannot pay for the exchange will refuse (each refusal is a report too).
            log.warning("%s holds %.8g %s, less than the pipeline's capital %.8g: orders "
                        "beyond it will be refused", self.config.exchange, have, self.quote,
                        run.capital, extra={"event": "balance_short", "balance": have,
                                            "capital": run.capital})
            self.counts["balance_short"] = 1

    def close(self) -> None:
        aio, self.aio = self.aio, None
        if aio is None:
            return
        try:
            if not aio.loop.is_closed() and not aio.loop.is_running():
                if self.ex is not None and (self.outbox or self.cancels or (
                        self.flusher is not None and not self.flusher.done())):
                    # Requests the journal holds as sent go out before the run closes (a
                    # resume finds them by client id), as far as 10 seconds allow.
                    self._kick()
                    with contextlib.suppress(Exception):
                        aio.run(asyncio.wait_for(asyncio.shield(self.flusher), 10))
                for task in list(aio.pending()):
                    task.cancel()
                if self.ex is not None:
                    aio.run(asyncio.wait_for(self._close_exchange(), 5))
        finally:
            aio.close()

    def settle(self, timeout: float) -> None:
        """Send what is queued, then one REST look at open orders, recent trades and funding:
        an order answered by an immediate fill, or a fill still on its way over the stream,
        is in :meth:`reports` before the run's summary."""
        if self.aio is None or self.ex is None:
            return
        import ccxt.pro

        async def last_look() -> None:
            if self.outbox or self.cancels:
                self._kick()
            if self.flusher is not None and not self.flusher.done():
                await asyncio.shield(self.flusher)
            await self._poll_once()
            try:
                await self._poll_funding()
            except ccxt.pro.BaseError as err:
                self._note(err)

        try:
            self.aio.run(asyncio.wait_for(last_look(), timeout))
        except (asyncio.TimeoutError, ccxt.pro.BaseError) as err:
            # The exchange did not answer in time: a resume finds the rest by client id.
            log.warning("%s: no last look at the exchange before stopping (%s); a resume "
                        "reconciles what it missed", self.config.exchange,
                        type(err).__name__, extra={"event": "settle_failed"})

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "in_doubt": len(self.doubt), "down": self.down,
                "last_error": self.last_error,
                "unknown": [f"{s} {cid or xid}" for s, cid, xid in self.unknown]}

    def snapshot(self) -> Any:
        # What the exchange said about orders is in the ledger; this keeps where polling left
        # off, and the funding records the engine has booked (not those still waiting in
        # ``out``: a restart must ask for them again).
        waiting = {r.id for got in self.out.values() for r in got if type(r) is FundingPaid}
        return {"since": dict(self._since), "funding_since": dict(self._funding_since),
                "funding_seen": sorted(self._funding_seen - waiting)}

    def restore(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        self._since = dict(state.get("since", {}))
        self._funding_since.update(state.get("funding_since", {}))
        self._funding_seen = set(state.get("funding_seen", ()))

    async def _open(self) -> None:
        import ccxt.pro

        from gridkit.credentials import load_credentials
        from gridkit.plugins.ccxt_sources import make_exchange, one_line

        c = self.config
        creds = load_credentials(c.keys, c.exchange)
        self.ex = ex = make_exchange(ccxt.pro, c.exchange, self._symbols[0], url=c.url,
                                     urls=c.urls, options=c.options,
                                     timeout_ms=int(c.timeout * 1000))
        for k, v in creds.as_ccxt().items():
            setattr(ex, k, v)
        try:
            await ex.load_markets()
            missing = [s for s in self._symbols if s not in ex.markets]
            if missing:
                raise ConfigError(f"{c.exchange} has no market {missing[0]!r}")
            from gridkit.trading.markets import markets_from_ccxt

            self.markets = markets_from_ccxt({s: ex.markets[s] for s in self._symbols},
                                             f"{c.exchange} markets")
            await self._refresh_balance()
        except GridkitError:
            await self._close_exchange()
            raise
        except ccxt.pro.AuthenticationError as err:
            await self._close_exchange()
            raise ExchangeUnreachable(f"{c.exchange} refused the API keys: "
                                      f"{type(err).__name__}: {one_line(err)}") from None
        except ccxt.pro.BaseError as err:
            await self._close_exchange()
            raise ExchangeUnreachable(f"{c.exchange} could not be reached: "
                                      f"{type(err).__name__}: {one_line(err)}") from None
        now = _now()
        for s in self._symbols:
            self.out.setdefault(s, [])
            if self.markets[s].kind != "spot":  # funding from the start of the run on
                self._funding_since[s] = now
                await self._set_market(s)
        self.aio.spawn(self._watch("orders"))
        self.aio.spawn(self._watch("trades"))
        self.aio.spawn(self._poll_loop())
        if self._funding_since:
            self.aio.spawn(self._funding_loop())

    async def _set_market(self, symbol: str) -> None:
        """A perpetual's ``[market] leverage`` and ``position_mode`` set on the exchange, so
        its margin and liquidation are the ones the account computes. An exchange that
        refuses (open positions in the other mode, a leverage above its bracket) stops the run
        with its reason, before any order."""
        import ccxt.pro

        m = self._market_tables.get(symbol)
        if m is None:
            return
        from gridkit.plugins.ccxt_sources import one_line

        ex = self.ex
        try:
            if ex.has.get("setPositionMode"):
                try:
                    await self._retrying(ex.set_position_mode, m.position_mode == "hedge",
                                         symbol)
                except ccxt.pro.ExchangeError as err:
                    if "-4059" not in str(err) and "No need to change" not in str(err):
                        raise  # Binance's answer when the mode is already the one asked
            if ex.has.get("setLeverage"):
                await self._retrying(ex.set_leverage, int(m.leverage), symbol)
        except ccxt.pro.BaseError as err:
            await self._close_exchange()
            raise ConfigError(f"{self.config.exchange} refused {symbol}'s [market] leverage "
                              f"{m.leverage:g} / position_mode {m.position_mode}: "
                              f"{one_line(err)}") from None

    async def _close_exchange(self) -> None:
        ex = self.ex
        if ex is not None:
            with contextlib.suppress(Exception):  # closing must not hide the run's result
                await ex.close()

    async def _refresh_balance(self) -> None:
        bal = await self.ex.fetch_balance()
        total = bal.get("total") or {}
        self.balances = {k: float(v) for k, v in total.items() if v}

    # --- the Executor contract ------------------------------------------------------------

    def submit(self, order: Order, ctx: Context) -> str | None:
        symbol = order.symbol or ctx.symbol
        if symbol not in self.out:
            return f"{symbol} is not a market of this run"
        m = self.markets.get(symbol)
        if m is not None:
            # The exchange would round (ccxt truncates to its precision) and the journal would
            # disagree with it: an order off the steps is refused, not silently changed.
            from gridkit.trading.markets import price_on_tick, qty_on_lot

            if not qty_on_lot(order.qty, m):
                return (f"quantity {order.qty!r} is off the lot step {m.lot:g} (the "
                        f"exchange-rules risk check rounds it)")
            if order.kind != "market" and not price_on_tick(order.price, m):
                return (f"price {order.price!r} is off the tick {m.tick:g} (the exchange-rules "
                        f"risk check rounds it)")
        self.orders[order.id] = _Tracked(order, symbol)
        self.outbox.append((order, symbol))
        self._kick()
        return None

    def cancel(self, order_id: str, ctx: Context) -> str | None:
        t = self.orders.get(order_id)
        if t is None or t.done:
            return "not open"
        self.cancels.append((order_id, t.symbol))
        self._kick()
        return None

    def reports(self, event: Any, symbol: str) -> list[Any]:
        got = self.out.get(symbol)
        if not got:
            return []
        self.out[symbol] = []
        return got

    def open_orders(self) -> list[Order]:
        return [t.order for t in self.orders.values() if not t.done]

    # --- reconciliation -------------------------------------------------------------------

    def reconcile(self, orders: Sequence[Order], filled: Mapping[str, float],
                  on_start: str = "resume", unknown: str = "report") -> list[Order]:
        """Bring the run in line with the exchange at start: ``orders`` are what the journal
        holds open and ``filled`` how much of each it knows filled. Each is looked up by its
        client order id; what happened while the bot was away comes back as reports. Returns
        the orders the exchange never got. Open orders of the run's symbols that the journal
        does not know are reported (``unknown_orders``), and cancelled if ``unknown`` is
        ``cancel`` or ``on_start`` is ``flatten``; with ``refuse`` they stop the run."""
        return self.aio.run(self._reconcile(orders, filled, on_start, unknown))  # type: ignore[no-any-return]

    async def _reconcile(self, orders: Sequence[Order], filled: Mapping[str, float],
                         on_start: str, unknown: str) -> list[Order]:
        import ccxt.pro

        never: list[Order] = []
        for order in orders:
            symbol = order.symbol or self._symbols[0]
            t = self.orders[order.id] = _Tracked(order, symbol)
            t.filled = filled.get(order.id, 0.0)
            # Accepted once: the journal has it if the order is in ``filled``.
            t.reported_open = order.id in filled
            try:
                info = await self._retrying(self._fetch_by_cid, order.id, symbol)
            except ccxt.pro.OrderNotFound:
                del self.orders[order.id]
                never.append(order)
                continue
            await self._adopt(t, info, away=True)
        known = {t.xid for t in self.orders.values() if t.xid}
        for symbol in self._symbols:
            for o in await self._retrying(self.ex.fetch_open_orders, symbol):
                xid, cid = str(o.get("id")), o.get("clientOrderId") or ""
                if xid in known:
                    continue
                self.unknown.append((symbol, cid, xid))
                self.counts["unknown_orders"] += 1
                log.warning("unknown order on the exchange: %s %s %s %s at %s (client id %s)",
                            symbol, o.get("side"), o.get("amount"), o.get("type"),
                            o.get("price"), cid or "-",
                            extra={"symbol": symbol, "order_id": cid, "exchange_id": xid})
        if self.unknown and on_start == "refuse":
            s, cid, xid = self.unknown[0]
            raise GridkitError(f"refusing to start: {len(self.unknown)} open order(s) on "
                               f"{self.config.exchange} that the journal does not know (first: "
                               f"{s} {cid or xid}); [live] on_start = \"refuse\"")
        if self.unknown and (unknown == "cancel" or on_start == "flatten"):
            for s, _cid, xid in self.unknown:
                try:
                    await self._retrying(self.ex.cancel_order, xid, s)
                    self.counts["unknown_cancelled"] += 1
                except ccxt.pro.OrderNotFound:
                    pass
        return never

    async def _adopt(self, t: _Tracked, info: Mapping[str, Any], away: bool = False) -> None:
        """Take over an order the exchange has: its fills since we last knew, and its state."""
        t.xid = str(info.get("id"))
        self.by_xid[t.xid] = t.order.id
        if not t.reported_open:
            t.reported_open = True
            self._emit(t.symbol, Accepted(t.order.id, _ts(info)))
        got = float(info.get("filled") or 0.0)
        before = self.counts["fills"]
        for trade in info.get("trades") or ():  # a FULL create response carries its fills
            if trade.get("id") is not None:
                self._on_trade(dict(trade, order=t.xid))
        if got > t.filled + _RESIDUE * t.order.qty:
            for trade in await self._retrying(self.ex.fetch_my_trades, t.symbol, None, None,
                                              {"orderId": t.xid}):
                self._on_trade(trade)
        if away:
            self.counts["fills_while_away"] += self.counts["fills"] - before
        self._on_order(info)

    # --- sending --------------------------------------------------------------------------

    def _kick(self) -> None:
        if self.flusher is None or self.flusher.done():
            self.flusher = self.aio.spawn(self._flush())

    async def _flush(self) -> None:
        while self.outbox or self.cancels:
            orders, self.outbox = self.outbox, []
            cancels, self.cancels = self.cancels, []
            batchable = (self.config.batch > 1 and self._batch_ok
                         and self.ex.has.get("createOrders"))
            by_symbol: dict[str, list[Order]] = {}
            for order, symbol in orders:
                by_symbol.setdefault(symbol, []).append(order)
            for symbol, group in by_symbol.items():
                if batchable and len(group) > 1:
                    for i in range(0, len(group), self.config.batch):
                        await self._create_batch(group[i:i + self.config.batch], symbol)
                else:
                    for order in group:
                        await self._create(order, symbol)
            for oid, symbol in cancels:
                await self._cancel(oid, symbol)

    def _request(self, order: Order, symbol: str) -> dict[str, Any]:
        """ccxt's unified create-order arguments for ``order``."""
        kind, tif, params = order.kind, order.tif, {"clientOrderId": order.id}
        if self.config.placement == "smart" and kind == "limit" and tif == "GTC":
            tif = "IOC" if self._crosses(order, symbol) else "PO"
        ctype = "limit"
        if kind == "market":
            ctype = "market"
        elif kind in ("stop", "stop_limit"):
            ctype = "market" if kind == "stop" else "limit"
            params["triggerPrice"] = order.stop_price
        if kind != "market":
            if tif == "PO":
                params["postOnly"] = True
            elif tif in ("IOC", "FOK"):
                params["timeInForce"] = tif
        if order.reduce_only:
            params["reduceOnly"] = True
        if order.position_side:
            params["positionSide"] = order.position_side.upper()
        price = None if ctype == "market" else order.price
        amount = order.qty
        m = self.markets.get(symbol)
        if m is not None:
            from gridkit.trading.markets import round_qty

            # On the lot within a float's noise (submit refused it otherwise), but ccxt
            # truncates: 0.007919999999999983 would go as 0.00791, a step less than the
            # journal's, and the order would stay open here once the exchange filled it.
            amount = round_qty(order.qty, m)
        return {"symbol": symbol, "type": ctype, "side": order.side, "amount": amount,
                "price": price, "params": params}

    def _crosses(self, order: Order, symbol: str) -> bool:
        book = getattr(self.ex, "orderbooks", {}).get(symbol) if self.ex else None
        ticker = (getattr(self.ex, "tickers", None) or {}).get(symbol) or {}
        bid = ask = math.nan
        if book is not None and book.get("bids") and book.get("asks"):
            bid, ask = book["bids"][0][0], book["asks"][0][0]
        elif ticker:
            bid, ask = ticker.get("bid") or math.nan, ticker.get("ask") or math.nan
        if order.side == "buy":
            return not math.isnan(ask) and order.price >= ask
        return not math.isnan(bid) and order.price <= bid

    async def _create(self, order: Order, symbol: str) -> None:
        import ccxt.pro

        req = self._request(order, symbol)
        self.counts["sent"] += 1
        try:
            info = await self._retrying(
                self.ex.create_order, req["symbol"], req["type"], req["side"],
                req["amount"], req["price"], req["params"], lookup=(order.id, symbol))
        except ccxt.pro.NetworkError as err:
            self._in_doubt(order.id, err)
            return
        except ccxt.pro.BaseError as err:
            self._refused(order, symbol, err)
            return
        await self._adopt(self.orders[order.id], info)

    async def _create_batch(self, group: list[Order], symbol: str) -> None:
        import ccxt.pro

        reqs = [self._request(o, symbol) for o in group]
        try:
            got = await self.ex.create_orders(
                [{k: r[k] for k in ("symbol", "type", "side", "amount", "price", "params")}
                 for r in reqs])
        except ccxt.pro.NetworkError:
            # Some of the batch may have been taken: one by one, each looked up first.
            for order in group:
                await self._create(order, symbol)
            return
        except ccxt.pro.NotSupported:
            # ccxt lists createOrders for the exchange, not for this market (Binance spot).
            self._batch_ok = False
            for order in group:
                await self._create(order, symbol)
            return
        except ccxt.pro.BaseError as err:
            for order in group:
                self._refused(order, symbol, err)
            return
        self.counts["sent"] += len(group)
        self.counts["batches"] += 1
        # Answers are matched by client order id: ccxt does not keep a refused entry in its
        # place, so the refusals (which carry no id) go to the orders left, in order.
        by_cid = {o.get("clientOrderId"): o for o in got if o.get("clientOrderId")}
        refusals = [o for o in got if not o.get("clientOrderId")]
        for order in group:
            info = by_cid.get(order.id)
            if info is not None and info.get("id") is not None:
                await self._adopt(self.orders[order.id], info)
                continue
            err = refusals.pop(0) if refusals else {}
            msg = ((err.get("info") or {}).get("msg") if isinstance(err, Mapping) else None)
            if msg is None and not refusals and not err:
                # No answer for it at all: never guessed — looked up by its client id.
                self._in_doubt(order.id, ccxt.pro.NetworkError("no answer in the batch"))
                continue
            self._refused(order, symbol, ccxt.pro.InvalidOrder(msg or "refused by the "
                                                                      "exchange"))

    async def _cancel(self, oid: str, symbol: str) -> None:
        import ccxt.pro

        t = self.orders.get(oid)
        if t is None or t.done:
            return
        self.counts["cancels"] += 1
        try:
            info = await self._retrying(self.ex.cancel_order, t.xid or None, symbol,
                                        {"clientOrderId": oid})
        except ccxt.pro.OrderNotFound:
            # Filled or ended meanwhile: what the exchange has is the truth.
            try:
                info = await self._retrying(self._fetch_by_cid, oid, symbol)
            except ccxt.pro.OrderNotFound:
                if oid in self.doubt:
                    return  # never reached the exchange; the poll settles it
                self._emit(symbol, Cancelled(oid, _now(), "requested"))
                t.done = True
                return
            except ccxt.pro.BaseError as err:
                self._note(err)
                return
            await self._adopt(t, info)
            return
        except ccxt.pro.BaseError as err:
            self._note(err)  # still open; the strategy may ask again
            return
        await self._adopt(t, info)
        if not t.done and (info.get("status") in _DONE or not info.get("status")):
            self._finish(t, Cancelled(oid, _ts(info), "requested"),
                         float(info.get("filled") or t.filled))

    async def _fetch_by_cid(self, cid: str, symbol: str) -> Any:
        return await self.ex.fetch_order(None, symbol, {"clientOrderId": cid})

    async def _retrying(self, fn: Any, *args: Any, lookup: tuple[str, str] | None = None
                        ) -> Any:
        """``fn(*args)``, retried on network errors with capped exponential backoff and
        jitter (``Retry-After`` honoured). With ``lookup`` (a create), each retry first asks
        the exchange for the order by its client id, and adopts it if it was taken."""
        import ccxt.pro

        from gridkit.logs import log_reconnect
        from gridkit.plugins.ccxt_sources import _retry_after

        c = self.config
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except ccxt.pro.NetworkError as err:
                attempt += 1
                self._note(err)
                if attempt > c.retries:
                    raise
                self.counts["retries"] += 1
                wait = min(c.backoff * 2 ** (attempt - 1), c.max_backoff)
                wait = max(wait * (0.5 + random.random() / 2), _retry_after(self.ex))
                log_reconnect(f"{c.exchange} {getattr(fn, '__name__', 'request')}", attempt,
                              wait, err)
                await asyncio.sleep(wait)
                if lookup is not None:
                    try:
                        found = await self._fetch_by_cid(*lookup)
                    except ccxt.pro.OrderNotFound:
                        continue  # not taken: sending it again cannot duplicate it
                    except ccxt.pro.NetworkError:
                        continue  # the create retries; the exchange refuses a duplicate id
                    self.counts["adopted_after_retry"] += 1
                    return found

    def _in_doubt(self, oid: str, err: BaseException) -> None:
        """The exchange did not answer: the order may or may not be there. Never guessed:
        the poll asks by client id until it knows."""
        self.doubt.add(oid)
        log.warning("order %s in doubt after %d retries: %s", oid, self.config.retries,
                    self.last_error, extra={"order_id": oid})

    def _refused(self, order: Order, symbol: str, err: BaseException) -> None:
        from gridkit.plugins.ccxt_sources import one_line

        self.counts["rejected"] += 1
        t = self.orders.get(order.id)
        if t is not None:
            t.done = True
        reason = _reason(err, one_line, self.config.exchange)
        self._emit(symbol, Rejected(order.id, _now(), reason, self.name))

    def _note(self, err: BaseException) -> None:
        from gridkit.plugins.ccxt_sources import one_line

        self.last_error = f"{type(err).__name__}: {one_line(err, 160)}"

    # --- hearing back ---------------------------------------------------------------------

    def _emit(self, symbol: str, report: Any) -> None:
        self.out.setdefault(symbol, []).append(report)

    def _tracked(self, info: Mapping[str, Any]) -> _Tracked | None:
        cid = info.get("clientOrderId")
        if cid and cid in self.orders:
            return self.orders[cid]
        xid = info.get("id") if "order" not in info else info.get("order")
        oid = self.by_xid.get(str(xid)) if xid is not None else None
        return self.orders.get(oid) if oid is not None else None

    def _on_trade(self, trade: Mapping[str, Any]) -> None:
        """One exchange trade of ours: a Fill report, once."""
        xid = str(trade.get("order"))
        oid = self.by_xid.get(xid)
        if oid is None:
            info = trade.get("info") or {}
            cid = info.get("c") or (info.get("o") or {}).get("c") \
                if isinstance(info, Mapping) else None
            oid = cid if cid in self.orders else None
        t = self.orders.get(oid) if oid is not None else None
        if t is None:
            return
        tid = str(trade.get("id"))
        if tid in t.trades:
            return
        t.trades.add(tid)
        if t.xid is None:
            t.xid = xid
            self.by_xid[xid] = t.order.id
        qty = float(trade["amount"])
        t.filled += qty
        remaining = max(t.order.qty - t.filled, 0.0)
        if remaining <= _RESIDUE * t.order.qty:
            remaining = 0.0
        fee = trade.get("fee") or {}
        currency = fee.get("currency") or ""
        ts = _ts(trade)
        if not t.reported_open:
            t.reported_open = True
            self._emit(t.symbol, Accepted(t.order.id, ts))
        self._emit(t.symbol, Fill(
            t.order.id, ts, t.order.side, qty, float(trade["price"]),
            float(fee.get("cost") or 0.0),
            "maker" if trade.get("takerOrMaker") == "maker" else "taker", t.order.tag,
            t.order.symbol, remaining, "" if currency == self.quote else currency))
        self.counts["fills"] += 1
        self._since[t.symbol] = max(self._since.get(t.symbol, 0), ts)
        if remaining == 0.0:
            t.done = True
        elif t.terminal is not None and t.filled >= t.terminal[1] - _RESIDUE * t.order.qty:
            report, _ = t.terminal
            t.terminal = None
            t.done = True
            self._emit(t.symbol, report)

    def _on_order(self, info: Mapping[str, Any]) -> None:
        """An order update (stream or REST): Accepted once, then its end once."""
        t = self._tracked(info)
        if t is None or t.done:
            return
        if t.xid is None and info.get("id") is not None:
            t.xid = str(info["id"])
            self.by_xid[t.xid] = t.order.id
        self.doubt.discard(t.order.id)
        status = info.get("status")
        ts = _ts(info)
        if not t.reported_open and status is not None and status != "rejected":
            t.reported_open = True
            self._emit(t.symbol, Accepted(t.order.id, ts))
        if status in ("canceled", "cancelled"):
            self._finish(t, Cancelled(t.order.id, ts, "requested"), float(info.get("filled") or 0))
        elif status == "expired":
            self._finish(t, Expired(t.order.id, ts, "expired by the exchange"),
                         float(info.get("filled") or 0))
        elif status == "rejected":
            t.done = True
            self._emit(t.symbol, Rejected(t.order.id, ts, "rejected by the exchange",
                                          self.name))

    def _finish(self, t: _Tracked, report: Any, exchange_filled: float) -> None:
        if t.done:
            return
        if exchange_filled > t.filled + _RESIDUE * t.order.qty:
            t.terminal = (report, exchange_filled)  # after the fills still on their way
            self.aio.spawn(self._catch_up(t))
            return
        t.done = True
        self._emit(t.symbol, report)

    async def _catch_up(self, t: _Tracked) -> None:
        """Fetch the trades of an order that ended with fills we have not heard of yet."""
        await asyncio.sleep(0.5)  # the stream usually brings them first
        if t.terminal is None or t.done:
            return
        try:
            for trade in await self._retrying(self.ex.fetch_my_trades, t.symbol, None, None,
                                              {"orderId": t.xid}):
                self._on_trade(trade)
        except Exception as err:  # the next poll tries again
            self._note(err)

    async def _watch(self, what: str) -> None:
        """The user-data stream: ``watch_orders`` or ``watch_my_trades``, reconnecting
        forever (capped backoff, jitter). While it is down, :attr:`down` says why — the
        engine pauses trading — and the poll loop is the fallback; when it is back, one poll
        picks up what was missed."""
        from gridkit.logs import log_reconnect
        from gridkit.plugins.ccxt_sources import one_line

        c = self.config
        failures = 0
        fn = self.ex.watch_orders if what == "orders" else self.ex.watch_my_trades
        while True:
            task = asyncio.ensure_future(fn())
            try:
                if self.down is not None:
                    # A watch that has not failed within a moment has its connection back.
                    done, _ = await asyncio.wait({task}, timeout=2.0)
                    if not done:
                        log.warning("user-data stream back (%s)", what,
                                    extra={"event": "stream_back", "stream": what})
                        self.down = None
                        failures = 0
                        self.aio.spawn(self._poll_once())  # what was missed meanwhile
                got = await task
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception as err:
                failures += 1
                self.counts["stream_errors"] += 1
                self.down = (f"{c.exchange} user-data stream down: {type(err).__name__}: "
                             f"{one_line(err, 120)}")
                wait = min(c.backoff * 2 ** min(failures - 1, 16), c.max_backoff)
                wait *= 0.5 + random.random() / 2
                log_reconnect(f"{c.exchange} user-data stream ({what})", failures, wait, err)
                await asyncio.sleep(wait)
                continue
            for item in got:
                if what == "orders":
                    self._on_order(item)
                else:
                    self._on_trade(item)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll)
            await self._poll_once()

    async def _poll_once(self) -> None:
        """Open orders, recent trades and orders in doubt over REST, through the same
        de-duplication as the stream."""
        import ccxt.pro

        self.counts["polls"] += 1
        try:
            for oid in list(self.doubt):
                t = self.orders.get(oid)
                if t is None:
                    self.doubt.discard(oid)
                    continue
                try:
                    info = await self._fetch_by_cid(oid, t.symbol)
                except ccxt.pro.OrderNotFound:
                    # Never taken: the order goes again with the same client id (the
                    # exchange refuses a duplicate if it did take it in between).
                    self.doubt.discard(oid)
                    self.counts["resent"] += 1
                    await self._create(t.order, t.symbol)
                    continue
                self.doubt.discard(oid)
                await self._adopt(t, info)
            live = [t for t in self.orders.values() if not t.done and t.xid]
            for symbol in {t.symbol for t in live}:
                # A minute of overlap: a trade the stream lost can be older than the newest
                # one it delivered (trade ids de-duplicate the rest).
                since = self._since.get(symbol)
                since = since - 60_000 if since else None
                for trade in await self.ex.fetch_my_trades(symbol, since):
                    self._on_trade(trade)
                open_now = {}
                for o in await self.ex.fetch_open_orders(symbol):
                    open_now[str(o.get("id"))] = o
                for t in live:
                    if t.symbol != symbol or t.done:
                        continue
                    info = open_now.get(t.xid or "")
                    if info is None:  # ended: how, and with which fills
                        await self._adopt(t, await self.ex.fetch_order(t.xid, symbol))
                    elif float(info.get("filled") or 0.0) > t.filled + _RESIDUE * t.order.qty:
                        await self._adopt(t, info)  # fills we have not heard of
        except ccxt.pro.BaseError as err:
            self._note(err)

    async def _funding_loop(self) -> None:
        import ccxt.pro

        while True:
            await asyncio.sleep(self.config.funding_poll)
            try:
                await self._poll_funding()
            except ccxt.pro.BaseError as err:
                self._note(err)

    async def _poll_funding(self) -> None:
        """Perpetuals: the funding the exchange booked since the last look, one
        :class:`gridkit.FundingPaid` per record (de-duplicated by its id)."""
        if not self._funding_since or not self.ex.has.get("fetchFundingHistory"):
            return
        for symbol, since in list(self._funding_since.items()):
            for rec in await self.ex.fetch_funding_history(symbol, since):
                rid = str(rec.get("id"))
                if rid in self._funding_seen:
                    continue
                self._funding_seen.add(rid)
                ts = int(rec.get("timestamp") or _now())
                self._emit(symbol, FundingPaid(ts, symbol, float(rec["amount"]), rid))
                self._funding_since[symbol] = max(self._funding_since[symbol], ts)


def _ts(info: Mapping[str, Any]) -> int:
    ts = info.get("timestamp") or info.get("lastUpdateTimestamp") or info.get("lastTradeTimestamp")
    return int(ts) if ts else _now()


def _now() -> int:
    return int(time.time() * 1000)


def _reason(err: BaseException, one_line: Any, exchange: str) -> str:
    """A stable refusal reason (the summary groups by it): Binance's ``msg`` when ccxt's
    message carries the exchange's JSON body (``binance {"code":..,"msg":..}``), else the
    message without the exchange id ccxt puts first."""
    import json

    text = one_line(err, 200)
    body = text[text.find("{"):] if "{" in text else ""
    try:
        return str(json.loads(body)["msg"])
    except (ValueError, KeyError, TypeError):
        return text.removeprefix(f"{exchange} ")
