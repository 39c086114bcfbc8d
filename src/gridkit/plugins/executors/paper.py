"""Built-in executor ``paper``: live market data, simulated fills — the ``simulated-trades``
rules on the live trade prints, with the journal, resume and reporting of a live run."""

from __future__ import annotations

from typing import Any

from attrs import frozen

from gridkit.core.config import non_negative, option
from gridkit.core.errors import ConfigError
from gridkit.core.types import Order
from gridkit.plugins.executors.trades import SimulatedTradesExecutor, _Tape
from gridkit.runtime.context import Context, RunInfo


class PaperExecutor(SimulatedTradesExecutor):
    """Paper trading: orders fill against the live trade prints, by the ``simulated-trades`` rules.

    A paper run (``mode = "paper"``) is the rehearsal of a live one: the same live source, the
    same engine, the same journal — every order request committed to the store before it is
    "sent", every report as it comes — the same summary, and ``gridkit run --resume`` after a
    stop. Only the exchange is simulated: this executor is ``simulated-trades`` (rules 1 to 6
    there: live from the next print, a print's size shared, resting limits at their price with
    the maker fee, the queue rule, stops, OCO) fed with the prints of a live source such as
    ``ccxt-stream`` with ``streams = ["trades", ...]``; quotes and depth updates, if the source
    watches them, feed the queue rule. The fills of a paper run on a sequence of prints are
    exactly those ``simulated-trades`` makes on the same sequence (with ``latency_ms = 0``).

    ``latency_ms`` models the time an order takes to reach the exchange: an order reaches the
    book at the first print at least ``latency_ms`` later (by the exchange's timestamps) than
    the last print or quote the executor had seen when the order was sent; prints before that
    pass it by. Cancels take effect at once.

    Resume: the open orders, what is left of each, the queue ahead of each resting order, the
    last best bid and ask, the held balances and the fill counters are saved with the run's
    state at every commit, so a stopped paper run resumed with ``--resume`` goes on with the
    same open orders (the grid is not placed again) on the prints that come after the restart.
    Prints missed while the run was stopped are not replayed: an order that the market went
    through meanwhile fills on the first later print through its price.

    Only for ``mode = "paper"``: a backtest uses ``simulated-trades`` (or ``simulated``), a
    live run an executor that sends real orders. In a paper run without an ``[executor]``
    table, ``paper`` is the default when every lane's source provides trades.
    """

    name = "paper"

    @frozen
    class Config(SimulatedTradesExecutor.Config):
        latency_ms: int = option(
            0, doc="Milliseconds (exchange time) an order takes to reach the book: it arrives "
                   "at the first print this much after the last market data seen when it was "
                   "sent (0: the next print, as simulated-trades).",
            validator=non_negative())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._due: dict[str, int] = {}  # order id -> exchange time it reaches the book

    def validate(self, run: RunInfo) -> None:
        super().validate(run)
        if run.mode != "paper":
            other = ("simulated-trades (fills from the file's prints) or simulated"
                     if run.mode == "backtest" else "an executor that sends real orders")
            raise ConfigError(f"executor 'paper' simulates fills on live data and runs only "
                              f"in mode = \"paper\"; a {run.mode} run needs {other}")

    def submit(self, order: Order, ctx: Context) -> str | None:
        refusal = super().submit(order, ctx)
        if refusal is None and self.config.latency_ms:
            self._due[order.id] = self._ts + self.config.latency_ms
        return refusal

    def _arriving(self, book: _Tape, ts: int) -> list[Order]:
        due = self._due
        if not due:
            return super()._arriving(book, ts)
        arriving, waiting = [], {}
        for oid, order in book.queued.items():
            if due.get(oid, ts) <= ts:
                due.pop(oid, None)
                arriving.append(order)
            else:
                waiting[oid] = order
        book.queued = waiting
        return arriving

    def _forget(self, order: Order) -> None:
        self._due.pop(order.id, None)
        super()._forget(order)
