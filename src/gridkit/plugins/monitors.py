"""Built-in monitors: ``audit`` (a hash-chained log of what the run sent and heard),
``metrics`` (the run's trading, system and attention figures), ``prometheus`` (those figures
over HTTP: ``/metrics``, ``/healthz``, ``/api/v1/dashboard``) and ``alerts`` (thresholds on
them, posted to a webhook)."""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import attrs
from attrs import frozen

from gridkit.core.components import Monitor, Store
from gridkit.core.config import OptionError, at_least, non_negative, option, positive
from gridkit.core.errors import ConfigError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Rejected
from gridkit.runtime import journal as j

#: The journal records the audit log keeps (marks, one per bar, are the equity curve's).
AUDITED = frozenset({j.OrderRequested, j.CancelRequested, Accepted, Rejected, Fill, Cancelled,
                     Expired, j.Halted, j.Unhalted, j.Liquidated, j.Paused, j.ParamChanged,
                     j.PhaseChanged})


class Audit(Monitor):
    """Every order request, report, halt, parameter and phase change in a hash-chained log.

    Each journal record of those kinds becomes an entry of the store's ``audit`` table: its
    canonical JSON and the SHA-256 of the previous entry's hash followed by it
    (:mod:`gridkit.runtime.audit`). The store writes the entries in the same transaction as
    the journal rows (in paper and live runs, before the order is sent), and continues one
    chain across the runs and resumptions of its file. ``gridkit audit verify --db PATH``
    walks the chain and names the first edited, deleted or reordered row.

    Needs a store that keeps a file (``[store] path`` or ``gridkit run --db``); it reads the
    journal only, so it costs the event loop nothing per bar.
    """

    name = "audit"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.entries = 0
        self._store: Any = None

    def bind(self, journal: Any, store: Store) -> None:
        if not getattr(store, "journaled", False) or not callable(getattr(store, "audit", None)):
            raise ConfigError("monitors: audit needs a store that keeps a file ([store] path, "
                              "or gridkit run --db PATH)")
        self._store = store
        journal.subscribe(self.record, False)

    def record(self, record: Any) -> None:
        """Append ``record`` to the log if it is of an audited kind."""
        if type(record) in AUDITED:  # (the journal's own record types, not subclasses)
            data = attrs.asdict(record, recurse=True)
            ts = data.pop("ts", None)
            self._store.audit(ts, type(record).__name__, data)
            self.entries += 1

    def snapshot(self) -> Any:
        return {"entries": self.entries}  # (the store, bound again on resume, is not state)

    def restore(self, state: Any) -> None:
        if state:
            self.entries = int(state["entries"])

    def stats(self) -> dict[str, Any]:
        return {"entries": self.entries}


class _FigureMonitor(Monitor):
    """A monitor over the run's figures (:class:`gridkit.runtime.metrics.RunMetrics`). The
    figure monitors of one run share one RunMetrics, kept on the journal, and take its
    per-event method as their own: the engine calls a method several monitors share once."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from gridkit.runtime.metrics import RunMetrics

        self.metrics = RunMetrics()  # (until bound to the run's own)
        self._clock = True  # (paper and live runs: wall-clock figures, staleness)
        self._owner = False

    def setup(self, run: Any) -> None:
        self._clock = run.mode != "backtest"  # (a backtest's figures need no wall clock)

    def bind(self, journal: Any, store: Store) -> None:
        from gridkit.runtime.metrics import RunMetrics

        self.metrics, self._owner = RunMetrics.of(journal, self._clock)
        if self._owner:
            self.metrics.start(journal)
        self.on_event = self.metrics.on_event  # type: ignore[method-assign]

    def on_event(self, ctx: Any) -> None:  # (replaced by bind with the figures' own)
        self.metrics.on_event(ctx)

    def close(self) -> None:
        if self._owner:
            self.metrics.close()

    def snapshot(self) -> Any:
        return None  # (figures of the run, not state: a resumed run reads them again)


class Metrics(_FigureMonitor):
    """The run's trading and system figures, kept as it runs; in the summary at the end.

    Trading: equity, cash, return, drawdown and the largest one, the day's return and loss,
    fills, fees, round trips, grid profit and the average per round trip, profit factor, win
    share, Sharpe, Sortino and Calmar (annualized over the bars' time), grid and total APR,
    limit orders requested and filled (the grid fill rate), refusals. System: events and
    events per second, the age of the last event, event latency p50 and p99, error lines and
    reconnects logged, resident memory (now and peak), CPU seconds. Attention: each lane's
    modules' phase, progress, weights and the real and shadow books' figures. Every figure and
    its meaning is in :data:`gridkit.runtime.metrics.FIGURES`. Each event costs a few
    attribute reads and writes; the figures are computed when read, from the sums the account
    keeps (:class:`gridkit.runtime.metrics.RunMetrics`).
    """

    name = "metrics"

    def stats(self) -> dict[str, Any]:
        return {k: v for k, v in self.metrics.values().items() if not isinstance(v, str)}


class Prometheus(_FigureMonitor):
    """The run's figures over HTTP while it runs: ``/metrics``, ``/healthz``, a JSON dashboard.

    A server on ``host:port`` (localhost by default; ``port = 0`` takes a free one, named in
    the summary) answers, from a thread of its own, off the event loop:

    * ``GET /metrics`` — every figure of :class:`Metrics` as Prometheus gauges
      (``gridkit_equity``, ``gridkit_drawdown``, ``gridkit_events_total``, ...), in the text
      format written by the ``prometheus_client`` library (``pip install 'gridkit[monitoring]'``);
    * ``GET /healthz`` — ``{"status": "healthy" | "degraded" | "unhealthy", "reasons": [...]}``:
      unhealthy when trading is halted or, in paper and live runs, no event came for
      ``stale_after`` seconds; degraded while the feed is paused (stale data, a stream
      down) or when a reconnect was logged in the last ``stale_after`` seconds.
      Status 200, or 503 when unhealthy, for a load balancer or a supervisor;
    * ``GET /api/v1/dashboard`` — every figure as one JSON object.

    A port already in use is refused in one line before the run starts.
    """

    name = "prometheus"

    @frozen
    class Config:
        host: str = option("127.0.0.1", doc="Address to listen on (localhost: this machine "
                                            "only; 0.0.0.0 exposes it).")
        port: int = option(9464, doc="Port to listen on; 0 takes a free one.",
                           validator=at_least(0))
        stale_after: float = option(120.0, doc="Seconds without an event after which a paper "
                                               "or live run is unhealthy.",
                                    validator=positive())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.server: Any = None
        self.port: int | None = None
        self.scrapes = 0

    def setup(self, run: Any) -> None:
        from gridkit.runtime.metrics_http import serve

        super().setup(run)
        c = self.config
        self.server = serve(c.host, c.port, self)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="gridkit-prometheus",
                         daemon=True).start()

    def health(self) -> tuple[str, list[str]]:
        return self.metrics.health(self.config.stale_after, live=self._clock)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        super().close()

    def stats(self) -> dict[str, Any]:
        return {"url": f"http://{self.config.host}:{self.port}", "scrapes": self.scrapes}


def _figure_names(instance: Any, attribute: Any, value: dict[str, float]) -> None:
    """An alerts option's keys: figures the alerts can read."""
    from gridkit.runtime.metrics import FIGURES

    for name in value:
        if name not in FIGURES:
            raise OptionError(attribute.name, f"no figure {name!r} (figures: "
                              f"{', '.join(FIGURES)})")


class Alerts(_FigureMonitor):
    """Thresholds on the run's figures, and a halt, sent to a webhook when they are crossed.

    ``above`` and ``below`` map a figure of :class:`Metrics` (any of
    :data:`gridkit.runtime.metrics.FIGURES`: ``daily_loss``, ``rejections_in_row``,
    ``events_since_fill`` for a grid stalled, ``latency_p99_ms`` ...) to its threshold:
    ``above = {drawdown = 0.1, daily_loss = 0.05, rss_mb = 400, last_event_age_s = 120}``. They are
    checked every ``every`` events; an alert is sent when its condition becomes true, and again
    only after ``repeat_after`` seconds while it stays true (deduplicated); a halt is sent at
    once (``on_halt``). Each alert is one JSON POST to ``url`` — a plain object (``format`` =
    json) or the message shape of Slack, Discord or Telegram (whose ``chat_id`` it needs) —
    sent from a thread of its own, at most ``per_minute`` a minute, retried with backoff on a
    failure or a 5xx answer; a webhook that times out or fails is a warning in the log, and
    the bot keeps trading.
    """

    name = "alerts"

    @frozen
    class Config:
        url: str = option(doc="The webhook to POST to (http or https).")
        format: Literal["json", "slack", "discord", "telegram"] = option(
            "json", doc="The body: a plain JSON object, or Slack's, Discord's or Telegram's "
                        "message shape.")
        chat_id: str = option("", doc="Telegram: the chat the bot posts to.")
        above: dict[str, float] = option(factory=dict, validator=_figure_names,
                                         doc="Alert when a figure rises above its value.")
        below: dict[str, float] = option(factory=dict, validator=_figure_names,
                                         doc="Alert when a figure falls below its value.")
        on_halt: bool = option(True, doc="Alert when trading halts.")
        every: int = option(100, doc="Check the thresholds every this many events.",
                            validator=at_least(1))
        repeat_after: float = option(3600.0, doc="Seconds before an alert still true is sent "
                                                 "again.", validator=non_negative())
        per_minute: int = option(20, doc="At most this many alerts a minute (the rest are "
                                         "dropped and counted).", validator=at_least(1))
        timeout: float = option(5.0, doc="Seconds to wait for the webhook to answer.",
                                validator=positive())
        retries: int = option(3, doc="Attempts after the first on a failure or a 5xx answer.",
                              validator=non_negative())

        def __attrs_post_init__(self) -> None:
            if not self.url.startswith(("http://", "https://")):
                raise OptionError("url", f"must be an http or https URL, got {self.url!r}")
            if self.format == "telegram" and not self.chat_id:
                raise OptionError("chat_id", "Telegram needs the chat to post to")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from gridkit.runtime.metrics import SYSTEM_FIGURES

        self.sender: Any = None
        self.run_name = ""
        self.fired = 0
        #: Per rule: when it was last sent (None: not true at the last check).
        self._active: dict[str, float | None] = {}
        self._system = any(name in SYSTEM_FIGURES for name in (*self.config.above,
                                                                 *self.config.below))

    def setup(self, run: Any) -> None:
        from gridkit.runtime.alerts import Sender

        super().setup(run)
        c = self.config
        self.run_name = run.name
        self.sender = Sender(c.url, c.format, c.chat_id, c.timeout, c.retries,
                             per_minute=c.per_minute)

    def bind(self, journal: Any, store: Store) -> None:
        super().bind(journal, store)
        self.metrics.every(self.config.every, self.check)  # (rides on the per-event call)
        if self.config.on_halt:  # (and the halts on the figures' own journal reader)
            self.metrics.on_halt.append(self.halted)

    def halted(self, record: Any) -> None:
        """A halt is alerted at once."""
        self._fire("halted", f"trading halted: {record.reason}", None, None,
                   getattr(record, "ts", None))

    def check(self) -> None:
        """Compare every threshold with the figures now; alert those newly crossed."""
        c = self.config
        values = self.metrics.values(system=self._system)
        now = time.monotonic()
        for side, rules in (("above", c.above), ("below", c.below)):
            for figure, limit in rules.items():
                v = values.get(figure)
                hit = (isinstance(v, (int, float)) and not isinstance(v, bool)
                       and (v > limit if side == "above" else v < limit))
                key = f"{figure} {side}"
                if not hit:
                    self._active[key] = None  # reset: the next crossing alerts again
                    continue
                last = self._active.get(key)
                if last is None or now - last >= c.repeat_after:
                    self._active[key] = now
                    self._fire(key, f"{figure} {v:g} is {side} {limit:g}", v, limit,
                               values.get("event_ts"))

    def _fire(self, key: str, text: str, value: Any, limit: Any, ts: Any) -> None:
        self.fired += 1
        if self.sender is not None:
            self.sender.send({"alert": key, "message": f"gridkit {self.run_name}: {text}",
                              "value": value, "threshold": limit, "run": self.run_name,
                              "ts": ts})

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
        super().close()

    def stats(self) -> dict[str, Any]:
        s = self.sender
        return {"fired": self.fired, "sent": s.sent if s else 0, "failed": s.failed if s else 0,
                "dropped": s.dropped if s else 0}


@hookimpl
def gridkit_register_monitors(register: Any) -> None:
    register(Audit)
    register(Metrics)
    register(Prometheus)
    register(Alerts)
