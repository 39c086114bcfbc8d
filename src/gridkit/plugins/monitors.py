"""Built-in monitors: ``audit`` (a hash-chained log of what the run sent and heard),
``metrics`` (the run's trading and system figures) and ``prometheus`` (those figures over HTTP:
``/metrics``, ``/healthz``, ``/api/v1/dashboard``)."""

from __future__ import annotations

import threading
from typing import Any

import attrs
from attrs import frozen

from gridkit.core.components import Monitor, Store
from gridkit.core.config import at_least, option, positive
from gridkit.core.errors import ConfigError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Rejected
from gridkit.runtime import journal as j

#: The journal records the audit log keeps (marks, one per bar, are the equity curve's).
AUDITED = (j.OrderRequested, j.CancelRequested, Accepted, Rejected, Fill, Cancelled, Expired,
           j.Halted, j.Unhalted, j.Liquidated, j.Paused, j.ParamChanged, j.PhaseChanged)


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
        journal.subscribe(self.record, _no_marks)

    def record(self, record: Any) -> None:
        """Append ``record`` to the log if it is of an audited kind."""
        if isinstance(record, AUDITED):
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


def _no_marks(*args: Any) -> None:
    return None


class Metrics(Monitor):
    """The run's trading and system figures, kept as it runs; in the summary at the end.

    Trading: equity, cash, return, drawdown and the largest one, fills, fees, round trips,
    grid profit and the average per round trip, profit factor, Sharpe and Sortino
    (annualized over the bars' time), grid and total APR. System: events and events per
    second, the age of the last event, resident memory (now and peak), CPU seconds. Each
    event costs a few attribute writes; the figures are computed when read, from the sums the
    account keeps (:class:`gridkit.runtime.metrics.RunMetrics`).
    """

    name = "metrics"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from gridkit.runtime.metrics import RunMetrics

        self.metrics = RunMetrics()
        self.on_event = self.metrics.on_event  # type: ignore[method-assign]

    def on_event(self, ctx: Any) -> None:  # (replaced per instance by the metrics' own)
        self.metrics.on_event(ctx)

    def snapshot(self) -> Any:
        return None  # (figures of the run, not state: a resumed run reads them again)

    def stats(self) -> dict[str, Any]:
        return {k: v for k, v in self.metrics.values().items() if not isinstance(v, str)}


class Prometheus(Monitor):
    """The run's figures over HTTP while it runs: ``/metrics``, ``/healthz``, a JSON dashboard.

    A server on ``host:port`` (localhost by default; ``port = 0`` takes a free one, named in
    the summary) answers, from a thread of its own, off the event loop:

    * ``GET /metrics`` — every figure of :class:`Metrics` as Prometheus gauges
      (``gridkit_equity``, ``gridkit_drawdown``, ``gridkit_events_total``, ...), in the text
      format written by the ``prometheus_client`` library (``pip install 'gridkit[monitoring]'``);
    * ``GET /healthz`` — ``{"status": "healthy" | "degraded" | "unhealthy", "reasons": [...]}``:
      unhealthy when trading is halted or, in paper and live runs, no event came for
      ``stale_after`` seconds; degraded while the feed is paused (reconnecting, stale data).
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
        from gridkit.runtime.metrics import RunMetrics

        self.metrics = RunMetrics()
        self.on_event = self.metrics.on_event  # type: ignore[method-assign]
        self.server: Any = None
        self.port: int | None = None
        self.scrapes = 0
        self._live = False

    def on_event(self, ctx: Any) -> None:  # (replaced per instance by the metrics' own)
        self.metrics.on_event(ctx)

    def setup(self, run: Any) -> None:
        from gridkit.runtime.metrics_http import serve

        self._live = run.mode != "backtest"
        c = self.config
        self.server = serve(c.host, c.port, self)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="gridkit-prometheus",
                         daemon=True).start()

    def health(self) -> tuple[str, list[str]]:
        return self.metrics.health(self.config.stale_after, self._live)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def snapshot(self) -> Any:
        return None

    def stats(self) -> dict[str, Any]:
        return {"url": f"http://{self.config.host}:{self.port}", "scrapes": self.scrapes}


@hookimpl
def gridkit_register_monitors(register: Any) -> None:
    register(Audit)
    register(Metrics)
    register(Prometheus)
