"""gridkit.testing's helpers for plugin authors: build, registry, context, advance, step_strategy.

They are what a plugin's own tests use to step a component by hand, so they are checked against
what the engine does: the context a component reads, and a strategy run through the real path.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from attrs import frozen

from gridkit import (
    Account,
    Bar,
    ConfigError,
    Context,
    Executor,
    Fill,
    Ledger,
    Order,
    Reject,
    RiskCheck,
    Strategy,
    option,
    positive,
)
from gridkit.plugins.grids.static import StaticGrid
from gridkit.plugins.risk import PositionSize
from gridkit.testing import (
    StrategyContract,
    advance,
    build,
    context,
    registry,
    sample_bars,
    step_strategy,
)

BARS = [Bar(i * 60_000, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 1.0) for i in range(6)]


# --- build and registry --------------------------------------------------------------------------


def test_build_reports_every_problem_of_the_options_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        build(StaticGrid, {"lower": -1.0, "grids": 1, "qty": "x", "gridz": 3})
    assert err.value.problems == [
        "options.gridz: unknown option (did you mean 'grids'?); options are: direction, "
        "exit_bars, grids, lower, mode, on_exit, on_stop, qty, stop_loss, stop_loss_equity, "
        "take_profit, take_profit_equity, upper",
        "options.lower: must be > 0, got -1.0",
        "options.upper: required option is missing",
        "options.grids: must be >= 2, got 1",
        "options.qty: expected float, got 'x'",
    ]
    assert build(StaticGrid, {"lower": 1.0, "upper": 2.0, "grids": 2, "qty": 1.0}).config.grids == 2


def test_registry_is_what_a_pipeline_sees(gridkit_host: Any) -> None:
    reg = registry().get("risk", "position-size")
    assert reg.cls is PositionSize and reg.distribution == "gridkit" and reg.replaces is None
    assert "position-size" not in registry(disable=["gridkit.risk"]).names("risk")
    assert registry(gridkit_host).names("strategy") == registry().names("strategy")


# --- context and advance -------------------------------------------------------------------------


def test_context_is_a_ready_one_symbol_account() -> None:
    ctx = context("ETH/USDT", capital=5_000)
    assert isinstance(ctx, Context) and isinstance(ctx.account, Account)
    assert isinstance(ctx.ledger, Ledger)
    assert ctx.symbol == ctx.run.symbol == "ETH/USDT" and ctx.run.symbols == ("ETH/USDT",)
    assert ctx.account.quote == "USDT" and ctx.account.balances() == {"USDT": 5000.0, "ETH": 0.0}
    assert (ctx.portfolio.cash, ctx.portfolio.equity, ctx.portfolio.base) == (5000.0, 5000.0, 0.0)
    assert ctx.bar is None and ctx.index == -1 and math.isnan(ctx.portfolio.price)
    assert ctx.position is ctx.account.positions["ETH/USDT"]
    order = ctx.order("buy", 1.0, 100.0)
    assert (order.id, order.symbol, order.kind) == ("t-1", "ETH/USDT", "limit")
    assert ctx.order("sell", 1.0, 110.0).id == "t-2"


def test_context_on_a_bar_with_base_held() -> None:
    bar = BARS[0]
    ctx = context(capital=10_000, bar=bar, base=20.0, features={"rsi": 30.0})
    assert ctx.bar is bar and ctx.event is bar and ctx.index == 0
    assert ctx.portfolio.price == bar.close == 101.0
    # The base was bought at the close with no fee: equity is still the capital.
    assert ctx.portfolio.base == 20.0 and ctx.portfolio.avg_cost == 101.0
    assert ctx.portfolio.cash == pytest.approx(10_000 - 20 * 101.0)
    assert ctx.portfolio.equity == pytest.approx(10_000) and ctx.portfolio.drawdown == 0.0
    assert ctx.features == {"rsi": 30.0}
    with pytest.raises(ValueError, match="needs a bar"):
        context(base=1.0)


def test_advance_marks_the_position_as_the_engine_does() -> None:
    ctx = context(bar=BARS[0], base=50.0)
    peak = ctx.portfolio.equity
    down = Bar(BARS[1].ts, 90.0, 91.0, 80.0, 81.0, 1.0)
    assert advance(ctx, down) is ctx
    assert ctx.bar is down and ctx.index == 1 and ctx.portfolio.price == 81.0
    assert ctx.portfolio.equity == pytest.approx(peak - 50 * 20.0)
    assert ctx.portfolio.drawdown == pytest.approx(1000 / peak)


def test_open_orders_count_once_the_ledger_knows_them() -> None:
    ctx = context(bar=BARS[0])
    check = build(PositionSize, {"max_base": 1.0})
    order = ctx.order("buy", 0.8, 100.0)
    assert isinstance(check.check(order, ctx), Order)
    ctx.ledger.request(order, ctx.bar.ts)
    assert ctx.open_buy_qty == 0.8 and list(ctx.open_orders) == [order.id]
    assert isinstance(check.check(ctx.order("buy", 0.5, 100.0), ctx), Reject)


# --- step_strategy -------------------------------------------------------------------------------


class BuyOnce(Strategy):
    """Buys ``qty`` at market on the first bar; sells it back with a limit when filled."""

    name = "buy-once"

    @frozen
    class Config:
        qty: float = option(1.0, doc="Base to buy.", validator=positive())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen: list[Fill] = []

    def start(self, ctx: Context) -> list[Order]:
        return [ctx.order("buy", self.config.qty, ctx.bar.close, "market", tag=7)]

    def on_fill(self, fill: Fill, ctx: Context) -> list[Order]:
        self.seen.append(fill)
        if fill.side == "buy":
            return [ctx.order("sell", fill.qty, fill.price + 3.0, tag=8)]
        return []


def test_step_strategy_runs_an_unregistered_instance_through_the_engine() -> None:
    strategy = BuyOnce()
    assert "buy-once" not in registry().names("strategy")
    run = step_strategy(strategy, BARS, fill_options={"maker_fee": 0.0, "taker_fee": 0.0})
    assert run.summary["status"] == "finished" and run.summary["bars_accepted"] == 6
    assert run.strategy is strategy
    buy, sell = run.orders
    assert (buy.kind, buy.tag, sell.kind, sell.tag) == ("market", 7, "limit", 8)
    # DESIGN.md §6: the market order fills at the next bar's open; its follow-up is live from
    # the bar after, and fills at its own price when a bar reaches it.
    b_fill, s_fill = run.fills
    assert (b_fill.ts, b_fill.price, b_fill.tag) == (BARS[1].ts, BARS[1].open, 7)
    assert s_fill.price == BARS[1].open + 3.0 == 104.0 and s_fill.tag == 8
    assert s_fill.ts == BARS[2].ts  # bar 2 reaches 104 (its high)
    assert strategy.seen == run.fills  # the instance given is the one that ran
    assert run.rejected == [] and run.cancelled == []
    assert len(run.equity) == 6 and run.equity[-1] == pytest.approx(10_003.0)
    assert run.summary["final_equity"] == pytest.approx(10_003.0)


def test_step_strategy_builds_a_class_with_options_and_takes_over_a_registered_name() -> None:
    bars = sample_bars()[:300]
    options = {"lower": 54_000.0, "upper": 58_000.0, "grids": 8, "qty": 0.01}
    run = step_strategy(StaticGrid, bars, options=options)
    assert isinstance(run.strategy, StaticGrid) and run.strategy.config.grids == 8
    assert run.orders and run.summary["status"] == "finished"
    # The same as the registered built-in run from pipeline.toml.
    from gridkit.testing import run_toml

    lines = "\n".join(f"{k} = {v}" for k, v in options.items())
    summary = run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
end = "{bars[-1].ts}"
[source]
use = "freqtrade-json"
path = "{{sample}}"
[strategy]
use = "static"
{lines}
""")
    for key in ("buy_fills", "sell_fills", "fees_paid", "final_cash", "final_base",
                "final_equity"):
        assert run.summary[key] == summary[key], key
    with pytest.raises(TypeError, match="options are for a strategy class"):
        step_strategy(StaticGrid(run.strategy.config), bars, options=options)


class Refuse(RiskCheck):
    """Refuses every buy."""

    name = "refuse-buys"

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        return Reject("no buys") if order.side == "buy" else order


def test_step_strategy_takes_risk_check_instances_and_names_them() -> None:
    run = step_strategy(BuyOnce(), BARS, risk=[Refuse()])
    [rejected] = run.rejected
    assert (rejected.reason, rejected.by) == ("no buys", "refuse-buys")
    assert run.fills == [] and len(run.orders) == 1
    assert run.summary["rejected_by"] == {"refuse-buys: no buys": 1}


def test_step_strategy_takes_more_pipeline_tables() -> None:
    run = step_strategy(build(BuyOnce, {"qty": 50.0}), BARS, pipeline="""
[[risk]]
use = "position-size"
max_base = 10
""")
    [rejected] = run.rejected
    assert rejected.by == "position-size" and "max_base" in rejected.reason


class HalfFills(Executor):
    """Fills every order in two halves, on the two bars after it was sent, at the close."""

    name = "half-fills"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.orders: dict[str, tuple[Order, float]] = {}
        self.pending: list[Any] = []

    def submit(self, order: Order, ctx: Context) -> str | None:
        self.orders[order.id] = (order, order.qty)
        return None

    def cancel(self, order_id: str, ctx: Context) -> str | None:
        return "not supported"

    def reports(self, event: Any, symbol: str) -> list[Any]:
        out, self.pending = self.pending, []
        if isinstance(event, Bar):
            for oid, (order, left) in list(self.orders.items()):
                qty = order.qty / 2 if left == order.qty else left
                left -= qty
                out.append(Fill(oid, event.ts, order.side, qty, event.close, 0.0, "maker",
                                order.tag, order.symbol, remaining=left))
                if left > 0:
                    self.orders[oid] = (order, left)
                else:
                    del self.orders[oid]
        return out

    def open_orders(self) -> list[Order]:
        return [o for o, _ in self.orders.values()]


class WatchPartials(BuyOnce):
    """BuyOnce, noting what the ledger says of the order at each of its fills."""

    name = "watch-partials"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.states: list[Any] = []

    def on_fill(self, fill: Fill, ctx: Context) -> list[Order]:
        state = ctx.ledger.get(fill.order_id)
        self.states.append((fill.remaining, state.status if state else None,
                            state.filled if state else None))
        return []


def test_step_strategy_takes_an_executor_instance_and_shows_partial_fills() -> None:
    strategy = build(WatchPartials, {"qty": 2.0})
    run = step_strategy(strategy, BARS, fill_model=HalfFills())
    assert [(f.qty, f.remaining, f.tag) for f in run.fills] == [(1.0, 1.0, 7), (1.0, 0.0, 7)]
    # on_fill is called per fill; a partial one leaves the order live, the last one closes it.
    assert strategy.states == [(1.0, "partial", 1.0), (0.0, None, None)]
    assert run.summary["final_base"] == 2.0


def test_step_strategy_refuses_what_is_not_a_component_of_the_kind() -> None:
    with pytest.raises(TypeError, match=r"is not a gridkit\.RiskCheck"):
        step_strategy(BuyOnce(), BARS, risk=[BuyOnce()])

    class Nameless(Strategy):
        """No name."""

        def start(self, ctx: Context) -> None:
            return None

    with pytest.raises(TypeError, match="Nameless has no name"):
        step_strategy(Nameless(), BARS)


class TestStrategyContractOnAnUnregisteredClass(StrategyContract):
    component_class = BuyOnce
    options = {"qty": 0.5}


# --- the testing extra, and the pytest11 entry point ---------------------------------------------


def _python(code: str, cwd: Any = None) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_import_without_pytest_names_the_extra() -> None:
    # sys.modules["pytest"] = None makes `import pytest` fail as if it were not installed.
    out = _python("import sys; sys.modules['pytest'] = None\n"
                  "import gridkit, gridkit.runtime.engine\n"  # gridkit itself does not need it
                  "import gridkit.testing")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: gridkit.testing needs pytest: pip install 'gridkit[testing]'")


def test_the_testing_extra_and_the_pytest_plugin_are_declared(repo: Any) -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["testing"]
    assert {req.split(">")[0] for req in extra} == {"pytest", "hypothesis"}
    assert project["entry-points"]["pytest11"] == {"gridkit": "gridkit.testing"}
    assert all(not d.startswith(("pytest", "hypothesis")) for d in project["dependencies"])
    contrib = tomllib.loads((repo / "plugins-contrib" / "gridkit-ewma" / "pyproject.toml")
                            .read_text())["project"]
    assert contrib["optional-dependencies"]["test"] == ["gridkit[testing]"]


def test_the_pytest_plugin_leaves_other_projects_alone(tmp_path: Any) -> None:
    # Anyone with pytest and gridkit in one environment gets gridkit.testing in every pytest
    # session: it must load quietly, cheaply (no plugins, no numba) and change nothing.
    (tmp_path / "test_other.py").write_text(
        "import sys\n"
        "def test_unrelated(request):\n"
        "    assert 'gridkit.testing' in sys.modules\n"
        "    assert request.config.pluginmanager.has_plugin('gridkit')\n"
        "    assert 'numba' not in sys.modules\n"
        "    assert not [m for m in sys.modules if m.startswith('gridkit.plugins')]\n")
    out = _python("import pytest, sys; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
                  "'-W', 'error']))", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout and "warning" not in out.stdout.lower()
