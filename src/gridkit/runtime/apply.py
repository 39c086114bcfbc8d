"""The one apply path of reports, and the sending of orders: DESIGN.md §11 rules 1 to 3.

Reports from the executor, and refusals by the risk checks, are booked here into the ledger,
the account, the journal and the strategies' callbacks. Orders are vetted, journalled (and in
paper and live runs committed) before they are sent.
"""

from __future__ import annotations

from typing import Any

import attrs

from gridkit.core.components import Component
from gridkit.core.types import (
    Accepted,
    Cancel,
    Cancelled,
    Expired,
    Fill,
    FundingPaid,
    Order,
    Reject,
    Rejected,
    Rejection,
)
from gridkit.runtime.journal import (
    CancelRequested,
    Halted,
    Liquidated,
    OrderRequested,
    Paused,
    Unhalted,
)
from gridkit.runtime.runstate import LaneRun, Run
from gridkit.runtime.state import snapshot

#: Rounds of strategy answers to refusals per event: a strategy that keeps re-proposing a
#: refused order cannot spin.
MAX_ROUNDS = 4



def apply_reports(run: Run, reports: list[Any]) -> None:
    """Book reports into the ledger, the account, the journal and the strategies' callbacks;
    the strategies' answers wait in their lane's ``actions``."""
    ledger, account, emit = run.ledger, run.account, run.journal.emit
    by_symbol = run.by_symbol
    for report in reports:
        if type(report) is FundingPaid:  # not an order's: the wallet's
            account.book_funding(report.symbol, report.amount)
            lr = by_symbol.get(report.symbol)
            if lr is not None:
                lr.funding_paid += report.amount
            emit(report)
            continue
        state = ledger.apply(report)
        emit(report)
        if state is None:
            continue
        kind = type(report)
        if kind is Accepted:  # the most common report: nothing more to do
            run.orders_placed += 1
            continue
        order = state.order
        lr = by_symbol.get(order.symbol) or run.lanes[0]
        if kind is Fill:
            account.apply(report, order.symbol, order)
            if lr.started:
                got = lr.lane.strategy.on_fill(report, lr.ctx)
                if got:
                    lr.actions.extend(got)
        elif kind is Rejected:
            _count(run, report.by, report.reason)
            got = lr.lane.strategy.on_rejected(Rejection(order, report.reason, report.by),
                                               lr.ctx)
            if got:
                lr.actions.extend(got)
        elif kind is Expired or (kind is Cancelled and report.reason != "requested"):
            if kind is Cancelled:
                run.orders_cancelled += 1
            got = lr.lane.strategy.on_cancelled(report, lr.ctx)
            if got:
                lr.actions.extend(got)
        else:
            run.orders_cancelled += 1


def _count(run: Run, by: str, reason: str) -> None:
    key = f"{by}: {reason}"
    run.rejected[key] = run.rejected.get(key, 0) + 1


def execute(run: Run, lr: LaneRun, risk_checks: tuple[tuple[str, Any], ...], ts: int) -> None:
    """Send what the lane's strategy decided: each order vetted by the risk checks, journalled
    (and in paper and live runs committed) before it is sent; then book what the executor
    answered, and send the strategy's answers to refusals, up to :data:`MAX_ROUNDS` rounds."""
    p = run.pipeline
    executor, emit = p.executor, run.journal.emit
    journaled = bool(run.journal.subscribers)
    ctx, ledger = lr.ctx, run.ledger
    ex_name = p.origin(executor)[1].name
    for _ in range(MAX_ROUNDS):
        actions, lr.actions = lr.actions, []
        if ctx.paused is not None:
            lr.deferred.extend(actions)
            run.deferred += len(actions)
            return
        if lr.deferred:  # the pause is over: what the strategy asked for meanwhile
            actions, lr.deferred = lr.deferred + actions, []
        if not actions:
            return
        if run.halted is not None:
            for action in actions:
                if isinstance(action, Order):
                    _count(run, "engine", "trading halted")
            return
        sendable: list[Order | Cancel] = []
        refused: list[Rejected] = []
        for action in actions:
            if isinstance(action, Cancel):
                if ledger.get(action.order_id) is not None:
                    if journaled:
                        emit(CancelRequested(action.order_id, ts))
                    sendable.append(action)
                continue
            if not isinstance(action, Order):
                _bad_action(run, lr, f"returned {action!r}, not an Order or a Cancel")
            order = action
            if not order.symbol:
                order = _with_symbol(order, lr.lane.symbol)
            if order.id in ledger.open:
                _bad_action(run, lr, f"returned an order whose client order id {order.id!r} is "
                                     f"already live (make orders with ctx.order)")
            by = ""
            checked: Order | Reject = order
            for name, check in risk_checks:
                checked = check(checked, ctx)
                if isinstance(checked, Reject):
                    by = name
                    break
                if not isinstance(checked, Order) or checked.id != order.id:
                    _bad_check(run, check, checked)
            if not isinstance(checked, Reject):
                order = checked  # as a risk check may have resized it: that is what is sent
            ledger.request(order, ts)
            if journaled:  # no record made when no one reads the journal
                emit(OrderRequested(order, ts))
            if isinstance(checked, Reject):
                refused.append(Rejected(order.id, ts, checked.reason, by))
                continue
            sendable.append(order)
        if refused:
            apply_reports(run, refused)
        if run.eager and sendable:
            # Journal first: the requests are committed before they are sent.
            p.store.commit(snapshot(run) if p.store.durable else None)
        immediate: list[Any] = []
        for action in sendable:
            if isinstance(action, Cancel):
                executor.cancel(action.order_id, ctx)
                continue
            reason = executor.submit(action, ctx)
            if reason is not None:
                immediate.append(Rejected(action.id, ts, reason, ex_name))
        apply_reports(run, immediate + executor.reports(None, lr.lane.symbol))


def _bad_action(run: Run, lr: LaneRun, what: str) -> None:
    """A strategy returned something the engine cannot send: name the strategy."""
    from gridkit.core.errors import ComponentError

    spec, reg = run.pipeline.origin(lr.lane.strategy)
    raise ComponentError(reg.kind, reg.name, reg.origin, TypeError(what), f"({spec.path})")


def _bad_check(run: Run, check: Any, answer: Any) -> None:
    """A risk check answered with something other than the order (resized, same id) or a
    Reject: name the check."""
    from gridkit.core.errors import ComponentError

    spec, reg = run.pipeline.origin(check.__self__)
    raise ComponentError(reg.kind, reg.name, reg.origin, TypeError(
        f"check() returned {answer!r}; it must return the order (resized, with its id) or a "
        f"Reject"), f"({spec.path})")


def _with_symbol(order: Order, symbol: str) -> Order:
    return attrs.evolve(order, symbol=symbol)


def halt(run: Run, reason: str, ts: int) -> None:
    """A risk check stopped trading: every lane halted, every open order cancelled.

    What a lift proposes again (:func:`unhalt`): the open orders, with what each had left, and
    the orders still waiting to be sent (those a lift had proposed again included)."""
    run.halted = reason
    waiting = [a for lr in run.lanes for a in lr.actions if isinstance(a, Order)]
    for lr in run.lanes:
        lr.ctx.halted = reason
        lr.actions.clear()
    run.journal.emit(Halted(ts, reason))
    p = run.pipeline
    run.halt_orders = [s.order if s.filled <= 0 else attrs.evolve(s.order, qty=s.remaining)
                       for s in run.ledger.open.values()] + waiting
    for oid in list(run.ledger.open):
        run.journal.emit(CancelRequested(oid, ts))
        p.executor.cancel(oid, run.lanes[0].ctx)
    for lr in run.lanes:
        apply_reports(run, p.executor.reports(None, lr.lane.symbol))


def unhalt(run: Run, by: str, ts: int) -> None:
    """A risk check lifted the halt (``by`` says who): trading resumes, and the orders the
    halt cancelled go to their lanes again, with the client order ids the strategies know them
    by and what each had left, to be vetted by the risk checks and sent like new ones."""
    was, run.halted = run.halted, None
    for lr in run.lanes:
        lr.ctx.halted = None
    run.journal.emit(Unhalted(ts, by, was or ""))
    orders, run.halt_orders = run.halt_orders, []
    for order in orders:
        lr = run.by_symbol.get(order.symbol) or run.lanes[0]
        lr.actions.append(order)


def liquidate(run: Run, lr: LaneRun, pos: Any, price: float, ts: int) -> None:
    """The exchange liquidated ``pos`` at ``price``: book it, journal it, halt the run."""
    qty, fee = run.account.liquidate(pos, price)
    run.journal.emit(Liquidated(ts, pos.symbol, qty, price, fee))
    if run.halted is None:  # (both sides of a hedge may go on one bar: one halt)
        side = f" {pos.side}" if pos.side else ""
        halt(run, f"liquidated: {pos.symbol}{side} {qty:g} at {price:.8g}", ts)


def pause_changed(run: Run, lr: LaneRun, ts: int) -> None:
    """Journal a lane's pause or resumption."""
    run.journal.emit(Paused(ts, lr.ctx.paused))


def mark(run: Run, lr: LaneRun, ts: int, price: float) -> float:
    """Mark the lane's position at ``price``; journal the account; its equity."""
    pos = lr.ctx.position
    acct = run.account
    equity = acct.mark(pos, price)
    run.journal.mark(ts, pos.symbol, price, acct.cash, pos.qty, equity)
    return equity


def overrides(component: Component, base: type, method: str) -> bool:
    """True if the component's class defines ``method`` rather than inheriting the no-op."""
    return getattr(type(component), method) is not getattr(base, method)
