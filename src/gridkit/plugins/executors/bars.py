"""Built-in executor ``simulated``: the bar fill model of DESIGN.md §6."""

from __future__ import annotations

import heapq
from typing import Any, Literal

from attrs import frozen

from gridkit.core.config import option
from gridkit.core.errors import ConfigError
from gridkit.core.types import (
    Bar,
    Expired,
    Rejected,
)
from gridkit.plugins.executors.base import SimulatedBase, _as_kind, _Book
from gridkit.trading import ashare
from gridkit.trading.fills import (
    limit_reached,
    stop_fill_price,
    would_cross,
)


class SimulatedExecutor(SimulatedBase):
    """Simulated exchange on bars: limits fill at their price when the bar reaches them.

    DESIGN.md §6, exactly: an order submitted on bar *t* is live from bar *t+1*; a market order
    fills at that bar's open with the taker fee, then triggered stops (rule 7), then the limits
    the bar reaches at their own price with the maker fee (rule 2). A stop-limit rests as a limit
    from the bar after its trigger. When one order of an OCO group fills, the others are
    cancelled; a stop reached on the same bar as its take-profit wins (rule 8). At arrival (the
    next open) a post-only limit that would cross is rejected, and an IOC/FOK limit trades at the
    open if it crosses, else expires.

    Matching walks heaps (best price first), so a bar costs O(1 + fills), not O(open orders).
    Balances are checked as an exchange does: a spot buy must be covered by free cash, a sell by
    free base (counting base that queued market buys will bring); a perpetual order by free
    margin at the position's leverage.

    With ``locked_limits = "a-share"``, a bar locked at a China A-share price limit all
    session (one price, ``high == low``, equal to the limit-up or limit-down of the previous
    bar's close: :func:`gridkit.trading.ashare.locked_side`) gives no fill on the locked side:
    at limit-up no buy fills (nobody sells), at limit-down no sell fills (nobody buys). Its
    limit orders on that side wait for the next bar, its stops on that side do not trigger,
    and a market or IOC/FOK order of that side arriving at its open expires (``locked at
    limit-up``), as an A-share market order's unfilled rest is cancelled. The limit percents
    tried are the ones the symbol's board can have on the day (main boards 10 % and 5 % for
    ST, ChiNext and STAR 20 %), so no ST list is needed.
    """

    name = "simulated"

    @frozen
    class Config(SimulatedBase.Config):
        locked_limits: Literal["none", "a-share"] = option(
            "none", doc="a-share: a bar locked at a China A-share price limit (high == low == "
                        "limit-up or limit-down of the previous close) fills no buy at "
                        "limit-up, no sell at limit-down.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._locks = ashare.LockWatch() if self.config.locked_limits == "a-share" else None

    def validate(self, run: Any) -> None:
        super().validate(run)
        problem = self._locks and ashare.symbols_problem(run.symbols or (run.symbol,),
                                                         'locked_limits = "a-share"')
        if problem:
            raise ConfigError(problem)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        if self._locks is not None:
            out["locked_bars"] = self._locks.locked
        return out

    # --- reports -----------------------------------------------------------------------------

    def reports(self, event: Any, symbol: str) -> list[Any]:
        if type(event) is Bar:
            self._ts = event.ts
            locked = "" if self._locks is None else self._locks.side(
                symbol, event.ts, event.high, event.low, event.close)
            book = self._books.get(symbol)
            # Most bars reach no order: test the tops here before paying for a call.
            if book is not None and (
                    book.queued or book.sell_stops or book.buy_stops
                    or (book.buys and book.buys[0][0] <= -event.low)
                    or (book.sells and book.sells[0][0] <= event.high)):
                self._match(book, event, locked)
        return self._handover()

    def _match(self, book: _Book, bar: Bar, locked: str = "") -> None:
        out = self._pending
        maker, taker = self.config.maker_fee, self.config.taker_fee
        ts = bar.ts
        if book.queued:
            queued, book.queued = book.queued, {}
            orders = self._orders
            for order in queued.values():
                if order.id not in orders:  # an OCO sibling filled at this open cancelled it
                    continue
                kind, is_buy = order.kind, order.side == "buy"
                if locked and is_buy == (locked == "up") and (
                        kind == "market" or (kind == "limit" and order.tif in ("IOC", "FOK"))):
                    self._close(order.id)  # nothing trades on its side of a locked bar
                    out.append(Expired(order.id, ts, f"locked at limit-{locked}"))
                    continue
                if kind == "market":  # rule 4: at this bar's open, before its limits
                    self._fill(order, bar.open, taker, "taker", ts)
                    continue
                if kind == "limit" and order.tif != "GTC":
                    crosses = would_cross(is_buy, order.price, bar.open)
                    if order.tif == "PO":
                        if crosses:
                            self._close(order.id)
                            out.append(Rejected(order.id, ts, "post-only order would cross",
                                                self.name))
                            continue
                    else:  # IOC / FOK: at arrival only
                        if crosses:
                            self._fill(order, bar.open, taker, "taker", ts)
                        else:
                            self._close(order.id)
                            out.append(Expired(order.id, ts, order.tif))
                        continue
                self._seq += 1
                if kind in ("stop", "stop_limit"):
                    heap = book.buy_stops if is_buy else book.sell_stops
                    heapq.heappush(heap, (order.stop_price if is_buy else -order.stop_price,
                                          self._seq, order.id))
                elif is_buy:
                    heapq.heappush(book.buys, (-order.price, self._seq, order.id))
                else:
                    heapq.heappush(book.sells, (order.price, self._seq, order.id))
        # Stops first (rule 8: a stop and its take-profit reached by one bar: the stop wins).
        # A bar locked at limit-up fills no buy, at limit-down no sell (locked_limits).
        sell_ok, buy_ok = locked != "down", locked != "up"
        if sell_ok and book.sell_stops and -book.sell_stops[0][0] >= bar.low:
            self._trigger(book, book.sell_stops, False, bar, taker)
        if buy_ok and book.buy_stops and book.buy_stops[0][0] <= bar.high:
            self._trigger(book, book.buy_stops, True, bar, taker)
        # Buys are keyed by -price, so both sides fill "while the best key <= limit". Most bars
        # reach no order: test the tops here before paying for a call.
        buys, sells = book.buys, book.sells
        if buy_ok and buys and buys[0][0] <= -bar.low:
            self._drain(buys, True, bar, maker)
        if sell_ok and sells and sells[0][0] <= bar.high:
            self._drain(sells, False, bar, maker)

    def _trigger(self, book: _Book, heap: list[tuple[float, int, str]], is_buy: bool,
                 bar: Bar, taker: float) -> None:
        for stop, order in self._triggered(heap, is_buy, bar.low, bar.high):
            if order.kind == "stop":
                self._fill(order, stop_fill_price(is_buy, stop, bar.open), taker, "taker",
                           bar.ts)
            else:  # stop-limit: rests as a limit from the next bar (rule 7)
                book.queued[order.id] = self._orders[order.id] = _as_kind(order, "limit")

    def _drain(self, heap: list[tuple[float, int, str]], is_buy: bool, bar: Bar,
               maker: float) -> None:
        """Fill the orders of one side that the bar reached, best price first."""
        orders = self._orders
        low, high = bar.low, bar.high
        while heap:
            key, _, oid = heap[0]
            price = -key if is_buy else key
            if not limit_reached(is_buy, price, low, high):
                break
            heapq.heappop(heap)
            order = orders.get(oid)
            if order is not None:  # None: closed, left in the heap until compaction
                self._fill(order, order.price, maker, "maker", bar.ts)
