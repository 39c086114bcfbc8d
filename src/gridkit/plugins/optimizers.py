"""Built-in optimizers: ``grid-search``, ``random``, ``genetic`` and ``bayesian`` (the
ask/tell protocol of :class:`gridkit.Optimizer`; :func:`gridkit.research.optimize` runs their
trials)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

from attrs import frozen

from gridkit.core.components import Optimizer
from gridkit.core.config import at_least, fraction, option
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

    #: Its points need no scores: many trials may run at once.
    batch = 64

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

    #: Its points need no scores: many trials may run at once.
    batch = 64

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

    def stats(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "repeats": self.repeats}


class Genetic(Optimizer):
    """A seeded genetic algorithm: generations of ``population`` points, the fittest kept.

    A point's genome is one number in [0, 1) per dimension, decoded as ``random`` decodes a
    draw (uniform, log-uniform, integer or choice). Generation 0 is drawn at random. Each next
    generation keeps the ``elite`` best points of the last one unchanged (their scores are
    kept, not re-run: the best score never falls), and fills the rest with children:

    * **selection** — each parent is the best of ``tournament`` points drawn at random from the
      last generation (tournament selection; Miller and Goldberg, 1995);
    * **crossover** — with probability ``crossover`` the child takes each gene from either
      parent with equal odds (uniform crossover; Syswerda, 1989), else it copies the first;
    * **mutation** — each gene, with probability ``mutation``, moves by a normal step of
      standard deviation ``mutation_scale`` (reflected into [0, 1)).

    A trial that failed or broke a constraint (NaN) is the least fit. A child that decodes to
    a point already scored (or asked for, in this generation) takes that score without a new
    trial. A generation's points are proposed together (:attr:`batch` is the population):
    their trials may run at once, and the next generation is bred once all are scored. It
    stops after
    ``generations`` generations. Source: Holland, *Adaptation in Natural and Artificial
    Systems*, 1975; Goldberg, *Genetic Algorithms in Search, Optimization and Machine
    Learning*, 1989.
    """

    name = "genetic"

    @frozen
    class Config:
        population: int = option(20, doc="Points per generation.", validator=at_least(2))
        generations: int = option(10, doc="Generations, the first (random) one included.",
                                  validator=at_least(1))
        elite: int = option(2, doc="Best points carried unchanged into the next generation.",
                            validator=at_least(0))
        tournament: int = option(3, doc="Points drawn per parent selection.",
                                 validator=at_least(1))
        crossover: float = option(0.9, doc="Probability a child mixes two parents.",
                                  validator=fraction())
        mutation: float = option(0.2, doc="Probability each gene mutates.",
                                 validator=fraction())
        mutation_scale: float = option(0.1, doc="Standard deviation of a mutation, in the "
                                                "gene's [0, 1) scale.", validator=fraction())

        def __attrs_post_init__(self) -> None:
            from gridkit.core.config import OptionError

            if self.elite >= self.population:
                raise OptionError("elite", f"{self.elite} leaves no room for children in a "
                                           f"population of {self.population}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._rng = random.Random(0)
        self._space: Any = None
        self.generation = 0
        self._genomes: list[list[float]] = []
        self._scores: list[float | None] = []
        self._known: dict[tuple[Any, ...], float] = {}
        #: Points asked for and not yet scored -> the genomes of this generation that await it.
        self._asked: dict[tuple[Any, ...], list[int]] = {}
        #: The best score of each finished generation.
        self.best_by_generation: list[float] = []

    def start(self, space: Any, seed: int) -> None:
        self._space, self._rng = space, random.Random(seed)
        n = len(space.dimensions)
        self.generation, self._known, self.best_by_generation = 0, {}, []
        self._begin([[self._rng.random() for _ in range(n)]
                     for _ in range(self.config.population)], [None] * self.config.population)

    def _decode(self, genome: list[float]) -> dict[str, Any]:
        return {d.path: d.sample(g) for d, g in zip(self._space.dimensions, genome, strict=True)}

    @property
    def batch(self) -> int:  # type: ignore[override]
        """A generation: its points are proposed before any of their scores is needed."""
        return int(self.config.population)

    def _begin(self, genomes: list[list[float]], scores: list[float | None]) -> None:
        self._genomes, self._scores, self._asked = genomes, scores, {}

    def ask(self) -> dict[str, Any] | None:
        while True:
            waiting = False
            for i, score in enumerate(self._scores):
                if score is not None:
                    continue
                point = self._decode(self._genomes[i])
                key = tuple(point.values())
                known = self._known.get(key)
                if known is not None:
                    self._scores[i] = known
                    continue
                awaiting = self._asked.get(key)
                if awaiting is not None:  # asked for already: its score will do for both
                    if i not in awaiting:
                        awaiting.append(i)
                    waiting = True
                    continue
                self._asked[key] = [i]
                return point
            if waiting:  # the generation's last points are out: breed once they are scored
                return None
            if self.generation + 1 >= self.config.generations:
                self._finish_generation()
                return None
            self._next_generation()

    def tell(self, params: Mapping[str, Any], score: float) -> None:
        fitness = score if score == score else float("-inf")  # NaN: least fit
        key = tuple(params.values())
        self._known[key] = fitness
        for i in self._asked.pop(key, []):
            self._scores[i] = fitness

    def _finish_generation(self) -> list[int]:
        scores = self._scores
        order = sorted(range(len(scores)), key=lambda i: -(
            scores[i] if scores[i] is not None else float("-inf")))
        if len(self.best_by_generation) <= self.generation:
            self.best_by_generation.append(max(s for s in self._scores if s is not None))
        return order

    def _next_generation(self) -> None:
        c, rng = self.config, self._rng
        order = self._finish_generation()
        genomes, scores = self._genomes, self._scores
        new_g = [list(genomes[i]) for i in order[:c.elite]]
        new_s: list[float | None] = [scores[i] for i in order[:c.elite]]

        def pick() -> list[float]:
            drawn = [rng.randrange(len(genomes)) for _ in range(c.tournament)]
            return genomes[max(drawn, key=lambda i: scores[i])]  # (all scored by now)

        while len(new_g) < c.population:
            a, b = pick(), pick()
            if rng.random() < c.crossover:
                child = [x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True)]
            else:
                child = list(a)
            for k, g in enumerate(child):
                if rng.random() < c.mutation:
                    g = abs(g + rng.gauss(0.0, c.mutation_scale))  # reflect at 0 ...
                    g = g % 2.0
                    child[k] = min(2.0 - g, 0.999999999) if g >= 1.0 else g  # ... and at 1
            new_g.append(child)
            new_s.append(None)
        self.generation += 1
        self._begin(new_g, new_s)

    def stats(self) -> dict[str, Any]:
        return {"generation": self.generation, "best_by_generation": self.best_by_generation}


class Bayesian(Optimizer):
    """Bayesian optimization with optuna's Tree-structured Parzen Estimator (TPE).

    The first ``startup`` points are drawn at random; after that each point is the one that
    maximises the ratio of two density estimates over the points scored so far, one of the
    best ``gamma`` share and one of the rest (Bergstra, Bardenet, Bengio and Kégl, "Algorithms
    for Hyper-Parameter Optimization", NeurIPS 2011; optuna's ``TPESampler``, Akiba et al.,
    KDD 2019). Ranges map to optuna's float and integer distributions (``log`` kept), choices
    to a categorical one. A trial that failed or broke a constraint (NaN) is told as failed.
    Seeded: the same seed and the same scores give the same points. It stops after
    ``trials`` points. Each point is chosen knowing every earlier score (:attr:`batch` 1), so
    its trials run one at a time. Needs the ``research`` extra
    (``pip install 'gridkit[research]'``).
    """

    name = "bayesian"

    @frozen
    class Config:
        trials: int = option(50, doc="Points to try.", validator=at_least(1))
        startup: int = option(10, doc="Random points before the model guides the search.",
                              validator=at_least(1))

    def __init__(self, config: Any = None) -> None:
        import importlib.util

        from gridkit.core.errors import ConfigError

        super().__init__(config)
        if importlib.util.find_spec("optuna") is None:
            raise ConfigError("bayesian needs optuna: pip install 'gridkit[research]'")
        self._study: Any = None
        self._dists: dict[str, Any] = {}
        #: Optuna trials asked for and not yet told, by point.
        self._pending: dict[tuple[Any, ...], list[Any]] = {}
        self.asked = 0

    def start(self, space: Any, seed: int) -> None:
        import optuna
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is ours
        self._dists = {}
        for d in space.dimensions:
            if d.choices:
                self._dists[d.path] = CategoricalDistribution(list(d.choices))
            elif d.integer:
                self._dists[d.path] = IntDistribution(int(d.low), int(d.high), log=d.log,
                                                      step=1 if d.log else d.step)
            else:
                self._dists[d.path] = FloatDistribution(float(d.low), float(d.high), log=d.log)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.config.startup)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self.asked = 0

    def ask(self) -> dict[str, Any] | None:
        if self.asked >= self.config.trials:
            return None
        trial = self._study.ask(self._dists)
        self.asked += 1
        params = dict(trial.params)
        self._pending.setdefault(tuple(params.values()), []).append(trial)
        return params

    def tell(self, params: Mapping[str, Any], score: float) -> None:
        from optuna.trial import TrialState

        waiting = self._pending.get(tuple(params.values()))
        if not waiting:
            return
        trial = waiting.pop(0)
        if not waiting:
            del self._pending[tuple(params.values())]
        if score == score and abs(score) != float("inf"):
            self._study.tell(trial, score)
        else:
            self._study.tell(trial, state=TrialState.FAIL)

    def stats(self) -> dict[str, Any]:
        return {"asked": self.asked}


@hookimpl
def gridkit_register_optimizers(register: Any) -> None:
    register(GridSearch)
    register(RandomSearch)
    register(Genetic)
    register(Bayesian)
