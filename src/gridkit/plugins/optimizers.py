"""Built-in optimizers: ``grid-search`` and ``random`` (the ask/tell protocol of
:class:`gridkit.Optimizer`; :func:`gridkit.research.optimize` runs their trials)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

from attrs import frozen

from gridkit.core.components import Optimizer
from gridkit.core.config import at_least, option
from gridkit.core.hookspecs import hookimpl


class GridSearch(Optimizer):
    """Tries every point of the space's grid, in order, the last dimension varying fastest.

    A float range needs ``steps`` (its evenly spaced points, log-spaced with ``log``); an
    integer range steps by ``step``; choices are tried in the order given. The grid's size is
    the product of the dimensions' point counts; the driver's budget may stop it earlier.
    """

    name = "grid-search"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._points: Iterator[dict[str, Any]] = iter(())
        self.asked = 0

    def start(self, space: Any, seed: int) -> None:
        self._points = space.grid()
        self.asked = 0

    def ask(self) -> dict[str, Any] | None:
        point = next(self._points, None)
        if point is not None:
            self.asked += 1
        return point

    def stats(self) -> dict[str, Any]:
        return {"asked": self.asked}


class RandomSearch(Optimizer):
    """Draws ``trials`` points at random, each dimension independently: uniform over a range
    (log-uniform with ``log``; integers with both ends included), or one of the choices with
    equal odds. Seeded: the same seed gives the same points. A point drawn twice is tried once
    (integer and choice spaces can be small); after ``trials`` draws it stops.

    Source: Bergstra and Bengio, "Random Search for Hyper-Parameter Optimization", *JMLR* 13,
    2012 — for the same budget it covers each dimension more finely than a grid.
    """

    name = "random"

    @frozen
    class Config:
        trials: int = option(100, doc="Points to draw.", validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._rng = random.Random(0)
        self._space: Any = None
        self._seen: set[tuple[Any, ...]] = set()
        self.drawn = 0
        self.repeats = 0

    def start(self, space: Any, seed: int) -> None:
        self._space, self._rng = space, random.Random(seed)
        self._seen, self.drawn, self.repeats = set(), 0, 0

    def ask(self) -> dict[str, Any] | None:
        while self.drawn < self.config.trials:
            self.drawn += 1
            point = {d.path: d.sample(self._rng.random()) for d in self._space.dimensions}
            key = tuple(point.values())
            if key in self._seen:
                self.repeats += 1
                continue
            self._seen.add(key)
            return point
        return None

    def tell(self, params: Mapping[str, Any], score: float) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "repeats": self.repeats}


@hookimpl
def gridkit_register_optimizers(register: Any) -> None:
    register(GridSearch)
    register(RandomSearch)
