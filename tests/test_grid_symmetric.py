"""The symmetric grid, re-centred when price or regime leaves it; and the dynamic example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gridkit import Bar, Cancel, Order
from gridkit.plugins.grids.symmetric import SymmetricGrid
from gridkit.runtime.context import Context, RunInfo
from gridkit.testing import GridStrategyContract, build

REPO = Path(__file__).resolve().parent.parent


def bar(ts: int, close: float) -> Bar:
    return Bar(ts, close, close, close, close, 1.0)


def started(**options: object) -> tuple[SymmetricGrid, Context, list[Order | Cancel]]:
    grid = build(SymmetricGrid, {"levels": 2, "spacing": 0.01, "qty": 1.0, "cooldown": 5,
                                 **options})
    ctx = Context(RunInfo("t", "backtest", "X/Y", 1e6))
    ctx.bar = bar(0, 100.0)
    ctx.index = 0
    return grid, ctx, list(grid.start(ctx))


def test_start_centres_the_grid_on_the_close() -> None:
    grid, _, actions = started()
    assert (grid.lower, grid.upper) == pytest.approx((98.0, 102.0))
    orders = [a for a in actions if isinstance(a, Order)]
    market = [o for o in orders if o.kind == "market"]
    # Four cells; the two above the price hold base (bought at market), sells at 101 and 102.
    assert len(market) == 1 and market[0].qty == 2.0 and market[0].side == "buy"
    limits = sorted((o.side, o.price) for o in orders if o.kind == "limit")
    assert limits == [("buy", 98.0), ("buy", 99.0), ("sell", 101.0), ("sell", 102.0)]


def test_recentres_when_price_leaves_after_the_cooldown() -> None:
    grid, ctx, _ = started()
    ctx.index, ctx.bar = 3, bar(3, 110.0)
    assert grid.on_bar(ctx) == ()  # still cooling down
    ctx.index, ctx.bar = 5, bar(5, 110.0)
    actions = list(grid.on_bar(ctx))
    cancels = [a for a in actions if isinstance(a, Cancel)]
    assert len(cancels) == 4  # every order of the old grid
    assert (grid.lower, grid.upper) == pytest.approx((107.8, 112.2))
    assert grid.recentres == 1
    # No fills happened, so the grid still holds 2 cells of base; the new grid needs 2: no trade.
    assert not [a for a in actions if isinstance(a, Order) and a.kind == "market"]


def test_recentres_on_regime_change_only_when_asked() -> None:
    grid, ctx, _ = started()
    ctx.index, ctx.bar, ctx.regime = 10, bar(10, 100.5), "TRENDING"
    assert grid.on_bar(ctx) and grid.recentres == 1
    still, ctx2, _ = started(recenter_on_regime=False)
    ctx2.index, ctx2.bar, ctx2.regime = 10, bar(10, 100.5), "TRENDING"
    assert still.on_bar(ctx2) == ()


def test_spacing_times_levels_must_stay_below_one() -> None:
    from gridkit import ConfigError
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline
    from gridkit.testing import sample_path

    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[strategy]
use = "symmetric"
levels = 10
spacing = 0.1
qty = 1
"""
    with pytest.raises(ConfigError, match=r"strategy\.spacing: levels\*spacing must stay below 1"):
        build_pipeline(parse_pipeline(text))


class TestSymmetricContract(GridStrategyContract):
    component_class = SymmetricGrid
    options = {"levels": 5, "spacing": 0.002, "qty": 0.05, "cooldown": 30}


def test_dynamic_example_runs_on_real_data() -> None:
    out = subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()", "run",
                          str(REPO / "examples" / "dynamic.toml"), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    strategy = s["components"]["strategy"]
    assert strategy["recentres"] > 5 and strategy["round_trips"] > 100
    attention = s["components"]["attention[0]"]
    # 1,000 real trades end the learning phase (with no attention module proposing anything,
    # the shadow book would run the same parameters): the phase follows the trade count.
    assert attention["observed"] == s["bars_accepted"] and attention["proposal"] == {}
    assert attention["phase"] == ("shadow" if attention["real_trades"] >= 1000
                                  else "learning")
    assert set(attention["features"]) == {"rsi", "volatility", "volume-ratio"}
    assert s["regime"] in {"RANGING", "TRENDING", "VOLATILE", "DORMANT"}
    assert s["final_cash"] >= 0 and s["final_base"] >= 0
