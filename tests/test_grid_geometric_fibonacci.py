"""The geometric and fibonacci grids on real data: their documented lines, the pairing of
DESIGN.md §7 (through GridCells, as static's), a clean end and the account identity."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import pytest

from gridkit import Bar, ConfigError, Fill, Order
from gridkit.plugins.grids.fibonacci import FIBONACCI_RATIOS, FibonacciGrid
from gridkit.plugins.grids.geometric import GeometricGrid
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.journal import OrderRequested
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import GridStrategyContract, StrategyRun, build, sample_path, step_strategy

CAPITAL = 1_000_000.0
FEES = {"maker_fee": 0.001, "taker_fee": 0.002}


@pytest.fixture(scope="module")
def btc_bars(data_dir: Path) -> list[Bar]:
    """The static tests' 1m BTC/USDT month (``btc_1m``: 2021-04-20 .. 05-20, with the crash)."""
    path = data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json"
    rows = json.loads(path.read_text())
    return [Bar(int(r[0]), *map(float, r[1:6])) for r in rows]


def geometric_run(bars: list[Bar], **options: object) -> StrategyRun:
    opts = {"spacing": 0.004, "growth": 1.5, "levels": 6, "qty": 0.01, **options}
    return step_strategy(GeometricGrid, bars, options=opts, capital=CAPITAL, fill_options=FEES)


def fibonacci_run(bars: list[Bar], **options: object) -> StrategyRun:
    opts = {"lower": 40000.0, "upper": 62000.0, "qty": 0.01, **options}
    return step_strategy(FibonacciGrid, bars, options=opts, capital=CAPITAL, fill_options=FEES)


# --- the lines ---------------------------------------------------------------------------------


def test_geometric_lines_are_the_documented_formula(btc_bars: list[Bar]) -> None:
    spacing, growth, levels = 0.004, 1.5, 6
    run = geometric_run(btc_bars[:2000], spacing=spacing, growth=growth, levels=levels)
    grid = run.strategy
    c = btc_bars[0].close
    assert grid.centre == c
    # o_k = spacing * (growth**k - 1) / (growth - 1): the closed form of the documented sum.
    o = [spacing * (growth ** k - 1) / (growth - 1) for k in range(1, levels + 1)]
    want = [c * (1 - x) for x in reversed(o)] + [c] + [c * (1 + x) for x in o]
    assert grid.cells.lines == pytest.approx(want, rel=1e-13)
    assert len(grid.cells.lines) == 2 * levels + 1 and grid.cells.n == 2 * levels
    # Step k on either side is c * spacing * growth**(k-1).
    lines = grid.cells.lines
    up = [lines[levels + k] - lines[levels + k - 1] for k in range(1, levels + 1)]
    down = [lines[levels - k + 1] - lines[levels - k] for k in range(1, levels + 1)]
    for steps in (up, down):
        assert steps == pytest.approx([c * spacing * growth ** (k - 1)
                                       for k in range(1, levels + 1)], rel=1e-9)
        assert all(b > a for a, b in pairwise(steps)), \
            "spacing must grow away from the centre"


def test_geometric_growth_one_is_an_even_grid() -> None:
    from gridkit.plugins.grids.geometric import geometric_lines

    assert geometric_lines(100.0, 0.01, 1.0, 2) == pytest.approx([98.0, 99.0, 100.0, 101.0,
                                                                   102.0])


def test_fibonacci_ratios_map_to_prices_exactly() -> None:
    lower, upper = 46000.0, 58000.0
    grid = build(FibonacciGrid, {"lower": lower, "upper": upper, "qty": 0.01})
    assert list(FIBONACCI_RATIOS) == [0, 0.236, 0.382, 0.5, 0.618, 0.786, 1]
    assert grid.cells.lines == [lower + r * (upper - lower) for r in FIBONACCI_RATIOS]
    assert grid.cells.lines[0] == lower and grid.cells.lines[-1] == upper
    assert grid.cells.lines[3] == 52000.0  # the 50 % line is the middle of the range
    assert [(x - lower) / (upper - lower) for x in grid.cells.lines] == \
        pytest.approx(list(FIBONACCI_RATIOS), abs=1e-15)
    custom = build(FibonacciGrid, {"lower": 100.0, "upper": 200.0, "qty": 1.0,
                                   "ratios": [0.0, 0.382, 0.618, 1.0]})
    assert custom.cells.lines == [100.0, 138.2, 161.8, 200.0]


# --- the start, the pairing and the end --------------------------------------------------------


def check_start(run: StrategyRun, lines: list[float], c0: float, qty: float) -> None:
    """Bar 0's orders: one limit per cell (a sell at the upper line of the cells at or above
    c0, a buy at the lower line of the others) and one market buy of the held cells' base."""
    t0 = run.records[0].ts
    first = [r.order for r in run.records if type(r) is OrderRequested and r.ts == t0]
    market = [o for o in first if o.kind == "market"]
    held = sum(1 for i in range(len(lines) - 1) if lines[i] >= c0)
    assert held > 0
    assert len(market) == 1 and market[0].side == "buy"
    assert market[0].qty == pytest.approx(held * qty)
    limits = sorted((o.tag, o.side, o.price) for o in first if o.kind == "limit")
    assert limits == [(i, "sell", lines[i + 1]) if lines[i] >= c0 else (i, "buy", lines[i])
                      for i in range(len(lines) - 1)]


def check_pairing(run: StrategyRun, lines: list[float]) -> int:
    """Every completed fill of a cell's order is followed by that cell's opposite order at the
    paired line: a buy at L_i by a sell at L_{i+1}, a sell at L_{i+1} by a buy at L_i."""
    waiting: dict[int, tuple[str, float]] = {}
    paired = 0
    for r in run.records:
        if type(r) is Fill and r.tag >= 0 and r.remaining == 0:
            i = r.tag
            assert r.price == (lines[i] if r.side == "buy" else lines[i + 1])
            assert i not in waiting, f"cell {i} filled twice without a follow-up"
            waiting[i] = ("sell", lines[i + 1]) if r.side == "buy" else ("buy", lines[i])
        elif type(r) is OrderRequested and r.order.kind == "limit" and r.order.tag in waiting:
            order: Order = r.order
            assert (order.side, order.price) == waiting.pop(order.tag)
            paired += 1
    assert not waiting, "a fill was never followed by its paired order"
    return paired


def check_account(run: StrategyRun) -> None:
    """No order lost, nothing refused, and equity - capital = realized + unrealized - fees,
    from the fills alone and as the account books it."""
    s = run.summary
    assert s["status"] == "finished"
    assert s["unreconciled_orders"] == [] and s["orders_rejected"] == 0
    fills = run.fills
    assert s["buy_fills"] + s["sell_fills"] == len(fills)
    base = sum(f.qty if f.side == "buy" else -f.qty for f in fills)
    flow = sum(f.price * f.qty * (1 if f.side == "sell" else -1) for f in fills)
    fees = sum(f.fee for f in fills)
    price = s["final_price"]
    assert s["final_base"] == pytest.approx(base, abs=1e-9)
    assert fees == pytest.approx(s["fees_paid"], rel=1e-12)
    # From the fills: the cash that came and went, the base still held at the last close.
    assert s["final_equity"] - s["capital"] == pytest.approx(flow + base * price - fees,
                                                             rel=1e-9, abs=1e-6)
    # As booked: realized (net of fees) + unrealized against the fee-inclusive average cost.
    lane = s["symbols"]["BTC/USDT"]
    unrealized = (price - lane["avg_price"]) * lane["position"]
    assert s["final_equity"] - s["capital"] == pytest.approx(s["realized_profit"] + unrealized,
                                                             rel=1e-9, abs=1e-6)
    assert math.isclose(s["final_equity"], s["final_cash"] + s["final_base"] * price,
                        rel_tol=1e-12)


def test_geometric_on_the_real_month(btc_bars: list[Bar]) -> None:
    run = geometric_run(btc_bars)
    grid = run.strategy
    check_start(run, grid.cells.lines, btc_bars[0].close, 0.01)
    paired = check_pairing(run, grid.cells.lines)
    assert paired > 100, "a month of 1m BTC should cross a 0.4 % grid often"
    stats = run.summary["components"]["strategy"]
    assert stats["round_trips"] > 50 and stats["centre"] == btc_bars[0].close
    check_account(run)


def test_fibonacci_on_the_real_month(btc_bars: list[Bar]) -> None:
    run = fibonacci_run(btc_bars)
    grid = run.strategy
    check_start(run, grid.cells.lines, btc_bars[0].close, 0.01)
    paired = check_pairing(run, grid.cells.lines)
    assert paired > 10
    assert run.summary["components"]["strategy"]["round_trips"] > 5
    check_account(run)


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("use", "options", "message"), [
    ("geometric", "spacing = 0.1\ngrowth = 2.0\nlevels = 4\nqty = 1",
     "strategy.spacing: the lowest line must stay above 0"),
    ("geometric", "spacing = 0.01\ngrowth = 0.9\nlevels = 4\nqty = 1",
     "strategy.growth: must be >= 1, got 0.9"),
    ("geometric", "spacing = 0.01\nlevels = 0\nqty = 1", "strategy.levels: must be >= 1, got 0"),
    ("geometric", "spacing = -0.01\nlevels = 3\nqty = 1", "strategy.spacing: must be > 0"),
    ("geometric", "spacing = 0.01\nlevels = 3", "strategy.qty"),
    ("fibonacci", "lower = 60000\nupper = 50000\nqty = 1", "strategy.lower: must be below upper"),
    ("fibonacci", "lower = 50000\nupper = 60000\nqty = 1\nratios = [0.0, 0.618, 0.5, 1.0]",
     "strategy.ratios: must be strictly increasing"),
    ("fibonacci", "lower = 50000\nupper = 60000\nqty = 1\nratios = [0.0, 1.5]",
     "strategy.ratios: every ratio must be in [0, 1], got 1.5"),
    ("fibonacci", "lower = 50000\nupper = 60000\nqty = 1\nratios = [0.5]",
     "strategy.ratios: needs at least 2 ratios, got 1"),
])
def test_bad_options_are_refused_with_one_line(use: str, options: str, message: str) -> None:
    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[strategy]
use = "{use}"
{options}
"""
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    assert message in str(err.value)
    assert "\n" not in str(err.value).strip()


class TestGeometricContract(GridStrategyContract):
    component_class = GeometricGrid
    options = {"spacing": 0.002, "growth": 1.3, "levels": 6, "qty": 0.05}


class TestFibonacciContract(GridStrategyContract):
    component_class = FibonacciGrid
    options = {"lower": 50000.0, "upper": 58000.0, "qty": 0.05}


def test_geometric_preflight_checks_the_lines_around_the_first_close(btc_bars: list[Bar]
                                                                      ) -> None:
    from gridkit.runtime.context import Context, RunInfo

    grid = build(GeometricGrid, {"spacing": 0.004, "levels": 6, "qty": 0.01})
    ctx = Context(RunInfo("t", "backtest", "BTC/USDT", CAPITAL))
    ctx.bar = btc_bars[0]
    found = grid.preflight(ctx, 0.001, 0.002)
    # The narrowest step is the first one above the centre: exactly ``spacing``.
    assert ("info", "the narrowest grid step, 0.4000%, clears the round-trip fee 0.2000% by "
                    "0.2000%") in found
    assert not [line for level, line in found if level == "error"]
    tight = build(GeometricGrid, {"spacing": 0.001, "levels": 6, "qty": 0.01})
    assert [line for level, line in tight.preflight(ctx, 0.001, 0.002)
            if level == "error" and "does not clear the round-trip fee" in line]
