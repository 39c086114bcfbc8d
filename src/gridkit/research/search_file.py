"""A search file (``gridkit optimize SPACE.toml``): the pipeline, the space, the optimizer and
the objective of one search.

.. code-block:: toml

    pipeline = "pipeline.toml"          # the pipeline searched, relative to this file
    objective = "calmar"                # return | calmar | grid-profit | grid-apr | a plugin's
    max_drawdown = 0.25                 # optional: a trial above it scores nothing
    budget = 40                         # optional: the most trials
    seed = 1

    [optimizer]
    use = "random"                      # grid-search | random | genetic | bayesian | ...
    trials = 40

    [space]
    "strategy.grids" = { low = 10, high = 60, int = true }

    constraints = [                     # optional: points that break one are not run
        "(strategy.upper - strategy.lower) / strategy.grids / strategy.lower"
        " > 2 * executor.maker_fee",
    ]

    [scan."ETH/USDT"]                   # optional: the same search on several symbols
    "source.path" = "data/ETH_USDT-5m.json.gz"   # (relative to the pipeline's folder)

    [walk_forward]                      # optional: fit on windows, score out of sample
    windows = 4                         # out-of-sample stretches
    mode = "rolling"                    # rolling | anchored
    in_sample = 0.75                    # in-sample share of a window
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.errors import ConfigError
from gridkit.research.space import Space, parse_space
from gridkit.research.trials import objective_for

_KEYS = ("pipeline", "objective", "max_drawdown", "budget", "seed", "optimizer", "space",
         "constraints", "walk_forward", "scan")
_WALK_KEYS = ("windows", "mode", "in_sample")


@frozen
class SearchFile:
    """What a search file says, checked; ``pipeline_data`` is the pipeline file's tables."""

    path: Path
    pipeline_path: Path
    pipeline_data: dict[str, Any]
    space: Space
    space_table: dict[str, Any]
    optimizer: str
    optimizer_options: dict[str, Any]
    #: The objective's name, or its table (``{"use": ..., options}``).
    objective: Any
    max_drawdown: float | None
    budget: int | None
    seed: int
    #: The ``[walk_forward]`` table, checked and with its defaults (None: a plain search).
    walk_forward: dict[str, Any] | None = None
    #: The ``constraints``, parsed (:mod:`gridkit.research.constraints`).
    constraints: tuple[Any, ...] = ()
    #: The ``[scan]`` table: symbol -> the options that differ for it (None: one symbol).
    scan: dict[str, dict[str, Any]] | None = None

    @property
    def objective_name(self) -> str:
        """The objective's registered name."""
        o = self.objective
        return str(o.get("use")) if isinstance(o, Mapping) else str(o)

    def identity(self) -> dict[str, Any]:
        """What must not change between a search and its resume (JSON-able)."""
        return {"pipeline": self.pipeline_data, "space": self.space_table,
                "optimizer": {"use": self.optimizer, **self.optimizer_options},
                "objective": self.objective, "max_drawdown": self.max_drawdown,
                "seed": self.seed, "walk_forward": self.walk_forward,
                "constraints": [c.text for c in self.constraints], "scan": self.scan}


def load_search(path: str | Path) -> SearchFile:
    """Read and check a search file; every problem in one :class:`gridkit.ConfigError`."""
    from gridkit.runtime.pipeline_file import tomllib

    p = Path(path)
    data = _toml(p, tomllib)
    problems: list[str] = []
    for key in data:
        if key not in _KEYS:
            problems.append(f"unknown key {key!r}; a search file has: {', '.join(_KEYS)}")
    pipe = data.get("pipeline")
    pipeline_path = p.parent
    pipeline_data: dict[str, Any] = {}
    if not isinstance(pipe, str) or not pipe:
        problems.append('pipeline: the pipeline file to search, e.g. pipeline = "pipeline.toml"')
    else:
        from gridkit.runtime.pipeline_file import pipeline_from_data

        pipeline_path = (p.parent / pipe).resolve()
        try:
            pipeline_data = _toml(pipeline_path, tomllib)
            # The pipeline's own problems, named as gridkit run names them (not as a point's).
            pipeline_from_data(pipeline_data, str(pipeline_path), pipeline_path.parent)
        except ConfigError as err:
            problems.append(f"pipeline: {err}")
    objective = data.get("objective", "return")
    try:
        objective_for(objective)
    except ConfigError as err:
        problems.extend(err.problems)
    dd = data.get("max_drawdown")
    if dd is not None and (isinstance(dd, bool) or not isinstance(dd, (int, float))
                           or not 0 < dd <= 1):
        problems.append(f"max_drawdown: a fraction in (0, 1], got {dd!r}")
    budget = data.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        problems.append(f"budget: an integer of at least 1, got {budget!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(f"seed: an integer, got {seed!r}")
    opt = data.get("optimizer", {"use": "grid-search"})
    if not isinstance(opt, Mapping) or not isinstance(opt.get("use"), str):
        problems.append('optimizer: a table with use = "grid-search" | "random" | ...')
        opt = {"use": "grid-search"}
    space: Space | None = None
    try:
        space = parse_space(data.get("space"))
    except ConfigError as err:
        problems.extend(err.problems)
    walk = _walk_forward(data.get("walk_forward"), problems)
    constraints: list[Any] = []
    if space is not None:
        from gridkit.research.constraints import parse_constraints
        from gridkit.research.space import get_option

        items = data.get("constraints")
        known = {d.path: True for d in space.dimensions}
        for text in items if isinstance(items, list) else []:
            for word in str(text).replace("(", " ").replace(")", " ").split():
                if "." in word and word not in known:
                    known[word] = get_option(pipeline_data, word)[0]
        try:
            constraints = parse_constraints(items, known)
        except ConfigError as err:
            problems.extend(err.problems)
    scan = _scan(data.get("scan"), pipeline_data, pipeline_path, problems)
    if scan is not None and walk is not None:
        problems.append("scan and walk_forward: one or the other in a search file")
    if problems:
        raise ConfigError(problems, str(p))
    assert space is not None
    return SearchFile(p, pipeline_path, pipeline_data, space, dict(data["space"]),
                      str(opt["use"]), {k: v for k, v in opt.items() if k != "use"},
                      objective, None if dd is None else float(dd), budget, seed, walk,
                      tuple(constraints), scan)


def _scan(table: Any, pipeline_data: dict[str, Any], pipeline_path: Path,
          problems: list[str]) -> dict[str, dict[str, Any]] | None:
    """The ``[scan]`` table (symbol -> its options), each symbol's pipeline checked; or None."""
    if table is None:
        return None
    if not isinstance(table, Mapping) or not table or not all(
            isinstance(v, Mapping) for v in table.values()):
        problems.append('scan: a table per symbol, e.g. [scan."ETH/USDT"] with '
                        '"source.path" = "data/ETH_USDT-5m.json.gz"')
        return None
    if not pipeline_data:
        return None
    from gridkit.core.errors import GridkitError
    from gridkit.research.scan import symbol_pipeline
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import pipeline_from_data

    out: dict[str, dict[str, Any]] = {}
    for symbol, overrides in table.items():
        out[str(symbol)] = dict(overrides)
        try:
            built = build_pipeline(pipeline_from_data(
                symbol_pipeline(pipeline_data, str(symbol), overrides), str(pipeline_path),
                pipeline_path.parent))
            for lane in built.lanes:  # its data file is there (before any symbol runs)
                lane.source.validate(built.run)
        except GridkitError as err:
            problems.append(f"scan.{symbol!r}: {err}")
    return out


def _walk_forward(table: Any, problems: list[str]) -> dict[str, Any] | None:
    """The ``[walk_forward]`` table with its defaults, or None; its problems appended."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        problems.append("walk_forward: a table (windows, mode, in_sample)")
        return None
    for key in table:
        if key not in _WALK_KEYS:
            problems.append(f"walk_forward: unknown key {key!r}; it has: "
                            f"{', '.join(_WALK_KEYS)}")
    out = {"windows": table.get("windows", 4), "mode": table.get("mode", "rolling"),
           "in_sample": table.get("in_sample", 0.75)}
    w = out["windows"]
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        problems.append(f"walk_forward.windows: an integer of at least 1, got {w!r}")
    if out["mode"] not in ("rolling", "anchored"):
        problems.append(f"walk_forward.mode: 'rolling' or 'anchored', got {out['mode']!r}")
    r = out["in_sample"]
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
        problems.append(f"walk_forward.in_sample: a fraction in (0, 1), got {r!r}")
    return out


def _toml(path: Path, tomllib: Any) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it: {err}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: TOML syntax error: {err}") from None


def identity_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first difference between two :meth:`SearchFile.identity` values, in one line."""
    for key in new:
        a, b = old.get(key), new[key]
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True,
                                                                    default=str):
            if isinstance(a, Mapping) and isinstance(b, Mapping):
                for k in sorted(set(a) | set(b), key=str):
                    if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(
                            b.get(k), sort_keys=True, default=str):
                        return f"{key}.{k}: {_short(a.get(k))} -> {_short(b.get(k))}"
            return f"{key}: {_short(a)} -> {_short(b)}"
    return None


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True, default=str) if v is not None else "(none)"
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["SearchFile", "identity_change", "load_search"]
