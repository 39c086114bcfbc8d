"""Grid controls on real bars: stop-loss / take-profit, the range exit policy, long / short /
neutral on the real Binance XRP USDT-M perpetual (with its funding), and leverage checks.

The perpetual runs read the XRP 5m candles shipped in examples/data (2021-11-18 .. 21, the
span its funding file covers): the close starts at 1.0924, rises to 1.16 in the first hours,
falls to 1.02 by the afternoon of the 18th and comes back to ~1.09 on the 19th. The spot runs
read the packaged BTC/USDT sample (3,000 1m bars falling from 56,814 to 50,551). Every window
a test uses is found in the data by the test itself, and what happens is checked bar by bar.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit import Bar, ConfigError
from gridkit.core.types import Cancel, Order
from gridkit.plugins.grids import (
    AsymmetricGrid,
    FibonacciGrid,
    GeometricGrid,
    StaticGrid,
    SymmetricGrid,
)
from gridkit.plugins.grids.cells import grid_lines, grid_margin
from gridkit.plugins.grids.controls import net_position
from gridkit.runtime.journal import CancelRequested, Mark, OrderRequested
from gridkit.testing import GridStrategyContract, StrategyRun, build, sample_bars, step_strategy

EX = Path(__file__).resolve().parent.parent / "examples" / "data"
XRP = "XRP/USDT:USDT"
FEES = {"maker_fee": 0.0002, "taker_fee": 0.0005}


def market(leverage: float = 3, mode: str = "one-way") -> str:
    return (f'[market]\ntype = "linear"\nmarkets = "{EX.as_posix()}/markets.json"\n'
            f'leverage = {leverage}\nposition_mode = "{mode}"\n'
            f'funding = "{EX.as_posix()}/XRP_USDT_USDT-8h-funding_rate.feather"\n')


@cache
def xrp_bars() -> tuple[Bar, ...]:
    """The real XRP perpetual's 5m bars from 2021-11-18 00:00 (where its funding file starts)."""
    import pandas as pd

    d = pd.read_feather(EX / "XRP_USDT_USDT-5m-futures.feather")
    d = d[d.date >= "2021-11-18"]
    return tuple(Bar(int(t.value // 10**6), float(o), float(h), float(lo), float(c), float(v))
                 for t, o, h, lo, c, v in zip(d.date, d.open, d.high, d.low, d.close, d.volume,
                                              strict=True))


def recording(cls: type) -> type:
    """``cls`` that logs, on every bar, the lane's live orders before it acts and what it
    returned: ``(index, close, live orders, actions, stopped, range_paused, recentres)``."""

    class Recording(cls):  # type: ignore[misc,valid-type]
        name = cls.name

        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.log: list[tuple[Any, ...]] = []

        def on_bar(self, ctx: Any) -> Any:
            live = dict(ctx.open_orders)
            out = list(super().on_bar(ctx) or ())
            self.log.append((ctx.index, ctx.bar.close, live, out, self.stopped,
                             self.range_paused, self.recentres))
            return out

    return Recording


def perp(cls: type, options: dict[str, Any], bars: Any = None, capital: float = 3000.0,
         **kw: Any) -> StrategyRun:
    strategy = build(recording(cls), options)
    return step_strategy(strategy, bars if bars is not None else xrp_bars(), symbol=XRP,
                         capital=capital, pipeline=kw.pop("pipeline", market()),
                         fill_options=FEES, **kw)


def spot(cls: type, options: dict[str, Any], capital: float = 100_000.0) -> StrategyRun:
    return step_strategy(build(recording(cls), options), sample_bars(), capital=capital,
                         fill_options={"maker_fee": 0.001, "taker_fee": 0.001})


def requested_after(run: StrategyRun, ts: int) -> list[Order]:
    return [r.order for r in run.records if type(r) is OrderRequested and r.ts > ts]


def bar_marks(run: StrategyRun) -> list[Mark]:
    """The account marked at each bar's close (a funding payment marks it too, between bars)."""
    at = {r.ts: r for r in run.records if type(r) is Mark}
    return [at[b.ts] for b in xrp_bars()]


def key(o: Order) -> tuple[str, float, float, int]:
    return (o.side, o.price, o.qty, o.tag)


STATIC = {"lower": 1.0, "upper": 1.18, "grids": 18, "qty": 100.0}


# --- stop-loss and take-profit ------------------------------------------------------------------


@pytest.mark.parametrize("on_stop", ["cancel", "close"])
def test_stop_loss_price_stops_the_grid_at_the_first_close_below(on_stop: str) -> None:
    bars = xrp_bars()
    sl = 1.05
    k = next(i for i, b in enumerate(bars) if b.close <= sl)  # the afternoon of the 18th
    assert 100 < k < len(bars) - 100
    run = perp(StaticGrid, {**STATIC, "stop_loss": sl, "on_stop": on_stop})
    g = run.strategy
    assert g.stopped == f"stop-loss at 1.05 (close {bars[k].close!r})"
    assert run.summary["components"]["strategy"]["stopped"] == g.stopped
    for index, _close, live, out, stopped, *_ in g.log:
        if index < k:  # running: a grid's orders are live, nothing stops it
            assert stopped is None and live
        elif index == k:  # the stop: every live order cancelled, the position closed or not
            assert stopped == g.stopped
            cancelled = {a.order_id for a in out if isinstance(a, Cancel)}
            assert set(live) <= cancelled  # and the follow-ups of this bar's fills:
            assert {r.order.id for r in run.records if type(r) is OrderRequested
                    and r.ts == bars[k].ts and r.order.tag >= 0} == cancelled - set(live)
            orders = [a for a in out if isinstance(a, Order)]
            if on_stop == "close":
                assert len(orders) == 1 and orders[0].kind == "market"
                assert orders[0].side == "sell" and orders[0].reduce_only
            else:
                assert orders == []
        else:  # stopped for good: nothing live, nothing sent
            assert live == {} and out == []
    assert requested_after(run, bars[k].ts) == []
    lane = run.summary["symbols"][XRP]
    assert run.summary["open_orders"] == 0
    if on_stop == "close":  # sold at the next bar's open
        close_fill = [f for f in run.fills if f.tag == -1][-1]
        assert close_fill.ts == bars[k + 1].ts and close_fill.price == bars[k + 1].open
        assert lane["position"] == 0.0
    else:  # the position the cells held at the stop stays
        assert lane["position"] == pytest.approx(net_position(g.cells))
        assert lane["position"] > 0


def test_take_profit_price_on_a_short_grid_buys_it_back() -> None:
    bars = xrp_bars()
    tp = 1.14
    k = next(i for i, b in enumerate(bars) if b.close >= tp)  # the spike of the 18th
    run = perp(StaticGrid, {**STATIC, "direction": "short", "take_profit": tp,
                            "on_stop": "close"})
    g = run.strategy
    assert g.stopped == f"take-profit at 1.14 (close {bars[k].close!r})"
    stop = next(entry for entry in g.log if entry[0] == k)
    closing = [a for a in stop[3] if isinstance(a, Order)]
    assert len(closing) == 1 and closing[0].side == "buy" and closing[0].kind == "market"
    assert run.summary["symbols"][XRP]["position"] == 0.0
    assert requested_after(run, bars[k].ts) == []


@pytest.mark.parametrize("which", ["stop_loss_equity", "take_profit_equity"])
def test_equity_triggers_fire_on_the_first_bar_past_the_fraction(which: str) -> None:
    # The equity path of the same grid without triggers: find where it first passes.
    opts = {**STATIC, "direction": "long" if which == "stop_loss_equity" else "short"}
    free = perp(StaticGrid, opts)
    equity = [m.equity for m in bar_marks(free)]
    change = [e / 3000.0 - 1.0 for e in equity]
    level = -0.01 if which == "stop_loss_equity" else 0.01
    passed = (lambda x: x <= level) if level < 0 else (lambda x: x >= level)
    k = next(i for i, x in enumerate(change) if passed(x))
    assert 0 < k < len(change) - 1
    run = perp(StaticGrid, {**opts, which: level})
    g = run.strategy
    assert g.stopped is not None and g.stopped.startswith(
        "equity stop-loss at -1.00%" if level < 0 else "equity take-profit at +1.00%")
    assert next(e[0] for e in g.log if e[4] is not None) == k
    # Until the stop the two runs are the same run.
    assert [m.equity for m in bar_marks(run)][:k + 1] == equity[:k + 1]
    assert requested_after(run, xrp_bars()[k].ts) == []


def test_a_stop_already_crossed_at_the_start_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"strategy.stop_loss: 1.1 is not below the first "
                                          r"close 1.0924: the grid would stop at once"):
        perp(StaticGrid, {**STATIC, "stop_loss": 1.1})
    with pytest.raises(ConfigError, match=r"strategy.take_profit: 1.05 is not above"):
        perp(StaticGrid, {**STATIC, "take_profit": 1.05})
    with pytest.raises(ConfigError, match="take_profit: must be above stop_loss"):
        build(StaticGrid, {**STATIC, "stop_loss": 1.1, "take_profit": 1.05})
    with pytest.raises(ConfigError, match=r"stop_loss_equity: must be a fraction .* \(-1, 0\)"):
        build(StaticGrid, {**STATIC, "stop_loss_equity": 0.1})


def test_spot_stop_loss_sells_the_base_and_the_grid_stays_stopped() -> None:
    bars = sample_bars()
    sl = 54000.0
    k = next(i for i, b in enumerate(bars) if b.close <= sl)
    run = spot(StaticGrid, {"lower": 50000.0, "upper": 58000.0, "grids": 16, "qty": 0.05,
                            "stop_loss": sl, "on_stop": "close"})
    assert run.strategy.stopped == f"stop-loss at 54000.0 (close {bars[k].close!r})"
    assert run.summary["final_base"] == pytest.approx(0.0, abs=1e-12)
    assert run.summary["open_orders"] == 0
    assert requested_after(run, bars[k].ts) == []


def test_the_stop_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gridkit.strategy"):
        perp(StaticGrid, {**STATIC, "stop_loss": 1.05})
    lines = [r.getMessage() for r in caplog.records if "grid stopped" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{XRP}: grid stopped: stop-loss at 1.05")


def test_a_stopped_grid_stays_stopped_across_a_resume(tmp_path: Path) -> None:
    """A run stopped after the grid's stop and resumed from its store: the grid is still
    stopped (its state is in the snapshot) and ends exactly as the run straight through."""
    import os
    import signal

    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = (EX.parent / "perpetual.toml").read_text().replace(
        'direction = "neutral"', 'direction = "long"\nstop_loss = 1.05\non_stop = "close"')

    def build_(db: str) -> Any:
        return build_pipeline(parse_pipeline(text, base_dir=EX.parent),
                              store_path=str(tmp_path / db))

    whole = run_pipeline(build_("a.db"))
    stopped = whole["components"]["strategy"]["stopped"]
    assert stopped.startswith("stop-loss at 1.05")
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 700 and not sent:  # the stop is at bar ~650 of the run
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    first = run_pipeline(build_("b.db"), stop)
    assert first["status"] == "stopped"
    assert first["components"]["strategy"]["stopped"] == stopped
    resumed = run_pipeline(build_("b.db"), resume=True)
    assert resumed["components"]["strategy"]["stopped"] == stopped
    assert resumed["final_equity"] == whole["final_equity"]
    assert resumed["orders_placed"] == whole["orders_placed"]


def test_the_stop_survives_the_snapshot() -> None:
    run = perp(StaticGrid, {**STATIC, "stop_loss": 1.05})
    g = run.strategy
    again = build(type(g), {**STATIC, "stop_loss": 1.05})
    again.restore(pickle.loads(pickle.dumps(g.snapshot())))
    assert again.stopped == g.stopped and again.stats()["stopped"] == g.stopped


# --- range exit ---------------------------------------------------------------------------------

RANGE = {"lower": 1.06, "upper": 1.12, "grids": 12, "qty": 100.0}


def outside(bars: Any, lo: float, hi: float) -> list[bool]:
    return [not lo <= b.close <= hi for b in bars]


def test_hold_keeps_the_orders_outside_the_range() -> None:
    bars = xrp_bars()
    out = outside(bars, 1.06, 1.12)
    assert any(out[:200]) and any(out[200:400])  # above in the morning, below later
    g = perp(StaticGrid, RANGE).strategy
    for index, _c, live, actions, *_ in g.log:
        if out[index]:
            assert live and not any(isinstance(a, Cancel) for a in actions)


def test_pause_cancels_outside_and_restores_exactly_the_cells_orders_inside() -> None:
    bars = xrp_bars()
    out = outside(bars, 1.06, 1.12)
    run = perp(StaticGrid, {**RANGE, "on_exit": "pause"})
    g = run.strategy
    by_id = {o.id: o for o in run.orders}
    paused_with: Counter = Counter()
    pauses = resumes = 0
    for index, _c, live, actions, _stopped, paused, _r in g.log:
        assert paused == out[index]
        was_out = index > 0 and out[index - 1]
        if out[index] and not was_out:  # leaving: every order of the grid cancelled
            pauses += 1
            assert actions and all(isinstance(a, Cancel) for a in actions)
            cancelled = {a.order_id for a in actions}
            # what was live, and the follow-ups of this bar's fills (sent, then cancelled)
            assert set(live) <= cancelled
            paused_with = Counter(key(by_id[i]) for i in cancelled)
            assert len(cancelled) == 12  # one per cell
        elif out[index]:  # outside: nothing live, nothing sent
            assert live == {} and actions == []
        elif was_out:  # back inside: each cell's order again, exactly as it was
            resumes += 1
            assert live == {}
            assert Counter(key(a) for a in actions) == paused_with
    assert pauses >= 2 and resumes >= 2
    assert run.summary["symbols"][XRP]["position"] == pytest.approx(net_position(g.cells))


def test_recenter_lays_the_same_grid_around_the_close_after_exit_bars() -> None:
    bars = xrp_bars()
    run = perp(StaticGrid, {**RANGE, "on_exit": "recenter", "exit_bars": 3})
    g = run.strategy
    # The rule, on the closes alone: 3 closes outside in a row, then lines * close / centre.
    lo, hi, n, expected = 1.06, 1.12, 0, []
    for i, b in enumerate(bars):
        if lo <= b.close <= hi:
            n = 0
            continue
        n += 1
        if n == 3:
            k = b.close / math.sqrt(lo * hi)
            lo, hi, n = lo * k, hi * k, 0
            expected.append(i)
    assert len(expected) >= 2
    got = [e[0] for e, before in zip(g.log[1:], g.log, strict=False) if e[6] > before[6]]
    assert got == expected
    assert g.stats()["recentres"] == len(expected)
    assert g.cells.lines[0] == pytest.approx(lo) and g.cells.lines[-1] == pytest.approx(hi)
    assert g.cells.lines[-1] / g.cells.lines[0] == pytest.approx(1.12 / 1.06)
    # Each re-centring: every live order cancelled, one market order for the difference, then
    # 12 cells' orders; the position always equals what the cells imply.
    for index, _c, live, actions, *_ in g.log:
        if index in expected:
            cancels = [a for a in actions if isinstance(a, Cancel)]
            assert {a.order_id for a in cancels} >= set(live)
            assert len([a for a in actions if isinstance(a, Order) and a.kind == "limit"]) == 12
            assert len([a for a in actions if isinstance(a, Order) and a.kind == "market"]) <= 1
    assert run.summary["symbols"][XRP]["position"] == pytest.approx(net_position(g.cells))
    assert run.summary["orders_rejected"] == 0
    # The round trips of the replaced cells are kept: the count is every completed cell's
    # sell (a limit sell of a cell that a limit buy had filled), over all layings.
    assert g.banked_trips > 0
    assert g.stats()["round_trips"] == g.banked_trips + g.cells.round_trips


def test_close_on_exit_stops_after_exit_bars_outside() -> None:
    bars = xrp_bars()
    out = outside(bars, 1.06, 1.12)
    k = next(i for i in range(1, len(bars)) if out[i] and out[i - 1])
    run = perp(StaticGrid, {**RANGE, "on_exit": "close", "exit_bars": 2})
    g = run.strategy
    side = "above" if bars[k].close > 1.12 else "below"
    line = 1.12 if side == "above" else 1.06
    assert g.stopped == f"range exit {side} {line!r} (close {bars[k].close!r})"
    assert next(e[0] for e in g.log if e[4] is not None) == k
    assert run.summary["symbols"][XRP]["position"] == 0.0
    assert requested_after(run, bars[k].ts) == []


@pytest.mark.parametrize(("cls", "options"), [
    (FibonacciGrid, {"lower": 1.06, "upper": 1.12, "qty": 100.0}),
    (GeometricGrid, {"spacing": 0.004, "levels": 4, "qty": 100.0, "growth": 1.2}),
    (AsymmetricGrid, {"qty": 100.0, "spacing_up": 0.004, "spacing_down": 0.004,
                      "levels_up": 4, "levels_down": 4}),
])
def test_every_fixed_range_grid_pauses_and_recentres(cls: type, options: dict) -> None:
    paused = perp(cls, {**options, "on_exit": "pause"}).strategy
    assert any(e[5] for e in paused.log)
    run = perp(cls, {**options, "on_exit": "recenter", "exit_bars": 2})
    g = run.strategy
    assert g.stats()["recentres"] >= 1
    assert run.summary["symbols"][XRP]["position"] == pytest.approx(net_position(g.cells))
    assert run.summary["orders_rejected"] == 0


# --- directions on a perpetual ------------------------------------------------------------------

GRIDS = [
    (StaticGrid, STATIC),
    (GeometricGrid, {"spacing": 0.005, "levels": 6, "qty": 100.0}),
    (FibonacciGrid, {"lower": 1.0, "upper": 1.18, "qty": 100.0}),
    (AsymmetricGrid, {"qty": 100.0, "spacing_up": 0.005, "spacing_down": 0.005}),
    (SymmetricGrid, {"levels": 5, "spacing": 0.005, "qty": 100.0}),
]


@pytest.mark.parametrize("direction", ["long", "short", "neutral"])
@pytest.mark.parametrize(("cls", "options"), GRIDS, ids=[c.name for c, _ in GRIDS])
def test_directions_on_the_real_perpetual(cls: type, options: dict, direction: str) -> None:
    bars = xrp_bars()
    c0 = bars[0].close
    run = perp(cls, {**options, "direction": direction})
    g = run.strategy
    first = [r.order for r in run.records if type(r) is OrderRequested and r.ts == bars[0].ts]
    markets = [o for o in first if o.kind == "market"]
    lines = start_lines(g, c0)
    qtys = g.cells.qtys
    above = sum(q for line, q in zip(lines, qtys, strict=False) if line >= c0)
    below = sum(q for line, q in zip(lines, qtys, strict=False) if line < c0)
    opening = {"long": above, "short": -below, "neutral": 0.0}[direction]
    if direction == "long":
        assert [(o.side, o.qty) for o in markets] == [("buy", pytest.approx(above))]
    elif direction == "short":
        assert [(o.side, o.qty) for o in markets] == [("sell", pytest.approx(below))]
    else:  # starts flat
        assert markets == []
    # After bar 1: the opening position, and the cells' limit fills of that bar.
    limit_1 = sum(f.qty if f.side == "buy" else -f.qty for f in run.fills
                  if f.ts == bars[1].ts and f.tag >= 0)
    marks = bar_marks(run)
    assert marks[1].position == pytest.approx(opening + limit_1, abs=1e-9)
    lane = run.summary["symbols"][XRP]
    assert lane["position"] == pytest.approx(net_position(g.cells), abs=1e-9)
    assert run.summary["orders_rejected"] == 0 and run.summary["unreconciled_orders"] == []
    assert run.summary["funding_paid"] != 0.0  # real funding was paid or received


def start_lines(g: Any, c0: float) -> list[float]:
    """The lines a grid was laid on at the first close ``c0`` (symmetric re-lays its own)."""
    if isinstance(g, SymmetricGrid):
        c = g.config
        return grid_lines(c0 * (1 - c.levels * c.spacing), c0 * (1 + c.levels * c.spacing),
                          2 * c.levels, c.mode)
    return g.cells.lines


def test_a_short_grid_in_hedge_mode_trades_the_short_side() -> None:
    run = perp(StaticGrid, {**STATIC, "direction": "short"}, pipeline=market(mode="hedge"))
    hedge = run.summary["symbols"][XRP]["hedge"]
    assert hedge["long"] == 0.0 and hedge["short"] < 0
    assert hedge["short"] == pytest.approx(net_position(run.strategy.cells))
    assert all(o.position_side == "short" for o in run.orders)
    assert run.summary["orders_rejected"] == 0


@pytest.mark.parametrize("direction", ["short", "neutral"])
@pytest.mark.parametrize(("cls", "options"), GRIDS, ids=[c.name for c, _ in GRIDS])
def test_spot_refuses_short_and_neutral(cls: type, options: dict, direction: str) -> None:
    opts = dict(options)
    if "lower" in opts:  # the BTC sample's prices
        opts.update(lower=50000.0, upper=58000.0)
    opts.update(qty=0.01, direction=direction)
    with pytest.raises(ConfigError, match=rf"^strategy.direction: a {direction} grid sells "
                                          r"short, which needs a perpetual"):
        spot(cls, opts)


# --- leverage -----------------------------------------------------------------------------------


def static_notional() -> float:
    lines = grid_lines(1.0, 1.18, 18, "arithmetic")
    return grid_margin(lines, [100.0] * 18, xrp_bars()[0].close)


def test_leverage_above_the_instruments_maximum_is_one_line() -> None:
    notional = static_notional()
    assert notional < 10_000  # XRP's first bracket: up to 75x
    with pytest.raises(ConfigError) as err:
        perp(StaticGrid, STATIC, pipeline=market(leverage=100))
    assert str(err.value).splitlines() == [
        f"market.leverage: 100 is above XRP/USDT:USDT's maximum 75 (Binance's bracket for a "
        f"{notional:,.0f} notional)"]


def test_margin_beyond_the_balance_is_one_warning_line(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    with caplog.at_level(logging.WARNING):
        perp(StaticGrid, STATIC, capital=500.0, pipeline=market(leverage=2))
    lines = [r.getMessage() for r in caplog.records if "of margin" in r.getMessage()]
    need = static_notional() / 2
    assert need > 500
    assert len(lines) == 1 and lines[0].startswith(f"{XRP}: the grid needs ")
    assert "of margin" in lines[0] and "the account has 500.00" in lines[0]


def test_preflight_names_the_leverage_error() -> None:
    from gridkit.testing import context

    ctx = context(XRP, 3000.0, xrp_bars()[0])
    ctx.position.kind, ctx.position.leverage = "linear", 80.0
    found = build(StaticGrid, STATIC).preflight(ctx, 0.0002, 0.0005)
    assert ("error", f"market.leverage: 80 is above XRP/USDT:USDT's maximum 75 (Binance's "
                     f"bracket for a {static_notional():,.0f} notional)") in found


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sl=st.floats(0.93, 0.995), on_stop=st.sampled_from(["cancel", "close"]),
       direction=st.sampled_from(["long", "short", "neutral"]),
       grid=st.sampled_from([0, 3]))
def test_after_a_stop_nothing_is_live_and_nothing_is_sent(sl: float, on_stop: str,
                                                          direction: str, grid: int) -> None:
    cls, options = GRIDS[grid]
    bars = xrp_bars()
    level = round(bars[0].close * sl, 4)
    run = perp(cls, {**options, "direction": direction, "stop_loss": level, "on_stop": on_stop})
    g = run.strategy
    hit = [i for i, b in enumerate(bars) if b.close <= level]
    if not hit:
        assert g.stopped is None
        return
    k = hit[0]
    assert g.stopped == f"stop-loss at {level!r} (close {bars[k].close!r})"
    assert requested_after(run, bars[k].ts) == []
    assert all(e[2] == {} and e[3] == [] for e in g.log if e[0] > k)
    assert run.summary["open_orders"] == 0
    cancelled = {r.order_id for r in run.records if type(r) is CancelRequested}
    assert set(g.log[k][2]) <= cancelled
    if on_stop == "close":
        assert run.summary["symbols"][XRP]["position"] == 0.0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(below=st.floats(0.005, 0.05), above=st.floats(0.005, 0.05), grids=st.integers(2, 14))
def test_pause_then_reentry_restores_exactly_the_cells_orders(below: float, above: float,
                                                              grids: int) -> None:
    c0 = xrp_bars()[0].close
    lo, hi = round(c0 * (1 - below), 4), round(c0 * (1 + above), 4)
    run = perp(StaticGrid, {"lower": lo, "upper": hi, "grids": grids, "qty": 50.0,
                            "on_exit": "pause"})
    g = run.strategy
    by_id = {o.id: o for o in run.orders}
    cancelled_at_pause: Counter | None = None
    for index, close, live, actions, _s, paused, _r in g.log:
        assert paused == (not lo <= close <= hi)
        if paused and cancelled_at_pause is None:
            cancelled_at_pause = Counter(key(by_id[a.order_id]) for a in actions
                                         if isinstance(a, Cancel))
            assert len(cancelled_at_pause) == grids
        elif paused:
            assert live == {} and actions == []
        elif cancelled_at_pause is not None:  # re-entry: the same orders, all of them
            assert Counter(key(a) for a in actions) == cancelled_at_pause
            cancelled_at_pause = None
        del index


# --- the contract, with the controls on ---------------------------------------------------------


class TestStopLossContract(GridStrategyContract):
    component_class = StaticGrid
    options = {"lower": 50000.0, "upper": 58000.0, "grids": 16, "qty": 0.05,
               "stop_loss": 53000.0, "on_stop": "close"}


class TestPauseContract(GridStrategyContract):
    component_class = StaticGrid
    options = {"lower": 54000.0, "upper": 57500.0, "grids": 10, "qty": 0.05,
               "on_exit": "pause"}


class TestRecenterContract(GridStrategyContract):
    component_class = AsymmetricGrid
    options = {"qty": 0.05, "on_exit": "recenter", "exit_bars": 5}


VOL = {"levels": 5, "qty": 100.0, "measure": "atr", "k": 2.0, "min_spacing": 0.004,
       "cooldown": 24}


@pytest.mark.parametrize("direction", ["long", "short", "neutral"])
def test_volatility_adjusted_directions_on_the_real_perpetual(direction: str) -> None:
    """The re-centring grid in each direction: its first laying opens the direction's
    position (long buys the cells above, short sells the cells below, neutral nothing), each
    re-laying trades the difference, and the position always equals what the cells imply."""
    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    run = perp(VolatilityAdjustedGrid, {**VOL, "direction": direction},
               pipeline=market() + '[[features]]\nuse = "atr"\nperiod = 14\n')
    g = run.strategy
    requested = [r for r in run.records if type(r) is OrderRequested]
    first_ts = requested[0].ts
    opening = [r.order for r in requested if r.ts == first_ts and r.order.kind == "market"]
    expect = {"long": "buy", "short": "sell", "neutral": None}[direction]
    assert [o.side for o in opening] == ([expect] if expect else [])
    if expect:
        assert opening[0].qty == pytest.approx(5 * 100.0)  # half the cells, one side
    lane = run.summary["symbols"][XRP]
    assert lane["position"] == pytest.approx(net_position(g.cells), abs=1e-9)
    assert g.relays >= 1 and run.summary["orders_rejected"] == 0


def test_volatility_adjusted_takes_the_stop_loss_of_every_grid() -> None:
    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    bars = xrp_bars()
    stop = round(min(b.close for b in bars[:300]) * 1.001, 4)
    run = perp(VolatilityAdjustedGrid, {**VOL, "direction": "neutral", "stop_loss": stop,
                                        "on_stop": "close"},
               pipeline=market() + '[[features]]\nuse = "atr"\nperiod = 14\n')
    g = run.strategy
    assert g.stopped is not None and g.stopped.startswith("stop-loss")
    hit = next(i for i, b in enumerate(bars) if b.close <= stop)
    assert requested_after(run, bars[hit].ts) == []
    assert run.summary["symbols"][XRP]["position"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("direction", ["long", "short", "neutral"])
def test_trailing_directions_on_the_real_perpetual(direction: str) -> None:
    """The trailing grid in each direction on the real XRP perpetual: the opening position is
    the direction's, the window trails, and at the end (and at every shift) the position equals
    what the window's cells imply."""
    from gridkit.plugins.grids.trailing import TrailingGrid

    bars = xrp_bars()
    c0 = bars[0].close
    opts = {"lower": round(c0 * 0.97, 4), "upper": round(c0 * 1.03, 4), "grids": 12,
            "qty": 100.0, "trail": "both", "direction": direction}
    run = perp(TrailingGrid, opts)
    g = run.strategy
    first = [r.order for r in run.records if type(r) is OrderRequested and r.ts == bars[0].ts]
    markets = [o.side for o in first if o.kind == "market"]
    assert markets == {"long": ["buy"], "short": ["sell"], "neutral": []}[direction]
    assert g.shifts_up + g.shifts_down >= 3
    lane = run.summary["symbols"][XRP]
    assert lane["position"] == pytest.approx(net_position(g.cells), abs=1e-9)
    assert run.summary["orders_rejected"] == 0


@pytest.mark.parametrize("direction", ["short", "neutral"])
def test_spot_refuses_a_short_or_neutral_trailing_grid(direction: str) -> None:
    from gridkit.plugins.grids.trailing import TrailingGrid

    opts = {"lower": 50000.0, "upper": 58000.0, "grids": 8, "qty": 0.01,
            "direction": direction}
    with pytest.raises(ConfigError, match=rf"^strategy.direction: a {direction} grid sells "
                                          r"short, which needs a perpetual"):
        spot(TrailingGrid, opts)
