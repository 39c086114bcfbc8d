"""The ``regime-selector`` on real BTC/USDT 5-minute bars: selection, seed 002's adjustments,
and hand-overs that leave no orphaned order and no inventory no grid expects."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gridkit import Bar, Cancel, ConfigError, Order
from gridkit.plugins.grids.asymmetric import AsymmetricGrid
from gridkit.plugins.grids.disabled import DisabledGrid
from gridkit.plugins.grids.geometric import GeometricGrid
from gridkit.plugins.grids.selector import SEED_MAP, RegimeSelector
from gridkit.plugins.grids.symmetric import SymmetricGrid
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import build, context
from helpers import REPO

BTC_5M = REPO / "examples" / "data" / "BTC_USDT-5m.json.gz"
HEAD = f"""
[pipeline]
name = "selector-test"
symbol = "BTC/USDT"
capital = 10000
end = "{{end}}"
[source]
use = "freqtrade-json"
path = "{BTC_5M.as_posix()}"
[[features]]
use = "rsi"
period = 14
[[features]]
use = "volatility"
period = 30
[[features]]
use = "volume-ratio"
period = 30
[[regimes]]
use = "ranging"
[[regimes]]
use = "trending"
[[regimes]]
use = "volatile"
[[regimes]]
use = "dormant"
"""
# The example's map (examples/selector.toml), as written there.
_EXAMPLE = (REPO / "examples" / "selector.toml").read_text()
MAP = _EXAMPLE[_EXAMPLE.index("[strategy.map."):_EXAMPLE.index("[[", _EXAMPLE.index(
    "[strategy.map."))]


def pipeline_text(strategy: str, end: str = "2021-05-10") -> str:
    return HEAD.replace("{end}", end) + "[strategy]\n" + strategy


def run(text: str, tmp_path: Path) -> tuple[dict[str, Any], Any, Path]:
    db = tmp_path / "sel.db"
    p = build_pipeline(parse_pipeline(text, base_dir=tmp_path), store_path=str(db))
    return run_pipeline(p), p, db


def test_the_default_map_is_seed_000s_selection_matrix() -> None:
    sel = build(RegimeSelector, {"qty": 0.01})
    kinds = {label: type(g) for label, g in sel.protos.items() if label in SEED_MAP}
    assert kinds == {"RANGING": SymmetricGrid, "TRENDING": AsymmetricGrid,
                     "VOLATILE": GeometricGrid, "DORMANT": DisabledGrid}
    ranging = sel.protos["RANGING"].config
    assert (ranging.spacing, ranging.levels, ranging.qty) == (0.0015, 8, 0.01)
    trending = sel.protos["TRENDING"].config
    assert {trending.spacing_up, trending.spacing_down} == {0.002, 0.004}
    assert 3 <= trending.levels_down <= trending.levels_up <= 6
    volatile = sel.protos["VOLATILE"].config
    assert 0.003 <= volatile.spacing <= 0.005 and 3 <= volatile.levels <= 5
    assert volatile.growth > 1  # inverse distribution: steps widen away from the price


def test_a_map_naming_an_unknown_strategy_or_option_fails_with_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        build(RegimeSelector, {"qty": 0.01, "map": {
            "RANGING": {"use": "symetric", "spacing": 0.002, "levels": 4},
            "VOLATILE": {"use": "geometric", "spacing": 0.002, "levels": 4, "colour": "red"},
            "TRENDING": {"spacing": 0.002}}})
    text = str(err.value)
    assert "strategy.map.RANGING" in text and "symetric" in text
    assert "strategy.map.VOLATILE" in text and "colour" in text
    assert "strategy.map.TRENDING" in text and "use" in text


def test_gridkit_check_lists_a_bad_map_in_one_line_each(tmp_path: Path) -> None:
    text = pipeline_text('use = "regime-selector"\nqty = 0.01\n'
                         '[strategy.map.RANGING]\nuse = "nope"\n')
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text, base_dir=tmp_path))
    assert any("strategy.map.RANGING" in p and "nope" in p for p in err.value.problems)


def bar(close: float, ts: int = 0) -> Bar:
    return Bar(ts, close, close, close, close, 10.0)


def test_spacing_scales_with_sigma_over_its_baseline_clamped() -> None:
    sel = build(RegimeSelector, {"qty": 0.01, "vol_baseline": 0.001})
    ctx = context(bar=bar(50_000.0), features={"volatility": 0.002})
    assert sel.adjusted("RANGING", ctx)["spacing"] == pytest.approx(0.0015 * 2)
    ctx.features["volatility"] = 0.01  # 10x the baseline: clamped to vol_max = 3
    assert sel.adjusted("RANGING", ctx)["spacing"] == pytest.approx(0.0015 * 3)
    ctx.features["volatility"] = float("nan")  # not ready: no change
    assert "spacing" not in sel.adjusted("RANGING", ctx)


def test_a_wide_spread_widens_and_thins_the_grid_but_never_below_four_levels() -> None:
    sel = build(RegimeSelector, {"qty": 0.01, "vol_adjust": False, "spread": "spread-bps"})
    ctx = context(bar=bar(50_000.0), features={"spread-bps": 6.0})
    got = sel.adjusted("RANGING", ctx)
    assert got == {"spacing": pytest.approx(0.0015 * 1.5), "levels": 6}
    trending = sel.adjusted("TRENDING", ctx)
    assert trending["levels_up"] == 4 and trending["levels_down"] == 3  # 3 stays 3
    ctx.features["spread-bps"] = 5.0  # at the threshold: not above it
    assert sel.adjusted("RANGING", ctx) == {}


def test_low_volume_stands_aside_whatever_the_regime() -> None:
    sel = build(RegimeSelector, {"qty": 0.01})
    ctx = context(bar=bar(50_000.0), features={"volume-ratio": 0.2, "volatility": 0.001})
    ctx.regime = "RANGING"
    assert sel._target(ctx) == "(aside)"
    ctx.features["volume-ratio"] = 0.5
    assert sel._target(ctx) == "RANGING"
    ctx.regime = "LOW"  # a label the map does not name
    assert sel._target(ctx) == "(aside)"


def test_the_trending_grid_leans_with_the_recent_trend() -> None:
    sel = build(RegimeSelector, {"qty": 0.01, "vol_adjust": False, "trend_bars": 3})
    ctx = context(bar=bar(100.0))
    for close in (100.0, 101.0, 102.0, 103.0):
        ctx.bar = bar(close)
        sel._observe(ctx)
    assert sel.adjusted("TRENDING", ctx)["trend"] == "up"
    for close in (102.0, 101.0, 99.0):
        ctx.bar = bar(close)
        sel._observe(ctx)
    assert sel.adjusted("TRENDING", ctx)["trend"] == "down"


def open_counts(db: Path) -> tuple[list[int], set[str]]:
    """Orders open after each event, from the store's order rows; the ids open at the end."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ts, order_id, status FROM orders ORDER BY rowid").fetchall()
    live: set[str] = set()
    counts = []
    last = None
    for ts, oid, status in rows:
        if last is not None and ts != last:
            counts.append(len(live))
        last = ts
        if status in ("requested", "open", "partially_filled"):
            live.add(oid)
        elif status in ("filled", "cancelled", "rejected", "expired"):
            live.discard(oid)
    counts.append(len(live))
    return counts, live


def test_hand_overs_on_real_bars_leave_no_orphaned_order(tmp_path: Path) -> None:
    """Two weeks of 5-minute BTC bars: the regime changes many times; after every event the
    lane's open orders are at most the largest grid's cells (17 lines of the ranging grid),
    and at the end they are exactly the running grid's."""
    summary, p, db = run(pipeline_text('use = "regime-selector"\nqty = 0.004\nmin_bars = 24\n'
                                       + MAP), tmp_path)
    sel = p.lanes[0].strategy
    st = summary["components"]["strategy"]
    assert st["handovers"] >= 20, st
    assert {"RANGING", "TRENDING", "VOLATILE"} <= set(st["bars_by_regime"])
    assert summary["orders_rejected"] == 0, summary["rejected_by"]
    counts, live = open_counts(db)
    assert max(counts) <= 16 + 1  # one grid's cells (+ the hand-over's market order)
    assert live == sel.mine  # what is open is the running grid's, and all of it


def test_after_hand_overs_the_position_is_what_the_running_grid_holds(tmp_path: Path) -> None:
    """The inventory rule: each hand-over trades only the difference, so at the end the
    position equals the base the running grid's cells hold — nothing left over from earlier
    grids (a backtest's fees are in quote, so cells hold their exact quantity)."""
    for end in ("2021-05-03", "2021-05-06", "2021-05-10"):
        summary, p, _ = run(pipeline_text(
            'use = "regime-selector"\nqty = 0.004\nmin_bars = 24\n' + MAP, end), tmp_path)
        sel = p.lanes[0].strategy
        grid = sel.grid
        cells = getattr(grid, "cells", None)
        if cells is None:  # standing aside with "adopt": the position is kept, not checked
            continue
        held = sum(q for q, s in zip(cells.qtys, cells.state, strict=True) if s == cells.HOLDING)
        assert summary["final_base"] == pytest.approx(held, abs=1e-12), (end, sel.label)
        (tmp_path / "sel.db").unlink()


def test_flatten_closes_the_position_when_the_selector_stands_aside(tmp_path: Path) -> None:
    """``min_volume_ratio`` so high that the selector stands aside on most bars: with
    ``handover = "flatten"`` every stand-aside closes the position, with "adopt" it is kept."""
    text = ('use = "regime-selector"\nqty = 0.004\nmin_bars = 12\nmin_volume_ratio = 0.9\n'
            + MAP)
    adopt, pa, _ = run(pipeline_text(text, "2021-05-04"), tmp_path)
    (tmp_path / "sel.db").unlink()
    flat, pf, _ = run(pipeline_text('handover = "flatten"\n' + text, "2021-05-04"), tmp_path)
    assert pf.lanes[0].strategy.handovers == pa.lanes[0].strategy.handovers > 5
    if pf.lanes[0].strategy.label == "(aside)":
        assert flat["final_base"] == pytest.approx(0.0, abs=1e-12)
    assert flat["sell_fills"] > adopt["sell_fills"]


def test_the_selector_survives_a_resume_with_the_same_result(tmp_path: Path) -> None:
    """Stopped by SIGTERM part way and resumed: the selector's grids, hand-over state and
    inventory come back from the saved state, and the run ends as one run straight through."""
    import os
    import signal

    text = pipeline_text('use = "regime-selector"\nqty = 0.004\nmin_bars = 24\n' + MAP,
                         "2030-01-01")
    straight, _, _ = run(text, tmp_path)
    db = tmp_path / "r.db"
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 8192 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    build = lambda: build_pipeline(parse_pipeline(text, base_dir=tmp_path),  # noqa: E731
                                   store_path=str(db))
    first = run_pipeline(build(), stop)
    assert first["status"] == "stopped" and first["bars_seen"] < straight["bars_seen"]
    resumed = run_pipeline(build(), resume=True)
    for key in ("final_equity", "final_base", "buy_fills", "sell_fills", "bars_seen"):
        assert resumed[key] == straight[key], key
    assert resumed["components"]["strategy"] == straight["components"]["strategy"]


def test_orders_of_a_replaced_grid_are_cancelled_even_when_answered_this_event() -> None:
    """A fill's answer (the cell's next order) is queued before the strategy stage; a
    hand-over in the same event must cancel it too."""
    sel = build(RegimeSelector, {"qty": 0.01, "vol_adjust": False})
    ctx = context(bar=bar(50_000.0), features={"volume-ratio": 1.0})
    ctx.regime = "RANGING"
    first = sel.start(ctx)
    queued = next(a for a in first if isinstance(a, Order) and a.kind == "limit")
    ctx.regime = "VOLATILE"
    ctx.index += sel.config.min_bars
    out = sel.on_bar(ctx)
    cancelled = {a.order_id for a in out if isinstance(a, Cancel)}
    assert queued.id in cancelled
    assert all(not (isinstance(a, Cancel) and a.order_id not in cancelled) for a in out)


def test_attention_multipliers_reach_the_grid_being_laid() -> None:
    sel = build(RegimeSelector, {"qty": 0.01, "vol_adjust": False})
    ctx = context(bar=bar(50_000.0))
    ctx.adjust.update({"RANGING:spacing": 1.2, "RANGING:levels": 0.5, "VOLATILE:spacing": 2.0})
    assert sel.adjusted("RANGING", ctx) == {"spacing": pytest.approx(0.0015 * 1.2), "levels": 4}
    assert sel.adjusted("VOLATILE", ctx) == {"spacing": pytest.approx(0.003 * 2.0)}


def test_a_map_naming_a_regime_no_rule_gives_is_refused(tmp_path: Path) -> None:
    text = pipeline_text('use = "regime-selector"\nqty = 0.01\n'
                         '[strategy.map.RANGNG]\nuse = "symmetric"\nspacing = 0.004\n'
                         'levels = 4\n')
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text, base_dir=tmp_path))
    assert err.value.problems == [
        "strategy.map.RANGNG: no regime rule of the pipeline labels bars 'RANGNG' (they give: "
        "DORMANT, RANGING, TRENDING, VOLATILE)"]
    bare = re.sub(r'\[\[regimes\]\]\nuse = "[a-z]+"\n', "", text)
    with pytest.raises(ConfigError, match="none: add"):
        build_pipeline(parse_pipeline(bare, base_dir=tmp_path))


def test_keep_hands_over_without_trading_inventory(tmp_path: Path) -> None:
    """``handover = "keep"``: no hand-over trades inventory (no market order of the selector's
    own), and on spot no sell the base held cannot cover is sent: those cells wait."""
    summary, p, db = run(pipeline_text('use = "regime-selector"\nqty = 0.004\nmin_bars = 24\n'
                                       'handover = "keep"\n' + MAP), tmp_path)
    sel = p.lanes[0].strategy
    st = summary["components"]["strategy"]
    assert st["handovers"] >= 20 and st["withheld"] > 0
    assert not any("insufficient base" in k for k in summary["rejected_by"]), \
        summary["rejected_by"]
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT order_id FROM orders WHERE status = 'requested' AND kind = 'market'")]
    # Every market order is a grid's own (symmetric's re-centring), none the selector's.
    assert not sel.trades and len(ids) < st["handovers"]


def test_a_map_entry_made_of_other_components_is_refused(tmp_path: Path) -> None:
    text = pipeline_text('use = "regime-selector"\nqty = 0.01\n'
                         '[strategy.map.RANGING]\nuse = "regime-selector"\n')
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text, base_dir=tmp_path))
    assert err.value.problems == ["strategy.map.RANGING: 'regime-selector' is made of other "
                                  "components; a map entry must be a grid of its own"]
