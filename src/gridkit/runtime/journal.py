"""The journal (outbox): every record of a run, emitted once, to every subscriber.

The engine emits order requests, reports (:mod:`gridkit.core.types`), and the records below;
the store subscribes (and later monitors and the event bus). In paper and live runs the engine
commits the store before an order is sent and as reports arrive (DESIGN.md §11 rule 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import frozen

from gridkit.core.types import Order


@frozen
class OrderRequested:
    """An order the engine is about to send (after the risk checks passed it)."""

    order: Order
    ts: int


@frozen
class CancelRequested:
    """A cancel the engine is about to send."""

    order_id: str
    ts: int


@frozen
class Halted:
    """A risk check halted trading: every order cancelled, none placed from now on."""

    ts: int
    reason: str


@frozen
class Unhalted:
    """A halt was lifted (``by`` says who: an operator's ``gridkit resume-trading``); the
    orders the halt cancelled are proposed again and trading resumes."""

    ts: int
    by: str
    halted: str


@frozen
class Liquidated:
    """The exchange closed a perpetual position at its liquidation price (the run halts)."""

    ts: int
    symbol: str
    qty: float
    price: float
    fee: float


@frozen
class Paused:
    """Trading paused (``reason``) or resumed (``reason`` None), e.g. on stale data."""

    ts: int
    reason: str | None


@frozen
class ParamChanged:
    """Tunable options of the component at ``path`` changed (``old`` and ``new`` by name)."""

    ts: int
    path: str
    old: dict[str, Any]
    new: dict[str, Any]


@frozen
class PhaseChanged:
    """A phased component (attention) moved from one phase to the next."""

    ts: int
    path: str
    old: str
    new: str


@frozen
class RegimeChanged:
    """A lane's regime label changed (after dwell and hysteresis): ``label`` from ``ts`` on
    (None: no rule ready). Per-regime figures of a stored run are read from these."""

    ts: int
    symbol: str
    label: str | None


@frozen
class Mark:
    """The account marked after an event of ``symbol``: the equity curve."""

    ts: int
    symbol: str
    price: float
    cash: float
    position: float
    equity: float


class Journal:
    """Hands each record to every subscriber, in subscription order.

    Marks (one per bar) have a fast lane: :meth:`mark` passes the values to subscribers that
    registered a ``marks`` function, without making a :class:`Mark` object; only subscribers
    without one get the object.
    """

    __slots__ = ("dirty", "emit", "mark", "shared", "subscribers")

    def __init__(self) -> None:
        self.subscribers: list[tuple[Callable[[Any], None], Callable[..., None] | None]] = []
        #: ``emit(record)``: the one call per record (bound to the only subscriber when there
        #: is one, so the common case costs one call).
        self.emit: Callable[[Any], None] = _none
        #: ``mark(ts, symbol, price, cash, position, equity)``: the account after an event.
        self.mark: Callable[..., None] = _none
        #: Set by :meth:`touch` (when subscribed): records came since the engine last committed.
        self.dirty = False
        #: What the subscribers of one run share, by name: the figure monitors' one
        #: :class:`~gridkit.runtime.metrics.RunMetrics` is ``shared["metrics"]``.
        self.shared: dict[str, Any] = {}

    def touch(self, *record: Any) -> None:
        """A subscriber that only notes that something was journalled (paper and live runs
        commit after every event that journalled anything)."""
        self.dirty = True

    def subscribe(self, fn: Callable[[Any], None],
                  marks: Callable[..., None] | bool | None = None) -> None:
        """Receive every record from now on; marks through ``marks(ts, symbol, price, cash,
        position, equity)`` if given, as :class:`Mark` records through ``fn`` if None, and
        not at all if False (a subscriber that wants none costs the per-bar marks nothing)."""
        self.subscribers.append((fn, marks))  # type: ignore[arg-type]
        self.emit = _fan_out(tuple(f for f, _ in self.subscribers))
        mark_fns = tuple(m if callable(m) else _as_record(f) for f, m in self.subscribers
                         if m is not False)
        self.mark = _fan_out(mark_fns) if mark_fns else _none


def _none(*args: Any) -> None:
    return None


def _fan_out(fns: tuple[Callable[..., None], ...]) -> Callable[..., None]:
    if len(fns) == 1:
        return fns[0]

    def emit(*args: Any) -> None:
        for fn in fns:
            fn(*args)
    return emit


def _as_record(fn: Callable[[Any], None]) -> Callable[..., None]:
    def mark(ts: int, symbol: str, price: float, cash: float, position: float,
             equity: float) -> None:
        fn(Mark(ts, symbol, price, cash, position, equity))
    return mark
