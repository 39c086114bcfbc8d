"""The apply path: what the strategy and the risk checks hand the engine, and what it books."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import gridkit
from gridkit import ComponentError, RiskCheck, Strategy
from gridkit.testing import sample_bars, step_strategy


class Halve(RiskCheck):
    """Halves every buy."""

    name = "halve"

    def check(self, order: gridkit.Order, ctx: gridkit.Context) -> Any:
        return attrs.evolve(order, qty=order.qty / 2) if order.side == "buy" else order


class TwoBuys(Strategy):
    """One buy that fills soon and one that never does; watches the open buy quantity."""

    name = "two-buys"
    seen: list[tuple[float, float]] = []

    def start(self, ctx: gridkit.Context) -> list[gridkit.Order]:
        p = ctx.bar.close
        return [ctx.order("buy", 0.02, p * 0.999), ctx.order("buy", 0.02, p * 0.5)]

    def on_bar(self, ctx: gridkit.Context) -> list[gridkit.Order]:
        live = sum(s.remaining for s in ctx.ledger.open.values() if s.order.side == "buy")
        TwoBuys.seen.append((ctx.open_buy_qty, live))
        return []


def test_a_resized_order_is_booked_at_the_size_sent() -> None:
    TwoBuys.seen = []
    run = step_strategy(TwoBuys, sample_bars()[:1600], risk=[Halve()])
    assert [o.qty for o in run.orders] == [0.01, 0.01]  # the requests journalled as sent
    assert [f.qty for f in run.fills] == [0.01]
    # What position-size counts as exposure is what the live buys still have to fill.
    assert all(abs(counted - live) < 1e-12 for counted, live in TwoBuys.seen)
    assert TwoBuys.seen[-1][0] == pytest.approx(0.01)


class Twice(Strategy):
    """Returns one order twice."""

    name = "twice"

    def start(self, ctx: gridkit.Context) -> list[Any]:
        order = ctx.order("buy", 0.001, ctx.bar.close * 0.9)
        return [order, order]


class Junk(Strategy):
    """Returns a string."""

    name = "junk"

    def start(self, ctx: gridkit.Context) -> list[Any]:
        return ["buy 1"]


class Renamer(RiskCheck):
    """Changes the order's id: not allowed."""

    name = "renamer"

    def check(self, order: gridkit.Order, ctx: gridkit.Context) -> Any:
        return attrs.evolve(order, id=order.id + "x")


@pytest.mark.parametrize("strategy, risk, blamed, why", [
    (Twice, [], "strategy 'twice'", "client order id 't-1' is already live"),
    (Junk, [], "strategy 'junk'", "returned 'buy 1', not an Order or a Cancel"),
    (TwoBuys, [Renamer()], "risk 'renamer'", "must return the order (resized, with its id)"),
])
def test_what_the_engine_cannot_send_is_blamed_on_its_author(strategy: Any, risk: list[Any],
                                                             blamed: str, why: str) -> None:
    with pytest.raises(ComponentError) as err:
        step_strategy(strategy, sample_bars()[:20], risk=risk)
    assert blamed in str(err.value) and why in str(err.value)


class Watch(Strategy):
    """Places a buy, then cancels it a few bars later."""

    name = "watch"

    def start(self, ctx: gridkit.Context) -> list[gridkit.Order]:
        self.order = ctx.order("buy", 0.001, ctx.bar.close * 0.5)
        return [self.order]

    def on_bar(self, ctx: gridkit.Context) -> list[Any]:
        return [gridkit.Cancel(self.order.id)] if ctx.index == 5 else []


@pytest.mark.parametrize("fill_model", ["simulated", "simulated-trades"])
def test_reports_carry_the_time_of_the_request(fill_model: str) -> None:
    bars = sample_bars()[:10]
    run = step_strategy(Watch, bars, fill_model=fill_model)
    times = {type(r).__name__: r.ts for r in run.records
             if type(r).__name__ in ("Accepted", "Cancelled")}
    assert times == {"Accepted": bars[0].ts, "Cancelled": bars[5].ts}


def test_end_before_start_is_refused() -> None:
    from gridkit.runtime.pipeline_file import parse_pipeline

    with pytest.raises(gridkit.ConfigError, match=r"pipeline\.end: '2021-01-01' is before start "
                                                  r"'2021-02-01'"):
        parse_pipeline('[pipeline]\nsymbol = "X/Y"\nstart = "2021-02-01"\nend = "2021-01-01"\n'
                       '[source]\nuse = "csv"\npath = "x"\n[strategy]\nuse = "static"\n')
