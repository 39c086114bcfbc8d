"""pytest plugin for gridkit plugin authors: fixtures and one contract-test base class per kind.

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
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gridkit.core.components import (
    Attention,
    Component,
    Executor,
    Feature,
    Regime,
    RiskCheck,
    Source,
    Store,
    Strategy,
    Validator,
)
from gridkit.core.config import converter
from gridkit.core.plugins import PluginHost, new_host, set_host
from gridkit.core.types import Bar, Fill, Order, Reject
from gridkit.runtime.context import Context, RunInfo

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
    from gridkit.core.config import parse_pipeline
    from gridkit.runtime.engine import build_pipeline, run_pipeline

    text = text.replace("{sample}", sample_path().as_posix())
    config = parse_pipeline(text, base_dir=base_dir)
    return run_pipeline(build_pipeline(config, host, store_path=db))


def build(cls: type[Component], options: dict[str, Any] | None = None) -> Any:
    """An instance of ``cls`` configured from pipeline.toml-style ``options``."""
    return cls(converter.structure(dict(options or {}), cls.Config))


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
    """A regime rule scores in [0, 1] (NaN while its features warm up) on real data.

    ``features`` lists the (key, feature class, options) it reads.
    """

    features: ClassVar[list[tuple[str, type[Feature], dict[str, Any]]]] = []

    def test_scores_in_unit_interval(self, gridkit_sample_bars: list[Bar]) -> None:
        rule = self.make()
        assert rule.label, "set the class attribute 'label'"
        feats = [(k, build(cls, opts)) for k, cls, opts in self.features]
        ctx = Context(RunInfo("contract", "backtest", "BTC/USDT", 10_000.0))
        scored = 0
        for bar in gridkit_sample_bars:
            ctx.bar = bar
            for key, f in feats:
                ctx.features[key] = f.update(bar)
            s = rule.score(ctx)
            if not math.isnan(s):
                assert 0.0 <= s <= 1.0
                scored += 1
        assert scored > 0, "the rule never scored on 3,000 real bars"


class AttentionContract(ComponentContract):
    """An attention module in its learning phase observes and changes no feature value."""

    def test_learning_changes_nothing(self, gridkit_sample_bars: list[Bar]) -> None:
        module = self.make()
        ctx = Context(RunInfo("contract", "backtest", "BTC/USDT", 10_000.0))
        for i, bar in enumerate(gridkit_sample_bars[:500]):
            ctx.bar = bar
            ctx.features["x"] = float(i)
            module.observe(ctx)
            if module.phase == "learning":
                assert ctx.features["x"] == float(i)
                assert ctx.weights == {}


class StrategyContract(ComponentContract):
    """A strategy runs a backtest on real bars without breaking the account's invariants."""

    #: Capital of the contract backtest (quote currency).
    capital: ClassVar[float] = 100_000.0

    def test_backtest_keeps_account_consistent(
            self, gridkit_run_toml: Callable[..., dict[str, Any]],
            gridkit_host: PluginHost) -> None:
        name = self.component_class.name
        opts = "\n".join(f"{k} = {json.dumps(v)}" for k, v in self.options.items())
        summary = gridkit_run_toml(f"""
[pipeline]
symbol = "BTC/USDT"
capital = {self.capital}
[source]
use = "freqtrade-json"
path = "{{sample}}"
[strategy]
use = "{name}"
{opts}
""")
        assert summary["status"] == "finished"
        assert summary["final_cash"] >= -1e-6, "cash went negative"
        assert summary["final_base"] >= -1e-9, "base went negative"
        equity = summary["final_cash"] + summary["final_base"] * summary["final_price"]
        assert math.isclose(equity, summary["final_equity"], rel_tol=1e-9)


class RiskCheckContract(ComponentContract):
    """A risk check answers every order with an Order or a Reject, and never raises."""

    def test_answers_orders(self, gridkit_sample_bars: list[Bar]) -> None:
        check = self.make()
        ctx = Context(RunInfo("contract", "backtest", "BTC/USDT", 10_000.0))
        for i, bar in enumerate(gridkit_sample_bars[:200]):
            ctx.bar = bar
            ctx.portfolio.mark(bar.close)
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
        ctx = Context(RunInfo("contract", "backtest", "BTC/USDT", 1_000_000.0))
        b0, b1 = gridkit_sample_bars[0], gridkit_sample_bars[1]
        ctx.bar = b0
        ctx.portfolio.mark(b0.close)
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
