"""What the stages of a running pipeline share: the run's identity and its per-event state."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import field, frozen

from gridkit.core.portfolio import Portfolio
from gridkit.core.types import Order


@frozen
class RunInfo:
    """Facts about a run that do not change while it runs."""

    name: str
    mode: str
    symbol: str
    capital: float
    #: Folder that relative paths in pipeline.toml are resolved against (the file's folder).
    base_dir: Path = field(factory=Path.cwd)

    def resolve(self, path: str | Path) -> Path:
        """A path from pipeline.toml, made absolute against :attr:`base_dir`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class Context:
    """Mutable per-run state handed to every stage; one object, updated in place per event."""

    __slots__ = (
        "_order_ids", "bar", "event", "features", "halted", "index", "open_buy_qty",
        "open_orders", "paused", "phase_changed", "portfolio", "regime", "regime_score", "run",
        "signals", "weights",
    )

    def __init__(self, run: RunInfo, portfolio: Portfolio | None = None) -> None:
        self.run = run
        self.portfolio = portfolio if portfolio is not None else Portfolio(run.capital)
        #: The current bar (the last accepted one).
        self.bar: Any = None
        #: Feature values of the current event by feature key (NaN while a feature warms up).
        self.features: dict[str, float] = {}
        #: Attention weights by feature key (empty = all features weigh 1).
        self.weights: dict[str, float] = {}
        #: Label of the highest-scoring regime rule, or None before any rule is ready.
        self.regime: str | None = None
        self.regime_score: float = float("nan")
        #: Signals that passed the filters on this event.
        self.signals: list[Any] = []
        #: Why trading was halted by a risk check, or None while trading.
        self.halted: str | None = None
        #: Why trading is paused (stale data), or None. While paused the engine holds the
        #: strategy's orders and cancels, and sends them when the pause ends.
        self.paused: str | None = None
        #: The last event of any kind (a bar, trade or book update).
        self.event: Any = None
        #: Number of accepted events so far (0 on the first one).
        self.index = -1
        #: Orders the executor accepted and that have not filled or been cancelled, by id.
        self.open_orders: dict[int, Order] = {}
        #: Sum of the quantities of the open buy orders (kept in O(1) per change).
        self.open_buy_qty = 0.0
        #: Call ``ctx.phase_changed(component, old, new)`` when a phased component moves on;
        #: the engine forwards it to the ``gridkit_phase_changed`` hook.
        self.phase_changed: Callable[[Any, str, str], None] = lambda c, old, new: None
        self._order_ids = itertools.count(1)

    def next_order_id(self) -> int:
        """A fresh order id, unique within the run."""
        return next(self._order_ids)

    def order_opened(self, order: Order) -> None:
        """Ledger: the executor accepted ``order``."""
        self.open_orders[order.id] = order
        if order.side == "buy":
            self.open_buy_qty += order.qty

    def order_closed(self, order_id: int) -> Order | None:
        """Ledger: an order filled or was cancelled; returns it if it was open."""
        order = self.open_orders.pop(order_id, None)
        if order is not None and order.side == "buy":
            self.open_buy_qty = self.open_buy_qty - order.qty if self.open_orders else 0.0
        return order
