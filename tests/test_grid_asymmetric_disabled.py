"""The ``asymmetric`` (pyramid, TRENDING) and ``disabled`` (DORMANT) grids, on real BTC bars."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gridkit import Bar, Cancel, ConfigError, Fill, Order, OrderRequested, Strategy
from gridkit.plugins.grids.asymmetric import AsymmetricGrid, asymmetric_layout
from gridkit.plugins.grids.disabled import DisabledGrid
from gridkit.runtime.context import Context
from gridkit.testing import (
    GridStrategyContract,
    build,
    context,
    run_toml,
    sample_path,
    step_strategy,
)

OPTIONS = {"qty": 0.01, "spacing_up": 0.003, "spacing_down": 0.002, "levels_up": 5,
           "levels_down": 6, "pyramid": 1.5, "trend": "up"}
CAPITAL = 100_000.0


def btc_bars(path: Path, n: int) -> list[Bar]:
    rows = json.loads(path.read_text())[:n]
    return [Bar(int(r[0]), *map(float, r[1:6])) for r in rows]


def test_layout_is_the_documented_formula() -> None:
    lines, qtys = asymmetric_layout(100.0, 0.01, 0.02, 3, 2, 1.0, 2.0, "up")
    assert lines == pytest.approx([96.0, 98.0, 100.0, 101.0, 102.0, 103.0], rel=1e-15)
    assert lines[2] == 100.0  # the start price is a line, exactly
    assert qtys == [1.0, 1.0, 1.0, 2.0, 4.0]
    lines_d, qtys_d = asymmetric_layout(100.0, 0.01, 0.02, 3, 2, 1.0, 2.0, "down")
    assert lines_d == lines
    assert qtys_d == [2.0, 1.0, 1.0, 1.0, 1.0]  # lowest cell first: k = 2, then k = 1
    # pyramid = 1: flat
    assert asymmetric_layout(100.0, 0.01, 0.02, 3, 2, 0.5, 1.0, "up")[1] == [0.5] * 5


@pytest.fixture(scope="module")
def btc_run(data_dir_module: Path) -> tuple[list[Bar], object]:
    bars = btc_bars(data_dir_module, 8000)
    run = step_strategy(AsymmetricGrid, bars, options=OPTIONS, capital=CAPITAL,
                        fill_options={"maker_fee": 0.001, "taker_fee": 0.002})
    return bars, run


@pytest.fixture(scope="module")
def data_dir_module(data_dir: Path) -> Path:
    """btc_1m, for a module-scoped run shared by the tests below."""
    return data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json"


def test_lines_and_quantities_on_real_data(btc_run: tuple[list[Bar], object]) -> None:
    bars, run = btc_run
    c0 = bars[0].close
    cells = run.strategy.cells
    d, u = OPTIONS["levels_down"], OPTIONS["levels_up"]
    want = [c0 * (1 - k * 0.002) for k in range(d, 0, -1)] + \
        [c0 * (1 + k * 0.003) for k in range(u + 1)]
    assert cells.lines == want
    assert cells.qtys == [0.01] * d + [0.01 * 1.5 ** k for k in range(u)]
    # The trend (up) side is heavier, and each cell further up is heavier than the one below.
    assert sum(cells.qtys[d:]) > sum(cells.qtys[:d])
    assert all(a < b for a, b in zip(cells.qtys[d:], cells.qtys[d + 1:], strict=False))
    # The start: one market buy of what the cells above c0 hold, then one order per cell.
    first = run.orders[:1 + d + u]
    assert first[0].kind == "market" and first[0].side == "buy"
    assert first[0].qty == pytest.approx(sum(cells.qtys[d:]), rel=1e-12)
    placed = {o.tag: (o.side, o.price, o.qty) for o in first[1:]}
    assert placed == {i: ("sell", want[i + 1], cells.qtys[i]) if i >= d
                      else ("buy", want[i], cells.qtys[i]) for i in range(d + u)}


def test_each_fill_re_places_its_pair_with_the_cells_quantity(
        btc_run: tuple[list[Bar], object]) -> None:
    _, run = btc_run
    cells = run.strategy.cells
    pending: dict[int, Fill] = {}
    checked = 0
    for r in run.records:
        if isinstance(r, Fill) and r.tag >= 0:
            assert r.qty == pytest.approx(cells.qtys[r.tag], rel=1e-12)
            if r.remaining == 0:
                pending[r.tag] = r
        elif type(r) is OrderRequested and r.order.tag in pending:
            fill, o = pending.pop(r.order.tag), r.order
            i = o.tag
            if fill.side == "buy":  # the cell holds: a sell one line up
                assert (o.side, o.price) == ("sell", cells.lines[i + 1])
            else:  # the cell is empty: a buy at its lower line
                assert (o.side, o.price) == ("buy", cells.lines[i])
            assert o.qty == cells.qtys[i]
            checked += 1
    assert checked > 50, "the grid should trade on these bars"
    assert run.strategy.stats()["round_trips"] > 20


def test_run_ends_reconciled_and_the_account_adds_up(
        btc_run: tuple[list[Bar], object]) -> None:
    bars, run = btc_run
    s = run.summary
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert s["orders_rejected"] == 0
    cash = CAPITAL
    base = 0.0
    for f in run.fills:
        sign = 1 if f.side == "buy" else -1
        cash -= sign * f.price * f.qty + f.fee
        base += sign * f.qty
    assert s["final_cash"] == pytest.approx(cash, rel=1e-12)
    assert s["final_base"] == pytest.approx(base, abs=1e-12)
    assert s["final_price"] == bars[-1].close
    assert math.isclose(s["final_equity"], s["final_cash"] + s["final_base"] * bars[-1].close)


def test_trend_down_is_heavier_below_and_buys_only_the_light_side(btc_1m: Path) -> None:
    bars = btc_bars(btc_1m, 500)
    run = step_strategy(AsymmetricGrid, bars, options={**OPTIONS, "trend": "down"},
                        capital=CAPITAL)
    cells, d = run.strategy.cells, OPTIONS["levels_down"]
    assert cells.qtys == [0.01 * 1.5 ** k for k in range(d - 1, -1, -1)] + [0.01] * 5
    assert sum(cells.qtys[:d]) > sum(cells.qtys[d:])
    assert run.orders[0].kind == "market" and run.orders[0].qty == pytest.approx(0.05)
    assert run.summary["unreconciled_orders"] == []


def test_registered_and_runs_from_a_pipeline_with_preflight(btc_1m: Path) -> None:
    summary = run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "freqtrade-json"
path = "{btc_1m.as_posix()}"
[strategy]
use = "asymmetric"
qty = 0.01
levels_up = 3
levels_down = 3
""")
    assert summary["status"] == "finished" and summary["unreconciled_orders"] == []
    stats = summary["components"]["strategy"]
    assert stats["round_trips"] > 0 and stats["lower"] < stats["upper"]


def test_preflight_counts_each_cells_quantity() -> None:
    grid = build(AsymmetricGrid, {"qty": 1.0, "levels_up": 2, "levels_down": 2,
                                  "pyramid": 2.0, "spacing_up": 0.01, "spacing_down": 0.01})
    ctx = context(capital=1_000.0, bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    checks = grid.preflight(ctx, 0.001, 0.002)
    text = "\n".join(m for _, m in checks)
    # Above: 1 + 2 base at market (100 * 1.002 each); below: buys of 1 at 99 and 98.
    need = 3 * 100 * 1.002 + 99 * 1.001 + 98 * 1.001
    assert f"needs {need:,.2f} of cash" in text
    assert "holds 5 base" in text  # the whole range: 1 + 1 + 1 + 2
    assert ("error", next(m for _, m in checks if "needs" in m)) not in checks


@pytest.mark.parametrize(("options", "message"), [
    ("qty = 0", "strategy.qty: must be > 0, got 0"),
    ("qty = 1\ntrend = 'sideways'", "strategy.trend: expected one of 'up', 'down'"),
    ("qty = 1\npyramid = 0.5", "strategy.pyramid: must be >= 1, got 0.5"),
    ("qty = 1\nlevels_up = 0", "strategy.levels_up: must be >= 1, got 0"),
    ("qty = 1\nspacing_up = -0.01", "strategy.spacing_up: must be > 0"),
    ("qty = 1\nlevels_down = 10\nspacing_down = 0.1",
     "strategy.spacing_down: levels_down*spacing_down must stay below 1"),
    ("use = 'disabled'\nqty = 1", "strategy.qty: unknown option"),
])
def test_bad_options_are_refused_in_one_line(options: str, message: str) -> None:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    use = "" if "use =" in options else "use = 'asymmetric'\n"
    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[strategy]
{use}{options}
"""
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    lines = [ln for ln in str(err.value).splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0]


class TestAsymmetricContract(GridStrategyContract):
    component_class = AsymmetricGrid
    options = {"qty": 0.05, "levels_up": 6, "levels_down": 4, "pyramid": 1.3}


class TestAsymmetricDownContract(GridStrategyContract):
    component_class = AsymmetricGrid
    options = {"qty": 0.05, "trend": "down", "spacing_down": 0.004}


# --- disabled ------------------------------------------------------------------------------


def test_disabled_sends_nothing_on_a_real_run(btc_1m: Path) -> None:
    run = step_strategy(DisabledGrid, btc_bars(btc_1m, 3000), capital=CAPITAL)
    s = run.summary
    assert run.orders == [] and run.fills == [] and run.cancelled == []
    assert s["status"] == "finished" and s["orders_placed"] == 0
    assert s["final_cash"] == CAPITAL and s["final_base"] == 0.0
    assert run.strategy.stats() == {"cancels": 0}


def test_disabled_cancels_each_open_order_once() -> None:
    bar = Bar(0, 100.0, 101.0, 99.0, 100.0, 1.0)
    ctx = context(bar=bar)
    left = [ctx.order("buy", 1.0, 90.0), ctx.order("buy", 1.0, 80.0)]
    for o in left:
        ctx.ledger.request(o, bar.ts)
    grid = build(DisabledGrid)
    assert sorted(grid.start(ctx), key=str) == sorted((Cancel(o.id) for o in left), key=str)
    assert grid.on_bar(ctx) == []  # asked already, still pending: not asked again
    late = ctx.order("sell", 1.0, 120.0)
    ctx.ledger.request(late, bar.ts)
    assert grid.on_bar(ctx) == [Cancel(late.id)]
    assert grid.stats() == {"cancels": 3}


class Handover(Strategy):
    """Trades a little, then the regime goes DORMANT and ``disabled`` takes over the lane."""

    name = "handover-test"

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.off = build(DisabledGrid)
        self.left: list[str] = []

    def start(self, ctx: Context) -> list[Order | Cancel]:
        far = [ctx.order("buy", 0.01, ctx.bar.close * f) for f in (0.5, 0.6, 0.7)]
        self.left = [o.id for o in far]
        return far

    def on_bar(self, ctx: Context) -> list[Order | Cancel]:
        return self.off.on_bar(ctx) if ctx.index >= self.at else []


def test_disabled_cancels_orders_an_earlier_strategy_left_open(btc_1m: Path) -> None:
    strategy = Handover(at=10)
    run = step_strategy(strategy, btc_bars(btc_1m, 300), capital=CAPITAL)
    s = run.summary
    assert sorted(r.order_id for r in run.cancelled) == sorted(strategy.left)
    assert strategy.off.stats() == {"cancels": 3}  # once each, though open for a bar more
    assert s["open_orders"] == 0 and s["unreconciled_orders"] == []
    assert run.fills == [] and s["final_cash"] == CAPITAL
