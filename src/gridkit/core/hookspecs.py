"""Every hook a gridkit plugin can implement.

Registration hooks run whenever a registry is built (once per command or run, never per event);
lifecycle hooks fire a handful of times per run. No hook is called per market event: the engine
resolves components once and then calls their methods directly.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("gridkit")
hookimpl = pluggy.HookimplMarker("gridkit")


@hookspec
def gridkit_register_sources(register: Any) -> None:
    """Register market-data source classes (subclasses of :class:`gridkit.Source`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_validators(register: Any) -> None:
    """Register data validator classes (subclasses of :class:`gridkit.Validator`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_features(register: Any) -> None:
    """Register feature extractor classes (subclasses of :class:`gridkit.Feature`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_signals(register: Any) -> None:
    """Register signal generator classes (subclasses of :class:`gridkit.SignalGenerator`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_attention(register: Any) -> None:
    """Register attention module classes (subclasses of :class:`gridkit.Attention`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_regimes(register: Any) -> None:
    """Register market-regime rule classes (subclasses of :class:`gridkit.Regime`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_strategies(register: Any) -> None:
    """Register grid strategy classes (subclasses of :class:`gridkit.Strategy`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_filters(register: Any) -> None:
    """Register signal filter classes (subclasses of :class:`gridkit.SignalFilter`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_risk_checks(register: Any) -> None:
    """Register risk check classes (subclasses of :class:`gridkit.RiskCheck`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_executors(register: Any) -> None:
    """Register order executor classes (subclasses of :class:`gridkit.Executor`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_monitors(register: Any) -> None:
    """Register monitor classes (subclasses of :class:`gridkit.Monitor`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_feedback(register: Any) -> None:
    """Register feedback-loop classes (subclasses of :class:`gridkit.Feedback`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_optimizers(register: Any) -> None:
    """Register parameter optimizer classes (subclasses of :class:`gridkit.Optimizer`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_objectives(register: Any) -> None:
    """Register search objective classes (subclasses of :class:`gridkit.Objective`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_stores(register: Any) -> None:
    """Register run store classes (subclasses of :class:`gridkit.Store`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_buses(register: Any) -> None:
    """Register event bus classes (subclasses of :class:`gridkit.Bus`).

    :param register: call ``register(cls)`` once per class; ``register(cls, replaces="name")``
        to take over a name that another plugin registered.
    """


@hookspec
def gridkit_register_commands(cli: Any) -> None:
    """Add commands to the ``gridkit`` command line, when a command is not otherwise known.

    Called only when the command line is asked for a command that is neither built in nor
    declared in the ``gridkit.commands`` entry-point group; calling it loads every plugin, so
    ``gridkit --help`` does not, and does not list the commands added here. Prefer the entry
    point: ``gridkit --help`` lists it without importing it.

    :param cli: the root :class:`click.Group`; call ``@cli.command()`` to add a command.
    """


@hookspec
def gridkit_pipeline_built(pipeline: Any) -> None:
    """Called once after a pipeline's components are built and before its first event.

    :param pipeline: the :class:`gridkit.runtime.engine.Pipeline` about to run; its ``components``
        and ``config`` are final.
    """


@hookspec
def gridkit_run_finished(pipeline: Any, summary: dict[str, Any]) -> None:
    """Called once when a run ends, successfully or not.

    :param pipeline: the :class:`gridkit.runtime.engine.Pipeline` that ran.
    :param summary: the run summary as printed by ``gridkit run --json``; ``summary["status"]``
        is ``"finished"`` or ``"failed"``.
    """


@hookspec
def gridkit_phase_changed(component: Any, old: str, new: str) -> None:
    """Called when a component with phases (progressive attention) moves from one to another.

    :param component: the component whose phase changed.
    :param old: the phase it left, e.g. ``"learning"``.
    :param new: the phase it entered, e.g. ``"shadow"``.
    """


#: Registration hook per component kind, in pipeline order. The registry is built from this.
KIND_HOOKS: dict[str, str] = {
    "source": "gridkit_register_sources",
    "validator": "gridkit_register_validators",
    "feature": "gridkit_register_features",
    "signal": "gridkit_register_signals",
    "attention": "gridkit_register_attention",
    "regime": "gridkit_register_regimes",
    "strategy": "gridkit_register_strategies",
    "filter": "gridkit_register_filters",
    "risk": "gridkit_register_risk_checks",
    "executor": "gridkit_register_executors",
    "monitor": "gridkit_register_monitors",
    "feedback": "gridkit_register_feedback",
    "optimizer": "gridkit_register_optimizers",
    "objective": "gridkit_register_objectives",
    "store": "gridkit_register_stores",
    "bus": "gridkit_register_buses",
}
