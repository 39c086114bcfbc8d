"""The event loop: builds a pipeline's components once, then runs every event through them.

The loop is the same for backtest, paper and live; only the source and executor differ. No hook
is called per event: components are looked up when the pipeline is built and their methods are
then called directly. Each stage's time per event is kept in a ring buffer for the summary.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from importlib import metadata
from typing import Any

from attrs import define, field

from gridkit.core import fusion
from gridkit.core.bars import TimeBars
from gridkit.core.components import (
    Attention,
    Component,
    Executor,
    Feature,
    Feedback,
    GridStrategy,
    Monitor,
    Regime,
    RiskCheck,
    Signal,
    SignalFilter,
    Source,
    Store,
    Validator,
)
from gridkit.core.config import SECTION_BY_KEY, ComponentSpec, PipelineConfig, structure_options
from gridkit.core.context import Context, RunInfo
from gridkit.core.errors import ComponentError, ConfigError, GridkitError, PluginError
from gridkit.core.plugins import PluginHost, get_host
from gridkit.core.registry import Registration, Registry, build_registry
from gridkit.core.types import EVENT_KINDS, Bar, Cancel, Order, Reject, Rejection, Trade

#: Stages timed per event, in the order they run.
STAGES = (
    "validate", "fills", "account", "features", "attention", "regime", "strategy", "risk",
    "execute", "monitor",
)
_RING = 1 << 16  # samples kept per ring: the last 65,536
#: Every event's total time is kept; the split by stage is taken on one event in 2**SAMPLE_SHIFT,
#: since reading the clock at each of ten stage boundaries costs about a microsecond an event.
SAMPLE_SHIFT = 2
SAMPLE_MASK = (1 << SAMPLE_SHIFT) - 1


@define
class Pipeline:
    """A pipeline whose components are built and ready to run."""

    config: PipelineConfig
    run: RunInfo
    host: PluginHost
    registry: Registry
    source: Source
    validators: list[Validator]
    features: list[tuple[str, Feature]]
    signals: list[Signal]
    attention: list[Attention]
    regimes: list[Regime]
    strategy: GridStrategy
    filters: list[SignalFilter]
    risk: list[RiskCheck]
    executor: Executor
    monitors: list[Monitor]
    feedback: Feedback | None
    store: Store
    #: id(component) -> (spec, registration): who to blame when a component raises.
    origins: dict[int, tuple[ComponentSpec, Registration]] = field(factory=dict)

    def components(self) -> list[Component]:
        """Every component, in pipeline order."""
        out: list[Component] = [self.source, *self.validators, *(f for _, f in self.features),
                                *self.signals, *self.attention, *self.regimes, self.strategy,
                                *self.filters, *self.risk, self.executor, *self.monitors]
        if self.feedback is not None:
            out.append(self.feedback)
        out.append(self.store)
        return out

    def origin(self, component: Component) -> tuple[ComponentSpec, Registration]:
        """The spec and registration a component was built from."""
        return self.origins[id(component)]


def check_requirements(requirements: list[str], host: PluginHost | None = None) -> list[str]:
    """Problems with ``[plugins] require``: each distribution missing, too old, or not loaded."""
    if not requirements:  # packaging's regexes take ~60 ms to compile: only when needed
        return []
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    problems = []
    for i, text in enumerate(requirements):
        try:
            req = Requirement(text)
        except InvalidRequirement as err:
            problems.append(f"plugins.require[{i}]: not a requirement: {text!r} ({err})")
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"plugins.require[{i}]: required plugin distribution '{req.name}' "
                            f"is not installed (pip install '{text}')")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"plugins.require[{i}]: '{req.name}' {version} is installed, "
                            f"but the pipeline requires {text}")
            continue
        loaded = {canonicalize_name(d) for d in (host.distributions.values() if host else ())
                  if d}
        if host is not None and canonicalize_name(req.name) not in loaded:
            problems.append(f"plugins.require[{i}]: '{req.name}' is installed but its plugins "
                            f"are not loaded (see GRIDKIT_LOAD_PLUGINS / GRIDKIT_DISABLE_PLUGINS "
                            f"and 'gridkit plugins')")
    return problems


def build_pipeline(config: PipelineConfig, host: PluginHost | None = None, *,
                   store_path: str | None = None) -> Pipeline:
    """Look up and configure every component (step 2); raise ConfigError listing all problems."""
    host = host if host is not None else get_host()
    problems = check_requirements(config.plugins.require, host)
    if problems:
        raise PluginError("; ".join(problems))
    registry = build_registry(host, exclude=config.plugins.disable)
    run = RunInfo(config.pipeline.name, config.pipeline.mode, config.pipeline.symbol,
                  config.pipeline.capital, config.base_dir)

    built: dict[str, list[Component]] = {}
    origins: dict[int, tuple[ComponentSpec, Registration]] = {}
    for key, specs in config.components.items():
        built[key] = []
        for spec in specs:
            if key == "store" and store_path is not None:
                spec = ComponentSpec(spec.use, {**spec.options, "path": store_path}, spec.path)
            try:
                reg = registry.get(SECTION_BY_KEY[key].kind, spec.use, where=spec.path)
            except ConfigError as err:
                problems.extend(err.problems)
                continue
            cfg, errs = structure_options(spec, reg.cls.Config)
            if errs:
                problems.extend(errs)
                continue
            try:
                component = reg.cls(cfg)
            except GridkitError as err:
                problems.append(f"{spec.path}: {err}")
                continue
            except Exception as err:
                raise PluginError(f"{spec.path}: {reg.kind} '{reg.name}' (plugin {reg.origin}) "
                                  f"failed to build: {type(err).__name__}: {err}") from err
            origins[id(component)] = (spec, reg)
            built[key].append(component)
    if problems:
        raise ConfigError(problems, config.source)

    feature_specs = config.components["features"]
    pipeline = Pipeline(
        config=config, run=run, host=host, registry=registry,
        source=built["source"][0],  # type: ignore[arg-type]
        validators=built["validators"],  # type: ignore[arg-type]
        features=[(spec.key or spec.use, f)  # type: ignore[misc]
                  for spec, f in zip(feature_specs, built["features"], strict=True)],
        signals=built["signals"], attention=built["attention"],  # type: ignore[arg-type]
        regimes=built["regimes"],  # type: ignore[arg-type]
        strategy=built["strategy"][0],  # type: ignore[arg-type]
        filters=built["filters"], risk=built["risk"],  # type: ignore[arg-type]
        executor=built["executor"][0],  # type: ignore[arg-type]
        monitors=built["monitors"],  # type: ignore[arg-type]
        feedback=(built["feedback"] or [None])[0],  # type: ignore[arg-type]
        store=built["store"][0],  # type: ignore[arg-type]
        origins=origins,
    )
    problems = _cross_checks(pipeline)
    for component in pipeline.components():
        try:
            component.validate(run)
        except GridkitError as err:
            spec, _ = pipeline.origin(component)
            problems.append(f"{spec.path}: {err}")
    if problems:
        raise ConfigError(problems, config.source)
    return pipeline


def _cross_checks(p: Pipeline) -> list[str]:
    problems = []
    _, src_reg = p.origin(p.source)
    provides = p.source.provides
    for _, feature in p.features:
        spec, reg = p.origin(feature)
        missing = sorted(feature.inputs - provides)
        if missing:
            problems.append(f"{spec.path}: feature '{reg.name}' reads {', '.join(missing)}, "
                            f"which source '{src_reg.name}' does not provide "
                            f"(it provides {', '.join(sorted(provides))})")
    keys = {k for k, _ in p.features}
    for rule in p.regimes:
        spec, reg = p.origin(rule)
        for need in rule.requires_features:
            if need not in keys:
                problems.append(f"{spec.path}: regime '{reg.name}' reads feature '{need}', "
                                f"which no [[features]] entry provides (add use = \"{need}\")")
    mode = p.run.mode
    _, ex_reg = p.origin(p.executor)
    if mode == "backtest" and p.source.live:
        problems.append(f"source: '{src_reg.name}' is a live source; backtests replay files")
    if mode == "backtest" and p.executor.live:
        problems.append(f"executor: '{ex_reg.name}' sends real orders; backtests must simulate")
    if mode in ("paper", "live") and not p.source.live:
        problems.append(f"pipeline.mode: {mode} mode needs a live data source, "
                        f"and '{src_reg.name}' replays a file")
    if mode == "paper" and p.executor.live:
        problems.append(f"executor: paper mode simulates fills; '{ex_reg.name}' sends real orders")
    if mode == "live" and not p.executor.live:
        live = [r.name for r in p.registry.all("executor") if r.cls.live]
        hint = (f"use one of: {', '.join(live)}" if live
                else "no live executor is installed yet (the 'ccxt' executor is coming)")
        problems.append(f"executor: live mode needs an executor that sends real orders; {hint}")
    return problems


class _Timer:
    """Per-stage latency samples in fixed-size ring buffers: memory stays flat over long runs."""

    def __init__(self) -> None:
        self.rings = {name: array("q", bytes(8 * _RING)) for name in (*STAGES, "event")}
        self.count = 0
        self._cached: tuple[int, dict[str, dict[str, float]]] | None = None

    def percentiles(self) -> dict[str, dict[str, float]]:
        """p50 and p99 per stage in µs, over the last 65,536 events (computed once)."""
        if self._cached is not None and self._cached[0] == self.count:
            return self._cached[1]
        out = {}
        for name, ring in self.rings.items():
            taken = self.count if name == "event" else (self.count + SAMPLE_MASK) >> SAMPLE_SHIFT
            n = min(taken, _RING)
            samples = sorted(ring[:n])
            if not samples:
                continue
            out[name] = {
                "p50": samples[(n - 1) // 2] / 1000.0,
                "p99": samples[min(n - 1, int(0.99 * n))] / 1000.0,
            }
        self._cached = (self.count, out)
        return out


@define
class Run:
    """The mutable state of one run of a pipeline; :meth:`summary` is what the CLI prints."""

    pipeline: Pipeline
    ctx: Context
    timer: _Timer = field(factory=_Timer)
    run_id: int | None = None
    opened: bool = False  # the store holds a run record that must be finished
    seen: int = 0
    accepted: int = 0
    orders_placed: int = 0
    orders_cancelled: int = 0
    rejected: dict[str, int] = field(factory=dict)
    first_ts: int | None = None
    #: Events that are not bars, by kind: [seen, accepted].
    ticks: dict[str, list[int]] = field(factory=dict)
    #: Strategy actions held while trading was paused, and those still held at the end.
    deferred: int = 0
    deferred_at_end: int = 0
    status: str = "running"
    error: str | None = None
    elapsed: float = 0.0
    #: Keys of the bar features run as one fused compiled step (empty: none).
    fused: list[str] = field(factory=list)
    #: Set by the tick handler when every validator accepted the latest trade (bar folding).
    trade_accepted: bool = False
    #: Folds the source's accepted trades into bars, for a source with a ``bar_interval``.
    folder: TimeBars | None = None

    def take_trade_verdict(self) -> bool:
        """Whether every validator accepted the trade just processed (and forget it)."""
        ok, self.trade_accepted = self.trade_accepted, False
        return ok

    def summary(self) -> dict[str, Any]:
        """The run summary (DESIGN.md §7), JSON-able."""
        p, pf = self.pipeline, self.ctx.portfolio
        comps: dict[str, dict[str, Any]] = {}
        for c in p.components():
            stats = c.stats()
            if stats:
                spec, _ = p.origin(c)
                comps[spec.path] = stats
        dropped_by = {p.origin(v)[0].use: v.stats() for v in p.validators if v.stats()}
        equity = pf.equity
        bars_seen = self.seen - sum(seen for seen, _ in self.ticks.values())
        return {
            "name": p.run.name, "mode": p.run.mode, "symbol": p.run.symbol,
            "status": self.status, "error": self.error, "run_id": self.run_id,
            "bars_seen": bars_seen, "bars_accepted": self.accepted,
            "bars_dropped": bars_seen - self.accepted, "dropped_by": dropped_by,
            "events": {kind: {"seen": s, "accepted": a, "dropped": s - a,
                              **({"not_in_bars": self.folder.not_in_bars}
                                 if kind == "trades" and self.folder is not None else {})}
                       for kind, (s, a) in self.ticks.items() if s},
            "paused": self.ctx.paused, "orders_deferred": self.deferred,
            "orders_deferred_at_end": self.deferred_at_end,
            "features_fused": self.fused,
            "first_ts": self.first_ts,
            "last_ts": self.ctx.bar.ts if self.ctx.bar is not None else None,
            "orders_placed": self.orders_placed, "orders_cancelled": self.orders_cancelled,
            "orders_rejected": sum(self.rejected.values()), "rejected_by": dict(self.rejected),
            "open_orders": len(p.executor.open_orders()),
            # Orders the engine believes open but the executor does not, or the reverse: a
            # grid that never loses an order keeps this empty.
            "unreconciled_orders": sorted(
                set(self.ctx.open_orders) ^ {o.id for o in p.executor.open_orders()}),
            "buy_fills": pf.buy_fills, "sell_fills": pf.sell_fills,
            "fees_paid": pf.fees, "capital": pf.capital,
            "final_cash": pf.cash, "final_base": pf.base, "final_price": pf.price,
            "final_equity": equity, "realized_profit": pf.realized,
            "return_pct": (equity / pf.capital - 1.0) * 100.0 if pf.capital else 0.0,
            "max_drawdown": pf.max_drawdown, "halted": self.ctx.halted,
            "regime": self.ctx.regime,
            "pipeline": {spec.path: {"use": spec.use, "plugin": reg.plugin,
                                     "distribution": reg.distribution}
                         for spec, reg in (p.origin(c) for c in p.components())},
            "components": comps,
            "latency_us": self.timer.percentiles(),
            "elapsed_s": self.elapsed,
            "events_per_s": self.seen / self.elapsed if self.elapsed > 0 else None,
        }


def run_pipeline(pipeline: Pipeline,
                 progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    """Run a built pipeline to the end of its source; return the summary.

    ``progress(done, total)`` is called every 4,096 events and at the end (``total`` is the
    source's size hint, or None).

    Raises :class:`ComponentError` (after recording the failure in the store) when a component
    raises; what was written before stays in the store, marked ``failed``.
    """
    ctx = Context(pipeline.run)
    ctx.phase_changed = lambda component, old, new: pipeline.host.call_each(
        "gridkit_phase_changed", exclude=pipeline.config.plugins.disable,
        component=component, old=old, new=new)
    run = Run(pipeline, ctx)
    setup_done: list[Component] = []
    try:
        for component in pipeline.components():
            _guard(pipeline, component, "in setup", component.setup, pipeline.run)
            setup_done.append(component)
        run.run_id = _guard(pipeline, pipeline.store, "opening the run", pipeline.store.open_run,
                            pipeline.run, pipeline.config.raw)
        run.opened = True
        pipeline.host.call_each("gridkit_pipeline_built", exclude=pipeline.config.plugins.disable,
                                pipeline=pipeline)
        started = time.perf_counter()
        try:
            _loop(run, progress)
        finally:
            run.elapsed = time.perf_counter() - started
        run.status = "finished"
    except BaseException as err:
        run.status = "failed"
        run.error = str(err) if isinstance(err, GridkitError) else f"{type(err).__name__}: {err}"
        _finish(run, setup_done)
        raise
    return _finish(run, setup_done)


def _finish(run: Run, setup_done: list[Component]) -> dict[str, Any]:
    """Record the end of the run, close every component, fire run_finished; the summary."""
    pipeline = run.pipeline
    summary = run.summary()
    if run.opened:
        try:
            pipeline.store.finish_run(run.status, summary, run.error)
        except Exception as err:  # the store failing must not hide the original error
            if run.status == "finished":
                raise _blame(pipeline, pipeline.store, "finishing the run", err) from err
    for component in reversed(setup_done):
        try:
            component.close()
        except Exception as err:
            if run.status == "finished":
                raise _blame(pipeline, component, "in close", err) from err
    try:
        pipeline.host.call_each("gridkit_run_finished", exclude=pipeline.config.plugins.disable,
                                pipeline=pipeline, summary=summary)
    except GridkitError:
        if run.status == "finished":  # on a failed run, the run's own error is the one to show
            raise
    return summary


def _guard(pipeline: Pipeline, component: Component, where: str, fn: Callable[..., Any],
           *args: Any) -> Any:
    try:
        return fn(*args)
    except GridkitError:
        raise
    except Exception as err:
        raise _blame(pipeline, component, where, err) from err


def _blame(pipeline: Pipeline, component: Component, where: str,
           err: BaseException) -> ComponentError:
    spec, reg = pipeline.origin(component)
    return ComponentError(reg.kind, reg.name, reg.origin, err, f"{where} ({spec.path})")


def _culprit(pipeline: Pipeline, err: BaseException) -> Component | None:
    """The component named by the error (``gridkit_component``, set by a step that runs several
    components, such as fused features), else the outermost component method on the traceback:
    the one the engine called."""
    named = getattr(err, "gridkit_component", None)
    if named is not None and id(named) in pipeline.origins:
        return named  # type: ignore[no-any-return]
    tb = err.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and id(obj) in pipeline.origins:
            return obj
        tb = tb.tb_next
    return None


def _loop(run: Run, progress: Callable[[int, int | None], None] | None) -> None:
    p, ctx = run.pipeline, run.ctx
    try:
        _bars(run, progress)
    except GridkitError:
        raise
    except Exception as err:
        culprit = _culprit(p, err)
        bar = ctx.bar
        where = f"on event #{run.seen}" + (f" (ts {bar.ts})" if bar is not None else "")
        if culprit is None:
            raise
        raise _blame(p, culprit, where, err) from err


def _bars(run: Run, progress: Callable[[int, int | None], None] | None) -> None:
    """The hot loop over bar events. Locals are bound up front: this runs once per bar."""
    p, ctx = run.pipeline, run.ctx
    now = time.perf_counter_ns
    rings = run.timer.rings
    r_val, r_fill, r_acct, r_feat, r_att, r_reg, r_strat, r_risk, r_exec, r_mon, r_evt = (
        rings[name] for name in (*STAGES, "event"))
    for v in p.validators:
        if _overrides(v, Validator, "bind"):
            v.bind(ctx)
    bar_validators = [v for v in p.validators if "bars" in v.inputs]
    validators = tuple(v.accept for v in bar_validators)
    # Only validators that override accepted() pay for the extra call.
    on_accepted = tuple(v.accepted for v in bar_validators
                        if _overrides(v, Validator, "accepted"))
    fvals = ctx.features
    for key, _ in p.features:
        fvals[key] = float("nan")
    total = p.source.size_hint()  # known only after setup
    bar_features = [(key, f) for key, f in p.features if "bars" in f.inputs]
    groups = fusion.plan(bar_features, p.config.pipeline.fuse_features, p.run.mode, total)
    fused_keys = {key for _, members in groups for key, _ in members}
    run.fused = [key for key, _ in bar_features if key in fused_keys]
    fused = tuple(fuser.build(members, fvals) for fuser, members in groups)
    features = tuple((key, f.update) for key, f in bar_features if key not in fused_keys)
    tick = _tick_handler(run) if p.source.provides - {"bars"} or p.source.bar_interval else None
    attention = tuple(a.observe for a in p.attention)
    regimes = tuple((r.label, r.score) for r in p.regimes)
    signals = tuple(s.update for s in p.signals)
    filters = tuple(f.allow for f in p.filters)
    # Base-class methods that do nothing are not called at all: no cost for what a component
    # does not use.
    risk_bar = tuple(r.on_bar for r in p.risk if _overrides(r, RiskCheck, "on_bar"))
    risk_checks = tuple((p.origin(r)[1].name, r.check) for r in p.risk
                        if _overrides(r, RiskCheck, "check"))
    monitors = tuple(m.on_event for m in p.monitors)
    feedback = p.feedback
    every = feedback.every if feedback is not None else 0
    strategy, executor, store = p.strategy, p.executor, p.store
    plans = _overrides(strategy, GridStrategy, "on_bar")
    match_bar = executor.match_bar
    record_fill, record_equity = store.record_fill, store.record_equity
    portfolio = ctx.portfolio
    apply_fill, mark = portfolio.apply, portfolio.mark
    closed = ctx.order_closed
    deferred: list[Order | Cancel] = []  # held while trading is paused
    nan = float("nan")
    started = False
    mask = _RING - 1
    seen = accepted = 0
    events = p.source.events()
    if p.source.bar_interval:
        run.folder = TimeBars(p.source.bar_interval)
        events = run.folder.fold(events, run.take_trade_verdict, flush=not p.source.live)
    try:
        for bar in events:
            t0 = now()
            seen += 1
            run.seen = seen  # kept current so a failure can say which event it was
            if progress is not None and not seen & 4095:
                progress(seen, total)
            if type(bar) is not Bar:  # a trade or book update: features and validators only
                tick(bar)  # type: ignore[misc]
                continue
            ok = True
            for accept in validators:
                if not accept(bar):
                    ok = False
                    break
            if not ok:
                continue
            for note in on_accepted:
                note(bar)
            i = accepted & mask
            timed = not accepted & SAMPLE_MASK
            accepted += 1
            ctx.index += 1
            ctx.bar = ctx.event = bar
            if timed:
                t1 = now()

            fills = match_bar(bar)
            if timed:
                t2 = now()

            for fill in fills:
                closed(fill.order_id)
                apply_fill(fill)
                record_fill(fill)
            equity = mark(bar.close)
            record_equity(bar.ts, bar.close, portfolio.cash, portfolio.base, equity)
            if timed:
                t3 = now()

            for step in fused:
                step(bar)
            for key, update in features:
                fvals[key] = update(bar)
            if timed:
                t4 = now()

            for observe in attention:
                observe(ctx)
            if timed:
                t5 = now()

            if regimes:
                best_label, best = None, nan
                for label, score in regimes:
                    s = score(ctx)
                    if s == s and (best != best or s > best):  # s == s: not NaN
                        best_label, best = label, s
                ctx.regime, ctx.regime_score = best_label, best
            if signals:
                fired = []
                for update in signals:
                    sig = update(ctx)
                    if sig is not None and all(allow(sig, ctx) for allow in filters):
                        fired.append(sig)
                ctx.signals = fired
            if timed:
                t6 = now()

            if started:
                actions: list[Order | Cancel] = []
                for fill in fills:
                    actions.extend(strategy.on_fill(fill, ctx))
                if plans:
                    planned = strategy.on_bar(ctx)
                    if planned:
                        actions.extend(planned)
            else:
                actions = list(strategy.start(ctx))
                started = True
                run.first_ts = bar.ts
            if timed:
                t7 = now()

            if ctx.halted is None:
                for on_bar in risk_bar:
                    reason = on_bar(ctx)
                    if reason:
                        _halt(run, reason, bar.ts)
                        break
            if timed:
                t8 = now()

            if actions or deferred:
                if ctx.halted is not None:
                    _refuse(run, actions, "trading halted", "engine")
                elif ctx.paused is not None:
                    deferred.extend(actions)
                    run.deferred += len(actions)
                else:
                    if deferred:  # the pause is over: what the strategy asked for meanwhile
                        actions, deferred = deferred + actions, []
                    _execute(run, actions, risk_checks, bar.ts)
            if timed:
                t9 = now()

            for on_event in monitors:
                on_event(ctx)
            if every and not accepted % every:
                feedback.step(ctx)  # type: ignore[union-attr]
            t10 = now()
            r_evt[i] = t10 - t0
            if timed:  # one event in 2**SAMPLE_SHIFT: the time of every stage
                j = (accepted >> SAMPLE_SHIFT) & mask
                r_val[j] = t1 - t0
                r_fill[j] = t2 - t1
                r_acct[j] = t3 - t2
                r_feat[j] = t4 - t3
                r_att[j] = t5 - t4
                r_reg[j] = t6 - t5
                r_strat[j] = t7 - t6
                r_risk[j] = t8 - t7
                r_exec[j] = t9 - t8
                r_mon[j] = t10 - t9
    finally:  # also when a component raises: the summary counts what was processed
        run.seen, run.accepted = seen, accepted
        run.timer.count = accepted
        if deferred:
            run.deferred_at_end = len(deferred)
    if progress is not None:
        progress(seen, total)


def _tick_handler(run: Run) -> Callable[[Any], None]:
    """The path of events that are not bars (trades, book, depth): each kind's validators, then
    each kind's features. Trading decisions stay on bars."""
    p, ctx = run.pipeline, run.ctx
    fvals = ctx.features
    by_kind: dict[type, tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], list[int]]] = {}
    for cls, kind in EVENT_KINDS.items():
        if cls is Bar:
            continue
        vals = [v for v in p.validators if kind in v.inputs]
        by_kind[cls] = (
            tuple(v.accept for v in vals),
            tuple(v.accepted for v in vals if _overrides(v, Validator, "accepted")),
            tuple((key, f.update) for key, f in p.features if kind in f.inputs),
            run.ticks.setdefault(kind, [0, 0]),  # [seen, accepted]
        )

    folding = bool(p.source.bar_interval)

    def tick(event: Any) -> None:
        accepts, notes, updates, counts = by_kind[type(event)]
        counts[0] += 1
        for accept in accepts:
            if not accept(event):
                return
        for note in notes:
            note(event)
        counts[1] += 1
        ctx.event = event
        for key, update in updates:
            fvals[key] = update(event)
        if folding and type(event) is Trade:
            run.trade_accepted = True

    return tick


def _overrides(component: Component, base: type, method: str) -> bool:
    """True if the component's class defines ``method`` rather than inheriting the no-op."""
    return getattr(type(component), method) is not getattr(base, method)


def _execute(run: Run, actions: list[Order | Cancel],
             risk_checks: tuple[tuple[str, Callable[..., Any]], ...], ts: int) -> None:
    """Vet each order with the risk checks, then hand it to the executor."""
    p, ctx = run.pipeline, run.ctx
    executor, store, strategy = p.executor, p.store, p.strategy
    # A refused order goes back to the strategy, which may answer with other orders; bounded so
    # a strategy that keeps re-proposing a refused order cannot spin.
    for _ in range(4):
        refused: list[Rejection] = []
        for action in actions:
            if isinstance(action, Cancel):
                if executor.cancel(action.order_id):
                    run.orders_cancelled += 1
                    order = ctx.order_closed(action.order_id)
                    if order is not None:
                        store.record_order(order, ts, "cancelled")
                continue
            order: Order | Reject = action
            by = ""
            for name, check in risk_checks:
                order = check(order, ctx)
                if isinstance(order, Reject):
                    by = name
                    break
            if isinstance(order, Reject):
                refused.append(Rejection(action, order.reason, by))
                continue
            reason = executor.submit(order, ctx)
            if reason is not None:
                refused.append(Rejection(order, reason, p.origin(executor)[1].name))
                continue
            run.orders_placed += 1
            ctx.order_opened(order)
            store.record_order(order, ts, "placed")
        if not refused:
            return
        actions = []
        for rejection in refused:
            key = f"{rejection.by}: {rejection.reason}"
            run.rejected[key] = run.rejected.get(key, 0) + 1
            store.record_order(rejection.order, ts, "rejected")
            actions.extend(strategy.on_rejected(rejection, ctx))
        if not actions:
            return


def _refuse(run: Run, actions: list[Order | Cancel], reason: str, by: str) -> None:
    for action in actions:
        if isinstance(action, Order):
            key = f"{by}: {reason}"
            run.rejected[key] = run.rejected.get(key, 0) + 1


def _halt(run: Run, reason: str, ts: int) -> None:
    """A risk check stopped trading: cancel every open order, place no new ones."""
    p = run.pipeline
    run.ctx.halted = reason
    for order in p.executor.open_orders():
        if p.executor.cancel(order.id):
            run.orders_cancelled += 1
            run.ctx.order_closed(order.id)
            p.store.record_order(order, ts, "cancelled")

