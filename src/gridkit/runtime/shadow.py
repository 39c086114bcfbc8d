"""Shadow books: a lane's strategy run again on simulated fills, with an account of its own.

A phase controller (``progressive`` attention) compares what its proposed parameters would do
with what the base parameters do, on the same events, without sending an order: the shadow
book holds a second copy of the lane's strategy, a ``simulated`` executor (DESIGN.md §6 fill
rules) and its own account and ledger. Each step costs what one event of the real book costs
(one executor match, one strategy call), so a shadow book at most doubles the strategy's time.

:class:`BookScore` scores a book the same way whether it is the real one or a shadow, from the
account's realized profit and equity after each event.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from gridkit.core.types import (
    Accepted,
    Cancel,
    Cancelled,
    Expired,
    Fill,
    Order,
    Rejected,
    Rejection,
)
from gridkit.runtime.account import Account, Position
from gridkit.runtime.context import Context
from gridkit.runtime.ledger import Ledger

#: Rounds of strategy answers per step, as in the real book (DESIGN.md §11).
_ROUNDS = 4


class BookScore:
    """Win rate, profit factor and maximum drawdown of a book since :meth:`reset`.

    A *trade* is an event on which the account's realized profit (net of fees) moved by more
    than that event's fees: its result is that move. Win rate = winning trades / trades;
    profit factor = gross gains / gross losses (inf with gains and no loss, 1 with neither);
    drawdown = the largest fall of equity from its peak since the reset, as a fraction.
    O(1) per event.
    """

    __slots__ = ("fees", "gains", "losses", "max_dd", "peak", "realized", "trades", "wins")

    def __init__(self) -> None:
        self.realized = self.fees = math.nan
        self.peak = math.nan
        self.trades = self.wins = 0
        self.gains = self.losses = self.max_dd = 0.0

    def reset(self, realized: float, fees: float, equity: float) -> None:
        """Start a new window from the account's current figures."""
        self.realized, self.fees, self.peak = realized, fees, equity
        self.trades = self.wins = 0
        self.gains = self.losses = self.max_dd = 0.0

    def update(self, realized: float, fees: float, equity: float) -> None:
        """See the account after one event."""
        if self.realized != self.realized:
            self.reset(realized, fees, equity)
            return
        moved = realized - self.realized
        paid = fees - self.fees
        self.realized, self.fees = realized, fees
        if abs(moved) > paid + 1e-12:
            self.trades += 1
            if moved > 0:
                self.wins += 1
                self.gains += moved
            else:
                self.losses -= moved
        if equity > self.peak:
            self.peak = equity
        elif self.peak > 0:
            dd = (self.peak - equity) / self.peak
            if dd > self.max_dd:
                self.max_dd = dd

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    @property
    def profit_factor(self) -> float:
        if self.losses > 0:
            return self.gains / self.losses
        return math.inf if self.gains > 0 else 1.0

    def figures(self) -> dict[str, float]:
        """The window's figures, for a summary."""
        return {"trades": self.trades, "win_rate": self.win_rate,
                "profit_factor": self.profit_factor, "max_drawdown": self.max_dd}


class ShadowBook:
    """The lane's strategy, a fresh copy, trading on simulated fills with its own account.

    ``strategy`` is the pickled strategy as it was before the run's first event. The book has
    no risk checks. :meth:`step` takes one bar with the features, regime and attention values
    the real book's strategy saw on it; the copy's ``ctx.adjust`` and ``ctx.weights`` are the
    ones given, which is how a controller tries other parameters on it.

    A shadow book pickles with the run's state (its strategy, account, ledger, executor and
    score; its context is rebuilt), so a resumed run goes on with the same book.
    """

    def __init__(self, strategy: bytes, lane: Context, maker_fee: float,
                 taker_fee: float) -> None:
        from gridkit.plugins.executors.bars import SimulatedExecutor

        self.strategy = pickle.loads(strategy)
        real = lane.position
        account = Account(lane.account.capital, lane.account.quote)
        pos = account.add(Position(lane.symbol, real.kind, real.side, leverage=real.leverage,
                                   mmr=real.mmr, mm_amount=real.mm_amount))
        ctx = self.ctx = Context(lane.run, account, Ledger("shadow"), lane.symbol, pos)
        ctx.market = lane.market
        self.executor = SimulatedExecutor(SimulatedExecutor.Config(maker_fee, taker_fee))
        self.started = False
        self.score = BookScore()
        self.refused = 0

    def __getstate__(self) -> dict[str, Any]:
        ctx = self.ctx
        run = ctx.run
        if getattr(run, "loop", None) is not None:  # the event loop is the run's, not saved
            import attrs

            run = attrs.evolve(run, loop=None)
        return {"strategy": self.strategy, "executor": self.executor, "started": self.started,
                "score": self.score, "refused": self.refused, "run": run,
                "account": ctx.account, "ledger": ctx.ledger, "symbol": ctx.symbol,
                "side": ctx.position.side, "market": ctx.market, "bar": ctx.bar,
                "index": ctx.index}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.strategy, self.executor = state["strategy"], state["executor"]
        self.started, self.score, self.refused = state["started"], state["score"], state["refused"]
        account = state["account"]
        ctx = self.ctx = Context(state["run"], account, state["ledger"], state["symbol"],
                                 account.position(state["symbol"], state["side"]))
        ctx.market = state["market"]
        ctx.bar = ctx.event = state["bar"]
        ctx.index = state["index"]

    def step(self, bar: Any, index: int, features: dict[str, float], regime: str | None,
             weights: dict[str, float], adjust: dict[str, float]) -> None:
        """Run the copy on one bar, as the engine runs the real strategy (fills, mark, then
        ``start``/``on_bar`` and the orders)."""
        ctx = self.ctx
        ctx.bar = ctx.event = bar
        ctx.index = index
        ctx.features, ctx.regime, ctx.weights, ctx.adjust = features, regime, weights, adjust
        actions: list[Any] = []
        reports = self.executor.reports(bar, ctx.symbol)
        if reports:  # (most bars fill nothing)
            self._apply(reports, actions)
        acct = ctx.account
        acct.mark(ctx.position, bar.close)
        strategy = self.strategy
        if self.started:
            got = strategy.on_bar(ctx)
        else:
            got = strategy.start(ctx)
            self.started = True
        if got:
            actions.extend(got)
        if actions:
            self._send(actions, bar.ts)
        self.score.update(acct.realized, acct.fees, acct.equity)

    def _apply(self, reports: list[Any], actions: list[Any]) -> None:
        ctx, strategy = self.ctx, self.strategy
        for report in reports:
            state = ctx.ledger.apply(report)
            if state is None or type(report) is Accepted:
                continue
            kind = type(report)
            if kind is Fill:
                ctx.account.apply(report, ctx.symbol, state.order)
                got = strategy.on_fill(report, ctx)
            elif kind is Rejected:
                self.refused += 1
                got = strategy.on_rejected(Rejection(state.order, report.reason, report.by),
                                           ctx)
            elif kind is Expired or (kind is Cancelled and report.reason != "requested"):
                got = strategy.on_cancelled(report, ctx)
            else:
                got = None
            if got:
                actions.extend(got)

    def _send(self, actions: list[Any], ts: int) -> None:
        ctx, ex = self.ctx, self.executor
        for _ in range(_ROUNDS):
            if not actions:
                return
            immediate: list[Any] = []
            for action in actions:
                if isinstance(action, Cancel):
                    if ctx.ledger.get(action.order_id) is not None:
                        ex.cancel(action.order_id, ctx)
                    continue
                if not isinstance(action, Order):
                    continue
                order = action
                ctx.ledger.request(order, ts)
                reason = ex.submit(order, ctx)
                if reason is not None:
                    immediate.append(Rejected(order.id, ts, reason, "simulated"))
            actions = []
            self._apply(immediate + ex.reports(None, ctx.symbol), actions)


__all__ = ["BookScore", "ShadowBook"]
