"""Alerts to a webhook, off the event loop: what the ``alerts`` monitor sends and how.

:class:`Sender` posts JSON from a thread of its own, with a timeout, retries (with backoff)
on a failure or a 5xx answer, and a rate limit; nothing it meets — a timeout, a refused
connection, an error status — ever reaches the run: it is counted and logged as one line.
:func:`payload` shapes a message as the webhook's service expects it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("gridkit.alerts")

#: The webhook formats: a generic JSON object, or a chat service's message shape.
FORMATS = ("json", "slack", "discord", "telegram")


def payload(fmt: str, alert: dict[str, Any], chat_id: str = "") -> dict[str, Any]:
    """The body to post for ``alert`` (whose ``message`` is its one line) in format ``fmt``."""
    text = alert["message"]
    if fmt == "slack":
        return {"text": text}
    if fmt == "discord":
        return {"content": text}
    if fmt == "telegram":
        return {"chat_id": chat_id, "text": text}
    return alert


class Sender:
    """Posts alerts to ``url`` from a daemon thread, in order; never blocks the caller."""

    def __init__(self, url: str, fmt: str, chat_id: str = "", timeout: float = 5.0,
                 retries: int = 3, backoff: float = 0.5, per_minute: int = 20) -> None:
        self.url, self.fmt, self.chat_id = url, fmt, chat_id
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.per_minute = per_minute
        self.sent = self.failed = self.dropped = 0
        self._times: list[float] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gridkit-alerts", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> bool:
        """Queue ``alert``; False (and counted as dropped) beyond the rate limit."""
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < 60.0]
        if len(self._times) >= self.per_minute:
            self.dropped += 1
            return False
        self._times.append(now)
        self._queue.put(alert)
        return True

    def close(self, wait: float = 10.0) -> None:
        """Deliver what is queued (for at most ``wait`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(wait)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._deliver(alert)

    def _deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps(payload(self.fmt, alert, self.chat_id)).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as r:
                    r.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as err:
                problem = f"HTTP {err.code}"
                if err.code < 500 and err.code != 429:  # the request is wrong: no retry
                    break
            except (OSError, ValueError) as err:  # refused, timed out, bad URL
                problem = str(getattr(err, "reason", err)) or type(err).__name__
        self.failed += 1
        log.warning("alert not delivered to %s after %d attempt(s): %s (%s)", _where(self.url),
                    attempt + 1, problem, alert["message"])


def _where(url: str) -> str:
    """The URL without its path (a Telegram bot token or a Slack secret lives there)."""
    parts = url.split("/")
    return "/".join(parts[:3]) if len(parts) > 3 else url
