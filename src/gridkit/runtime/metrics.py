"""A run's figures while it runs: trading, system and attention, for the monitors that show
them (``metrics``, ``prometheus``).

:class:`RunMetrics` keeps almost nothing per event — the context, a count and the time — and
computes the figures when asked, from sums the account already keeps incrementally (equity,
peak, drawdown, fees, the FIFO lots' gross win and loss, the marks' return sums): a scrape
costs microseconds, an event a few attribute writes.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

#: The numeric figures :meth:`RunMetrics.values` gives (what thresholds and gauges may name).
FIGURES = ("equity", "cash", "return", "drawdown", "max_drawdown", "fills", "fees",
           "round_trips", "grid_profit", "avg_profit_per_trip", "profit_factor", "win_share",
           "sharpe", "sortino", "grid_apr", "total_apr", "events", "events_per_s",
           "last_event_age_s", "event_ts", "rss_mb", "peak_rss_mb", "cpu_s")


class RunMetrics:
    """The figures of the run whose events it is shown (:meth:`on_event`).

    ``clock``: note the wall time of each event (paper and live runs, for the last event's
    age and a stale feed; a backtest's events come as fast as the loop runs, and skipping the
    clock keeps its cost per event to a few attribute writes). ``hook`` is called every
    ``every`` events (the alerts' checks), from the same call."""

    def __init__(self, clock: bool = True, every: int = 0,
                 hook: Callable[[], None] | None = None) -> None:
        self.ctx: Any = None
        self.events = 0
        self.first_ts: int | None = None
        self.started = time.monotonic()
        self.last_event: float | None = None
        self.clock = clock
        self.every, self.hook = every, hook
        self._due = 1  # the first event, then every `every` (none: never again)
        self.on_event = self._timed if clock else self._counted  # type: ignore[method-assign]

    def on_event(self, ctx: Any) -> None:
        """Called after each accepted event: O(1), no allocation."""
        (self._timed if self.clock else self._counted)(ctx)

    def _counted(self, ctx: Any) -> None:
        self.ctx = ctx
        n = self.events = self.events + 1
        if n >= self._due:
            self._tick(ctx)

    def _timed(self, ctx: Any) -> None:
        self.ctx = ctx
        self.last_event = time.monotonic()
        n = self.events = self.events + 1
        if n >= self._due:
            self._tick(ctx)

    def _tick(self, ctx: Any) -> None:
        if self.first_ts is None:
            self.first_ts = getattr(ctx.event, "ts", None)
        if self.every and self.hook is not None:
            self._due = self.events + self.every
            if self.events > 1:
                self.hook()
        else:
            self._due = sys.maxsize

    def values(self, system: bool = True) -> dict[str, Any]:
        """Every figure now: numbers (None where not known yet) and a few labels; without the
        process's memory and CPU unless ``system`` (they read /proc)."""
        from gridkit.summary import YEAR_MS, profit_factor, return_ratios

        now = time.monotonic()
        out: dict[str, Any] = {"events": self.events,
                               "events_per_s": self.events / max(now - self.started, 1e-9),
                               "last_event_age_s": (now - self.last_event
                                                    if self.last_event is not None else None)}
        if system:
            out.update(_system())
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
        ret = (acct.equity / capital - 1.0) if capital else None
        grid = sum(p.grid_profit for p in positions)
        out.update({
            "equity": acct.equity, "cash": acct.cash, "return": ret,
            "drawdown": acct.drawdown, "max_drawdown": acct.max_drawdown,
            "fills": sum(p.buy_fills + p.sell_fills for p in positions),
            "fees": sum(p.fees for p in positions), "round_trips": trips,
            "grid_profit": grid, "avg_profit_per_trip": grid / trips if trips else None,
            "profit_factor": profit_factor(wins, losses),
            "win_share": wins / (wins + losses) if wins + losses > 0 else None,
            "sharpe": sharpe, "sortino": sortino,
            "grid_apr": grid / capital / years if capital and years > 0 else None,
            "total_apr": ret / years if ret is not None and years > 0 else None,
            "event_ts": ts, "halted": ctx.halted, "paused": ctx.paused,
            "regime": getattr(ctx, "regime", None)})
        return out

    def health(self, stale_after: float, live: bool) -> tuple[str, list[str]]:
        """``healthy``, ``degraded`` or ``unhealthy``, with the reasons: trading halted
        (unhealthy), the feed paused or reconnecting (degraded), no event for
        ``stale_after`` seconds in a paper or live run (unhealthy)."""
        reasons, status = [], "healthy"
        ctx = self.ctx
        if ctx is not None and ctx.halted:
            reasons.append(f"halted: {ctx.halted}")
            status = "unhealthy"
        if ctx is not None and ctx.paused:
            reasons.append(f"paused: {ctx.paused}")
            status = "degraded" if status == "healthy" else status
        if live and self.last_event is not None:
            age = time.monotonic() - self.last_event
            if age > stale_after:
                reasons.append(f"stale feed: no event for {age:.0f} s")
                status = "unhealthy"
        return status, reasons


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
