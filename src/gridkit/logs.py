"""Logging of paper and live runs: text or JSON lines on stderr, secrets redacted.

gridkit logs through the standard :mod:`logging` module under the ``gridkit`` logger:
``gridkit.orders`` (one line per order event, :mod:`gridkit.runtime.eventlog`),
``gridkit.heartbeat`` and ``gridkit.watchdog`` (:mod:`gridkit.runtime.heartbeat`),
``gridkit.net`` (reconnects, :func:`log_reconnect`) and ``gridkit.preflight``.
:func:`setup_logging` is what ``gridkit run`` calls; a program that embeds gridkit may call it
too, or attach its own handlers and add :class:`RedactFilter` to them.

A JSON line holds ``ts`` (ISO-8601 UTC, milliseconds), ``level``, ``logger``, ``msg`` and every
field the call passed in ``extra`` (``symbol``, ``order_id``, ``side``, ``qty``, ``price``,
``reason``, ...); a text line holds the time, level, logger and message.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import IO, Any

from gridkit.credentials import redact

__all__ = ["JsonFormatter", "RedactFilter", "TextFormatter", "log_reconnect", "setup_logging"]

#: The attributes every LogRecord has: anything else on a record came in ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}
LEVELS = ("debug", "info", "warning", "error")


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a logging call passed in ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    """JSON-able: NaN and infinities become null, other objects their text (redacted)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return redact(str(value))


class RedactFilter(logging.Filter):
    """Replaces registered secrets (:func:`gridkit.credentials.register_secret`) in a record's
    message, its string fields and its traceback text; put it on a handler, so records of
    every ``gridkit.*`` logger pass it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; always keep it."""
        msg = record.getMessage()
        clean = redact(msg)
        if clean is not msg or record.args:
            record.msg, record.args = clean, None
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the ``extra`` fields,
    and ``exc`` when the record carries a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {"ts": _iso(record.created), "level": record.levelname.lower(),
                                "logger": record.name, "msg": redact(record.getMessage())}
        for key, value in extra_fields(record).items():
            if key not in line:
                line[key] = _plain(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One line a person reads: time (UTC), level, logger and message, such as
    ``2024-05-19T12:00:00.123Z INFO    gridkit.orders: fill: BTC/USDT buy ...``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text (and its traceback after it, if any)."""
        line = (f"{_iso(record.created)} {record.levelname:<7} {record.name}: "
                f"{redact(record.getMessage())}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + redact(record.exc_text)
        return line


#: Marks the handler setup_logging installed, so a second call replaces it.
_MARK = "_gridkit_handler"


def setup_logging(format: str = "text", level: str | int = "info",
                  stream: IO[str] | None = None) -> logging.Handler:
    """Send the ``gridkit`` logger's records at ``level`` and above to ``stream`` (stderr), as
    ``format`` ``"text"`` or ``"json"`` lines, with secrets redacted; return the handler.

    Calling it again replaces the handler it installed. The ``gridkit`` logger stops
    propagating to the root logger, so a line is written once.
    """
    if format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {format!r}")
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
        level = getattr(logging, level.upper())
    logger = logging.getLogger("gridkit")
    for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


_net = logging.getLogger("gridkit.net")


def log_reconnect(what: str, attempt: int, delay: float, error: BaseException | str) -> None:
    """Log one warning line for a reconnect: ``what`` (``"binance trades stream"``), the attempt
    number, the seconds until it, and the error that caused it (redacted like every line)."""
    err = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    _net.warning("reconnecting %s (attempt %d) in %.1f s after %s", what, attempt, delay, err,
                 extra={"event": "reconnect", "what": what, "attempt": attempt,
                        "delay_s": delay, "error": err})
