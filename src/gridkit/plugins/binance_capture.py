"""Built-in source ``binance-capture``: replays raw Binance websocket captures and rebuilds the
L2 book from the depth diffs with Binance's documented sync procedure.

The capture format is the one hftbacktest's collector writes: a text file (usually gzip), one
message a line, ``<local receive time, ns> <raw JSON>``, where the JSON is Binance's
combined-stream envelope ``{"stream": "btcusdt@trade", "data": {...}}`` or, once per session,
the REST depth snapshot ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``.
"""

from __future__ import annotations

import glob
import gzip
import heapq
import json
import math
import re
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.components import Source
from gridkit.core.config import OptionError, at_least, non_negative, option
from gridkit.core.errors import DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import BookDepth, BookUpdate, Trade
from gridkit.data.bars import parse_interval
from gridkit.data.book import OrderBook
from gridkit.runtime.context import RunInfo

STREAMS = ("trades", "book", "depth")
_INF = math.inf

# Kinds of parsed messages, in the reorder heap. At equal timestamps a snapshot goes first,
# then depth, quotes and trades (the order is arbitrary but fixed, so replays are repeatable).
_SNAP, _DEPTH, _QUOTE, _TRADE = 0, 1, 2, 3

Change = tuple[str, float, float]


class BookSync:
    """Binance's "How to manage a local order book correctly", as a state machine on one
    :class:`~gridkit.data.book.OrderBook`.

    Spot (diffs without ``pu``): a diff with ``u <= lastUpdateId`` is stale; the first diff
    applied after a snapshot must have ``U <= lastUpdateId + 1 <= u``, and every later one
    ``U <= previous u + 1`` (normally ``U == previous u + 1``; the documented update rule also
    accepts an overlap). USDT-M futures (diffs with ``pu``): a diff with ``u < lastUpdateId`` is
    stale, the first applied one must have ``U <= lastUpdateId <= u``, and every later one
    ``pu == previous u``. Anything else is a sequence gap: the book is out of sync, nothing is
    emitted from it until a later snapshot syncs it again. Diffs that arrive while there is no
    book are buffered (at most ``max_buffer``), since the snapshot usually arrives after the
    first diffs that follow it. A diff that leaves the book crossed (best bid >= best ask) also
    puts it out of sync.
    """

    __slots__ = ("book", "buffer", "counts", "max_buffer", "state")

    NONE, FRESH, LIVE = 0, 1, 2

    def __init__(self, max_buffer: int = 10_000) -> None:
        self.book = OrderBook()
        self.max_buffer = max_buffer
        #: NONE: no valid book; FRESH: snapshot loaded, no diff applied yet; LIVE: in sync.
        self.state = self.NONE
        self.buffer: deque[tuple[int, int, int, tuple[Change, ...], int]] = deque()
        self.counts = {"snapshots": 0, "stale_snapshots": 0, "applied": 0, "stale_diffs": 0,
                       "unsynced_diffs": 0, "gaps": 0, "crossed": 0, "syncs": 0, "resyncs": 0}

    @property
    def in_sync(self) -> bool:
        """True while the book is known to be right."""
        return self.state != self.NONE

    def snapshot(self, last_update_id: int, bids: Iterable[tuple[float, float]],
                 asks: Iterable[tuple[float, float]], ts: int = 0) -> bool:
        """Load a REST snapshot and apply the buffered diffs that follow it; True if the book
        was (re)loaded and is in sync. A snapshot no newer than a book in sync is ignored."""
        c = self.counts
        c["snapshots"] += 1
        was_live = self.state == self.LIVE
        book = self.book
        if self.state != self.NONE and last_update_id <= book.last_update_id:
            c["stale_snapshots"] += 1
            return False
        book.load(bids, asks, last_update_id)
        book.ts = ts
        self.state = self.FRESH
        pending, self.buffer = self.buffer, deque()
        for U, u, pu, changes, ets in pending:
            if self.state == self.NONE:  # out of sync again: the rest waits for a snapshot
                self._hold(U, u, pu, changes, ets)
            else:
                self.diff(U, u, pu, changes, ets)
        if self.state == self.NONE:
            return False
        if book.crossed:
            c["crossed"] += 1
            self._lose()
            return False
        if c["syncs"] and not was_live:
            c["resyncs"] += 1
        c["syncs"] += 1
        return True

    def diff(self, U: int, u: int, pu: int, changes: tuple[Change, ...], ts: int = 0) -> bool:
        """Take one depth diff (``pu`` = -1 on spot); True if it was applied to the book."""
        state = self.state
        if state == self.NONE:
            self._hold(U, u, pu, changes, ts)
            return False
        book = self.book
        last = book.last_update_id
        if pu < 0:  # spot
            if u <= last:
                self.counts["stale_diffs"] += 1
                return False
            ok = last + 1 >= U
        else:  # USDT-M futures
            if u < last or (state == self.LIVE and u == last):
                self.counts["stale_diffs"] += 1
                return False
            ok = last >= U if state == self.FRESH else pu == last
        if not ok:
            self.counts["gaps"] += 1
            self._lose()
            self._hold(U, u, pu, changes, ts)
            return False
        set_level = book.set
        for side, price, qty in changes:
            set_level(side, price, qty)
        book.last_update_id = u
        book.ts = ts
        self.state = self.LIVE
        self.counts["applied"] += 1
        if book.crossed:
            self.counts["crossed"] += 1
            self._lose()
            return False
        return True

    def _hold(self, U: int, u: int, pu: int, changes: tuple[Change, ...], ts: int) -> None:
        buf = self.buffer
        buf.append((U, u, pu, changes, ts))
        if len(buf) > self.max_buffer:
            buf.popleft()
            self.counts["unsynced_diffs"] += 1

    def _lose(self) -> None:
        """The book is known to be wrong: drop it and wait for the next snapshot."""
        self.state = self.NONE
        self.book.clear()

    def finish(self) -> None:
        """End of data: diffs still waiting for a snapshot were never used."""
        self.counts["unsynced_diffs"] += len(self.buffer)
        self.buffer.clear()


def _levels(rows: Any, side: str) -> list[Change]:
    """(side, price, qty) from Binance's ``[["price", "qty"], ...]``; ValueError if malformed
    (prices must be finite and > 0, quantities finite and >= 0)."""
    prices = [float(p) for p, _ in rows]
    qtys = [float(q) for _, q in rows]
    # min/sum run in C: one pass each instead of a Python test per level. A NaN or an infinity
    # anywhere makes the sum non-finite.
    if prices and not (min(prices) > 0.0 and min(qtys) >= 0.0
                       and math.isfinite(sum(prices) + sum(qtys))):
        raise ValueError(f"bad price level in {rows!r:.80}")
    return list(zip(repeat(side), prices, qtys))


def _open_lines(path: Path) -> Any:
    """A binary line iterator over a gzip or plain text capture."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


class BinanceCapture(Source):
    """Trades, best bid/ask and the rebuilt L2 book from a raw Binance websocket capture.

    Reads the capture files hftbacktest's collector writes (``<local receive ns> <JSON>`` a
    line, gzip or plain): the ``@trade``, ``@bookTicker`` and ``@depth`` streams of Binance
    spot or USDT-M futures, plus the REST depth snapshots (``lastUpdateId``). The L2 book is
    rebuilt in a :class:`gridkit.data.book.OrderBook` with the procedure of Binance's API docs,
    "How to manage a local order book correctly" (spot: ``U``/``u`` continuity; USDT-M
    futures: ``pu`` equal to the previous ``u``; class ``BookSync`` in this module). On a gap or a
    crossed book the book is dropped and no ``depth`` event is emitted until a later snapshot
    in the data syncs it again; a book known to be wrong is never emitted.

    Events and their timestamps (epoch ms, exchange clock):

    * ``Trade``: ``ts`` = trade time ``T``; ``side`` = the taker's side (``m`` true means the
      buyer was the maker, so the taker sold).
    * ``BookUpdate`` from ``@bookTicker``: USDT-M messages carry an event time ``E``, used as
      ``ts``. Spot messages carry none, so ``ts`` is the local receive time shifted to the
      exchange clock by the largest ``E`` minus receive time seen over the last ~1,000 messages
      that have an ``E`` (the recorder's clock offset less the smallest network delay; about
      1.27 s in the shipped captures).
    * ``BookDepth`` after each applied diff: ``ts`` = event time ``E``, ``changes`` = the
      levels the diff set. At each (re)sync from a snapshot one ``BookDepth`` with empty
      ``changes`` carries the freshly loaded book.
    * ``Bar`` (with ``bars``): time bars the engine folds from the trades the validators
      accepted (:attr:`gridkit.Source.bar_interval`, :class:`gridkit.data.bars.TimeBars`);
      ``ts`` is the bar's open time (earlier than the events around it) and a bar comes when
      it closes, just after the first trade of a later interval. With ``bars`` the trades are
      emitted whether or not ``streams`` names them, since the bars are made from them.

    Order: the capture interleaves the streams by receive time, while the exchange stamps a
    depth diff at the end of its 100 ms batch, so trades inside a batch arrive after it with
    an earlier ``T`` (up to ~190 ms in the shipped captures). Events are therefore re-sorted by
    ``ts`` in a window of ``reorder_ms`` on the exchange clock (each stream is already in order
    by itself; diffs keep their sequence order); an event later than the window is clamped to
    the last ``ts`` emitted and counted in ``late``. The book is updated when a diff leaves the
    window, so each ``BookDepth`` shows the book as of that diff.

    ``path`` may be a glob (``spot/btcusdt_*.gz``): the files are read in name order as one
    capture, the book carrying over (Binance captures are split by day). Bad input is counted
    in :meth:`stats` and skipped: unparsable lines and JSON errors (``bad_lines``), streams or
    messages it does not read (``unknown``), a truncated or corrupt gzip tail (``truncated``),
    stale and out-of-sequence diffs, crossed books. An exchange time more than ``max_skew_ms``
    from the line's receive time is replaced by the receive time on the exchange clock and
    counted in ``bad_ts`` (one wild timestamp would otherwise hold back the reorder window and
    clamp everything after it). Lines of streams not asked for are skipped unread
    (``skipped``). A capture with no usable line is a :class:`gridkit.DataError`.
    """

    name = "binance-capture"
    provides = frozenset({"trades", "book", "depth"})

    @frozen
    class Config:
        path: str = option(doc="Capture file, or a glob of files read in name order as one "
                               "capture; relative to pipeline.toml's folder.")
        streams: list[str] = option(
            factory=lambda: list(STREAMS),
            doc="Which events to emit: any of 'trades', 'book' (bookTicker), 'depth'.")
        bars: str | None = option(
            None, doc="Also emit time bars of this interval built from the trades "
                      "(e.g. '1m'); off by default.")
        reorder_ms: int = option(
            500, doc="Window (ms) in which events are re-sorted by timestamp; 0 = file order "
                     "with clamped timestamps.", validator=non_negative())
        max_skew_ms: int = option(
            60_000, doc="An exchange time further than this (ms) from the line's receive time "
                        "is not trusted: the event is stamped from its receive time instead "
                        "(counted in bad_ts).", validator=at_least(1))
        max_buffer: int = option(
            10_000, doc="Depth diffs kept while waiting for a snapshot.", validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            bad = sorted(set(self.streams) - set(STREAMS))
            if bad:
                raise OptionError("streams", f"unknown stream(s) {', '.join(bad)}; "
                                  f"streams are {', '.join(STREAMS)}")
            if not self.streams and self.bars is None:
                raise OptionError("streams", "nothing to emit: name a stream or set bars")
            if self.bars is not None:
                try:
                    parse_interval(self.bars)
                except ValueError as err:
                    raise OptionError("bars", str(err)) from None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.provides = frozenset(cfg.streams) | (
            frozenset({"bars", "trades"}) if cfg.bars is not None else frozenset())
        if cfg.bars is not None:
            self.bar_interval = parse_interval(cfg.bars)
        self.files: list[Path] = []
        self.sync = BookSync(cfg.max_buffer)
        self._reset()

    def _reset(self) -> None:
        self.sync = BookSync(self.config.max_buffer)
        self.counts = {"lines": 0, "bad_lines": 0, "unknown": 0, "other_symbol": 0,
                       "truncated": 0, "skipped": 0, "bad_ts": 0, "trades": 0, "quotes": 0,
                       "crossed_quotes": 0, "depth_diffs": 0, "depth_events": 0,
                       "late": 0}
        self.symbol: str | None = None

    # --- files ------------------------------------------------------------------------------

    def _paths(self, run: RunInfo) -> list[Path]:
        p = run.resolve(self.config.path)
        if glob.has_magic(str(p)):
            found = sorted(Path(x) for x in glob.glob(str(p)))
            files = [f for f in found if f.is_file()]
            if not files:
                raise DataError(f"no capture file matches {p}")
            return files
        if not p.exists():
            raise DataError(f"data file not found: {p}")
        if not p.is_file():
            raise DataError(f"data path is not a file: {p}")
        return [p]

    def validate(self, run: RunInfo) -> None:
        self._paths(run)

    def setup(self, run: RunInfo) -> None:
        self.files = self._paths(run)
        self._reset()

    # --- parsing ----------------------------------------------------------------------------

    def _lines(self, path: Path) -> Iterator[bytes]:
        try:
            f = _open_lines(path)
        except OSError as err:
            raise DataError(f"cannot read capture file {path}: {err.strerror or err}") from None
        with f:
            try:
                yield from f
            except (EOFError, OSError, zlib.error):  # truncated or corrupt gzip: keep the head
                self.counts["truncated"] += 1

    def _parsed(self) -> Iterator[tuple[int, int, Any]]:
        """(ts, kind, payload) in file order; counts what it cannot read."""
        c = self.counts
        want_trades = "trades" in self.config.streams or self.config.bars is not None
        want_quotes = "book" in self.config.streams
        want_depth = "depth" in self.config.streams
        decode = json.JSONDecoder().decode
        skew = self.config.max_skew_ms
        # Lines of streams not asked for are skipped before decoding them, except that spot
        # quotes need the event times of the other streams for their clock offset.
        unwanted = [] if want_quotes else ["bookTicker\""] + (
            [] if want_trades else ["trade\""]) + ([] if want_depth else ["depth"])
        skip = re.compile(f"@({'|'.join(unwanted)})".encode()).search if unwanted else None
        # Clock offset (exchange E minus local receive ms): max over blocks of 1024 samples.
        off_cur = off_prev = -_INF
        off_n = 0
        waiting: list[tuple[int, tuple[float, float, float, float]]] = []  # quotes, no offset
        last_depth = -(1 << 62)
        symbol = None
        for path in self.files:
            for raw in self._lines(path):
                c["lines"] += 1
                sp = raw.find(b" ")
                try:
                    local_ms = int(raw[:sp]) // 1_000_000
                    if skip is not None and skip(raw, sp, sp + 48):
                        c["skipped"] += 1
                        continue
                    msg = decode(raw[sp + 1:].decode())
                    if not isinstance(msg, dict):
                        raise ValueError("not an object")
                    stream = msg.get("stream")
                    if stream is None:
                        if "lastUpdateId" not in msg:
                            c["unknown"] += 1
                            continue
                        if not want_depth:
                            continue
                        lid = int(msg["lastUpdateId"])
                        bids = [(p, q) for _, p, q in _levels(msg["bids"], "bid")]
                        asks = [(p, q) for _, p, q in _levels(msg["asks"], "ask")]
                        # Where a snapshot sits among the diffs does not matter: diffs that
                        # come before it wait in the sync buffer.
                        e = msg.get("E")
                        shift = max(off_cur, off_prev)
                        ts = int(e) if isinstance(e, int) else local_ms + (
                            int(shift) if shift > -_INF else 0)
                        yield ts, _SNAP, (lid, bids, asks)
                        continue
                    data = msg["data"]
                    sym, _, kind = stream.partition("@")
                    if symbol is None:
                        symbol = self.symbol = sym
                    elif sym != symbol:
                        c["other_symbol"] += 1
                        continue
                    e = data.get("E")
                    if e is not None:
                        e = int(e)
                        if not -skew <= e - local_ms <= skew:  # not a time of this capture
                            c["bad_ts"] += 1
                            e = None
                    item: tuple[int, int, Any] | None = None
                    if kind == "trade":
                        t = int(data["T"])
                        if not -skew <= t - local_ms <= skew:
                            c["bad_ts"] += 1
                            t = e if e is not None else -1
                        item = (t, _TRADE if t >= 0 else -_TRADE,
                                (float(data["p"]), float(data["q"]),
                                 "sell" if data["m"] else "buy", str(data["t"])))
                        c["trades"] += 1
                        if not want_trades:
                            item = None
                    elif kind == "bookTicker":
                        q = (float(data["b"]), float(data["B"]), float(data["a"]),
                             float(data["A"]))
                        c["quotes"] += 1
                        if q[0] >= q[2]:
                            c["crossed_quotes"] += 1
                        if want_quotes:
                            item = (e, _QUOTE, q) if e is not None else (-1, -_QUOTE, q)
                    elif kind.startswith("depth"):
                        U, u, pu = int(data["U"]), int(data["u"]), data.get("pu")
                        pu = -1 if pu is None else int(pu)
                        changes = tuple(_levels(data["b"], "bid") + _levels(data["a"], "ask")) \
                            if want_depth else ()
                        c["depth_diffs"] += 1
                        if want_depth:
                            if e is None:  # stamped below from the receive time
                                item = (-1, -_DEPTH, (U, u, pu, changes))
                            else:
                                ts = e if e > last_depth else last_depth
                                last_depth = ts
                                item = (ts, _DEPTH, (U, u, pu, changes))
                    else:
                        c["unknown"] += 1
                        continue
                    if e is not None:  # a readable message with an event time
                        off = e - local_ms
                        if off > off_cur:
                            off_cur = off
                        off_n += 1
                        if off_n == 1024:
                            off_prev, off_cur, off_n = off_cur, -_INF, 0
                        if waiting:
                            shift = int(max(off_cur, off_prev))
                            for lms, wq in waiting:
                                yield lms + shift, _QUOTE, wq
                            waiting.clear()
                    if item is not None:
                        if item[1] < 0:  # no usable exchange time: receive time, shifted
                            shift = max(off_cur, off_prev)
                            kind_code = -item[1]
                            if kind_code == _QUOTE and shift == -_INF:
                                waiting.append((local_ms, item[2]))  # spot quote, no offset yet
                                continue
                            ts = local_ms + (int(shift) if shift > -_INF else 0)
                            if kind_code == _DEPTH:
                                ts = ts if ts > last_depth else last_depth
                                last_depth = ts
                            yield ts, kind_code, item[2]
                        else:
                            yield item
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
                    # UnicodeDecodeError and json.JSONDecodeError are ValueErrors.
                    c["bad_lines"] += 1
        for lms, q in waiting:  # no message had an event time: receive time as is
            yield lms, _QUOTE, q

    # --- events -----------------------------------------------------------------------------

    def events(self) -> Iterator[Any]:
        self._reset()
        c = self.counts
        cfg = self.config
        emit_trades = "trades" in cfg.streams or cfg.bars is not None
        sync = self.sync
        book = sync.book
        window = cfg.reorder_ms
        heap: list[tuple[int, int, int, Any]] = []
        push, pop = heapq.heappush, heapq.heappop
        last = -(1 << 62)
        high = -(1 << 62)
        out: list[Any] = []

        def release(ts: int, kind: int, payload: Any) -> None:
            nonlocal last
            if ts < last:
                ts = last
                c["late"] += 1
            last = ts
            if kind == _TRADE:
                price, qty, side, tid = payload
                if emit_trades:
                    out.append(Trade(ts, price, qty, side, tid))
            elif kind == _QUOTE:
                out.append(BookUpdate(ts, *payload))
            elif kind == _DEPTH:
                U, u, pu, changes = payload
                if sync.diff(U, u, pu, changes, ts):
                    out.append(BookDepth(ts, book, changes))
            else:
                lid, bids, asks = payload
                if sync.snapshot(lid, bids, asks, ts):
                    out.append(BookDepth(ts, book, ()))

        for seq, (ts, kind, payload) in enumerate(self._parsed()):
            if ts > high:
                high = ts
            if window:
                push(heap, (ts, kind, seq, payload))
                limit = high - window
                # Yield after each release: a BookDepth must reach the pipeline before the
                # next diff changes its (live) book.
                while heap and heap[0][0] <= limit:
                    t, k, _, p = pop(heap)
                    release(t, k, p)
                    if out:
                        yield from self._counted(out)
            else:
                release(ts, kind, payload)
                if out:
                    yield from self._counted(out)
        while heap:
            t, k, _, p = pop(heap)
            release(t, k, p)
            if out:
                yield from self._counted(out)
        if out:
            yield from self._counted(out)
        sync.finish()
        if not (c["trades"] or c["quotes"] or c["depth_diffs"] or c["skipped"]
                or sync.counts["snapshots"]):
            names = ", ".join(str(f) for f in self.files)
            raise DataError(f"capture {names} has no usable line ({c['lines']} lines, "
                            f"{c['bad_lines']} unreadable, {c['unknown']} of unknown streams"
                            + (", truncated gzip" if c["truncated"] else "") + ")")

    def _counted(self, out: list[Any]) -> Iterator[Any]:
        c = self.counts
        for ev in out:
            t = type(ev)
            if t is BookDepth:
                c["depth_events"] += 1
            yield ev
        out.clear()

    def stats(self) -> dict[str, Any]:
        return {**self.counts, **self.sync.counts, "symbol": self.symbol}


@hookimpl
def gridkit_register_sources(register: Any) -> None:
    register(BinanceCapture)
