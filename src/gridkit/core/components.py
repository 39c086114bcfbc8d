"""Base classes per component kind: the methods the engine calls, and nothing else.

A component is a class with a ``name``, a frozen attrs ``Config`` (its options in pipeline.toml)
and the methods of its kind. Hot methods (``update``, ``accept``, ``check``, ...) are called
directly by the engine once per event, so they must do O(1) work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import frozen

if TYPE_CHECKING:
    import numpy as np

    from gridkit.core.types import Cancel, Fill, Order, Reject, Rejection
    from gridkit.runtime.context import Context, RunInfo

#: What strategies return: orders to place and cancels to send (None counts as nothing).


@frozen
class NoOptions:
    """The Config of a component that takes no options."""


class Component:
    """Base of every component: a name, a Config, and optional setup/stats/close."""

    #: Component kind; set by each kind's base class.
    kind: ClassVar[str] = ""
    #: The name pipeline.toml uses (``use = "name"``); unique per kind.
    name: ClassVar[str] = ""
    #: Frozen attrs class of the component's options.
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else type(self).Config()

    def validate(self, run: RunInfo) -> None:
        """Check what can be checked before a run (files exist, options fit the pipeline).

        Called by ``gridkit validate`` and before every run; raise a :class:`gridkit.GridkitError`
        subclass with a one-line message to refuse the pipeline.
        """

    def compose(self, build: Callable[..., Component | None]) -> None:
        """Build the components this one is made of, once, when the pipeline is built (a
        ``regime-selector`` builds a grid per regime); the default builds nothing.

        ``build(kind, table, path, defaults=None)`` looks ``table["use"]`` up among the
        installed components of ``kind`` and configures it from the rest of ``table``, as
        pipeline.toml's own tables are; ``defaults`` are options applied where the
        component's Config has them and ``table`` does not give them. ``path`` names the
        table in errors (``strategy.map.RANGING``). It returns the component, or None after
        recording a problem: problems are collected with the pipeline's (``gridkit check``
        lists them all), so a None is never run.
        """

    def setup(self, run: RunInfo) -> None:
        """Prepare for a run (open files, size buffers); called once before the first event."""

    def stats(self) -> dict[str, Any]:
        """Counters for the run summary (dropped bars, orders refused, ...); empty by default."""
        return {}

    def close(self) -> None:
        """Release what :meth:`setup` acquired; called once when the run ends, even on error."""

    def snapshot(self) -> Any:
        """The component's state, for resuming a stopped run; None if it keeps none.

        The default is the instance's attributes other than ``config`` and functions (pickled
        by the store in the same transaction as the orders and fills it goes with). Override
        it, with :meth:`restore`, for state that does not pickle (open files, connections).
        """
        state = {k: v for k, v in vars(self).items()
                 if k != "config" and not callable(v)} if hasattr(self, "__dict__") else {}
        return state or None

    def restore(self, state: Any) -> None:
        """Put back what :meth:`snapshot` returned, on a component built from the same config."""
        if state:
            vars(self).update(state)

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring: what the component is for."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""


class Source(Component):
    """Produces market events (bars, trades, book updates) in time order."""

    kind = "source"
    #: Event streams this source feeds: a subset of ``{"bars", "trades", "book", "depth"}``.
    #: A source whose streams depend on its options sets ``self.provides`` in ``__init__``;
    #: the engine and ``gridkit validate`` read the instance's value.
    provides: ClassVar[frozenset[str]] = frozenset({"bars"})
    #: True for sources of live data (paper and live modes), False for file replay.
    live: ClassVar[bool] = False
    #: Interval in ms of the time bars the engine folds from this source's trades, or None. A
    #: source with a ``bars`` option sets it (and puts ``"bars"`` in ``provides``) instead of
    #: folding the trades itself: the engine folds only the trades that every trade validator
    #: accepted, so a dropped bad print never reaches a bar, and sends each bar down the bar
    #: path once a later trade has closed it (:class:`gridkit.data.bars.TimeBars`).
    bar_interval: int | None = None
    #: Market rules by symbol (:class:`gridkit.trading.markets.MarketInfo`) that a live
    #: source read from its exchange once it started; lanes without a ``[market] markets``
    #: file use them. Empty otherwise.
    markets: Mapping[str, Any] = MappingProxyType({})
    #: A live source whose market data is down (a lost connection, a stalled stream) sets this
    #: to a reason, e.g. ``"market data down: binance BTC/USDT trades"``, and back to None with
    #: the next good update. The engine reads it at every event of the lane (a live source
    #: keeps yielding :class:`gridkit.Clock` ticks while it waits) and pauses the lane's
    #: trading meanwhile (``ctx.paused``): the strategy's orders and cancels are held, and
    #: sent when data flows again.
    down: str | None = None

    def events(self) -> Iterator[Any]:
        """Yield events in time order. Raise :class:`gridkit.DataError` for an unreadable input."""
        raise NotImplementedError

    def size_hint(self) -> int | None:
        """How many events :meth:`events` will yield, if known (drives the progress bar)."""
        return None

    def columns(self) -> Mapping[str, np.ndarray] | None:
        """The bars :meth:`events` yields, as columns, if the source holds them so; else None.

        Optional, after ``setup``: ``{"ts": int64 epoch ms, "open", "high", "low", "close",
        "volume": float64}``, equal arrays, in :meth:`events`' order and with its values. A
        fused backtest (:mod:`gridkit.fused`) reads them instead of making a
        :class:`~gridkit.Bar` per row: a file source of many bars that keeps them as arrays
        saves that memory. The default, None, has it read :meth:`events`.
        """
        return None


class Validator(Component):
    """Accepts or drops each event before anything else sees it; never raises on bad data."""

    kind = "validator"
    #: Event kinds the validator checks (``bars``, ``trades``, ``book``, ``depth``); the engine
    #: passes it only events of these kinds (an instance may narrow them from its options).
    inputs: ClassVar[frozenset[str]] = frozenset({"bars"})

    def bind(self, ctx: Context) -> None:
        """Called once before the first event with the run's context: a validator that must
        pause trading (stale data) sets ``ctx.paused`` to a reason, and back to None."""

    def accept(self, event: Any) -> bool:
        """Return True to pass the event on, False to drop it (and count why in :meth:`stats`)."""
        raise NotImplementedError

    def accepted(self, event: Any) -> None:
        """Called when *every* validator accepted ``event``; override to keep state that must
        follow only accepted events (the last timestamp, say). Not called unless overridden."""


class Feature(Component):
    """Turns the event stream into one number per event, with O(1) work per event."""

    kind = "feature"
    #: Event kinds the feature reads: a subset of ``{"bars", "trades", "book", "depth"}``;
    #: :meth:`update` is called with every event of these kinds. A feature whose input depends
    #: on its options (``vwap`` on trades or bars) sets ``self.inputs`` in ``__init__``; the
    #: engine and ``gridkit validate`` read the instance's value.
    inputs: ClassVar[frozenset[str]] = frozenset({"bars"})

    #: False until the window is full; :meth:`update` returns NaN until then. (A feature the
    #: engine runs fused is stepped by its fuser; the built-ins then read ``ready`` from there.)
    ready: bool = False

    #: Runs several features of this kind in one compiled step per bar (see
    #: :mod:`gridkit.runtime.fusion`); None: :meth:`update` is always called on its own.
    fuser: ClassVar[Any] = None

    def update(self, event: Any) -> float:
        """Take one event and return the feature's new value (NaN while not ready)."""
        raise NotImplementedError

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Compute the feature over whole arrays (``ts, open, high, low, close, volume``).

        Must equal, element for element, what :meth:`update` returns on the same events.
        """
        raise NotImplementedError


class SignalGenerator(Component):
    """Emits a trading signal (or None) from the features of the current event."""

    kind = "signal"

    def update(self, ctx: Context) -> Any | None:
        """Return a :class:`gridkit.Signal` when one fires, else None."""
        raise NotImplementedError


class Attention(Component):
    """Weighs features for the stages after it; phased modules learn before they act."""

    kind = "attention"
    #: Current phase: ``"learning"``, ``"shadow"`` or ``"active"``.
    phase: str = "learning"

    def observe(self, ctx: Context) -> None:
        """See the current event's features; may write ``ctx.weights`` when active."""
        raise NotImplementedError

    def attach(self, strategy: Strategy) -> None:
        """Called once before the first event with the lane's strategy, as built and not yet
        started (a phase controller runs a copy of it on a shadow book) — on a resumed run,
        after the run's state is restored, so keep what an earlier attach saved; the default
        keeps nothing."""

    def figures(self) -> dict[str, Any]:
        """What a monitor shows of this module while the run goes (``metrics``,
        ``prometheus``' dashboard), read from another thread at any time, so only copies:
        ``phase``, and for a phase controller ``progress`` (through the learning phase, 0 to
        1), ``window`` (through the current comparison window), ``rollbacks``, and the
        ``real`` and ``shadow`` books' ``win_rate``, ``profit_factor`` and ``max_drawdown``.
        The default is the phase."""
        return {"phase": self.phase}


class Regime(Component):
    """Labels the market regime: a *score rule* scores one label, a *label rule* names one.

    A **score rule** sets :attr:`label` and implements :meth:`score`; the engine labels the
    event with the rule that scores highest (ties to the rule listed first). A **label rule**
    sets :attr:`labels` (the labels it can produce, non-empty) and implements
    :meth:`classify`, which returns one of them itself (``garch-vol``: LOW / MEDIUM / HIGH).
    A lane's ``[[regimes]]`` are either score rules, any number of them, or one label rule: a
    mix is refused when the pipeline is built, since two rules that each name the regime in
    their own vocabulary have no common scale to compare. Either way the engine then applies
    ``[pipeline] regime_dwell`` and ``regime_hysteresis`` (see :doc:`/concepts`).
    """

    kind = "regime"
    #: Regime label this rule scores, e.g. ``"RANGING"`` (score rules).
    label: ClassVar[str] = ""
    #: Labels :meth:`classify` may return (label rules; empty for a score rule). A rule whose
    #: labels depend on its options sets ``self.labels`` in ``__init__``.
    labels: ClassVar[tuple[str, ...]] = ()
    #: Feature keys the rule reads from ``ctx.features``; ``gridkit validate`` checks them.
    requires_features: ClassVar[tuple[str, ...]] = ()

    def score(self, ctx: Context) -> float:
        """Return a score in [0, 1]; NaN while the features it reads are not ready."""
        raise NotImplementedError

    def classify(self, ctx: Context) -> str | None:
        """Label rules: return one of :attr:`labels`, or None while warming up (or when an
        input is NaN). Called once per event, like :meth:`score`."""
        raise NotImplementedError


class Strategy(Component):
    """Decides the orders: every method returns the orders and cancels to send.

    Orders are made with ``ctx.order(side, qty, price, ...)`` (a fresh client order id, the
    lane's symbol). What any method returns — a list, or None for nothing — is vetted by the
    risk checks and sent to the executor in the execute stage of the current event, after the
    strategy and risk stages; a limit order decided on bar *t* is live from bar *t+1*, and a
    market order fills at the next bar's open (DESIGN.md §6). Orders returned from
    :meth:`on_fill`, :meth:`on_rejected` and :meth:`on_cancelled` go through the same path:
    those answering reports that arrive before the strategy stage go out with its orders;
    those answering a refusal or report produced while sending go out in a further round of the
    same execute stage — at most four rounds per event, so a strategy re-proposing a refused
    order cannot spin; what is left waits for the next event. See :doc:`/plugin-reference`.
    """

    kind = "strategy"

    def start(self, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called on the first accepted bar: return the initial orders (or None: none yet)."""
        raise NotImplementedError

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called on every later accepted bar; return nothing unless the plan changes."""
        return ()

    def on_tick(self, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called on accepted trades or quotes (``ctx.event``) when ``[pipeline] decide_on``
        names their kind; the strategy has started by then."""
        return ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called once per fill (a partial fill too: ``fill.remaining > 0``): return the
        follow-up orders. ``fill.tag`` is the tag of the order that filled. The fill is booked
        in the account and the ledger first: after a partial fill ``ctx.ledger.get(order_id)``
        says ``partial``; after the last one the order has left the ledger (None)."""
        return ()

    def on_rejected(self, rejection: Rejection,
                    ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called when one of its orders was refused: by a risk check, by the executor at
        once, or later by the exchange (a post-only order that would have crossed)."""
        return ()

    def on_cancelled(self, report: Any, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Called when one of its orders ended without filling in full and not on its own
        request: a :class:`gridkit.Cancelled` (an OCO sibling filled, the exchange cancelled
        it) or :class:`gridkit.Expired` (IOC/FOK remainder). A cancel the strategy asked for,
        and the cancels of a halt, are not reported back here."""
        return ()

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        """What to know before the first order, at the price of ``ctx.bar``: a list of
        (``"error"`` | ``"warning"`` | ``"info"``, one line). ``gridkit check`` prints them;
        paper and live runs call it before ``start`` and stop on an error."""
        return []

    def reconfigure(self, old: Any, new: Any, ctx: Context) -> Sequence[Order | Cancel] | None:
        """Tunable options changed from ``old`` to ``new`` (both Config instances; ``config``
        is already ``new``): return the orders and cancels the change implies."""
        return ()


#: The earlier name of :class:`Strategy`.
GridStrategy = Strategy


class SignalFilter(Component):
    """Lets a signal through or holds it back (sessions, cooldowns, confirmation)."""

    kind = "filter"

    def allow(self, signal: Any, ctx: Context) -> bool:
        """Return True to let the signal reach the strategy."""
        raise NotImplementedError


class RiskCheck(Component):
    """Vets each new order, and may halt trading when the account breaches a limit."""

    kind = "risk"

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        """Return the order (possibly resized) or a :class:`gridkit.Reject` with a reason."""
        return order

    def on_bar(self, ctx: Context) -> str | None:
        """Return a reason to halt trading (all orders cancelled, no new ones), else None."""
        return None

    def lift(self, ctx: Context) -> str | None:
        """Called on every bar while trading is halted, if the check defines it: return a line
        saying who lifted the halt (an operator's ``gridkit resume-trading``) to resume
        trading, else None. A halt lasts, across restarts, until a check lifts it; the orders
        the halt cancelled are then proposed again, through every risk check."""
        return None

    def min_bars(self) -> int:
        """Bars of each symbol the check must have seen before it can vet an order (a rolling
        window's length; 0: none). A backtest whose data holds fewer is refused before it runs,
        in one line: the check would pass every order unvetted."""
        return 0

    def conflicts(self, others: Sequence[RiskCheck]) -> list[str]:
        """Why this check's limits contradict those of the pipeline's other risk checks
        (``others``, in ``[[risk]]`` order, this one left out): one line each, or none.

        Called once when the pipeline is built; ``gridkit check`` and ``gridkit run`` refuse
        the pipeline with these lines (exit 2). A limit another check always reaches first
        (a daily loss above the drawdown that halts sooner) is a contradiction; a check that
        merely repeats another is not."""
        return []


class Executor(Component):
    """Places and cancels orders, and reports what happens to them (DESIGN.md §11).

    :meth:`submit` and :meth:`cancel` answer at once only to refuse a request that cannot be
    valid; everything else — accepted, rejected, filled (in part or in full), cancelled,
    expired — comes back from :meth:`reports`, which the engine calls on every event of every
    kind (and with None after sending requests). A simulated executor matches there; a live one
    hands over what the exchange said since the last call.
    """

    kind = "executor"
    #: True if orders reach a real exchange (live mode).
    live: ClassVar[bool] = False
    #: Why the executor cannot hear from the exchange right now (its user-data stream is
    #: down), or None. While it is set, trading pauses as it does when market data is down.
    down: str | None = None
    #: Market rules by symbol that a live executor loaded from its exchange in ``setup``
    #: (as :attr:`Source.markets`); empty otherwise.
    markets: Mapping[str, Any] = MappingProxyType({})

    def submit(self, order: Order, ctx: Context) -> str | None:
        """Send an order. Return None, or a reason it was refused at once (then no report)."""
        raise NotImplementedError

    def cancel(self, order_id: str, ctx: Context) -> str | None:
        """Ask to cancel an open order. Return None, or why the request is refused (the order
        is not open here). The :class:`gridkit.Cancelled` report follows from :meth:`reports`."""
        raise NotImplementedError

    def reports(self, event: Any, symbol: str) -> list[Any]:
        """What happened to orders since the last call, in order; ``event`` is the market event
        of ``symbol`` just accepted (a bar, trade, quote, funding, clock tick) or None (no new
        data). A simulated executor matches ``symbol``'s orders against the event.

        A :class:`gridkit.Fill` carries its order's ``tag`` and ``symbol`` (copied from the
        order: strategies rely on the tag) and what is left of the order in ``remaining``. A
        :class:`gridkit.Cancelled` answering :meth:`cancel` has the reason ``"requested"``."""
        raise NotImplementedError

    def open_orders(self) -> list[Order]:
        """Every order that is accepted or queued and not yet done."""
        raise NotImplementedError

    def reconcile(self, orders: Sequence[Order], filled: Mapping[str, float],
                  on_start: str = "resume", unknown: str = "report") -> list[Order]:
        """Bring the executor in line with the journal when a run starts or resumes; return
        the orders it never got (the engine sends them again, or drops them).

        ``orders`` are the orders the journal holds open (none on a fresh start); ``filled``
        has an entry for each one the journal knows was accepted: how much of it filled. What
        happened meanwhile comes back from :meth:`reports`. ``on_start`` and ``unknown`` are
        ``[live] on_start`` and ``[live] unknown_orders``: a live executor reports (or
        cancels) open orders on the exchange that are not in ``orders``, and raises a
        :class:`gridkit.GridkitError` to refuse to start. The default, for simulated
        executors whose open orders are restored with the run: the orders it does not hold
        and the journal never saw accepted."""
        known = {o.id for o in self.open_orders()}
        return [o for o in orders if o.id not in known and o.id not in filled]

    def settle(self, timeout: float) -> None:
        """Called once when a paper or live run stops, before its summary: send what is still
        queued and take one last look at the exchange (up to ``timeout`` seconds), so that
        :meth:`reports` then holds what happened up to the stop and the summary agrees with
        the exchange. The strategies see those reports; what they answer is kept with the
        run's state and sent when it resumes. The default does nothing (a simulated executor
        has nothing in flight that a look could find)."""


class Monitor(Component):
    """Watches the run (metrics, alerts, audit); never changes it.

    A monitor overrides :meth:`on_event` (called after each accepted event), :meth:`bind`
    (to receive the run's journal records) or both; the engine calls only what it overrides,
    so a monitor that reads the journal costs the event loop nothing per event. Anything slow
    (a network call, a file) belongs on a thread of the monitor's own, started in ``setup``
    and stopped in ``close``, as the built-in ``prometheus`` and ``alerts`` do.

    Monitors of one run may share what they compute through ``journal.shared`` (a dict): the
    built-in figure monitors keep their one :class:`gridkit.runtime.metrics.RunMetrics` there
    as ``"metrics"``, which a monitor of your own may read (``RunMetrics.of(journal, clock)``)
    instead of counting again. A per-event method several monitors share (bound in ``bind``
    as ``self.on_event``) is called once per event.

    A monitor that counts the fills of each grid cell::

        class CellFills(gridkit.Monitor):
            name = "cell-fills"

            def __init__(self, config=None):
                super().__init__(config)
                self.by_cell = {}

            def bind(self, journal, store):
                journal.subscribe(self.record, False)  # records, not the per-bar marks

            def record(self, record):
                if type(record) is gridkit.Fill:
                    self.by_cell[record.tag] = self.by_cell.get(record.tag, 0) + 1

            def stats(self):
                return {"fills_by_cell": self.by_cell}  # in the run summary
    """

    kind = "monitor"

    def on_event(self, ctx: Context) -> None:
        """Called after each accepted event has been fully processed."""
        raise NotImplementedError

    def bind(self, journal: Any, store: Store) -> None:
        """Called once before the first event, after the run is opened in ``store``, with the
        run's :class:`~gridkit.runtime.journal.Journal`: ``journal.subscribe(fn, marks)``
        hands ``fn`` every record from now on (order requests, reports, halts, parameter and
        phase changes) and the marks to ``marks``. The default keeps nothing."""


class Feedback(Component):
    """The slow loop: every ``every`` events it may adjust attention, parameters or limits."""

    kind = "feedback"
    every: ClassVar[int] = 1000

    def step(self, ctx: Context) -> None:
        """Called every ``every`` accepted events."""
        raise NotImplementedError

    def bind(self, tuner: Any) -> None:
        """Called once before the first event with the run's
        :class:`~gridkit.runtime.tuning.Tuner`: the tunable options this component may
        change (``tuner.options()``, ``tuner.tune(path, changes)``, ``tuner.rollback()``).
        The default keeps nothing."""


class Optimizer(Component):
    """Searches a pipeline's parameter space: proposes points, learns from their scores.

    The ask/tell protocol: the driver (:func:`gridkit.research.optimize`) calls :meth:`start`
    once, then :meth:`ask` for a point, runs the trial (a backtest with those options) and hands
    its score to :meth:`tell`; until :meth:`ask` returns None or the driver's budget is spent.
    An optimizer only proposes and learns: it never runs a backtest, so every optimizer runs
    its trials the same way (serially, on several cores or on a cluster).

    The driver asks for up to :attr:`batch` points before it tells their scores, runs those
    trials at once, then tells the scores in the order the points were asked. So the points
    depend on ``batch``, never on how many workers ran them: a search gives the same trials
    on one core, on all of them, and on a Dask cluster.
    """

    kind = "optimizer"
    #: Points it proposes before it needs their scores (1: each point knows every earlier
    #: score). :meth:`ask` returns None when it has nothing to propose until scores come.
    batch: int = 1

    def start(self, space: Any, seed: int) -> None:
        """Begin a search of ``space`` (a :class:`gridkit.research.Space`), seeded: the same
        seed and the same scores give the same points."""

    def ask(self) -> dict[str, Any] | None:
        """The next point to try (option path -> value), or None when there is none to propose
        now: the search is over once no point asked for is waiting for its score."""
        raise NotImplementedError

    def tell(self, params: Mapping[str, Any], score: float) -> None:
        """The score of a point :meth:`ask` gave (higher is better; NaN: the trial failed or
        broke a constraint)."""


class Objective(Component):
    """Scores a search's trial from its run summary: higher is better, NaN is no score.

    ``gridkit optimize``'s ``objective = "name"`` (or a table ``[objective] use = "name"`` with
    options) picks one. :meth:`score` gets the run summary (:ref:`run-summary`); a trial the
    fused runner ran gets only the figures it computes — the keys named in
    :attr:`reads` must be among them (``return_pct``, ``max_drawdown``, ``final_equity``,
    ``orders_placed``, ``grid``: ``grid_profit`` and ``grid_apr``), else the search runs each
    point through the engine, which gives the whole summary.
    """

    kind = "objective"
    #: The summary keys :meth:`score` reads (None: any of them, the whole summary).
    reads: frozenset[str] | None = None

    def score(self, summary: Mapping[str, Any]) -> float:
        """The trial's score (NaN: none, e.g. a ratio over a zero drawdown)."""
        raise NotImplementedError


class Store(Component):
    """Persists runs: the journal (orders, reports, halts, marks) and the state to resume from.

    The engine's journal hands every record to :meth:`write` once; :meth:`commit` writes what
    is buffered and the run's state in one transaction, so the rows and the state always agree.
    """

    kind = "store"
    #: False for a store that keeps nothing after the run: the engine saves no resume state
    #: into it.
    durable: bool = True
    #: False for a store that wants no journal records (an in-memory database nobody reads
    #: after the run): writing what is thrown away is pure cost.
    journaled: bool = True

    def open_run(self, run: RunInfo, config: Mapping[str, Any]) -> tuple[int, str]:
        """Start a run record; return its id and its run key (the prefix of its order ids)."""
        raise NotImplementedError

    def resume_run(self, run: RunInfo, config: Mapping[str, Any]
                   ) -> tuple[int, str, bytes | None]:
        """Reopen the last run to continue it: its id, run key and saved state (None if it
        stopped before its first commit, having journalled nothing: it starts afresh). Raise
        :class:`gridkit.DataError` if there is none to resume, it finished, or its config
        differs from ``config`` (naming the first difference)."""
        raise NotImplementedError

    def write(self, record: Any) -> None:
        """Take one journal record (an order request, a report, a mark, a halt, ...)."""
        raise NotImplementedError

    #: Optional fast lane for the equity curve: ``mark(ts, symbol, price, cash, position,
    #: equity)``, called once per bar instead of ``write(Mark(...))``. None: marks come to
    #: :meth:`write` as :class:`gridkit.Mark` records.
    mark: Any = None

    def commit(self, state: bytes | None = None) -> None:
        """Write what is buffered, and ``state`` if given, in one transaction."""
        raise NotImplementedError

    def finish_run(self, status: str, summary: Mapping[str, Any], error: str | None,
                   state: bytes | None = None) -> None:
        """Commit and close the run record with its final status and summary."""
        raise NotImplementedError


class Bus(Component):
    """Carries events between processes or components by topic."""

    kind = "bus"

    def publish(self, topic: str, message: Any) -> None:
        """Send a message on a topic."""
        raise NotImplementedError

    def subscribe(self, topic: str) -> Iterator[Any]:
        """Receive the messages of a topic."""
        raise NotImplementedError


#: Base class per kind, in pipeline order.
BASES: dict[str, type[Component]] = {
    cls.kind: cls
    for cls in (
        Source, Validator, Feature, SignalGenerator, Attention, Regime, Strategy, SignalFilter,
        RiskCheck, Executor, Monitor, Feedback, Optimizer, Objective, Store, Bus,
    )
}
