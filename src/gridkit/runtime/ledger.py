"""The order ledger: the one record of every order's state in a run (DESIGN.md §11 rule 2).

An order is ``new`` when requested, ``open`` once accepted, ``partial`` after a fill that left
some of it, and ends ``filled``, ``cancelled``, ``rejected`` or ``expired``. Reports move it;
a report that does not fit (unknown id, a fill on a closed order, more filled than ordered) is
kept in :attr:`Ledger.anomalies`, which the run summary shows as ``unreconciled_orders``.
"""

from __future__ import annotations

from typing import Any

from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Order, Rejected

NEW, OPEN, PARTIAL, FILLED, CANCELLED, REJECTED, EXPIRED = (
    "new", "open", "partial", "filled", "cancelled", "rejected", "expired")
#: States an order can still change from.
LIVE = frozenset({NEW, OPEN, PARTIAL})
_END_OF = {Cancelled: CANCELLED, Expired: EXPIRED, Rejected: REJECTED}
#: Quantity below which an order counts as fully filled (float residue of partial fills).
QTY_EPS = 1e-12


class OrderState:
    """One order and what has happened to it: status, filled quantity, average price, fees."""

    __slots__ = ("avg_price", "fees", "filled", "order", "status", "ts")

    def __init__(self, order: Order, ts: int) -> None:
        self.order = order
        self.status = NEW
        self.filled = 0.0
        self.avg_price = 0.0
        self.fees = 0.0
        self.ts = ts  # of the last change

    @property
    def remaining(self) -> float:
        """Quantity still to fill."""
        return self.order.qty - self.filled

    def __repr__(self) -> str:
        return (f"OrderState({self.order.id} {self.order.side} {self.order.qty}@"
                f"{self.order.price} {self.status}, filled {self.filled})")


class Ledger:
    """Every live order of a run, by client order id; ids are ``<run key>-<sequence>``.

    Ids are deterministic: the sequence is part of the run's state and is restored on resume,
    so an order re-sent after a crash carries the id the exchange and the journal already know.
    Closed orders leave the ledger (the store keeps their history); counts stay.
    """

    __slots__ = ("anomalies", "bought", "closed", "key", "open", "open_buy_qty", "open_buys",
                 "open_count", "open_sell_qty", "seq")

    def __init__(self, key: str = "o") -> None:
        self.key = key
        self.seq = 0
        #: Orders that are new, open or partially filled, in request order.
        self.open: dict[str, OrderState] = {}
        #: Orders that ended, by final status.
        self.closed: dict[str, int] = {}
        #: Per symbol, the remaining quantity of its live buy orders (kept in O(1) per change),
        #: and how many there are.
        self.open_buy_qty: dict[str, float] = {}
        self.open_buys: dict[str, int] = {}
        #: Per symbol, how many orders are live, and the remaining quantity of its live sells.
        self.open_count: dict[str, int] = {}
        self.open_sell_qty: dict[str, float] = {}
        #: Per symbol, the quantity every buy fill of the run brought (a running total: what
        #: was bought since a moment is its difference; the A-share ``t-plus-one`` check).
        self.bought: dict[str, float] = {}
        #: Reports that did not fit the ledger: (order id, what was wrong).
        self.anomalies: list[tuple[str, str]] = []

    def next_id(self) -> str:
        """A fresh client order id, unique within the run."""
        self.seq += 1
        return f"{self.key}-{self.seq}"

    def request(self, order: Order, ts: int) -> OrderState:
        """Record a new order request (before it is sent)."""
        if order.id in self.open:
            raise ValueError(f"order id {order.id!r} is already live")
        state = OrderState(order, ts)
        self.open[order.id] = state
        sym = order.symbol
        self.open_count[sym] = self.open_count.get(sym, 0) + 1
        if order.side == "buy":
            self.open_buy_qty[sym] = self.open_buy_qty.get(sym, 0.0) + order.qty
            self.open_buys[sym] = self.open_buys.get(sym, 0) + 1
        else:
            self.open_sell_qty[sym] = self.open_sell_qty.get(sym, 0.0) + order.qty
        return state

    def get(self, order_id: str) -> OrderState | None:
        """The live order with this id, or None."""
        return self.open.get(order_id)

    def apply(self, report: Any) -> OrderState | None:
        """Move an order by one report; return its state, or None if the report did not fit."""
        state = self.open.get(report.order_id)
        if state is None:
            self.anomalies.append((report.order_id, f"{type(report).__name__} for an order "
                                   f"that is not live"))
            return None
        kind = type(report)
        state.ts = report.ts
        if kind is Accepted:
            if state.status == NEW:
                state.status = OPEN
        elif kind is Fill:
            filled = state.filled + report.qty
            if filled > state.order.qty * (1 + 1e-9) + QTY_EPS:
                self.anomalies.append((report.order_id, f"filled {filled:g} of "
                                       f"{state.order.qty:g}"))
            notional = state.avg_price * state.filled + report.price * report.qty
            state.filled = filled
            state.avg_price = notional / filled if filled > 0 else 0.0
            state.fees += report.fee
            if state.order.side == "buy":
                sym = state.order.symbol
                self.open_buy_qty[sym] -= report.qty
                self.bought[sym] = self.bought.get(sym, 0.0) + report.qty
            else:
                self.open_sell_qty[state.order.symbol] -= report.qty
            if report.remaining <= QTY_EPS or filled >= state.order.qty - QTY_EPS:
                self._close(state, FILLED)
            else:
                state.status = PARTIAL
        else:
            end = _END_OF.get(kind)
            if end is None:
                raise TypeError(f"not a report: {report!r}")
            self._close(state, end)
        return state

    def _close(self, state: OrderState, status: str) -> None:
        state.status = status
        order = state.order
        del self.open[order.id]
        self.closed[status] = self.closed.get(status, 0) + 1
        sym = order.symbol
        live = self.open_count[sym] = self.open_count[sym] - 1
        if order.side == "buy":
            left = self.open_buys[sym] = self.open_buys[sym] - 1
            # No float residue once no buy is live.
            self.open_buy_qty[sym] = (self.open_buy_qty[sym] - (order.qty - state.filled)
                                      if left else 0.0)
        else:  # (nor once no sell is)
            self.open_sell_qty[sym] = (self.open_sell_qty[sym] - (order.qty - state.filled)
                                       if live > self.open_buys.get(sym, 0) else 0.0)

    def live_ids(self) -> set[str]:
        """Ids of every live order."""
        return set(self.open)

    def snapshot(self) -> dict[str, Any]:
        """The ledger's state, for resume."""
        return {"key": self.key, "seq": self.seq, "closed": dict(self.closed),
                "anomalies": list(self.anomalies), "open_buy_qty": dict(self.open_buy_qty),
                "open_buys": dict(self.open_buys), "bought": dict(self.bought),
                "open": [(s.order, s.status, s.filled, s.avg_price, s.fees, s.ts)
                         for s in self.open.values()]}

    def restore(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` returned."""
        self.key, self.seq = state["key"], state["seq"]
        self.closed = dict(state["closed"])
        self.anomalies = list(state["anomalies"])
        self.open_buy_qty = dict(state["open_buy_qty"])
        self.open_buys = dict(state["open_buys"])
        self.bought = dict(state.get("bought", {}))  # absent from states saved before it
        self.open = {}
        for order, status, filled, avg, fees, ts in state["open"]:
            s = OrderState(order, ts)
            s.status, s.filled, s.avg_price, s.fees = status, filled, avg, fees
            self.open[order.id] = s
        # Counted afresh from the open orders (a state saved before they were kept has none).
        self.open_count, self.open_sell_qty = {}, {}
        for s in self.open.values():
            sym = s.order.symbol
            self.open_count[sym] = self.open_count.get(sym, 0) + 1
            if s.order.side != "buy":
                self.open_sell_qty[sym] = self.open_sell_qty.get(sym, 0.0) + s.remaining
