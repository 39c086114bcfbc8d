"""The static grid (DESIGN.md §7) and the bar fill model (§6), checked against a reference model."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from gridkit import Bar
from gridkit.plugins.grids.cells import grid_lines
from gridkit.plugins.grids.static import StaticGrid
from gridkit.testing import GridStrategyContract, run_toml, sample_bars, sample_path


def reference_static(bars: list[Bar], lower: float, upper: float, n: int, qty: float,
                     mode: str, maker: float, taker: float, capital: float) -> dict:
    """DESIGN.md §6 + §7 written as plainly as possible: every live order checked every bar.

    Independent of the engine: no heaps, no executor, no ledger. Returns the fills (per bar) and
    the final balances.
    """
    lines = [lower + i * (upper - lower) / n for i in range(n + 1)] if mode == "arithmetic" else \
        [lower * (upper / lower) ** (i / n) for i in range(n + 1)]
    c0 = bars[0].close
    holding = [lines[i] >= c0 for i in range(n)]
    # cell -> (side, price); decided on bar 0, live from bar 1
    pending = {i: ("sell", lines[i + 1]) if holding[i] else ("buy", lines[i]) for i in range(n)}
    market_qty = qty * sum(holding)
    live: dict[int, tuple[str, float]] = {}
    cash, base = capital, 0.0
    fills = []
    for b in bars[1:]:
        if market_qty:
            fee = b.open * market_qty * taker
            cash -= b.open * market_qty + fee
            base += market_qty
            fills.append((b.ts, "buy", b.open, market_qty))
            market_qty = 0.0
        live.update(pending)
        pending = {}
        for i, (side, price) in list(live.items()):
            hit = b.low <= price if side == "buy" else b.high >= price
            if not hit:
                continue
            fee = price * qty * maker
            if side == "buy":
                cash -= price * qty + fee
                base += qty
                pending[i] = ("sell", lines[i + 1])
            else:
                cash += price * qty - fee
                base -= qty
                pending[i] = ("buy", lines[i])
            del live[i]
            fills.append((b.ts, side, price, qty))
    return {"fills": fills, "cash": cash, "base": base}


def engine_fills(summary_db: str) -> list[tuple]:
    import sqlite3

    conn = sqlite3.connect(summary_db)
    rows = conn.execute("SELECT ts, side, price, qty FROM fills ORDER BY rowid").fetchall()
    conn.close()
    return rows


def pipeline(path: Path | str, lower: float, upper: float, grids: int, qty: float,
             mode: str = "arithmetic", capital: float = 1_000_000.0, extra: str = "") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
capital = {capital}
[source]
use = "freqtrade-json"
path = "{Path(path).as_posix()}"
[strategy]
use = "static"
lower = {lower}
upper = {upper}
grids = {grids}
qty = {qty}
mode = "{mode}"
[executor]
use = "simulated"
maker_fee = 0.001
taker_fee = 0.002
{extra}
"""


@pytest.mark.parametrize("mode", ["arithmetic", "geometric"])
def test_engine_matches_reference_fill_for_fill_on_real_data(btc_1m: Path, tmp_path: Path,
                                                             mode: str) -> None:
    rows = json.loads(btc_1m.read_text())
    bars = [Bar(int(r[0]), *map(float, r[1:6])) for r in rows]
    db = str(tmp_path / "run.db")
    summary = run_toml(pipeline(btc_1m, 40000, 60000, 40, 0.01, mode), db=db)
    ref = reference_static(bars, 40000, 60000, 40, 0.01, mode, 0.001, 0.002, 1_000_000.0)

    got = engine_fills(db)
    assert len(got) > 500, "the crash month should trade the grid a lot"
    # Same fills on the same bars (order within a bar is not part of the model).
    assert Counter(got) == Counter(ref["fills"])
    assert summary["buy_fills"] + summary["sell_fills"] == len(ref["fills"])
    assert summary["final_cash"] == pytest.approx(ref["cash"], rel=1e-12)
    assert summary["final_base"] == pytest.approx(ref["base"], abs=1e-9)
    assert summary["orders_rejected"] == 0


def test_round_trips_earn_the_line_spacing_less_both_fees(btc_1m: Path) -> None:
    lower, upper, n, qty = 45000.0, 60000.0, 30, 0.01
    summary = run_toml(pipeline(btc_1m, lower, upper, n, qty))
    stats = summary["components"]["strategy"]
    step = (upper - lower) / n
    assert stats["round_trips"] > 100
    # Every round trip buys at L_i and sells at L_{i+1}: qty*step less two maker fees.
    # Fees differ by line, so bound them by the grid's range.
    gross = stats["round_trips"] * qty * step
    fee_lo = stats["round_trips"] * qty * (2 * lower + step) * 0.001
    fee_hi = stats["round_trips"] * qty * (2 * upper) * 0.001
    assert gross - fee_hi <= stats["grid_profit"] <= gross - fee_lo


def test_start_state_and_market_order() -> None:
    bars = sample_bars()
    c0 = bars[0].close  # 56813.98
    summary = run_toml(pipeline("{sample}", 50000, 60000, 10, 0.1))
    lines = grid_lines(50000, 60000, 10, "arithmetic")
    holding = sum(1 for i in range(10) if lines[i] >= c0)
    assert holding == 3  # lines 57000, 58000, 59000
    # 10 cell orders + 1 market buy on bar 0; the market buy fills at bar 1's open.
    assert summary["buy_fills"] >= 1
    assert summary["orders_placed"] >= 11


def test_market_buy_fills_at_next_open_with_taker_fee(tmp_path: Path) -> None:
    bars = sample_bars()[:3]
    db = str(tmp_path / "r.db")
    run_toml(pipeline("{sample}", 50000, 60000, 10, 0.1), db=db)
    import sqlite3

    conn = sqlite3.connect(db)
    first = conn.execute("SELECT ts, side, price, qty, fee, liquidity FROM fills "
                         "ORDER BY rowid LIMIT 1").fetchone()
    assert first[:4] == (bars[1].ts, "buy", bars[1].open, pytest.approx(0.3))
    assert first[4] == pytest.approx(bars[1].open * 0.3 * 0.002)
    assert first[5] == "taker"


def test_geometric_lines() -> None:
    lines = grid_lines(100.0, 400.0, 2, "geometric")
    assert lines == pytest.approx([100.0, 200.0, 400.0])
    assert grid_lines(100.0, 200.0, 4, "arithmetic") == [100.0, 125.0, 150.0, 175.0, 200.0]


@pytest.mark.parametrize(("options", "message"), [
    ("lower = 60000\nupper = 50000\ngrids = 10\nqty = 1", "strategy.lower: must be below upper"),
    ("lower = 50000\nupper = 60000\ngrids = 1\nqty = 1", "strategy.grids: must be >= 2, got 1"),
    ("lower = 50000\nupper = 60000\ngrids = 'ten'\nqty = 1", "strategy.grids: expected int"),
    ("lower = -5\nupper = 60000\ngrids = 10\nqty = 1", "strategy.lower: must be > 0"),
    ("lower = 1\nupper = 2\ngrids = 10\nqty = 1\nmode = 'log'", "strategy.mode: expected one of"),
])
def test_bad_options_are_reported_with_their_path(options: str, message: str) -> None:
    from gridkit import ConfigError
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{{sample}}"
[strategy]
use = "static"
{options}
""".replace("{sample}", sample_path().as_posix())
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    assert message in str(err.value)


def test_no_level_trades_twice_in_one_bar(btc_1m: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "run.db")
    run_toml(pipeline(btc_1m, 30000, 60000, 60, 0.01), db=db)
    import sqlite3

    conn = sqlite3.connect(db)
    per_bar_cell = conn.execute(
        "SELECT ts, tag, COUNT(*) FROM fills WHERE tag >= 0 GROUP BY ts, tag HAVING COUNT(*) > 1"
    ).fetchall()
    assert per_bar_cell == []


def test_insufficient_capital_parks_cells_and_never_overdraws() -> None:
    summary = run_toml(pipeline("{sample}", 50000, 60000, 20, 0.05, capital=20000))
    assert summary["orders_rejected"] > 0
    assert any("insufficient cash" in k for k in summary["rejected_by"])
    assert summary["final_cash"] >= -1e-6
    assert summary["final_base"] >= -1e-12
    # The executor refused them for cash alone, and the grid kept trading with what it had.
    assert set(summary["rejected_by"]) == {"simulated: insufficient cash"}
    assert summary["buy_fills"] > 0 and summary["unreconciled_orders"] == []


class TestStaticContract(GridStrategyContract):
    component_class = StaticGrid
    options = {"lower": 50000.0, "upper": 58000.0, "grids": 16, "qty": 0.05}


class TestStaticGeometricContract(GridStrategyContract):
    component_class = StaticGrid
    options = {"lower": 50000.0, "upper": 58000.0, "grids": 16, "qty": 0.05, "mode": "geometric"}


def test_equity_is_cash_plus_base_at_close(btc_1m: Path) -> None:
    rows = json.loads(btc_1m.read_text())
    summary = run_toml(pipeline(btc_1m, 45000, 60000, 30, 0.01))
    last_close = float(rows[-1][4])
    assert summary["final_price"] == last_close
    assert math.isclose(summary["final_equity"],
                        summary["final_cash"] + summary["final_base"] * last_close)


def test_a_spot_cell_with_nothing_left_to_sell_is_parked_not_sent() -> None:
    """A sell the position cannot cover at all (the base went to other cells' sells) is not
    sent as an order of quantity 0: the cell waits, parked, for the grid's next fill."""
    from gridkit import Bar
    from gridkit.plugins.grids.cells import GridCells
    from gridkit.testing import context

    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))  # holds no base
    cells = GridCells([90.0, 95.0, 100.0, 105.0], 1.0)
    cells.state[2] = cells.HOLDING
    assert cells.order_for(2, ctx) is None
    assert 2 in cells.parked and cells.order_of[2] is None
    assert cells.order_for(0, ctx).side == "buy"  # an EMPTY cell's buy is unaffected
