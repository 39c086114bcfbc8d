"""Built-in file sources: ``freqtrade-json``, ``csv``, ``parquet``, ``sqlite`` (OHLCV bars) and
``trades-file`` (trade prints, optionally folded into time bars).

A source turns a file into :class:`gridkit.Bar` (or :class:`gridkit.Trade`) events. It refuses
a file it cannot read at all (missing, empty, truncated, not OHLCV) with one
:class:`gridkit.DataError` line, and passes individual bad values on as NaN so that the
validators drop and count them; a row it cannot parse at all (wrong arity, no timestamp) is
skipped and counted in its stats.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import sys
import zlib
from array import array
from collections.abc import Iterator
from datetime import datetime, timezone
from json.decoder import WHITESPACE
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from attrs import frozen

from gridkit.core.components import Source
from gridkit.core.config import OptionError, option
from gridkit.core.errors import DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar, Trade
from gridkit.runtime.context import RunInfo

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")
ROLES = ("ts", "open", "high", "low", "close", "volume")
#: A file of more bars than this keeps them as columns (8 bytes a value, against about 250
#: bytes a :class:`~gridkit.Bar` object) and makes each Bar as it replays; a smaller one makes
#: its Bars once, when it loads, so that replaying them costs nothing per event.
COLUMNS_FROM = 100_000


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


def _comma_number(cell: str) -> float:
    """A float from a CSV cell written with a decimal comma (``1234,5``)."""
    return _number(cell.replace(",", "."))


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


class _FileSource(Source):
    """A source that reads the file named by its ``path`` option (relative to the pipeline)."""

    def validate(self, run: RunInfo) -> None:
        _exists(run, self.config.path)


class BarColumns(NamedTuple):
    """Bars as six columns: epoch-ms timestamps (``array('q')``) and five ``array('d')``."""

    ts: array
    open: array
    high: array
    low: array
    close: array
    volume: array

    @classmethod
    def empty(cls) -> BarColumns:
        return cls(array("q"), *(array("d") for _ in range(5)))


class _LoadedBars(_FileSource):
    """A file source that reads every bar during ``setup`` (the load phase); ``rows`` and
    ``malformed`` count what the file held. Up to :data:`COLUMNS_FROM` bars are kept as Bar
    objects (replaying them costs nothing per event), more as :class:`BarColumns`."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.bars: list[Bar] = []
        self._columns: BarColumns | None = None
        self.rows = 0
        self.malformed = 0

    def _keep(self, columns: BarColumns) -> None:
        """Keep the bars read: as columns if there are more than :data:`COLUMNS_FROM`."""
        if len(columns.ts) > COLUMNS_FROM:
            self._columns, self.bars = columns, []
        else:
            self._columns = None
            self.bars = [Bar(*row) for row in zip(*columns, strict=True)]

    def events(self) -> Iterator[Bar]:
        if self._columns is None:
            return iter(self.bars)
        return _replay(self._columns)

    def size_hint(self) -> int | None:
        return len(self.bars) if self._columns is None else len(self._columns.ts)

    def columns(self) -> dict[str, np.ndarray] | None:
        if self._columns is None:
            return None
        import numpy as np

        return {role: np.frombuffer(col, dtype=np.int64 if role == "ts" else np.float64)
                for role, col in zip(ROLES, self._columns, strict=True)}

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "malformed_rows": self.malformed}


class FreqtradeJson(_LoadedBars):
    """OHLCV rows ``[ms, open, high, low, close, volume]`` as freqtrade writes them (.json, .gz).

    Also reads pandas' column-oriented JSON (``{"date": {...}, "open": {...}, ...}``), which
    freqtrade uses for some test data. Timestamps are candle open times in epoch milliseconds.
    The rows are decoded one at a time into columns; a file of more than
    :data:`COLUMNS_FROM` bars keeps them so (a year of 1m bars: 25 MB rather than about
    130 MB of Bar objects), makes each Bar as it replays, and gives a fused backtest the
    columns themselves (:meth:`gridkit.Source.columns`).
    """

    name = "freqtrade-json"

    @frozen
    class Config:
        path: str = option(doc="The .json or .json.gz file; relative to pipeline.toml's folder.")

    def setup(self, run: RunInfo) -> None:
        path = run.resolve(self.config.path)
        rows = self._read(path)
        self.malformed = rows.malformed
        # A single bad price becomes NaN for the validators to count; a file where no row has
        # four numeric prices (freqtrade's trades files: [ms, id, type, side, ...]) is not
        # OHLCV. Numeric strings count: raw Binance klines send prices as strings.
        if not rows.priced:
            raise DataError(f"data file {path} has no OHLCV rows "
                            f"(expected [ms, open, high, low, close, volume])")
        self.rows = len(rows.columns.ts)
        self._keep(rows.columns)

    def _read(self, path: Path) -> _Rows:
        """The file's rows. The usual file, an array of rows, is read a row at a time from
        its text, so a year of 1m bars never exists as half a million lists (nor its bytes
        beside its text); anything else, and any error, is read again and parsed whole, which
        says what is wrong."""
        raw = _read_bytes(path)
        # float() is the fast path; it would read a JSON true as 1.0, so files holding a
        # boolean anywhere take the careful path, which turns every bad cell into NaN.
        careful = b"true" in raw or b"false" in raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        del raw
        rows = _Rows(careful)
        if text and _stream_rows(text, rows):
            return rows
        del text
        rows = _Rows(careful)
        try:
            data = json.loads(_read_bytes(path))
        except json.JSONDecodeError as err:
            raise DataError(f"data file {path} is truncated or not valid JSON "
                            f"(line {err.lineno}, column {err.colno}: {err.msg})") from None
        except UnicodeDecodeError:
            raise DataError(f"data file {path} is not text (is it the right file?)") from None
        except RecursionError:
            raise DataError(f"data file {path} is nested too deeply to be OHLCV rows") from None
        if isinstance(data, dict):
            data = self._from_columns(data, path)
        if not isinstance(data, list):
            raise DataError(f"data file {path} is not freqtrade OHLCV: expected a JSON array of "
                            f"[ms, open, high, low, close, volume] rows, got {type(data).__name__}")
        for r in data:
            rows.add(r)
        return rows

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



_DECODER = json.JSONDecoder()


def _stream_rows(text: str, rows: _Rows) -> bool:
    """Feed each element of ``text``, a JSON array, to ``rows``; False (``rows`` then holds a
    part) when ``text`` is not one JSON array, or not valid JSON."""
    ws, decode = WHITESPACE.match, _DECODER.raw_decode
    i = ws(text, 0).end()
    if text[i:i + 1] != "[":
        return False
    i = ws(text, i + 1).end()
    if text[i:i + 1] != "]":
        try:
            while True:
                row, i = decode(text, i)
                rows.add(row)
                i = ws(text, i).end()
                if text[i:i + 1] == "]":
                    break
                if text[i:i + 1] != ",":
                    return False
                i = ws(text, i + 1).end()
        except (json.JSONDecodeError, RecursionError):
            return False
    return ws(text, i + 1).end() == len(text)


class _Rows:
    """freqtrade rows read into :class:`BarColumns`: a row is ``[ms, open, high, low, close,
    volume, ...]`` with a numeric timestamp (others are counted in ``malformed``); a cell
    that is not a number is NaN."""

    def __init__(self, careful: bool) -> None:
        self.careful = careful
        self.columns = BarColumns.empty()
        self.malformed = 0
        #: Whether a row had four finite prices.
        self.priced = False
        self._append = tuple(col.append for col in self.columns)

    def add(self, r: Any) -> None:
        if not (isinstance(r, list) and len(r) >= 6 and _is_timestamp(r[0])):
            self.malformed += 1
            return
        values = None if self.careful else _plain_row(r)
        if values is None:
            num = _number
            values = (int(r[0]), num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]))
        for append, v in zip(self._append, values, strict=True):
            append(v)
        if not self.priced:
            isfinite = math.isfinite
            self.priced = (isfinite(values[1]) and isfinite(values[2]) and
                           isfinite(values[3]) and isfinite(values[4]))


def _plain_row(r: list[Any]) -> tuple[Any, ...] | None:
    """A row of plain numbers converted (None if a cell is not one)."""
    try:
        return (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
    except (TypeError, ValueError, OverflowError):
        return None


def _replay(columns: BarColumns, chunk: int = 4096) -> Iterator[Bar]:
    """The Bars of ``columns``, made as they are replayed, a chunk of rows at a time."""
    for k in range(0, len(columns.ts), chunk):
        yield from map(Bar, *(col[k:k + chunk].tolist() for col in columns))


def _check_roles(columns: dict[str, str], roles: tuple[str, ...]) -> None:
    """Refuse a ``columns`` option that maps a role the source does not know."""
    bad = sorted(set(columns) - set(roles))
    if bad:
        raise OptionError("columns", f"unknown role(s) {', '.join(bad)}; "
                          f"roles are {', '.join(roles)}")


_TS_NAMES = ("ts", "timestamp", "time", "date", "datetime", "open_time", "opentime")
_ALIASES = {"open": ("o",), "high": ("h",), "low": ("l",), "close": ("c",),
            "volume": ("v", "vol", "base_volume")}


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds from an ISO-8601 date-time (naive means UTC); ValueError if not one."""
    dt = datetime.fromisoformat(_iso_for_this_python(text.strip().replace("Z", "+00:00")))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


#: A calendar date written YYYYMMDD (tushare's ``trade_date``), years 1900-2199.
_YYYYMMDD = re.compile(r"^(19|20|21)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")


def parse_yyyymmdd_ms(text: str) -> int:
    """Epoch milliseconds of 00:00 UTC of a ``YYYYMMDD`` date; ValueError if not one.

    A daily bar's date is a label, not an instant: an A-share trading date (Asia/Shanghai) is
    stamped at 00:00 UTC of that date, as ``2019-01-02`` is by the ISO reader, so both spellings
    of a date give the same ts (:func:`gridkit.trading.ashare.trading_day` reads it back)."""
    t = text.strip()
    if not _YYYYMMDD.match(t):
        raise ValueError(f"{text!r} is not a YYYYMMDD date")
    dt = datetime(int(t[:4]), int(t[4:6]), int(t[6:]), tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def _iso_for_this_python(text: str) -> str:
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits and "+hh:mm"; 3.11 takes
    # any ("...31.69+00:00" in bbgo's fills, "+0000"). Pad or cut the fraction to 6 digits
    # (3.11 truncates beyond 6 too) and put the colon in the offset.
    if sys.version_info >= (3, 11):
        return text
    text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "00000")[:6], text, count=1)
    return re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)


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


class CsvSource(_FileSource):
    """OHLCV from a CSV file with a header; columns and timestamp unit configurable.

    Columns are found by name (``timestamp``/``date``/``time``, ``open``, ``high``, ``low``,
    ``close``, ``volume``, case-insensitive) unless ``columns`` maps them. Timestamps may be
    epoch seconds, milliseconds, microseconds, nanoseconds, ISO-8601 text or ``YYYYMMDD`` dates
    (tushare's ``trade_date``, stamped 00:00 UTC of the date like an ISO date); ``ts_unit =
    "auto"`` decides from the first row and then holds every row to it (a row in another unit
    is counted malformed). ``delimiter`` and ``decimal`` read European exports
    (``1234,5;...``).
    """

    name = "csv"

    @frozen
    class Config:
        path: str = option(doc="The CSV file; relative to pipeline.toml's folder.")
        columns: dict[str, str] = option(
            factory=dict, doc="Column name per role: ts, open, high, low, close, volume.")
        ts_unit: Literal["auto", "s", "ms", "us", "ns", "iso", "yyyymmdd"] = option(
            "auto", doc="Unit of the timestamp column; auto detects it from the first row; "
                        "yyyymmdd reads dates like 20190102 (00:00 UTC of that date).")
        delimiter: str = option(",", doc="Field separator.")
        decimal: Literal[".", ","] = option(
            ".", doc="Decimal mark of the prices and volumes (\",\" for European exports, "
                     "usually with delimiter = \";\").")

        def __attrs_post_init__(self) -> None:
            _check_roles(self.columns, ROLES)
            if len(self.delimiter) != 1:
                raise OptionError("delimiter", f"must be one character, got {self.delimiter!r}")
            if self.decimal == self.delimiter:
                raise OptionError("decimal", "cannot be the field delimiter too")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.path: Path | None = None
        self.index: dict[str, int] = {}
        self.unit = self.config.ts_unit
        self.rows = 0
        self.malformed = 0

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
        if unit == "yyyymmdd":
            return parse_yyyymmdd_ms(cell)
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
        if _YYYYMMDD.match(cell.strip()):  # 20190102: a date, not a second of August 1970
            return "yyyymmdd"
        if not math.isfinite(value):
            raise ValueError(f"timestamp {cell!r} is not a number")
        return unit_of(value)

    def events(self) -> Iterator[Bar]:
        reader = self._open()
        next(reader, None)
        ix = self.index
        its, io, ih, il, ic, iv = (ix[r] for r in ROLES)
        width = max(ix.values()) + 1
        num = _number if self.config.decimal == "." else _comma_number
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


# --- timestamps of any unit, one unit per file ---------------------------------------------------


class _Stamps:
    """Epoch ms from numbers (s/ms/µs/ns) or ISO-8601 text; ``auto`` fixes the unit on the first
    good value and then refuses values of another unit (ValueError: the row is malformed)."""

    def __init__(self, unit: str = "auto") -> None:
        self.unit = unit
        self.auto = unit == "auto"

    def __call__(self, value: Any) -> int:
        if value is None or isinstance(value, bool):
            raise ValueError("no timestamp")
        if isinstance(value, str):
            try:
                num = float(value)
            except ValueError:
                if self.unit not in ("auto", "iso"):
                    raise
                ms = parse_iso_ms(value)
                self.unit = "iso"
                return ms
        else:
            num = float(value)
        if not math.isfinite(num):
            raise ValueError("timestamp is not a number")
        unit = self.unit
        if unit == "auto":
            unit = self.unit = unit_of(num)
        elif unit == "iso":
            raise ValueError("a number among ISO timestamps")
        if self.auto and unit_of(num) != unit:
            raise ValueError(f"timestamp {value} is not in {unit} like the first row")
        return round(num * _TO_MS[unit])


# --- Arrow files (parquet, feather) --------------------------------------------------------------

PARQUET_HINT = "pip install 'gridkit[parquet]'"


def _arrow_table(path: Path) -> Any:
    """The whole parquet or feather (Arrow IPC) file as a pyarrow Table; DataError if it is not."""
    try:
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow: {PARQUET_HINT}") from None
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read data file {path}: {err.strerror or err}") from None
    if not head:
        raise DataError(f"data file {path} is empty")
    try:
        if head[:4] == b"PAR1":
            return pq.read_table(path)
        if head[:6] == b"ARROW1" or head[:4] == b"FEA1":
            return feather.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"data file {path} is truncated or not a valid parquet/feather file: "
                        f"{str(err).splitlines()[0]}") from None
    raise DataError(f"data file {path} is not a parquet or feather file")


def _find(names: list[str], wanted: str | None, candidates: tuple[str, ...]) -> int | None:
    """Index of the column named ``wanted`` (or of the first candidate name); an exact match
    wins over a case-insensitive one (Binance sends both ``m`` and ``M``, ``t`` and ``T``)."""
    exact = {n.strip(): i for i, n in enumerate(names)}
    lower: dict[str, int] = {}
    for i, n in enumerate(names):
        lower.setdefault(n.strip().lower(), i)
    for n in (wanted,) if wanted is not None else candidates:
        if n in exact:
            return exact[n]
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def _arrow_ms(col: Any, unit: str, path: Path, name: str) -> list[int | None]:
    """Epoch ms per row of an Arrow column (None where missing or unreadable)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        ms = pc.cast(col, pa.timestamp("ms", tz=getattr(t, "tz", None)), safe=False)
        return pc.cast(ms, pa.int64()).to_pylist()
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) \
            or pa.types.is_large_string(t):
        stamps = _Stamps(unit)
        out: list[int | None] = []
        for v in col.to_pylist():
            try:
                out.append(stamps(v))
            except (ValueError, OverflowError, TypeError):
                out.append(None)
        return out
    raise DataError(f"data file {path}: timestamp column {name!r} has type {t}, "
                    f"not a date-time, a number or text")


def _arrow_floats(col: Any, path: Path, name: str) -> list[float]:
    """Floats per row of an Arrow column; NaN where missing or not a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.fill_null(pc.cast(col, pa.float64(), safe=False), NAN).to_pylist()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return [_number(v) for v in col.to_pylist()]
    raise DataError(f"data file {path}: column {name!r} has type {t}, not numbers")


class ParquetSource(_LoadedBars):
    """OHLCV from a parquet or feather (Arrow IPC) file, such as freqtrade's ``.feather`` data.

    Columns are found by name like the ``csv`` source (``date``/``timestamp``/``time``,
    ``open``, ``high``, ``low``, ``close``, ``volume``) unless ``columns`` maps them. The
    timestamp column may be a date-time column of any unit and time zone, or epoch numbers
    (unit auto-detected from the first row, or ``ts_unit``). Needs pyarrow, the optional extra
    ``gridkit[parquet]``. A file of trade prints or quotes (no open/high/low/close) is refused.
    """

    name = "parquet"

    @frozen
    class Config:
        path: str = option(doc="The .parquet or .feather file; relative to pipeline.toml's "
                               "folder.")
        columns: dict[str, str] = option(
            factory=dict, doc="Column name per role: ts, open, high, low, close, volume.")
        ts_unit: Literal["auto", "s", "ms", "us", "ns"] = option(
            "auto", doc="Unit of a numeric timestamp column; auto detects it from the first "
                        "row. Date-time columns carry their own unit.")

        def __attrs_post_init__(self) -> None:
            _check_roles(self.columns, ROLES)

    def setup(self, run: RunInfo) -> None:
        path = run.resolve(self.config.path)
        table = _arrow_table(path)
        names = list(table.column_names)
        index: dict[str, int] = {}
        for role in ROLES:
            cands = _TS_NAMES if role == "ts" else (role, *_ALIASES.get(role, ()))
            found = _find(names, self.config.columns.get(role), cands)
            if found is None:
                lowered = {n.lower() for n in names}
                ticks = role in ("open", "high", "low", "close") and bool(
                    lowered & {"price", "bid", "ask"})
                what = ("it looks like trade prints or quotes, not OHLCV candles (use the "
                        "trades-file source for trades)" if ticks
                        else f"map it with columns.{role} = \"...\"")
                raise DataError(f"data file {path} has no {role!r} column (columns: "
                                f"{', '.join(names)}): {what}")
            index[role] = found
        if table.num_rows == 0:
            raise DataError(f"data file {path} has no rows")
        cols = {r: table.column(i) for r, i in index.items()}
        ts = _arrow_ms(cols["ts"], self.config.ts_unit, path, names[index["ts"]])
        values = [_arrow_floats(cols[r], path, names[index[r]]) for r in ROLES[1:]]
        self.rows = table.num_rows
        self.bars = [Bar(t, o, h, lo, c, v)
                     for t, o, h, lo, c, v in zip(ts, *values, strict=True) if t is not None]
        self.malformed = self.rows - len(self.bars)
        if not self.bars:
            raise DataError(f"data file {path} has no OHLCV rows with a readable timestamp")


# --- SQLite candle store -------------------------------------------------------------------------

#: The table of candles in a gridkit SQLite file. ``gridkit data download ... --db FILE``
#: (``gridkit.plugins.ccxt_sources``) writes it; the ``sqlite`` source reads it. One row per
#: candle: ``ts`` = open time (epoch ms), prices in the quote currency, volume in base units.
CANDLES_TABLE = "candles"
CANDLES_COLUMNS = ("exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close",
                   "volume")
CANDLES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS candles ("
    "exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, "
    "ts INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL, "
    "PRIMARY KEY (exchange, symbol, timeframe, ts))"
)


def create_candles_table(db: Any) -> None:
    """Create the ``candles`` table (if missing) in an open :mod:`sqlite3` connection."""
    db.execute(CANDLES_SCHEMA)


def write_candles(db: Any, exchange: str, symbol: str, timeframe: str,
                  bars: Any) -> int:
    """Insert (or replace) candles — Bars or ``[ts, o, h, l, c, v]`` rows — in one transaction.

    Returns how many were written. ``db`` is an open :mod:`sqlite3` connection.
    """
    create_candles_table(db)
    rows = [(exchange, symbol, timeframe, int(b[0]), *(float(x) for x in b[1:6]))
            if not isinstance(b, Bar) else
            (exchange, symbol, timeframe, b.ts, b.open, b.high, b.low, b.close, b.volume)
            for b in bars]
    with db:
        db.executemany("INSERT OR REPLACE INTO candles VALUES (?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def _time_ms(text: str, option_name: str) -> int | None:
    if not text:
        return None
    try:
        return int(text) if text.strip().isdigit() else parse_iso_ms(text)
    except ValueError:
        raise OptionError(option_name, f"not epoch ms or an ISO date: {text!r}") from None


class SqliteSource(_LoadedBars):
    """OHLCV candles kept in a gridkit SQLite file (the ``candles`` table).

    ``gridkit data download EXCHANGE SYMBOL TIMEFRAME --db FILE`` writes that table: one row
    per candle, keyed by (exchange, symbol, timeframe, ts), ``ts`` the open time in epoch ms.
    This source reads the candles of one symbol and timeframe (and exchange, when the file
    holds several) in time order, optionally from ``since`` to ``until`` (inclusive, epoch ms
    or ISO-8601).
    """

    name = "sqlite"

    @frozen
    class Config:
        path: str = option(doc="The SQLite file; relative to pipeline.toml's folder.")
        timeframe: str = option(doc="Candle timeframe as stored, e.g. 1m, 5m, 1h.")
        symbol: str = option("", doc="Symbol as stored, e.g. BTC/USDT; empty = the "
                                     "pipeline's symbol.")
        exchange: str = option("", doc="Exchange id as stored (binance, ...); empty = the "
                                       "only one holding the symbol.")
        since: str = option("", doc="First candle open time (epoch ms or ISO-8601); empty = "
                                    "from the first.")
        until: str = option("", doc="Last candle open time (epoch ms or ISO-8601); empty = "
                                    "to the last.")

        def __attrs_post_init__(self) -> None:
            since = _time_ms(self.since, "since")
            until = _time_ms(self.until, "until")
            if since is not None and until is not None and until < since:
                raise OptionError("until", "is before since")

    def setup(self, run: RunInfo) -> None:
        import sqlite3

        cfg = self.config
        path = run.resolve(cfg.path)
        symbol = cfg.symbol or run.symbol
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise DataError(f"cannot open SQLite file {path}: {err}") from None
        try:
            try:
                has = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                 "name=?", (CANDLES_TABLE,)).fetchone()
            except sqlite3.DatabaseError as err:
                raise DataError(f"data file {path} is not a SQLite database ({err})") from None
            if not has:
                raise DataError(f"SQLite file {path} has no candles table (write one with "
                                f"gridkit data download ... --db {path.name})")
            exchanges = [r[0] for r in db.execute(
                "SELECT DISTINCT exchange FROM candles WHERE symbol=? AND timeframe=?",
                (symbol, cfg.timeframe))]
            if cfg.exchange:
                exchanges = [e for e in exchanges if e == cfg.exchange]
            if not exchanges:
                held = ", ".join(f"{e} {s} {t}" for e, s, t in db.execute(
                    "SELECT DISTINCT exchange, symbol, timeframe FROM candles LIMIT 20"))
                raise DataError(f"SQLite file {path} has no {symbol} {cfg.timeframe} candles"
                                f"{' on ' + cfg.exchange if cfg.exchange else ''} "
                                f"(it holds: {held or 'nothing'})")
            if len(exchanges) > 1:
                raise DataError(f"SQLite file {path} holds {symbol} {cfg.timeframe} from "
                                f"{', '.join(exchanges)}: set exchange = \"...\"")
            since = _time_ms(cfg.since, "since")
            until = _time_ms(cfg.until, "until")
            rows = db.execute(
                "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange=? AND "
                "symbol=? AND timeframe=? AND ts>=? AND ts<=? ORDER BY ts",
                (exchanges[0], symbol, cfg.timeframe, -(2**62) if since is None else since,
                 2**62 if until is None else until)).fetchall()
        except sqlite3.DatabaseError as err:
            raise DataError(f"SQLite file {path} cannot be read: {err}") from None
        finally:
            db.close()
        num = _number
        self.bars = [Bar(int(t), num(o), num(h), num(lo), num(c), num(v))
                     for t, o, h, lo, c, v in rows if isinstance(t, int)]
        self.rows = len(rows)
        self.malformed = len(rows) - len(self.bars)
        if not self.bars:
            raise DataError(f"SQLite file {path} has no {symbol} {cfg.timeframe} candles "
                            f"between since and until")



# --- trade prints --------------------------------------------------------------------------------

TRADE_ROLES = ("ts", "price", "qty", "side", "id")
_TRADE_NAMES: dict[str, tuple[str, ...]] = {
    "ts": ("timestamp", "ts", "time", "t", "tradedat", "datetime", "date", "transact_time"),
    "price": ("price", "p"),
    "qty": ("amount", "qty", "quantity", "q", "size", "base_volume", "volume"),
    "side": ("side", "taker_side"),
    "id": ("id", "trade_id", "tradeid", "tid", "a"),
}
#: Flags meaning "the buyer was the maker", i.e. the taker sold (Binance ``m``).
_BUYER_MAKER = ("buyer_maker", "is_buyer_maker", "isbuyermaker", "m")
_SIDES = {"buy": "buy", "b": "buy", "bid": "buy", "sell": "sell", "s": "sell", "ask": "sell",
          "a": "sell"}
_TRUE = {"true", "1", "t", "yes"}


def _side_of(side: Any, buyer_maker: Any, maker: Any) -> str | None:
    """The taker side from a side cell, a buyer-is-maker flag, or an own fill's maker flag."""
    if buyer_maker is not None and side is None:
        flag = buyer_maker if isinstance(buyer_maker, bool) else \
            str(buyer_maker).strip().lower() in _TRUE
        return "sell" if flag else "buy"
    s = _SIDES.get(str(side).strip().lower()) if side is not None else None
    if s is None:
        return None
    if maker is True or maker == "maker":  # an own fill as maker: the taker was the other side
        return "sell" if s == "buy" else "buy"
    return s


class TradesFile(_FileSource):
    """Trade prints from a CSV, JSON (plain or gzip) or parquet file; optionally time bars too.

    Formats, detected from the content (or set with ``format``):

    - JSON rows ``[ms, id, type, side, price, amount, cost]`` (freqtrade's trades files);
    - JSON objects: ccxt trades (``timestamp``, ``id``, ``side``, ``price``, ``amount``), raw
      Binance trades (``T``, ``p``, ``q``, ``m``), bbgo fills (``tradedAt``, ``quantity``,
      ``isMaker``) — for an own fill made as maker the taker side is the opposite one;
    - CSV with a header, and parquet/feather (pyarrow): columns found by name (timestamp,
      price, amount/qty/quantity/size, side or buyer_maker, id), or mapped with ``columns``.

    Timestamps may be epoch s/ms/µs/ns (unit from the first row, held for the file) or
    ISO-8601. The side is the taker's (``buyer_maker`` true means the taker sold). With
    ``bars = "1m"`` (any interval) the engine also folds the trades into time bars
    (:class:`gridkit.data.bars.TimeBars`, epoch-aligned; see :attr:`gridkit.Source.bar_interval`),
    so bar features and the strategy run on trade data: only trades every trade validator
    accepted go into a bar, and each bar follows the trade that closed it. Rows without a
    readable timestamp or side are skipped and counted.
    """

    name = "trades-file"
    provides = frozenset({"trades"})

    @frozen
    class Config:
        path: str = option(doc="The trades file (.csv, .json, .json.gz, .parquet, .feather); "
                               "relative to pipeline.toml's folder.")
        format: Literal["auto", "csv", "json", "parquet"] = option(
            "auto", doc="File format; auto detects it from the content.")
        columns: dict[str, str] = option(
            factory=dict, doc="Column (or JSON key) name per role: ts, price, qty, side, id.")
        bars: str = option("", doc="Also emit time bars of this interval (1s, 1m, 5m, 1h); "
                                   "empty = trades only.")
        sort: bool = option(False, doc="Sort the trades by time (stable) before replay, for "
                                       "files not in time order (bbgo fills).")
        delimiter: str = option(",", doc="CSV field separator.")

        def __attrs_post_init__(self) -> None:
            _check_roles(self.columns, TRADE_ROLES)
            if self.bars:
                from gridkit.data.bars import parse_interval

                try:
                    parse_interval(self.bars)
                except ValueError as err:
                    raise OptionError("bars", str(err)) from None
            if len(self.delimiter) != 1:
                raise OptionError("delimiter", f"must be one character, got {self.delimiter!r}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        if self.config.bars:
            from gridkit.data.bars import parse_interval

            self.provides = frozenset({"trades", "bars"})
            self.bar_interval = parse_interval(self.config.bars)
        self.trades: list[Trade] = []
        self.rows = 0
        self.malformed = 0

    def setup(self, run: RunInfo) -> None:
        path = run.resolve(self.config.path)
        fmt = self.config.format
        if fmt == "parquet" or (fmt == "auto" and self._is_arrow(path)):
            trades = self._from_arrow(path)
        else:
            raw = _read_bytes(path)
            head = raw.lstrip()[:1]
            if fmt == "json" or (fmt == "auto" and head in (b"[", b"{")):
                trades = self._from_json(raw, path)
            else:
                trades = self._from_csv(raw, path)
        if not trades:
            raise DataError(f"data file {path} has no trade rows "
                            f"({self.rows} rows, {self.malformed} malformed)")
        if self.config.sort:
            trades.sort(key=lambda t: t.ts)
        self.trades = trades

    @staticmethod
    def _is_arrow(path: Path) -> bool:
        try:
            with path.open("rb") as f:
                head = f.read(6)
        except OSError:
            return False
        return head[:4] in (b"PAR1", b"FEA1") or head == b"ARROW1"

    def _key(self, role: str, names: list[str]) -> int | None:
        cands = _TRADE_NAMES[role]
        if role == "ts":
            cands = (*cands, *_TS_NAMES)
        return _find(names, self.config.columns.get(role), cands)

    def _build(self, ts: list[Any], price: list[Any], qty: list[Any], side: list[Any],
               maker_flag: list[Any] | None, own_maker: list[Any] | None,
               ids: list[Any] | None, ms: Any = None) -> list[Trade]:
        stamps = _Stamps() if ms is None else None
        num = _number
        out: list[Trade] = []
        n = len(ts)
        self.rows += n
        for k in range(n):
            try:
                t = ts[k] if stamps is None else stamps(ts[k])
                if t is None:
                    raise ValueError
            except (ValueError, OverflowError, TypeError):
                self.malformed += 1
                continue
            s = _side_of(side[k], None if maker_flag is None else maker_flag[k],
                         None if own_maker is None else own_maker[k])
            if s is None:
                self.malformed += 1
                continue
            out.append(Trade(int(t), num(price[k]), num(qty[k]), s,  # type: ignore[arg-type]
                             "" if ids is None or ids[k] is None else str(ids[k])))
        return out

    def _from_json(self, raw: bytes, path: Path) -> list[Trade]:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(f"data file {path} is truncated or not valid JSON "
                            f"(line {err.lineno}, column {err.colno}: {err.msg})") from None
        except UnicodeDecodeError:
            raise DataError(f"data file {path} is not text (is it the right file?)") from None
        if isinstance(data, dict):
            for key in ("trades", "data", "result"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if not isinstance(data, list) or not data:
            raise DataError(f"data file {path} is not a list of trades (expected a JSON array "
                            f"of [ms, id, type, side, price, amount, cost] rows or trade objects)")
        if all(isinstance(r, list) for r in data[:50]):
            rows = [r for r in data if isinstance(r, list) and len(r) >= 6]
            self.malformed += len(data) - len(rows)
            if rows and not any(isinstance(r[3], str) and r[3].lower() in _SIDES
                                for r in rows[:100]):
                raise DataError(f"data file {path} is not freqtrade trades: rows need "
                                f"[ms, id, type, side, price, amount, ...] (OHLCV candles? use "
                                f"freqtrade-json)")
            cols = list(zip(*rows, strict=False)) if rows else [[]] * 6
            return self._build(list(cols[0]), list(cols[4]), list(cols[5]), list(cols[3]),
                               None, None, list(cols[1]))
        dicts = [r for r in data if isinstance(r, dict)]
        self.malformed += len(data) - len(dicts)
        if not dicts:
            raise DataError(f"data file {path} holds neither trade rows nor trade objects")
        names = list(dicts[0].keys())
        key = {r: (names[i] if (i := self._key(r, names)) is not None else None)
               for r in TRADE_ROLES}
        flag = next((names[i] for n in _BUYER_MAKER
                     if (i := _find(names, None, (n,))) is not None), None)
        maker = next((k for k in ("isMaker", "takerOrMaker", "is_maker") if k in names), None)
        missing = [r for r in ("ts", "price", "qty") if key[r] is None]
        if key["side"] is None and flag is None:
            missing.append("side")
        if missing:
            raise DataError(f"data file {path}: trade objects have no {', '.join(missing)} "
                            f"(keys: {', '.join(names)}); map them with columns.<role>")

        def col(k: str | None) -> list[Any] | None:
            return None if k is None else [d.get(k) for d in dicts]

        side = col(key["side"]) or [None] * len(dicts)
        return self._build(col(key["ts"]) or [], col(key["price"]) or [], col(key["qty"]) or [],
                           side, col(flag) if key["side"] is None else None, col(maker),
                           col(key["id"]))

    def _from_csv(self, raw: bytes, path: Path) -> list[Trade]:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"data file {path} is not UTF-8 text") from None
        reader = csv.reader(text.splitlines(), delimiter=self.config.delimiter)
        header = next(reader, None)
        if not header:
            raise DataError(f"data file {path} is empty")
        ix = {r: self._key(r, header) for r in TRADE_ROLES}
        flag = _find(header, None, _BUYER_MAKER) if ix["side"] is None else None
        missing = [r for r in ("ts", "price", "qty") if ix[r] is None]
        if ix["side"] is None and flag is None:
            missing.append("side")
        if missing:
            raise DataError(f"CSV {path} has no {', '.join(repr(m) for m in missing)} column "
                            f"(columns: {', '.join(header)}); map it with columns.<role>")
        rows = [r for r in reader if r]
        width = max(i for i in (*ix.values(), flag) if i is not None) + 1
        good = [r for r in rows if len(r) >= width]
        self.malformed += len(rows) - len(good)

        def col(i: int | None) -> list[Any] | None:
            return None if i is None else [r[i] for r in good]

        return self._build(col(ix["ts"]) or [], col(ix["price"]) or [], col(ix["qty"]) or [],
                           col(ix["side"]) or [None] * len(good), col(flag), None,
                           col(ix["id"]))

    def _from_arrow(self, path: Path) -> list[Trade]:
        table = _arrow_table(path)
        names = list(table.column_names)
        ix = {r: self._key(r, names) for r in TRADE_ROLES}
        flag = _find(names, None, _BUYER_MAKER) if ix["side"] is None else None
        missing = [r for r in ("ts", "price", "qty") if ix[r] is None]
        if ix["side"] is None and flag is None:
            missing.append("side")
        if missing:
            raise DataError(f"data file {path} has no {', '.join(repr(m) for m in missing)} "
                            f"column (columns: {', '.join(names)}): not trade prints?")
        n = table.num_rows

        def col(i: int | None) -> list[Any] | None:
            return None if i is None else table.column(i).to_pylist()

        ts = _arrow_ms(table.column(ix["ts"]), "auto", path, names[ix["ts"]])
        price = _arrow_floats(table.column(ix["price"]), path, names[ix["price"]])  # type: ignore[arg-type]
        qty = _arrow_floats(table.column(ix["qty"]), path, names[ix["qty"]])  # type: ignore[arg-type]
        return self._build(ts, price, qty, col(ix["side"]) or [None] * n, col(flag), None,
                           col(ix["id"]), ms=True)

    def events(self) -> Iterator[Any]:
        return iter(self.trades)

    def size_hint(self) -> int | None:
        return len(self.trades)

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "malformed_rows": self.malformed, "trades": len(self.trades)}


@hookimpl
def gridkit_register_sources(register: Any) -> None:
    for cls in (FreqtradeJson, CsvSource, ParquetSource, SqliteSource, TradesFile):
        register(cls)

