"""Whether a built pipeline has a fused form, and if not, why not (one line a user can act on).

A pipeline fuses when it is a one-symbol spot backtest of bars whose components all have a
compiled twin in :mod:`gridkit.fused`: the built-in ``timestamp``, ``price``, ``volume`` and
``ohlc`` validators, the built-in bar features the feature fuser runs, a grid whose lines stay
where the first close lays them (``static``, ``geometric``, ``asymmetric``, ``fibonacci``) or
that lays itself again (``symmetric`` on the close, ``volatility-adjusted`` on the close and its
measured volatility; no regime rule to follow), in its default
controls (long, ``on_exit = "hold"``, no stop or take-profit), the ``simulated`` executor with
rate fees, the ``position-size`` and ``drawdown`` risk checks (once each), and no other risk
check, signal, filter, regime rule, attention module, monitor or feedback. The components are
matched by exact class, so a subclass that changes a method runs on the plugin path.
"""

from __future__ import annotations

from typing import Any

#: ``auto`` fuses from this many bars: below it numba's import and the cached kernels' load
#: (about a second) cost more than the plugin path (about 150,000 bars/s) takes.
AUTO_MIN_BARS = 100_000


def fused_grids() -> tuple[type, ...]:
    """The grid classes the fused kernel runs: those whose lines stay where the start lays
    them, and ``symmetric`` and ``volatility-adjusted``, which it lays again as the strategy
    does."""
    from gridkit.plugins.grids.asymmetric import AsymmetricGrid
    from gridkit.plugins.grids.fibonacci import FibonacciGrid
    from gridkit.plugins.grids.geometric import GeometricGrid
    from gridkit.plugins.grids.static import StaticGrid
    from gridkit.plugins.grids.symmetric import SymmetricGrid
    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    return (StaticGrid, GeometricGrid, AsymmetricGrid, FibonacciGrid, SymmetricGrid,
            VolatilityAdjustedGrid)


def grid_params(strategy: Any, measured: Any = None) -> dict[str, Any]:
    """The fused grid kernel's re-laying arguments for ``strategy`` after its start (none but
    for ``symmetric`` and ``volatility-adjusted``; ``measured``: the latter's measured
    volatility per bar, :func:`gridkit.fused.run.measured_volatility`)."""
    from gridkit.plugins.grids.symmetric import SymmetricGrid
    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    kind = type(strategy)
    c = strategy.config
    if kind is VolatilityAdjustedGrid:
        return {"levels": int(c.levels), "geometric": c.mode == "geometric",
                "cooldown": int(c.cooldown), "measured": measured, "k": float(c.k),
                "min_spacing": float(c.min_spacing), "max_spacing": float(c.max_spacing),
                "threshold": float(c.threshold)}
    if kind is not SymmetricGrid:
        return {}
    return {"levels": int(c.levels), "spacing": float(c.spacing),
            "geometric": c.mode == "geometric", "cooldown": int(c.cooldown),
            "lower": float(strategy.lower), "upper": float(strategy.upper)}


def kernel_grid(strategy: Any) -> tuple[Any, Any, bool] | str:
    """The grid kernel's ``lines``, ``qtys`` and ``uniform`` for a started ``strategy``, or
    why its lines cannot run fused. (A ``volatility-adjusted`` grid lays its own lines in the
    kernel: these only say how many cells.)"""
    import numpy as np

    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    if type(strategy) is VolatilityAdjustedGrid:
        c = strategy.config
        n = 2 * int(c.levels)
        return np.arange(n + 1, dtype=np.float64), np.full(n, float(c.qty)), True
    cells = strategy.cells
    lines = np.array(cells.lines, dtype=np.float64)
    if not np.all(np.diff(lines) > 0):
        return "the grid's lines are not strictly increasing, which a fused backtest needs"
    return lines, np.array(cells.qtys, dtype=np.float64), isinstance(cells.qty, (int, float))


def risk_problem(checks: list[Any]) -> tuple[Any, str] | None:
    """The first risk check without a fused form and why (None: every one has one). The fused
    ones: ``position-size`` and ``drawdown``, once each."""
    from gridkit.plugins.risk import Drawdown, PositionSize

    seen: set[type] = set()
    for check in checks:
        kind = type(check)
        if kind not in (PositionSize, Drawdown):
            return check, "a risk check has no fused form (fused: position-size, drawdown)"
        if kind in seen:
            return check, f"a second {check.name} check has no fused form"
        seen.add(kind)
    return None


def risk_params(checks: list[Any]) -> dict[str, Any]:
    """The fused grid kernel's risk arguments for ``checks`` (:func:`risk_problem` None)."""
    from gridkit.plugins.risk import Drawdown, PositionSize

    out: dict[str, Any] = {"max_base": float("inf"), "max_fraction": float("inf"),
                           "position_size": False, "dd_limit": float("inf")}
    for check in checks:
        c = check.config
        if type(check) is PositionSize:
            out["position_size"] = True
            if c.max_base is not None:
                out["max_base"] = float(c.max_base)
            if c.max_fraction is not None:
                out["max_fraction"] = float(c.max_fraction)
        elif type(check) is Drawdown:
            out["dd_limit"] = float(c.limit)
    return out


def strategy_problem(strategy: Any) -> str | None:
    """Why ``strategy`` has no fused form (None: it has), as the end of a sentence."""
    if type(strategy) not in fused_grids():
        return ("has no fused form (fused grids: static, geometric, asymmetric, fibonacci, "
                "symmetric, volatility-adjusted)")
    c = strategy.config
    if c.direction != "long" or getattr(c, "on_exit", "hold") != "hold" or any(
            getattr(c, name) is not None for name in ("stop_loss", "take_profit",
                                                      "stop_loss_equity",
                                                      "take_profit_equity")):
        return "runs its controls (direction, on_exit, stops) on the plugin path"
    return None


def why_not(pipeline: Any, resume: bool = False) -> str | None:
    """None if ``pipeline`` (a built :class:`~gridkit.runtime.build.Pipeline`) has a fused
    form, else the first reason it has not, naming the component and its TOML path."""
    from gridkit.plugins.executors.bars import SimulatedExecutor
    from gridkit.plugins.features.fusion import BAR_FUSER
    from gridkit.plugins.validators import (
        OhlcValidator,
        PriceValidator,
        TimestampValidator,
        VolumeValidator,
    )

    run = pipeline.run
    if run.mode != "backtest":
        return f"a {run.mode} run"
    if resume:
        return "a resumed run continues on the plugin path"
    if len(pipeline.lanes) != 1:
        return f"{len(pipeline.lanes)} symbols (fused backtests trade one)"
    lane = pipeline.lanes[0]

    def at(component: Any) -> str:
        spec, reg = pipeline.origin(component)
        return f"{spec.path} ({reg.name})"

    market = lane.market
    if market.type != "spot":
        return f"a {market.type} market (fused backtests trade spot)"
    if lane.info is not None:
        return "[market] markets is set (its exchange rules run on the plugin path)"
    source = lane.source
    if source.provides != {"bars"} or source.bar_interval or source.live:
        return f"{at(source)} does not replay bars alone"
    stamps = 0
    for v in lane.validators:
        if type(v) not in (TimestampValidator, PriceValidator, VolumeValidator, OhlcValidator):
            return f"{at(v)} has no fused form"
        if type(v) is TimestampValidator:
            stamps += 1
            if v.config.calendar != "24/7":
                return f"{at(v)}: calendar {v.config.calendar!r} has no fused form"
    if stamps > 1:
        return "more than one timestamp validator"
    for _key, f in lane.features:
        if type(f).fuser is not BAR_FUSER or not BAR_FUSER.accepts(f):
            return f"{at(f)} has no fused form"
    risk = risk_problem(pipeline.risk)
    if risk is not None:
        return f"{at(risk[0])}: {risk[1]}"
    for kind, parts in (("signal", lane.signals), ("filter", lane.filters),
                        ("regime rule", lane.regimes), ("attention module", lane.attention),
                        ("monitor", pipeline.monitors)):
        if parts:
            return f"{at(parts[0])}: a {kind} has no fused form"
    if pipeline.feedback is not None:
        return f"{at(pipeline.feedback)}: feedback has no fused form"
    problem = strategy_problem(lane.strategy)
    if problem:
        return f"{at(lane.strategy)} {problem}"
    ex = pipeline.executor
    if type(ex) is not SimulatedExecutor:
        return f"{at(ex)} has no fused form (the simulated executor has)"
    if ex.config.fees != "rate" or ex.config.locked_limits != "none":
        return f"{at(ex)}: A-share fees and locked limits run on the plugin path"
    if pipeline.store.journaled:
        return f"{at(pipeline.store)} keeps the order journal (a fused run keeps its results only)"
    return None


def choose(pipeline: Any, resume: bool = False) -> dict[str, Any] | None:
    """The path a backtest takes under ``[pipeline] fuse``: ``{"fused": bool, "why": ...}``
    (None for paper and live). ``fuse = "on"`` with no fused form raises ConfigError."""
    from gridkit.core.errors import ConfigError

    if pipeline.run.mode != "backtest":
        return None
    setting = pipeline.config.pipeline.fuse
    if setting == "off":
        return {"fused": False, "why": "[pipeline] fuse = \"off\""}
    reason = why_not(pipeline, resume)
    if reason is not None:
        if setting == "on":
            raise ConfigError(f"pipeline.fuse: \"on\", but {reason}; set fuse = \"auto\" to "
                              f"run it on the plugin path")
        return {"fused": False, "why": reason}
    if setting == "auto":
        size = pipeline.lanes[0].source.size_hint()
        if size is None:
            return {"fused": False, "why": "the source streams and cannot tell how many bars "
                                           "it holds (fuse = \"on\" fuses it)"}
        if size < AUTO_MIN_BARS:
            return {"fused": False, "why": f"{size:,} bars (auto fuses from "
                                           f"{AUTO_MIN_BARS:,}: below, compiling costs more)"}
    return {"fused": True, "why": ""}
