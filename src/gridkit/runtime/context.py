"""What the stages of a running pipeline share: the run's identity and its per-event state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from gridkit.core.types import Order
from gridkit.runtime.account import Account, AccountView, Position
from gridkit.runtime.ledger import Ledger


@frozen
class RunInfo:
    """Facts about a run that do not change while it runs."""

    name: str
    mode: str
    symbol: str
    capital: float
    #: Folder that relative paths in pipeline.toml are resolved against (the file's folder).
    base_dir: Path = field(factory=Path.cwd)
    #: Every symbol of the run, in lane order (``(symbol,)`` for a one-symbol pipeline).
    symbols: tuple[str, ...] = ()
    #: Paper and live runs: the one asyncio event loop the kernel owns, which sources and
    #: executors share (a source drives it while it waits for data, so an executor's tasks
    #: run then too). Made when the run starts (``setup`` sees it), closed when it ends; None
    #: in backtests, which are a plain generator.
    loop: Any = field(default=None, eq=False)
    #: The ``[market]`` table of each symbol (:class:`gridkit.runtime.pipeline_file.MarketSection`):
    #: what a live executor sets on the exchange (leverage, position mode) before trading.
    markets: Mapping[str, Any] = field(factory=dict, eq=False)
    #: The file the run's store records into (``--db`` or ``[store] path``, absolute), or None
    #: when it keeps nothing: where ``gridkit halt`` leaves an operator's halt request.
    store: str | None = field(default=None, eq=False)

    def resolve(self, path: str | Path) -> Path:
        """A path from pipeline.toml, made absolute against :attr:`base_dir`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class Context:
    """Mutable state of one lane (one symbol) handed to every stage, updated in place per event.

    What a component may read: :attr:`run`, :attr:`symbol`, :attr:`bar` / :attr:`event`,
    :attr:`index`, :attr:`features`, :attr:`weights`, :attr:`regime` and
    :attr:`regime_score`, :attr:`signals`, the account (:attr:`portfolio` for this symbol's
    view, :attr:`position` for its position, :attr:`account` for every position and the
    balance), the orders (:attr:`open_orders`, :attr:`open_buy_qty`, and :attr:`ledger` for
    their state), :attr:`halted` and :attr:`paused`. What it may call: :meth:`order` (or
    :meth:`next_order_id`) to make orders. What it may set: :attr:`weights` (attention),
    :attr:`paused` (a validator, through ``bind``) and call :attr:`phase_changed` (a phased
    component). Everything else is the engine's: the account, the position and the ledger
    change only through reports (a component that writes to them breaks the run's books).
    ``gridkit.testing.context()`` makes one to step a component by hand.
    """

    __slots__ = (
        "account", "adjust", "attention", "bar", "event", "feature_cost", "features", "halted",
        "index", "ledger", "market",
        "paused", "phase_changed", "portfolio", "position", "regime", "regime_score", "run",
        "signals", "symbol", "weights",
    )

    def __init__(self, run: RunInfo, account: Account | None = None,
                 ledger: Ledger | None = None, symbol: str | None = None,
                 position: Position | None = None) -> None:
        #: The run's facts: name, mode, symbol(s), capital, base_dir (:class:`RunInfo`).
        self.run = run
        #: The symbol this lane trades.
        self.symbol = symbol if symbol is not None else run.symbol
        #: The run's one account (shared by every lane).
        self.account = account if account is not None else Account(run.capital)
        #: This lane's position in :attr:`account` (in hedge mode the long one; the short one
        #: is ``account.position(symbol, "short")``).
        self.position: Position = (position if position is not None
                                   else self.account.position(self.symbol))
        #: The account as this lane sees it: ``cash``, ``equity``, ``drawdown`` are the
        #: account's; ``base``, ``price``, ``avg_cost`` this symbol's.
        self.portfolio = AccountView(self.account, self.position)
        #: The symbol's market rules (:class:`gridkit.trading.markets.MarketInfo`: tick, lot,
        #: minimum notional, fees) from ``[market] markets``, or None when none were given.
        self.market: Any = None
        #: The run's one order ledger (shared by every lane): ``ledger.get(order_id)`` is a live
        #: order's :class:`~gridkit.OrderState` (status, filled, avg_price, fees), None once it
        #: ended.
        self.ledger = ledger if ledger is not None else Ledger()
        #: The current bar (the last accepted one).
        self.bar: Any = None
        #: Feature values of the current event by feature key (NaN while a feature warms up).
        self.features: dict[str, float] = {}
        #: Attention weights by feature key (empty = all features weigh 1).
        self.weights: dict[str, float] = {}
        #: The lane's attention modules, in order (the engine's; a monitor reads their
        #: :meth:`~gridkit.Attention.figures`).
        self.attention: tuple[Any, ...] = ()
        #: Mean time in seconds of one ``update`` of each bar feature, by feature key, sampled
        #: on every 4096th accepted bar (:data:`gridkit.runtime.timing.FEATURE_COST_SHIFT`);
        #: features the engine runs fused share their group's step time equally. Empty until
        #: the first sample; ``feature-attention`` turns it into its speed score.
        self.feature_cost: dict[str, float] = {}
        #: Multipliers of strategy parameters that attention applies (empty = none), keyed
        #: ``"LABEL:param"``: ``"RANGING:spacing"`` multiplies the spacing options of the grid
        #: a ``regime-selector`` lays in that regime, ``"RANGING:levels"`` its level counts.
        self.adjust: dict[str, float] = {}
        #: The regime label (:mod:`gridkit.runtime.regime`): of the highest-scoring regime rule,
        #: or the one a label rule names, after minimum dwell; None before any rule is ready.
        self.regime: str | None = None
        #: That label's score, in [0, 1] (NaN before any rule is ready, and for a label rule).
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
        #: Number of accepted bars so far, less one (0 on the first one).
        self.index = -1
        #: Call ``ctx.phase_changed(component, old, new)`` when a phased component moves on;
        #: the engine forwards it to the ``gridkit_phase_changed`` hook.
        self.phase_changed: Callable[[Any, str, str], None] = lambda c, old, new: None

    def __reduce__(self) -> tuple[Any, ...]:
        # A component that keeps the context (a validator's bind) must not drag the whole run
        # into its saved state: it pickles as None, and bind() is called again on resume.
        return (type(None), ())

    def next_order_id(self) -> str:
        """A fresh client order id, unique within the run (and across resumes)."""
        return self.ledger.next_id()

    def order(self, side: str, qty: float, price: float, kind: str = "limit",
              tag: int = -1, **more: Any) -> Order:
        """An :class:`~gridkit.Order` of this lane's symbol with a fresh client order id.

        ``price`` is the limit price; for a ``market`` order it is the price the strategy
        expects (the close, say), never the fill price: a market order decided on bar *t* fills
        at bar *t+1*'s open, and the ``simulated`` executor checks the balance at the last mark
        (at ``price`` only before the first one). ``tag`` is the strategy's own reference (a grid
        cell): the engine never reads it, and every :class:`~gridkit.Fill` of the order carries
        it. ``more`` takes the other fields of :class:`~gridkit.Order` (``tif``,
        ``stop_price``, ``reduce_only``, ``group``, ``position_side``).
        """
        return Order(self.ledger.next_id(), side, qty, price, kind,  # type: ignore[arg-type]
                     tag, self.symbol, **more)

    @property
    def open_orders(self) -> dict[str, Order]:
        """This lane's live orders (new, open or partially filled), by client order id."""
        sym = self.symbol
        return {oid: s.order for oid, s in self.ledger.open.items() if s.order.symbol == sym}

    @property
    def open_buy_qty(self) -> float:
        """What this lane's live buy orders still have to fill, in base (O(1))."""
        return self.ledger.open_buy_qty.get(self.symbol, 0.0)
