"""Named components: which class answers to each (kind, name), and which plugin gave it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import attrs
from attrs import frozen

from gridkit.core.components import BASES, Component
from gridkit.core.errors import ConfigError, PluginError
from gridkit.core.hookspecs import KIND_HOOKS
from gridkit.core.plugins import PluginHost, registration_hook_impls


@frozen
class Registration:
    """One component class as a plugin registered it."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    distribution: str | None
    #: The name this registration takes over (``register(cls, replaces=...)``), if any.
    replaces: str | None = None

    @property
    def origin(self) -> str:
        """``plugin (distribution)`` for messages."""
        return f"{self.plugin} ({self.distribution})" if self.distribution else self.plugin


class Register:
    """The ``register`` object a registration hook receives: ``register(cls, replaces=None)``."""

    def __init__(self, kind: str, plugin: str, distribution: str | None,
                 sink: list[Registration]) -> None:
        self.kind = kind
        self.plugin = plugin
        self.distribution = distribution
        self._sink = sink

    def __call__(self, cls: type[Component], replaces: str | None = None) -> None:
        base = BASES[self.kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{cls!r} is not a subclass of gridkit.{base.__name__}")
        if not isinstance(cls.name, str) or not cls.name:
            raise PluginError(f"{cls.__name__} has no name (set the class attribute 'name')")
        if not attrs.has(cls.Config):
            raise PluginError(f"{cls.__name__}.Config is not an attrs class")
        from gridkit.core.config import one_of_groups

        try:
            one_of_groups(cls.Config)
        except TypeError as err:
            raise PluginError(f"{cls.__name__}.Config.{err}") from None
        name = replaces or cls.name
        self._sink.append(
            Registration(self.kind, name, cls, self.plugin, self.distribution, replaces)
        )


class Registry:
    """Every component available to a pipeline, after duplicates and replacements are settled."""

    def __init__(self, entries: Iterable[Registration], replaced: Iterable[Registration] = (),
                 conflicts: dict[tuple[str, str], list[Registration]] | None = None) -> None:
        self._entries = {(r.kind, r.name): r for r in entries}
        #: Registrations that a ``replaces=`` took over.
        self.replaced = list(replaced)
        #: Names registered by more than one plugin with no ``replaces=``: unusable.
        self.conflicts = conflicts or {}

    def get(self, kind: str, name: str, where: str = "") -> Registration:
        """The registration of (kind, name), or a ConfigError naming close matches."""
        entry = self._entries.get((kind, name))
        if entry is not None:
            return entry
        at = f"{where}: " if where else ""
        clash = self.conflicts.get((kind, name))
        if clash:
            who = " and ".join(r.origin for r in clash)
            raise ConfigError(f"{at}{kind} '{name}' is registered by both {who}; "
                              f"one of them must register it with replaces='{name}'")
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        installed = ", ".join(names) if names else "none installed"
        raise ConfigError(f"{at}unknown {kind} '{name}'; {hint}available: {installed}")

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(n for k, n in self._entries if k == kind)

    def all(self, kind: str | None = None) -> list[Registration]:
        """Every registration (of one kind), in pipeline-kind order then by name."""
        order = {k: i for i, k in enumerate(KIND_HOOKS)}
        items = [r for r in self._entries.values() if kind is None or r.kind == kind]
        return sorted(items, key=lambda r: (order.get(r.kind, 99), r.name))


def build_registry(host: PluginHost, exclude: Iterable[str] = ()) -> Registry:
    """Ask every plugin (except ``exclude``, plugin or distribution names) for its components."""
    excluded = set(exclude)
    found: list[Registration] = []
    for kind, hook in KIND_HOOKS.items():
        for plugin, function in registration_hook_impls(host, hook):
            dist = host.distributions.get(plugin)
            if plugin in excluded or (dist is not None and dist in excluded):
                continue
            sink: list[Registration] = []
            try:
                function(Register(kind, plugin, dist, sink))
            except Exception as err:
                host.fail(plugin, dist, f"{hook} raised: {type(err).__name__}: {err}")
                continue
            found.extend(sink)
    return _settle(found, host)


def _settle(found: list[Registration], host: PluginHost) -> Registry:
    originals: dict[tuple[str, str], list[Registration]] = {}
    replacements: dict[tuple[str, str], list[Registration]] = {}
    for r in found:
        target = replacements if r.replaces else originals
        target.setdefault((r.kind, r.name), []).append(r)

    entries: dict[tuple[str, str], Registration] = {}
    conflicts: dict[tuple[str, str], list[Registration]] = {}
    replaced: list[Registration] = []

    def conflict(key: tuple[str, str], regs: list[Registration], what: str) -> None:
        conflicts[key] = regs
        who = " and ".join(r.origin for r in regs)
        for r in regs:
            host.fail(r.plugin, r.distribution, f"{key[0]} '{key[1]}' {what} by {who}")

    for key, regs in originals.items():
        if len(regs) > 1:
            conflict(key, regs, "is registered twice, without replaces=,")
        else:
            entries[key] = regs[0]
    for key, regs in replacements.items():
        if len(regs) > 1:
            conflict(key, regs, "is replaced twice")
            entries.pop(key, None)
            continue
        new = regs[0]
        if key not in entries and key not in conflicts:
            host.fail(new.plugin, new.distribution,
                      f"replaces {key[0]} '{key[1]}', which no plugin registered")
            continue
        old = entries.get(key)
        if old is not None:
            replaced.append(old)
        conflicts.pop(key, None)
        entries[key] = new
    return Registry(entries.values(), replaced, conflicts)


def describe(reg: Registration) -> dict[str, Any]:
    """A JSON-able description of a component: what ``gridkit components --json`` prints."""
    from gridkit.core.config import describe_fields, one_of_groups

    return {
        "kind": reg.kind,
        "name": reg.name,
        "summary": reg.cls.summary(),
        "class": f"{reg.cls.__module__}.{reg.cls.__qualname__}",
        "plugin": reg.plugin,
        "distribution": reg.distribution,
        "replaces": reg.replaces,
        "config": describe_fields(reg.cls.Config),
        "one_of": [list(g) for g in one_of_groups(reg.cls.Config)],
    }
