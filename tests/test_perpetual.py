"""Perpetuals on the real XRP USDT-M data: hedge mode, liquidation, margin."""

from __future__ import annotations

import math
from pathlib import Path

import gridkit
from gridkit.runtime.account import LINEAR, Account, Position

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _pipeline(tmp_path: Path, **changes: str) -> Path:
    text = (EXAMPLES / "perpetual.toml").read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    (tmp_path / "p.toml").write_text(text)
    return tmp_path / "p.toml"


def test_hedge_mode_keeps_a_long_and_a_short_position(tmp_path: Path) -> None:
    s = gridkit.run(_pipeline(tmp_path, **{"leverage = 3": 'leverage = 3\n'
                                           'position_mode = "hedge"'}))
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert s["orders_rejected"] == 0
    lane = s["symbols"]["XRP/USDT:USDT"]
    assert set(lane["hedge"]) == {"long", "short"}
    assert lane["hedge"]["long"] >= 0 >= lane["hedge"]["short"]
    # The neutral grid's upper cells sold short on the short side: both sides traded.
    assert s["sell_fills"] > 0 and s["buy_fills"] > 0


def test_a_long_at_high_leverage_is_liquidated_and_the_run_halts(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, **{"capital = 1000": "capital = 200",
                                  "leverage = 3": "leverage = 20",
                                  "qty = 100 ": "qty = 330 ",
                                  'direction = "neutral"': 'direction = "long"',
                                  "limit = 0.3": "limit = 0.99"})
    s = gridkit.run(path)
    assert s["halted"] is not None and s["halted"].startswith("liquidated: XRP/USDT:USDT")
    lane = s["symbols"]["XRP/USDT:USDT"]
    assert lane["position"] == 0.0 and s["open_orders"] == 0
    assert s["unreconciled_orders"] == []
    # Cross margin, one position: at the liquidation price the margin balance equals the
    # maintenance margin, which the clearance takes: nothing is left.
    assert abs(s["final_equity"]) < 1e-6


def test_liquidation_price_is_where_margin_balance_meets_maintenance() -> None:
    acct = Account(1000.0)
    pos = acct.add(Position("X", LINEAR, leverage=10, mmr=0.01))
    from gridkit import Fill

    acct.apply(Fill("1", 0, "buy", 5000.0, 1.0, 0.0), "X")
    acct.mark(pos, 1.0)
    assert math.isnan(acct.liquidation(pos, 0.9))  # not reached at 0.9
    lp = acct.liquidation(pos, 0.0)
    # wallet + qty*(lp - entry) == mmr * qty * lp
    assert math.isclose(1000.0 + 5000.0 * (lp - 1.0), 0.01 * 5000.0 * lp, rel_tol=1e-12)
    qty, fee = acct.liquidate(pos, lp)
    assert qty == 5000.0 and pos.qty == 0.0
    assert math.isclose(acct.cash, 0.0, abs_tol=1e-9) and math.isclose(fee, 0.01 * 5000 * lp)


def test_hedge_orders_need_a_position_side(tmp_path: Path) -> None:
    from gridkit.plugins.executors import SimulatedExecutor
    from gridkit.runtime.context import Context, RunInfo
    from gridkit.testing import build

    acct = Account(1000.0)
    long = acct.add(Position("X", LINEAR, "long", leverage=5))
    acct.add(Position("X", LINEAR, "short", leverage=5))
    ctx = Context(RunInfo("t", "backtest", "X", 1000.0), acct, symbol="X", position=long)
    long.price = 1.0
    ex = build(SimulatedExecutor, {})
    assert ex.submit(ctx.order("buy", 10.0, 1.0), ctx) == (
        "hedge mode: the order needs position_side 'long' or 'short'")
    assert ex.submit(ctx.order("sell", 10.0, 1.0, position_side="long", reduce_only=True),
                     ctx) == "reduce-only order would open or grow the position"
    assert ex.submit(ctx.order("sell", 10.0, 1.0, position_side="short"), ctx) is None
