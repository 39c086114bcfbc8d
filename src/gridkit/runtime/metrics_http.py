"""The HTTP server of the ``prometheus`` monitor: ``/metrics``, ``/healthz``,
``/api/v1/dashboard``, answered from a thread of its own.

The Prometheus text format is written by the ``prometheus_client`` library (a collector that
reads :meth:`gridkit.runtime.metrics.RunMetrics.values` at each scrape), not by hand.
"""

from __future__ import annotations

import errno
import json
import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gridkit.core.errors import ConfigError

#: Each exported figure's help text (its unit in the name or here).
HELP = {
    "equity": "Account equity in the quote currency.",
    "cash": "Free and held cash in the quote currency.",
    "return": "Return since the start, as a fraction.",
    "drawdown": "Drawdown from the equity peak now, as a fraction.",
    "max_drawdown": "Largest drawdown from an equity peak, as a fraction.",
    "fills": "Fills so far.",
    "fees": "Fees paid so far, in the quote currency.",
    "round_trips": "Closing fills matched against open lots (FIFO).",
    "grid_profit": "Grid profit: realized profit of the closed lots, after fees.",
    "avg_profit_per_trip": "Grid profit per round trip.",
    "profit_factor": "Gross profit over gross loss of the closing fills.",
    "win_share": "Share of the gross profit and loss that was profit.",
    "sharpe": "Annualized Sharpe ratio of the marks' returns.",
    "sortino": "Annualized Sortino ratio of the marks' returns.",
    "grid_apr": "Grid profit over capital, per year of bars.",
    "total_apr": "Return per year of bars.",
    "events": "Accepted events processed.",
    "events_per_s": "Accepted events per second of wall time since the start.",
    "last_event_age_s": "Seconds since the last accepted event.",
    "event_ts": "Time of the last accepted event, epoch milliseconds.",
    "rss_mb": "Resident memory of the process now, MB.",
    "peak_rss_mb": "Peak resident memory of the process, MB.",
    "cpu_s": "CPU seconds used by the process.",
}


class _Collector:
    """Reads the monitor's figures at each scrape."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values = self.monitor.metrics.values()
        for key, text in HELP.items():
            v = values.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            family = CounterMetricFamily if key == "events" else GaugeMetricFamily
            yield family(f"gridkit_{key}", text, value=float(v))
        status, _ = self.monitor.health()
        yield GaugeMetricFamily("gridkit_halted", "1 while trading is halted.",
                                value=1.0 if values.get("halted") else 0.0)
        yield GaugeMetricFamily("gridkit_healthy", "1 healthy, 0.5 degraded, 0 unhealthy.",
                                value={"healthy": 1.0, "degraded": 0.5}.get(status, 0.0))


def serve(host: str, port: int, monitor: Any) -> ThreadingHTTPServer:
    """A server (not yet serving) of ``monitor``'s figures on ``host:port``; one ConfigError
    line if the address cannot be taken."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        raise ConfigError("monitors: prometheus needs the prometheus_client library: "
                          "pip install 'gridkit[monitoring]'") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(monitor))  # type: ignore[arg-type]
    handler = type("Handler", (_Handler,), {"monitor": monitor, "registry": registry})
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"monitors: prometheus cannot listen on {host}:{port}: the port "
                              f"is in use (set port to another, or 0 for a free one)") from None
        raise ConfigError(f"monitors: prometheus cannot listen on {host}:{port}: "
                          f"{err.strerror or err}") from None


class _Handler(BaseHTTPRequestHandler):
    monitor: Any
    registry: Any

    def do_GET(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        path = self.path.split("?", 1)[0]
        self.monitor.scrapes += 1
        if path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            status, reasons = self.monitor.health()
            self._json(503 if status == "unhealthy" else 200,
                       {"status": status, "reasons": reasons})
        elif path == "/api/v1/dashboard":
            values = self.monitor.metrics.values()
            status, reasons = self.monitor.health()
            self._json(200, {"health": {"status": status, "reasons": reasons},
                             "figures": {k: _plain(v) for k, v in values.items()}})
        else:
            self._json(404, {"error": f"no {path}: try /metrics, /healthz, /api/v1/dashboard"})

    def _json(self, code: int, body: Any) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # (scrapes are not the run's log)


def _plain(v: Any) -> Any:
    """JSON for a figure: NaN and infinities as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v
