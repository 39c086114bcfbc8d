"""pytest plugin for gridkit plugin authors: fixtures and one contract-test base class per kind.

It needs pytest, which gridkit itself does not install: a plugin package's tests depend on the
``testing`` extra, ``pip install 'gridkit[testing]'`` (pytest and hypothesis); importing this
module without pytest fails with that line.

Installed with gridkit (entry point ``pytest11``), so a plugin package's tests can use, with no
import:

* ``gridkit_host`` — a fresh plugin host with every installed plugin loaded, made the
  process-wide host for the test;
* ``gridkit_register_plugin`` — ``register(obj, name=None)`` adds a plugin object (a module or a
  class with ``@hookimpl`` functions) to that host;
* ``gridkit_sample_bars`` / ``gridkit_sample_columns`` / ``gridkit_sample_path`` — 3,000 real
  Binance BTC/USDT 1-minute bars (April 2021) as :class:`gridkit.Bar` objects, as numpy columns,
  and as the path of the freqtrade-json file;
* ``gridkit_run_toml`` — ``run(text)`` builds and runs a pipeline from TOML text and returns the
  summary (relative paths resolve against the test's ``tmp_path``; ``{sample}`` in the text is
  replaced by the sample file's path).

Contract tests: subclass the base of your component's kind in a class named ``Test...`` and set
``component_class`` (and ``options`` if it needs some); pytest then runs the kind's checks on it.

.. code-block:: python

    from gridkit.testing import FeatureContract
    from gridkit_acme import Ema

    class TestEma(FeatureContract):
        component_class = Ema
        options = {"period": 10}

Stepping a component by hand: :func:`context` makes the :class:`gridkit.Context` a strategy,
risk check, regime rule or attention module reads (an account, a ledger, the position marked at
a bar), :func:`advance` moves it to the next bar as the engine does, and :func:`step_strategy`
runs a strategy instance over bars through the real engine — validators, the executor's fill
model, the risk checks, the one apply path — and returns what it ordered and what filled:

.. code-block:: python

    from gridkit import Bar, Reject
    from gridkit.testing import build, context, step_strategy

    def test_buys_the_dip():
        run = step_strategy(build(DipBuyer, {"drop": 0.02}), bars)
        assert [o.side for o in run.orders] == ["buy"]
        assert run.fills[0].price == bars[3].open   # a market order fills at the next open

    def test_cap():
        check = build(MaxOrder, {"qty": 1.0})
        ctx = context(capital=10_000, bar=Bar(0, 100.0, 101.0, 99.0, 100.0, 5.0))
        assert isinstance(check.check(ctx.order("buy", 2.0, 100.0), ctx), Reject)

Only what this module documents is its API; :mod:`gridkit.core` is gridkit's own (see
:ref:`public-api`).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from attrs import define, field

try:
    import pytest
except ModuleNotFoundError as _missing:  # a plain `pip install gridkit`, without the extra
    if _missing.name != "pytest":
        raise
    raise ModuleNotFoundError("gridkit.testing needs pytest: pip install 'gridkit[testing]'",
                              name="pytest") from None

from gridkit.core.components import (
    BASES,
    Attention,
    Component,
    Executor,
    Feature,
    NoOptions,
    Regime,
    RiskCheck,
    Source,
    Store,
    Strategy,
    Validator,
)
from gridkit.core.config import structure
from gridkit.core.errors import ConfigError, DataError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.plugins import PluginHost, get_host, new_host, set_host
from gridkit.core.registry import Registry, build_registry
from gridkit.core.types import (
    EVENT_KINDS,
    Bar,
    Cancelled,
    Expired,
    Fill,
    Order,
    Reject,
    Rejected,
)
from gridkit.runtime.account import Account, Position
from gridkit.runtime.context import Context, RunInfo
from gridkit.runtime.journal import Mark, OrderRequested
from gridkit.runtime.ledger import Ledger
from gridkit.runtime.pipeline_file import ComponentSpec

SAMPLE_FILE = "BTC_USDT-1m-sample.json.gz"


def sample_path() -> Path:
    """Path of the packaged sample: 3,000 real BTC/USDT 1m bars in freqtrade-json form."""
    return Path(str(resources.files("gridkit") / "testing_data" / SAMPLE_FILE))


def sample_bars() -> list[Bar]:
    """The packaged sample as bars."""
    rows = json.loads(gzip.decompress(sample_path().read_bytes()))
    return [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]


def feed(validators: list[Validator], event: Any) -> bool:
    """Run one event through validators as the engine does: each ``accept`` in turn, stopping
    at the first refusal, then ``accepted`` on every one if all accepted. Returns acceptance."""
    for v in validators:
        if not v.accept(event):
            return False
    for v in validators:
        v.accepted(event)
    return True


def columns_of(bars: list[Bar]) -> dict[str, Any]:
    """Bars as numpy columns ``ts, open, high, low, close, volume`` (what ``batch`` takes)."""
    import numpy as np

    return {
        "ts": np.array([b.ts for b in bars], dtype=np.int64),
        **{f: np.array([getattr(b, f) for b in bars], dtype=np.float64)
           for f in ("open", "high", "low", "close", "volume")},
    }


def run_toml(text: str, base_dir: Path | None = None, host: PluginHost | None = None,
             db: str | None = None) -> dict[str, Any]:
    """Build and run a pipeline from TOML text; return its summary."""
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    text = text.replace("{sample}", sample_path().as_posix())
    config = parse_pipeline(text, base_dir=base_dir)
    return run_pipeline(build_pipeline(config, host, store_path=db))


def build(cls: type[Component], options: dict[str, Any] | None = None) -> Any:
    """An instance of ``cls`` configured from pipeline.toml-style ``options``, checked as a
    pipeline checks them: every problem is raised together as one :class:`gridkit.ConfigError`
    (``options.grids: must be >= 2, got 1``). A component made of others
    (:meth:`gridkit.Component.compose`) gets them from the installed plugins."""
    config, problems = structure(dict(options or {}), cls.Config, "options")
    if problems:
        raise ConfigError(problems)
    component = cls(config)
    if type(component).compose is not Component.compose:  # made of installed components
        from gridkit.runtime.build import build_child

        reg = registry()

        def child(kind: str, table: Any, path: str, defaults: Any = None) -> Any:
            return build_child(reg, problems, kind, table, path, defaults)

        component.compose(child)
        if problems:
            raise ConfigError(problems)
    return component


def registry(host: PluginHost | None = None, disable: tuple[str, ...] | list[str] = ()
             ) -> Registry:
    """The components a pipeline would see: every registration of ``host`` (default: the
    process-wide host — the ``gridkit_host`` fixture's in a test that uses it), less the plugins
    or distributions in ``disable`` (as ``[plugins] disable`` leaves them out).

    ``registry().get(kind, name)`` is the :class:`~gridkit.core.registry.Registration` that
    answers to a name (its class, plugin, distribution, ``replaces``); ``registry().replaced``
    lists what a ``replaces=`` took over.
    """
    return build_registry(host if host is not None else get_host(), exclude=disable)


# --- stepping components by hand -----------------------------------------------------------


def context(symbol: str = "BTC/USDT", capital: float = 10_000.0, bar: Bar | None = None, *,
            base: float = 0.0, features: dict[str, float] | None = None) -> Context:
    """A ready :class:`gridkit.Context` of a one-symbol backtest, as a component sees it.

    It has its own :class:`gridkit.Account` (``capital`` in the quote currency, a spot
    position of ``symbol``) and :class:`gridkit.Ledger`, so ``ctx.order(...)`` makes orders with
    fresh ids and ``ctx.portfolio`` answers. With ``bar``, the context is on that bar as the
    engine leaves it before the features run: ``ctx.bar``, ``ctx.event`` and ``ctx.index`` (0)
    are set and the position is marked at the close. ``base`` is held already, bought at the
    bar's close with no fee (so equity is still ``capital``; it needs ``bar``). ``features``
    fills ``ctx.features``.

    An open order counts towards ``ctx.open_orders`` and ``ctx.open_buy_qty`` once the ledger
    knows it: ``ctx.ledger.request(order, ts)``.
    """
    quote = symbol.split("/")[-1].split(":")[0] if "/" in symbol else ""
    account = Account(float(capital), quote)
    account.add(Position(symbol))
    run = RunInfo("test", "backtest", symbol, float(capital), Path.cwd(), (symbol,))
    ctx = Context(run, account, Ledger("t"), symbol)
    if features:
        ctx.features.update(features)
    if base:
        if bar is None:
            raise ValueError("context(base=...) needs a bar: the base is bought at its close")
        ctx.portfolio.apply(Fill("t-0", bar.ts, "buy", base, bar.close, 0.0, symbol=symbol))
    if bar is not None:
        advance(ctx, bar)
    return ctx


def advance(ctx: Context, bar: Bar) -> Context:
    """Put ``ctx`` on the next ``bar`` as the engine does before the features run: ``ctx.bar``
    and ``ctx.event`` are the bar, ``ctx.index`` counts it, the lane's position is marked at the
    close (equity, peak and drawdown follow). Returns ``ctx``. Orders do not fill: that takes
    an executor (see :func:`step_strategy`)."""
    ctx.bar = ctx.event = bar
    ctx.index += 1
    ctx.portfolio.mark(bar.close)
    return ctx


@define
class StrategyRun:
    """What :func:`step_strategy` saw: the run summary, the strategy, every journal record."""

    #: The run summary, as ``gridkit run --json`` prints it.
    summary: dict[str, Any]
    #: The strategy instance that ran (the one given, or the one built from the class).
    strategy: Strategy
    #: Every record of the run's journal, in order: :class:`gridkit.OrderRequested`
    #: (each order as requested, before a risk check resized it), the executor's reports
    #: (:class:`gridkit.Accepted`, :class:`gridkit.Fill`, ...), ``CancelRequested``, ``Halted``
    #: and one :class:`gridkit.Mark` per accepted bar. Each has its ``ts``.
    records: list[Any] = field(factory=list)

    @property
    def orders(self) -> list[Order]:
        """Every order the engine sent on (or refused for) the strategy, in request order."""
        return [r.order for r in self.records if type(r) is OrderRequested]

    @property
    def fills(self) -> list[Fill]:
        """Every fill, in order (partial fills included: ``fill.remaining > 0``)."""
        return [r for r in self.records if type(r) is Fill]

    @property
    def rejected(self) -> list[Rejected]:
        """Orders that did not go live: refused by a risk check (``by`` is its name), by the
        executor at once or later (``by`` is the executor's name)."""
        return [r for r in self.records if type(r) is Rejected]

    @property
    def cancelled(self) -> list[Cancelled | Expired]:
        """Orders that ended without filling in full: cancelled (on request, by a halt, by an
        OCO sibling) or expired."""
        return [r for r in self.records if type(r) in (Cancelled, Expired)]

    @property
    def equity(self) -> list[float]:
        """The account's equity after each accepted bar."""
        return [r.equity for r in self.records if type(r) is Mark]


def step_strategy(strategy: Strategy | type[Strategy], bars: Iterable[Any], *,
                  options: dict[str, Any] | None = None,
                  fill_model: str | Executor = "simulated",
                  fill_options: dict[str, Any] | None = None,
                  risk: Sequence[RiskCheck] = (), symbol: str = "BTC/USDT",
                  capital: float = 10_000.0, pipeline: str = "",
                  host: PluginHost | None = None) -> StrategyRun:
    """Run ``strategy`` over ``bars`` through the real engine; return what it ordered and what
    filled (a :class:`StrategyRun`).

    It is a backtest like any other — the default validators drop bad bars, the executor
    matches orders by its fill model (DESIGN.md §6 for ``simulated``: live from the next bar, a
    market order at the next open), the risk checks vet every order, reports go through the one
    apply path to the strategy's ``on_fill``, ``on_rejected`` and ``on_cancelled`` — except
    that the components given as instances are used as they are, registered or not, so their
    state can be looked at afterwards.

    :param strategy: a :class:`gridkit.Strategy` instance, or a class (built with ``options``).
    :param bars: the events to replay, in time order (bars; trades or quotes too).
    :param fill_model: the executor: a registered name (``"simulated"``, with
        ``fill_options`` as its options, e.g. ``{"maker_fee": 0.0}``) or an instance.
    :param risk: risk check instances, in order (``[[risk]]`` tables by name may also be given
        in ``pipeline``).
    :param pipeline: more pipeline.toml text: ``[[features]]``, ``[[regimes]]``, ``[[risk]]``,
        ``[market]``, ... (not ``[pipeline]``, ``[source]``, ``[strategy]``, ``[executor]`` or
        ``[store]``, which this function writes).
    :param host: the plugin host whose components ``pipeline`` names; default: a fresh one with
        the installed plugins (as ``GRIDKIT_LOAD_PLUGINS`` allows).
    """
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    if isinstance(strategy, type):
        strategy = build(strategy, options)
    elif options:
        raise TypeError("options are for a strategy class; this one is built already")
    events = list(bars)
    host = host if host is not None else new_host()
    plugin = _Harness(host)
    plugin.add("strategy", strategy)
    plugin.add("source", _Replay(events))
    recorder = _Recorder()
    plugin.add("store", recorder)
    risk_names = [plugin.add("risk", check) for check in risk]
    executor = (fill_model if isinstance(fill_model, str)
                else plugin.add("executor", fill_model))
    plugin_name = f"gridkit.testing-{id(plugin)}"
    known = len(host.failures)
    if not host.register(plugin, plugin_name):
        raise ConfigError([f.line() for f in host.failures[known:]])
    risk_tables = "".join(f'[[risk]]\nuse = "{name}"\n' for name in risk_names)
    text = (f'[pipeline]\nname = "step"\nsymbol = "{symbol}"\ncapital = {float(capital)!r}\n'
            f'[source]\nuse = "{_Replay.name}"\n'
            f'[strategy]\nuse = "{plugin.names[id(strategy)]}"\n'
            f'[executor]\nuse = "{executor}"\n'
            f'[store]\nuse = "{_Recorder.name}"\n{risk_tables}\n{pipeline}\n')
    config = parse_pipeline(text, source="<step_strategy>")
    if fill_options and isinstance(fill_model, str):
        config.components["executor"] = [ComponentSpec(executor, dict(fill_options),
                                                       "executor")]
    try:
        summary = run_pipeline(build_pipeline(config, host))
    finally:
        host.pm.unregister(name=plugin_name)
        host.distributions.pop(plugin_name, None)
        host.versions.pop(plugin_name, None)
    return StrategyRun(summary, strategy, recorder.records)


class _Replay(Source):
    """Replays the events given to :func:`step_strategy`."""

    name = "gridkit-testing-replay"

    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self._events = events
        self.provides = frozenset(EVENT_KINDS[type(e)] for e in events) or frozenset({"bars"})

    def events(self) -> Iterator[Any]:
        return iter(self._events)

    def size_hint(self) -> int | None:
        return len(self._events)


class _Recorder(Store):
    """Keeps the journal of a :func:`step_strategy` run in memory."""

    name = "gridkit-testing-recorder"
    durable = False

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Any] = []

    def open_run(self, run: RunInfo, config: Any) -> tuple[int, str]:
        return 1, "t"

    def resume_run(self, run: RunInfo, config: Any) -> tuple[int, str, bytes]:
        raise DataError("step_strategy runs cannot be resumed")

    def write(self, record: Any) -> None:
        self.records.append(record)

    def commit(self, state: bytes | None = None) -> None:
        pass

    def finish_run(self, status: str, summary: Any, error: str | None,
                   state: bytes | None = None) -> None:
        pass


class _Harness:
    """A plugin that registers the instances :func:`step_strategy` was given, each under its
    class's name (taking the name over when an installed plugin has it), so the engine builds
    a pipeline around them and uses them as they are."""

    def __init__(self, host: PluginHost) -> None:
        self.taken = {(r.kind, r.name) for r in build_registry(host).all()}
        self.by_kind: dict[str, list[tuple[type, str | None]]] = {}
        self.names: dict[int, str] = {}
        self._queues: dict[tuple[str, str], list[Any]] = {}

    def add(self, kind: str, instance: Component) -> str:
        """Register ``instance``; the name to ``use`` it by."""
        base = BASES[kind]
        if not isinstance(instance, base):
            raise TypeError(f"{instance!r} is not a gridkit.{base.__name__}")
        name = type(instance).name
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(instance).__name__} has no name (set the class attribute "
                            f"'name')")
        queue = self._queues.get((kind, name))
        if queue is None:  # one registration per name; instances come out in order
            queue = self._queues[(kind, name)] = []
            replaces = name if (kind, name) in self.taken else None
            self.by_kind.setdefault(kind, []).append((_handing_out(type(instance), queue),
                                                      replaces))
        queue.append(instance)
        self.names[id(instance)] = name
        return name

    def _register(self, kind: str, register: Any) -> None:
        for cls, replaces in self.by_kind.get(kind, ()):
            register(cls, replaces=replaces)

    @hookimpl
    def gridkit_register_sources(self, register: Any) -> None:
        self._register("source", register)

    @hookimpl
    def gridkit_register_strategies(self, register: Any) -> None:
        self._register("strategy", register)

    @hookimpl
    def gridkit_register_risk_checks(self, register: Any) -> None:
        self._register("risk", register)

    @hookimpl
    def gridkit_register_executors(self, register: Any) -> None:
        self._register("executor", register)

    @hookimpl
    def gridkit_register_stores(self, register: Any) -> None:
        self._register("store", register)


def _handing_out(cls: type[Component], queue: list[Any]) -> type[Component]:
    """A subclass of ``cls`` that takes no options and whose "instances" are the ones in
    ``queue``, handed out in order: the engine builds components by calling the registered
    class, and gets these."""

    def new(_cls: type, config: Any = None) -> Any:
        if not queue:
            raise ConfigError(f"{cls.kind} '{cls.name}' is used more often than given")
        return queue.pop(0)

    return type(cls.__name__, (cls,), {"__new__": new, "Config": NoOptions,
                                       "__doc__": cls.__doc__, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def gridkit_host() -> Iterator[PluginHost]:
    """A fresh plugin host with the installed plugins loaded, as the process-wide host."""
    host = new_host()
    old = set_host(host)
    try:
        yield host
    finally:
        set_host(old)


@pytest.fixture
def gridkit_register_plugin(gridkit_host: PluginHost) -> Callable[..., PluginHost]:
    """``register(obj, name=None)``: add a plugin object to ``gridkit_host``; returns the host."""

    def register(obj: Any, name: str | None = None) -> PluginHost:
        gridkit_host.register(obj, name or getattr(obj, "__name__", repr(obj)))
        return gridkit_host

    return register


@pytest.fixture(scope="session")
def gridkit_sample_path() -> Path:
    """Path of the sample freqtrade-json file (3,000 real BTC/USDT 1m bars)."""
    return sample_path()


@pytest.fixture(scope="session")
def gridkit_sample_bars() -> list[Bar]:
    """3,000 real Binance BTC/USDT 1-minute bars from April 2021."""
    return sample_bars()


@pytest.fixture(scope="session")
def gridkit_sample_columns(gridkit_sample_bars: list[Bar]) -> dict[str, Any]:
    """The sample bars as numpy columns."""
    return columns_of(gridkit_sample_bars)


@pytest.fixture
def gridkit_run_toml(tmp_path: Path, gridkit_host: PluginHost) -> Callable[..., dict[str, Any]]:
    """``run(text, db=None)``: build and run a pipeline from TOML text; returns the summary."""

    def run(text: str, db: str | None = None) -> dict[str, Any]:
        return run_toml(text, base_dir=tmp_path, host=gridkit_host, db=db)

    return run


# --- contract tests ------------------------------------------------------------------------------

HOSTILE_BARS = [
    Bar(1, float("nan"), 1.0, 1.0, 1.0, 1.0),
    Bar(2, 1.0, float("inf"), 1.0, 1.0, 1.0),
    Bar(3, -1.0, 1.0, -2.0, 1.0, 1.0),
    Bar(4, 0.0, 0.0, 0.0, 0.0, 0.0),
    Bar(5, 2.0, 1.0, 3.0, 2.0, 1.0),  # high < low
    Bar(5, 2.0, 3.0, 1.0, 2.0, -5.0),  # duplicate timestamp, negative volume
    Bar(4, 2.0, 3.0, 1.0, 2.0, float("nan")),  # out of order
    Bar(10**15, 1e300, 1e308, 1e-300, 1.0, 1e308),
]


class ComponentContract:
    """Checks every component must pass: a name, a summary, a Config built from options."""

    #: The class under test.
    component_class: ClassVar[type[Component]]
    #: Options as pipeline.toml would give them.
    options: ClassVar[dict[str, Any]] = {}

    def make(self) -> Any:
        """A configured instance of the class under test."""
        return build(self.component_class, self.options)

    def test_has_a_name(self) -> None:
        name = self.component_class.name
        assert isinstance(name, str) and name, "set the class attribute 'name'"
        assert name == name.strip().lower() and " " not in name, "names are lower-case-with-dashes"

    def test_has_a_summary(self) -> None:
        assert self.component_class.summary(), "the class docstring's first line is its summary"

    def test_builds_from_options(self) -> None:
        component = self.make()
        assert isinstance(component, self.component_class)
        assert component.stats() is not None


class SourceContract(ComponentContract):
    """A source yields events in time order after ``setup``; set ``options`` to a real file."""

    #: Folder relative paths in ``options`` resolve against.
    base_dir: ClassVar[Path | None] = None

    def run_info(self) -> RunInfo:
        """The RunInfo the source is set up with."""
        return RunInfo("contract", "backtest", "BTC/USDT", 10_000.0,
                       self.base_dir if self.base_dir is not None else Path.cwd())

    def test_events_are_bars_in_time_order(self) -> None:
        source = self.make()
        source.validate(self.run_info())
        source.setup(self.run_info())
        try:
            last = None
            n = 0
            for event in source.events():
                n += 1
                if "bars" in source.provides and isinstance(event, Bar):
                    if last is not None:
                        assert event.ts >= last, "a file source should replay in time order"
                    last = event.ts
                if n >= 5000:
                    break
            assert n > 0, "the source yielded nothing"
        finally:
            source.close()


class ValidatorContract(ComponentContract):
    """A validator passes clean real bars and never raises on hostile ones."""

    #: Least share of the sample's real bars the validator must accept.
    min_accepted: ClassVar[float] = 0.99

    def test_accepts_real_bars(self, gridkit_sample_bars: list[Bar]) -> None:
        v = self.make()
        accepted = sum(feed([v], b) for b in gridkit_sample_bars)
        assert accepted >= self.min_accepted * len(gridkit_sample_bars)

    def test_never_raises_on_hostile_bars(self) -> None:
        v = self.make()
        for bar in HOSTILE_BARS:
            assert feed([v], bar) in (True, False)
        assert isinstance(v.stats(), dict)


class FeatureContract(ComponentContract):
    """A feature's streaming updates equal its batch function exactly, NaN until ready."""

    def test_streaming_equals_batch(self, gridkit_sample_bars: list[Bar],
                                    gridkit_sample_columns: dict[str, Any]) -> None:
        import numpy as np

        feature = self.make()
        streamed = np.array([feature.update(b) for b in gridkit_sample_bars])
        batch = np.asarray(self.make().batch(gridkit_sample_columns))
        assert batch.shape == streamed.shape
        # Exactly equal, NaN where NaN: the same recurrence in the same order.
        np.testing.assert_array_equal(streamed, batch)

    def test_nan_until_ready(self, gridkit_sample_bars: list[Bar]) -> None:
        feature = self.make()
        first = feature.update(gridkit_sample_bars[0])
        assert math.isnan(first) or feature.ready, "a value before the window fills must be NaN"
        values = [feature.update(b) for b in gridkit_sample_bars[1:]]
        assert feature.ready, "3,000 bars should fill any sensible window"
        assert any(not math.isnan(v) for v in values)

    def test_declares_its_inputs(self) -> None:
        from gridkit.core.types import EVENT_KINDS

        inputs = self.make().inputs  # may depend on the options
        assert inputs and inputs <= set(EVENT_KINDS.values())


class RegimeContract(ComponentContract):
    """A score rule scores in [0, 1] (NaN while its features warm up) on real data; a label
    rule (one that sets ``labels``) names one of its labels (None while warming up).

    ``features`` lists the (key, feature class, options) it reads.
    """

    features: ClassVar[list[tuple[str, type[Feature], dict[str, Any]]]] = []

    def test_scores_in_unit_interval(self, gridkit_sample_bars: list[Bar]) -> None:
        rule = self.make()
        if rule.labels:
            self._check_labels(rule, gridkit_sample_bars)
            return
        assert rule.label, "set the class attribute 'label'"
        feats = [(k, build(cls, opts)) for k, cls, opts in self.features]
        ctx = context()
        scored = 0
        for bar in gridkit_sample_bars:
            advance(ctx, bar)
            for key, f in feats:
                ctx.features[key] = f.update(bar)
            s = rule.score(ctx)
            if not math.isnan(s):
                assert 0.0 <= s <= 1.0
                scored += 1
        assert scored > 0, "the rule never scored on 3,000 real bars"

    def _check_labels(self, rule: Any, bars: list[Bar]) -> None:
        assert len(set(rule.labels)) == len(rule.labels), "labels must be distinct"
        feats = [(k, build(cls, opts)) for k, cls, opts in self.features]
        ctx = context()
        named = 0
        for bar in bars:
            advance(ctx, bar)
            for key, f in feats:
                ctx.features[key] = f.update(bar)
            got = rule.classify(ctx)
            if got is not None:
                assert got in rule.labels, f"classify() returned {got!r}, not one of labels"
                named += 1
        assert named > 0, "the rule never named a label on 3,000 real bars"


class AttentionContract(ComponentContract):
    """An attention module in its learning phase observes and changes no feature value."""

    def test_learning_changes_nothing(self, gridkit_sample_bars: list[Bar]) -> None:
        module = self.make()
        ctx = context()
        for i, bar in enumerate(gridkit_sample_bars[:500]):
            advance(ctx, bar)
            ctx.features["x"] = float(i)
            module.observe(ctx)
            if module.phase == "learning":
                assert ctx.features["x"] == float(i)
                assert ctx.weights == {}


class StrategyContract(ComponentContract):
    """A strategy runs a backtest on real bars without breaking the account's invariants.

    The backtest is :func:`step_strategy` over the 3,000 sample bars: the real engine and the
    ``simulated`` fill model, with the class under test registered or not.
    """

    #: Capital of the contract backtest (quote currency).
    capital: ClassVar[float] = 100_000.0
    #: More pipeline.toml text for the contract backtest (see :func:`step_strategy`): the
    #: ``[[features]]`` a strategy that reads features needs, say.
    pipeline: ClassVar[str] = ""

    def test_backtest_keeps_account_consistent(self, gridkit_sample_bars: list[Bar]) -> None:
        run = step_strategy(self.make(), gridkit_sample_bars, capital=self.capital,
                            pipeline=self.pipeline)
        summary = run.summary
        assert summary["status"] == "finished"
        assert summary["final_cash"] >= -1e-6, "cash went negative"
        assert summary["final_base"] >= -1e-9, "base went negative"
        equity = summary["final_cash"] + summary["final_base"] * summary["final_price"]
        assert math.isclose(equity, summary["final_equity"], rel_tol=1e-9)


class RiskCheckContract(ComponentContract):
    """A risk check answers every order with an Order or a Reject, and never raises."""

    def test_answers_orders(self, gridkit_sample_bars: list[Bar]) -> None:
        check = self.make()
        ctx = context()
        for i, bar in enumerate(gridkit_sample_bars[:200]):
            advance(ctx, bar)
            check.on_bar(ctx)
            for side in ("buy", "sell"):
                out = check.check(ctx.order(side, 0.01 * (i + 1), bar.close), ctx)
                assert isinstance(out, (Order, Reject))


class ExecutorContract(ComponentContract):
    """A simulated executor never fills an order on the bar it was submitted.

    An executor that matches on other events than bars (a class attribute ``matches``, e.g.
    ``"trades"`` for fills from trade prints) is skipped: its contract is its own.
    """

    def test_orders_are_live_from_next_bar(self, gridkit_sample_bars: list[Bar]) -> None:
        ex = self.make()
        if ex.live:
            pytest.skip("live executors are tested against a local exchange server")
        matches = getattr(ex, "matches", "bars")
        if matches != "bars":
            pytest.skip(f"matches orders on {matches}, not on bars")
        b0, b1 = gridkit_sample_bars[0], gridkit_sample_bars[1]
        ctx = context(capital=1_000_000.0, bar=b0)
        sym = ctx.symbol
        assert [r for r in ex.reports(b0, sym) if isinstance(r, Fill)] == []
        # Decided on b0 and marketable on b0 too: it must wait for b1 all the same.
        order = ctx.order("buy", 0.01, b0.high * 2)
        assert ex.submit(order, ctx) is None
        assert ex.open_orders() == [order]
        fills = [r for r in ex.reports(b1, sym) if isinstance(r, Fill)]
        assert [f.order_id for f in fills] == [order.id]
        assert ex.open_orders() == []


class StoreContract(ComponentContract):
    """A store opens, records and finishes a run without losing what it was given."""

    def test_round_trip(self, tmp_path: Path) -> None:
        store = self.make()
        run = RunInfo("contract", "backtest", "BTC/USDT", 10_000.0, tmp_path)
        store.setup(run)
        try:
            run_id, key = store.open_run(run, {"pipeline": {"symbol": "BTC/USDT"}})
            assert run_id is not None and key
            from gridkit.runtime.journal import Mark, OrderRequested

            order = Order(f"{key}-1", "buy", 1.0, 100.0, symbol="BTC/USDT")
            store.write(OrderRequested(order, 1))
            store.write(Fill(order.id, 2, "buy", 1.0, 100.0, 0.1, symbol="BTC/USDT"))
            store.write(Mark(2, "BTC/USDT", 100.0, 9899.9, 1.0, 9999.9))
            store.commit(b"state")
            store.finish_run("finished", {"ok": True}, None)
        finally:
            store.close()


#: Contract base per kind, for kinds that have specific checks.
CONTRACTS: dict[str, type[ComponentContract]] = {
    Source.kind: SourceContract,
    Validator.kind: ValidatorContract,
    Feature.kind: FeatureContract,
    Regime.kind: RegimeContract,
    Attention.kind: AttentionContract,
    Strategy.kind: StrategyContract,
    RiskCheck.kind: RiskCheckContract,
    Executor.kind: ExecutorContract,
    Store.kind: StoreContract,
}


#: The earlier name of :class:`StrategyContract`.
GridStrategyContract = StrategyContract
