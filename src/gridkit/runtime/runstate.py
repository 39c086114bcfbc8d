"""The running state of a run: its account, ledger, journal, lanes and counters."""

from __future__ import annotations

from typing import Any

from attrs import define, field

from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Order
from gridkit.runtime.account import Account
from gridkit.runtime.build import Lane, Pipeline
from gridkit.runtime.context import Context
from gridkit.runtime.journal import Journal
from gridkit.runtime.ledger import Ledger
from gridkit.runtime.timing import Timer


@define
class LaneRun:
    """The running state of one lane: its context, counters, and what waits to be sent."""

    lane: Lane
    ctx: Context
    #: Raw events taken from the source (what a resume skips).
    consumed: int = 0
    bars_seen: int = 0
    accepted: int = 0
    started: bool = False
    first_ts: int | None = None
    #: (ts, close) of the bar the strategy first started on, kept when a restart moves
    #: ``first_ts``: where the run's duration and its buy-and-hold benchmark begin.
    start_bar: tuple[int, float] | None = None
    #: Events that are not bars, by kind: [seen, accepted].
    ticks: dict[str, list[int]] = field(factory=dict)
    #: Orders and cancels decided on this event, sent by the execute stage.
    actions: list[Order | Cancel] = field(factory=list)
    #: Actions held while trading is paused.
    deferred: list[Order | Cancel] = field(factory=list)
    #: The source's ``down`` reason as the lane last applied it (None: data flowing).
    data_down: str | None = None
    folder: Any = None
    #: The lane's bar path, for the bar still open in the folder when a replay ends.
    flush_bar: Any = None
    fused: list[str] = field(factory=list)
    fused_state: list[Any] = field(factory=list)
    next_funding: float = float("inf")
    funding_i: int = 0
    funding_paid: float = 0.0
    #: The fused features' state arrays as a resumed run saved them (copied in at start).
    fused_saved: list[Any] = field(factory=list)
    #: The regime stage's minimum-dwell state: the challenger label and the events in a row
    #: it has been the candidate (:mod:`gridkit.runtime.regime`).
    regime_pending: str | None = None
    regime_count: int = 0


@define
class Run:
    """The mutable state of one run of a pipeline; :meth:`summary` is what the CLI prints."""

    pipeline: Pipeline
    account: Account
    ledger: Ledger
    lanes: list[LaneRun]
    journal: Journal = field(factory=Journal)
    timer: Timer = field(factory=Timer)
    run_id: int | None = None
    opened: bool = False  # the store holds a run record that must be finished
    resumed: bool = False
    seen: int = 0
    orders_placed: int = 0
    orders_cancelled: int = 0
    rejected: dict[str, int] = field(factory=dict)
    deferred: int = 0
    halted: str | None = None
    #: The orders a halt cancelled (what each had left to fill), proposed again when the halt
    #: is lifted (:func:`gridkit.runtime.apply.unhalt`).
    halt_orders: list[Order] = field(factory=list)
    status: str = "running"
    error: str | None = None
    elapsed: float = 0.0
    #: Set by SIGINT / SIGTERM: the loop ends after the current event.
    stopping: str | None = None
    #: Paper and live: commit before sending orders and as reports arrive.
    eager: bool = False
    #: Tunable changes, newest last, for rollback: (path, old config, new config).
    tuned: list[tuple[str, Any, Any]] = field(factory=list)
    by_symbol: dict[str, LaneRun] = field(factory=dict)
    #: Paper and live: the run's :class:`~gridkit.runtime.heartbeat.Heartbeat` (None when off).
    heartbeat: Any = None
    #: How the backtest ran: ``{"fused": bool, "why": reason it was not fused, or ""}``
    #: (:mod:`gridkit.fused`); None for paper and live runs.
    path: dict[str, Any] | None = None
    #: A fused run's open orders at its end (its executor never held them as objects).
    fused_open_orders: int | None = None

    @property
    def ctx(self) -> Context:
        """The first lane's context."""
        return self.lanes[0].ctx

    def summary(self) -> dict[str, Any]:
        """The run summary (DESIGN.md §7), JSON-able."""
        from gridkit.summary import summarize

        return summarize(self)


def component_at(run: Run, path: str) -> tuple[Any, LaneRun]:
    """The component at TOML ``path`` (``strategy``, ``risk[0]``, ``strategy@ETH/USDT``) and
    the lane it belongs to (the first lane for a shared one)."""
    p = run.pipeline
    for component in p.components():
        spec, _ = p.origin(component)
        if spec.path == path:
            owner = next((lr for lr in run.lanes if component in lr.lane.components()),
                         run.lanes[0])
            return component, owner
    paths = ", ".join(p.origin(c)[0].path for c in p.components())
    raise ConfigError(f"no component at {path!r}; components are at: {paths}")
