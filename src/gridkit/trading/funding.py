"""Funding-rate and mark-price series of a perpetual, read from freqtrade's files, CSV or ccxt.

freqtrade stores what it downloads with ccxt for a futures pair beside its candles, as Feather
(Arrow IPC) files with columns ``date, open, high, low, close, volume``:

* ``<PAIR>-8h-funding_rate.feather``: one row per funding time, **the rate in ``open``** (a
  fraction per interval; ``high``/``low``/``close``/``volume`` are 0 — freqtrade's convention).
  The timestamps carry the exchange's few-millisecond offset (``00:00:00.017``).
* ``<PAIR>-<tf>-mark.feather``: mark-price candles, open time in ``date``.

:func:`load_funding` also reads a CSV with a ``ts,rate`` header (epoch milliseconds) and the
JSON list ccxt's ``fetch_funding_rate_history`` returns (``timestamp``, ``fundingRate``).

A file is refused, with one :class:`~gridkit.core.errors.DataError` line naming it and the
row, when it is empty, lacks the columns, has a missing/NaN/infinite value, or its times go
backwards or repeat: funding applied from a bad series would move the account silently.

pyarrow is imported only when a Feather file is read.
"""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gridkit.core.errors import DataError

HOUR_MS = 3_600_000
#: Binance's funding interval on most USDⓈ-M perpetuals (00:00, 08:00, 16:00 UTC).
FUNDING_INTERVAL_MS = 8 * HOUR_MS
#: How far a recorded funding time may sit from its scheduled time and still count as it.
SCHEDULE_TOLERANCE_MS = 60_000
# Epoch milliseconds beyond 2100-01-01 are not a timestamp but a unit mistake or garbage.
_MAX_TS_MS = 4_102_444_800_000
_TIMEFRAME = re.compile(r"-(\d+)([mhdw])-mark\b")
_UNIT_MS = {"m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS, "w": 7 * 24 * HOUR_MS}
_FEATHER = (".feather", ".arrow", ".ipc")


class FundingSeries:
    """Funding events of one perpetual: times (epoch ms, int64) and rates (float64), ascending.

    :param ts: funding times, strictly increasing.
    :param rate: the rate at each time (0.0001 = 0.01 % per interval).
    :param source: where it was read from, for messages.
    :param interval_ms: the exchange's funding interval, used by :meth:`covers`.
    """

    __slots__ = ("interval_ms", "rate", "source", "ts")

    def __init__(self, ts: np.ndarray, rate: np.ndarray, source: str = "funding",
                 interval_ms: int = FUNDING_INTERVAL_MS) -> None:
        self.ts = np.ascontiguousarray(ts, dtype=np.int64)
        self.rate = np.ascontiguousarray(rate, dtype=np.float64)
        self.source = source
        self.interval_ms = int(interval_ms)
        if self.ts.shape != self.rate.shape or self.ts.ndim != 1:
            raise ValueError("ts and rate must be 1-d arrays of the same length")

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __repr__(self) -> str:
        span = f"{_iso(self.ts[0])} .. {_iso(self.ts[-1])}" if len(self) else "empty"
        return f"FundingSeries({self.source!r}, {len(self)} events, {span})"

    def between(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """The funding events with ``t0 < ts <= t1``: ``(times, rates)``, views, O(log n).

        Walking a run bar by bar with ``between(previous_time, time)`` hands every event to
        exactly one step. An event's recorded time may lie a few ms after its scheduled
        time (``08:00:00.007``), so it falls in the step that ends after it.

        :param t0: exclusive start, epoch ms.
        :param t1: inclusive end, epoch ms.
        """
        i = int(np.searchsorted(self.ts, t0, side="right"))
        j = int(np.searchsorted(self.ts, t1, side="right"))
        return self.ts[i:j], self.rate[i:j]

    def covers(self, t0: int, t1: int) -> tuple[bool, int | None]:
        """Whether every scheduled funding time in ``(t0, t1]`` has an event, and the first that
        has none.

        The schedule is every :attr:`interval_ms` from the epoch (00:00, 08:00, 16:00 UTC for
        8 h); an event within :data:`SCHEDULE_TOLERANCE_MS` of a slot fills it. Returns
        ``(True, None)`` or ``(False, first_missing_slot_ms)``.

        :param t0: exclusive start of the run, epoch ms.
        :param t1: inclusive end of the run, epoch ms.
        """
        step = self.interval_ms
        first = (int(t0) // step + 1) * step
        last = (int(t1) // step) * step
        if first > last:
            return True, None
        slots = np.arange(first, last + 1, step, dtype=np.int64)
        n = len(self)
        if n == 0:
            return False, int(slots[0])
        idx = np.searchsorted(self.ts, slots - SCHEDULE_TOLERANCE_MS, side="left")
        found = self.ts[np.minimum(idx, n - 1)]
        ok = (idx < n) & (found <= slots + SCHEDULE_TOLERANCE_MS)
        if ok.all():
            return True, None
        return False, int(slots[np.argmin(ok)])

    def require(self, t0: int, t1: int) -> None:
        """Raise one DataError line if the series does not :meth:`cover <covers>` ``(t0, t1]``.

        :param t0: exclusive start of the run, epoch ms.
        :param t1: inclusive end of the run, epoch ms.
        """
        ok, missing = self.covers(t0, t1)
        if ok:
            return
        have = (f"it has {_iso(self.ts[0])} .. {_iso(self.ts[-1])}" if len(self)
                else "it has no events")
        raise DataError(f"{self.source}: no funding rate for {_iso(missing)} UTC; {have}, the "
                        f"run needs ({_iso(t0)}, {_iso(t1)}]")


class MarkSeries:
    """Mark-price candles of one perpetual: open times (epoch ms), opens and closes.

    :meth:`at` gives the mark price known at a time — never one from after it: the open of
    the candle that contains the time (its first price), or, past the end of the last candle
    before a gap or the series' end, that candle's close. This is also what freqtrade charges
    funding with (``open`` of the mark candle at the funding time).

    :param ts: candle open times, strictly increasing.
    :param open: opening mark prices.
    :param close: closing mark prices.
    :param timeframe_ms: candle length.
    :param source: where it was read from, for messages.
    """

    __slots__ = ("close", "open", "source", "timeframe_ms", "ts")

    def __init__(self, ts: np.ndarray, open: np.ndarray, close: np.ndarray,
                 timeframe_ms: int, source: str = "marks") -> None:
        self.ts = np.ascontiguousarray(ts, dtype=np.int64)
        self.open = np.ascontiguousarray(open, dtype=np.float64)
        self.close = np.ascontiguousarray(close, dtype=np.float64)
        self.timeframe_ms = int(timeframe_ms)
        self.source = source
        if not (self.ts.shape == self.open.shape == self.close.shape) or self.ts.ndim != 1:
            raise ValueError("ts, open and close must be 1-d arrays of the same length")
        if self.timeframe_ms <= 0:
            raise ValueError("timeframe_ms must be > 0")

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __repr__(self) -> str:
        span = f"{_iso(self.ts[0])} .. {_iso(self.end_ms)}" if len(self) else "empty"
        return f"MarkSeries({self.source!r}, {len(self)} candles, {span})"

    @property
    def end_ms(self) -> int:
        """Close time of the last candle (its open + the timeframe)."""
        return int(self.ts[-1]) + self.timeframe_ms

    def at(self, t: int) -> float:
        """The last mark price known at ``t`` (epoch ms); NaN before the first candle. O(log n).

        :param t: epoch ms.
        """
        i = int(np.searchsorted(self.ts, t, side="right")) - 1
        if i < 0:
            return math.nan
        if t >= self.ts[i] + self.timeframe_ms:
            return float(self.close[i])
        return float(self.open[i])

    def values_at(self, t: np.ndarray) -> np.ndarray:
        """:meth:`at` for an array of times at once (the batch path).

        :param t: epoch ms, any order.
        """
        t = np.asarray(t, dtype=np.int64)
        i = np.searchsorted(self.ts, t, side="right") - 1
        j = np.maximum(i, 0)
        out = np.where(t >= self.ts[j] + self.timeframe_ms, self.close[j], self.open[j])
        return np.where(i < 0, np.nan, out)

    def cursor(self) -> MarkCursor:
        """A :class:`MarkCursor` for a walk forward in time: O(1) per step."""
        return MarkCursor(self)

    def covers(self, t0: int, t1: int) -> tuple[bool, int | None]:
        """Whether candles cover ``[t0, t1]`` without a gap, and the first uncovered time.

        :param t0: start, epoch ms.
        :param t1: end, epoch ms.
        """
        if not len(self) or self.ts[0] > t0:
            return False, int(t0)
        ends = self.ts + self.timeframe_ms
        # A gap: a candle's end before the next candle's open, inside the window.
        gaps = np.nonzero((ends[:-1] < self.ts[1:]) & (ends[:-1] < t1) & (self.ts[1:] > t0))[0]
        if gaps.size:
            return False, max(int(ends[gaps[0]]), int(t0))
        if self.end_ms < t1:
            return False, self.end_ms
        return True, None


class MarkCursor:
    """:meth:`MarkSeries.at` for non-decreasing times, in amortised O(1) per call.

    A time earlier than the previous one is answered too (by a binary search), only slower.
    """

    __slots__ = ("_i", "_last", "_series")

    def __init__(self, series: MarkSeries) -> None:
        self._series = series
        self._i = -1
        self._last = -(2**62)

    def at(self, t: int) -> float:
        """The last mark price known at ``t``; see :meth:`MarkSeries.at`.

        :param t: epoch ms, normally not before the previous call's.
        """
        s = self._series
        if t < self._last:
            self._i = int(np.searchsorted(s.ts, t, side="right")) - 1
        else:
            n = len(s)
            i = self._i
            while i + 1 < n and s.ts[i + 1] <= t:
                i += 1
            self._i = i
        self._last = t
        i = self._i
        if i < 0:
            return math.nan
        if t >= s.ts[i] + s.timeframe_ms:
            return float(s.close[i])
        return float(s.open[i])


# --- loading ----------------------------------------------------------------------------------


def load_funding(path: str | Path, interval_ms: int | None = None) -> FundingSeries:
    """Read a perpetual's funding rates: freqtrade Feather, ``ts,rate`` CSV or ccxt JSON.

    The format follows the extension: ``.feather``/``.arrow``/``.ipc`` (freqtrade's
    ``*-funding_rate.feather``, the rate in ``open``), ``.csv`` (header ``ts,rate``, ``ts`` in
    epoch ms) or ``.json`` (a list of ccxt funding-rate records with ``timestamp`` and
    ``fundingRate``). Times must increase strictly; a missing, NaN or infinite rate, or one of
    magnitude ≥ 1 (a price, not a rate: a mark file passed by mistake), is refused naming the
    row.

    :param path: the file.
    :param interval_ms: the funding interval for :meth:`FundingSeries.covers`; by default the
        median spacing of the events rounded to the hour (8 h with fewer than two events).
    """
    p = Path(path)
    source = str(p)
    _check_file(p)
    suffix = p.suffix.lower()
    if suffix in _FEATHER:
        table = _read_feather(p)
        ts, rows = _feather_times(table, source)
        rate = _feather_column(table, "open", source, "a freqtrade funding-rate file has "
                               "date, open (the rate), high, low, close, volume")
    elif suffix == ".csv":
        ts, rate, rows = _read_funding_csv(p)
    elif suffix == ".json":
        ts, rate, rows = _read_funding_json(p)
    else:
        raise DataError(f"{source}: cannot tell the format from {suffix or 'no extension'!r}; "
                        "use .feather, .csv (ts,rate) or .json (ccxt funding rate history)")
    if ts.size == 0:
        raise DataError(f"{source}: no funding events in it")
    bad = ~np.isfinite(rate)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: {rows(i)} ({_iso(ts[i])}): funding rate is "
                        f"{float(rate[i])!r}")
    big = np.abs(rate) >= 1.0
    if big.any():
        i = int(np.argmax(big))
        raise DataError(f"{source}: {rows(i)} ({_iso(ts[i])}): funding rate "
                        f"{float(rate[i])!r} is not a fraction per interval; is this a price "
                        "(mark) file?")
    _check_order(ts, source, rows)
    if interval_ms is None:
        interval_ms = _median_interval(ts)
    return FundingSeries(ts, rate, source, interval_ms)


def load_marks(path: str | Path, timeframe_ms: int | None = None) -> MarkSeries:
    """Read mark-price candles from a freqtrade ``*-<tf>-mark.feather`` file.

    :param path: the Feather file (columns ``date, open, high, low, close[, volume]``).
    :param timeframe_ms: candle length; by default taken from the file name
        (``XRP_USDT_USDT-8h-mark.feather`` → 8 h), else the smallest spacing of the candles.
    """
    p = Path(path)
    source = str(p)
    _check_file(p)
    if p.suffix.lower() not in _FEATHER:
        raise DataError(f"{source}: mark prices are read from freqtrade's .feather files")
    table = _read_feather(p)
    ts, rows = _feather_times(table, source)
    hint = "a freqtrade mark file has date, open, high, low, close, volume"
    open_ = _feather_column(table, "open", source, hint)
    close = _feather_column(table, "close", source, hint)
    if ts.size == 0:
        raise DataError(f"{source}: no candles in it")
    for name, values in (("open", open_), ("close", close)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{source}: {rows(i)} ({_iso(ts[i])}): mark {name} is "
                            f"{float(values[i])!r}, not a positive price")
    _check_order(ts, source, rows)
    if timeframe_ms is None:
        timeframe_ms = _timeframe_from_name(p.name)
    spacing = np.diff(ts)
    if timeframe_ms is None:
        if spacing.size == 0:
            raise DataError(f"{source}: one candle and no timeframe in the file name "
                            "(…-8h-mark.feather); pass timeframe_ms")
        timeframe_ms = int(spacing.min())
    if spacing.size and int(spacing.min()) < timeframe_ms:
        i = int(np.argmin(spacing)) + 1
        raise DataError(f"{source}: {rows(i)} ({_iso(ts[i])}) starts "
                        f"{int(spacing.min())} ms after the previous candle, less than the "
                        f"{timeframe_ms} ms timeframe")
    return MarkSeries(ts, open_, close, timeframe_ms, source)


# --- readers ----------------------------------------------------------------------------------


def _check_file(p: Path) -> None:
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty")


def _read_feather(p: Path) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.feather as feather
    except ImportError:
        raise DataError(f"{p}: reading Feather files needs pyarrow: pip install "
                        "'gridkit[parquet]'") from None
    try:
        return feather.read_table(p)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable Feather file: {_first_line(e)}") from None


def _feather_times(table: Any, source: str) -> tuple[np.ndarray, Any]:
    """The ``date`` column as int64 epoch ms, and a row labeller for messages."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def rows(i: int) -> str:
        return f"row {i + 1}"

    if "date" not in table.column_names:
        raise DataError(f"{source}: no 'date' column (columns: {_names(table)})")
    col = table.column("date")
    if col.null_count:
        i = int(np.argmax(pc.is_null(col).to_numpy(zero_copy_only=False)))
        raise DataError(f"{source}: {rows(i)}: date is missing")
    kind = col.type
    if pa.types.is_timestamp(kind):
        raw = col.cast(pa.int64()).to_numpy()
        scale = {"s": -1000, "ms": 1, "us": 1000, "ns": 1_000_000}[kind.unit]
        ts = raw * 1000 if scale < 0 else raw // scale
    elif pa.types.is_integer(kind):
        ts = col.cast(pa.int64()).to_numpy()
    else:
        raise DataError(f"{source}: column 'date' is {kind}, expected a timestamp")
    ts = np.asarray(ts, dtype=np.int64)
    bad = (ts < 0) | (ts > _MAX_TS_MS)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: {rows(i)}: date {int(ts[i])} ms is not between 1970 and 2100")
    return ts, rows


def _feather_column(table: Any, name: str, source: str, hint: str) -> np.ndarray:
    import pyarrow as pa

    if name not in table.column_names:
        raise DataError(f"{source}: no {name!r} column (columns: {_names(table)}); {hint}")
    col = table.column(name)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise DataError(f"{source}: column {name!r} is {col.type}, expected numbers")
    # Nulls become NaN here and are refused, with their row, by the callers.
    return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _read_funding_csv(p: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    source = str(p)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{source}: not a readable CSV file: {_first_line(e)}") from None
    if not lines:
        raise DataError(f"{source}: file is empty")
    header = [c.strip().lower() for c in lines[0]]
    if "ts" not in header or "rate" not in header:
        raise DataError(f"{source}: line 1 must be the header 'ts,rate', got {_short(lines[0])}")
    its, irate = header.index("ts"), header.index("rate")
    ts: list[int] = []
    rate: list[float] = []
    line_numbers: list[int] = []
    for n, row in enumerate(lines[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) <= max(its, irate):
            raise DataError(f"{source}: line {n}: expected ts,rate, got {_short(row)}")
        cell = row[its].strip()
        try:
            t = int(cell)
        except ValueError:
            raise DataError(f"{source}: line {n}: ts {cell[:40]!r} is not integer epoch "
                            "milliseconds") from None
        if not 0 <= t <= _MAX_TS_MS:
            raise DataError(f"{source}: line {n}: ts {t} is not epoch ms between 1970 and 2100")
        cell = row[irate].strip()
        try:
            r = float(cell)
        except ValueError:
            raise DataError(f"{source}: line {n}: rate {cell[:40]!r} is not a number") from None
        ts.append(t)
        rate.append(r)
        line_numbers.append(n)

    def rows(i: int) -> str:
        return f"line {line_numbers[i]}"

    return np.array(ts, dtype=np.int64), np.array(rate, dtype=np.float64), rows


def _read_funding_json(p: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    source = str(p)
    try:
        data = json.loads(p.read_bytes())
    except (ValueError, RecursionError) as e:
        raise DataError(f"{source}: not JSON: {_first_line(e)}") from None
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a list of ccxt funding-rate records, got "
                        f"{type(data).__name__}")
    ts = np.empty(len(data), dtype=np.int64)
    rate = np.empty(len(data), dtype=np.float64)
    for i, item in enumerate(data):
        where = f"{source}: row {i + 1}"
        if not isinstance(item, dict) or "timestamp" not in item or "fundingRate" not in item:
            raise DataError(f"{where}: expected a record with 'timestamp' and 'fundingRate'")
        t = item["timestamp"]
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= _MAX_TS_MS:
            raise DataError(f"{where}: timestamp {_short(t)} is not epoch ms between 1970 and "
                            "2100")
        r = item["fundingRate"]
        if r is None:
            r = math.nan
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            raise DataError(f"{where}: fundingRate {_short(r)} is not a number")
        ts[i] = t
        try:
            rate[i] = float(r)
        except OverflowError:
            rate[i] = math.inf
    return ts, rate, lambda i: f"row {i + 1}"


# --- checks and small helpers -----------------------------------------------------------------


def _check_order(ts: np.ndarray, source: str, rows: Any) -> None:
    if ts.size < 2:
        return
    step = np.diff(ts)
    if (step <= 0).any():
        i = int(np.argmax(step <= 0)) + 1
        what = "repeats" if step[i - 1] == 0 else "goes back from"
        raise DataError(f"{source}: {rows(i)}: time {_iso(ts[i])} {what} the previous row's "
                        f"{_iso(ts[i - 1])}; the file must be sorted without duplicates")


def _median_interval(ts: np.ndarray) -> int:
    if ts.size < 2:
        return FUNDING_INTERVAL_MS
    hours = round(float(np.median(np.diff(ts))) / HOUR_MS)
    return max(1, hours) * HOUR_MS


def _timeframe_from_name(name: str) -> int | None:
    m = _TIMEFRAME.search(name)
    return int(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def _iso(ms: Any) -> str:
    """Epoch ms as ``2021-11-18 00:00:00.017`` (UTC), for messages."""
    try:
        moment = datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    frac = int(ms) % 1000
    return f"{text}.{frac:03d}" if frac else text


def _names(table: Any) -> str:
    names = ", ".join(table.column_names[:12])
    return names or "none"


def _short(value: Any) -> str:
    text = repr(value) if not (isinstance(value, int) and value.bit_length() > 128) else "huge"
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."
