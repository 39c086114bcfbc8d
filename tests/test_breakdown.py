"""Per-regime and per-phase figures of a stored run (``gridkit.runtime.breakdown``), read from
the journal's regime and phase changes, and funding booked in backtests, on real data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import pytest

import gridkit
from gridkit import hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.runtime.breakdown import NO_LABEL, phase_changes, regime_changes, split
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Regimes(gridkit.Monitor):
    """Records each accepted bar's time and the regime the lane was in when it came (tests)."""

    name = "test-regimes"
    seen: ClassVar[list[tuple[int, str | None]]] = []
    _before: str | None = None

    def on_event(self, ctx: gridkit.Context) -> None:
        Regimes.seen.append((ctx.event.ts, self._before))
        self._before = ctx.regime


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(Regimes)

    gridkit_host.register(Plugin, "test-regimes-plugin")
    Regimes.seen = []
    return gridkit_host


def example(name: str) -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / name).read_text())  # (its paths: from EXAMPLES)


def stored(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    marks = conn.execute("SELECT ts, close, base, equity, symbol FROM equity ORDER BY rowid"
                         ).fetchall()
    fills = conn.execute("SELECT ts, side, price, qty, fee, symbol FROM fills ORDER BY rowid"
                         ).fetchall()
    return marks, fills


def test_the_selectors_profit_splits_by_regime_and_phase(host: PluginHost,
                                                          tmp_path: Path) -> None:
    """Each bar is counted under the regime in force when it came (as a monitor saw it), the
    regimes' profits add up to the run's, and the phases' too."""
    data = example("selector.toml")
    data["attention"][2].update(learn_trades=100, shadow_trades=40)
    data["monitors"] = [{"use": "test-regimes"}]
    db = tmp_path / "runs.db"
    s = run_pipeline(build_pipeline(pipeline_from_data(data, "<t>", EXAMPLES), host,
                                    store_path=str(db)))
    with sqlite3.connect(db) as conn:
        marks, fills = stored(conn)
        regimes, phases = regime_changes(conn, 1), phase_changes(conn, 1)
    by_regime = split(marks, fills, regimes, s["capital"])
    by_phase = split(marks, fills, {"": phases}, s["capital"])
    expected: dict[str, int] = {}
    for _, label in Regimes.seen:
        expected[label or NO_LABEL] = expected.get(label or NO_LABEL, 0) + 1
    assert {r["label"]: r["bars"] for r in by_regime} == expected
    assert len(expected) >= 3, "the run proves nothing unless it went through regimes"
    total = s["final_equity"] - s["capital"]
    for rows in (by_regime, by_phase):
        assert sum(r["profit"] for r in rows) == pytest.approx(total, abs=1e-6)
        assert sum(r["fills"] for r in rows) == s["buy_fills"] + s["sell_fills"]
        assert sum(r["fees"] for r in rows) == pytest.approx(s["fees_paid"], rel=1e-9)
        assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert [r["label"] for r in by_phase][:2] == ["learning", "shadow"]
    assert len(phases) >= 3
    pytest.importorskip("plotly")
    from gridkit.runtime.report import write_report

    page = tmp_path / "report.html"
    wrote = write_report(db, None, page)
    text = page.read_text()
    assert "<h2>By regime</h2>" in text and "<h2>By phase</h2>" in text
    assert "Profit by regime" in text and "Profit by phase" in text
    assert wrote["traces"] >= 9  # equity, drawdown, close, buys, sells, position, fees, 2 bars


def test_a_perpetual_backtest_journals_the_funding_it_books(tmp_path: Path) -> None:
    data = example("perpetual.toml")
    db = tmp_path / "runs.db"
    s = run_pipeline(build_pipeline(pipeline_from_data(data, "<t>", EXAMPLES),
                                    store_path=str(db)))
    with sqlite3.connect(db) as conn:
        paid = [json.loads(d) for (d,) in conn.execute(
            "SELECT data FROM journal WHERE kind = 'FundingPaid' ORDER BY rowid")]
    assert paid and {p["symbol"] for p in paid} == {s["symbol"]}
    assert -sum(p["amount"] for p in paid) == pytest.approx(s["funding_paid"], rel=1e-12)
