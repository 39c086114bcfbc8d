"""Market data from any ccxt exchange: ``ccxt-ohlcv`` (REST candles), ``ccxt-stream`` (websocket
trades, candles and order book through ccxt.pro), and :func:`download`, which the
``gridkit data download`` command (:mod:`gridkit.plugins.ccxt_commands`) runs.

Both sources build ccxt's own exchange class, so every exchange ccxt supports works, with its
rate limit (``enableRateLimit``) and its parsing. The ``url`` and ``urls`` options point the
exchange at another host — a proxy, a testnet, or the local replay server of
:mod:`gridkit.testing_exchange` that the tests use. ccxt is imported only when a source is
validated or set up, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import random
import re
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from attrs import frozen

from gridkit.core.components import Source
from gridkit.core.config import OptionError, at_least, non_negative, option, optional, positive
from gridkit.core.errors import ConfigError, DataError, ExchangeUnreachable
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import EVENT_KINDS, Bar, BookDepth, BookUpdate, Clock, Trade
from gridkit.data.bars import parse_interval
from gridkit.data.book import OrderBook
from gridkit.runtime.context import RunInfo

NAN = float("nan")
#: Longest wait between two attempts, whatever the backoff or Retry-After say (seconds).
MAX_WAIT = 60.0


# --- helpers shared by both sources -------------------------------------------------------------


def parse_time(text: str) -> int:
    """Epoch ms from digits (epoch ms) or an ISO-8601 date/date-time (naive means UTC)."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    from gridkit.plugins.sources import parse_iso_ms

    try:
        return parse_iso_ms(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch ms nor an ISO date "
                         f"(e.g. 2021-04-20 or 2021-04-20T20:42:00Z)") from None


def _check_time(_instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    try:
        parse_time(value)
    except ValueError as err:
        raise OptionError(attribute.name, str(err)) from None


def one_line(err: BaseException, limit: int = 240) -> str:
    """An exception's message as one short line."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _rehost(value: Any, base: str) -> Any:
    """Every URL in ``value`` (a string or nested mapping) with its scheme and host replaced by
    ``base``'s, keeping the path; websocket URLs keep a websocket scheme."""
    if isinstance(value, Mapping):
        return {k: _rehost(v, base) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    m = re.match(r"(https?|wss?)://[^/]+(.*)", value)
    b = re.match(r"(https?|wss?)://([^/]+)", base.rstrip("/"))
    if not m or not b:
        return value
    scheme = m.group(1)
    if scheme.startswith("ws"):
        scheme = "wss" if b.group(1) in ("https", "wss") else "ws"
    else:
        scheme = "https" if b.group(1) in ("https", "wss") else "http"
    return f"{scheme}://{b.group(2)}{m.group(2)}"


def _deep_merge(base: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base) if isinstance(base, Mapping) else {}
    for k, v in extra.items():
        out[k] = _deep_merge(out.get(k), v) if isinstance(v, Mapping) else v
    return out


def _market_types(symbol: str) -> list[str]:
    """ccxt's market types a unified symbol can belong to: spot for ``BASE/QUOTE``, linear or
    inverse contracts for ``BASE/QUOTE:SETTLE``."""
    if ":" not in symbol:
        return ["spot"]
    pair, settle = symbol.split(":", 1)
    settle = settle.split("-", 1)[0]
    quote = pair.split("/", 1)[-1]
    return ["linear", "swap", "future"] if settle == quote else ["inverse", "swap", "future"]


def make_exchange(module: Any, exchange_id: str, symbol: str, *, url: str | None,
                  urls: Mapping[str, Any], options: Mapping[str, Any],
                  timeout_ms: int = 10_000) -> Any:
    """A ccxt exchange of ``module`` (``ccxt`` or ``ccxt.pro``) with the rate limit on, the API
    URLs rehosted to ``url`` and overridden by ``urls``, and ``options`` set. Exchanges whose
    ``fetchMarkets`` option lists market types load only the type ``symbol`` belongs to."""
    cls = getattr(module, exchange_id, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"unknown ccxt exchange {exchange_id!r}")
    ex = cls({"enableRateLimit": True, "timeout": timeout_ms})
    api = ex.urls.get("api")
    if url:
        api = _rehost(api, url)
    if urls:
        api = _deep_merge(api, urls) if isinstance(api, Mapping) or api is None else dict(urls)
    ex.urls["api"] = api
    fm = ex.options.get("fetchMarkets")
    types = fm.get("types") if isinstance(fm, Mapping) else fm
    if isinstance(types, list) and "fetchMarkets" not in options:
        wanted = [t for t in _market_types(symbol) if t in types][:1]
        if wanted:
            if isinstance(fm, Mapping):
                ex.options["fetchMarkets"] = dict(fm, types=wanted)
            else:
                ex.options["fetchMarkets"] = wanted
    for k, v in options.items():
        ex.options[k] = _deep_merge(ex.options.get(k), v) if isinstance(v, Mapping) else v
    return ex


def _retry_after(ex: Any) -> float:
    headers = getattr(ex, "last_response_headers", None) or {}
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return 0.0
    return 0.0


class _BadBody(Exception):
    """The exchange answered with a body that is not valid JSON."""


# --- ccxt-ohlcv ---------------------------------------------------------------------------------


class CcxtOhlcv(Source):
    """Closed OHLCV candles downloaded from any ccxt exchange over REST, page by page.

    Pages come from ccxt's ``fetch_ohlcv(symbol, timeframe, since, limit)``, starting at
    ``since`` and ending before ``until`` (default: the exchange's clock). ccxt's rate limiter
    spaces the requests (``enableRateLimit``). Network errors, rate-limit answers (429/418),
    5xx answers and bodies that are not JSON are retried ``retries`` times, waiting ``backoff``
    seconds, doubled on each attempt (at least the ``Retry-After`` the exchange asked for, at most
    60 s); a permanent error (unknown symbol, exchange error, retries exhausted) ends the run with
    one :class:`gridkit.DataError` line. Candles already seen (page overlaps) are skipped and
    counted; the last candle, still open on the exchange, is never yielded. A page with no new
    candle ends the download: exchanges answer with the candles from ``since`` on, so an empty
    page means there are none left before ``until`` (gaps such as maintenance are skipped).

    Resuming: with ``resume_from`` naming a freqtrade-json file (the one a previous download
    wrote), the download starts after that file's last candle. ``url`` / ``urls`` send the
    requests elsewhere than the exchange's own hosts: a proxy, a testnet, or a local server
    (:class:`gridkit.testing_exchange.ExchangeServer`). ``url`` keeps each API URL's path and
    swaps its scheme and host; ``urls`` entries replace whole URLs by their ccxt key. Example
    (pipeline.toml)::

        [source]
        use = "ccxt-ohlcv"
        exchange = "binance"
        timeframe = "1h"
        since = "2024-01-01"
        resume_from = "data/BTC_USDT-1h.json"   # the file gridkit data download --out wrote
        url = "http://127.0.0.1:8080"           # a proxy in front of the exchange, or:
        # urls = { public = "https://testnet.binance.vision/api/v3" }   # a testnet

    Follows the ccxt Manual (https://docs.ccxt.com): "OHLCV Candlestick Charts" (pagination by
    ``since``, the last candle may be incomplete), "Rate Limit" and "Error Handling"
    (``NetworkError`` is retryable, ``ExchangeError`` is not).
    """

    name = "ccxt-ohlcv"
    provides: ClassVar[frozenset[str]] = frozenset({"bars"})

    @frozen
    class Config:
        exchange: str = option(doc="ccxt exchange id, e.g. 'binance'.")
        since: str = option(doc="First candle: an ISO date (UTC) or epoch ms as text.",
                            validator=_check_time)
        symbol: str | None = option(None, doc="Unified ccxt symbol (default: the pipeline's).")
        timeframe: str = option("1m", doc="Candle interval in ccxt's notation ('1m', '1h').")
        until: str | None = option(None, doc="End (exclusive): ISO date or epoch ms; default "
                                             "now, by the exchange's clock.",
                                   validator=_check_time)
        limit: int = option(1000, doc="Candles per request (page).", validator=at_least(1))
        retries: int = option(5, doc="Attempts after the first on a transient error.",
                              validator=non_negative())
        backoff: float = option(1.0, doc="Seconds before the first retry; doubled each time.",
                                validator=non_negative())
        url: str | None = option(None, doc="Base URL (scheme://host:port) that replaces the "
                                           "host of every API URL: a proxy or a local server.")
        urls: dict[str, Any] = option(factory=dict, doc="Entries merged into the exchange's "
                                                        "``urls['api']`` (e.g. a testnet's).")
        options: dict[str, Any] = option(factory=dict, doc="ccxt exchange options to set.")
        resume_from: str | None = option(None, doc="freqtrade-json file already downloaded: "
                                                   "start after its last candle.")
        timeout: float = option(10.0, doc="Seconds before an HTTP request times out.",
                                validator=positive())

        def __attrs_post_init__(self) -> None:
            if self.until is not None and parse_time(self.until) <= parse_time(self.since):
                raise OptionError("until", "must be later than since")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.exchange: Any = None
        self.ccxt: Any = None
        self.symbol = ""
        self.tf_ms = 0
        self.start = 0
        self.end = 0
        self.now = 0
        #: Called to wait between attempts (tests replace it to record the waits).
        self.sleep: Callable[[float], None] = time.sleep
        self.waits: list[float] = []
        self.counts = {"requests": 0, "pages": 0, "candles": 0, "duplicates": 0,
                       "open_dropped": 0, "rate_limited": 0, "network_errors": 0,
                       "bad_responses": 0, "resumed_after": None}

    def validate(self, run: RunInfo) -> None:
        import ccxt

        if self.config.exchange not in ccxt.exchanges:
            raise ConfigError(f"unknown ccxt exchange {self.config.exchange!r}")
        if self.config.resume_from is not None:
            p = run.resolve(self.config.resume_from)
            if p.exists() and not p.is_file():
                raise DataError(f"resume_from is not a file: {p}")

    def setup(self, run: RunInfo) -> None:
        import ccxt

        c = self.config
        self.ccxt = ccxt
        self.symbol = c.symbol or run.symbol
        self.exchange = ex = make_exchange(ccxt, c.exchange, self.symbol, url=c.url,
                                           urls=c.urls, options=c.options,
                                           timeout_ms=int(c.timeout * 1000))
        if not ex.has.get("fetchOHLCV"):
            raise DataError(f"{c.exchange} has no OHLCV (fetch_ohlcv) endpoint in ccxt")
        if ex.timeframes and c.timeframe not in ex.timeframes:
            raise DataError(f"{c.exchange} has no timeframe {c.timeframe!r} "
                            f"(it has {', '.join(ex.timeframes)})")
        self.tf_ms = ex.parse_timeframe(c.timeframe) * 1000
        self._call(ex.load_markets)
        if self.symbol not in ex.markets:
            raise DataError(f"{c.exchange} has no market {self.symbol!r}")
        self.now = int(self._call(ex.fetch_time)) if ex.has.get("fetchTime") else \
            ex.milliseconds()
        self.start = parse_time(c.since)
        self.end = parse_time(c.until) if c.until is not None else self.now
        if c.resume_from is not None:
            last = last_stored(run.resolve(c.resume_from))
            if last is not None:
                self.counts["resumed_after"] = last
                self.start = max(self.start, last + self.tf_ms)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the exchange, retrying transient errors with exponential backoff."""
        ccxt, c = self.ccxt, self.config
        where = f"{c.exchange} {self.symbol}"
        for attempt in range(c.retries + 1):
            self.counts["requests"] += 1
            try:
                result = fn(*args)
                body = getattr(self.exchange, "last_http_response", None)
                if isinstance(body, str) and body.strip():
                    try:
                        json.loads(body)
                    except ValueError:
                        raise _BadBody(f"a body that is not JSON: {body[:40]!r}") from None
                return result
            except (ccxt.NetworkError, ccxt.BadResponse, _BadBody) as err:
                if isinstance(err, ccxt.DDoSProtection):
                    self.counts["rate_limited"] += 1
                elif isinstance(err, (ccxt.BadResponse, _BadBody)):
                    self.counts["bad_responses"] += 1
                else:
                    self.counts["network_errors"] += 1
                if attempt == c.retries:
                    raise DataError(f"{where}: gave up after {attempt + 1} attempts: "
                                    f"{type(err).__name__}: {one_line(err)}") from None
                wait = c.backoff * 2 ** attempt
                if isinstance(err, ccxt.DDoSProtection):
                    wait = max(wait, _retry_after(self.exchange))
                wait = min(wait, MAX_WAIT)
                self.waits.append(wait)
                self.sleep(wait)
            except ccxt.BadSymbol as err:
                raise DataError(f"{where}: the exchange does not know this symbol: "
                                f"{one_line(err)}") from None
            except ccxt.BaseError as err:
                raise DataError(f"{where}: exchange error: {type(err).__name__}: "
                                f"{one_line(err)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def events(self) -> Iterator[Bar]:
        ex, c = self.exchange, self.config
        if ex is None:
            raise DataError("ccxt-ohlcv: events() called before setup()")
        tf, end, now = self.tf_ms, self.end, self.now
        since = self.start
        last = -1
        num = _num
        while since < end:
            page = self._call(ex.fetch_ohlcv, self.symbol, c.timeframe, since, c.limit)
            self.counts["pages"] += 1
            if not isinstance(page, list):
                raise DataError(f"{c.exchange} {self.symbol}: fetch_ohlcv returned "
                                f"{type(page).__name__}, not a list of candles")
            new = 0
            done = False
            for row in page:
                try:
                    ts = int(row[0])
                except (TypeError, ValueError, IndexError):
                    continue
                if ts <= last or ts < since:
                    self.counts["duplicates"] += 1
                    continue
                if ts >= end:
                    done = True
                    break
                if ts + tf > now:  # still open on the exchange
                    self.counts["open_dropped"] += 1
                    done = True
                    break
                last = ts
                new += 1
                self.counts["candles"] += 1
                yield Bar(ts, num(row[1]), num(row[2]), num(row[3]), num(row[4]), num(row[5]))
            if done or not new:
                break
            since = last + tf

    def size_hint(self) -> int | None:
        if not self.tf_ms:
            return None
        return max(0, (min(self.end, self.now) - self.start) // self.tf_ms)

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)

    def close(self) -> None:
        ex = self.exchange
        if ex is not None and hasattr(ex, "close"):
            with contextlib.suppress(Exception):  # closing must not hide the run's result
                ex.close()


def _num(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def last_stored(path: Path) -> int | None:
    """Open time of the last candle in a freqtrade-json file, or None if it is absent/empty."""
    rows = read_rows(path)
    return int(rows[-1][0]) if rows else None


def read_rows(path: Path) -> list[list[Any]]:
    """The rows of a freqtrade-json file; [] if it does not exist. DataError if unreadable."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text() or "[]")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot resume from {path}: not a freqtrade-json file ({err})") from None
    if not isinstance(data, list) or not all(isinstance(r, list) and len(r) >= 6 for r in data):
        raise DataError(f"cannot resume from {path}: expected a JSON array of "
                        f"[ms, open, high, low, close, volume] rows")
    return sorted(data, key=lambda r: r[0])


# --- running coroutines on the run's event loop ------------------------------------------------

#: The task set of the :class:`_Tasks` whose coroutine is running; tasks inherit it.
_OWNER: contextvars.ContextVar[weakref.WeakSet[Any] | None] = contextvars.ContextVar(
    "gridkit_task_owner", default=None)
#: Per shared loop: [our task factory, the factory it wraps, how many _Tasks use it].
_FACTORIES: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


class _Tasks:
    """One component's coroutines on an asyncio loop, driven from synchronous code.

    With ``loop`` (the run's :attr:`RunInfo.loop <gridkit.runtime.context.RunInfo.loop>`) the
    loop is shared: :meth:`run` drives it until one coroutine is done, so the other components'
    tasks (an executor's orders, another lane's source) progress meanwhile too, and
    :meth:`close` cancels and awaits this component's tasks and no others, and leaves the
    loop open: the kernel closes it at the end of the run. This component's tasks are those
    its coroutines create, directly or through the libraries they call (ccxt's throttler and
    order-book snapshot fetches, aiohttp's): each coroutine runs in a context of its own,
    which those tasks inherit, and a task factory put on the loop while it is in use records
    the tasks created in that context.

    Without ``loop`` (a source driven outside a run, as unit tests do), a private loop is made
    and :meth:`close` shuts it down and closes it.
    """

    def __init__(self, loop: Any = None) -> None:
        import asyncio

        self.own = loop is None
        self.loop = asyncio.new_event_loop() if loop is None else loop
        if self.loop.is_closed():
            raise DataError("the run's event loop is closed: the run is over")
        self.tasks: weakref.WeakSet[Any] = weakref.WeakSet()
        self.context = contextvars.copy_context()
        self.context.run(_OWNER.set, self.tasks)
        if not self.own:
            _track(self.loop)

    def spawn(self, coro: Any) -> Any:
        """A task of this component running ``coro``."""
        return self.context.run(self.loop.create_task, coro)

    def run(self, coro: Any) -> Any:
        """Run the loop until ``coro`` is done; its result. From the engine's thread only: the
        loop must not be running already."""
        if self.loop.is_running():
            with contextlib.suppress(Exception):
                coro.close()
            raise DataError("the event loop is already running: a source is driven from the "
                            "engine's thread, not from a coroutine on the run's loop")
        return self.loop.run_until_complete(self.spawn(coro))

    def pending(self) -> set[Any]:
        """This component's tasks that are not done (on a private loop: every task)."""
        import asyncio

        if self.own:
            return asyncio.all_tasks(self.loop)
        return {t for t in list(self.tasks) if not t.done()}

    def close(self) -> None:
        """Cancel and await this component's pending tasks, five seconds at most; on a private
        loop, then shut down its async generators and close it. A shared loop stays open."""
        import asyncio
        import gc

        loop = self.loop
        try:
            if loop.is_closed() or loop.is_running():
                return
            for _ in range(3):  # a cancelled task may spawn another (a connection's close)
                rest = self.pending()
                if not rest:
                    break
                for t in rest:
                    t.cancel()
                loop.run_until_complete(asyncio.wait(rest, timeout=5))
            if self.own:
                loop.run_until_complete(loop.shutdown_asyncgens())
            # A cancelled fetch can leave an aiohttp response whose connection is released
            # when it is garbage-collected; collect now, while its loop can still take that.
            gc.collect()
        finally:
            if self.own:
                loop.close()
            else:
                _untrack(loop)


def _track(loop: Any) -> None:
    """Record, on ``loop``, which :class:`_Tasks` each new task belongs to (see ``_OWNER``)."""
    entry = _FACTORIES.get(loop)
    if entry is None or loop.get_task_factory() is not entry[0]:
        import asyncio

        previous = loop.get_task_factory()

        def factory(loop: Any, coro: Any, **kw: Any) -> Any:
            task = (previous(loop, coro, **kw) if previous is not None
                    else asyncio.Task(coro, loop=loop, **kw))
            owner = _OWNER.get()
            if owner is not None:
                owner.add(task)
            return task

        entry = _FACTORIES[loop] = [factory, previous, 0]
        loop.set_task_factory(factory)
    entry[2] += 1


def _untrack(loop: Any) -> None:
    """One :class:`_Tasks` less on ``loop``; the last one puts the loop's factory back."""
    entry = _FACTORIES.get(loop)
    if entry is None:
        return
    entry[2] -= 1
    if entry[2] <= 0:
        del _FACTORIES[loop]
        if not loop.is_closed() and loop.get_task_factory() is entry[0]:
            loop.set_task_factory(entry[1])


# --- ccxt-stream --------------------------------------------------------------------------------

STREAMS = ("trades", "bars", "book", "depth")


def _check_streams(_instance: Any, attribute: Any, value: list[str]) -> None:
    bad = [s for s in value if s not in STREAMS]
    if bad or not value:
        raise OptionError(attribute.name, f"pick from {', '.join(STREAMS)}"
                          + (f"; unknown: {', '.join(bad)}" if bad else "; none given"))


class CcxtStream(Source):
    """Live trades, candles and order book from any ccxt exchange's websocket (ccxt.pro).

    ``streams`` picks what to watch: ``trades`` (``watch_trades``: :class:`gridkit.Trade`),
    ``bars`` (closed candles: ``watch_ohlcv`` at ``timeframe``, or, with ``bars_from =
    "trades"``, time bars the engine folds from the watched trades the validators accepted —
    the trades are then emitted too, see :attr:`gridkit.Source.bar_interval`), ``book``
    (``watch_order_book``: best
    bid/ask as :class:`gridkit.BookUpdate`) and ``depth`` (the top ``depth_levels`` levels as a
    :class:`gridkit.BookDepth` with the levels that changed since the last update).

    Design: the source runs on the run's asyncio event loop (:attr:`gridkit.RunInfo.loop`,
    which the kernel makes for paper and live runs and shares with the executor) and drives it
    step by step from the synchronous :meth:`events` generator — each ``next()`` runs the loop
    until one event is queued, and every other task on the loop (an executor's orders, another
    lane's watchers) progresses meanwhile. Everything happens in the engine's thread, nothing
    runs while the pipeline is busy (the socket buffers; ccxt.pro returns every update since
    the last call), and closing the generator — at the end of the stream or of the run —
    cancels and awaits the source's own tasks (its watchers and what ccxt started for them)
    and closes the exchange deterministically; the loop stays open for the kernel to close.
    Driven outside a run (``setup`` given a :class:`~gridkit.RunInfo` without a loop, as unit
    tests do), the source makes a private loop instead and closes it when the stream ends.

    Staying up: a connection that drops is opened again (``reconnects``); a watcher that fails
    with a network error (``stream_errors``) or hears nothing for ``stall`` seconds
    (``stalls``) closes its connection and subscribes again after a capped exponential
    backoff: ``backoff`` seconds, doubled per failure in a row, at most ``max_backoff``, each
    wait drawn between half and all of that (jitter, so that many clients do not reconnect in
    step). By default it never gives up; with ``retries`` set, that many failures in a row
    end the run with one :class:`gridkit.DataError` line. Each failure is logged as one line
    on the ``gridkit.stream`` logger (a warning, with ``extra`` fields ``exchange``,
    ``symbol``, ``stream``, ``failures``, ``wait`` and ``error``), and so is the first good
    update after it (``outage`` seconds).

    While a stream is down — from its first failure until its next good update — the source
    says so in :attr:`down` (``"market data down: binance BTC/USDT trades"``), and the engine
    pauses the lane's trading (``ctx.paused``): the strategy's orders and cancels are held and
    sent when data flows again. Clock ticks go on meanwhile, so the executor still hands over
    what the exchange says.

    Gaps are counted, not hidden: trade ids that jump (``trade_id_gaps``, ids lost in
    ``trades_missed``), trades or candles going back in time (dropped), candles that skip an
    interval (``bar_gaps``), and order-book sequence breaks that ccxt had to resync
    (``book_resyncs``). Frames ccxt cannot parse are counted (``bad_frames``) and skipped. A
    paper or live run goes on until it is stopped (SIGINT or SIGTERM: the engine finishes the
    current event, commits and prints the summary); ``max_events`` or ``duration`` end it
    earlier.

    Follows the ccxt Manual's "ccxt.pro" chapter (https://docs.ccxt.com): each ``watch_*`` call
    returns the updates received since the previous call; the library keeps the connection and
    the order book (synchronised from a REST snapshot, as the exchange documents).
    """

    name = "ccxt-stream"
    live = True
    provides: ClassVar[frozenset[str]] = frozenset(STREAMS)

    @frozen
    class Config:
        exchange: str = option(doc="ccxt exchange id, e.g. 'binance'.")
        symbol: str | None = option(None, doc="Unified ccxt symbol (default: the pipeline's).")
        streams: list[str] = option(factory=lambda: ["trades"],
                                    doc="What to watch: trades, bars, book, depth.",
                                    validator=_check_streams)
        timeframe: str = option("1m", doc="Interval of the bars.")
        bars_from: Literal["exchange", "trades"] = option(
            "exchange", doc="Bars from the exchange's candle stream, or folded from trades.")
        depth_levels: int = option(50, doc="Levels per side kept for depth events.",
                                   validator=at_least(1))
        max_events: int | None = option(None, doc="Stop after this many events (default: "
                                                  "run until stopped by SIGINT or SIGTERM).",
                                        validator=optional(at_least(1)))
        duration: float | None = option(None, doc="Stop after this many seconds (default: "
                                                  "run until stopped by SIGINT or SIGTERM).",
                                        validator=optional(positive()))
        retries: int | None = option(None, doc="Failures in a row before the run ends with "
                                               "one DataError line (default: never give up).",
                                     validator=optional(non_negative()))
        backoff: float = option(1.0, doc="Seconds before the first reconnect; doubled per "
                                         "failure in a row up to max_backoff, with jitter.",
                                validator=non_negative())
        max_backoff: float = option(60.0, doc="Longest wait between two reconnects (seconds).",
                                    validator=non_negative())
        stall: float = option(30.0, doc="Seconds without an update before reconnecting (set "
                                        "it above the market's longest quiet spell: a stall "
                                        "pauses trading until data flows again).",
                              validator=positive())
        clock: float = option(1.0, doc="In a paper or live run: a clock tick after this many "
                                       "seconds without market data, so the executor hands "
                                       "over what the exchange said (0: none).",
                              validator=non_negative())
        url: str | None = option(None, doc="Base URL replacing the host of every API URL.")
        urls: dict[str, Any] = option(factory=dict, doc="Entries merged into the exchange's "
                                                        "``urls['api']`` (incl. ``ws``).")
        options: dict[str, Any] = option(factory=dict, doc="ccxt exchange options to set.")

        def __attrs_post_init__(self) -> None:
            if self.bars_from == "trades":
                try:
                    parse_interval(self.timeframe)
                except ValueError as err:
                    raise OptionError("timeframe", str(err)) from None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.provides = frozenset(c.streams)  # type: ignore[misc]
        if "bars" in c.streams and c.bars_from == "trades":
            self.provides |= {"trades"}  # type: ignore[misc]
            self.bar_interval = parse_interval(c.timeframe)
        self.symbol = ""
        self.exchange: Any = None
        self.counts: dict[str, int] = {
            "events": 0, "trades": 0, "bars": 0, "book": 0, "depth": 0, "reconnects": 0,
            "stream_errors": 0,
            "stalls": 0, "bad_frames": 0, "trade_id_gaps": 0, "trades_missed": 0,
            "trades_backwards": 0, "bar_gaps": 0, "bars_backwards": 0, "book_resyncs": 0,
            "clock": 0, "outages": 0}
        self._gen: Iterator[Any] | None = None
        self.loop: Any = None
        #: The last stream failure (kind: error), for the run summary.
        self.last_error: str | None = None
        #: Why market data is down (``"market data down: EXCHANGE SYMBOL STREAMS"``) from a
        #: stream's first failure until its next good update, else None; the engine pauses
        #: the lane's trading meanwhile.
        self.down: str | None = None
        self._down: dict[str, float] = {}  # watcher kind -> monotonic time it went down
        #: Draws the jitter of the reconnect waits (tests seed it).
        self.random = random.Random()

    def validate(self, run: RunInfo) -> None:
        import ccxt.pro

        if self.config.exchange not in ccxt.pro.exchanges:
            raise ConfigError(f"ccxt.pro has no websocket exchange {self.config.exchange!r}")

    def setup(self, run: RunInfo) -> None:
        self.symbol = self.config.symbol or run.symbol
        #: The run's event loop (paper and live runs), or None: then :meth:`events` makes one.
        self.loop = run.loop

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "last_error": self.last_error}

    def close(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.close()  # type: ignore[attr-defined]

    # -- the loop -----------------------------------------------------------------------------

    def events(self) -> Iterator[Any]:
        self._gen = self._events()
        return self._gen

    def _events(self) -> Iterator[Any]:
        import asyncio

        c = self.config
        aio = _Tasks(self.loop)  # the run's loop, or a private one outside a run
        run = aio.run
        queue: asyncio.Queue[Any] = asyncio.Queue()
        tasks: list[asyncio.Task[None]] = []
        ex = None
        try:
            ex = self.exchange = run(self._open())
            watched = set(c.streams)
            if "bars" in watched and c.bars_from == "trades":
                watched = (watched - {"bars"}) | {"trades"}
            if "book" in watched and "depth" in watched:
                watched.discard("book")  # one order-book watcher serves both
            for kind in sorted(watched):
                tasks.append(aio.spawn(self._watch(kind, queue)))
            deadline = time.monotonic() + c.duration if c.duration else None
            kinds = EVENT_KINDS
            n = 0
            # Ticks only in a run: they are for its executor, and a bare stream stays data.
            tick = c.clock if self.loop is not None and c.clock > 0 else None
            while c.max_events is None or n < c.max_events:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                wait = timeout if tick is None or (timeout is not None and timeout < tick) \
                    else tick
                item = run(self._next(queue, wait))
                if item is None:
                    if wait is tick and wait is not None:  # quiet for a tick, not the end
                        self.counts["clock"] += 1
                        yield Clock(int(time.time() * 1000))
                        continue
                    break
                if isinstance(item, BaseException):
                    raise item
                n += 1
                self.counts["events"] = n
                self.counts[kinds[type(item)]] += 1
                yield item
        finally:
            try:
                if not aio.loop.is_closed():  # closed under us (the run is over): nothing runs
                    for t in tasks:
                        t.cancel()
                    if tasks:
                        run(asyncio.wait(tasks, timeout=5))
                    if ex is not None:
                        with contextlib.suppress(Exception):  # must not hide the run's result
                            run(asyncio.wait_for(ex.close(), 5))
            finally:
                aio.close()  # the rest: ccxt's throttler and spawned snapshot fetches

    @staticmethod
    async def _next(queue: Any, timeout: float | None) -> Any:
        import asyncio

        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return None

    async def _open(self) -> Any:
        import ccxt.pro

        c = self.config
        base = getattr(ccxt.pro, c.exchange, None)
        if base is None:
            raise ConfigError(f"ccxt.pro has no websocket exchange {c.exchange!r}")
        guarded = _guarded_class(base, self.counts)
        module = type("m", (), {c.exchange: guarded})
        ex = make_exchange(module, c.exchange, self.symbol, url=c.url, urls=c.urls,
                           options=c.options)
        try:
            await ex.load_markets()
        except ccxt.pro.NetworkError as err:
            await ex.close()
            # Nothing was sent: a supervisor may retry later (exit status 3, not bad input).
            raise ExchangeUnreachable(f"{c.exchange} could not be reached: cannot load "
                                      f"markets: {type(err).__name__}: {one_line(err)}") from None
        except ccxt.pro.BaseError as err:
            await ex.close()
            raise DataError(f"{c.exchange}: cannot load markets: {type(err).__name__}: "
                            f"{one_line(err)}") from None
        if self.symbol not in ex.markets:
            await ex.close()
            raise DataError(f"{c.exchange} has no market {self.symbol!r}")
        from gridkit.trading.markets import UnsupportedMarket, markets_from_ccxt

        with contextlib.suppress(UnsupportedMarket, DataError):  # a kind gridkit does not trade
            self.markets = markets_from_ccxt({self.symbol: ex.markets[self.symbol]},
                                             f"{c.exchange} markets")
        return ex

    async def _watch(self, kind: str, queue: Any) -> None:
        """One watcher; whatever ends it is reported through the queue, so the consumer never
        waits on a watcher that is gone."""
        import asyncio

        try:
            await self._watch_loop(kind, queue)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug or an unexpected payload: end the run, say why
            queue.put_nowait(DataError(f"{self.config.exchange} {self.symbol} {kind} stream "
                                       f"failed: {type(err).__name__}: {one_line(err)}"))

    async def _watch_loop(self, kind: str, queue: Any) -> None:
        """Call ccxt.pro's watch method in a loop, reconnecting on failures."""
        import asyncio

        import ccxt.pro

        c, ex = self.config, self.exchange
        failures = 0
        state = _StreamState(self, kind)
        where = f"{c.exchange} {self.symbol} {kind}"
        while True:
            try:
                if kind == "trades":
                    coro = ex.watch_trades(self.symbol)
                elif kind == "bars":
                    coro = ex.watch_ohlcv(self.symbol, c.timeframe)
                else:
                    coro = ex.watch_order_book(self.symbol)
                result = await self._answer(kind, coro, state, queue)
            except asyncio.CancelledError:
                raise
            except (asyncio.TimeoutError, TimeoutError, ccxt.pro.NetworkError,
                    ccxt.pro.BadResponse) as err:
                is_stall = isinstance(err, (asyncio.TimeoutError, TimeoutError))
                self.last_error = f"{kind}: {type(err).__name__}: {one_line(err, 120)}"
                resync = isinstance(err, ccxt.pro.InvalidNonce)
                if resync:
                    self.counts["book_resyncs"] += 1
                else:
                    self.counts["stalls" if is_stall else "stream_errors"] += 1
                failures += 1
                what = (f"no update for {c.stall:g} s" if is_stall
                        else f"{type(err).__name__}: {one_line(err)}")
                self._went_down(kind)
                if c.retries is not None and failures > c.retries:
                    queue.put_nowait(DataError(
                        f"{where} stream: gave up after {failures} failures in a row ({what})"))
                    return
                wait = 0.0 if resync else self.backoff(failures)
                _LOG.warning("%s stream down (%s); reconnecting in %.1f s (failure %d in a "
                             "row)", where, what, wait, failures,
                             extra={"event": "reconnect", "exchange": c.exchange,
                                    "symbol": self.symbol, "stream": kind,
                                    "failures": failures, "wait": wait, "error": what})
                if not resync:
                    await _close_clients(ex)
                    await asyncio.sleep(wait)
                continue
            except ccxt.pro.BaseError as err:
                queue.put_nowait(DataError(f"{where} stream: "
                                           f"{type(err).__name__}: {one_line(err)}"))
                return
            if failures:
                self._came_back(kind, failures)
            failures = 0
            for event in state.convert(result):
                queue.put_nowait(event)


    async def _answer(self, kind: str, coro: Any, state: _StreamState, queue: Any) -> Any:
        """ccxt's answer to one watch call, within ``stall`` seconds.

        While a trades call waits, the prints ccxt has cached but not handed over are taken
        every :data:`PEEK_S` seconds: ccxt hands a print only to a call already waiting when it
        lands, so the last print before a quiet spell would otherwise wait for the next one
        (and the last print of a feed would never come)."""
        import asyncio

        stall = self.config.stall
        if kind != "trades":
            return await asyncio.wait_for(coro, stall)
        task = asyncio.ensure_future(coro)
        deadline = time.monotonic() + stall
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError
                done, _ = await asyncio.wait({task}, timeout=min(left, PEEK_S))
                if done:
                    return task.result()
                for event in state.cached_trades(self.exchange, self.symbol):
                    queue.put_nowait(event)
        finally:
            if not task.done():
                task.cancel()

    def backoff(self, failures: int) -> float:
        """The wait before reconnecting after ``failures`` failures in a row: ``backoff``
        doubled per failure, at most ``max_backoff``, drawn between half and all of that."""
        c = self.config
        cap = min(c.backoff * 2.0 ** min(failures - 1, 64), c.max_backoff)
        return cap * (0.5 + 0.5 * self.random.random())

    def _went_down(self, kind: str) -> None:
        if kind in self._down:
            return
        self._down[kind] = time.monotonic()
        self.counts["outages"] += 1
        self._say_down()

    def _came_back(self, kind: str, failures: int) -> None:
        since = self._down.pop(kind, None)
        self._say_down()
        outage = time.monotonic() - since if since is not None else 0.0
        c = self.config
        _LOG.warning("%s %s %s stream back after %.1f s (%d failures in a row)", c.exchange,
                     self.symbol, kind, outage, failures,
                     extra={"exchange": c.exchange, "symbol": self.symbol, "stream": kind,
                            "failures": failures, "outage": round(outage, 3)})

    def _say_down(self) -> None:
        self.down = (f"market data down: {self.config.exchange} {self.symbol} "
                     f"{', '.join(sorted(self._down))}" if self._down else None)


_LOG = logging.getLogger("gridkit.stream")

#: Seconds between two looks at ccxt's trade cache while a trades call waits.
PEEK_S = 0.25


async def _close_clients(ex: Any) -> None:
    for client in list((getattr(ex, "clients", None) or {}).values()):
        with contextlib.suppress(Exception):  # already closed or half-open: replaced anyway
            await client.close()
    ex.clients = {}


_GUARDED: dict[type, type] = {}


def _guarded_class(base: type, counts: dict[str, int]) -> type:
    """A subclass of a ccxt.pro exchange that counts and skips frames it cannot handle, so that
    a garbage frame neither kills the receive loop nor reaches the caller."""

    def handle_message(self: Any, client: Any, message: Any) -> Any:
        if not isinstance(message, (dict, list)):
            self._gridkit_counts["bad_frames"] += 1
            return None
        try:
            return base.handle_message(self, client, message)  # type: ignore[attr-defined]
        except Exception:
            self._gridkit_counts["bad_frames"] += 1
            return None

    def client(self: Any, url: str) -> Any:
        if url not in (self.clients or {}):  # a new connection; again to a url: a reconnect
            seen = self.__dict__.setdefault("_gridkit_urls", set())
            if url in seen:
                self._gridkit_counts["reconnects"] += 1
            seen.add(url)
        cl = base.client(self, url)  # type: ignore[attr-defined]
        if not getattr(cl, "_gridkit_guarded", False):
            original = cl.handle_text_or_binary_message

            def guarded(data: Any) -> Any:
                try:
                    return original(data)
                except ValueError:  # JSON that does not parse
                    self._gridkit_counts["bad_frames"] += 1
                    return None

            cl.handle_text_or_binary_message = guarded
            cl._gridkit_guarded = True
        return cl

    cls = type(base.__name__, (base,), {"handle_message": handle_message, "client": client})

    def init(self: Any, config: Any = None) -> None:
        self._gridkit_counts = counts
        base.__init__(self, config or {})

    cls.__init__ = init  # type: ignore[misc]
    return cls


class _StreamState:
    """Turns ccxt.pro results into gridkit events, tracking gaps per stream."""

    def __init__(self, source: CcxtStream, kind: str) -> None:
        self.source = source
        self.kind = kind
        self.counts = source.counts
        c = source.config
        self.want = set(c.streams)
        self.last_trade_id: int | None = None
        self.last_trade_ts = -1
        self.tf_ms = 0
        if "bars" in self.want and c.bars_from == "trades":
            self.want.add("trades")  # the engine folds them into bars
        elif "bars" in self.want and source.exchange is not None:
            self.tf_ms = source.exchange.parse_timeframe(c.timeframe) * 1000
        self.pending_bar: list[Any] | None = None
        self.last_bar_ts = -1
        self.book = OrderBook()
        self.prev: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
        self.last_nonce: int | None = None
        self.last_bbo: tuple[float, float, float, float] | None = None

    def convert(self, result: Any) -> list[Any]:
        if self.kind == "trades":
            return self._trades(result)
        if self.kind == "bars":
            return self._candles(result)
        return self._book(result)

    def _trades(self, trades: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        counts = self.counts
        for t in trades:
            ts = t.get("timestamp")
            if ts is None:
                continue
            tid = t.get("id")
            try:
                num_id = int(tid) if tid is not None else None
            except (TypeError, ValueError):
                num_id = None
            if num_id is not None and self.last_trade_id is not None:
                if num_id <= self.last_trade_id:
                    counts["trades_backwards"] += 1
                    continue
                if num_id > self.last_trade_id + 1:
                    counts["trade_id_gaps"] += 1
                    counts["trades_missed"] += num_id - self.last_trade_id - 1
            if ts < self.last_trade_ts:
                counts["trades_backwards"] += 1
                continue
            if num_id is not None:
                self.last_trade_id = num_id
            self.last_trade_ts = ts
            side = "sell" if t.get("side") == "sell" else "buy"
            trade = Trade(int(ts), _num(t.get("price")), _num(t.get("amount")), side,
                          str(tid) if tid is not None else "")
            if "trades" in self.want:
                out.append(trade)
        return out

    def cached_trades(self, ex: Any, symbol: str) -> list[Any]:
        """Prints ccxt has cached since its last answer, newer than the last one taken.

        Reading ccxt's count of new prints marks them to be cleared at its next print, so its
        next answer starts after them; prints without numeric ids are left to that answer
        (nothing tells a print seen from one not seen)."""
        cache = (getattr(ex, "trades", None) or {}).get(symbol)
        if not cache or self.last_trade_id is None:
            return []
        if not cache.getLimit(symbol, None):  # (ccxt clears its count at the next print)
            return []
        last = self.last_trade_id
        out = []
        for t in reversed(cache):  # newest first, down to the last print taken: O(new)
            try:
                if int(t.get("id")) <= last:
                    break
            except (TypeError, ValueError):
                return []
            out.append(t)
        return self._trades(out[::-1]) if out else []

    def _candles(self, candles: list[list[Any]]) -> list[Any]:
        out: list[Any] = []
        counts = self.counts
        for row in candles:
            ts = int(row[0])
            pending = self.pending_bar
            if pending is not None and ts > pending[0]:
                if self.last_bar_ts >= 0 and pending[0] - self.last_bar_ts > self.tf_ms:
                    counts["bar_gaps"] += 1
                self.last_bar_ts = pending[0]
                out.append(Bar(int(pending[0]), *(_num(x) for x in pending[1:6])))
                self.pending_bar = None
                pending = None
            if ts <= self.last_bar_ts:
                counts["bars_backwards"] += 1
                continue
            if pending is None or ts >= pending[0]:
                self.pending_bar = list(row)
        return out

    def _book(self, ob: Any) -> list[Any]:
        out: list[Any] = []
        counts = self.counts
        nonce = ob.get("nonce")
        if nonce is not None and self.last_nonce is not None and nonce < self.last_nonce:
            counts["book_resyncs"] += 1
        self.last_nonce = nonce
        ts = ob.get("timestamp") or self.source.exchange.milliseconds()
        bids, asks = ob.get("bids") or [], ob.get("asks") or []
        if "book" in self.want and bids and asks:
            bbo = (float(bids[0][0]), float(bids[0][1]), float(asks[0][0]), float(asks[0][1]))
            if bbo != self.last_bbo:
                self.last_bbo = bbo
                out.append(BookUpdate(int(ts), *bbo))
        if "depth" in self.want:
            n = self.source.config.depth_levels
            changes: list[tuple[str, float, float]] = []
            for side, levels in (("bid", bids[:n]), ("ask", asks[:n])):
                now = {float(p): float(q) for p, q, *_ in levels}
                before = self.prev[side]
                for p, q in now.items():
                    if before.get(p) != q:
                        changes.append((side, p, q))
                        self.book.set(side, p, q)
                for p in before:
                    if p not in now:
                        changes.append((side, p, 0.0))
                        self.book.set(side, p, 0.0)
                self.prev[side] = now
            if changes:
                self.book.ts = int(ts)
                if nonce is not None:
                    self.book.last_update_id = int(nonce)
                out.append(BookDepth(int(ts), self.book, tuple(changes)))
        return out


# --- gridkit data download ----------------------------------------------------------------------


def download(exchange: str, symbol: str, timeframe: str, since: str, until: str | None = None,
             *, out: str | None = None, db: str | None = None, url: str | None = None,
             limit: int = 1000, retries: int = 5, backoff: float = 1.0,
             progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    """Download closed candles to a freqtrade-json file (``out``) or a SQLite file (``db``),
    resuming after the last candle already there. Returns counts."""
    from gridkit.core.config import structure

    if (out is None) == (db is None):
        raise ConfigError("give exactly one of --out FILE.json or --db FILE.db")
    target = Path(out or db or "").resolve()
    resume_from = None
    existing: list[list[Any]] = []
    if out is not None:
        existing = read_rows(target)
        resume_from = str(target) if existing else None
    config, problems = structure({
        "exchange": exchange, "symbol": symbol, "timeframe": timeframe, "since": since,
        "until": until, "limit": limit, "retries": retries, "backoff": backoff,
        "url": url, "resume_from": resume_from}, CcxtOhlcv.Config, "download")
    if problems:
        raise ConfigError([p.removeprefix("download.") for p in problems])
    source = CcxtOhlcv(config)
    run = RunInfo("download", "backtest", symbol, 0.0, Path.cwd())
    source.validate(run)
    source.setup(run)
    try:
        if db is not None:
            last = _db_last(target, exchange, symbol, timeframe)
            if last is not None:
                source.start = max(source.start, last + source.tf_ms)
                source.counts["resumed_after"] = last
        total = source.size_hint()
        rows: list[list[Any]] = []
        for bar in source.events():
            rows.append([bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume])
            if progress is not None and not len(rows) % 500:
                progress(len(rows), total)
        if progress is not None:  # the estimate counted gaps too: end the bar at the count
            progress(len(rows), len(rows))
        if out is not None:
            merged = {int(r[0]): r for r in existing}
            merged.update((r[0], r) for r in rows)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_text(json.dumps([merged[k] for k in sorted(merged)],
                                      separators=(",", ":")))
            tmp.replace(target)
        else:
            _db_write(target, exchange, symbol, timeframe, rows)
    finally:
        source.close()
    return {"candles": len(rows), "path": str(target), **source.stats()}


def _db_connect(path: Path) -> Any:
    """The candle store: the ``candles`` table that the ``sqlite`` source reads."""
    import sqlite3

    from gridkit.plugins.sources import create_candles_table

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path))
        create_candles_table(conn)
    except (OSError, sqlite3.Error) as err:
        raise DataError(f"cannot open candle store {path}: {err}") from None
    return conn


def _db_last(path: Path, exchange: str, symbol: str, timeframe: str) -> int | None:
    if not path.exists():
        return None
    conn = _db_connect(path)
    try:
        row = conn.execute("SELECT MAX(ts) FROM candles WHERE exchange=? AND symbol=? AND "
                           "timeframe=?", (exchange, symbol, timeframe)).fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else int(row[0])


def _db_write(path: Path, exchange: str, symbol: str, timeframe: str,
              rows: list[list[Any]]) -> None:
    from gridkit.plugins.sources import write_candles

    conn = _db_connect(path)
    try:
        write_candles(conn, exchange, symbol, timeframe, rows)
    finally:
        conn.close()


@hookimpl
def gridkit_register_sources(register: Any) -> None:
    register(CcxtOhlcv)
    register(CcxtStream)


__all__ = ["CcxtOhlcv", "CcxtStream", "download", "make_exchange", "parse_time"]
