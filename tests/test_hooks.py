"""Every hook in hookspecs.py has a test here that a plugin implementing it is really called.

``test_every_hook_has_a_test`` keeps the promise: adding a hook without a test here fails it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner

from gridkit import (
    Attention,
    Bus,
    Executor,
    Feature,
    Feedback,
    GridStrategy,
    Monitor,
    Objective,
    Optimizer,
    Regime,
    RiskCheck,
    SignalFilter,
    SignalGenerator,
    Source,
    Store,
    Validator,
    hookimpl,
)
from gridkit.core import hookspecs
from gridkit.core.components import BASES
from gridkit.core.hookspecs import KIND_HOOKS
from gridkit.core.plugins import PluginHost, new_host, set_host
from gridkit.core.registry import build_registry

TESTED: dict[str, Callable[..., Any]] = {}


def covers(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            TESTED[name] = fn
        return fn

    return mark


PIPELINE = """
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample}"
[strategy]
use = "static"
lower = 50000
upper = 58000
grids = 8
qty = 0.01
"""


@covers(*KIND_HOOKS.values())
@pytest.mark.parametrize("kind", list(KIND_HOOKS))
def test_each_registration_hook_registers_a_component_of_its_kind(kind: str) -> None:
    base = BASES[kind]
    cls = type(f"Test{base.__name__}", (base,), {"name": f"test-{kind}", "__doc__": "A test."})
    hook = KIND_HOOKS[kind]

    def impl(register: Any) -> None:
        register(cls)

    impl.__name__ = hook
    plugin = type("Plugin", (), {hook: staticmethod(hookimpl(impl))})
    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    host.register(plugin, "test-plugin")
    reg = build_registry(host).get(kind, f"test-{kind}")
    assert reg.cls is cls and reg.plugin == "test-plugin"


def test_registration_refuses_a_class_of_another_kind() -> None:
    class Wrong(Feature):
        """Not a strategy."""

        name = "wrong"

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Wrong)

    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    host.register(Plugin, "p")
    registry = build_registry(host)
    assert "wrong" not in registry.names("strategy")
    assert any("not a subclass of gridkit.Strategy" in f.error for f in host.failures)


@covers("gridkit_register_commands")
def test_register_commands_adds_a_cli_command() -> None:
    from gridkit.cli import cli

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_commands(cli: click.Group) -> None:
            @cli.command()
            def hello() -> None:
                """Say hello."""
                click.echo("hello from a plugin")

    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    host.register(Plugin, "greeter")
    old = set_host(host)
    cli._plugins_added = False  # type: ignore[attr-defined]
    try:
        # Listing the commands calls no hook (it would import every plugin): the hook's
        # commands are found when one of them is asked for.
        before = CliRunner().invoke(cli, ["--help"])
        result = CliRunner().invoke(cli, ["hello"])
    finally:
        set_host(old)
        cli.commands.pop("hello", None)
        cli._plugins_added = False  # type: ignore[attr-defined]
    assert before.exit_code == 0 and "hello" not in before.output
    assert result.exit_code == 0 and result.output == "hello from a plugin\n"


class Recorder:
    """A plugin implementing the lifecycle hooks; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def gridkit_pipeline_built(self, pipeline: Any) -> None:
        self.calls.append(("built", pipeline.run.name))

    @hookimpl
    def gridkit_run_finished(self, pipeline: Any, summary: dict[str, Any]) -> None:
        self.calls.append(("finished", summary["status"]))

    @hookimpl
    def gridkit_phase_changed(self, component: Any, old: str, new: str) -> None:
        self.calls.append(("phase", (component.name, old, new)))


@pytest.fixture
def recorder(gridkit_host: PluginHost) -> Recorder:
    rec = Recorder()
    gridkit_host.register(rec, "recorder")
    return rec


@covers("gridkit_pipeline_built", "gridkit_run_finished")
def test_lifecycle_hooks_fire_once_per_run(recorder: Recorder,
                                           gridkit_run_toml: Callable[..., Any]) -> None:
    summary = gridkit_run_toml(PIPELINE)
    assert summary["status"] == "finished"
    assert recorder.calls == [("built", "pipeline"), ("finished", "finished")]


@covers("gridkit_phase_changed")
def test_phase_changed_fires_when_progressive_attention_leaves_learning(
        recorder: Recorder, gridkit_run_toml: Callable[..., Any]) -> None:
    summary = gridkit_run_toml(PIPELINE + """
[[features]]
use = "rsi"
[[attention]]
use = "progressive"
learn_events = 100
learn_trades = 0
""")
    phases = [c for c in recorder.calls if c[0] == "phase"]
    assert phases == [("phase", ("progressive", "learning", "shadow"))]
    assert summary["components"]["attention[0]"]["phase"] == "shadow"


def test_a_lifecycle_hook_that_raises_names_its_plugin(gridkit_host: PluginHost,
                                                       gridkit_run_toml: Callable[..., Any]
                                                       ) -> None:
    from gridkit import PluginError

    class Bad:
        @staticmethod
        @hookimpl
        def gridkit_pipeline_built(pipeline: Any) -> None:
            raise RuntimeError("nope")

    gridkit_host.register(Bad, "bad-plugin")
    with pytest.raises(PluginError, match="plugin bad-plugin raised in gridkit_pipeline_built"):
        gridkit_run_toml(PIPELINE)


def test_every_hook_has_a_test() -> None:
    hooks = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("gridkit_")}
    assert hooks == set(TESTED), f"hooks without a test: {sorted(hooks - set(TESTED))}"


def test_every_hook_is_a_spec_with_a_documented_parameter() -> None:
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("gridkit_"):
            continue
        doc = inspect.getdoc(fn) or ""
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"


def test_every_kind_has_a_base_class_and_a_hook() -> None:
    bases = {Source, Validator, Feature, SignalGenerator, Attention, Regime, GridStrategy,
             SignalFilter, RiskCheck, Executor, Monitor, Feedback, Optimizer, Objective, Store,
             Bus}
    assert {b.kind for b in bases} == set(KIND_HOOKS) == set(BASES)


def test_run_finished_fires_for_a_failed_run_too(recorder: Recorder,
                                                 gridkit_register_plugin: Callable[..., Any],
                                                 gridkit_run_toml: Callable[..., Any]) -> None:
    from gridkit import ComponentError, Feature

    class Broken(Feature):
        """Always raises."""

        name = "broken"

        def update(self, bar: Any) -> float:
            raise RuntimeError("no")

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: Any) -> None:
            register(Broken)

    gridkit_register_plugin(Plugin, "broken-plugin")
    with pytest.raises(ComponentError):
        gridkit_run_toml(PIPELINE + '[[features]]\nuse = "broken"\n')
    assert recorder.calls == [("built", "pipeline"), ("finished", "failed")]


def test_lifecycle_hooks_skip_plugins_disabled_by_distribution(
        gridkit_host: PluginHost, gridkit_run_toml: Callable[..., Any]) -> None:
    rec = Recorder()
    gridkit_host.register(rec, "recorder", distribution="gridkit-recorder")
    gridkit_run_toml(PIPELINE + '[plugins]\ndisable = ["gridkit-recorder"]\n')
    assert rec.calls == []


def test_a_phase_change_is_journalled(tmp_path: Any) -> None:
    import sqlite3

    import gridkit
    from gridkit.testing import sample_path

    db = tmp_path / "p.db"
    gridkit.run(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[[features]]
use = "rsi"
[[attention]]
use = "progressive"
learn_events = 100
learn_trades = 0
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 10
qty = 0.001
""", db=str(db))
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM journal WHERE kind = 'PhaseChanged'").fetchall()
    assert [r[0] for r in rows] == [
        '{"path": "attention[0]", "old": "learning", "new": "shadow"}']
