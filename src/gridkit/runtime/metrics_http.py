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

#: The figures exported as counters (they only grow); the rest are gauges.
COUNTERS = frozenset({"events", "errors", "reconnects", "rejections", "orders_requested",
                      "orders_filled"})


class _Collector:
    """Reads the monitor's figures at each scrape."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from gridkit.runtime.metrics import FIGURES

        values = self.monitor.metrics.values()
        for key, text in FIGURES.items():
            v = values.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            family = CounterMetricFamily if key in COUNTERS else GaugeMetricFamily
            yield family(f"gridkit_{key}", text, value=float(v))
        status, _ = self.monitor.health()
        yield GaugeMetricFamily("gridkit_halted", "1 while trading is halted.",
                                value=1.0 if values.get("halted") else 0.0)
        yield GaugeMetricFamily("gridkit_healthy", "1 healthy, 0.5 degraded, 0 unhealthy.",
                                value={"healthy": 1.0, "degraded": 0.5}.get(status, 0.0))
        yield from _attention(values.get("attention") or {}, GaugeMetricFamily)


def _attention(table: dict[str, Any], gauge: Any) -> Any:
    """Each lane's attention as labelled gauges: the phase (1 on the current one), progress,
    the weights applied, and the real and shadow books' figures."""
    phase = gauge("gridkit_attention_phase", "1 on each attention module's current phase.",
                  labels=["symbol", "module", "phase"])
    progress = gauge("gridkit_attention_progress", "Progress through the learning phase.",
                     labels=["symbol", "module"])
    weight = gauge("gridkit_attention_weight", "Attention weight applied to a feature now.",
                   labels=["symbol", "feature"])
    book = gauge("gridkit_attention_book", "The real and shadow books' figures in the "
                 "comparison window.", labels=["symbol", "module", "book", "figure"])
    for symbol, lane in table.items():
        for feature, w in (lane.get("weights") or {}).items():
            if isinstance(w, (int, float)) and math.isfinite(w):
                weight.add_metric([symbol, feature], float(w))
        for module, figures in lane.items():
            if module == "weights" or not isinstance(figures, dict):
                continue
            phase.add_metric([symbol, module, str(figures.get("phase"))], 1.0)
            p = figures.get("progress")
            if isinstance(p, (int, float)):
                progress.add_metric([symbol, module], float(p))
            for name in ("real", "shadow"):
                for key, v in (figures.get(name) or {}).items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        book.add_metric([symbol, module, name, key], float(v))
    yield from (phase, progress, weight, book)


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
