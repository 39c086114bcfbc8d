"""Paper and live runs commit the journal as it happens: order requests before they are sent,
reports as they arrive (DESIGN.md §11 rule 3), with the state to resume from."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import gridkit
from gridkit import hookimpl
from gridkit.core.plugins import PluginHost
from helpers import live_replay

ReplayLive = live_replay("replay-live", 600)


class Watcher(gridkit.Monitor):
    """Reads the store from another connection at every event, as a crash would leave it."""

    name = "watcher"
    db: Path
    seen: list[tuple[int, int, int]] = []

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.fills_before = 0

    def on_event(self, ctx: gridkit.Context) -> None:
        with sqlite3.connect(Watcher.db) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
            requested = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'requested'"
                                     ).fetchone()[0]
        Watcher.seen.append((stored, self.fills_before, requested))
        acct = ctx.account
        self.fills_before = acct.buy_fills + acct.sell_fills


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    """A host with this module's live source, monitor and executor registered."""

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_sources(register: Any) -> None:
            register(ReplayLive)

        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(Watcher)

        @staticmethod
        @hookimpl
        def gridkit_register_executors(register: Any) -> None:
            register(Flaky)

    gridkit_host.register(Plugin, "paper-test")
    return gridkit_host


def test_paper_run_commits_every_report_and_request(host: PluginHost, tmp_path: Path) -> None:
    Watcher.db = tmp_path / "paper.db"
    Watcher.seen = []
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    config = parse_pipeline("""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "replay-live"
[strategy]
use = "static"
lower = 55000
upper = 57000
grids = 10
qty = 0.01
[[monitors]]
use = "watcher"
""")
    summary = run_pipeline(build_pipeline(config, host,
                                          store_path=str(Watcher.db)))
    assert summary["status"] == "finished"
    assert summary["buy_fills"] + summary["sell_fills"] > 10
    # At every event, every fill of the earlier events was already committed: a crash at
    # any point loses no report.
    assert all(stored >= before for stored, before, _ in Watcher.seen)
    # The first orders were committed before the executor saw them: the monitor of the
    # first event already reads them.
    assert Watcher.seen[0][2] > 0
    with sqlite3.connect(Watcher.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM state").fetchone()[0] == 1


class Flaky(gridkit.Executor):
    """The simulated executor, whose process dies (KeyboardInterrupt) on one submit: the
    request is committed, the order never sent."""

    name = "flaky"
    die_at: int | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        from gridkit.plugins.executors import SimulatedExecutor

        self.inner = SimulatedExecutor()
        self.submits = 0

    def submit(self, order: gridkit.Order, ctx: gridkit.Context) -> str | None:
        self.submits += 1
        if self.submits == Flaky.die_at:
            raise KeyboardInterrupt
        return self.inner.submit(order, ctx)

    def cancel(self, order_id: str, ctx: gridkit.Context) -> str | None:
        return self.inner.cancel(order_id, ctx)

    def reports(self, event: Any, symbol: str) -> list[Any]:
        return self.inner.reports(event, symbol)

    def open_orders(self) -> list[gridkit.Order]:
        return self.inner.open_orders()


def test_orders_committed_but_never_sent_go_again_on_resume(host: PluginHost,
                                                           tmp_path: Path) -> None:
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = """
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 100000
[source]
use = "replay-live"
[strategy]
use = "static"
lower = 55000
upper = 57000
grids = 10
qty = 0.01
[executor]
use = "flaky"
"""
    db = str(tmp_path / "paper.db")
    Flaky.die_at = 5  # the fifth order of the grid's first batch
    with contextlib.suppress(KeyboardInterrupt):
        run_pipeline(build_pipeline(parse_pipeline(text), host, store_path=db))
    with sqlite3.connect(db) as conn:
        first = {r[0] for r in conn.execute("SELECT order_id FROM orders "
                                            "WHERE status = 'requested'")}
        requested = len(first)
        opened = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'open'").fetchone()[0]
    # The grid's first batch (one order per cell) was committed before its first order was
    # sent; the crash came in the middle of sending, before any acceptance was booked.
    assert requested >= 10 and opened == 0
    Flaky.die_at = None
    s = run_pipeline(build_pipeline(parse_pipeline(text), host, store_path=db),
                     resume=True)
    assert s["status"] == "finished" and s["resumed"]
    assert s["unreconciled_orders"] == [], s["rejected_by"]
    assert s["rejected_by"] == {}, s["rejected_by"]
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT order_id FROM orders WHERE status = 'open'")]
    assert len(ids) == len(set(ids))  # every order accepted exactly once: none doubled
    assert first <= set(ids)  # and none lost: those never sent went with their own ids


def test_a_paper_run_stops_on_a_preflight_error_before_any_order(host: PluginHost,
                                                                 tmp_path: Path) -> None:
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = """
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
capital = 1000
[source]
use = "replay-live"
[strategy]
use = "static"
lower = 55000
upper = 57000
grids = 10
qty = 0.01
"""
    db = str(tmp_path / "p.db")
    with pytest.raises(gridkit.ConfigError, match="pre-flight: BTC/USDT: the grid needs "
                                                   r"[0-9,.]+ of cash .* but the account has "
                                                   "1,000.00"):
        run_pipeline(build_pipeline(parse_pipeline(text), host, store_path=db))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "failed"
