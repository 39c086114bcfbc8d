"""The promises of docs/plugin-reference.rst, each run through the real engine.

What a strategy's orders become, when its answers to reports are sent, what a market order's
price means, how tags and partial fills reach it, what a halt does; and that the public API
(``gridkit.__all__``) holds what a plugin needs and the reference documents it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import gridkit
from gridkit import (
    Bar,
    Cancel,
    Cancelled,
    Context,
    Expired,
    Fill,
    Order,
    Reject,
    RiskCheck,
    Strategy,
)
from gridkit.testing import step_strategy

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: Six calm bars: bar i opens at 100 + i, trades 99 + i .. 102 + i, closes at 101 + i.
BARS = [Bar(i * 60_000, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 1.0) for i in range(6)]
FREE = {"maker_fee": 0.0, "taker_fee": 0.0}


class Scripted(Strategy):
    """Returns what ``plan[bar index]`` makes; records every callback."""

    name = "scripted"

    def __init__(self, plan: dict[int, Any] | None = None, **answers: Any) -> None:
        super().__init__()
        self.plan = plan or {}
        self.answers = answers
        self.calls: list[tuple[str, int, Any]] = []

    def _at(self, ctx: Context) -> Any:
        make = self.plan.get(ctx.index)
        return make(ctx) if make else None

    def start(self, ctx: Context) -> Any:
        self.calls.append(("start", ctx.index, None))
        return self._at(ctx)

    def on_bar(self, ctx: Context) -> Any:
        return self._at(ctx)

    def _answer(self, what: str, report: Any, ctx: Context) -> Any:
        self.calls.append((what, ctx.index, report))
        make = self.answers.get(what)
        return make(report, ctx) if make else None

    def on_fill(self, fill: Fill, ctx: Context) -> Any:
        return self._answer("on_fill", fill, ctx)

    def on_rejected(self, rejection: Any, ctx: Context) -> Any:
        return self._answer("on_rejected", rejection, ctx)

    def on_cancelled(self, report: Any, ctx: Context) -> Any:
        return self._answer("on_cancelled", report, ctx)


class RefuseBuys(RiskCheck):
    """Refuses every buy."""

    name = "refuse-buys"

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        return Reject("no buys") if order.side == "buy" else order


def requested_per_bar(run: Any) -> dict[int, int]:
    ts_of = {b.ts: i for i, b in enumerate(BARS)}
    return dict(Counter(ts_of[r.ts] for r in run.records
                        if type(r).__name__ == "OrderRequested"))


def test_start_and_every_callback_may_return_none() -> None:
    strategy = Scripted()
    run = step_strategy(strategy, BARS)
    assert run.summary["status"] == "finished" and run.orders == []
    assert strategy.calls == [("start", 0, None)]


def test_orders_decided_on_a_bar_are_sent_on_that_bar_and_live_from_the_next() -> None:
    run = step_strategy(Scripted({0: lambda ctx: [ctx.order("buy", 1.0, 101.5)]}), BARS,
                        fill_options=FREE)
    assert requested_per_bar(run) == {0: 1}
    # Bar 0 reaches 101.5 too (high 102), but the order is live only from bar 1.
    [fill] = run.fills
    assert (fill.ts, fill.price) == (BARS[1].ts, 101.5)


def test_answers_to_refusals_go_out_in_further_rounds_at_most_four_per_event() -> None:
    def again(rejection: Any, ctx: Context) -> list[Order]:
        o = rejection.order
        return [ctx.order(o.side, o.qty, o.price)]

    strategy = Scripted({0: lambda ctx: [ctx.order("buy", 1.0, 90.0)]}, on_rejected=again)
    run = step_strategy(strategy, BARS, risk=[RefuseBuys()])
    # Round 1 sends the start order, rounds 2-4 the answers to each refusal; the fourth
    # refusal's answer waits for the next event, which sends it and three more.
    assert requested_per_bar(run) == {i: 4 for i in range(6)}
    answered = [index for what, index, _ in strategy.calls if what == "on_rejected"]
    assert answered == [i for i in range(6) for _ in range(4)]
    assert {r.by for r in run.rejected} == {"refuse-buys"}


def test_answers_to_reports_before_the_strategy_stage_go_out_with_its_orders() -> None:
    # An IOC limit that does not cross at the next open expires there (bar 1's fills stage):
    # on_cancelled answers on bar 1, and its order is sent on bar 1 — in one round with what
    # on_bar decides — live from bar 2.
    strategy = Scripted(
        {0: lambda ctx: [ctx.order("buy", 1.0, 50.0, tif="IOC")],
         1: lambda ctx: [ctx.order("buy", 1.0, 60.0, tag=6)]},
        on_cancelled=lambda report, ctx: [ctx.order("buy", 1.0, 101.0, tag=5)])
    run = step_strategy(strategy, BARS, fill_options=FREE)
    [expired] = run.cancelled
    assert type(expired) is Expired and expired.ts == BARS[1].ts
    assert [c[:2] for c in strategy.calls] == [("start", 0), ("on_cancelled", 1),
                                               ("on_fill", 2)]
    assert requested_per_bar(run) == {0: 1, 1: 2}
    assert [o.tag for o in run.orders] == [-1, 5, 6]  # the answer first, then on_bar's
    [fill] = run.fills
    assert (fill.ts, fill.tag) == (BARS[2].ts, 5)


def test_a_follow_up_of_a_fill_is_sent_on_the_fill_bar() -> None:
    strategy = Scripted(
        {0: lambda ctx: [ctx.order("buy", 1.0, 100.5, tag=3)]},
        on_fill=lambda f, ctx: [ctx.order("sell", f.qty, f.price + 2.0, tag=f.tag + 1)]
        if f.side == "buy" else None)
    run = step_strategy(strategy, BARS, fill_options=FREE)
    buy, sell = run.fills
    assert (buy.ts, buy.tag, sell.tag) == (BARS[1].ts, 3, 4)
    assert requested_per_bar(run) == {0: 1, 1: 1}
    assert sell.ts == BARS[2].ts  # live from the bar after the fill (DESIGN.md §6 rule 3)


def test_a_market_order_fills_at_the_next_open_whatever_its_price() -> None:
    absurd = 1.0
    run = step_strategy(Scripted({0: lambda ctx: [ctx.order("buy", 50.0, absurd, "market")]}),
                        BARS, fill_options=FREE)
    [fill] = run.fills
    assert (fill.ts, fill.price, fill.liquidity) == (BARS[1].ts, BARS[1].open, "taker")
    # The balance is checked at the last mark (101), not at the order's price: 200 base at
    # 101 is more cash than there is, though 200 x 1.0 would fit.
    run = step_strategy(Scripted({0: lambda ctx: [ctx.order("buy", 200.0, absurd, "market")]}),
                        BARS)
    [refused] = run.rejected
    assert (refused.reason, refused.by) == ("insufficient cash", "simulated")
    assert run.fills == []


def test_a_requested_cancel_is_not_reported_back_and_an_unknown_one_is_ignored() -> None:
    strategy = Scripted({0: lambda ctx: [ctx.order("buy", 1.0, 50.0)],
                         1: lambda ctx: [Cancel(next(iter(ctx.open_orders))), Cancel("t-99")]})
    run = step_strategy(strategy, BARS)
    [cancelled] = run.cancelled
    assert type(cancelled) is Cancelled and cancelled.reason == "requested"
    assert [c[0] for c in strategy.calls] == ["start"]
    assert [r.order_id for r in run.records if type(r).__name__ == "CancelRequested"] == ["t-1"]


class HaltAtOnce(RiskCheck):
    """Halts trading on the second bar."""

    name = "halt-at-once"

    def on_bar(self, ctx: Context) -> str | None:
        return "enough" if ctx.index == 1 else None


def test_a_halt_cancels_every_order_and_drops_later_ones_without_callbacks() -> None:
    strategy = Scripted({0: lambda ctx: [ctx.order("buy", 1.0, 50.0)],
                         3: lambda ctx: [ctx.order("buy", 1.0, 50.0)]})
    run = step_strategy(strategy, BARS, risk=[HaltAtOnce()])
    [cancelled] = run.cancelled
    assert cancelled.reason == "requested" and cancelled.ts == BARS[1].ts
    assert len(run.orders) == 1  # bar 3's order never became a request
    assert run.summary["rejected_by"] == {"engine: trading halted": 1}
    assert [c[0] for c in strategy.calls] == ["start"]  # no on_cancelled, no on_rejected


# --- the public API ------------------------------------------------------------------------------


def test_all_holds_what_a_plugin_needs() -> None:
    from gridkit.core.components import BASES
    from gridkit.core.types import EVENT_KINDS, REPORTS
    from gridkit.runtime import journal

    public = set(gridkit.__all__)
    needed = {cls.__name__ for cls in BASES.values()}
    needed |= {cls.__name__ for cls in (*REPORTS, *EVENT_KINDS)}
    # A store tells the journal's records apart; a strategy makes and answers these.
    needed |= {"OrderRequested", "CancelRequested", "Halted", "Paused", "ParamChanged",
               "PhaseChanged", "Mark", "Order", "Cancel", "Reject", "Rejection", "Signal",
               "Context", "RunInfo", "Account", "AccountView", "Position", "Ledger",
               "OrderState", "NoOptions", "OptionError", "option", "hookimpl", "run",
               "GridkitError", "ConfigError", "PluginError", "DataError", "ComponentError"}
    assert needed <= public, sorted(needed - public)
    for name in public:
        assert getattr(gridkit, name) is not None
    assert gridkit.Mark is journal.Mark


def test_every_public_name_is_in_the_api_reference() -> None:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: gridkit\.(\w+)\s*$", api,
                                re.MULTILINE))
    documented |= set(re.findall(r"``gridkit\.(\w+)``", api))
    missing = sorted(set(gridkit.__all__) - documented)
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_the_plugin_reference_names_everything_a_component_reads() -> None:
    ref = (DOCS / "plugin-reference.rst").read_text(encoding="utf-8")
    public = list(Context.__slots__) + [
        n for n, v in vars(Context).items()
        if not n.startswith("_") and (callable(v) or isinstance(v, property))]
    missing = [n for n in public if f"ctx.{n}" not in ref]
    assert not missing, f"docs/plugin-reference.rst does not say what ctx.{missing} is"
    for view in ("cash", "base", "equity", "price", "avg_cost", "drawdown"):
        assert f"ctx.portfolio.{view}" in ref
    assert "ctx.account.positions" in ref


@pytest.mark.parametrize("module", ["runtime.engine", "runtime.build", "runtime.stages",
                                    "runtime.apply", "runtime.state", "runtime.runstate",
                                    "core.plugins"])
def test_the_internals_are_said_to_be_private(module: str) -> None:
    ref = (DOCS / "plugin-reference.rst").read_text(encoding="utf-8")
    assert f"gridkit.{module}" in ref
