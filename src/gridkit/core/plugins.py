"""The plugin manager: loads the ``gridkit`` entry points once, lazily, each on its own.

One broken entry point is recorded (``gridkit plugins`` shows it) and does not take the others
down; ``GRIDKIT_STRICT_PLUGINS=1`` turns that into an error. ``GRIDKIT_LOAD_PLUGINS`` (a comma
list of distribution or entry-point names, possibly empty) limits which third-party plugins load;
gridkit's own built-ins always load unless ``GRIDKIT_DISABLE_PLUGINS`` names them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import pluggy
from attrs import define, field, frozen

from gridkit.core import hookspecs
from gridkit.core.errors import PluginError

ENTRY_POINT_GROUP = "gridkit"
DISTRIBUTION = "gridkit"


@frozen
class PluginFailure:
    """A plugin that could not be loaded or whose registration hook raised."""

    plugin: str
    distribution: str | None
    error: str

    def line(self) -> str:
        """One line for the terminal."""
        dist = f" ({self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin}{dist}: {self.error}"


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def strict_plugins(env: Mapping[str, str] | None = None) -> bool:
    """True when ``GRIDKIT_STRICT_PLUGINS`` asks for plugin problems to be errors."""
    env = os.environ if env is None else env
    return env.get("GRIDKIT_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


@define
class PluginHost:
    """A pluggy manager plus what gridkit knows about each plugin (distribution, failures)."""

    pm: pluggy.PluginManager
    #: plugin name -> distribution name (None for plugins registered from code).
    distributions: dict[str, str | None] = field(factory=dict)
    #: plugin name -> distribution version.
    versions: dict[str, str | None] = field(factory=dict)
    failures: list[PluginFailure] = field(factory=list)
    strict: bool = False

    def fail(self, plugin: str, distribution: str | None, error: str) -> None:
        """Record a plugin problem, or raise it in strict mode."""
        failure = PluginFailure(plugin, distribution, error)
        if self.strict:
            raise PluginError(failure.line())
        self.failures.append(failure)

    def register(self, obj: Any, name: str, distribution: str | None = None,
                 version: str | None = None) -> bool:
        """Register one plugin object; check its hook names. Returns False if it was refused."""
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as err:  # a hookimpl whose arguments fit no spec
            self.fail(name, distribution, f"not registered: {err}")
            return False
        except ValueError as err:  # a second plugin of the same name
            self.fail(name, distribution, f"not registered: {err}")
            return False
        try:
            # Everything registered before passed this check, so a failure is this plugin's.
            self.pm.check_pending()
        except pluggy.PluginValidationError as err:
            self.pm.unregister(name=name)
            self.fail(name, distribution, str(err))
            return False
        self.distributions[name] = distribution
        self.versions[name] = version
        return True

    def load_entry_points(self, env: Mapping[str, str]) -> None:
        """Import and register every ``gridkit`` entry point allowed by the environment."""
        allow = _names(env.get("GRIDKIT_LOAD_PLUGINS"))
        deny = _names(env.get("GRIDKIT_DISABLE_PLUGINS")) or set()
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if (ep.name, ep.value) in seen:  # one distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            if ep.name in deny or dist in deny:
                continue
            builtin = dist == DISTRIBUTION
            if not builtin and allow is not None and ep.name not in allow and dist not in allow:
                continue
            try:
                module = ep.load()
            except Exception as err:  # any import-time error of a plugin is that plugin's
                self.fail(ep.name, dist, f"import failed: {type(err).__name__}: {err}")
                continue
            self.register(module, ep.name, dist, version)

    def hooks_of(self, plugin: str) -> list[str]:
        """Names of the hooks a plugin implements."""
        obj = self.pm.get_plugin(plugin)
        if obj is None:
            return []
        callers = self.pm.get_hookcallers(obj) or []
        return sorted(c.name for c in callers)

    def call_each(self, hook: str, exclude: Iterable[str] = (), **kwargs: Any) -> None:
        """Call every implementation of a lifecycle hook on its own, naming the one that raises."""
        excluded = set(exclude)  # plugin or distribution names, as in [plugins] disable
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name in excluded or self.distributions.get(impl.plugin_name) in excluded:
                continue
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as err:
                dist = self.distributions.get(impl.plugin_name)
                where = f" ({dist})" if dist else ""
                raise PluginError(
                    f"plugin {impl.plugin_name}{where} raised in {hook}: "
                    f"{type(err).__name__}: {err}"
                ) from err


def new_host(load: bool = True, env: Mapping[str, str] | None = None) -> PluginHost:
    """A fresh plugin host with gridkit's hook specs; ``load`` loads the entry points too."""
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm, strict=strict_plugins(env))
    if load:
        host.load_entry_points(env)
    return host


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use and then kept."""
    global _host
    if _host is None:
        _host = new_host()
    return _host


def set_host(host: PluginHost | None) -> PluginHost | None:
    """Swap the process-wide host (tests and :mod:`gridkit.testing`); returns the old one."""
    global _host
    old, _host = _host, host
    return old


def registration_hook_impls(host: PluginHost, hook: str) -> list[tuple[str, Callable[..., Any]]]:
    """(plugin name, function) of each implementation of a registration hook, in load order."""
    impls = getattr(host.pm.hook, hook).get_hookimpls()
    return [(impl.plugin_name, impl.function) for impl in impls]
