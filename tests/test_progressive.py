"""Progressive attention's phases on real BTC/USDT 5-minute bars: learning changes nothing, the
shadow book trades exactly as the real engine would, active changes are capped and gradual,
and a worse active book is rolled back."""

from __future__ import annotations

import gzip
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gridkit
from gridkit import Bar
from gridkit.core.plugins import PluginHost
from gridkit.plugins.attention import Progressive
from gridkit.plugins.grids.static import StaticGrid
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.runtime.shadow import BookScore, ShadowBook
from gridkit.testing import build, context
from helpers import REPO

BTC_5M = REPO / "examples" / "data" / "BTC_USDT-5m.json.gz"


def btc_bars(n: int | None = None) -> list[Bar]:
    rows = json.loads(gzip.decompress(BTC_5M.read_bytes()))
    return [Bar(int(r[0]), *map(float, r[1:6])) for r in rows[:n]]


STATIC = {"lower": 50_000, "upper": 60_000, "grids": 20, "qty": 0.01}


def test_a_shadow_book_trades_exactly_as_the_engine_does() -> None:
    """The same static grid, once through the engine (simulated executor, 0.1 % fees) and
    once on a shadow book stepped by hand: the same fills, cash, base and realized profit."""
    bars = btc_bars(6000)
    text = f"""
[pipeline]
name = "real"
symbol = "BTC/USDT"
capital = 10000
end = "{bars[-1].ts}"
[source]
use = "freqtrade-json"
path = "{BTC_5M.as_posix()}"
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 20
qty = 0.01
"""
    p = build_pipeline(parse_pipeline(text))
    summary = run_pipeline(p)
    lane = context(bar=bars[0])
    book = ShadowBook(pickle.dumps(build(StaticGrid, STATIC)), lane, 0.001, 0.001)
    for i, b in enumerate(bars):
        book.step(b, i, {}, None, {}, {})
    acct = book.ctx.account
    assert summary["bars_accepted"] == len(bars)
    assert (acct.buy_fills, acct.sell_fills) == (summary["buy_fills"], summary["sell_fills"])
    assert acct.buy_fills > 50
    assert acct.cash == pytest.approx(summary["final_cash"], rel=1e-12)
    assert book.ctx.position.qty == pytest.approx(summary["final_base"], rel=1e-12)
    assert acct.realized == pytest.approx(summary["realized_profit"], rel=1e-12)


@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(0, 2), st.floats(-300, 300)),
                min_size=1, max_size=60))
def test_book_score_matches_a_direct_count(steps: list[tuple[float, float, float]]) -> None:
    score = BookScore()
    realized, fees, equity = 0.0, 0.0, 1000.0
    score.update(realized, fees, equity)
    results, peak, worst = [], equity, 0.0
    for moved, paid, change in steps:
        realized += moved
        fees += paid
        equity = max(equity + change, 1.0)
        score.update(realized, fees, equity)
        if abs(moved) > paid + 1e-12:
            results.append(moved)
        peak = max(peak, equity)
        worst = max(worst, (peak - equity) / peak)
    wins = [r for r in results if r > 0]
    losses = [-r for r in results if r <= 0]
    assert score.trades == len(results) and score.wins == len(wins)
    assert score.max_dd == pytest.approx(worst, abs=1e-12)
    if losses and sum(losses) > 0:
        assert score.profit_factor == pytest.approx(sum(wins) / sum(losses))


class FixedProposal(gridkit.Attention):
    """Proposes the same multipliers on every event (a stand-in for regime attention)."""

    name = "test-fixed-proposal"
    values: dict[str, float] = {}
    seen: list[tuple[str, dict[str, float]]] = []

    def observe(self, ctx: Any) -> None:
        ctx.adjust.update(self.values)


class Spy(gridkit.Monitor):
    """Records the phase and what the strategy saw in ctx.adjust after each event."""

    name = "test-adjust-spy"
    log: list[tuple[int, dict[str, float]]] = []

    def on_event(self, ctx: Any) -> None:
        Spy.log.append((ctx.index, dict(ctx.adjust)))


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @gridkit.hookimpl
        def gridkit_register_attention(register: Any) -> None:
            register(FixedProposal)

        @staticmethod
        @gridkit.hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(Spy)

    gridkit_host.register(Plugin, "test-progressive")
    Spy.log = []
    return gridkit_host


SELECTOR = REPO / "examples" / "selector.toml"


def selector_text(progressive: str | None) -> str:
    """The selector example without its own attention and risk tables (a drawdown halt would
    stop the books these tests compare), with the test's proposal and ``progressive`` given
    these options (none at all with None), and the spy."""
    text = re.sub(r'\[\[(attention|risk)\]\]\nuse = "[a-z-]+"[^\[]*', "", SELECTOR.read_text())
    if progressive is not None:
        text = text.replace("[strategy]", '[[attention]]\nuse = "test-fixed-proposal"\n'
                            f'[[attention]]\nuse = "progressive"\n{progressive}\n[strategy]', 1)
    return text + '\n[[monitors]]\nuse = "test-adjust-spy"\n'


def attended(text: str, host: PluginHost, db: Path | None = None) -> Any:
    return build_pipeline(parse_pipeline(text, base_dir=SELECTOR.parent), host,
                          store_path=str(db) if db else None)


def run_attended(host: PluginHost, progressive: str, tmp_path: Path) -> dict[str, Any]:
    return run_pipeline(attended(selector_text(progressive), host))


def test_learning_and_shadow_change_nothing_the_strategy_sees(host: PluginHost,
                                                             tmp_path: Path) -> None:
    FixedProposal.values = {"RANGING:spacing": 2.0, "VOLATILE:spacing": 0.5}
    summary = run_attended(host, "learn_trades = 100\nshadow_trades = 1000000", tmp_path)
    stats = summary["components"]["attention[1]"]
    assert stats["phase"] == "shadow"
    assert stats["shadow"]["trades"] > 0, "the shadow book traded"
    assert all(seen == {} for _, seen in Spy.log), "the proposal never reached the strategy"
    plain = run_pipeline(attended(selector_text(None), host))
    for key in ("final_equity", "buy_fills", "sell_fills", "fees_paid"):
        assert summary[key] == plain[key], key


def test_active_changes_are_capped_and_ramp_up(host: PluginHost, tmp_path: Path) -> None:
    FixedProposal.values = {"RANGING:spacing": 2.0, "VOLATILE:spacing": 0.5}
    summary = run_attended(host, "learn_trades = 50\nshadow_trades = 20\nmargin = 10\n"
                                 "ramp_bars = 200", tmp_path)
    stats = summary["components"]["attention[1]"]
    assert stats["phase"] == "active", stats["last_comparison"]
    applied = [(i, a) for i, a in Spy.log if a]
    assert applied, "active applies the proposal"
    first = applied[0][0]
    for i, a in applied:
        ramp = min(1.0, (i - first + 1) / 200)
        assert a["RANGING:spacing"] == pytest.approx(1 + 0.3 * ramp)  # capped at +30 %
        assert a["VOLATILE:spacing"] == pytest.approx(1 - 0.3 * ramp)  # and at -30 %
    assert applied[-1][1]["RANGING:spacing"] == pytest.approx(1.3)


def score(trades: int, wins: int, gains: float, losses: float, dd: float) -> BookScore:
    got = BookScore()
    got.reset(0.0, 0.0, 1.0)
    got.trades, got.wins, got.gains, got.losses, got.max_dd = trades, wins, gains, losses, dd
    return got


class _Book:
    def __init__(self, s: BookScore) -> None:
        self.score = s


@pytest.mark.parametrize(("real", "base", "rolled"), [
    ((30, 15, 100.0, 100.0, 0.05), (30, 15, 130.0, 100.0, 0.05), True),   # pf 1.0 < 1.3 x 0.9
    ((30, 15, 120.0, 100.0, 0.05), (30, 15, 130.0, 100.0, 0.05), False),  # within the margin
    ((30, 15, 130.0, 100.0, 0.20), (30, 15, 130.0, 100.0, 0.05), True),   # drawdown + 0.15
    ((10, 5, 10.0, 100.0, 0.50), (30, 15, 130.0, 100.0, 0.05), False),    # window not full
])
def test_rollback_rule(real: tuple[Any, ...], base: tuple[Any, ...], rolled: bool) -> None:
    """Active: after shadow_trades real trades, the real book is rolled back when its profit
    factor is below the base shadow's x (1 - margin) or its drawdown above the shadow's +
    margin."""
    ctrl = build(Progressive, {"shadow_trades": 20, "margin": 0.1})
    changes: list[tuple[str, str]] = []
    ctx = context(bar=Bar(0, 1, 1, 1, 1, 1))
    ctx.phase_changed = lambda c, old, new: changes.append((old, new))
    ctrl.phase = "active"
    ctrl.real = score(*real)
    ctrl.shadow = _Book(score(*base))
    ctrl._strategy = pickle.dumps(build(StaticGrid, STATIC))
    ctrl._judge(ctx)
    assert (ctrl.rollbacks == 1) is rolled
    assert changes == ([("active", "shadow")] if rolled else [])


def test_promotion_rule() -> None:
    ctrl = build(Progressive, {"shadow_trades": 20, "margin": 0.1})
    changes: list[tuple[str, str]] = []
    ctx = context(bar=Bar(0, 1, 1, 1, 1, 1))
    ctx.phase_changed = lambda c, old, new: changes.append((old, new))
    ctrl._strategy = pickle.dumps(build(StaticGrid, STATIC))
    ctrl.phase = "shadow"
    ctrl.real = score(40, 20, 100.0, 100.0, 0.05)
    ctrl.shadow = _Book(score(20, 11, 120.0, 100.0, 0.10))  # better pf, win rate; dd + 0.05
    ctrl._judge(ctx)
    assert changes == [("shadow", "active")]
    ctrl.phase = "shadow"
    ctrl.shadow = _Book(score(20, 9, 120.0, 100.0, 0.05))  # a lower win rate: not promoted
    ctrl._judge(ctx)
    assert changes == [("shadow", "active")] and ctrl.phase == "shadow"


def test_a_nan_proposal_falls_back_to_the_base_and_says_so(host: PluginHost, tmp_path: Path,
                                                           caplog: Any) -> None:
    FixedProposal.values = {"RANGING:spacing": math.nan}
    summary = run_attended(host, "learn_trades = 0\nshadow_trades = 5\nmargin = 10",
                           tmp_path)
    stats = summary["components"]["attention[1]"]
    assert stats["fallbacks"] == summary["bars_accepted"]
    assert all(seen == {} for _, seen in Spy.log)
    assert sum("not finite" in r.message for r in caplog.records) == 1


def test_phase_and_counts_survive_a_resume(host: PluginHost, tmp_path: Path) -> None:
    import os
    import signal

    FixedProposal.values = {"RANGING:spacing": 1.2}
    text = selector_text("learn_trades = 50\nshadow_trades = 20\nmargin = 10")
    db = tmp_path / "p.db"
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 8192 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    def make() -> Any:
        return attended(text, host, db)

    straight = run_pipeline(attended(text, host))
    first = run_pipeline(make(), stop)
    assert first["status"] == "stopped"
    assert first["components"]["attention[1]"]["phase"] != "learning"  # a shadow book ran
    resumed = run_pipeline(make(), resume=True)
    # The shadow book, its window and the phase come back: the run ends as one straight run.
    assert resumed["components"]["attention[1]"] == straight["components"]["attention[1]"]
    for key in ("final_equity", "buy_fills", "sell_fills"):
        assert resumed[key] == straight[key], key


def test_options_out_of_range_are_refused() -> None:
    with pytest.raises(gridkit.ConfigError, match="shadow_trades"):
        build(Progressive, {"shadow_trades": 0})
    with pytest.raises(gridkit.ConfigError, match="max_influence"):
        build(Progressive, {"max_influence": -0.1})
