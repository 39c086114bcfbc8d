"""What the simulated executors share: the checks of a request, the balance an open order
holds, OCO groups, fills in part or in full, and the handing over of reports."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import Any, Literal

import attrs
from attrs import frozen

from gridkit.core.components import Executor
from gridkit.core.config import fee_rate, option
from gridkit.core.errors import ConfigError
from gridkit.core.types import (
    Accepted,
    Cancelled,
    Fill,
    Order,
)
from gridkit.runtime.context import Context, RunInfo
from gridkit.trading import ashare
from gridkit.trading.fills import (
    fee,
    stop_triggered,
)

_INF = math.inf
_NONE: list[Any] = []  # handed out when there is nothing to report; never appended to


class _Book:
    """One symbol's resting orders: heaps of (key, seq, id), best first — buys by -price, sells
    by price, sell stops by -stop (highest first), buy stops by stop (lowest first) — and the
    orders queued since its last bar."""

    __slots__ = ("buy_stops", "buys", "queued", "sell_stops", "sells")
    #: The heaps of (key, seq, id), which keep closed orders until they are compacted.
    HEAPS = ("buys", "sells", "sell_stops", "buy_stops")

    def __init__(self) -> None:
        self.queued: dict[str, Order] = {}
        self.buys: list[tuple[float, int, str]] = []
        self.sells: list[tuple[float, int, str]] = []
        self.sell_stops: list[tuple[float, int, str]] = []
        self.buy_stops: list[tuple[float, int, str]] = []

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.queued, self.buys, self.sells, self.sell_stops, self.buy_stops)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.queued, self.buys, self.sells, self.sell_stops, self.buy_stops = state


class SimulatedBase(Executor):
    """What the simulated executors share: request checks, held balances, OCO groups, reports.

    A subclass keeps one book per symbol (:attr:`BOOK`, with a ``queued`` dict of the orders
    not yet live and the heaps named in its ``HEAPS``), matches in :meth:`reports` and reports
    fills through :meth:`_fill`.
    """

    #: The per-symbol book class.
    BOOK: type[_Book] = _Book

    @frozen
    class Config:
        maker_fee: float = option(0.001, doc="Fee rate of limit fills.", validator=fee_rate())
        taker_fee: float = option(0.001, doc="Fee rate of market fills.",
                                  validator=fee_rate())
        check_balance: bool = option(
            True, doc="Refuse orders that free cash or base cannot cover, as an exchange would."
        )
        fees: Literal["rate", "a-share"] = option(
            "rate", doc="rate: price * qty * maker_fee (or taker_fee); a-share: China A-share "
                        "fees at the fill's date, maker_fee/taker_fee being the broker's "
                        "commission rate (5 CNY minimum), plus stamp duty on sells and the "
                        "transfer fee (gridkit.trading.ashare).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._orders: dict[str, Order] = {}  # every open order, live or queued
        self._books: dict[str, Any] = {}  # per symbol
        self._seq = 0
        # order id -> (the per-symbol reserve it holds from, amount, base it brings)
        self._held: dict[str, tuple[dict[str, float], float, float]] = {}
        self._cash_held: dict[str, float] = {}  # per symbol: cash that open buys reserve
        self._base_held: dict[str, float] = {}  # per symbol: base that open sells reserve
        self._base_coming: dict[str, float] = {}  # per symbol: base queued market buys bring
        self._pending: list[Any] = []  # reports not yet handed over
        self._groups: dict[str, set[str]] = {}  # OCO group -> live member ids
        self._stale = 0  # heap entries of closed orders, not yet compacted
        self._ts = 0
        self.fills = 0
        self._exchanges: dict[str, str] = {}  # fees = "a-share": symbol -> SH / SZ

    def validate(self, run: RunInfo) -> None:
        problem = self.config.fees == "a-share" and ashare.symbols_problem(
            run.symbols or (run.symbol,), 'fees = "a-share"')
        if problem:
            raise ConfigError(problem)

    def _fee(self, side: str, symbol: str, price: float, qty: float, rate: float,
             ts: int) -> float:
        """The fee of a fill (DESIGN.md §6 rule 2), or with ``fees = "a-share"`` the A-share
        fee at ``ts``'s trading date (:func:`gridkit.trading.ashare.fee`)."""
        if self.config.fees != "a-share":
            return fee(price, qty, rate)
        exchange = self._exchanges.get(symbol)
        if exchange is None:
            exchange = self._exchanges[symbol] = ashare.parse_symbol(symbol).exchange
        return ashare.fee(side, price, qty, rate, ts, exchange)

    # --- requests ----------------------------------------------------------------------------

    def submit(self, order: Order, ctx: Context) -> str | None:
        if not 0 < order.qty < _INF:
            return f"quantity must be positive and finite, got {order.qty}"
        if order.kind in ("limit", "stop_limit") and not 0 < order.price < _INF:
            return f"limit price must be positive and finite, got {order.price}"
        if order.kind in ("stop", "stop_limit") and not 0 < order.stop_price < _INF:
            return f"stop price must be positive and finite, got {order.stop_price}"
        if order.id in self._orders:
            return f"duplicate client order id {order.id}"
        acct = ctx.account
        side = order.position_side
        pos = acct.positions.get(f"{order.symbol}:{side}" if side else order.symbol)
        if pos is None:
            if not side and f"{order.symbol}:long" in acct.positions:
                return "hedge mode: the order needs position_side 'long' or 'short'"
            pos = acct.position(order.symbol, side)
        if order.reduce_only and pos.kind != "spot" and (
                pos.qty == 0 or (pos.qty > 0) == (order.side == "buy")):
            return "reduce-only order would open or grow the position"
        if self.config.check_balance:
            refusal = self._reserve(order, ctx, pos)
            if refusal:
                return refusal
        self._orders[order.id] = order
        self._book(order.symbol).queued[order.id] = order
        if order.group:
            self._groups.setdefault(order.group, set()).add(order.id)
        self._pending.append(Accepted(order.id, _now(ctx, self._ts)))
        return None

    def _book(self, symbol: str) -> Any:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = self.BOOK()
        return book

    def _reserve(self, order: Order, ctx: Context, pos: Any) -> str | None:
        sym = order.symbol
        limit = order.kind in ("limit", "stop_limit")
        price = order.price if limit else (
            order.stop_price if order.kind == "stop" else pos.price)
        rate = self.config.maker_fee if limit else self.config.taker_fee
        if price != price:  # no mark yet: nothing to check against
            price = order.price
        if pos.kind != "spot":  # perpetual: margin at the position's leverage
            if order.reduce_only:
                return None
            need = price * order.qty * (1.0 / pos.leverage + rate)
            acct = ctx.account
            used = sum(self._cash_held.values())
            for p in acct.positions.values():
                if p.kind != "spot" and p.qty:
                    used += abs(p.qty) * p.price / p.leverage
            if need > acct.equity - used + 1e-9:
                return "insufficient margin"
            self._cash_held[sym] = self._cash_held.get(sym, 0.0) + need
            self._held[order.id] = (self._cash_held, need, 0.0)
            return None
        if order.side == "buy":
            cost = (price * order.qty * (1 + rate) if self.config.fees == "rate" else
                    price * order.qty + self._fee("buy", sym, price, order.qty, rate,
                                                  _now(ctx, self._ts)))
            free = ctx.account.cash - sum(self._cash_held.values())
            if cost > free + 1e-9:
                return "insufficient cash"
            self._cash_held[sym] = self._cash_held.get(sym, 0.0) + cost
            coming = order.qty if order.kind == "market" else 0.0
            self._held[order.id] = (self._cash_held, cost, coming)
            if coming:
                self._base_coming[sym] = self._base_coming.get(sym, 0.0) + coming
        else:
            free = (pos.qty + self._base_coming.get(sym, 0.0)
                    - self._base_held.get(sym, 0.0))
            if order.qty > free + 1e-12:
                return "insufficient base"
            self._base_held[sym] = self._base_held.get(sym, 0.0) + order.qty
            self._held[order.id] = (self._base_held, order.qty, 0.0)
        return None

    def _release(self, order: Order) -> None:
        held = self._held.pop(order.id, None)
        if held is None:
            return
        bucket, amount, coming = held
        sym = order.symbol
        bucket[sym] = max(0.0, bucket.get(sym, 0.0) - amount)
        if coming:
            self._base_coming[sym] = max(0.0, self._base_coming.get(sym, 0.0) - coming)

    def _consume(self, order: Order, qty: float, before: float) -> None:
        """A part fill of ``qty`` out of the ``before`` still open: release its share of what
        the order holds (a part-filled order holds only for what is left)."""
        held = self._held.get(order.id)
        if held is None:
            return
        bucket, amount, coming = held
        share = qty / before
        sym = order.symbol
        bucket[sym] = max(0.0, bucket.get(sym, 0.0) - amount * share)
        if coming:
            self._base_coming[sym] = max(0.0, self._base_coming.get(sym, 0.0) - coming * share)
        self._held[order.id] = (bucket, amount * (1 - share), coming * (1 - share))

    def cancel(self, order_id: str, ctx: Context) -> str | None:
        order = self._close(order_id)
        if order is None:
            return "unknown order (not open)"
        self._pending.append(Cancelled(order_id, _now(ctx, self._ts), "requested"))
        return None

    def _close(self, order_id: str) -> Order | None:
        """Take an order out of the book (filled, cancelled or expired)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        self._release(order)
        if order.group:
            members = self._groups.get(order.group)
            if members is not None:
                members.discard(order_id)
                if not members:
                    del self._groups[order.group]
        self._books[order.symbol].queued.pop(order_id, None)
        self._forget(order)
        # Closed orders stay in the heaps (matching skips them); count them so the heaps are
        # rebuilt once they outnumber the open orders, and memory stays bounded.
        self._stale += 1
        if self._stale > 64 and self._stale > len(self._orders):
            self._compact()
        return order

    def _forget(self, order: Order) -> None:
        """What a subclass keeps of a closed order beyond the heaps, dropped."""

    def _compact(self) -> None:
        live = self._orders
        for book in self._books.values():
            for name in book.HEAPS:
                heap = [e for e in getattr(book, name) if e[2] in live]
                heapq.heapify(heap)
                setattr(book, name, heap)
        self._stale = 0

    def _triggered(self, heap: list[tuple[float, int, str]], is_buy: bool, low: float,
                   high: float) -> Iterator[tuple[float, Order]]:
        """Pop the stops of one side that prices from ``low`` to ``high`` reach, nearest
        first; yield (stop price, order) for each that is still open."""
        orders = self._orders
        while heap:
            key, _, oid = heap[0]
            stop = key if is_buy else -key
            if not stop_triggered(is_buy, stop, low, high):
                break
            heapq.heappop(heap)
            order = orders.get(oid)
            if order is not None:  # None: closed, left in the heap until compaction
                yield stop, order

    def _fill(self, order: Order, price: float, rate: float, liquidity: str, ts: int,
              qty: float = 0.0, remaining: float = 0.0) -> None:
        """Report a fill of ``qty`` (0: the whole order) with ``remaining`` left open; the
        first fill of an OCO group's member cancels the others."""
        if remaining > 0.0:
            self._consume(order, qty, qty + remaining)
        else:
            self._close(order.id)
        qty = qty or order.qty
        self.fills += 1
        self._pending.append(Fill(order.id, ts, order.side, qty, price,
                                  self._fee(order.side, order.symbol, price, qty, rate, ts),
                                  liquidity,  # type: ignore[arg-type]
                                  order.tag, order.symbol, remaining))
        group = order.group and self._groups.get(order.group)
        if group:  # OCO: the fill cancels the rest
            for sibling in sorted(group):
                if sibling != order.id and self._close(sibling) is not None:
                    self._pending.append(Cancelled(sibling, ts, "oco"))

    def _handover(self) -> list[Any]:
        """The reports not yet handed over."""
        if not self._pending:
            return _NONE
        out, self._pending = self._pending, []
        return out

    def open_orders(self) -> list[Order]:
        return list(self._orders.values())

    def stats(self) -> dict[str, Any]:
        return {"fills": self.fills, "open_orders": len(self._orders)}


def _as_kind(order: Order, kind: str) -> Order:
    """A triggered stop as the order it becomes (``market`` or ``limit``), same id."""
    return attrs.evolve(order, kind=kind)


def _now(ctx: Context, last: int) -> int:
    """The time of a request: the event the strategy decided on (else the last one seen)."""
    event = ctx.event
    return event.ts if event is not None else last
