"""Built-in file sources of OHLCV bars: ``freqtrade-json`` and ``csv``.

A source turns a file into :class:`gridkit.Bar` events. It refuses a file it cannot read at all
(missing, empty, truncated, not OHLCV) with one :class:`gridkit.DataError` line, and passes
individual bad values on as NaN so that the validators drop and count them; a row it cannot
parse at all (wrong arity, no timestamp) is skipped and counted in its stats.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import Source
from gridkit.core.config import OptionError, option
from gridkit.core.context import RunInfo
from gridkit.core.errors import DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar

NAN = float("nan")
ROLES = ("ts", "open", "high", "low", "close", "volume")


def _number(value: Any) -> float:
    """A float from a JSON/CSV cell; NaN for null, empty or non-numeric cells."""
    if value is None or isinstance(value, bool):
        return NAN
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond float range: as good as infinite
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return NAN


def _is_timestamp(value: Any) -> bool:
    """True for a JSON number usable as epoch milliseconds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and abs(value) < 1e17
    except OverflowError:
        return False


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"data path is a directory, not a file: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read data file {path}: {err.strerror or err}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"data file {path} is a truncated or corrupt gzip file: {err}"
                            ) from None
    if not raw.strip():
        raise DataError(f"data file {path} is empty")
    return raw


def _exists(run: RunInfo, path: str) -> None:
    p = run.resolve(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if not p.is_file():
        raise DataError(f"data path is not a file: {p}")


class FreqtradeJson(Source):
    """OHLCV rows ``[ms, open, high, low, close, volume]`` as freqtrade writes them (.json, .gz).

    Also reads pandas' column-oriented JSON (``{"date": {...}, "open": {...}, ...}``), which
    freqtrade uses for some test data. Timestamps are candle open times in epoch milliseconds.
    """

    name = "freqtrade-json"

    @frozen
    class Config:
        path: str = option(doc="The .json or .json.gz file; relative to pipeline.toml's folder.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.bars: list[Bar] = []
        self.rows = 0
        self.malformed = 0

    def validate(self, run: RunInfo) -> None:
        _exists(run, self.config.path)

    def setup(self, run: RunInfo) -> None:
        path = run.resolve(self.config.path)
        raw = _read_bytes(path)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(f"data file {path} is truncated or not valid JSON "
                            f"(line {err.lineno}, column {err.colno}: {err.msg})") from None
        except UnicodeDecodeError:
            raise DataError(f"data file {path} is not text (is it the right file?)") from None
        if isinstance(data, dict):
            data = self._from_columns(data, path)
        if not isinstance(data, list):
            raise DataError(f"data file {path} is not freqtrade OHLCV: expected a JSON array of "
                            f"[ms, open, high, low, close, volume] rows, got {type(data).__name__}")
        rows = [r for r in data if isinstance(r, list) and len(r) >= 6 and _is_timestamp(r[0])]
        self.malformed = len(data) - len(rows)
        # A single bad price becomes NaN for the validators to count; a file where no row has
        # four numeric prices (freqtrade's trades files: [ms, id, type, side, ...]) is not
        # OHLCV. Numeric strings count: raw Binance klines send prices as strings.
        if not any(all(math.isfinite(_number(x)) for x in r[1:5]) for r in rows):
            raise DataError(f"data file {path} has no OHLCV rows "
                            f"(expected [ms, open, high, low, close, volume])")
        self.rows = len(rows)
        # Bars are made here, in the load phase, so replay costs nothing per event. float()
        # is the fast path; it would read a JSON true as 1.0, so files holding a boolean
        # anywhere take the careful path, which turns every bad cell into NaN.
        careful = b"true" in raw or b"false" in raw
        self.bars = [self._bar(r, careful) for r in rows]

    @staticmethod
    def _from_columns(data: dict[str, Any], path: Path) -> list[list[Any]]:
        cols = ["date", "open", "high", "low", "close", "volume"]
        missing = [c for c in cols if c not in data]
        if missing or not all(isinstance(data[c], (dict, list)) for c in cols):
            raise DataError(f"data file {path} is not OHLCV: a JSON object needs the columns "
                            f"{', '.join(cols)} (missing: {', '.join(missing) or 'none'})")
        series = [list(data[c].values()) if isinstance(data[c], dict) else data[c] for c in cols]
        if len({len(s) for s in series}) != 1:
            raise DataError(f"data file {path}: OHLCV columns have different lengths")
        return [list(row) for row in zip(*series, strict=True)]

    @staticmethod
    def _bar(r: list[Any], careful: bool) -> Bar:
        if not careful:
            try:
                return Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                           float(r[5]))
            except (TypeError, ValueError, OverflowError):
                pass
        num = _number
        return Bar(int(r[0]), num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]))

    def events(self) -> Iterator[Bar]:
        return iter(self.bars)

    def size_hint(self) -> int | None:
        return len(self.bars)

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "malformed_rows": self.malformed}


_TS_NAMES = ("ts", "timestamp", "time", "date", "datetime", "open_time", "opentime")
_ALIASES = {"open": ("o",), "high": ("h",), "low": ("l",), "close": ("c",),
            "volume": ("v", "vol", "base_volume")}


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds from an ISO-8601 date-time (naive means UTC)."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def unit_of(value: float) -> str:
    """Guess the unit of a numeric epoch timestamp from its magnitude (valid 1973-2286)."""
    v = abs(value)
    if v < 1e11:
        return "s"
    if v < 1e14:
        return "ms"
    if v < 1e17:
        return "us"
    return "ns"


_TO_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


class CsvSource(Source):
    """OHLCV from a CSV file with a header; columns and timestamp unit configurable.

    Columns are found by name (``timestamp``/``date``/``time``, ``open``, ``high``, ``low``,
    ``close``, ``volume``, case-insensitive) unless ``columns`` maps them. Timestamps may be
    epoch seconds, milliseconds, microseconds, nanoseconds or ISO-8601 text; ``ts_unit = "auto"``
    decides from the first row and then holds every row to it.
    """

    name = "csv"

    @frozen
    class Config:
        path: str = option(doc="The CSV file; relative to pipeline.toml's folder.")
        columns: dict[str, str] = option(
            factory=dict, doc="Column name per role: ts, open, high, low, close, volume.")
        ts_unit: Literal["auto", "s", "ms", "us", "ns", "iso"] = option(
            "auto", doc="Unit of the timestamp column; auto detects it from the first row.")
        delimiter: str = option(",", doc="Field separator.")

        def __attrs_post_init__(self) -> None:
            bad = sorted(set(self.columns) - set(ROLES))
            if bad:
                raise OptionError("columns", f"unknown role(s) {', '.join(bad)}; "
                                  f"roles are {', '.join(ROLES)}")
            if len(self.delimiter) != 1:
                raise OptionError("delimiter", f"must be one character, got {self.delimiter!r}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.path: Path | None = None
        self.index: dict[str, int] = {}
        self.unit = self.config.ts_unit
        self.rows = 0
        self.malformed = 0

    def validate(self, run: RunInfo) -> None:
        _exists(run, self.config.path)

    def setup(self, run: RunInfo) -> None:
        self.path = run.resolve(self.config.path)
        header = self._header()
        lower = {h.strip().lower(): i for i, h in enumerate(header)}
        index: dict[str, int] = {}
        for role in ROLES:
            wanted = self.config.columns.get(role)
            if wanted is not None:
                names: tuple[str, ...] = (wanted.lower(),)
            elif role == "ts":
                names = _TS_NAMES
            else:
                names = (role, *_ALIASES.get(role, ()))
            found = next((lower[n] for n in names if n in lower), None)
            if found is None:
                raise DataError(
                    f"CSV {self.path} has no {role!r} column (columns: {', '.join(header)}); "
                    f"map it with columns.{role} = \"...\"")
            index[role] = found
        self.index = index

    def _open(self) -> Any:
        assert self.path is not None
        raw = _read_bytes(self.path)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"data file {self.path} is not UTF-8 text") from None
        return csv.reader(text.splitlines(), delimiter=self.config.delimiter)

    def _header(self) -> list[str]:
        reader = self._open()
        header = next(reader, None)
        if not header:
            raise DataError(f"data file {self.path} is empty")
        return header

    def _ts(self, cell: str) -> int:
        unit = self.unit
        if unit == "auto":
            unit = self._detect_unit(cell)  # raises ValueError: this row is malformed
            self.unit = unit
        if unit == "iso":
            return parse_iso_ms(cell)
        value = float(cell)
        if unit_of(value) != unit and self.config.ts_unit == "auto":
            raise ValueError(f"timestamp {cell} is not in {unit} like the first row")
        return round(value * _TO_MS[unit])

    @staticmethod
    def _detect_unit(cell: str) -> str:
        """The unit of the first well-formed timestamp; a bad cell decides nothing."""
        try:
            value = float(cell)
        except ValueError:
            parse_iso_ms(cell)  # raises ValueError if it is not a date either
            return "iso"
        if not math.isfinite(value):
            raise ValueError(f"timestamp {cell!r} is not a number")
        return unit_of(value)

    def events(self) -> Iterator[Bar]:
        reader = self._open()
        next(reader, None)
        ix = self.index
        its, io, ih, il, ic, iv = (ix[r] for r in ROLES)
        width = max(ix.values()) + 1
        num = _number
        bars = 0
        for row in reader:
            if not row:
                continue
            self.rows += 1
            if len(row) < width:
                self.malformed += 1
                continue
            try:
                ts = self._ts(row[its])
            except (ValueError, OverflowError):
                self.malformed += 1
                continue
            bars += 1
            yield Bar(ts, num(row[io]), num(row[ih]), num(row[il]), num(row[ic]), num(row[iv]))
        if not bars:
            raise DataError(f"data file {self.path} has no OHLCV rows "
                            f"({self.rows} data rows, {self.malformed} malformed)")

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "malformed_rows": self.malformed, "ts_unit": self.unit}


@hookimpl
def gridkit_register_sources(register: Any) -> None:
    register(FreqtradeJson)
    register(CsvSource)
