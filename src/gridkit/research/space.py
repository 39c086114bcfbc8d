"""A search space: which pipeline options an optimizer may set, and to what.

A space is the ``[space]`` table of a space file. Each key is an option's path in
pipeline.toml (``strategy.grids``, ``risk[0].limit``, ``lanes."ETH/USDT".strategy.qty``) and
each value says what it may take:

.. code-block:: toml

    [space]
    "strategy.lower" = { low = 30000, high = 50000, steps = 5 }   # a float range
    "strategy.grids" = { low = 10, high = 60, int = true }         # integers, both ends in
    "strategy.qty" = { low = 0.001, high = 0.01, log = true }      # sampled log-uniformly
    "strategy.mode" = { choices = ["arithmetic", "geometric"] }

``steps`` is how many evenly spaced points a float range has for a grid search (an integer
range steps by ``step``, default 1; a ``log`` range spaces its points evenly in log).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from attrs import frozen

from gridkit.core.errors import ConfigError

#: One step of an option path: a table name, optionally indexed (``risk[1]``), or quoted.
_STEP = re.compile(r'\s*(?:"([^"]+)"|([A-Za-z0-9_-]+)(?:\[(\d+)\])?)\s*(?:\.|$)')


@frozen
class Dimension:
    """One option of the space: a float or integer range, or a list of choices."""

    path: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    log: bool = False
    steps: int | None = None
    step: int = 1
    choices: tuple[Any, ...] = ()

    def points(self) -> Sequence[Any]:
        """Every value a grid search tries, in order, without building more than it needs (an
        integer range without ``steps`` is a ``range``). ConfigError: a float range has no
        ``steps``."""
        if self.choices:
            return list(self.choices)
        low, high, n = float(self.low or 0.0), float(self.high or 0.0), self.steps
        if self.integer:
            lo, hi = int(low), int(high)
            if n is None:
                return range(lo, hi + 1, self.step)
            if n == 1:
                return [lo]
            if self.log:
                return sorted({min(hi, max(lo, round(v))) for v in _spaced(low, high, n, True)})
            count = (hi - lo) // self.step + 1
            return sorted({lo + self.step * round(i * (count - 1) / (n - 1)) for i in range(n)})
        if n is None:
            raise ConfigError(f"space.{self.path}: a grid search needs steps = N for a float "
                              f"range (how many points from low to high)")
        return [low] if n == 1 else _spaced(low, high, n, self.log)

    def sample(self, u: float) -> Any:
        """The value at ``u`` in [0, 1): uniform (log-uniform with ``log``) over the range, or
        one of the choices."""
        if self.choices:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        low, high = float(self.low or 0.0), float(self.high or 0.0)
        if self.integer and self.log:  # log-uniform, rounded, within the range
            v = round(math.exp(math.log(low) + (math.log(high) - math.log(low)) * u))
            return min(int(high), max(int(low), v))
        if self.integer:
            count = (int(high) - int(low)) // self.step + 1
            return int(low) + self.step * min(int(u * count), count - 1)
        if self.log:
            return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
        return low + (high - low) * u


def _spaced(low: float, high: float, n: int, log: bool) -> list[float]:
    """``n`` (at least 2) points from ``low`` to ``high``, evenly spaced (in log with ``log``)."""
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (n - 1)) for i in range(n)]
    return [low + (high - low) * i / (n - 1) for i in range(n)]


@frozen
class Space:
    """The dimensions of a search, in the order the space file lists them."""

    dimensions: tuple[Dimension, ...]

    @property
    def size(self) -> int | None:
        """How many points a grid search has (None: a float range without ``steps``)."""
        n = 1
        for d in self.dimensions:
            try:
                n *= len(d.points())
            except ConfigError:
                return None
        return n

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every point of the grid, the last dimension varying fastest."""
        axes = [(d.path, d.points()) for d in self.dimensions]

        def walk(i: int, point: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(axes):
                yield dict(point)
                return
            path, values = axes[i]
            for v in values:
                point[path] = v
                yield from walk(i + 1, point)

        yield from walk(0, {})


def parse_space(table: Any, where: str = "space") -> Space:
    """A :class:`Space` from the ``[space]`` table; every problem in one ConfigError."""
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{where}: expected a table of option paths, e.g. "
                          f'"strategy.grids" = {{ low = 10, high = 60, int = true }}')
    problems: list[str] = []
    dims = []
    for path, spec in table.items():
        at = f"{where}.{path}"
        try:
            option_path(path)
        except ValueError as err:
            problems.append(f"{at}: {err}")
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{at}: expected {{ low = ..., high = ... }} or {{ choices = [...] }}")
            continue
        unknown = sorted(set(spec) - {"low", "high", "int", "log", "steps", "step", "choices"})
        if unknown:
            problems.append(f"{at}: unknown key {unknown[0]!r} (keys: low, high, int, log, "
                            f"steps, step, choices)")
            continue
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices or len(spec) > 1:
                problems.append(f"{at}: choices must be a non-empty list, alone")
                continue
            if not all(isinstance(c, (str, int, float, bool)) for c in choices):
                problems.append(f"{at}: choices must be strings, numbers or booleans")
                continue
            dims.append(Dimension(path, choices=tuple(choices)))
            continue
        problem = _range_problem(spec)
        if problem:
            problems.append(f"{at}: {problem}")
            continue
        dims.append(Dimension(path, low=spec["low"], high=spec["high"],
                              integer=bool(spec.get("int", False)),
                              log=bool(spec.get("log", False)), steps=spec.get("steps"),
                              step=int(spec.get("step", 1))))
    if problems:
        raise ConfigError(problems)
    return Space(tuple(dims))


def _range_problem(spec: Mapping[str, Any]) -> str | None:
    if "low" not in spec or "high" not in spec:
        return "a range needs low and high (or give choices)"
    low, high = spec["low"], spec["high"]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
               for x in (low, high)):
        return f"low and high must be finite numbers, got {low!r} and {high!r}"
    if low > high:
        return f"low {low:g} is above high {high:g}"
    if spec.get("int") and (low != int(low) or high != int(high)):
        return "an integer range needs integer low and high"
    if spec.get("log") and low <= 0:
        return f"a log range needs low above 0, got {low:g}"
    steps, step = spec.get("steps"), spec.get("step", 1)
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)
                              or steps < 1):
        return f"steps must be an integer of at least 1, got {steps!r}"
    if not isinstance(step, int) or isinstance(step, bool) or step < 1 or (
            step != 1 and not spec.get("int")):
        return "step is for integer ranges, an integer of at least 1"
    return None


def option_path(path: str) -> list[str | int]:
    """``risk[1].limit`` as ``["risk", 1, "limit"]``; ValueError for a malformed path."""
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not an option path: {path!r} (e.g. strategy.grids, "
                             f"risk[0].limit)")
        quoted, name, index = m.groups()
        out.append(quoted if quoted is not None else name)
        if index is not None:
            out.append(int(index))
        pos = m.end()
    if len(out) < 2 or not isinstance(out[-1], str):
        raise ValueError(f"not an option path: {path!r} (a section and an option, e.g. "
                         f"strategy.grids)")
    return out


def set_option(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the option at ``path`` in pipeline.toml's tables (``data``, changed in place);
    ConfigError naming the path when a table on the way is missing."""
    steps = option_path(path)
    node: Any = data
    for i, key in enumerate(steps[:-1]):
        here = _shown(steps[:i + 1])
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise ConfigError(f"space.{path}: the pipeline has no {here} to set it in")
            node = node[key]
        elif not isinstance(node, dict):
            raise ConfigError(f"space.{path}: {_shown(steps[:i])} is not a table")
        elif key in node:
            node = node[key]
        elif steps[0] == "lanes" and not isinstance(steps[i + 1], int):
            node = node.setdefault(key, {})  # a lane's override table may be new
        else:
            raise ConfigError(f"space.{path}: the pipeline has no {here} to set it in")
    if not isinstance(node, dict):
        raise ConfigError(f"space.{path}: {_shown(steps[:-1])} is not a table")
    node[steps[-1]] = value


def _shown(steps: Sequence[str | int]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else str(s))
    return f"[{out}]"




def get_option(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """``(True, value)`` of the option at ``path`` in pipeline.toml's tables, or
    ``(False, None)`` when the pipeline does not set it."""
    node: Any = data
    for key in option_path(path):
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                return False, None
        elif not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def with_point(pipeline: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of pipeline.toml's tables with the point's options set."""
    data = copy.deepcopy(dict(pipeline))
    for path, value in params.items():
        set_option(data, path, value)
    return data


__all__ = [
    "Dimension",
    "Space",
    "get_option",
    "option_path",
    "parse_space",
    "set_option",
    "with_point",
]
