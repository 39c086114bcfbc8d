"""Order-book features: ``spread-bps``, ``order-imbalance``, ``spread-analysis``, ``l2-delta``,
``hidden-liquidity``, ``spoofing`` and ``liquidity-vacuum``.

They read ``book`` events (:class:`gridkit.BookUpdate`, the best bid and ask) and/or ``depth``
events (:class:`gridkit.BookDepth`, the L2 book after one update), some also ``trades``. Each
update costs O(1), or O(``levels``) for the features that read a fixed, small number of levels of
the book. Features that read the book copy what they need during the event and keep no reference
to it. Those whose ``stream`` option picks between the BBO stream and the L2 book set their
``inputs`` per instance from it, so ``gridkit validate`` checks the one they will read.

Batch: each feature's ``batch(columns)`` reads a *book tape*, the events as columns, which
:func:`book_columns` builds from a list or iterator of events, e.g.
``book_columns(source.events(), levels=100)``. One row per event, in order:

* ``kind`` (int8): 0 = trade, 1 = book (BBO), 2 = depth (:data:`ROW_KINDS`); ``ts`` (int64,
  epoch ms);
* trade rows: ``price``, ``qty`` (float64) and ``side`` (+1 taker buy, -1 taker sell), as the
  trade features' columns; NaN (``side`` 0) on other rows;
* book rows: ``bid``, ``bid_qty``, ``ask``, ``ask_qty`` (float64), the
  :class:`gridkit.BookUpdate`'s fields; NaN on other rows;
* depth rows: ``depth_bid_price``, ``depth_bid_qty``, ``depth_ask_price``, ``depth_ask_qty``,
  2-D float64 arrays with one row per *depth* row of the tape (the j-th depth row is row j) and
  one column per level, best first: the book after that update, its best ``levels`` levels per
  side (a side with fewer levels has NaN prices and 0 quantities past its last); and the
  update's ``changes`` in CSR form: ``change_offset`` (int64, one more than the depth rows)
  delimits the depth row's entries of ``change_side`` (int8, +1 bid, -1 ask),
  ``change_price`` and ``change_qty`` (float64, 0 = removed).

``batch`` returns one float64 value per tape row: on the rows of the kinds the feature reads
(its ``inputs``), what ``update`` returns on the same events, bit for bit, NaN where it gives
NaN; NaN on rows of other kinds. The numba kernels in
:mod:`gridkit.plugins.features.kernels_book` repeat ``update``'s floating-point operations in
the same order (the streaming code sums left to right, never with the builtin ``sum``, which
compensates rounding from Python 3.12 on). A feature that reads ``levels`` levels needs depth
arrays at least that wide; only ``spoofing`` reads the changes, only ``spoofing`` reads ``ts``.
A tape without a ``kind`` column holds rows of one kind, for the features that read one:
``bid``, ``bid_qty``, ``ask``, ``ask_qty`` alone are book rows, the four ``depth_*`` arrays
alone are depth rows. A missing column, a column of the wrong length or shape, or depth arrays
narrower than the feature's ``levels`` raise :class:`ValueError` naming the column.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from math import exp, log, sqrt
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from gridkit.core.components import Feature
from gridkit.core.config import OptionError, at_least, fraction, non_negative, option, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar, BookDepth, BookUpdate, Trade

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")
INF = float("inf")

Stream = Literal["book", "depth"]
_STREAM_DOC = ('Which events to read: "book" (best bid/ask updates) or "depth" (the L2 book '
               "after each depth update).")


def _total(values: list[float]) -> float:
    """Left-to-right float sum from 0.0. The builtin ``sum`` compensates float rounding from
    Python 3.12 on; the batch kernels repeat this plain order on every Python version."""
    t = 0.0
    for v in values:
        t += v
    return t


def _bbo(event: Any) -> tuple[float, float, float, float]:
    """(bid, bid_qty, ask, ask_qty) of a BookUpdate or a BookDepth; NaN prices for empty sides."""
    if type(event) is BookUpdate:
        return event.bid, event.bid_qty, event.ask, event.ask_qty
    book = event.book
    bid, ask = book.best_bid, book.best_ask
    return (bid, book.qty("bid", bid) if bid == bid else 0.0,
            ask, book.qty("ask", ask) if ask == ask else 0.0)


def _spread_bps(event: Any) -> float:
    bid, _, ask, _ = _bbo(event)
    mid = (bid + ask) * 0.5
    if not mid > 0.0:  # an empty side (NaN) or a nonsensical price
        return NAN
    return (ask - bid) / mid * 1e4


class _Ring:
    """Rolling sum and sum of squares of the last ``n`` values, O(1) per value (amortized).

    Values are summed shifted by a reference ``k`` (the window's mean at the last re-sum). The
    sums are recomputed exactly from the ring once every ``n`` values, and also when the window's
    spread of values has fallen a million-fold below the largest it had since the last re-sum
    (a spike has left the window, or the level moved far from ``k``: the sums would otherwise
    carry their rounding error). A spike must enter and leave the window for that, so re-sums
    stay rare and the cost O(1) amortized; a window of equal values has a variance of exactly
    0.
    """

    __slots__ = ("count", "k", "n", "peak", "ring", "s1", "s2", "slot")

    def __init__(self, n: int) -> None:
        self.n = n
        self.ring = [0.0] * n
        self.count = 0
        self.slot = 0
        self.k = 0.0
        self.s1 = self.s2 = self.peak = 0.0

    def push(self, x: float) -> None:
        n, slot, ring = self.n, self.slot, self.ring
        if self.count == 0:
            self.k = x  # shift by the first value until the first re-sum
        d = x - self.k
        full = self.count >= n
        if full:
            old = ring[slot] - self.k
            self.s1 += d - old
            self.s2 += d * d - old * old
        else:
            self.s1 += d
            self.s2 += d * d
        ring[slot] = x
        self.count += 1
        slot += 1
        if slot == n:
            slot = 0
        self.slot = slot
        if self.count >= n:
            m2 = self.s2 - self.s1 * self.s1 / n
            if slot == 0 or m2 < 1e-6 * self.peak:
                self._resum()
            elif self.s2 > self.peak:
                self.peak = self.s2

    def _resum(self) -> None:
        ring, n = self.ring, self.n
        k = self.k = _total(ring) / n
        s1 = s2 = 0.0
        for v in ring:
            d = v - k
            s1 += d
            s2 += d * d
        self.s1 = s1
        self.s2 = self.peak = s2

    @property
    def full(self) -> bool:
        return self.count >= self.n

    def mean(self) -> float:
        return self.k + self.s1 / self.n

    def var(self) -> float:
        """Population variance of the window (ddof 0), never negative."""
        n = self.n
        v = (self.s2 - self.s1 * self.s1 / n) / n
        return v if v > 0.0 else 0.0


# --- the book tape: events as columns, for ``batch`` ----------------------------------------

#: Row kinds of a book tape (its ``kind`` column).
TRADE_ROW, BOOK_ROW, DEPTH_ROW = 0, 1, 2
ROW_KINDS = {"trades": TRADE_ROW, "book": BOOK_ROW, "depth": DEPTH_ROW}
_ROW_COLUMNS = ("ts", "price", "qty", "side", "bid", "bid_qty", "ask", "ask_qty")
_DEPTH_COLUMNS = ("depth_bid_price", "depth_bid_qty", "depth_ask_price", "depth_ask_qty")
_CHANGE_COLUMNS = ("change_side", "change_price", "change_qty")


def book_columns(events: Iterable[Any], levels: int = 100,
                 kinds: Iterable[str] = ("trades", "book", "depth")) -> dict[str, np.ndarray]:
    """The book tape of ``events``: the columns the book features' ``batch`` reads.

    One row per event of the ``kinds`` asked for (:class:`gridkit.Trade`,
    :class:`gridkit.BookUpdate`, :class:`gridkit.BookDepth`), in order; bars and events of
    other kinds are left out. A depth event's live book is copied while the iterator is on it
    (its best ``levels`` levels per side), so pass the source's events as they come. Columns
    (n rows, m of them depth rows, c book changes in all):

    * ``kind`` (int8, n): 0 = trade, 1 = book (BBO), 2 = depth (:data:`ROW_KINDS`);
    * ``ts`` (int64, n): the event's time, epoch ms;
    * ``price``, ``qty`` (float64, n): the trade's; NaN on other rows. ``side`` (float64, n):
      +1 for a taker buy, -1 for a taker sell, 0 on other rows;
    * ``bid``, ``bid_qty``, ``ask``, ``ask_qty`` (float64, n): the BBO update's; NaN on
      other rows;
    * ``depth_bid_price``, ``depth_bid_qty``, ``depth_ask_price``, ``depth_ask_qty``
      (float64, (m, levels)): row j is the book after the j-th depth row, best level first;
      a side with fewer levels has NaN prices and 0 quantities past its last level;
    * ``change_offset`` (int64, m + 1): the j-th depth row's changes are rows
      ``change_offset[j]`` to ``change_offset[j + 1] - 1`` of ``change_side`` (int8, c: +1
      bid, -1 ask), ``change_price`` and ``change_qty`` (float64, c; qty 0 = level removed).

    ``levels`` must cover the ``levels`` option of every feature the tape is for (the
    defaults need 100: ``hidden-liquidity``); a depth row costs ``32 * levels`` bytes.
    """
    import numpy as np

    if not (isinstance(levels, int) and levels >= 1):
        raise ValueError(f"book_columns: levels must be an integer >= 1, got {levels!r}")
    kinds = frozenset((kinds,) if isinstance(kinds, str) else kinds)
    unknown = sorted(kinds - set(ROW_KINDS))
    if unknown:
        raise ValueError(f"book_columns: unknown kind(s) {', '.join(unknown)}; kinds are "
                         f"{', '.join(ROW_KINDS)}")
    want_t, want_b, want_d = (k in kinds for k in ROW_KINDS)
    kind: list[int] = []
    ts: list[int] = []
    rows: list[tuple[float, float, float, float, float, float, float, float]] = []
    no_trade, no_quote = (NAN, NAN, 0.0), (NAN, NAN, NAN, NAN)
    depth: list[list[float]] = []
    ch_side: list[int] = []
    ch_price: list[float] = []
    ch_qty: list[float] = []
    offset = [0]
    pad_p, pad_q = [NAN] * levels, [0.0] * levels
    for e in events:
        t = type(e)
        if t is Trade:
            if not want_t:
                continue
            kind.append(TRADE_ROW)
            rows.append((e.price, e.qty, 1.0 if e.side == "buy" else -1.0, *no_quote))
        elif t is BookUpdate:
            if not want_b:
                continue
            kind.append(BOOK_ROW)
            rows.append((*no_trade, e.bid, e.bid_qty, e.ask, e.ask_qty))
        elif t is BookDepth:
            if not want_d:
                continue
            kind.append(DEPTH_ROW)
            rows.append((*no_trade, *no_quote))
            book = e.book
            for side in ("bid", "ask"):
                lv = book.levels(side, levels)
                k = len(lv)
                depth.append([p for p, _ in lv] + pad_p[k:])
                depth.append([q for _, q in lv] + pad_q[k:])
            for side, p, q in e.changes:
                ch_side.append(1 if side == "bid" else -1)
                ch_price.append(p)
                ch_qty.append(q)
            offset.append(len(ch_price))
        elif t is Bar:
            continue
        else:
            raise TypeError(f"book_columns: not a market event: {t.__name__}")
        ts.append(e.ts)
    n = len(kind)
    table = np.array(rows, dtype=np.float64).reshape(n, len(_ROW_COLUMNS) - 1)
    out: dict[str, np.ndarray] = {"kind": np.array(kind, dtype=np.int8),
                                  "ts": np.array(ts, dtype=np.int64)}
    for i, name in enumerate(_ROW_COLUMNS[1:]):
        out[name] = np.ascontiguousarray(table[:, i])
    grid = np.array(depth, dtype=np.float64).reshape(-1, 4, levels)
    for i, name in enumerate(_DEPTH_COLUMNS):
        out[name] = np.ascontiguousarray(grid[:, i, :])
    out["change_offset"] = np.array(offset, dtype=np.int64)
    out["change_side"] = np.array(ch_side, dtype=np.int8)
    out["change_price"] = np.array(ch_price, dtype=np.float64)
    out["change_qty"] = np.array(ch_qty, dtype=np.float64)
    return out


class _Tape:
    """A feature's view of a book tape: checks the columns it reads and cuts them to its rows.

    Without a ``kind`` column every row is of the one kind the feature reads.
    """

    def __init__(self, columns: Mapping[str, Any], feature: Feature) -> None:
        import numpy as np

        self.np = np
        self.cols = columns
        self.who = f"{feature.name} batch"
        self.masks: dict[tuple[int, ...], Any] = {}
        reads = sorted(feature.inputs)
        if "kind" in columns:
            kind = np.asarray(columns["kind"])
            if kind.ndim != 1:
                raise ValueError(f"{self.who}: column 'kind' must be 1-D, got shape "
                                 f"{kind.shape}")
            if kind.size and not (np.issubdtype(kind.dtype, np.integer)
                                  and kind.min() >= 0 and kind.max() <= DEPTH_ROW):
                raise ValueError(f"{self.who}: column 'kind' holds a value that is not a row "
                                 f"kind (0 = trade, 1 = book, 2 = depth)")
            self.kind: Any = kind.astype(np.int8, copy=False)
            self.n = int(kind.shape[0])
        else:
            if len(reads) > 1:
                raise ValueError(f"{self.who}: missing column 'kind': it reads "
                                 f"{' and '.join(reads)} rows, which a tape interleaves")
            self.kind = None
            first = "bid" if reads == ["book"] else "depth_bid_price"
            self.n = int(np.shape(self._col(first))[0]) if np.ndim(self._col(first)) else 0

    def _col(self, name: str) -> Any:
        try:
            return self.cols[name]
        except KeyError:
            raise ValueError(f"{self.who}: missing column {name!r}") from None

    def mask(self, *codes: int) -> Any:
        """Rows of these kinds (all rows of a tape without ``kind``)."""
        rows = self.masks.get(codes)
        if rows is None:
            if self.kind is None:
                rows = self.np.ones(self.n, dtype=bool)
            else:
                rows = self.kind == codes[0]
                for code in codes[1:]:
                    rows |= self.kind == code
            self.masks[codes] = rows
        return rows

    def count(self, code: int) -> int:
        return self.n if self.kind is None else int((self.kind == code).sum())

    def rows(self, name: str, rows: Any, dtype: Any = None) -> Any:
        """A per-row column cut to ``rows``, contiguous float64 (or ``dtype``)."""
        np = self.np
        x = np.asarray(self._col(name))
        if x.ndim != 1 or x.shape[0] != self.n:
            raise ValueError(f"{self.who}: column {name!r} has shape {x.shape}; the tape has "
                             f"{self.n} rows")
        return np.ascontiguousarray(x[rows], dtype=dtype or np.float64)

    def depth(self, levels: int) -> tuple[Any, Any, Any, Any]:
        """The four level arrays, one row per depth row, at least ``levels`` wide (not cut:
        the kernels read the first ``levels`` columns, and a copy would cost more)."""
        np = self.np
        m = self.count(DEPTH_ROW)
        out = []
        for name in _DEPTH_COLUMNS:
            x = np.asarray(self._col(name))
            if x.ndim != 2 or x.shape[0] != m:
                raise ValueError(f"{self.who}: column {name!r} has shape {x.shape}; it needs "
                                 f"one row per depth row ({m}) and one column per level")
            if x.shape[1] < levels:
                raise ValueError(f"{self.who}: column {name!r} holds {x.shape[1]} levels; this "
                                 f"feature reads {levels} (book_columns(events, "
                                 f"levels={levels}))")
            out.append(np.ascontiguousarray(x, dtype=np.float64))
        return out[0], out[1], out[2], out[3]

    def changes(self) -> tuple[Any, Any, Any, Any]:
        """``change_offset`` (checked against the depth rows) and the three change columns."""
        np = self.np
        m = self.count(DEPTH_ROW)
        off = np.ascontiguousarray(self._col("change_offset"), dtype=np.int64)
        side = np.ascontiguousarray(self._col("change_side"), dtype=np.int8)
        price = np.ascontiguousarray(self._col("change_price"), dtype=np.float64)
        qty = np.ascontiguousarray(self._col("change_qty"), dtype=np.float64)
        c = price.shape[0]
        if side.ndim != 1 or price.ndim != 1 or qty.ndim != 1 or not (
                side.shape[0] == c == qty.shape[0]):
            raise ValueError(f"{self.who}: columns 'change_side', 'change_price' and "
                             f"'change_qty' must be 1-D of one length, got {side.shape}, "
                             f"{price.shape}, {qty.shape}")
        if off.shape != (m + 1,) or off[0] != 0 or off[-1] != c or (np.diff(off) < 0).any():
            raise ValueError(f"{self.who}: column 'change_offset' must rise from 0 to the "
                             f"number of changes ({c}) with one entry per depth row ({m}) "
                             f"plus one")
        if not np.isin(side, (1, -1)).all():
            raise ValueError(f"{self.who}: column 'change_side' must hold +1 (bid) or -1 (ask)")
        return off, side, price, qty

    def top(self, stream: str) -> tuple[Any, Any, Any, Any]:
        """(bid, bid_qty, ask, ask_qty) of the rows of ``stream``: the BBO columns of book rows,
        or the best level of each side of depth rows."""
        if stream == "book":
            rows = self.mask(BOOK_ROW)
            b, bq, a, aq = (self.rows(c, rows) for c in ("bid", "bid_qty", "ask", "ask_qty"))
            return b, bq, a, aq
        np = self.np
        b, bq, a, aq = (np.ascontiguousarray(x[:, 0]) for x in self.depth(1))
        return b, bq, a, aq

    def levels(self, stream: str, levels: int) -> tuple[Any, Any, Any, Any]:
        """Level arrays (rows, levels) of the rows of ``stream`` (a BBO row is one level)."""
        if stream == "depth":
            return self.depth(levels)
        b, bq, a, aq = self.top("book")
        return b[:, None], bq[:, None], a[:, None], aq[:, None]

    def spread_out(self, code: int, values: Any) -> Any:
        """One value per tape row: ``values`` on the rows of kind ``code``, NaN elsewhere."""
        return self.scatter(self.mask(code), values)

    def scatter(self, rows: Any, values: Any) -> Any:
        if self.kind is None:
            return values
        out = self.np.full(self.n, self.np.nan)
        out[rows] = values
        return out


def _stream_inputs(feature: Feature, stream: str) -> None:
    # The engine and build_pipeline read ``inputs`` from the instance: declare the one stream
    # this instance reads, so a source that feeds only the other one is refused, not starved.
    feature.inputs = frozenset({stream})


class SpreadBps(Feature):
    """Quoted bid-ask spread in basis points of the mid price.

    ``spread = (ask - bid) / mid * 1e4`` with ``mid = (ask + bid) / 2``, the relative quoted
    spread (Harris 2003, *Trading and Exchanges*, ch. 14; Bessembinder & Venkataraman 2010,
    "Bid-ask spreads: measuring trade execution costs in financial markets"). Read from each BBO
    update (``stream = "book"``) or from the best levels of the L2 book after each depth update
    (``stream = "depth"``). NaN while either side of the book is empty. A crossed book (which
    the validators should drop) gives a negative value. Batch: the ``book`` rows (``bid``,
    ``ask``) or the ``depth`` rows (best levels) of a book tape, see ``book_columns``.
    """

    name = "spread-bps"
    inputs = frozenset({"book"})

    @frozen
    class Config:
        stream: Stream = option("book", doc=_STREAM_DOC)

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        _stream_inputs(self, self.config.stream)
        self.ready = False

    def update(self, event: Any) -> float:
        value = _spread_bps(event)
        self.ready = value == value
        return value

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The spread after each row of a book tape (:func:`book_columns`): its ``book`` rows'
        ``bid`` and ``ask``, or its ``depth`` rows' best levels; NaN on rows of other kinds."""
        from gridkit.plugins.features.kernels_book import spread_bps_batch

        stream = self.config.stream
        tape = _Tape(columns, self)
        bid, _, ask, _ = tape.top(stream)
        return tape.spread_out(ROW_KINDS[stream], spread_bps_batch(bid, ask))


class OrderImbalance(Feature):
    """Order-book (depth) imbalance of the best ``levels`` levels, in [-1, 1].

    ``imbalance = (B - A) / (B + A)`` where B and A are the total bid and ask quantities resting
    in the best ``levels`` levels of each side: the volume imbalance of Cartea, Jaimungal &
    Ricci (2018), "Enhancing trading strategies with order book signals" (top of book), summed
    over several levels as in Cao, Hansch & Wang (2009), "The information content of an open
    limit-order book". Positive when bids outweigh asks. With ``levels = 1`` it reads the BBO
    stream by default; with more levels it needs the L2 book (``depth``). O(``levels``) per
    event. NaN while either side is empty. Batch: the ``book`` rows (``bid``, ``bid_qty``,
    ``ask``, ``ask_qty``) or the ``depth`` rows (at least ``levels`` levels) of a book tape, see
    ``book_columns``.
    """

    name = "order-imbalance"
    inputs = frozenset({"book"})

    @frozen
    class Config:
        levels: int = option(1, doc="Number of price levels per side summed (1 = top of book).",
                             validator=at_least(1))
        stream: Stream | None = option(
            None, doc=_STREAM_DOC + ' Default: "book" when ``levels`` is 1, else "depth".')

        def __attrs_post_init__(self) -> None:
            if self.stream == "book" and self.levels > 1:
                raise OptionError("stream", f'a "book" (best bid/ask) stream has one level; '
                                            f'levels = {self.levels} needs stream = "depth"')

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.levels = cfg.levels
        _stream_inputs(self, cfg.stream or ("book" if cfg.levels == 1 else "depth"))
        self.ready = False

    def update(self, event: Any) -> float:
        if type(event) is BookUpdate or self.levels == 1:
            bid, b, ask, a = _bbo(event)
            if bid != bid or ask != ask:
                b = a = 0.0
        else:
            book = event.book
            b = _total([q for _, q in book.levels("bid", self.levels)])
            a = _total([q for _, q in book.levels("ask", self.levels)])
        if not (b > 0.0 and a > 0.0):
            self.ready = False
            return NAN
        self.ready = True
        return (b - a) / (b + a)

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The imbalance after each row of a book tape (:func:`book_columns`): its ``book``
        rows' quantities, or the best ``levels`` levels of its ``depth`` rows; NaN on rows of
        other kinds."""
        from gridkit.plugins.features.kernels_book import (
            imbalance_depth_batch,
            imbalance_top_batch,
        )

        stream = next(iter(self.inputs))
        tape = _Tape(columns, self)
        if stream == "book" or self.levels == 1:
            values = imbalance_top_batch(*tape.top(stream))
        else:
            values = imbalance_depth_batch(*tape.depth(self.levels), self.levels)
        return tape.spread_out(ROW_KINDS[stream], values)


class SpreadAnalysis(Feature):
    """How unusual the current spread is: its z-score (or ratio) against its rolling window.

    With s the spread in bps (as ``spread-bps``) and the last ``window`` spreads (the current one
    included) of mean m and population standard deviation σ: ``output = "zscore"`` gives
    ``z = (s - m) / max(σ, min_rel_std * m)``; ``output = "ratio"`` gives ``s / m``. The floor on
    σ keeps a spread pinned at one tick (whose bps value moves only with the mid) at z ≈ 0
    instead of amplifying float noise; set it to 0 for the plain z-score (then z = 0 when σ = 0).
    A rolling z-score of the quoted spread is the usual way to flag abnormal liquidity
    (e.g. Chordia, Roll & Subrahmanyam 2001, "Market liquidity and trading activity", which
    standardizes spreads against their recent history). O(1) per event (ring buffer, sums
    re-centred once per window). NaN until ``window`` spreads have been seen. Batch: the
    ``book`` or ``depth`` rows of a book tape, as ``spread-bps``; see ``book_columns``.
    """

    name = "spread-analysis"
    inputs = frozenset({"book"})

    @frozen
    class Config:
        window: int = option(100, doc="Number of book events in the rolling window.",
                             validator=at_least(2))
        output: Literal["zscore", "ratio"] = option(
            "zscore", doc='"zscore": (s - mean) / std; "ratio": s / mean.')
        min_rel_std: float = option(
            0.01, doc="Floor of the standard deviation, as a fraction of the mean spread.",
            validator=non_negative())
        stream: Stream = option("book", doc=_STREAM_DOC)

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        _stream_inputs(self, cfg.stream)
        self.ring = _Ring(cfg.window)
        self.zscore = cfg.output == "zscore"
        self.floor = cfg.min_rel_std
        self.ready = False

    def update(self, event: Any) -> float:
        s = _spread_bps(event)
        if s != s:
            return NAN  # an empty side: not a spread, not counted
        ring = self.ring
        ring.push(s)
        if not ring.full:
            return NAN
        self.ready = True
        m = ring.mean()
        if not self.zscore:
            return s / m if m != 0.0 else NAN
        sd = sqrt(ring.var())
        floor = self.floor * abs(m)
        if sd < floor:
            sd = floor
        return (s - m) / sd if sd > 0.0 else 0.0

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The z-score (or ratio) after each row of a book tape (:func:`book_columns`), from
        the spreads of its ``book`` or ``depth`` rows as ``spread-bps``; NaN on rows of other
        kinds."""
        from gridkit.plugins.features.kernels_book import spread_analysis_batch

        stream = self.config.stream
        tape = _Tape(columns, self)
        bid, _, ask, _ = tape.top(stream)
        values = spread_analysis_batch(bid, ask, self.ring.n, self.zscore, float(self.floor))
        return tape.spread_out(ROW_KINDS[stream], values)


class L2Delta(Feature):
    """Multi-level order-flow imbalance: net change of resting quantity, bid minus ask, per update.

    For each of the best ``levels`` levels m of each side, with bid price b and quantity q before
    (t-1) and after (t) the update (Cont, Kukanov & Stoikov 2014, "The price impact of order book
    events"; extended to deeper levels by Xu, Gould & Howison 2019, "Multi-level order-flow
    imbalance in a limit order book"):
    ``e_bid = q_t·[b_t >= b_{t-1}] - q_{t-1}·[b_t <= b_{t-1}]`` and
    ``e_ask = q_t·[a_t <= a_{t-1}] - q_{t-1}·[a_t >= a_{t-1}]``. The feature is
    ``sum over m of (e_bid - e_ask)``, in base quantity: positive when bid-side liquidity was
    added (or ask-side removed) near the touch. A level that is missing before or after counts
    as quantity 0 at the same price. It reads the book rather than the update's ``changes``, so
    it also sees levels moving in and out of the top ``levels``. O(``levels``) per event; NaN on
    the first event (no previous book). Batch: consecutive ``depth`` rows of a book tape (at
    least ``levels`` levels) or ``book`` rows; see ``book_columns``.
    """

    name = "l2-delta"
    inputs = frozenset({"depth"})

    @frozen
    class Config:
        levels: int = option(5, doc="Number of price levels per side compared.",
                             validator=at_least(1))
        stream: Stream = option(
            "depth", doc=_STREAM_DOC + ' "book" (the BBO) allows only ``levels = 1``.')

        def __attrs_post_init__(self) -> None:
            if self.stream == "book" and self.levels > 1:
                raise OptionError("stream", f'a "book" (best bid/ask) stream has one level; '
                                            f'levels = {self.levels} needs stream = "depth"')

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.levels = self.config.levels
        _stream_inputs(self, self.config.stream)
        self.prev_bids: list[tuple[float, float]] | None = None
        self.prev_asks: list[tuple[float, float]] = []
        self.ready = False

    def update(self, event: Any) -> float:
        if type(event) is BookUpdate:
            bids = [(event.bid, event.bid_qty)] if event.bid == event.bid else []
            asks = [(event.ask, event.ask_qty)] if event.ask == event.ask else []
        else:
            book = event.book
            bids = book.levels("bid", self.levels)
            asks = book.levels("ask", self.levels)
        prev_bids, prev_asks = self.prev_bids, self.prev_asks
        self.prev_bids, self.prev_asks = bids, asks
        if prev_bids is None:
            return NAN
        self.ready = True
        total = 0.0
        nb, npb, na, npa = len(bids), len(prev_bids), len(asks), len(prev_asks)
        for m in range(self.levels):
            # bid side
            if m < nb and m < npb:
                cb, cq = bids[m]
                pb, pq = prev_bids[m]
                total += (cq if cb >= pb else 0.0) - (pq if cb <= pb else 0.0)
            else:
                total += (bids[m][1] if m < nb else 0.0) - (prev_bids[m][1] if m < npb else 0.0)
            # ask side
            if m < na and m < npa:
                ca, cq = asks[m]
                pa, pq = prev_asks[m]
                total -= (cq if ca <= pa else 0.0) - (pq if ca >= pa else 0.0)
            else:
                total -= (asks[m][1] if m < na else 0.0) - (prev_asks[m][1] if m < npa else 0.0)
        return total

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The order-flow imbalance after each row of a book tape (:func:`book_columns`):
        between consecutive ``depth`` rows (their best ``levels`` levels), or consecutive
        ``book`` rows; NaN on the first and on rows of other kinds."""
        from gridkit.plugins.features.kernels_book import l2_delta_batch

        stream = self.config.stream
        tape = _Tape(columns, self)
        values = l2_delta_batch(*tape.levels(stream, self.levels), self.levels)
        return tape.spread_out(ROW_KINDS[stream], values)


def _copy_side(book: Any, side: str, n: int) -> tuple[dict[float, float], float]:
    """The best ``n`` levels of a side as {price: qty}, and the price bound of what was copied
    (the n-th price, or +-inf when the side has fewer levels: then the copy is the whole side)."""
    lv = book.levels(side, n)
    bound = lv[-1][0] if len(lv) == n else (-INF if side == "bid" else INF)
    return dict(lv), bound


class HiddenLiquidity(Feature):
    """Share of traded volume executed beyond the quantity displayed at its price (icebergs).

    Between two depth updates every trade executes against the side its taker hit (a buy
    against the asks) at its price p. With D the quantity displayed at p in the last depth
    update and C the volume traded at p since then, a trade of quantity q takes
    ``h = max(0, C + q - max(D, C))`` from liquidity that was not displayed: an iceberg's hidden
    part or a refill, the executions beyond visible depth of Hautsch & Huang (2012), "On the dark
    side of the market: identifying and analyzing hidden order placements", and of Frey &
    Sandås (2017), "The impact of iceberg orders in limit order books". The feature is
    ``sum(h) / sum(q)`` over the last ``window`` attributed trades, in [0, 1]. The best
    ``levels`` levels of each side are copied at each depth update (O(``levels``)); a trade
    deeper than that copy is not attributed (counted in ``stats()``). Each trade is O(1).
    Caveat: with depth diffs every 100 ms, an order placed and executed between two updates
    also counts as undisplayed. NaN until the first depth update and ``window`` trades.
    Batch: a book tape's trade rows (``price``, ``qty``, ``side``) interleaved with its
    ``depth`` rows (at least ``levels`` levels) by ``kind``; see ``book_columns``.
    """

    name = "hidden-liquidity"
    inputs = frozenset({"trades", "depth"})

    @frozen
    class Config:
        window: int = option(200, doc="Number of trades in the rolling window.",
                             validator=at_least(1))
        levels: int = option(100, doc="Levels per side copied at each depth update.",
                             validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.levels = cfg.levels
        self.window = cfg.window
        self.shown: dict[str, dict[float, float]] | None = None
        self.bound = {"bid": -INF, "ask": INF}
        self.traded: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
        self.ring_h = [0.0] * cfg.window
        self.ring_q = [0.0] * cfg.window
        self.slot = 0
        self.count = 0
        self.sum_h = self.sum_q = 0.0
        self.value = NAN
        self.unattributed = 0
        self.hidden_volume = 0.0
        self.ready = False

    def update(self, event: Any) -> float:
        if type(event) is BookDepth:
            book, n = event.book, self.levels
            bids, bb = _copy_side(book, "bid", n)
            asks, ba = _copy_side(book, "ask", n)
            self.shown = {"bid": bids, "ask": asks}
            self.bound = {"bid": bb, "ask": ba}
            # amortized O(1): each entry was added by one trade
            self.traded["bid"].clear()
            self.traded["ask"].clear()
            return self.value
        shown = self.shown
        if shown is None:
            return NAN
        side = "ask" if event.side == "buy" else "bid"
        p, q = event.price, event.qty
        bound = self.bound[side]
        if (p < bound) if side == "bid" else (p > bound):
            self.unattributed += 1
            return self.value
        traded = self.traded[side]
        c0 = traded.get(p, 0.0)
        c1 = c0 + q
        traded[p] = c1
        d = shown[side].get(p, 0.0)
        h = c1 - (d if d > c0 else c0)
        if h < 0.0:
            h = 0.0
        self.hidden_volume += h
        slot, w = self.slot, self.window
        self.sum_h += h - self.ring_h[slot]
        self.sum_q += q - self.ring_q[slot]
        self.ring_h[slot] = h
        self.ring_q[slot] = q
        self.count += 1
        slot += 1
        if slot == w:
            slot = 0
            self.sum_h = _total(self.ring_h)  # once per window: no drift
            self.sum_q = _total(self.ring_q)
        self.slot = slot
        if self.count < w:
            return NAN
        self.ready = True
        v = self.sum_h / self.sum_q if self.sum_q > 0.0 else NAN
        if v < 0.0:  # rounding of the rolling sums only
            v = 0.0
        elif v > 1.0:
            v = 1.0
        self.value = v
        return v

    def stats(self) -> dict[str, Any]:
        return {"unattributed_trades": self.unattributed, "hidden_volume": self.hidden_volume}

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The hidden share after each trade and depth row of a book tape
        (:func:`book_columns`): ``kind``, the trade rows' ``price``, ``qty``, ``side`` and the
        ``depth_*`` level arrays (at least ``levels`` levels); NaN on ``book`` rows."""
        from gridkit.plugins.features.kernels_book import hidden_liquidity_batch

        tape = _Tape(columns, self)
        rows = tape.mask(TRADE_ROW, DEPTH_ROW)
        kind = tape.rows("kind", rows, tape.np.int8)
        values = hidden_liquidity_batch(
            kind, tape.rows("price", rows), tape.rows("qty", rows), tape.rows("side", rows),
            *tape.depth(self.levels), self.levels, self.window)
        return tape.scatter(rows, values)


class Spoofing(Feature):
    """Volume of large orders placed away from the touch and cancelled fast without trading.

    On each depth update, a level of side s at rank >= ``min_rank`` (0 = the best level) among
    the best ``levels`` whose quantity grows by Δ >= ``size_factor`` × the mean quantity per level
    of those ``levels`` is a *large placement*. If, within ``max_life_ms``, its quantity falls
    back by at least ``cancel_fraction``·Δ while no trade printed at that price, it was a
    fleeting, non-bona-fide order — the spoofing pattern of Lee, Eom & Park (2013),
    "Microstructure-based manipulation: strategic behavior and performance of spoofing traders"
    and Cartea, Jaimungal & Wang (2020), "Spoofing and price manipulation in order-driven
    markets"; fleeting orders as in Hasbrouck & Saar (2009), "Technology and liquidity
    provision: the blurring of traditional definitions". The feature is the cancelled
    volume of such orders over the last ``window_ms``, divided by the current depth of the best
    ``levels`` levels of both sides. A trade at the order's price clears it (it may have been
    filled). Work per depth update is O(``levels`` + levels changed); trades are O(1); at most
    ``max_pending`` placements are tracked. NaN until ``window_ms`` of depth has been seen.
    Batch: a book tape's trade rows (``price``, ``side``) interleaved with its ``depth`` rows
    (at least ``levels`` levels, their ``change_*`` columns and ``ts``) by ``kind``; see
    ``book_columns``.
    """

    name = "spoofing"
    inputs = frozenset({"trades", "depth"})

    @frozen
    class Config:
        levels: int = option(20, doc="Levels per side watched.", validator=at_least(2))
        min_rank: int = option(1, doc="Minimum rank of a watched level (0 = the best level).",
                               validator=at_least(0))
        size_factor: float = option(
            5.0, doc="A placement is large if it adds this many times the mean level quantity.",
            validator=positive())
        cancel_fraction: float = option(
            0.8, doc="Fraction of the placed quantity that must be removed to count.",
            validator=fraction())
        max_life_ms: int = option(2000, doc="Longest life (ms) of a fleeting order.",
                                  validator=at_least(1))
        window_ms: int = option(60_000, doc="Time window (ms) of the cancelled volume summed.",
                                validator=at_least(1))
        max_pending: int = option(256, doc="Most large placements tracked at once.",
                                  validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if self.min_rank >= self.levels:
                raise OptionError("min_rank", f"must be below levels ({self.levels})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.cfg = cfg
        self.prev: dict[str, dict[float, float]] | None = None
        self.prev_bound = {"bid": -INF, "ask": INF}
        # (side, price) -> (ts placed, quantity added, quantity after placing)
        self.pending: OrderedDict[tuple[str, float], tuple[int, float, float]] = OrderedDict()
        self.recent: deque[tuple[int, float]] = deque()
        self.recent_sum = 0.0
        self.first_ts: int | None = None
        self.value = NAN
        self.placements = self.spoofs = self.filled = 0
        self.ready = False

    def update(self, event: Any) -> float:
        if type(event) is not BookDepth:
            if self.pending:  # a trade: an order at its price may have been filled
                key = ("ask" if event.side == "buy" else "bid", event.price)
                if self.pending.pop(key, None) is not None:
                    self.filled += 1
            return self.value
        cfg, ts, book = self.cfg, event.ts, event.book
        if self.first_ts is None:
            self.first_ts = ts
        n = cfg.levels
        lv = {"bid": book.levels("bid", n), "ask": book.levels("ask", n)}
        cur = {s: dict(v) for s, v in lv.items()}
        pending = self.pending
        while pending:  # expire (insertion order = time order)
            k, (t0, _, _) = next(iter(pending.items()))
            if ts - t0 <= cfg.max_life_ms:
                break
            del pending[k]
        prev = self.prev
        if prev is not None:
            mean_qty = {s: (_total([q for _, q in v]) / len(v) if v else INF)
                        for s, v in lv.items()}
            rank: dict[str, dict[float, int]] | None = None
            for side, p, q in event.changes:
                key = (side, p)
                hit = pending.get(key)
                if hit is not None:
                    t0, added, peak = hit
                    if q <= peak - cfg.cancel_fraction * added:
                        del pending[key]
                        vol = min(added, peak - q)
                        self.spoofs += 1
                        self.recent.append((ts, vol))
                        self.recent_sum += vol
                    continue
                pb = self.prev_bound[side]
                if (p < pb) if side == "bid" else (p > pb):
                    continue  # not in the copy of the previous book: the old qty is unknown
                delta = q - prev[side].get(p, 0.0)
                if delta <= 0.0 or delta < cfg.size_factor * mean_qty[side]:
                    continue
                if rank is None:
                    rank = {s: {price: i for i, (price, _) in enumerate(v)} for s, v in lv.items()}
                r = rank[side].get(p)
                if r is None or r < cfg.min_rank:
                    continue
                pending[key] = (ts, delta, q)
                self.placements += 1
                if len(pending) > cfg.max_pending:
                    pending.popitem(last=False)
        self.prev = cur
        self.prev_bound = {s: (v[-1][0] if len(v) == n else (-INF if s == "bid" else INF))
                           for s, v in lv.items()}
        recent = self.recent
        while recent and ts - recent[0][0] >= cfg.window_ms:
            self.recent_sum -= recent.popleft()[1]
        if not recent:
            self.recent_sum = 0.0  # no drift across windows
        if ts - self.first_ts < cfg.window_ms:
            return NAN
        depth = _total([q for _, q in lv["bid"]]) + _total([q for _, q in lv["ask"]])
        if not depth > 0.0:
            self.value = NAN
            return NAN
        self.ready = True
        self.value = max(self.recent_sum, 0.0) / depth
        return self.value

    def stats(self) -> dict[str, Any]:
        return {"large_placements": self.placements, "spoof_cancels": self.spoofs,
                "cleared_by_trades": self.filled}

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The spoofing ratio after each trade and depth row of a book tape
        (:func:`book_columns`): ``kind``, ``ts``, the trade rows' ``price`` and ``side``, the
        ``depth_*`` level arrays (at least ``levels`` levels) and the depth rows' changes
        (``change_*``); NaN on ``book`` rows."""
        from gridkit.plugins.features.kernels_book import spoofing_batch

        cfg = self.cfg
        tape = _Tape(columns, self)
        rows = tape.mask(TRADE_ROW, DEPTH_ROW)
        np = tape.np
        values = spoofing_batch(
            tape.rows("kind", rows, np.int8), tape.rows("ts", rows, np.int64),
            tape.rows("price", rows), tape.rows("side", rows), *tape.depth(cfg.levels),
            *tape.changes(), cfg.levels, cfg.min_rank, float(cfg.size_factor),
            float(cfg.cancel_fraction), cfg.max_life_ms, cfg.window_ms, cfg.max_pending)
        return tape.scatter(rows, values)


def _impact_bps(levels: list[tuple[float, float]], size: float, mid: float) -> tuple[float, bool]:
    """Distance in bps from mid of the average price paid to take ``size`` from ``levels``
    (best first); the part beyond the levels is priced at the last one. (cost, filled)."""
    rest, notional, last = size, 0.0, mid
    for p, q in levels:
        take = q if q < rest else rest
        notional += take * p
        rest -= take
        last = p
        if rest <= 0.0:
            break
    filled = rest <= 1e-12 * size
    if not filled:
        notional += rest * last
    return abs(notional / size - mid) / mid * 1e4, filled


class LiquidityVacuum(Feature):
    """Thinness of the book: the cost of taking a reference size, against its recent average.

    The cost of a size Q (``size``, base quantity) is half the cost of a round trip through the
    book (Irvine, Benston & Kandel 2000, "Liquidity beyond the inside spread: measuring and using
    information in the limit order book"; the Xetra Liquidity Measure of Gomber, Schweickert &
    Theissen 2015, "Liquidity dynamics in an electronic open limit order book: an event study
    approach"): ``c = (|vwap_buy(Q) - mid| + |mid - vwap_sell(Q)|) / 2 / mid * 1e4`` bps, where
    ``vwap_buy(Q)`` walks the best ``levels`` ask levels (what lies beyond them is priced at the
    last one: a lower bound, counted in ``stats()``). The feature is c over its geometric mean
    over the last ``window`` depth updates (current included),
    ``exp(ln c - mean(ln c))``: the geometric mean, because these costs are heavy-tailed (a few
    thin moments would dominate an arithmetic mean). Above 1 the book is thinner than usual, a
    liquidity vacuum. O(``levels``) per event; NaN until ``window`` updates with both sides.
    Batch: the ``depth`` rows of a book tape (at least ``levels`` levels); see
    ``book_columns``.
    """

    name = "liquidity-vacuum"
    inputs = frozenset({"depth"})

    @frozen
    class Config:
        size: float = option(1.0, doc="Reference size Q taken from each side, in base units.",
                             validator=positive())
        levels: int = option(50, doc="Levels per side walked.", validator=at_least(1))
        window: int = option(600, doc="Number of depth updates in the rolling mean.",
                             validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.size, self.levels = cfg.size, cfg.levels
        self.ring = _Ring(cfg.window)
        self.unfilled = 0
        self.ready = False

    def update(self, event: Any) -> float:
        book = event.book
        bid, ask = book.best_bid, book.best_ask
        mid = (bid + ask) * 0.5
        if not mid > 0.0:
            return NAN
        buy, ok_b = _impact_bps(book.levels("ask", self.levels), self.size, mid)
        sell, ok_s = _impact_bps(book.levels("bid", self.levels), self.size, mid)
        if not (ok_b and ok_s):
            self.unfilled += 1
        c = (buy + sell) * 0.5
        if not c > 0.0:  # a locked or crossed book: no cost to compare
            return NAN
        lc = log(c)
        ring = self.ring
        ring.push(lc)
        if not ring.full:
            return NAN
        self.ready = True
        return exp(lc - ring.mean())

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The relative cost after each ``depth`` row of a book tape (:func:`book_columns`),
        from its ``depth_*`` level arrays (at least ``levels`` levels); NaN on rows of other
        kinds."""
        from gridkit.plugins.features.kernels_book import liquidity_vacuum_batch

        tape = _Tape(columns, self)
        values = liquidity_vacuum_batch(*tape.depth(self.levels), float(self.size),
                                        self.levels, self.ring.n)
        return tape.spread_out(DEPTH_ROW, values)

    def stats(self) -> dict[str, Any]:
        return {"size_beyond_levels": self.unfilled}


FEATURES = (SpreadBps, OrderImbalance, SpreadAnalysis, L2Delta, HiddenLiquidity, Spoofing,
            LiquidityVacuum)


@hookimpl
def gridkit_register_features(register: Any) -> None:
    for cls in FEATURES:
        register(cls)
