"""Decides which bar features the engine runs fused, as one compiled step per bar.

A feature class names a *fuser* (:attr:`gridkit.Feature.fuser`): an object that can run several
such features in one call. Fusing pays per bar but costs a compile (or a cache load) at the
start, about a second with numba's import, so the ``[pipeline] fuse_features`` setting decides
when: ``"on"``, ``"off"``, or ``"auto"`` (the default), which fuses a group of at least
:data:`AUTO_MIN_FEATURES` features in paper and live runs (latency counts there, start-up does
not) and in backtests where features × events reaches :data:`AUTO_MIN_UPDATES` (each fused
update saves about 0.6 µs, so that is where the saving overtakes the start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gridkit.core.components import Feature

AUTO_MIN_FEATURES = 3
AUTO_MIN_UPDATES = 1_500_000


class Fuser(Protocol):
    """Runs several features in one step; named by a feature class's ``fuser``."""

    def accepts(self, feature: Feature) -> bool:
        """True if this instance can run fused (e.g. not a subclass that changed ``update``)."""

    def build(self, members: Sequence[tuple[str, Feature]],
              values: dict[str, float]) -> Callable[[Any], None]:
        """A function of one bar that updates every member and sets ``values[key]``.

        If it raises, it sets the exception's ``gridkit_component`` attribute to the member
        that failed: the engine's error then names that feature, as it would unfused. Its
        ``state`` attribute lists the numpy arrays that hold all of the members' state: the
        engine saves them for resume and copies them back in place.
        """


def plan(features: Sequence[tuple[str, Feature]], setting: str, mode: str,
         events: int | None) -> list[tuple[Fuser, list[tuple[str, Feature]]]]:
    """The groups to fuse, by fuser, in first-appearance order; the rest run one by one."""
    if setting == "off":
        return []
    groups: dict[int, tuple[Fuser, list[tuple[str, Feature]]]] = {}
    for key, feature in features:
        fuser = type(feature).fuser
        if fuser is not None and fuser.accepts(feature):
            groups.setdefault(id(fuser), (fuser, []))[1].append((key, feature))
    if setting == "on":
        return list(groups.values())
    return [g for g in groups.values() if len(g[1]) >= AUTO_MIN_FEATURES and (
        mode != "backtest" or events is None or events * len(g[1]) >= AUTO_MIN_UPDATES)]
