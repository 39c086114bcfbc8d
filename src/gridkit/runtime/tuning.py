"""Changing tunable options while a run goes on: validated, clamped, journalled, reversible.

An option is tunable when its Config field says so (``option(..., tunable=(low, high))``). A
change goes through the Config's own validators (a new Config is built with
``attrs.evolve``), is clamped to the option's bounds, is journalled as
:class:`~gridkit.runtime.journal.ParamChanged`, and the component's ``reconfigure(old, new, ctx)``
returns the orders and cancels the change implies, which are sent at once.
"""

from __future__ import annotations

from typing import Any

import attrs

from gridkit.core.errors import ConfigError
from gridkit.runtime.apply import execute
from gridkit.runtime.journal import ParamChanged
from gridkit.runtime.runstate import LaneRun, Run, component_at


def tunables(config_cls: type) -> dict[str, tuple[float, float]]:
    """The tunable options of a Config class and their bounds."""
    return {a.alias: a.metadata["tunable"] for a in attrs.fields(config_cls)
            if a.metadata.get("tunable") is not None}


def tune(run: Run, path: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change tunable options of the component at TOML ``path`` (``strategy``, ``risk[0]``,
    ``strategy@ETH/USDT``) while ``run`` goes on; return the values set (clamped)."""
    component, lr = component_at(run, path)
    old = component.config
    bounds = tunables(type(old))
    problems = []
    clamped: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in bounds:
            problems.append(f"{path}.{name}: not a tunable option (tunable: "
                            f"{', '.join(sorted(bounds)) or 'none'})")
            continue
        low, high = bounds[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            current = getattr(old, name)
            kind = type(current) if isinstance(current, (int, float)) else float
            value = kind(min(max(value, low), high))
        clamped[name] = value
    if problems:
        raise ConfigError(problems)
    try:
        new = attrs.evolve(old, **clamped)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    _switch(run, lr, path, component, old, new)
    run.tuned.append((path, old, new))
    return clamped


def rollback(run: Run) -> dict[str, Any] | None:
    """Undo the last change made by :func:`tune`; return the values put back."""
    if not run.tuned:
        return None
    path, old, new = run.tuned.pop()
    component, lr = component_at(run, path)
    _switch(run, lr, path, component, new, old)
    return {name: getattr(old, name) for name in tunables(type(old))}


def _switch(run: Run, lr: LaneRun, path: str, component: Any, old: Any, new: Any) -> None:
    component.config = new
    ts = lr.ctx.event.ts if lr.ctx.event is not None else 0
    names = tunables(type(old))
    run.journal.emit(ParamChanged(ts, path, {n: getattr(old, n) for n in names},
                                  {n: getattr(new, n) for n in names}))
    reconfigure = getattr(component, "reconfigure", None)
    if reconfigure is None:
        return
    got = reconfigure(old, new, lr.ctx)
    if got:
        lr.actions.extend(got)
        p = run.pipeline
        from gridkit.core.components import RiskCheck
        from gridkit.runtime.apply import overrides

        checks = tuple((p.origin(r)[1].name, r.check) for r in p.risk
                       if overrides(r, RiskCheck, "check"))
        execute(run, lr, checks, ts)


class Tuner:
    """What a feedback component may change while the run goes on: the tunable options of
    the run's components, through :func:`tune` and :func:`rollback` (validated, clamped,
    journalled, reversible). The engine hands one to :meth:`gridkit.Feedback.bind`."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def options(self) -> dict[str, dict[str, tuple[float, float, Any]]]:
        """Every tunable option by component path: ``{path: {name: (low, high, value)}}``."""
        out: dict[str, dict[str, tuple[float, float, Any]]] = {}
        p = self._run.pipeline
        for component in p.components():
            bounds = tunables(type(component.config))
            if bounds:
                path = p.origin(component)[0].path
                out[path] = {name: (low, high, getattr(component.config, name))
                             for name, (low, high) in bounds.items()}
        return out

    def tune(self, path: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change tunable options of the component at ``path``; the values set (clamped)."""
        return tune(self._run, path, changes)

    def rollback(self) -> dict[str, Any] | None:
        """Undo the last change; the values put back (None if there is none)."""
        return rollback(self._run)
