"""A run's figures while it runs: trading, system and attention, for the monitors that show
them (``metrics``, ``prometheus``, ``alerts``).

:class:`RunMetrics` keeps almost nothing per event — the context, a count, the day — and
computes the figures when asked, from sums the account already keeps incrementally (equity,
peak, drawdown, fees, the FIFO lots' gross win and loss, the marks' return sums), from the
journal's order records (fill rate, refusals) and from the lanes' attention modules: a scrape
costs microseconds, an event a few attribute reads and writes. The monitors of one run share
one :class:`RunMetrics` (:meth:`RunMetrics.of`), so three of them cost one call per event.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

from gridkit.core.types import Accepted, Bar, Fill, Rejected
from gridkit.runtime.journal import Halted, OrderRequested

#: Every numeric figure of :meth:`RunMetrics.values`, with what it is: what thresholds may
#: name and what ``/metrics`` exports (as ``gridkit_<name>``).
FIGURES: dict[str, str] = {
    # trading
    "equity": "Account equity in the quote currency.",
    "cash": "Free and held cash in the quote currency.",
    "return": "Return since the start, as a fraction.",
    "drawdown": "Drawdown from the equity peak now, as a fraction.",
    "max_drawdown": "Largest drawdown from an equity peak, as a fraction.",
    "daily_return": "Return since the first event of the day (UTC, event time), a fraction.",
    "daily_loss": "Loss since the first event of the day (UTC, event time), a fraction of "
                  "that equity (0 on a day that is up).",
    "fills": "Fills so far.",
    "fees": "Fees paid so far, in the quote currency.",
    "round_trips": "Closing fills matched against open lots (FIFO).",
    "grid_profit": "Grid profit: realized profit of the closed lots, after fees.",
    "avg_profit_per_trip": "Grid profit per round trip.",
    "profit_factor": "Gross profit over gross loss of the closing fills.",
    "win_share": "Share of the gross profit and loss that was profit.",
    "sharpe": "Annualized Sharpe ratio of the marks' returns.",
    "sortino": "Annualized Sortino ratio of the marks' returns.",
    "calmar": "Total APR over the largest drawdown.",
    "grid_apr": "Grid profit over capital, per year of bars.",
    "total_apr": "Return per year of bars.",
    "orders_requested": "Limit orders the strategy requested.",
    "orders_filled": "Of those, orders filled in full.",
    "grid_fill_rate": "Orders filled in full over limit orders requested.",
    "rejections": "Orders refused (by a risk check or the exchange).",
    "rejections_in_row": "Refusals since the last acceptance.",
    "events_since_fill": "Events since the last fill (a grid stalled).",
    # system
    "events": "Accepted events processed.",
    "events_per_s": "Accepted events per second of wall time since the start.",
    "last_event_age_s": "Seconds since the last accepted event (paper and live).",
    "event_ts": "Time of the last accepted event, epoch milliseconds.",
    "latency_p50_ms": "Event latency, median of the last 1,024 events: wall clock when the "
                      "bot has acted on an event minus the event's exchange time (a bar's: "
                      "its close), ms (paper and live).",
    "latency_p99_ms": "Event latency, 99th percentile of the last 1,024 events, ms.",
    "errors": "Error lines logged by gridkit since the start.",
    "reconnects": "Reconnects logged (streams and REST) since the start.",
    "rss_mb": "Resident memory of the process now, MB.",
    "peak_rss_mb": "Peak resident memory of the process, MB.",
    "cpu_s": "CPU seconds used by the process.",
    # attention (the first lane with a phased attention module)
    "attention_progress": "Progress through the learning phase, 0 to 1.",
    "attention_window": "Progress through the current comparison window, 0 to 1.",
    "attention_rollbacks": "Times active attention was rolled back.",
    "real_win_rate": "Real book's win rate in the comparison window.",
    "real_profit_factor": "Real book's profit factor in the comparison window.",
    "real_max_drawdown": "Real book's largest drawdown in the comparison window.",
    "shadow_win_rate": "Shadow book's win rate in the comparison window.",
    "shadow_profit_factor": "Shadow book's profit factor in the comparison window.",
    "shadow_max_drawdown": "Shadow book's largest drawdown in the comparison window.",
}
#: The figures that read the process (/proc): computed for the alerts only when named.
SYSTEM_FIGURES = ("rss_mb", "peak_rss_mb", "cpu_s")
#: Latency samples kept (a ring): the percentiles are of the last this many events.
LATENCY_SAMPLES = 1024
_DAY_MS = 86_400_000


class RunMetrics:
    """The figures of the run whose events it is shown (``on_event``) and whose journal
    records it reads (:meth:`record`).

    ``clock``: note the wall time of each event (paper and live runs: the last event's age, a
    stale feed, event latency); a backtest's events come as fast as the loop runs, and skipping
    the clock keeps its cost per event to a few attribute reads and writes. Functions given to
    :meth:`every` are called every so many events, from the same call (the alerts' checks).
    Error and reconnect lines are counted by a logging handler on the ``gridkit`` logger,
    from :meth:`start` to :meth:`close`.
    """

    def __init__(self, clock: bool = True) -> None:
        self.ctx: Any = None
        #: Each lane's context by symbol, as its events came.
        self.lanes: dict[str, Any] = {}
        self.events = 0
        self.first_ts: int | None = None
        self.started = time.monotonic()
        self.last_event: float | None = None
        self.clock = clock
        self._hooks: list[list[Any]] = []  # [every, fn, next due]
        #: Called with each ``Halted`` record (the alerts' halt alert: no subscriber more).
        self.on_halt: list[Callable[[Any], None]] = []
        self._due = 1  # the first event, then the hooks' next
        self._day_end = -sys.maxsize  # the current UTC day's end, epoch ms
        self.day_equity: float | None = None
        self.requested = self.filled = self.rejections = self.rejections_in_row = 0
        self.fill_at = 0  # the event count at the last fill
        self.latency = array("d", bytes(8 * LATENCY_SAMPLES))
        self.latencies = 0
        self._bar_span = sys.maxsize  # the smallest step between bars seen, ms
        self._last_bar = None
        self.log = _LogCounter()
        self._system_at: float | None = None
        self._system_values: dict[str, Any] = {}
        #: ``on_event(ctx)``: called after each accepted event; O(1), no allocation.
        self.on_event: Callable[[Any], None] = self._timed if clock else self._counted

    @classmethod
    def of(cls, journal: Any, clock: bool) -> tuple[RunMetrics, bool]:
        """The run's one RunMetrics, kept on its journal: (it, made now). The monitor that
        made it subscribes it to the journal (:meth:`start`)."""
        made = journal.shared.get("metrics")
        if made is not None:
            return made, False
        made = journal.shared["metrics"] = cls(clock)
        return made, True

    def start(self, journal: Any) -> None:
        """Read the journal's order records from now on, and count log lines."""
        journal.subscribe(self.record, False)
        logging.getLogger("gridkit").addHandler(self.log)

    def close(self) -> None:
        """Stop counting log lines."""
        logging.getLogger("gridkit").removeHandler(self.log)

    def every(self, n: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` every ``n`` events (first after event ``n + 1``)."""
        self._hooks.append([n, fn, self.events + 1 + n])
        self._due = min(self._due, self.events + 1)

    def _counted(self, ctx: Any) -> None:
        if ctx is not self.ctx:
            self.ctx = self.lanes[ctx.symbol] = ctx
        n = self.events = self.events + 1
        if ctx.event.ts >= self._day_end:
            self._new_day(ctx)
        if n >= self._due:
            self._tick(n)

    def _timed(self, ctx: Any) -> None:
        self.last_event = time.monotonic()
        event = ctx.event
        ts = event.ts
        if type(event) is Bar:  # its exchange time is its close: the next bar's open
            last, self._last_bar = self._last_bar, ts
            if last is not None and 0 < ts - last < self._bar_span:
                self._bar_span = ts - last
            ts += self._bar_span  # (sys.maxsize until two bars came: no sample, below)
        if ts < sys.maxsize:
            self.latency[self.latencies % LATENCY_SAMPLES] = time.time() * 1000.0 - ts
            self.latencies += 1
        self._counted(ctx)

    def _new_day(self, ctx: Any) -> None:
        ts = ctx.event.ts
        self._day_end = (ts // _DAY_MS + 1) * _DAY_MS
        self.day_equity = ctx.account.equity
        if self.first_ts is None:
            self.first_ts = ts

    def _tick(self, n: int) -> None:
        due = sys.maxsize
        for hook in self._hooks:
            if n >= hook[2]:
                hook[2] = n + hook[0]
                hook[1]()
            due = min(due, hook[2])
        self._due = due

    def record(self, record: Any) -> None:
        """Count limit orders requested and filled, refusals and the last fill (journal
        records: a few per order, none per bar)."""
        kind = type(record)
        if kind is Fill:
            self.fill_at = self.events
            if record.remaining <= 0:
                self.filled += 1
        elif kind is OrderRequested:
            if record.order.kind == "limit":
                self.requested += 1
        elif kind is Rejected:
            self.rejections += 1
            self.rejections_in_row += 1
        elif kind is Accepted:
            self.rejections_in_row = 0
        elif kind is Halted:
            for fn in self.on_halt:
                fn(record)

    def values(self, system: bool = True) -> dict[str, Any]:
        """Every figure now: numbers (None where not known yet) and a few labels and tables
        (``regime``, ``attention``); without the process's memory and CPU unless ``system``
        (they read /proc)."""
        from gridkit.summary import YEAR_MS, profit_factor, return_ratios

        now = time.monotonic()
        out: dict[str, Any] = {"events": self.events,
                               "events_per_s": self.events / max(now - self.started, 1e-9),
                               "last_event_age_s": (now - self.last_event
                                                    if self.last_event is not None else None),
                               "errors": self.log.errors, "reconnects": self.log.reconnects,
                               "orders_requested": self.requested,
                               "orders_filled": self.filled,
                               "grid_fill_rate": (self.filled / self.requested
                                                  if self.requested else None),
                               "rejections": self.rejections,
                               "rejections_in_row": self.rejections_in_row,
                               "events_since_fill": self.events - self.fill_at}
        out.update(self._latency())
        if system:
            out.update(self._system(now))
        ctx = self.ctx
        if ctx is None:
            return out
        acct = ctx.account
        ts = getattr(getattr(ctx, "event", None), "ts", None)
        positions = list(acct.positions.values())
        wins = sum(p.gross_win for p in positions)
        losses = sum(p.gross_loss for p in positions)
        trips = sum(p.round_trips for p in positions)
        # (days first, as the run summary computes them, so the figures agree to the bit)
        days = (ts - self.first_ts) / 86_400_000 if ts is not None and self.first_ts else 0.0
        years = days * 86_400_000 / YEAR_MS
        sharpe, sortino = return_ratios(list(acct.returns), years)
        capital = acct.capital
        equity = acct.equity
        ret = (equity / capital - 1.0) if capital else None
        grid = sum(p.grid_profit for p in positions)
        total_apr = ret / years if ret is not None and years > 0 else None
        day = self.day_equity
        daily = equity / day - 1.0 if day else None
        out.update({
            "equity": equity, "cash": acct.cash, "return": ret,
            "drawdown": acct.drawdown, "max_drawdown": acct.max_drawdown,
            "daily_return": daily, "daily_loss": max(0.0, -daily) if daily is not None else None,
            "fills": sum(p.buy_fills + p.sell_fills for p in positions),
            "fees": sum(p.fees for p in positions), "round_trips": trips,
            "grid_profit": grid, "avg_profit_per_trip": grid / trips if trips else None,
            "profit_factor": profit_factor(wins, losses),
            "win_share": wins / (wins + losses) if wins + losses > 0 else None,
            "sharpe": sharpe, "sortino": sortino,
            "calmar": (total_apr / acct.max_drawdown
                       if total_apr is not None and acct.max_drawdown > 0 else None),
            "grid_apr": grid / capital / years if capital and years > 0 else None,
            "total_apr": total_apr,
            "event_ts": ts, "halted": ctx.halted, "paused": ctx.paused,
            "regime": getattr(ctx, "regime", None)})
        out.update(self._attention())
        return out

    def _system(self, now: float) -> dict[str, Any]:
        """The process's memory and CPU, read at most once a second (they read /proc: the
        alerts' checks would otherwise pay it every ``every`` events)."""
        if self._system_at is None or now - self._system_at >= 1.0:
            self._system_at, self._system_values = now, _system()
        return self._system_values

    def _latency(self) -> dict[str, float | None]:
        n = min(self.latencies, LATENCY_SAMPLES)
        if not n:
            return {"latency_p50_ms": None, "latency_p99_ms": None}
        kept = sorted(self.latency[:n])
        return {"latency_p50_ms": kept[(n - 1) // 2],
                "latency_p99_ms": kept[min(n - 1, int(0.99 * n))]}

    def _attention(self) -> dict[str, Any]:
        """Each lane's attention modules' figures (``attention``: symbol -> module -> its
        :meth:`~gridkit.Attention.figures`, with the weights applied now), and the flat figures
        of the first phased one."""
        table: dict[str, Any] = {}
        flat: dict[str, Any] = {}
        for symbol, ctx in list(self.lanes.items()):
            modules = getattr(ctx, "attention", ())
            if not modules:
                continue
            lane = table[symbol] = {"weights": dict(ctx.weights)}
            for module in modules:
                figures = module.figures()
                lane[module.name] = figures
                if not flat and "progress" in figures:
                    flat = {"attention_phase": figures.get("phase"),
                            "attention_progress": figures.get("progress"),
                            "attention_window": figures.get("window"),
                            "attention_rollbacks": figures.get("rollbacks")}
                    for book in ("real", "shadow"):
                        for key, value in (figures.get(book) or {}).items():
                            if key != "trades":
                                flat[f"{book}_{key}"] = value
        if table:
            flat["attention"] = table
        return flat

    def health(self, stale_after: float, live: bool) -> tuple[str, list[str]]:
        """``healthy``, ``degraded`` or ``unhealthy``, with the reasons: trading halted
        (unhealthy), the feed paused, or a reconnect logged in the last ``stale_after``
        seconds (degraded), no event for ``stale_after`` seconds in a paper or live run
        (unhealthy)."""
        reasons, status = [], "healthy"
        for symbol, ctx in list(self.lanes.items()):
            where = f" ({symbol})" if len(self.lanes) > 1 else ""
            if ctx.halted:
                reasons.append(f"halted{where}: {ctx.halted}")
                status = "unhealthy"
            if ctx.paused:
                reasons.append(f"paused{where}: {ctx.paused}")
                status = "degraded" if status == "healthy" else status
        now = time.monotonic()
        reconnected = self.log.reconnected
        if live and reconnected is not None and now - reconnected < stale_after:
            reasons.append(f"reconnecting: {self.log.reconnects} reconnects, the last "
                           f"{now - reconnected:.0f} s ago")
            status = "degraded" if status == "healthy" else status
        if live and self.last_event is not None:
            age = now - self.last_event
            if age > stale_after:
                reasons.append(f"stale feed: no event for {age:.0f} s")
                status = "unhealthy"
        return status, reasons


class _LogCounter(logging.Handler):
    """Counts the error lines and reconnects gridkit logs (as logged: a line the log level
    drops is not counted)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors = self.reconnects = 0
        #: When the last reconnect was logged (monotonic seconds), or None.
        self.reconnected: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        if getattr(record, "event", None) == "reconnect":
            self.reconnects += 1
            self.reconnected = time.monotonic()

    def handle(self, record: logging.LogRecord) -> bool:  # (no lock: two int additions)
        if record.levelno >= self.level:
            self.emit(record)
        return True


def _system() -> dict[str, Any]:
    """This process: resident memory (MB) now and at its peak, CPU seconds."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    try:
        with open("/proc/self/statm") as f:
            rss_mb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        rss_mb = peak_mb
    t = os.times()
    return {"rss_mb": rss_mb, "peak_rss_mb": peak_mb, "cpu_s": t.user + t.system}
