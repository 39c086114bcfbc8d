"""Built-in bar validators: ``timestamp``, ``price``, ``volume``, ``ohlc``.

Each drops the bars it cannot trust and counts why; none raises on bad data, and none "fixes" a
value. The fast path of each is one or two comparisons; reasons are worked out only for drops.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Validator
from gridkit.core.config import non_negative, option
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar

INF = float("inf")


class _Counting(Validator):
    """A validator that counts its drops (and flags) by reason."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.counts: dict[str, int] = {}

    def count(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)


class TimestampValidator(_Counting):
    """Drops bars not later than the last accepted bar (duplicates, out of order); counts gaps.

    DESIGN.md §6 rule 6: the baseline is the last bar that *every* validator accepted, so a bar
    dropped for its prices does not move it. A gap is a step longer than the bar interval
    (``interval_ms``, or the median of the first 32 steps); gaps are counted (``gaps``,
    ``missing_bars``), not dropped.
    """

    name = "timestamp"

    @frozen
    class Config:
        interval_ms: int = option(0, doc="Bar interval in ms for gap counting; 0 infers it "
                                         "from the data.", validator=non_negative())

    _LEARN = 32  # steps looked at to infer the interval

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.last: int | None = None
        self.step: int | None = self.config.interval_ms or None
        self._steps: list[int] = []

    def accept(self, bar: Bar) -> bool:
        last = self.last
        if last is None or bar.ts > last:
            return True
        self.count("duplicate" if bar.ts == last else "out_of_order")
        return False

    def accepted(self, bar: Bar) -> None:
        ts = bar.ts
        last, self.last = self.last, ts
        if last is None:
            return
        diff = ts - last
        step = self.step
        if step is not None:
            if diff > step:
                self._gap(diff)
            return
        self._steps.append(diff)
        if len(self._steps) == self._LEARN:
            self.step = sorted(self._steps)[self._LEARN // 2]
            for d in self._steps:
                self._gap(d)
            self._steps = []

    def _gap(self, diff: int) -> None:
        step = self.step
        if step and diff > step:
            self.count("gaps")
            self.counts["missing_bars"] = self.counts.get("missing_bars", 0) + diff // step - 1

    def stats(self) -> dict[str, Any]:
        if self.step is None and self._steps:  # short run: decide on what was seen
            self.step = sorted(self._steps)[len(self._steps) // 2]
            for d in self._steps:
                self._gap(d)
            self._steps = []
        return dict(self.counts)


class PriceValidator(_Counting):
    """Drops bars with a NaN, infinite, zero or negative open, high, low or close."""

    name = "price"

    def accept(self, bar: Bar, _inf: float = INF) -> bool:
        if (0.0 < bar.open < _inf and 0.0 < bar.high < _inf and 0.0 < bar.low < _inf
                and 0.0 < bar.close < _inf):
            return True
        values = (bar.open, bar.high, bar.low, bar.close)
        if any(math.isnan(v) for v in values):
            self.count("nan")
        elif any(math.isinf(v) for v in values):
            self.count("infinite")
        else:
            self.count("non_positive")
        return False


class VolumeValidator(_Counting):
    """Drops bars with a NaN, infinite or negative volume; zero volume is kept or dropped."""

    name = "volume"

    @frozen
    class Config:
        zero: Literal["keep", "drop"] = option(
            "keep", doc="Zero-volume bars (exchange maintenance, illiquid pairs): keep or drop.")

    def accept(self, bar: Bar, _inf: float = INF) -> bool:
        v = bar.volume
        if 0.0 < v < _inf:
            return True
        if v == 0:
            self.count("zero")
            return self.config.zero == "keep"
        self.count("nan" if math.isnan(v) else "infinite" if math.isinf(v) else "negative")
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


@hookimpl
def gridkit_register_validators(register: Any) -> None:
    for cls in (TimestampValidator, PriceValidator, VolumeValidator, OhlcValidator):
        register(cls)
