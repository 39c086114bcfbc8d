"""Built-in validators: ``timestamp``, ``price``, ``volume``, ``ohlc``, ``anomaly``, ``staleness``.

Each drops (or flags) the events it cannot trust and counts why; none raises on bad data, and
none "fixes" a value. The fast path of each is one or two comparisons; reasons are worked out
only for drops. ``timestamp``, ``price``, ``volume`` and ``anomaly`` also check trade prints,
and ``price`` best bid/ask quotes; their bar path is unchanged (the non-bar branch costs a bar
nothing: it sits behind an ``AttributeError`` that a bar never raises, or one identity test of
its type).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from attrs import frozen

from gridkit.core.components import Validator
from gridkit.core.config import (
    OptionError,
    at_least,
    non_negative,
    option,
    positive,
)
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar, BookUpdate, Trade
from gridkit.data.bars import parse_interval
from gridkit.runtime.context import Context

INF = float("inf")
_KIND = {Trade: "trades", BookUpdate: "book"}


class _Counting(Validator):
    """A validator that counts its drops (and flags) by reason."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.counts: dict[str, int] = {}

    def count(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)


def _interval_or_off(name: str, value: str) -> None:
    if value != "off":
        try:
            parse_interval(value)
        except ValueError as err:
            raise OptionError(name, f"{err}, or 'off'") from None


_DAY_MS = 86_400_000
#: Day 0 of the epoch (1970-01-01) was a Thursday: from it, a week runs Thu Fri Sat Sun Mon Tue
#: Wed. Whether each is a weekday, and how many weekdays the first k of them hold.
_WEEKDAY = (1, 1, 0, 0, 1, 1, 1)
_WEEKDAYS_BEFORE = (0, 1, 2, 2, 2, 3, 4)


def _weekday_ms(t: int) -> int:
    """Milliseconds of Monday-to-Friday (UTC dates) from the epoch to ``t``: O(1)."""
    day, into = divmod(int(t), _DAY_MS)
    weeks, k = divmod(day, 7)
    return (weeks * 5 + _WEEKDAYS_BEFORE[k]) * _DAY_MS + (into if _WEEKDAY[k] else 0)


class TimestampValidator(_Counting):
    """Drops events whose timestamp cannot be right: out of order, in the future, or a lone
    jump far ahead; counts gaps.

    DESIGN.md §6 rule 6: a bar not later than the last accepted bar is dropped (``duplicate``,
    ``out_of_order``). The baseline is the last bar that *every* validator accepted, so a bar
    dropped for its prices does not move it. A gap is a step longer than the bar interval
    (``interval_ms``, or the median of the first 32 steps); gaps are counted (``gaps``,
    ``missing_bars``), not dropped. With ``calendar = "weekdays"`` (stock markets) only the
    bars that would open on a Monday to Friday (UTC dates) are missing: a weekend is no gap,
    a weekday holiday or a suspension is; and ``max_jump`` is at least 4 days (a long weekend).

    A bar accepted with a wrong timestamp far ahead would become the baseline, and every later
    bar would be dropped as out of order: the rest of the file lost. Two checks keep one bad
    row from doing that; each drops and counts that row alone:

    * ``future``: dated more than ``future_tolerance`` past the wall clock. Market data is never
      from the future; the tolerance covers clock skew in live runs. Turn it off (``"off"``) for
      synthetic data dated ahead.
    * ``time_jump``: dated more than ``max_jump`` (and more than 100 bar intervals) past the
      last accepted bar — in the past, so not ``future``, but a jump that real data makes only
      across an outage. Such a bar is held back (dropped for now) until the next bar says which
      it was: a next bar that continues the old sequence shows it was a bad row (``time_jump``);
      a next bar that continues after it confirms the jump, and the data goes on from there
      (the held bar itself stays dropped, counted as ``held_at_jump``: a validator cannot pass a
      bar on later). O(1): one held timestamp. ``"off"`` turns the check off.

    The default ``max_jump``, a day (or 100 intervals of longer bars: 100 days of daily bars),
    weighs the two mistakes: it lies above the outages of real exchange data, which last hours
    (the shared Binance files: at most 285 one-minute intervals; the A-share files: 11 days of
    daily bars), so a real outage rarely costs its first bar; and a bad row dated less than a
    day ahead, which it does not catch, costs at most a day of bars (dropped and counted as
    out of order). The first bar of a run is the first baseline: only ``future`` applies to it.
    There is no lower bound: synthetic data often starts at epoch 0, and a row dated too early
    inside a file is already dropped as out of order.

    Trade prints and book quotes are held to a timestamp that never goes back: several trades
    may share one millisecond, so an equal timestamp is kept and an earlier one is dropped
    (``trades_out_of_order``, ``book_out_of_order``); one past the wall clock is dropped
    (``trades_future``, ``book_future``). Each kind has its own baseline: a bar's ``ts`` is its
    open time, earlier than the trades that closed it.

    A test (or an embedding application) can inject the wall clock by setting the attribute
    ``clock`` to a function returning epoch milliseconds.
    """

    name = "timestamp"
    inputs = frozenset({"bars", "trades", "book"})

    @frozen
    class Config:
        interval_ms: int = option(0, doc="Bar interval in ms for gap counting; 0 infers it "
                                         "from the data.", validator=non_negative())
        future_tolerance: str = option(
            "1d", doc="How far past the wall clock an event may be dated (clock skew) before "
                      "it is dropped as 'future', as an interval (1h, 1d); 'off': no check.")
        max_jump: str = option(
            "1d", doc="A bar further ahead of the last one than this and than 100 bar "
                      "intervals is held until the next bar confirms it; 'off': no check.")
        calendar: Literal["24/7", "weekdays"] = option(
            "24/7", doc="When the market trades, for gap counting: '24/7' (crypto) or "
                        "'weekdays' (Monday to Friday by UTC date: stock markets).")

        def __attrs_post_init__(self) -> None:
            _interval_or_off("future_tolerance", self.future_tolerance)
            _interval_or_off("max_jump", self.max_jump)

    _LEARN = 32  # steps looked at to infer the interval
    #: A jump must also exceed this many bar intervals to be held.
    JUMP_STEPS = 100

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        #: Timestamp of the last accepted bar; -inf before the first.
        self.last: float = -INF
        self.step: int | None = c.interval_ms or None
        self._steps: list[tuple[int, int]] = []  # (last, ts) of the steps learnt from
        #: Last accepted timestamp of each non-bar event type.
        self.last_tick: dict[type, int] = {}
        #: Injected wall clock (epoch ms), or None for the system clock.
        self.clock: Callable[[], float] | None = None
        self._tolerance = INF if c.future_tolerance == "off" else parse_interval(
            c.future_tolerance)
        self._max_jump = INF if c.max_jump == "off" else parse_interval(c.max_jump)
        if c.calendar == "weekdays":  # a long weekend is no jump, even before a step is known
            self._max_jump = max(self._max_jump, 4 * _DAY_MS)
        #: Latest timestamp that is not in the future, as of the last look at the clock (which
        #: is read again only for a timestamp past it: the horizon only moves forward).
        self.horizon = -INF if self._tolerance < INF else INF
        #: Steps further than this from the last accepted bar are jumps.
        self.jump = max(self._max_jump, self.JUMP_STEPS * (self.step or 0))
        self._min_step: int | None = None
        #: Timestamp of a bar held back as a jump, until the next bar decides about it.
        self.held: int | None = None
        #: Bars after ``last`` and up to here pass with one chained comparison. It is set on
        #: the slow path from the ``last`` of then, so it lags behind (too low, never too
        #: high) and a bar past it takes the slow path, which sets it again: once a ``jump``.
        self._ceiling: float = -INF

    def _now(self) -> float:
        clock = self.clock
        return clock() if clock is not None else time.time() * 1000.0

    # --- for the fused pass (gridkit.fused.run), which checks a whole file at once ----------

    def limits(self) -> tuple[int, float, float]:
        """What a pass over a whole file checks against: the configured interval (0: learnt
        from the bars), the horizon (now plus the future tolerance; inf: off) and the largest
        jump that is not held back (inf: off)."""
        horizon = self._now() + self._tolerance if self._tolerance != INF else INF
        return int(self.config.interval_ms), horizon, float(self._max_jump)

    def resume_from(self, last: float, step: int | None, held: int | None,
                    learning: list[tuple[int, int]]) -> None:
        """Take the state a pass over the bars left: the last accepted timestamp, the step
        (None: not learnt yet), the bar held back as a jump, and the steps learnt from so far;
        so the next bar is judged as if this validator had seen every one."""
        self.last, self.step, self.held = last, step, held
        self._steps = learning

    def _future(self, ts: int) -> bool:
        """Whether ``ts`` lies past the wall clock plus the tolerance; reads the clock."""
        if self._tolerance == INF:
            return False
        self.horizon = self._now() + self._tolerance
        return ts > self.horizon

    def accept(self, bar: Bar, _bar: type = Bar) -> bool:
        if type(bar) is not _bar:
            return self._accept_tick(bar)
        if self.last < bar.ts <= self._ceiling:
            return True
        return self._check(bar.ts)

    def _check(self, ts: int) -> bool:
        last = self.last
        if ts <= last:
            self.count("duplicate" if ts == last else "out_of_order")
            return False
        if ts > self.horizon and self._future(ts):
            self.count("future")
            return False
        if last == -INF:  # the first bar
            return True
        jump = self.jump
        if ts - last <= jump:
            c, h = last + jump, self.horizon
            self._ceiling = c if c < h else h
            return True
        held = self.held
        if held is not None:
            if held < ts and ts - held <= jump:
                return True  # continues after the held bar: the jump was real
            if ts == held:
                self.count("duplicate")
                return False
            self.count("time_jump")  # the held bar: this one does not continue after it
        self.held = ts
        return False

    def _accept_tick(self, event: Any) -> bool:
        ts = event.ts
        if ts > self.horizon and self._future(ts):
            self.count(f"{_KIND.get(type(event), 'events')}_future")
            return False
        last = self.last_tick.get(type(event))
        if last is None or ts >= last:
            return True
        self.count(f"{_KIND.get(type(event), 'events')}_out_of_order")
        return False

    def accepted(self, bar: Bar, _bar: type = Bar) -> None:
        if type(bar) is not _bar:
            self.last_tick[type(bar)] = bar.ts
            return
        ts = bar.ts
        if self.held is not None:  # this bar decides about the held one
            self.count("held_at_jump" if ts > self.held else "time_jump")
            self.held = None
        last, self.last = self.last, ts
        step = self.step
        if step is not None:
            if ts - last > step and last != -INF:
                self._gap(last, ts)
        elif last != -INF:
            self._learn(int(last), ts)

    def _learn(self, last: int, ts: int) -> None:
        diff = ts - last
        self._steps.append((last, ts))
        if self._min_step is None or diff < self._min_step:
            self._min_step = diff
            self.jump = max(self._max_jump, self.JUMP_STEPS * diff)
            self._ceiling = -INF  # the jump may have shrunk
        if len(self._steps) == self._LEARN:
            self.step = sorted(self._span(a, b) for a, b in self._steps)[self._LEARN // 2]
            self.jump = max(self._max_jump, self.JUMP_STEPS * self.step)
            for a, b in self._steps:
                self._gap(a, b)
            self._steps = []

    def _span(self, last: int, ts: int) -> int:
        """Market time from ``last`` to ``ts``: all of it, or its weekdays' (``calendar``)."""
        if self.config.calendar == "weekdays":
            return _weekday_ms(ts) - _weekday_ms(last)
        return ts - last

    def _gap(self, last: int, ts: int) -> None:
        step = self.step
        if not step or ts - last <= step:
            return
        missing = self._span(last, ts) // step - 1
        if missing > 0:
            self.count("gaps")
            self.counts["missing_bars"] = self.counts.get("missing_bars", 0) + missing

    def stats(self) -> dict[str, Any]:
        if self.step is None and self._steps:  # short run: decide on what was seen
            self.step = sorted(self._span(a, b) for a, b in self._steps)[len(self._steps) // 2]
            for a, b in self._steps:
                self._gap(a, b)
            self._steps = []
        out = dict(self.counts)
        if self.held is not None:  # the run ended on a held bar: nothing confirmed it
            out["time_jump"] = out.get("time_jump", 0) + 1
        return out


def _price_fault(values: tuple[float, ...]) -> str:
    """Why some of ``values`` are not usable prices: nan, infinite or non_positive."""
    if any(math.isnan(v) for v in values):
        return "nan"
    if any(math.isinf(v) for v in values):
        return "infinite"
    return "non_positive"


class PriceValidator(_Counting):
    """Drops bars, trades and quotes with a NaN, infinite, zero or negative price; crossed books.

    A bar needs a usable open, high, low and close; a trade print a usable price
    (``trades_nan``, ``trades_infinite``, ``trades_non_positive``); a best bid/ask quote a
    usable bid and ask (``book_...``) with the bid below the ask: a quote with ``bid >= ask``
    is a crossed (or locked) book and is dropped as ``crossed``.
    """

    name = "price"
    inputs = frozenset({"bars", "trades", "book"})

    def accept(self, bar: Bar, _inf: float = INF) -> bool:
        try:  # a Trade or BookUpdate has no .open: the non-bar path costs a bar nothing
            if (0.0 < bar.open < _inf and 0.0 < bar.high < _inf and 0.0 < bar.low < _inf
                    and 0.0 < bar.close < _inf):
                return True
        except AttributeError:
            return self._accept_tick(bar)
        self.count(_price_fault((bar.open, bar.high, bar.low, bar.close)))
        return False

    def _accept_tick(self, event: Any, _inf: float = INF) -> bool:
        if type(event) is Trade:
            price = event.price
            if 0.0 < price < _inf:
                return True
            self.count("trades_" + _price_fault((price,)))
            return False
        if type(event) is BookUpdate:
            bid, ask = event.bid, event.ask
            if 0.0 < bid < _inf and 0.0 < ask < _inf:
                if bid < ask:
                    return True
                self.count("crossed")
                return False
            self.count("book_" + _price_fault((bid, ask)))
            return False
        return True  # a kind this validator does not know: not its business


class VolumeValidator(_Counting):
    """Drops bars with a NaN, infinite or negative volume; zero volume is kept or dropped.

    Trade prints must have a positive, finite quantity: a trade of zero, a negative, NaN or
    infinite size is dropped (``trades_zero``, ``trades_negative``, ``trades_nan``,
    ``trades_infinite``) whatever ``zero`` says, since no exchange prints an empty trade.
    """

    name = "volume"
    inputs = frozenset({"bars", "trades"})

    @frozen
    class Config:
        zero: Literal["keep", "drop"] = option(
            "keep", doc="Zero-volume bars (exchange maintenance, illiquid pairs): keep or drop.")

    def accept(self, bar: Bar, _inf: float = INF) -> bool:
        try:  # a Trade has no .volume: the non-bar path costs a bar nothing
            v = bar.volume
        except AttributeError:
            return self._accept_tick(bar)
        if 0.0 < v < _inf:
            return True
        if v == 0:
            self.count("zero")
            return self.config.zero == "keep"
        self.count("nan" if math.isnan(v) else "infinite" if math.isinf(v) else "negative")
        return False

    def _accept_tick(self, event: Any, _inf: float = INF) -> bool:
        qty = getattr(event, "qty", None)
        if not isinstance(qty, (int, float)):
            return True  # not a trade: not this validator's business
        if 0.0 < qty < _inf:
            return True
        self.count("trades_" + ("zero" if qty == 0 else "nan" if math.isnan(qty)
                                else "infinite" if math.isinf(qty) else "negative"))
        return False

    def stats(self) -> dict[str, Any]:
        counts = dict(self.counts)
        if self.config.zero == "keep" and "zero" in counts:
            counts["zero_kept"] = counts.pop("zero")
        return counts


class OhlcValidator(_Counting):
    """Drops bars whose high and low do not bound the open and close (high < low, ...)."""

    name = "ohlc"

    def accept(self, bar: Bar) -> bool:
        h, low = bar.high, bar.low
        o, c = bar.open, bar.close
        if low <= o <= h and low <= c <= h:
            return True
        self.count("high_below_low" if h < low else "open_close_outside_range")
        return False


class RollingMedianMad:
    """Median and median absolute deviation of the last ``size`` values, O(log size) a query.

    The values are kept twice: in arrival order (a ring, to know which one leaves) and sorted
    (a list kept with :func:`bisect.insort`). Adding a value is O(log size) comparisons plus
    one ``memmove`` of at most ``size`` pointers (a few hundred bytes: cheaper than any tree in
    Python). The median is read off the sorted list in O(1). The MAD is the k-th smallest
    distance to the median: those distances form two sorted runs (going left and right from
    the median), so the k-th smallest is found by a binary search over how many come from the
    left run, O(log size) (the k-th element of two sorted arrays).
    """

    __slots__ = ("_i", "ring", "size", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring: list[float] = []
        self.sorted: list[float] = []
        self._i = 0

    def __len__(self) -> int:
        return len(self.sorted)

    @property
    def full(self) -> bool:
        return len(self.sorted) == self.size

    def add(self, x: float) -> None:
        """Add a finite value, dropping the oldest once ``size`` values are held."""
        s = self.sorted
        if len(s) == self.size:
            old = self.ring[self._i]
            del s[bisect_left(s, old)]
            self.ring[self._i] = x
            self._i = (self._i + 1) % self.size
        else:
            self.ring.append(x)
        insort(s, x)

    def median(self) -> float:
        s = self.sorted
        n = len(s)
        m = n // 2
        return s[m] if n % 2 else (s[m - 1] + s[m]) / 2.0

    def mad(self, med: float) -> float:
        """Median of ``abs(x - med)`` over the values held (non-scaled)."""
        s = self.sorted
        n = len(s)
        p = bisect_left(s, med)
        k = n // 2  # the k-th smallest distance (0-based); for even n also the (k-1)-th
        # Left run: a[i] = med - s[p-1-i] (i < p); right run: b[j] = s[p+j] - med; both rise.
        # Take i from the left and k+1-i from the right, with i the least such that
        # b[k-i] <= a[i]: those k+1 are the smallest distances.
        lo, hi = max(0, k + 1 - (n - p)), min(k + 1, p)
        while lo < hi:
            i = (lo + hi) // 2
            if s[p + k - i] - med > med - s[p - 1 - i]:
                lo = i + 1
            else:
                hi = i
        i, j = lo, k + 1 - lo
        # The largest taken distances come from the ends of the two taken parts.
        top = []
        if i:
            top.append(med - s[p - i])
            if i >= 2:
                top.append(med - s[p - i + 1])
        if j:
            top.append(s[p + j - 1] - med)
            if j >= 2:
                top.append(s[p + j - 2] - med)
        top.sort()
        if n % 2:
            return top[-1]
        return (top[-1] + top[-2]) / 2.0


class AnomalyValidator(_Counting):
    """Flags or drops bars and trades whose log return is an outlier by the robust z-score.

    Bars: with ``r`` = ln(close / previous close) and the median ``m`` and median absolute
    deviation ``MAD`` of the last ``window`` accepted returns, the modified z-score of
    Iglewicz and Hoaglin (1993, *How to Detect and Handle Outliers*, ASQC, p. 11-12) is
    ``z = 0.6745 * (r - m) / MAD``, and ``abs(z) > threshold`` (3.5 in their text) marks an
    outlier. Median and MAD are kept in O(log window) per event (:class:`RollingMedianMad`).

    Trades: ``r`` = ln(price / previous price) between consecutive trade prints, scored
    against the last ``window`` accepted trade returns in the same way, with the granularity
    allowance of Brownlees and Gallo (2006, *Financial econometric analysis at ultra-high
    frequency: Data handling concerns*, Computational Statistics & Data Analysis 51(4),
    2232-2245): consecutive trades often print at the same price, or one tick apart, so the
    MAD of trade returns is often 0 or one tick and bare z-scores would call every ordinary
    move an outlier. A trade is an outlier when ``abs(r - m) > threshold * MAD / 0.6745 + g``,
    i.e. ``0.6745 * (abs(r - m) - g) / MAD > threshold``, with ``g =
    trade_granularity_bps / 10000``; a MAD of 0 is scored too (the bound is then ``g``)
    unless ``g = 0``. Bars and trades keep separate windows and references; ``inputs`` says
    which of the two kinds the source sends are checked (both by default: the engine passes
    only the kinds the source provides). Bars made from trades (a source's ``bars`` option)
    are folded by the engine from the accepted trades only, so a dropped print never reaches
    a bar.

    ``policy = "flag"`` counts outliers (``flagged_up``, ``flagged_down``; for trades
    ``trades_flagged_up``, ``trades_flagged_down``) and passes them on; ``policy = "drop"``
    drops them (``dropped_...``, ``trades_dropped_...``). A dropped event does not enter the
    window, and the next return is taken from the last accepted price, so one bad print is
    dropped alone; after ``max_drops`` drops in a row the price is taken as a new level
    (``level_shift``, ``trades_level_shift``): that event is accepted and becomes the
    reference. Nothing is scored until the window is full, nor while a bar window's ``MAD`` is
    0 (``mad_zero``: a market that did not move); an event without a usable price is passed
    on unscored (``unscored``, ``trades_unscored``) for the ``price`` validator to judge.
    """

    name = "anomaly"
    inputs = frozenset({"bars", "trades"})

    @frozen
    class Config:
        window: int = option(120, doc="Number of past log returns the median and MAD are "
                                      "taken over (per kind).", validator=at_least(5))
        threshold: float = option(3.5, doc="Outlier when the absolute modified z-score "
                                           "exceeds this (Iglewicz & Hoaglin: 3.5).",
                                  validator=positive())
        policy: Literal["flag", "drop"] = option(
            "flag", doc="flag: count outliers and pass them on; drop: drop them.")
        max_drops: int = option(3, doc="With policy drop: after this many drops in a row the "
                                       "new price level is accepted.", validator=at_least(1))
        inputs: list[str] = option(
            factory=lambda: ["bars", "trades"],
            doc="Kinds checked: ``bars``, ``trades`` or both (those the source provides): one "
                "name (``\"trades\"``) or a list.")
        trade_granularity_bps: float = option(
            50.0, doc="Trades: allowance g added to the outlier bound, in bps of price "
                      "(Brownlees & Gallo's granularity term; 0: none).",
            validator=non_negative())

        def __attrs_post_init__(self) -> None:
            if not self.inputs or set(self.inputs) - {"bars", "trades"}:
                raise OptionError("inputs", f"choose from 'bars' and 'trades', got "
                                            f"{self.inputs!r}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.inputs = frozenset(c.inputs)  # type: ignore[misc]
        self.window = RollingMedianMad(c.window)
        self.ref: float | None = None  # last accepted close
        self.drops = 0  # drops in a row
        self.last_z = math.nan
        self._pending: Bar | None = None
        self._r = math.nan
        # Trades: their own window, reference price and run of drops.
        self.trade_window = RollingMedianMad(c.window)
        self.trade_ref: float | None = None
        self.trade_drops = 0
        self._gamma = c.trade_granularity_bps / 10_000.0
        self._bound = c.threshold / 0.6745
        self._tpending: Any = None
        self._tr = math.nan

    def accept(self, bar: Bar, _inf: float = INF) -> bool:
        try:  # a Trade has no .close: the trade path costs a bar nothing
            c = bar.close
        except AttributeError:
            return self._accept_trade(bar)
        ref = self.ref
        self._pending = bar
        self._r = math.nan
        self.last_z = math.nan
        if not 0.0 < c < _inf:
            self.count("unscored")
            return True
        if ref is None:
            return True
        q = c / ref
        if not 0.0 < q < _inf:  # the ratio of two usable prices under- or overflowed
            self.count("unscored")
            return True
        r = math.log(q)
        self._r = r
        w = self.window
        if not w.full:
            return True
        med = w.median()
        mad = w.mad(med)
        if not mad > 0.0:
            self.count("mad_zero")
            return True
        z = 0.6745 * (r - med) / mad
        self.last_z = z
        if -self.config.threshold <= z <= self.config.threshold:
            return True
        way = "up" if z > 0 else "down"
        if self.config.policy == "flag":
            self.count("flagged_" + way)
            return True
        if self.drops >= self.config.max_drops:
            self.count("level_shift")
            return True
        self.drops += 1
        self.count("dropped_" + way)
        self._pending = None
        return False

    def _accept_trade(self, trade: Any, _inf: float = INF) -> bool:
        p = getattr(trade, "price", None)
        if not isinstance(p, float | int):
            return True  # not a trade: not this validator's business
        self._tpending = trade
        self._tr = math.nan
        if not 0.0 < p < _inf:
            self.count("trades_unscored")
            return True
        ref = self.trade_ref
        if ref is None:
            return True
        q = p / ref
        if not 0.0 < q < _inf:
            self.count("trades_unscored")
            return True
        r = math.log(q)
        self._tr = r
        w = self.trade_window
        if not w.full:
            return True
        med = w.median()
        mad = w.mad(med)
        gamma = self._gamma
        if not mad > 0.0 and not gamma > 0.0:
            self.count("trades_mad_zero")
            return True
        dev = r - med
        if abs(dev) <= self._bound * mad + gamma:
            return True
        way = "up" if dev > 0 else "down"
        if self.config.policy == "flag":
            self.count("trades_flagged_" + way)
            return True
        if self.trade_drops >= self.config.max_drops:
            self.count("trades_level_shift")
            return True
        self.trade_drops += 1
        self.count("trades_dropped_" + way)
        self._tpending = None
        return False

    def accepted(self, bar: Bar) -> None:
        if bar is self._pending:
            self.drops = 0
            r = self._r
            if r == r:  # not NaN: a scored return with a usable close
                self.window.add(r)
            if 0.0 < bar.close < INF:
                self.ref = bar.close
        elif bar is self._tpending:
            self.trade_drops = 0
            r = self._tr
            if r == r:
                self.trade_window.add(r)
            p = bar.price  # type: ignore[attr-defined]
            if 0.0 < p < INF:
                self.trade_ref = p


class StalenessValidator(_Counting):
    """Pauses trading while the data is stale and resumes it when fresh data returns.

    An event is stale when its age exceeds ``max_age``. The age depends on ``clock``:

    - ``wall``: the wall clock minus the event's timestamp (live and paper trading; a bar's
      timestamp is its open time, so ``max_age`` must exceed the bar interval);
    - ``event``: the time since the previous accepted event of the same kind (replay: a
      backtest has no wall clock, so a gap in the data is what a live bot would have seen as
      silence);
    - ``auto`` (default): ``wall`` in paper and live runs, ``event`` in backtests.

    A test (or an embedding application) can inject a clock by setting the attribute
    ``clock`` to a function returning epoch milliseconds; it is then used in every mode.

    Stale events are counted (``stale``) and passed on: the data itself is not wrong. When
    ``limit`` events in a row are stale, the validator sets ``ctx.paused`` (the engine then
    holds the strategy's orders and cancels); after ``fresh`` fresh events in a row it clears
    it and the held orders go out. Pauses and resumes are counted (``pauses``, ``resumes``);
    ``max_age_seen_ms`` is the oldest age met. This is the stale-data guard of design 001.
    """

    name = "staleness"
    inputs = frozenset({"bars", "trades", "book"})

    @frozen
    class Config:
        max_age: str = option("5m", doc="Age beyond which an event is stale, as an interval "
                                        "(500ms, 30s, 5m, 1h).")
        limit: int = option(1, doc="Stale events in a row that pause trading.",
                            validator=at_least(1))
        fresh: int = option(3, doc="Fresh events in a row that resume trading.",
                            validator=at_least(1))
        clock: Literal["auto", "wall", "event"] = option(
            "auto", doc="How age is measured: wall clock, gap since the previous event, or "
                        "auto (wall when live or paper, event in backtests).")

        def __attrs_post_init__(self) -> None:
            try:
                parse_interval(self.max_age)
            except ValueError as err:
                raise OptionError("max_age", str(err)) from None

    REASON: ClassVar[str] = "stale data"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.max_age_ms = parse_interval(self.config.max_age)
        #: Injected clock (epoch ms), or None for the configured one.
        self.clock: Callable[[], float] | None = None
        self.wall = self.config.clock == "wall"
        self.ctx: Context | None = None
        self.paused: str | None = None
        self.last: dict[type, int] = {}
        self.stale_run = 0
        self.fresh_run = 0
        self.counts.update(stale=0, pauses=0, resumes=0)
        self.max_seen = 0

    def bind(self, ctx: Context) -> None:
        self.ctx = ctx
        if self.config.clock == "auto":
            self.wall = ctx.run.mode in ("paper", "live")

    def accept(self, event: Any) -> bool:
        return True

    def accepted(self, event: Any) -> None:
        ts = event.ts
        clock = self.clock
        if clock is not None or self.wall:
            age = (clock() if clock is not None else time.time() * 1000.0) - ts
        else:
            kind = type(event)
            last = self.last.get(kind)
            self.last[kind] = ts
            if last is None:
                return
            age = ts - last
        if age > self.max_seen:
            self.max_seen = age
        if age > self.max_age_ms:
            self.counts["stale"] += 1
            self.stale_run += 1
            self.fresh_run = 0
            if self.paused is None and self.stale_run >= self.config.limit:
                self._set(self.REASON)
                self.counts["pauses"] += 1
        else:
            self.stale_run = 0
            self.fresh_run += 1
            if self.paused is not None and self.fresh_run >= self.config.fresh:
                self._set(None)
                self.counts["resumes"] += 1

    def _set(self, reason: str | None) -> None:
        self.paused = reason
        ctx = self.ctx
        if ctx is not None and (reason is not None or ctx.paused == self.REASON):
            ctx.paused = reason

    def stats(self) -> dict[str, Any]:
        out = {k: v for k, v in self.counts.items() if v}
        if self.max_seen:
            out["max_age_seen_ms"] = round(self.max_seen)
        return out


@hookimpl
def gridkit_register_validators(register: Any) -> None:
    for cls in (TimestampValidator, PriceValidator, VolumeValidator, OhlcValidator,
                AnomalyValidator, StalenessValidator):
        register(cls)
