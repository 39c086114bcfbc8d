"""Built-in executor ``simulated-trades``: orders fill against trade prints, in part or in full,
with a queue rule for prints at an order's own price."""

from __future__ import annotations

import heapq
import math
from typing import Any, ClassVar, Literal

from attrs import frozen

from gridkit.core.config import option
from gridkit.core.types import BookDepth, BookUpdate, Expired, Order, Rejected, Trade
from gridkit.plugins.executors.base import SimulatedBase, _as_kind, _Book
from gridkit.runtime.context import Context
from gridkit.trading.fills import limit_reached, would_cross

_INF = math.inf
_NAN = math.nan
#: A fill that would leave less than this share of an order open fills all of it: a float
#: residue is not an open order.
_RESIDUE = 1e-9


def _not_market(order: Order) -> bool:
    return order.kind != "market"


class _Tape(_Book):
    """One symbol's orders on a tape of prints: the heaps and the queue of the bar book, the
    market orders still taking (oldest first), the last best bid and ask seen with their sizes,
    and the resting orders by (is buy, price) for the queue rule."""

    __slots__ = ("ask", "ask_qty", "bid", "bid_qty", "levels", "takers")

    def __init__(self) -> None:
        super().__init__()
        self.takers: list[str] = []
        self.bid = self.bid_qty = self.ask = self.ask_qty = _NAN
        self.levels: dict[tuple[bool, float], list[str]] = {}

    def __getstate__(self) -> tuple[Any, ...]:
        return (super().__getstate__(), self.takers, self.bid, self.bid_qty, self.ask,
                self.ask_qty, self.levels)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        base, self.takers, self.bid, self.bid_qty, self.ask, self.ask_qty, self.levels = state
        super().__setstate__(base)


class SimulatedTradesExecutor(SimulatedBase):
    """Simulated exchange on trade prints: orders fill against the prints that reach them.

    Orders are matched against the lane's trade prints only. Bars are not matched (a source
    with ``bars = "5m"`` folds the prints into bars for the features and the strategy; the
    orders still fill from the prints), and quotes and depth updates only feed the queue rule.
    The print's taker side is not used.

    1. **Live from the next print.** An order submitted after print *k* arrives at print
       *k+1*. A market order takes from that print and the following ones, at their prices,
       with the taker fee, until it is filled. A limit *crosses* if it would trade against the
       best opposite price known when it arrives: the best ask (for a buy; the best bid for a
       sell) of the last quote or depth update, or, with no book data, the price of the print
       it arrives at (a buy at or above it, a sell at or below). A crossing limit is rejected
       if post-only (``Rejected``, "post-only order would cross"); otherwise it takes from the
       print it arrives at as a taker, at the print's price if that is within its limit, and
       then an IOC's rest expires, a FOK expires whole unless the print covered all of it,
       and a GTC's rest rests at its price with no queue ahead. An IOC or FOK limit that does
       not cross expires (``Expired``); any other limit rests (rules 3 and 4).
    2. **A print's size is shared.** A print of size *q* gives at most *q* to the orders of
       each side: market orders first (oldest first), then the limits arriving at it, then the
       resting limits, best price first, then oldest first. Fills may be partial: a ``Fill``
       with ``remaining > 0``, then more fills on later prints.
    3. **Resting limits** fill at their own price with the maker fee. A print *through* the
       price (below a buy's price, above a sell's) fills the order up to the print's size; a
       print *at* the price fills only what the queue ahead of the order leaves.
    4. **The queue rule** (``queue = "back"``). An order joins the back of the queue at its
       price. The queue ahead of it is the size the book showed at that price when it arrived:
       the best bid's size (a sell: the best ask's) of the last quote or depth update if the
       price is that best price; nothing if the price improves on it; unknown, so unlimited,
       if the price is behind it or no book data came before. Each print at the price first
       takes from the queue ahead, and only the rest goes to the order. Later book data can
       only shorten the queue ahead, to the size a quote shows at its best price or a depth
       update sets at the price (orders ahead that cancel count, orders joining behind do
       not); a print through the price empties it. On a tape of prints alone a limit
       therefore fills on the prints through its price, and at its price only after one went
       through. ``queue = "front"`` is the optimistic bound: no queue, every print at the
       price fills the order.
    5. **Stops** trigger on a print at or through the stop price (a sell stop on a print at
       or below it, a buy stop at or above) and arrive at the next print as a market order
       (``stop``) or as a limit at their limit price (``stop_limit``), by rule 1.
    6. **OCO.** The first fill of an order of a group, even a partial one, cancels the others
       (``Cancelled``, reason ``oco``).

    Balances and reduce-only orders are checked as by ``simulated``; an order partly filled
    holds cash or base only for its rest. A print whose price is not a positive finite number,
    or whose size is negative or not finite, is ignored. Per print the work is O(1 + fills +
    orders at the print's price).
    """

    name = "simulated-trades"
    BOOK = _Tape
    #: What the executor matches orders on (the bar executors' contract does not apply).
    matches: ClassVar[str] = "trades"

    @frozen
    class Config(SimulatedBase.Config):
        queue: Literal["back", "front"] = option(
            "back", doc="back: an order at a print's price waits for the queue the book showed "
                        "ahead of it (with no book data, it fills only once a print went "
                        "through its price); front: every print at its price fills it "
                        "(optimistic).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._left: dict[str, float] = {}  # order id -> quantity still open
        self._ahead: dict[str, float] = {}  # resting order id -> queue ahead of it
        self.partial_fills = 0

    def submit(self, order: Order, ctx: Context) -> str | None:
        refusal = super().submit(order, ctx)
        if refusal is None:
            self._left[order.id] = order.qty
        return refusal

    def reports(self, event: Any, symbol: str) -> list[Any]:
        kind = type(event)
        if kind is Trade:
            self._ts = event.ts
            book = self._books.get(symbol)
            if book is not None:
                self._print(book, event)
        elif kind is BookUpdate:
            self._ts = event.ts
            self._quote(self._book(symbol), event.bid, event.bid_qty, event.ask, event.ask_qty)
        elif kind is BookDepth:
            self._ts = event.ts
            self._depth(self._book(symbol), event)
        return self._handover()

    # --- prints ------------------------------------------------------------------------------

    def _print(self, book: _Tape, trade: Trade) -> None:
        x, q, ts = trade.price, trade.qty, trade.ts
        if not (0.0 < x < _INF and 0.0 <= q < _INF):
            return
        avail = [q, q]  # what the print can still give to sells [0] and buys [1] (rule 2)
        if book.takers:
            orders = self._orders
            for oid in list(book.takers):
                order = orders.get(oid)
                if order is not None:
                    is_buy = order.side == "buy"
                    avail[is_buy] -= self._take(order, avail[is_buy], x, ts)
        crossed: list[Order] = []
        if book.queued:
            # Market orders first, then the others, each in the order they were sent.
            for order in sorted(self._arriving(book, ts), key=_not_market):
                if order.id in self._orders:  # not cancelled by an OCO sibling meanwhile
                    self._arrive(book, order, x, ts, avail, crossed)
        if book.sell_stops and -book.sell_stops[0][0] >= x:
            self._trigger(book, book.sell_stops, False, x)
        if book.buy_stops and book.buy_stops[0][0] <= x:
            self._trigger(book, book.buy_stops, True, x)
        if book.buys and -book.buys[0][0] >= x:
            self._makers(book.buys, True, x, ts, avail)
        if book.sells and book.sells[0][0] <= x:
            self._makers(book.sells, False, x, ts, avail)
        for order in crossed:  # a GTC limit's rest after it took from its arrival print
            if order.id in self._orders:
                self._rest(book, order, 0.0)

    def _arriving(self, book: _Tape, ts: int) -> list[Order]:
        """Rule 1: the queued orders that arrive at a print at ``ts``, taken out of the queue
        (here all of them; an executor with latency keeps back those still on their way)."""
        queued, book.queued = book.queued, {}
        return list(queued.values())

    def _arrive(self, book: _Tape, order: Order, x: float, ts: int, avail: list[float],
                crossed: list[Order]) -> None:
        """Rule 1: an order arrives at the print at ``x``."""
        kind, is_buy, oid = order.kind, order.side == "buy", order.id
        if kind == "market":
            book.takers.append(oid)
            avail[is_buy] -= self._take(order, avail[is_buy], x, ts)
            return
        if kind != "limit":  # a stop: live from this print, waiting for its trigger
            self._seq += 1
            heapq.heappush(book.buy_stops if is_buy else book.sell_stops,
                           (order.stop_price if is_buy else -order.stop_price, self._seq, oid))
            return
        tif, price = order.tif, order.price
        best = book.ask if is_buy else book.bid  # the best opposite price, NaN without a book
        if not would_cross(is_buy, price, x if best != best else best):
            if tif in ("IOC", "FOK"):
                self._expire(order, ts)
            else:
                self._rest(book, order, self._queue_ahead(book, is_buy, price))
            return
        if tif == "PO":
            self._close(oid)
            self._pending.append(Rejected(oid, ts, "post-only order would cross", self.name))
            return
        # It takes from the print it arrives at, if that print is within its limit.
        a = avail[is_buy] if would_cross(is_buy, price, x) else 0.0
        if tif == "FOK" and a < order.qty * (1 - _RESIDUE):
            self._expire(order, ts)
            return
        avail[is_buy] = a - self._take(order, a, x, ts)
        if oid in self._orders:  # not all of it traded
            if tif == "GTC":
                crossed.append(order)
            else:
                self._expire(order, ts)

    def _expire(self, order: Order, ts: int) -> None:
        self._close(order.id)
        self._pending.append(Expired(order.id, ts, order.tif))

    def _take(self, order: Order, avail: float, x: float, ts: int) -> float:
        """Fill ``order`` as a taker from a print at ``x`` that has ``avail`` left for its
        side; return the quantity taken."""
        if avail <= 0.0:
            return 0.0
        left = self._left[order.id]
        qty = left if left <= avail else avail
        self._part(order, qty, x, self.config.taker_fee, "taker", ts)
        return qty

    def _makers(self, heap: list[tuple[float, int, str]], is_buy: bool, x: float, ts: int,
                avail: list[float]) -> None:
        """Rules 3 and 4: the resting limits of one side that a print at ``x`` reaches, best
        price first."""
        orders, left, ahead = self._orders, self._left, self._ahead
        maker = self.config.maker_fee
        a = avail[is_buy]
        back = []
        while heap:
            key, _, oid = heap[0]
            price = -key if is_buy else key
            if not limit_reached(is_buy, price, x, x):
                break
            through = price != x
            if not through and a <= 0.0:
                break  # the print is used up; the queues at its price stay as they are
            entry = heapq.heappop(heap)
            order = orders.get(oid)
            if order is None:
                continue  # closed, left in the heap until compaction
            if through:  # everything ahead of it traded
                ahead[oid] = 0.0
                qty = a
            else:  # the queue ahead takes first
                qty = a - ahead[oid]
                ahead[oid] = -qty if qty < 0.0 else 0.0
            if qty > 0.0:
                rem = left[oid]
                if qty > rem:
                    qty = rem
                self._part(order, qty, price, maker, "maker", ts)
                a -= qty
            if oid in orders:
                back.append(entry)
        for entry in back:
            heapq.heappush(heap, entry)
        avail[is_buy] = a

    def _part(self, order: Order, qty: float, price: float, rate: float, liquidity: str,
              ts: int) -> None:
        """Report a fill of ``qty`` of what is left of ``order``."""
        oid = order.id
        before = self._left[oid]
        left = before - qty
        if left <= order.qty * _RESIDUE:
            self._fill(order, price, rate, liquidity, ts, before, 0.0)
        else:
            self._left[oid] = left
            self.partial_fills += 1
            self._fill(order, price, rate, liquidity, ts, qty, left)

    def _trigger(self, book: _Tape, heap: list[tuple[float, int, str]], is_buy: bool,
                 x: float) -> None:
        """Rule 5: triggered stops arrive at the next print as market or limit orders."""
        for _, order in self._triggered(heap, is_buy, x, x):
            book.queued[order.id] = self._orders[order.id] = _as_kind(
                order, "market" if order.kind == "stop" else "limit")

    # --- the queue rule ----------------------------------------------------------------------

    def _rest(self, book: _Tape, order: Order, ahead: float) -> None:
        self._seq += 1
        is_buy, price = order.side == "buy", order.price
        heapq.heappush(book.buys if is_buy else book.sells,
                       (-price if is_buy else price, self._seq, order.id))
        self._ahead[order.id] = ahead
        book.levels.setdefault((is_buy, price), []).append(order.id)

    def _queue_ahead(self, book: _Tape, is_buy: bool, price: float) -> float:
        """Rule 4: the queue ahead of an order arriving at ``price``."""
        if self.config.queue == "front":
            return 0.0
        if is_buy:
            best, size = book.bid, book.bid_qty
            if price > best:
                return 0.0
        else:
            best, size = book.ask, book.ask_qty
            if price < best:
                return 0.0
        return size if price == best else _INF  # NaN (no book data): unlimited

    def _quote(self, book: _Tape, bid: float, bid_qty: float, ask: float,
               ask_qty: float) -> None:
        book.bid, book.bid_qty, book.ask, book.ask_qty = bid, bid_qty, ask, ask_qty
        if book.levels:
            self._cap(book, True, bid, bid_qty)
            self._cap(book, False, ask, ask_qty)

    def _depth(self, book: _Tape, event: BookDepth) -> None:
        ob = event.book
        bid, ask = ob.best_bid, ob.best_ask
        self._quote(book, bid, ob.qty("bid", bid), ask, ob.qty("ask", ask))
        if not book.levels:
            return
        if event.changes:
            for side, price, qty in event.changes:
                self._cap(book, side == "bid", price, qty)
        else:  # a freshly (re)loaded book: every level an order rests at, as it shows now
            for is_buy, price in list(book.levels):
                self._cap(book, is_buy, price, ob.qty("bid" if is_buy else "ask", price))

    def _cap(self, book: _Tape, is_buy: bool, price: float, size: float) -> None:
        """The book shows ``size`` at ``price``: no more than that is ahead of our orders."""
        ids = book.levels.get((is_buy, price))
        if ids:
            ahead = self._ahead
            for oid in ids:
                if ahead[oid] > size:
                    ahead[oid] = size

    # --- bookkeeping -------------------------------------------------------------------------

    def _forget(self, order: Order) -> None:
        oid = order.id
        self._left.pop(oid, None)
        book = self._books[order.symbol]
        if self._ahead.pop(oid, None) is not None:
            key = (order.side == "buy", order.price)
            ids = book.levels[key]
            ids.remove(oid)
            if not ids:
                del book.levels[key]
        elif order.kind == "market" and oid in book.takers:
            book.takers.remove(oid)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "partial_fills": self.partial_fills}
