"""The volatility-adjusted and trailing grids on real data: every rule of their docstrings, the
strategy contract, invariants under random paths, and bad options refused with one line."""

from __future__ import annotations

import json
import math
import sqlite3
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit import Bar, ConfigError, Fill
from gridkit.plugins.features.bar_set import Atr
from gridkit.plugins.features.volatility import Volatility
from gridkit.plugins.grids.cells import ShiftingCells, grid_lines
from gridkit.plugins.grids.trailing import TrailingGrid
from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid, clamp_spacing
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.journal import CancelRequested, OrderRequested
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import (
    GridStrategyContract,
    StrategyRun,
    build,
    columns_of,
    context,
    run_toml,
    sample_path,
    step_strategy,
)

CAPITAL = 1_000_000.0
FEES = {"maker_fee": 0.001, "taker_fee": 0.002}
ETH_ROWS = 7000  # what the slices of tests/data hold: the same bars with or without the full set


def load(path: Path, rows: int | None = None) -> list[Bar]:
    data = json.loads(path.read_text())[:rows]
    return [Bar(int(r[0]), *map(float, r[1:6])) for r in data]


@pytest.fixture(scope="module")
def btc_bars(btc_1m: Path) -> list[Bar]:
    """BTC/USDT 1m, 2021-04-20 .. 05-20: a fall from 56k to 30k (the 19 May crash)."""
    return load(btc_1m)


@pytest.fixture(scope="module")
def eth_bars(data_dir: Path) -> list[Bar]:
    """ETH/USDT 1m from 2021-04-20, its first 7,000 bars: a rise from 2,302 to above 2,600."""
    return load(data_dir / "ohlcv" / "tooyipjee-freqtrade" / "ETH_USDT-1m.json", ETH_ROWS)


def check_account(run: StrategyRun) -> None:
    s = run.summary
    assert s["status"] == "finished"
    assert s["unreconciled_orders"] == [] and s["orders_rejected"] == 0
    assert s["final_cash"] >= -1e-6 and s["final_base"] >= -1e-9
    assert math.isclose(s["final_equity"], s["final_cash"] + s["final_base"] * s["final_price"],
                        rel_tol=1e-12)


# === trailing ==================================================================================


def trailing_run(bars: list[Bar], **options: Any) -> StrategyRun:
    c0 = bars[0].close
    opts = {"lower": round(c0 * 0.97, 2), "upper": round(c0 * 1.03, 2), "grids": 10, "qty": 0.1,
            **options}
    return step_strategy(TrailingGrid, bars, options=opts, capital=CAPITAL, fill_options=FEES)


def shifts(run: StrategyRun) -> list[tuple[int, list[Any]]]:
    """The journal records of every bar after the first that cancelled an order: a shift
    (no fill ever cancels anything)."""
    by_ts: dict[int, list[Any]] = {}
    for r in run.records:
        if type(r) in (OrderRequested, CancelRequested):
            by_ts.setdefault(r.ts, []).append(r)
    t0 = run.records[0].ts
    return [(ts, recs) for ts, recs in by_ts.items()
            if ts != t0 and any(type(r) is CancelRequested for r in recs)]


def test_trailing_extended_lines_are_the_static_formula() -> None:
    for mode in ("arithmetic", "geometric"):
        grid = build(TrailingGrid, {"lower": 100.0, "upper": 200.0, "grids": 4, "qty": 1.0,
                                    "mode": mode})
        assert grid.cells.ordered_lines() == grid_lines(100.0, 200.0, 4, mode)
        assert [grid.line(j) for j in range(5)] == pytest.approx(grid_lines(100.0, 200.0, 4,
                                                                            mode), rel=1e-15)
    arith = build(TrailingGrid, {"lower": 100.0, "upper": 200.0, "grids": 4, "qty": 1.0})
    assert (arith.line(-1), arith.line(5), arith.line(9)) == (75.0, 225.0, 325.0)
    geo = build(TrailingGrid, {"lower": 100.0, "upper": 400.0, "grids": 2, "qty": 1.0,
                               "mode": "geometric"})
    assert (geo.line(-1), geo.line(3)) == pytest.approx((50.0, 800.0))


def test_trailing_up_on_real_data_moves_one_cell_per_shift(eth_bars: list[Bar]) -> None:
    run = trailing_run(eth_bars, trail="up")
    grid: TrailingGrid = run.strategy
    n, step = 10, grid._step
    closes = {b.ts: b.close for b in eth_bars}
    done = shifts(run)
    assert len(done) == grid.shifts_up > 10, "ETH rose ~15 %: a 0.6 % step grid must trail"
    top = grid.line(n)
    for k, (ts, recs) in enumerate(done):
        new_top = grid.line(n + k + 1)
        assert new_top == pytest.approx(top + step, rel=1e-12)  # the new top = old top + step
        assert closes[ts] > new_top  # triggered by a close above the line one step up
        cancels = [r for r in recs if type(r) is CancelRequested]
        orders = [r.order for r in recs if type(r) is OrderRequested]
        assert len(cancels) == 1  # the lowest cell's order
        # The cell that entered (index n + k) buys at the old top line: Binance's new buy.
        entered = [o for o in orders if o.tag == n + k]
        assert [(o.side, o.kind, o.price) for o in entered] == [("buy", "limit", top)]
        market = [o for o in orders if o.kind == "market"]
        assert market == [] or [(o.side, o.qty) for o in market] == [("sell", 0.1)]
        top = new_top
    assert grid.cells.top == pytest.approx(grid.line(n + grid.shifts_up), rel=1e-12)
    assert grid.cells.bottom == pytest.approx(grid.line(grid.shifts_up), rel=1e-12)
    assert grid.shifts_down == 0
    check_pairing(run, grid)
    check_account(run)


def check_pairing(run: StrategyRun, grid: TrailingGrid) -> None:
    """Every fill of cell j is at its lines: a buy at line j, a sell at line j+1."""
    fills = [f for f in run.fills if f.tag != -1]
    assert fills
    for f in fills:
        want = grid.line(f.tag) if f.side == "buy" else grid.line(f.tag + 1)
        assert f.price == pytest.approx(want, rel=1e-12)


def test_trailing_down_hands_the_top_cells_base_to_the_new_bottom(btc_bars: list[Bar]) -> None:
    run = trailing_run(btc_bars, trail="down", grids=8)
    grid: TrailingGrid = run.strategy
    done = shifts(run)
    assert len(done) == grid.shifts_down > 50, "BTC fell 45 % over the month"
    assert grid.shifts_up == 0
    for k, (_, recs) in enumerate(done):
        orders = [r.order for r in recs if type(r) is OrderRequested]
        # The new bottom cell (index -1-k) lies above the close: it holds, selling at the old
        # bottom line; the base comes from the top cell that left (its sell cancelled).
        entered = [o for o in orders if o.tag == -1 - k]
        assert [(o.side, o.price) for o in entered] == [("sell", grid.line(-k))]
        assert [o for o in orders if o.kind == "market"] == []
    assert grid.cells.bottom == pytest.approx(grid.line(-grid.shifts_down), rel=1e-12)
    check_pairing(run, grid)
    check_account(run)


def test_trailing_limits_stop_the_shifts(eth_bars: list[Bar], btc_bars: list[Bar]) -> None:
    c0 = eth_bars[0].close
    lower, upper = round(c0 * 0.97, 2), round(c0 * 1.03, 2)
    step = (upper - lower) / 10
    run = trailing_run(eth_bars, trail="up", up_limit=upper + 3.5 * step)
    assert run.strategy.shifts_up == 3 and run.strategy.cells.top <= upper + 3.5 * step
    b0 = btc_bars[0].close
    lower, upper = round(b0 * 0.97, 2), round(b0 * 1.03, 2)
    step = (upper - lower) / 8
    run = trailing_run(btc_bars, trail="down", grids=8, down_limit=lower - 5 * step)
    assert run.strategy.shifts_down == 5
    assert run.strategy.cells.bottom == pytest.approx(lower - 5 * step)
    check_account(run)


def test_trailing_both_follows_the_month(btc_bars: list[Bar]) -> None:
    run = trailing_run(btc_bars, trail="both", mode="geometric")
    grid: TrailingGrid = run.strategy
    assert grid.shifts_up > 0 and grid.shifts_down > 0
    lo = grid.shifts_up - grid.shifts_down
    assert grid.cells.lo == lo
    assert grid.cells.ordered_lines() == pytest.approx([grid.line(j)
                                                        for j in range(lo, lo + 11)], rel=1e-12)
    check_pairing(run, grid)
    check_account(run)


def test_trailing_refuses_a_step_below_the_tick() -> None:
    from gridkit.trading.markets import MarketInfo

    grid = build(TrailingGrid, {"lower": 100.0, "upper": 101.0, "grids": 20, "qty": 1.0})
    ctx = context(bar=Bar(0, 100.5, 100.5, 100.5, 100.5, 1.0))
    ctx.market = MarketInfo("X/Y", "X", "Y", None, "spot", 0.1, 0.001)
    with pytest.raises(ConfigError, match=r"below the market's tick 0\.1: the grid lines would "
                                          r"collapse onto one tick"):
        grid.start(ctx)


class TestTrailingContract(GridStrategyContract):
    component_class = TrailingGrid
    options = {"lower": 52000.0, "upper": 56000.0, "grids": 10, "qty": 0.05, "trail": "both"}


class _CheckedTrailing(TrailingGrid):
    """Checks the window's invariants at every bar, before it decides."""

    name = "checked-trailing"

    def on_bar(self, ctx: Any) -> Any:
        cells = self.cells
        lines = cells.ordered_lines()
        assert len(lines) == cells.n + 1 == self.config.grids + 1
        assert all(b > a for a, b in pairwise(lines))
        assert lines == [self.line(j) for j in range(cells.lo, cells.lo + cells.n + 1)]
        tags = [o.tag for o in ctx.open_orders.values() if o.kind == "limit"]
        assert len(tags) == len(set(tags)), "a cell has two live orders"
        assert all(cells.has(t) for t in tags), "a live order of a cell that left"
        return super().on_bar(ctx)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.floats(-0.02, 0.02), min_size=20, max_size=150),
       trail=st.sampled_from(["up", "down", "both"]),
       mode=st.sampled_from(["arithmetic", "geometric"]))
def test_trailing_window_invariants_on_random_paths(steps: list[float], trail: str,
                                                    mode: str) -> None:
    price, bars = 100.0, []
    for i, r in enumerate(steps):
        nxt = price * (1 + r)
        bars.append(Bar(i * 60_000, price, max(price, nxt), min(price, nxt), nxt, 1.0))
        price = nxt
    grid = build(_CheckedTrailing, {"lower": 97.0, "upper": 103.0, "grids": 6, "qty": 1.0,
                                    "trail": trail, "mode": mode})
    run = step_strategy(grid, bars, capital=100_000.0)
    check_account(run)
    assert grid.cells.lo == grid.shifts_up - grid.shifts_down


def test_shifting_cells_shift_is_o1_and_keeps_tags() -> None:
    cells = ShiftingCells([1.0, 2.0, 3.0, 4.0], 1.0)
    ctx = context(bar=Bar(0, 2.5, 2.5, 2.5, 2.5, 1.0))
    orders, held = cells.seed(2.5, ctx)
    assert held == 1 and [o.tag for o in orders] == [0, 1, 2]
    left, state, oid, entered = cells.shift(True, 5.0)
    assert (left, state, oid, entered) == (0, cells.EMPTY, orders[0].id, 3)
    assert cells.ordered_lines() == [2.0, 3.0, 4.0, 5.0] and (cells.bottom, cells.top) == (2.0, 5.0)
    assert not cells.has(0) and cells.has(3) and cells.order_of[3] is None
    assert cells.order_of[1] == orders[1].id  # the other cells keep their orders and tags
    order = cells.order_for(3, ctx)
    assert (order.tag, order.side, order.price) == (3, "buy", 4.0)
    # A fill of the cell that left is not the grid's any more.
    assert cells.on_fill(Fill(orders[0].id, 1, "buy", 1.0, 1.0, 0.0, tag=0), ctx) == []
    left, state, oid, entered = cells.shift(False, 1.0)
    assert (left, entered, oid) == (3, 0, order.id)
    assert cells.ordered_lines() == [1.0, 2.0, 3.0, 4.0]


# === volatility-adjusted =======================================================================

ATR = '[[features]]\nuse = "atr"\n'
SIGMA = '[[features]]\nuse = "volatility"\n'


def vol_run(bars: list[Bar], **options: Any) -> StrategyRun:
    opts = {"levels": 5, "qty": 0.01, "k": 3.0, "min_spacing": 0.002, "max_spacing": 0.02,
            **options}
    feature = ATR if opts.get("measure", "atr") == "atr" else SIGMA
    return step_strategy(VolatilityAdjustedGrid, bars, options=opts, capital=CAPITAL,
                         fill_options=FEES, pipeline=feature)


def measured(bars: list[Bar], measure: str) -> list[float]:
    cols = columns_of(bars)
    if measure == "atr":
        return [a / b.close for a, b in zip(build(Atr).batch(cols), bars, strict=True)]
    return list(build(Volatility).batch(cols))


def reference_lays(bars: list[Bar], m: list[float], levels: int, k: float, low: float,
                   high: float, threshold: float, cooldown: int) -> list[tuple[int, float]]:
    """The docstring's rules, written plainly: (bar index, spacing) of every laying."""
    out: list[tuple[int, float]] = []
    lower = upper = m0 = s = 0.0
    at = 0
    for i, (b, v) in enumerate(zip(bars, m, strict=True)):
        ready = v == v
        if not out:
            if not ready:
                continue
        else:
            left = b.close > upper or b.close < lower
            moved = ready and abs(v - m0) > threshold * m0 and \
                clamp_spacing(k, v, low, high) != s
            if i - at < cooldown or not (left or moved):
                continue
        m0 = v if ready else m0
        s = clamp_spacing(k, m0, low, high)
        lower, upper = b.close * (1 - levels * s), b.close * (1 + levels * s)
        at = i
        out.append((i, s))
    return out


@pytest.mark.parametrize("measure", ["atr", "sigma"])
def test_volatility_adjusted_lays_and_relays_by_its_rules(btc_bars: list[Bar],
                                                          measure: str) -> None:
    bars = btc_bars[:15000]
    run = vol_run(bars, measure=measure)
    grid: VolatilityAdjustedGrid = run.strategy
    m = measured(bars, measure)
    want = reference_lays(bars, m, 5, 3.0, 0.002, 0.02, 0.25, 30)
    index = {b.ts: i for i, b in enumerate(bars)}
    first = min(r.ts for r in run.records if type(r) is OrderRequested)
    relaid = sorted({index[r.ts] for r in run.records if type(r) is CancelRequested})
    assert [index[first], *relaid] == [i for i, _ in want]
    assert grid.relays == len(want) - 1 > 20
    # The first grid: the lines of the documented formula, at the first bar m is known.
    i0, s0 = want[0]
    assert i0 == (14 if measure == "atr" else 20)  # the feature's warm-up
    c = bars[i0].close
    limits = sorted((r.order.tag, r.order.side, r.order.price) for r in run.records
                    if type(r) is OrderRequested and r.ts == bars[i0].ts
                    and r.order.kind == "limit")
    lines = grid_lines(c * (1 - 5 * s0), c * (1 + 5 * s0), 10, "arithmetic")
    assert limits == [(i, "sell", pytest.approx(lines[i + 1])) if lines[i] >= c
                      else (i, "buy", pytest.approx(lines[i])) for i in range(10)]
    assert grid.spacing == pytest.approx(want[-1][1])
    check_account(run)


def test_volatility_adjusted_cooldown_holds_relays_back(btc_bars: list[Bar]) -> None:
    bars = btc_bars[:8000]
    none = vol_run(bars, cooldown=10**6)
    assert none.strategy.relays == 0 and not [r for r in none.records
                                              if type(r) is CancelRequested]
    eager, lazy = vol_run(bars, cooldown=0), vol_run(bars, cooldown=120)
    assert eager.strategy.relays > lazy.strategy.relays > 0


def test_volatility_adjusted_relay_trades_the_inventory_difference(btc_bars: list[Bar]) -> None:
    # The crash: price leaves the grid downwards, the cells below filled, the new grid holds
    # only its upper half: the surplus is sold at market.
    run = vol_run(btc_bars, levels=4)
    markets = [r for r in run.records if type(r) is OrderRequested and r.order.kind == "market"]
    assert markets[0].order.side == "buy"  # the first laying buys the upper half
    assert markets[0].order.qty == pytest.approx(4 * 0.01)
    assert {r.order.side for r in markets[1:]} == {"buy", "sell"}
    assert all(round(r.order.qty / 0.01, 9).is_integer() for r in markets)
    check_account(run)


@settings(max_examples=200, deadline=None)
@given(k=st.floats(0.01, 100), m=st.floats(0, 1), low=st.floats(1e-4, 0.05),
       width=st.floats(0, 0.1))
def test_spacing_always_within_bounds(k: float, m: float, low: float, width: float) -> None:
    s = clamp_spacing(k, m, low, low + width)
    assert low <= s <= low + width


class _CheckedVolatility(VolatilityAdjustedGrid):
    name = "checked-volatility-adjusted"
    seen: list[float]

    def _lay(self, ctx: Any, m: float) -> Any:
        out = super()._lay(ctx, m)
        c = self.config
        assert c.min_spacing <= self.spacing <= c.max_spacing
        assert all(b > a for a, b in pairwise(self.cells.lines))
        assert self.lower <= ctx.bar.close <= self.upper
        return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.floats(-0.03, 0.03), min_size=30, max_size=120),
       measure=st.sampled_from(["atr", "sigma"]))
def test_volatility_adjusted_spacing_within_bounds_on_random_paths(steps: list[float],
                                                                   measure: str) -> None:
    price, bars = 100.0, []
    for i, r in enumerate(steps):
        nxt = price * (1 + r)
        bars.append(Bar(i * 60_000, price, max(price, nxt) * 1.001, min(price, nxt) * 0.999,
                        nxt, 1.0))
        price = nxt
    grid = build(_CheckedVolatility, {"levels": 3, "qty": 1.0, "measure": measure,
                                      "cooldown": 2, "min_spacing": 0.003,
                                      "max_spacing": 0.03})
    use = "atr" if measure == "atr" else "volatility"
    run = step_strategy(grid, bars, capital=100_000.0,
                        pipeline=f'[[features]]\nuse = "{use}"\nperiod = 5\n')
    check_account(run)


class TestVolatilityAdjustedContract(GridStrategyContract):
    component_class = VolatilityAdjustedGrid
    options = {"levels": 5, "qty": 0.05, "cooldown": 30}
    pipeline = ATR


class TestVolatilityAdjustedSigmaContract(GridStrategyContract):
    component_class = VolatilityAdjustedGrid
    options = {"levels": 5, "qty": 0.05, "measure": "sigma", "k": 4.0}
    pipeline = SIGMA


# === options and pipelines =====================================================================


def strategy_toml(use: str, options: str, extra: str = "") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
{extra}
[strategy]
use = "{use}"
{options}
"""


@pytest.mark.parametrize(("use", "options", "message"), [
    ("trailing", "lower = 60000\nupper = 50000\ngrids = 10\nqty = 1",
     "strategy.lower: must be below upper"),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 0", "strategy.qty: must be > 0"),
    ("trailing", "lower = -5\nupper = 60000\ngrids = 10\nqty = 1", "strategy.lower: must be > 0"),
    ("trailing", "lower = nan\nupper = 60000\ngrids = 10\nqty = 1",
     "strategy.lower: must be a finite number > 0, got nan"),
    ("trailing", "lower = 50000\nupper = 50000.00001\ngrids = 100000\nqty = 1",
     "strategy.grids: 100000 cells between 50000 and 50000 collapse the lines"),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\nup_limit = 55000",
     "strategy.up_limit: must be above upper (55000 <= 60000)"),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\ntrail = \"both\"\n"
                 "down_limit = 51000", "strategy.down_limit: must be below lower"),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\ndown_limit = 40000",
     "strategy.down_limit: is for trail = \"down\" or \"both\""),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\ntrail = \"down\"\n"
                 "up_limit = 70000", "strategy.up_limit: is for trail = \"up\" or \"both\""),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\ntrail = \"sideways\"",
     "strategy.trail"),
    ("trailing", "lower = 50000\nupper = 60000\ngrids = 10\nqty = 1\ndirection = \"up\"",
     "strategy.direction"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nk = 0", "strategy.k: must be > 0, got 0"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nk = nan", "strategy.k: must be a finite"),
    ("volatility-adjusted", "levels = 0\nqty = 1", "strategy.levels: must be >= 1, got 0"),
    ("volatility-adjusted", "levels = 5\nqty = -1", "strategy.qty: must be > 0, got -1"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nmin_spacing = 0",
     "strategy.min_spacing: must be > 0, got 0"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nmin_spacing = 0.03\nmax_spacing = 0.02",
     "strategy.min_spacing: must not be above max_spacing (0.03 > 0.02)"),
    ("volatility-adjusted", "levels = 50\nqty = 1\nmax_spacing = 0.02",
     "strategy.max_spacing: levels*max_spacing must stay below 1"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nthreshold = -0.25",
     "strategy.threshold: must be > 0"),
    ("volatility-adjusted", "levels = 5\nqty = 1\ncooldown = -1",
     "strategy.cooldown: must be >= 0, got -1"),
    ("volatility-adjusted", "levels = 5\nqty = 1\nmeasure = \"range\"", "strategy.measure"),
])
def test_bad_options_are_refused_with_one_line(use: str, options: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(strategy_toml(use, options, ATR)))
    assert message in str(err.value)
    assert "\n" not in str(err.value).strip()


@pytest.mark.parametrize(("options", "feature"), [
    ("", "atr"), ("measure = \"sigma\"", "volatility"), ("feature = \"atr_30\"", "atr_30")])
def test_a_missing_feature_is_named_in_one_line(options: str, feature: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(strategy_toml("volatility-adjusted",
                                                    f"levels = 5\nqty = 1\n{options}")))
    assert str(err.value).strip().endswith(
        f"strategy: strategy 'volatility-adjusted' reads feature '{feature}', which no "
        f"[[features]] entry provides (add use = \"{feature}\")")
    assert "\n" not in str(err.value).strip()
    # With the feature in the pipeline (under its key) it builds.
    key = f'\nkey = "{feature}"\nperiod = 30' if feature == "atr_30" else ""
    use = "volatility" if feature == "volatility" else "atr"
    build_pipeline(parse_pipeline(strategy_toml("volatility-adjusted",
                                                f"levels = 5\nqty = 1\n{options}",
                                                f'[[features]]\nuse = "{use}"{key}\n')))


def test_a_missing_feature_stops_a_hand_stepped_start_too() -> None:
    grid = build(VolatilityAdjustedGrid, {"levels": 3, "qty": 1.0})
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    with pytest.raises(ConfigError, match="reads feature 'atr', which no"):
        grid.start(ctx)
    ctx.features["atr"] = float("nan")
    assert list(grid.start(ctx)) == []  # not ready yet: no grid
    ctx.features["atr"] = 1.0  # m = 1 %: spacing k*m = 2 %
    assert grid.on_bar(ctx) and grid.spacing == pytest.approx(0.02)


# === full runs through gridkit run ===============================================================


def full_pipeline(path: Path, strategy: str, db_extra: str = "") -> str:
    return f"""
[pipeline]
symbol = "BTC/USDT"
capital = 1000000.0
[source]
use = "freqtrade-json"
path = "{path.as_posix()}"
{db_extra}
[strategy]
{strategy}
[executor]
use = "simulated"
maker_fee = 0.001
taker_fee = 0.002
"""


def store_rows(db: str, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_trailing_full_run_long(btc_1m: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "run.db")
    lower, upper, n = 54000.0, 57000.0, 12
    s = run_toml(full_pipeline(btc_1m, f'use = "trailing"\nlower = {lower}\nupper = {upper}\n'
                                       f'grids = {n}\nqty = 0.01\ntrail = "both"\n'
                                       f'direction = "long"'), db=db)
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert s["orders_rejected"] == 0
    st_ = s["components"]["strategy"]
    assert st_["shifts_up"] > 0 and st_["shifts_down"] > 0
    step = (upper - lower) / n
    lo = st_["shifts_up"] - st_["shifts_down"]
    assert st_["lower"] == pytest.approx(lower + lo * step)
    assert st_["upper"] == pytest.approx(lower + (lo + n) * step)  # top = start top + lo steps
    # Every limit fill of cell j is at line j (buy) or j+1 (sell) of the extended grid.
    fills = store_rows(db, "SELECT side, price, tag FROM fills WHERE tag != -1")
    assert len(fills) == s["buy_fills"] + s["sell_fills"] - len(
        store_rows(db, "SELECT 1 FROM fills WHERE tag = -1"))
    for side, price, tag in fills:
        assert price == pytest.approx(lower + (tag + (side == "sell")) * step, rel=1e-12)
    assert s["final_base"] >= -1e-9 and s["final_cash"] >= -1e-6


def test_volatility_adjusted_full_run_long(btc_1m: Path) -> None:
    s = run_toml(full_pipeline(btc_1m, 'use = "volatility-adjusted"\nlevels = 6\nqty = 0.01\n'
                                       'measure = "atr"\nk = 3.0\nmin_spacing = 0.002\n'
                                       'max_spacing = 0.02\ndirection = "long"',
                               '[[features]]\nuse = "atr"\nperiod = 14\n'))
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert s["orders_rejected"] == 0
    st_ = s["components"]["strategy"]
    assert st_["relays"] > 10 and st_["round_trips"] > 100
    assert 0.002 <= st_["spacing"] <= 0.02
    # The last grid spans levels*spacing either side of its centre.
    half = (st_["upper"] - st_["lower"]) / (st_["upper"] + st_["lower"])
    assert half == pytest.approx(6 * st_["spacing"], rel=1e-12)
    assert s["final_base"] >= -1e-9 and s["final_cash"] >= -1e-6


def test_default_snapshot_pickles_and_restores_both(eth_bars: list[Bar]) -> None:
    import pickle

    run = trailing_run(eth_bars[:3000], trail="both")
    grid: TrailingGrid = run.strategy
    assert grid.shifts_up > 0
    back = build(TrailingGrid, {"lower": grid.config.lower, "upper": grid.config.upper,
                                "grids": 10, "qty": 0.1, "trail": "both"})
    back.restore(pickle.loads(pickle.dumps(grid.snapshot())))
    assert back.cells.lo == grid.cells.lo and back.stats() == grid.stats()
    assert back.cells.ordered_lines() == grid.cells.ordered_lines()
    assert back.cells.top == grid.cells.top  # the rings index as before
    vol = vol_run(eth_bars[:3000]).strategy
    again = build(VolatilityAdjustedGrid, {"levels": 5, "qty": 0.01, "k": 3.0})
    again.restore(pickle.loads(pickle.dumps(vol.snapshot())))
    assert again.stats() == vol.stats() and again.requires_features == ("atr",)


def test_trailing_down_stops_at_its_stop_loss_and_closes(btc_bars: list[Bar]) -> None:
    """The grid-level stop-loss of every grid, on the trailing grid: BTC's May 2021 fall
    crosses it; everything is cancelled, the position closed, and nothing more is sent."""
    stop = round(btc_bars[0].close * 0.85, 2)
    run = trailing_run(btc_bars, trail="down", grids=8, stop_loss=stop, on_stop="close")
    grid: TrailingGrid = run.strategy
    hit = next(i for i, b in enumerate(btc_bars) if b.close <= stop)
    stats = grid.stats()
    assert stats["stopped"] and "stop-loss" in stats["stopped"]
    at = [r.order for r in run.records if type(r) is OrderRequested and r.ts == btc_bars[hit].ts]
    assert [(o.kind, o.side) for o in at if o.kind == "market"] == [("market", "sell")]
    assert not [r for r in run.records if type(r) is OrderRequested and r.ts > btc_bars[hit].ts]
    assert run.summary["final_base"] == pytest.approx(0.0, abs=1e-12)
