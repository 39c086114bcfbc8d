"""Small helpers shared by the test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gridkit import Bar, Fill, Order, Rejected
from gridkit.runtime.account import Account, Position
from gridkit.runtime.context import Context, RunInfo
from gridkit.runtime.ledger import Ledger
from gridkit.testing import build, sample_path

T = TypeVar("T")

#: The schema of gridkit 0.1's store (version 1), with one old run: what migrations start from.
STORE_V1 = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, mode TEXT, symbol TEXT, capital FLOAT,
    status TEXT, started FLOAT, finished FLOAT, config TEXT, summary TEXT, error TEXT);
CREATE TABLE orders (run_id INTEGER, order_id INTEGER, ts INTEGER, status TEXT, side TEXT,
    kind TEXT, price FLOAT, qty FLOAT, tag INTEGER);
CREATE TABLE fills (run_id INTEGER, order_id INTEGER, ts INTEGER, side TEXT, price FLOAT,
    qty FLOAT, fee FLOAT, liquidity TEXT, tag INTEGER);
CREATE TABLE equity (run_id INTEGER, ts INTEGER, close FLOAT, cash FLOAT, base FLOAT,
    equity FLOAT);
INSERT INTO runs (name, status) VALUES ('old', 'finished');
"""

#: A static grid section for pipelines whose strategy does not matter to the test.
STRATEGY = """
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 10
qty = 0.001
"""


def ms(text: str) -> int:
    """Epoch milliseconds of a 'YYYY-MM-DD HH:MM' UTC time."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
               .timestamp() * 1000)


def feature_pipeline(features: str, path: str | None = None) -> str:
    """A backtest on the sample bars (or the file at ``path``) running ``features`` sections."""
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{path or sample_path().as_posix()}"
{features}
{STRATEGY}"""


def xrp_trades_pipeline(path: str, sections: str = "", bars: str = "5m") -> str:
    """A grid backtest on XRP/ETH trade prints from ``path`` (the real freqtrade tape, or a
    doctored copy), folded into ``bars``; ``sections`` adds validators, features, ..."""
    return f"""
[pipeline]
symbol = "XRP/ETH"
capital = 10.0
[source]
use = "trades-file"
path = "{path}"
bars = "{bars}"
{sections}
[strategy]
use = "static"
lower = 0.00138
upper = 0.00156
grids = 12
qty = 100
"""


class ExecutorHarness:
    """An executor driven as the engine drives it, with a ledger beside it: every report is
    booked, so a report that does not fit (a fill of a closed order, a second end, more filled
    than ordered) fails the test at once. Fills reach the account only with ``book_account``;
    otherwise a test sets the position by hand where it needs one."""

    def __init__(self, cls: type, options: dict[str, Any], symbol: str = "X/Y",
                 capital: float = 1e9, kind: str = "spot", qty: float = 0.0,
                 book_account: bool = False) -> None:
        self.ex = build(cls, options)
        self.symbol = symbol
        account = Account(capital)
        account.add(Position(symbol, kind)).qty = qty
        self.ledger = Ledger()
        self.ctx = Context(RunInfo("t", "backtest", symbol, capital), account, self.ledger)
        self.book_account = book_account
        self.ts = 0

    def submit(self, oid: str, side: str, qty: float, price: float, kind: str = "limit",
               **more: Any) -> str | None:
        """Send an order; its refusal, or None."""
        order = Order(oid, side, qty, price, kind, symbol=self.symbol,  # type: ignore[arg-type]
                      **more)
        self.ledger.request(order, self.ts)
        refusal = self.ex.submit(order, self.ctx)
        if refusal is not None:
            self.ledger.apply(Rejected(oid, self.ts, refusal, self.ex.name))
        self.book(self.ex.reports(None, self.symbol))
        return refusal

    def cancel(self, oid: str) -> str | None:
        refusal = self.ex.cancel(oid, self.ctx)
        self.book(self.ex.reports(None, self.symbol))
        return refusal

    def feed(self, event: Any) -> list[Any]:
        """The reports one market event brings, booked; then the position is marked."""
        self.ts = event.ts
        if type(event) is Bar:
            self.ctx.bar = event
        got = self.ex.reports(event, self.symbol)
        self.book(got)
        price = event.close if type(event) is Bar else getattr(event, "price", None)
        if price is not None:
            self.ctx.portfolio.mark(price)
        return got

    def book(self, reports: list[Any]) -> None:
        for r in reports:
            state = self.ledger.apply(r)
            if self.book_account and type(r) is Fill and state is not None:
                self.ctx.account.apply(r, self.symbol, state.order)
        assert self.ledger.anomalies == []

    def open_ids(self) -> set[str]:
        return {o.id for o in self.ex.open_orders()}


# --- the real market data: the full shared set, or the slices in tests/data ---------------------

REPO = Path(__file__).resolve().parent.parent
#: Slices of the real files, shipped with the tests; SOURCE.md is their manifest.
SLICES = REPO / "tests" / "data"


def _shared_data() -> Path | None:
    """The full real data set: $GRIDKIT_TEST_DATA, else ../shared/data beside the repository;
    None when neither holds it, or when GRIDKIT_TEST_DATA is ``none`` (then the tests run on
    the slices, as on a fresh clone)."""
    env = os.environ.get("GRIDKIT_TEST_DATA")
    if env and env.lower() == "none":
        return None
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "ohlcv").is_dir():
            return c
    return None


#: The full shared data folder, or None: the ``data_dir`` fixture then holds the slices.
SHARED_DATA = _shared_data()
FULL_DATA = SHARED_DATA is not None


def expect(full: T, sliced: T) -> T:
    """What a test expects of the real data in use: the full shared files (``full``, as
    SOURCES.md documents them) or the slices of tests/data (``sliced``, see its SOURCE.md)."""
    return full if FULL_DATA else sliced


def full_data_reason(reason: str) -> str:
    return f"needs the full data set (../shared/data or GRIDKIT_TEST_DATA): {reason}"


def require_full_data(reason: str) -> None:
    """Skip the running test, saying why, when only the slices of tests/data are there."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    if not FULL_DATA:
        pytest.skip(full_data_reason(reason))


# A row of SOURCE.md's slice tables: | `path` | `stored file` | what was cut | `sha256` |
_SLICE_ROW = re.compile(r"^\| `([^`]+)` \| `([^`]+)` \| [^|]+ \| `([0-9a-f]{64})` \|$", re.M)


def slice_table() -> list[tuple[str, Path, str]]:
    """(path as the tests see it, stored file, sha256 of its uncompressed content) for each
    slice listed in tests/data/SOURCE.md."""
    rows = _SLICE_ROW.findall((SLICES / "SOURCE.md").read_text(encoding="utf-8"))
    return [(rel, REPO / stored, sha) for rel, stored, sha in rows]


def lay_out_slices(root: Path) -> Path:
    """The slices under ``root``, laid out like shared/data, under their original names and in
    their original formats (a slice stored as ``<name>.gz`` is decompressed to ``<name>``; a
    capture stays gzip), each checked against its sha256 in SOURCE.md."""
    table = slice_table()
    if not table:
        raise RuntimeError(f"no slice listed in {SLICES / 'SOURCE.md'}")
    for rel, stored, sha in table:
        raw = stored.read_bytes()
        content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        if hashlib.sha256(content).hexdigest() != sha:
            raise RuntimeError(f"{stored}: sha256 differs from tests/data/SOURCE.md ({rel})")
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content if stored.name == Path(rel).name + ".gz" else raw)
    return root


def live_replay(name: str, count: int) -> type:
    """A live source class registered as ``name``: the first ``count`` real sample bars,
    presented as a live feed (a stand-in for an exchange stream in paper-run tests)."""
    import gridkit
    from gridkit.testing import sample_bars

    class ReplayLive(gridkit.Source):
        """Real sample bars, presented as a live feed."""

        live = True

        def events(self) -> Any:
            yield from sample_bars()[:count]

    ReplayLive.name = name
    return ReplayLive


def with_sources(host: Any, plugin: str, *sources: type) -> Any:
    """``host`` with ``sources`` registered by a plugin named ``plugin``."""
    from gridkit import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_sources(register: Any) -> None:
            for cls in sources:
                register(cls)

    host.register(Plugin, plugin)
    return host

