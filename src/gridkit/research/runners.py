"""How a search runs its trials: each point built and run as ``gridkit run`` runs it, or — when
the pipeline has a fused form and the space varies only the strategy, the executor's fees and
the capital — the data read and validated once and each point one call of the fused kernel.

Both give the same figures to the last bit (``tests/test_fused_trials.py``): the fused runner
starts the point's strategy in Python on the first accepted bar, as the engine does, and reads
the kernel's own mirror of the account (:mod:`gridkit.fused.grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gridkit.core.errors import ConfigError, GridkitError
from gridkit.research.space import Space, with_point
from gridkit.summary import YEAR_MS, profit_factor, return_ratios

#: What a summary-reading objective is given.
Summary = Mapping[str, Any]
#: Option paths a fused runner lets vary between trials (the data and its checks stay).
FUSED_PATHS = ("strategy.", "executor.maker_fee", "executor.taker_fee",
               "executor.check_balance", "pipeline.capital")


def trial_data(pipeline: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """pipeline.toml's tables with the point's options set, as a trial runs them: a backtest,
    with no store (the search keeps the results)."""
    data = with_point(pipeline, params)
    if isinstance(data.get("pipeline"), dict):  # (else pipeline.toml's check says why)
        data["pipeline"]["mode"] = "backtest"
    data.pop("store", None)
    return data


class PluginRunner:
    """Each point built and run by the engine, as ``gridkit run`` runs it (``[pipeline] fuse``
    as the pipeline says: a long backtest may still take the fused path)."""

    def __init__(self, pipeline: Mapping[str, Any], base_dir: Path | None, source: str) -> None:
        self.pipeline, self.base_dir, self.source = pipeline, base_dir, source

    def __call__(self, params: Mapping[str, Any]) -> Summary | str:
        """The point's run summary, or why it could not run; ConfigError if the pipeline
        refuses the point's options."""
        from gridkit.runtime.engine import build_pipeline, run_pipeline
        from gridkit.runtime.pipeline_file import pipeline_from_data

        built = build_pipeline(pipeline_from_data(trial_data(self.pipeline, params),
                                                  self.source, self.base_dir))
        try:
            summary = run_pipeline(built)
        except GridkitError as err:  # this point cannot run (its data, a window, a plugin)
            return str(err)
        if summary["status"] == "stopped":  # by a signal: not a result
            raise KeyboardInterrupt
        return summary


class FusedRunner:
    """The data read and validated once; each point a strategy started on the first accepted
    bar and one call of :func:`gridkit.fused.grid.grid_backtest`. Build with :meth:`make`."""

    def __init__(self, pipeline: Mapping[str, Any], base_dir: Path | None, source: str,
                 built: Any, arrays: Any, accepted: Any) -> None:
        from gridkit.core.plugins import get_host
        from gridkit.core.registry import build_registry

        self.pipeline, self.base_dir, self.source = pipeline, base_dir, source
        self.run_info = built.run
        self.symbol = built.lanes[0].symbol
        self.arrays, self.accepted = arrays, accepted
        self.features = built.lanes[0].features
        #: A volatility-adjusted grid's measured volatility and feature values over
        #: :attr:`arrays`, by the feature and measure it reads.
        self._measured: dict[tuple[str, str], Any] = {}
        self.registry = build_registry(get_host(), exclude=built.config.plugins.disable)
        from gridkit.fused.plan import risk_params

        self.risk = risk_params(built.risk)
        #: Runs the points whose strategy has no fused form.
        self.fallback = PluginRunner(pipeline, base_dir, source)

    @classmethod
    def make(cls, pipeline: Mapping[str, Any], space: Space, base_dir: Path | None,
             source: str) -> FusedRunner | str:
        """A fused runner for the search, or why the search runs each point on its own (the
        pipeline has no fused form, or the space varies what the fused runner keeps)."""
        from gridkit.fused.plan import why_not
        from gridkit.fused.run import lane_bars
        from gridkit.runtime.engine import build_pipeline
        from gridkit.runtime.pipeline_file import pipeline_from_data

        moving = [d.path for d in space.dimensions if not d.path.startswith(FUSED_PATHS)]
        if moving:
            return f"the space varies {moving[0]} (a fused search varies the strategy, the " \
                   f"fees and the capital)"
        fuse = (pipeline.get("pipeline") or {}).get("fuse", "auto")
        if fuse == "off":
            return "[pipeline] fuse = \"off\""
        built = None
        # The pipeline as written, else with a point of the space (the space may hold an
        # option the pipeline leaves out): whichever builds says whether it fuses.
        for point in ({}, {d.path: d.sample(0.5) for d in space.dimensions},
                      {d.path: d.sample(0.0) for d in space.dimensions}):
            try:
                built = build_pipeline(pipeline_from_data(trial_data(pipeline, point), source,
                                                          base_dir))
                break
            except ConfigError:
                continue
        if built is None:
            return "the pipeline does not build (the first trial says why)"
        reason = why_not(built)
        if reason is not None:
            return reason
        got = lane_bars(built)
        if isinstance(got, str):
            return got
        return cls(pipeline, base_dir, source, built, *got)

    def __call__(self, params: Mapping[str, Any]) -> Summary | str:
        """The figures the objectives read, as the point's run summary has them."""
        return self.run(params, self.arrays, self.accepted)

    def run(self, params: Mapping[str, Any], arrays: Any, accepted: Any) -> Summary | str:
        """The point's figures on other bars (``arrays``, a :class:`~gridkit.fused.run
        .BarArrays`, and their accepted mask): a stress path, say."""

        from gridkit.fused.grid import grid_backtest
        from gridkit.fused.plan import grid_params, kernel_grid, strategy_problem
        from gridkit.fused.run import measured_volatility
        from gridkit.runtime.account import Account
        from gridkit.runtime.build import construct
        from gridkit.runtime.context import Context
        from gridkit.runtime.pipeline_file import pipeline_from_data

        cfg = pipeline_from_data(trial_data(self.pipeline, params), self.source, self.base_dir)
        problems: list[str] = []
        parts = {}
        for kind, key in (("strategy", "strategy"), ("executor", "executor")):
            made = construct(self.registry, problems, kind, cfg.components[key][0])
            if made is not None:
                parts[key] = made[0]
        if problems:
            raise ConfigError(problems, cfg.source)
        strat, ex = parts["strategy"], parts["executor"]
        if strategy_problem(strat):  # (a space may choose among grids): run it on its own
            return self.fallback(params)
        capital = float(cfg.pipeline.capital)
        first = int(accepted.argmax()) if accepted.any() else -1
        if first < 0:
            return {**_figures(capital, capital, 0.0, 0, 0.0, 0.0, 0.0), "sharpe": None,
                    "sortino": None, "profit_factor": None}
        a = arrays
        bar = a.bar(first)
        account = Account(capital, self.symbol.split("/")[-1])
        ctx = Context(self.run_info, account, symbol=self.symbol)
        ctx.bar = ctx.event = bar
        ctx.index = 1
        account.mark(ctx.position, bar.close)
        reads = (getattr(strat, "key", ""), getattr(strat.config, "measure", ""))
        got = self._measured.get(reads) if arrays is self.arrays else None
        if got is None:
            got = measured_volatility(strat, self.features, a, accepted)
            if arrays is self.arrays:
                self._measured[reads] = got
        measured = None
        if got is not None:  # its start reads the feature's value at the first bar
            measured = got[0]
            ctx.features[reads[0]] = float(got[1][first])
        try:
            strat.start(ctx)
        except GridkitError as err:
            return str(err)
        grid = kernel_grid(strat)
        if isinstance(grid, str):
            return grid
        _, figures, counters, *_ = grid_backtest(
            a.open, a.high, a.low, a.close, accepted, *grid, capital,
            float(ex.config.maker_fee), float(ex.config.taker_fee),
            bool(ex.config.check_balance), **self.risk, **grid_params(strat, measured))
        years = (float(a.ts[int(counters[7])]) - float(a.ts[first])) / 86_400_000 \
            * 86_400_000 / YEAR_MS
        out = _figures(capital, float(figures[2]), float(figures[4]), int(counters[1]),
                       float(figures[6]), float(figures[8]), years)
        sharpe, sortino = return_ratios(
            [int(figures[11]), float(figures[12]), float(figures[13]), float(figures[14])],
            years)
        out.update(sharpe=sharpe, sortino=sortino,
                   profit_factor=profit_factor(float(figures[9]), float(figures[10])))
        return out


def _figures(capital: float, equity: float, max_dd: float, orders: int,
             grid_profit: float, max_base: float, years: float) -> dict[str, Any]:
    """The summary keys the objectives read, computed as :func:`gridkit.summary.summarize`
    computes them (and the largest inventory held, which a run summary does not have)."""
    profit = 0 + grid_profit
    grid_return = profit / capital if capital else None
    return {"status": "finished", "backtest_path": {"fused": True, "why": ""},
            "final_equity": equity, "max_drawdown": max_dd, "max_base": max_base,
            "return_pct": (equity / capital - 1.0) * 100.0 if capital else 0.0,
            "orders_placed": orders, "grid": {
                "grid_profit": profit,
                "grid_apr": grid_return / years if grid_return is not None and years > 0
                else None}}


#: The summary keys the fused runner computes (what an objective may read from its trials).
FUSED_KEYS = frozenset({"status", "backtest_path", "final_equity", "max_drawdown", "max_base",
                        "return_pct", "orders_placed", "grid", "sharpe", "sortino",
                        "profit_factor"})


def runner_for(pipeline: Mapping[str, Any], space: Space, base_dir: Path | None,
               source: str, reads: Sequence[str] | None = ()
               ) -> tuple[Callable[[Mapping[str, Any]], Summary | str], str]:
    """The runner of a search, and why it is not the fused one ("" when it is); ``reads``:
    the summary keys the objective reads (None: all of them, which only the engine gives)."""
    if reads is None or not set(reads) <= FUSED_KEYS:
        return (PluginRunner(pipeline, base_dir, source),
                "the objective reads more of the summary than the fused runner computes")
    fused = FusedRunner.make(pipeline, space, base_dir, source)
    if isinstance(fused, FusedRunner):
        return fused, ""
    return PluginRunner(pipeline, base_dir, source), fused


__all__ = ["FusedRunner", "PluginRunner", "runner_for", "trial_data"]
