"""Time bars from trade prints, for sources whose ``bars`` option feeds bar features."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gridkit.core.types import Bar, Trade

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_interval(text: str) -> int:
    """Milliseconds in an interval such as ``"500ms"``, ``"1s"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)\s*", text)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"not an interval: {text!r} (use e.g. '1s', '5m', '1h')")
    return int(m.group(1)) * _UNITS[m.group(2)]


class TimeBars:
    """Folds trades into OHLCV bars on fixed interval boundaries (epoch-aligned), O(1) a trade.

    A bar is complete when the first trade of a later interval arrives (or at :meth:`flush`), so
    a bar is only ever emitted once it has closed. Intervals without trades produce no bar.
    Trades must come in time order; one earlier than the open bar is folded into it.
    """

    __slots__ = ("_c", "_h", "_l", "_o", "_start", "_v", "interval", "not_in_bars")

    def __init__(self, interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval_ms
        self._start: int | None = None
        self._o = self._h = self._l = self._c = self._v = 0.0
        #: Trades :meth:`fold` left out because their price or size was unusable.
        self.not_in_bars = 0

    def fold(self, events: Iterable[Any], accepted: Callable[[], bool] | None = None,
             flush: bool = True) -> Iterator[Any]:
        """Yield ``events`` and, after the trade that closed each bar, that bar; with
        ``flush``, the last bar at the end (a replay's last data; a live stream that stops
        mid-interval has no closed bar to give).

        ``accepted()`` is asked after each trade has been yielded — so after its consumer has
        seen it — and the trade is folded only if it answers True: the engine answers whether
        every validator accepted the trade, so a dropped print never reaches a bar. Without
        it every trade is folded. A trade whose price is not a positive finite number or whose
        size is negative or not finite is never folded (counted in :attr:`not_in_bars`).
        """
        add = self.add
        inf = math.inf
        for event in events:
            yield event
            if type(event) is not Trade or (accepted is not None and not accepted()):
                continue
            if 0.0 < event.price < inf and 0.0 <= event.qty < inf:
                bar = add(event)
                if bar is not None:
                    yield bar
            else:
                self.not_in_bars += 1
        last = self.flush() if flush else None
        if last is not None:
            yield last

    def add(self, trade: Trade) -> Bar | None:
        """Fold in one trade; return the bar it closed, if any."""
        start = trade.ts - trade.ts % self.interval
        price = trade.price
        closed = None
        if self._start is None or start > self._start:
            if self._start is not None:
                closed = Bar(self._start, self._o, self._h, self._l, self._c, self._v)
            self._start = start
            self._o = self._h = self._l = self._c = price
            self._v = trade.qty
            return closed
        if price > self._h:
            self._h = price
        elif price < self._l:
            self._l = price
        self._c = price
        self._v += trade.qty
        return None

    def flush(self) -> Bar | None:
        """The bar still open at the end of the data, if any."""
        if self._start is None:
            return None
        bar = Bar(self._start, self._o, self._h, self._l, self._c, self._v)
        self._start = None
        return bar
