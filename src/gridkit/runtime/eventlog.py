"""One log line per order event of a paper or live run, from the journal.

:func:`attach_event_log` subscribes an :class:`EventLog` to the run's journal; the engine does
so for paper and live runs only (a backtest's journal has no such subscriber, so it pays
nothing). Every order request, cancel request and report, and the run's halts, pauses, parameter
and phase changes and liquidations become one line on the ``gridkit.orders`` logger, with the
fields ``event``, ``symbol``, ``order_id`` (the client order id), ``side``, ``qty``, ``price``
and ``reason`` where they apply. Levels: rejections, pauses and resumptions are warnings; halts
and liquidations errors; the rest info.
"""

from __future__ import annotations

import logging
from typing import Any

from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Order, Rejected
from gridkit.runtime.journal import (
    CancelRequested,
    Halted,
    Liquidated,
    OrderRequested,
    ParamChanged,
    Paused,
    PhaseChanged,
    RegimeChanged,
    Unhalted,
)

__all__ = ["ORDER_EVENTS", "EventLog", "attach_event_log"]

#: Journal records that are order events (what the watchdog's ``grid_quiet`` waits for).
ORDER_EVENTS = frozenset({OrderRequested, CancelRequested, Accepted, Rejected, Fill, Cancelled,
                          Expired})

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


def _marks(*_: Any) -> None:
    """Marks (one per bar) are not order events: taken and dropped without making a record."""


class EventLog:
    """A journal subscriber that logs each order event as one line (see the module's doc).

    Reports carry only the client order id, and the ledger forgets an order once it ends, so
    the log keeps each live order's symbol, side, quantity and price from its request (or from
    the ledger, for orders a resumed run took over) until its last report.
    """

    def __init__(self, run: Any, logger: logging.Logger | None = None) -> None:
        self.run = run
        self.log = logger if logger is not None else logging.getLogger("gridkit.orders")
        self.orders: dict[str, Order] = {}
        self._seeded = False
        self.lines = 0

    def __call__(self, record: Any) -> None:
        """Log ``record`` if it is an order event or a change of the run's state."""
        if not self._seeded:  # orders a resumed run holds: known from its restored ledger
            self._seeded = True
            for oid, state in self.run.ledger.open.items():
                self.orders.setdefault(oid, state.order)
        kind = type(record)
        if kind is OrderRequested:
            o = record.order
            self.orders[o.id] = o
            self._order(INFO, "order_requested", o, f"order requested: {_describe(o)}",
                        kind=o.kind)
        elif kind is CancelRequested:
            o = self._lookup(record.order_id)
            self._order(INFO, "cancel_requested", o, f"cancel requested: {_describe(o, record)}",
                        order_id=record.order_id)
        elif kind is Accepted:
            o = self._lookup(record.order_id)
            self._order(INFO, "accepted", o, f"accepted: {_describe(o, record)}",
                        order_id=record.order_id)
        elif kind is Rejected:
            o = self._end(record.order_id)
            by = f" by {record.by}" if record.by else ""
            self._order(WARNING, "rejected", o,
                        f"rejected{by}: {_describe(o, record)}: {record.reason}",
                        order_id=record.order_id, reason=record.reason, by=record.by)
        elif kind is Fill:
            o = self._lookup(record.order_id)
            if record.order_id not in self.run.ledger.open:
                self.orders.pop(record.order_id, None)
            symbol = record.symbol or (o.symbol if o is not None else "")
            self._line(INFO, "fill",
                       f"fill: {symbol} {record.side} {record.qty:g} @ {record.price:.10g} "
                       f"({record.order_id}), fee {record.fee:.6g}, {record.liquidity}, "
                       f"remaining {record.remaining:g}",
                       symbol=symbol, order_id=record.order_id, side=record.side,
                       qty=record.qty, price=record.price, fee=record.fee,
                       liquidity=record.liquidity, remaining=record.remaining)
        elif kind is Cancelled or kind is Expired:
            o = self._end(record.order_id)
            name = "cancelled" if kind is Cancelled else "expired"
            why = f": {record.reason}" if record.reason else ""
            self._order(INFO, name, o, f"{name}: {_describe(o, record)}{why}",
                        order_id=record.order_id, reason=record.reason)
        elif kind is Halted:
            self._line(ERROR, "halted", f"trading halted: {record.reason}", reason=record.reason)
        elif kind is Unhalted:
            self._line(WARNING, "unhalted", f"halt lifted ({record.by}): trading resumes",
                       reason=record.halted, by=record.by)
        elif kind is Paused:
            if record.reason is None:
                self._line(WARNING, "resumed", "trading resumed", reason=None)
            else:
                self._line(WARNING, "paused", f"trading paused: {record.reason}",
                           reason=record.reason)
        elif kind is ParamChanged:
            changes = ", ".join(f"{k} {record.old.get(k)!r} -> {v!r}"
                                for k, v in record.new.items())
            self._line(INFO, "param_changed", f"parameters of {record.path} changed: {changes}",
                       path=record.path, old=record.old, new=record.new)
        elif kind is PhaseChanged:
            self._line(INFO, "phase_changed",
                       f"phase of {record.path}: {record.old} -> {record.new}",
                       path=record.path, old=record.old, new=record.new)
        elif kind is RegimeChanged:
            self._line(INFO, "regime_changed", f"regime of {record.symbol}: {record.label}",
                       symbol=record.symbol, regime=record.label)
        elif kind is Liquidated:
            self._line(ERROR, "liquidated",
                       f"liquidation: {record.symbol} {record.qty:g} @ {record.price:.10g}, "
                       f"fee {record.fee:.6g}", symbol=record.symbol, qty=record.qty,
                       price=record.price, fee=record.fee)

    def _lookup(self, oid: str) -> Order | None:
        o = self.orders.get(oid)
        if o is None:
            state = self.run.ledger.open.get(oid)
            o = state.order if state is not None else None
        return o

    def _end(self, oid: str) -> Order | None:
        o = self._lookup(oid)
        self.orders.pop(oid, None)
        return o

    def _order(self, level: int, event: str, o: Order | None, msg: str, **fields: Any) -> None:
        if o is not None:
            fields.setdefault("order_id", o.id)
            fields.update(symbol=o.symbol, side=o.side, qty=o.qty, price=o.price)
        self._line(level, event, msg, **fields)

    def _line(self, level: int, event: str, msg: str, **fields: Any) -> None:
        if self.log.isEnabledFor(level):
            self.lines += 1
            self.log.log(level, msg, extra={"event": event, **fields})


def _describe(o: Order | None, record: Any = None) -> str:
    if o is None:  # an order this log never saw requested
        return str(record.order_id) if record is not None else "?"
    price = "market" if o.kind == "market" else f"@ {o.price:.10g}"
    return f"{o.symbol} {o.side} {o.qty:g} {price} ({o.id})"


def attach_event_log(run: Any, logger: logging.Logger | None = None) -> EventLog:
    """Subscribe an :class:`EventLog` to ``run``'s journal (marks go to a no-op); return it."""
    log = EventLog(run, logger)
    run.journal.subscribe(log, _marks)
    return log
