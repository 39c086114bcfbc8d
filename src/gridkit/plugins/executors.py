"""Built-in executors: ``simulated``, the bar fill model of DESIGN.md §6."""

from __future__ import annotations

import heapq
from typing import Any

from attrs import frozen

from gridkit.core.components import Executor
from gridkit.core.config import fee_rate, option
from gridkit.core.context import Context
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar, Fill, Order


class SimulatedExecutor(Executor):
    """Simulated exchange on bars: limits fill at their price when the bar reaches them.

    DESIGN.md §6, exactly: an order submitted on bar *t* is live from bar *t+1*; a live buy limit
    at P fills on a bar whose low <= P, a sell limit when high >= P, at P with the maker fee; a
    market order fills at the next bar's open with the taker fee, before that bar's limits.
    Matching walks two heaps (best buy first, best sell first), so a bar costs O(1 + fills),
    not O(open orders). Balances are checked like an exchange does: a buy must be covered by
    free cash, a sell by free base (counting base that queued market buys will bring).
    """

    name = "simulated"

    @frozen
    class Config:
        maker_fee: float = option(0.001, doc="Fee rate of limit fills.", validator=fee_rate())
        taker_fee: float = option(0.001, doc="Fee rate of market fills.",
                                  validator=fee_rate())
        check_balance: bool = option(
            True, doc="Refuse orders that free cash or base cannot cover, as an exchange would."
        )

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._orders: dict[int, Order] = {}  # every open order, live or queued
        self._queued: dict[int, Order] = {}  # submitted this bar, live from the next
        self._buys: list[tuple[float, int]] = []  # (-price, id): highest price on top
        self._sells: list[tuple[float, int]] = []  # (price, id): lowest price on top
        self._held: dict[int, float] = {}  # order id -> cash (buys) or base (sells) it reserves
        self._cash_held = 0.0  # cash that open buys reserve
        self._base_held = 0.0  # base that open sells reserve
        self._base_coming = 0.0  # base that queued market buys will bring
        self._stale = 0  # heap entries of cancelled orders, not yet compacted
        self.fills = 0

    def submit(self, order: Order, ctx: Context) -> str | None:
        if order.qty <= 0 or not order.qty < float("inf"):
            return f"quantity must be positive, got {order.qty}"
        if order.kind == "limit" and not (0 < order.price < float("inf")):
            return f"limit price must be positive, got {order.price}"
        if self.config.check_balance:
            refusal = self._reserve(order, ctx)
            if refusal:
                return refusal
        self._orders[order.id] = order
        self._queued[order.id] = order
        return None

    def _reserve(self, order: Order, ctx: Context) -> str | None:
        pf = ctx.portfolio
        if order.side == "buy":
            price = order.price if order.kind == "limit" else pf.price
            fee = self.config.maker_fee if order.kind == "limit" else self.config.taker_fee
            cost = price * order.qty * (1 + fee)
            free = pf.cash - self._cash_held
            if cost > free + 1e-9:
                return "insufficient cash"
            self._cash_held += cost
            self._held[order.id] = cost
            if order.kind == "market":
                self._base_coming += order.qty
        else:
            free = pf.base + self._base_coming - self._base_held
            if order.qty > free + 1e-12:
                return "insufficient base"
            self._base_held += order.qty
            self._held[order.id] = order.qty
        return None

    def _release(self, order: Order) -> None:
        held = self._held.pop(order.id, None)
        if held is None:
            return
        if order.side == "buy":
            self._cash_held = max(0.0, self._cash_held - held)
            if order.kind == "market":
                self._base_coming = max(0.0, self._base_coming - order.qty)
        else:
            self._base_held = max(0.0, self._base_held - held)

    def cancel(self, order_id: int) -> bool:
        order = self._orders.pop(order_id, None)
        if order is None:
            return False
        self._release(order)
        if self._queued.pop(order_id, None) is not None:
            return True
        # The heaps keep the id and matching skips ids that are no longer open (lazy deletion);
        # rebuild them once stale entries outnumber open orders, so memory stays bounded.
        self._stale += 1
        if self._stale > 64 and self._stale > len(self._orders):
            self._buys = [(-o.price, o.id) for o in self._orders.values()
                          if o.side == "buy" and o.id not in self._queued]
            self._sells = [(o.price, o.id) for o in self._orders.values()
                           if o.side == "sell" and o.id not in self._queued]
            heapq.heapify(self._buys)
            heapq.heapify(self._sells)
            self._stale = 0
        return True

    def match_bar(self, bar: Bar) -> list[Fill]:
        fills: list[Fill] = []
        orders = self._orders
        if self._queued:
            maker, taker = self.config.maker_fee, self.config.taker_fee
            for order in self._queued.values():
                if order.kind == "market":  # rule 4: at this bar's open, before its limits
                    del orders[order.id]
                    self._release(order)
                    fills.append(Fill(order.id, bar.ts, order.side, order.qty, bar.open,
                                      bar.open * order.qty * taker, "taker", order.tag))
                elif order.side == "buy":
                    heapq.heappush(self._buys, (-order.price, order.id))
                else:
                    heapq.heappush(self._sells, (order.price, order.id))
            self._queued = {}
        else:
            maker = self.config.maker_fee
        # Buys are keyed by -price, so both sides fill "while the best key <= limit". Most bars
        # reach no order: test the tops here before paying for a call.
        buys, sells = self._buys, self._sells
        if buys and buys[0][0] <= -bar.low:
            self._drain(buys, -bar.low, "buy", bar.ts, maker, fills)
        if sells and sells[0][0] <= bar.high:
            self._drain(sells, bar.high, "sell", bar.ts, maker, fills)
        if fills:
            self.fills += len(fills)
        return fills

    def _drain(self, heap: list[tuple[float, int]], limit: float, side: str, ts: int,
               maker: float, fills: list[Fill]) -> None:
        """Fill the orders of one side that the bar reached, best price first."""
        orders = self._orders
        while heap and heap[0][0] <= limit:
            _, oid = heapq.heappop(heap)
            order = orders.pop(oid, None)
            if order is not None:  # None: cancelled, left in the heap until compaction
                self._release(order)
                fills.append(Fill(oid, ts, side, order.qty, order.price,  # type: ignore[arg-type]
                                  order.price * order.qty * maker, "maker", order.tag))

    def open_orders(self) -> list[Order]:
        return list(self._orders.values())

    def stats(self) -> dict[str, Any]:
        return {"fills": self.fills, "open_orders": len(self._orders)}


@hookimpl
def gridkit_register_executors(register: Any) -> None:
    register(SimulatedExecutor)
