"""The heartbeat and the watchdog of a paper or live run: log lines that say it is alive.

The engine makes one :class:`Heartbeat` per paper or live run from the ``[live]`` table and
calls :meth:`Heartbeat.tick` with the monotonic time as each event arrives (live sources send a
:class:`gridkit.Clock` tick every second when the market is quiet, so it is called then too).
A tick is O(1) unless something is due:

* every ``heartbeat`` seconds, one line on ``gridkit.heartbeat``: the run's status, equity,
  the age of the last market event, and per symbol the last price, position and open orders;
* once ``watchdog`` seconds pass without a market event (clock ticks do not count), one warning
  on ``gridkit.watchdog``, and an info line when data comes back;
* once ``grid_quiet`` seconds pass without an order event (a request, a cancel, a report), one
  warning, and an info line at the next order event.

A setting of 0 switches that line off.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from gridkit.core.types import Clock
from gridkit.runtime.eventlog import ORDER_EVENTS

__all__ = ["Heartbeat"]

_INF = math.inf


class Heartbeat:
    """Heartbeat lines and watchdog warnings of one run (see the module's doc).

    ``live`` is the run's :class:`~gridkit.runtime.pipeline_file.LiveSection` (or anything with
    ``heartbeat``, ``watchdog`` and ``grid_quiet`` seconds); ``start`` the monotonic time the run
    started, ``clock`` the monotonic clock the journal's order events are timed with. :attr:`last`
    holds the figures of the last heartbeat line.
    """

    def __init__(self, run: Any, live: Any, *, start: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None) -> None:
        self.run = run
        self.clock = clock
        self.every = float(live.heartbeat)
        self.watchdog = float(live.watchdog)
        self.quiet = float(live.grid_quiet)
        log = logger if logger is not None else logging.getLogger("gridkit")
        self.beat_log = log.getChild("heartbeat")
        self.dog_log = log.getChild("watchdog")
        now = clock() if start is None else start
        #: Monotonic times of the last market event and the last order event.
        self.last_data = now
        self.last_order = now
        self.next_beat = now + self.every if self.every > 0 else _INF
        self.data_stale = False
        self.grid_quiet = False
        #: When :meth:`tick` next has something to do.
        self.due = self._next_due()
        self.last: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        """False when every line is switched off (the engine then does not call tick)."""
        return self.every > 0 or self.watchdog > 0 or self.quiet > 0

    def attach(self) -> Heartbeat:
        """Follow the run's order events through its journal (for ``grid_quiet``)."""
        if self.quiet > 0:
            self.run.journal.subscribe(self.on_record, False)
        return self

    def on_record(self, record: Any) -> None:
        """A journal record: an order event restarts the ``grid_quiet`` wait."""
        if type(record) in ORDER_EVENTS:
            now = self.clock()
            if self.grid_quiet:
                self.grid_quiet = False
                self.dog_log.info("order events again after %.0f s", now - self.last_order,
                                  extra={"event": "grid_active",
                                         "quiet_s": round(now - self.last_order, 3)})
                self.due = min(self.due, now + self.quiet)
            self.last_order = now

    def tick(self, now: float, event: Any = None) -> None:
        """Called with the monotonic time as an event (``event``, if given) arrives; O(1)
        unless a line is due."""
        if event is not None and type(event) is not Clock:
            self.last_data = now
            if self.data_stale:
                self._data_back(now)
        if now >= self.due:
            self._check(now)

    def _next_due(self) -> float:
        due = self.next_beat
        if self.watchdog > 0 and not self.data_stale:
            due = min(due, self.last_data + self.watchdog)
        if self.quiet > 0 and not self.grid_quiet:
            due = min(due, self.last_order + self.quiet)
        return due

    def _check(self, now: float) -> None:
        if self.watchdog > 0 and not self.data_stale and now - self.last_data >= self.watchdog:
            self.data_stale = True
            age = now - self.last_data
            self.dog_log.warning("no market data for %.0f s (watchdog %g s)", age, self.watchdog,
                                 extra={"event": "data_stale", "data_age_s": round(age, 3),
                                        "watchdog_s": self.watchdog})
        if self.quiet > 0 and not self.grid_quiet and now - self.last_order >= self.quiet:
            self.grid_quiet = True
            age = now - self.last_order
            self.dog_log.warning("no order event for %.0f s: the grid has gone quiet "
                                 "(grid_quiet %g s)", age, self.quiet,
                                 extra={"event": "grid_quiet", "quiet_s": round(age, 3),
                                        "grid_quiet_s": self.quiet})
        if now >= self.next_beat:
            self.beat(now)
            # The next beat on the schedule, skipping those a long stall missed.
            missed = math.floor((now - self.next_beat) / self.every) + 1
            self.next_beat += missed * self.every
        self.due = self._next_due()

    def _data_back(self, now: float) -> None:
        self.data_stale = False
        self.dog_log.info("market data is back", extra={"event": "data_back"})
        self.due = min(self.due, self._next_due())

    def status(self) -> str:
        """The run's status in a word or two: running, paused, halted or stopping."""
        run = self.run
        if run.stopping:
            return f"stopping ({run.stopping})"
        if run.halted is not None:
            return f"halted: {run.halted}"
        paused = [lr.ctx.paused for lr in run.lanes if lr.ctx.paused is not None]
        if paused:
            return f"paused: {paused[0]}"
        return "running"

    def beat(self, now: float) -> dict[str, Any]:
        """Log the heartbeat line now; return its figures (kept in :attr:`last`)."""
        run = self.run
        open_by: dict[str, int] = {}
        for state in run.ledger.open.values():
            sym = state.order.symbol
            open_by[sym] = open_by.get(sym, 0) + 1
        symbols = {}
        for lr in run.lanes:
            pos = lr.ctx.position
            symbols[lr.lane.symbol] = {"price": pos.price, "position": pos.qty,
                                       "open_orders": open_by.get(lr.lane.symbol, 0)}
        age = now - self.last_data
        status = self.status()
        equity = run.account.equity
        figures = {"status": status, "equity": equity, "data_age_s": round(age, 3),
                   "events": run.seen, "symbols": symbols}
        parts = "; ".join(f"{sym} {s['price']:.10g} position {s['position']:.8g} "
                          f"open {s['open_orders']}" for sym, s in symbols.items())
        self.beat_log.info("%s; equity %.2f; last data %.1f s ago; %s", status, equity, age,
                           parts, extra={"event": "heartbeat", **figures})
        self.last = figures
        return figures

