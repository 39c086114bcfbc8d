"""The event loop: every event of every lane through the stages, in the order DESIGN.md §1 gives.

The loop is the same for backtest, paper and live; only the sources and the executor differ. No
hook is called per event: components are resolved when the pipeline is built and the stages
(:mod:`gridkit.runtime.stages`), one small function each, call their methods directly. On a bar:

validate → reports (the executor's fills, booked by the one apply path) → mark the account →
features → attention → regime and signals → strategy → risk → execute → monitors.

Every order request and report goes to the journal; the store commits them with the run's state
(:mod:`gridkit.runtime.state`), so a stopped run can be resumed.
"""

from __future__ import annotations

import heapq
import itertools
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from gridkit.core.components import Component, Monitor, Validator
from gridkit.core.errors import ComponentError, ConfigError, GridkitError
from gridkit.core.types import Bar
from gridkit.credentials import redact
from gridkit.runtime.account import LINEAR, Account, Position
from gridkit.runtime.build import Pipeline, build_pipeline, check_requirements
from gridkit.runtime.context import Context
from gridkit.runtime.journal import PhaseChanged
from gridkit.runtime.ledger import Ledger
from gridkit.runtime.pipeline_file import parse_time
from gridkit.runtime.runstate import LaneRun, Run
from gridkit.runtime.stages import build_stages
from gridkit.runtime.state import snapshot
from gridkit.runtime.timing import STAGES

__all__ = ["STAGES", "Pipeline", "Run", "build_pipeline", "check_requirements",
           "run_pipeline"]


# --- running -------------------------------------------------------------------------------


def run_pipeline(pipeline: Pipeline,
                 progress: Callable[[int, int | None], None] | None = None, *,
                 resume: bool = False) -> dict[str, Any]:
    """Run a built pipeline to the end of its sources (or until SIGINT / SIGTERM); return the
    summary. ``resume`` continues the store's last run from its saved state.

    ``progress(done, total)`` is called every 4,096 events and at the end (``total`` is the
    sources' size hint, or None).

    Raises :class:`ComponentError` (after recording the failure in the store) when a component
    raises; what was committed before stays in the store, marked ``failed``.
    """
    loop = pipeline.run.loop
    if pipeline.run.mode != "backtest" and (loop is None or loop.is_closed()):
        # The one event loop of a paper or live run: made for the run, closed at its end.
        import asyncio

        import attrs

        pipeline.run = attrs.evolve(pipeline.run, loop=asyncio.new_event_loop())
    store_file = getattr(pipeline.store.config, "path", None)
    if store_file and store_file != ":memory:" and pipeline.run.store is None:
        import attrs

        pipeline.run = attrs.evolve(pipeline.run, store=str(pipeline.run.resolve(store_file)))
    run = _new_run(pipeline)
    setup_done: list[Component] = []
    old_handlers = _catch_signals(run)
    try:
        for component in pipeline.components():
            _guard(pipeline, component, "in setup", component.setup, pipeline.run)
            setup_done.append(component)
        _data_long_enough(pipeline)
        _exchange_markets(run)
        from gridkit.fused.plan import choose

        run.path = choose(pipeline, resume)
        store = pipeline.store
        if store.journaled:
            run.journal.subscribe(store.write, store.mark)
        if run.eager:  # paper and live: one log line per order event (backtests pay nothing)
            from gridkit.runtime.eventlog import attach_event_log

            attach_event_log(run)
        if resume:
            from gridkit.runtime.state import restore

            run.run_id, key, data = _guard(pipeline, store, "reopening the run",
                                           store.resume_run, pipeline.run, pipeline.config.raw)
            run.opened = True
            run.ledger.key = key
            if data is not None:  # (None: killed before its first commit; starts afresh)
                restore(run, data)
            run.resumed = True
        else:
            run.run_id, key = _guard(pipeline, store, "opening the run", store.open_run,
                                     pipeline.run, pipeline.config.raw)
            run.ledger.key = key
            run.opened = True
        for lr in run.lanes:  # before the first event: the strategy as built
            for module in lr.lane.attention:
                _guard(pipeline, module, "attaching to the strategy", module.attach,
                       lr.lane.strategy)
        if pipeline.feedback is not None:
            from gridkit.runtime.tuning import Tuner

            _guard(pipeline, pipeline.feedback, "binding to the tunables",
                   pipeline.feedback.bind, Tuner(run))
        from gridkit.runtime.apply import overrides

        for monitor in pipeline.monitors:  # (only those that read the journal)
            if overrides(monitor, Monitor, "bind"):
                _guard(pipeline, monitor, "binding to the journal", monitor.bind, run.journal,
                       store)
        if resume or pipeline.run.mode != "backtest":
            _reconcile(run)
        pipeline.host.call_each("gridkit_pipeline_built", exclude=pipeline.config.plugins.disable,
                                pipeline=pipeline)
        started = time.perf_counter()
        try:
            if run.path is not None and run.path["fused"]:
                _fused(run, progress)
            if run.path is None or not run.path["fused"]:
                _loop(run, progress)
            if pipeline.run.mode != "backtest":
                _settle(run)
        finally:
            run.elapsed = time.perf_counter() - started
        run.status = "stopped" if run.stopping else "finished"
    except BaseException as err:
        run.status = "failed"
        run.error = redact(str(err) if isinstance(err, GridkitError)
                           else f"{type(err).__name__}: {err}")
        _finish(run, setup_done)
        raise
    finally:
        _restore_signals(old_handlers)
    return _finish(run, setup_done)


def _data_long_enough(pipeline: Pipeline) -> None:
    """Refuse a backtest whose data is shorter than a risk check's window (``min_bars``): the
    check would pass every order unvetted. Known once the sources are set up (``size_hint``
    counts events, at least the bars: a lane folding trades into bars is never refused)."""
    if pipeline.run.mode != "backtest":
        return
    sizes = [lane.source.size_hint() for lane in pipeline.lanes]
    known = [n for n in sizes if n is not None]
    if not known or len(known) < len(sizes):  # a source that cannot tell: nothing to say
        return
    have = min(known)
    problems = []
    for check in pipeline.risk:
        need = check.min_bars()
        if need > have:
            spec, reg = pipeline.origin(check)
            problems.append(f"{spec.path}: {reg.name} needs {need:,} bars before it vets an "
                            f"order, and the data holds {have:,}: it would pass every order "
                            f"unvetted (shorten its window)")
    if problems:
        raise ConfigError(problems, pipeline.config.source)


def _new_run(pipeline: Pipeline) -> Run:
    quote = pipeline.run.symbol.split("/")[-1].split(":")[0] if "/" in pipeline.run.symbol else ""
    account = Account(pipeline.run.capital, quote)
    ledger = Ledger()
    lanes = []
    for lane in pipeline.lanes:
        m = lane.market
        kind = LINEAR if m.type == "linear" else "spot"
        sides = ("long", "short") if kind == LINEAR and m.position_mode == "hedge" else ("",)
        made = [account.add(Position(lane.symbol, kind, side, leverage=m.leverage,
                                     mmr=m.maintenance_margin_rate,
                                     mm_amount=m.maintenance_amount)) for side in sides]
        ctx = Context(pipeline.run, account, ledger, lane.symbol, made[0])
        ctx.market = lane.info
        lanes.append(LaneRun(lane, ctx))
    run = Run(pipeline, account, ledger, lanes, eager=pipeline.run.mode != "backtest")
    run.by_symbol = {lr.lane.symbol: lr for lr in lanes}
    for lr in lanes:
        lr.ctx.phase_changed = _phase_forwarder(run, lr.ctx)
        lr.ctx.attention = tuple(lr.lane.attention)
    return run


def _exchange_markets(run: Run) -> None:
    """Lanes without a ``[market] markets`` file take the market rules a live executor loaded
    from the exchange (:attr:`gridkit.Executor.markets`), so the exchange-rules check and the
    pre-flight check use the exchange's own tick, lot and minimum notional."""
    markets = run.pipeline.executor.markets
    for lr in run.lanes:
        if lr.lane.info is None and lr.lane.symbol in markets:
            lr.lane.info = lr.ctx.market = markets[lr.lane.symbol]


def _phase_forwarder(run: Run, ctx: Context) -> Callable[[Any, str, str], None]:
    """What ``ctx.phase_changed`` calls: journal the change, then fire the hook (rare)."""
    pipeline = run.pipeline

    def forward(component: Any, old: str, new: str) -> None:
        origin = pipeline.origins.get(id(component))
        path = origin[0].path if origin is not None else type(component).__name__
        ts = ctx.event.ts if ctx.event is not None else 0
        run.journal.emit(PhaseChanged(ts, path, old, new))
        pipeline.host.call_each("gridkit_phase_changed", exclude=pipeline.config.plugins.disable,
                                component=component, old=old, new=new)
    return forward


def _catch_signals(run: Run) -> list[tuple[int, Any]]:
    """SIGINT and SIGTERM end the run after the current event: committed, summarized,
    ``stopped``. A second one while stopping interrupts at once."""
    saved: list[tuple[int, Any]] = []

    def handler(signum: int, _frame: Any) -> None:
        if run.stopping:
            raise KeyboardInterrupt
        run.stopping = signal.Signals(signum).name

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            saved.append((sig, signal.signal(sig, handler)))
        except ValueError:  # not the main thread: the caller handles signals
            break
    return saved


def _restore_signals(saved: list[tuple[int, Any]]) -> None:
    for sig, old in saved:
        signal.signal(sig, old)


def _finish(run: Run, setup_done: list[Component]) -> dict[str, Any]:
    """Record the end of the run, close every component and the run's event loop, fire
    run_finished; the summary."""
    pipeline = run.pipeline
    try:
        summary = _record_end(run)
        for component in reversed(setup_done):
            try:
                component.close()
            except Exception as err:
                if run.status != "failed":
                    raise _blame(pipeline, component, "in close", err) from err
    finally:
        _close_loop(pipeline)
    try:
        pipeline.host.call_each("gridkit_run_finished", exclude=pipeline.config.plugins.disable,
                                pipeline=pipeline, summary=summary)
    except GridkitError:
        if run.status != "failed":  # on a failed run, the run's own error is the one to show
            raise
    return summary


def _record_end(run: Run) -> dict[str, Any]:
    pipeline = run.pipeline
    if run.opened:
        try:
            state = snapshot(run) if pipeline.store.durable else None
        except Exception:  # a state that cannot be saved must not hide the run's end
            state = None
    summary = run.summary()
    if run.opened:
        try:
            pipeline.store.finish_run(run.status, summary, run.error, state)
        except Exception as err:  # the store failing must not hide the original error
            if run.status != "failed":
                raise _blame(pipeline, pipeline.store, "finishing the run", err) from err
    return summary


def _close_loop(pipeline: Pipeline) -> None:
    """Close the run's event loop after the components closed what they opened: what a
    component left running is cancelled, so nothing is destroyed while pending later."""
    loop = pipeline.run.loop
    if loop is None or loop.is_closed():
        return
    import asyncio

    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=5))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


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
    components, such as fused features), else the innermost component method on the traceback
    that the engine called."""
    named = getattr(err, "gridkit_component", None)
    if named is not None and id(named) in pipeline.origins:
        return named  # type: ignore[no-any-return]
    tb = err.__traceback__
    found = None
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and id(obj) in pipeline.origins:
            found = obj
            break
        tb = tb.tb_next
    return found


def _fused(run: Run, progress: Callable[[int, int | None], None] | None) -> None:
    """The backtest as compiled loops (:mod:`gridkit.fused`); a component that raises is
    named as on the plugin path."""
    from gridkit.fused.run import run_fused

    p = run.pipeline
    try:
        run_fused(run)
    except GridkitError:
        raise
    except Exception as err:
        culprit = _culprit(p, err)
        if culprit is None:
            raise
        raise _blame(p, culprit, "in a fused backtest", err) from err
    if progress is not None and run.path is not None and run.path["fused"]:
        progress(run.seen, run.seen)


def _loop(run: Run, progress: Callable[[int, int | None], None] | None) -> None:
    p = run.pipeline
    try:
        _events(run, progress)
    except GridkitError:
        raise
    except Exception as err:
        culprit = _culprit(p, err)
        ev = run.lanes[0].ctx.event if len(run.lanes) == 1 else None
        where = f"on event #{run.seen}" + (f" (ts {ev.ts})" if ev is not None else "")
        if culprit is None:
            raise
        raise _blame(p, culprit, where, err) from err


def _events(run: Run, progress: Callable[[int, int | None], None] | None) -> None:
    """Every lane's events, merged by time, each handed to its lane's handler."""
    p = run.pipeline
    for v in p.components():
        if isinstance(v, Validator) and type(v).bind is not Validator.bind:
            owner = next(lr for lr in run.lanes if v in lr.lane.validators)
            v.bind(owner.ctx)
    handlers = [_lane_handler(run, lr) for lr in run.lanes]
    streams = [_stream(run, lr) for lr in run.lanes]
    sizes = [lr.lane.source.size_hint() for lr in run.lanes]
    total = None if None in sizes else sum(s for s in sizes if s is not None)
    if len(streams) == 1:
        merged: Iterator[Any] = streams[0]
        handle = handlers[0]
    else:
        merged = heapq.merge(*(_tagged(s, h, lr) for s, h, lr in
                               zip(streams, handlers, run.lanes, strict=True)), key=_first)
        # heapq.merge holds the next event of every lane in hand, so a lane counts an event
        # as taken (what a resume skips) when it is handled, not when the merge reads it.
        handle = None
    commit = p.store.commit
    batch = getattr(p.store.config, "batch", 1000) if not run.eager else 0
    journal = run.journal
    if run.eager and p.store.durable:
        journal.subscribe(journal.touch, journal.touch)
    if run.eager:
        merged = _with_heartbeat(run, merged, tagged=handle is None)
    seen = run.seen
    try:
        for item in merged:
            seen += 1
            run.seen = seen  # kept current so a failure can say which event it was
            if handle is not None:
                handle(item)
            else:
                item[3].consumed += 1
                item[1](item[2])
            if run.stopping:
                break
            if batch and not seen % batch:
                commit(snapshot(run) if run.pipeline.store.durable else None)
            elif journal.dirty:  # paper and live: reports committed as they arrive
                journal.dirty = False
                commit(snapshot(run))
            if progress is not None and not seen & 4095:
                progress(seen, total)
        else:
            for lr in run.lanes:
                if lr.folder is not None and not lr.lane.source.live:
                    last = lr.folder.flush()
                    if last is not None:
                        lr.flush_bar(last)
    finally:
        run.seen = seen
        run.timer.count = sum(lr.accepted for lr in run.lanes)
    if progress is not None:
        progress(seen, total)


def _with_heartbeat(run: Run, items: Iterator[Any], tagged: bool) -> Iterator[Any]:
    """Paper and live: the events, with the run's heartbeat and watchdog ticked as each one
    arrives (:mod:`gridkit.runtime.heartbeat`). A wrapper, so a backtest's loop pays nothing."""
    from gridkit.runtime.heartbeat import Heartbeat

    beat = Heartbeat(run, run.pipeline.config.live)
    if not beat.active:
        return items
    run.heartbeat = beat.attach()
    return _beating(items, beat.tick, tagged)


def _beating(items: Iterator[Any], tick: Callable[[float, Any], None],
             tagged: bool) -> Iterator[Any]:
    now = time.monotonic
    if tagged:  # several lanes: (ts, handler, event, lane)
        for item in items:
            tick(now(), item[2])
            yield item
    else:
        for item in items:
            tick(now(), item)
            yield item


def _tagged(events: Iterator[Any], handler: Callable[[Any], None], lr: LaneRun
            ) -> Iterator[tuple[int, Callable[[Any], None], Any, LaneRun]]:
    for e in events:
        yield e.ts, handler, e, lr


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def _stream(run: Run, lr: LaneRun) -> Iterator[Any]:
    """The lane's source events within [start, end], less what a resumed run already took."""
    section = run.pipeline.config.pipeline
    events: Iterator[Any] = iter(lr.lane.source.events())
    start, end = parse_time(section.start), parse_time(section.end)
    if start is not None:
        events = itertools.dropwhile(lambda e: e.ts < start, events)
    if end is not None:
        events = itertools.takewhile(lambda e: e.ts <= end, events)
    if lr.consumed and not lr.lane.source.live:  # a live stream starts afresh anyway
        events = itertools.islice(events, lr.consumed, None)
    return events


def _reconcile(run: Run) -> None:
    """Bring the run in line with the executor (and, live, the exchange) before trading: the
    orders the journal holds open are looked up; those the executor never got — the run
    stopped between committing and sending them — go again with the same client order ids,
    so an exchange that did take them recognises them (DESIGN.md §11 rule 3), or are dropped
    per ``[live] unsent``. ``[live] on_start`` and ``unknown_orders`` say what to do with
    what the exchange holds that the journal does not know; ``flatten`` then cancels the
    journal's open orders and closes its positions."""
    from gridkit.core.types import Rejected
    from gridkit.runtime.apply import apply_reports

    p = run.pipeline
    live = p.config.live
    states = list(run.ledger.open.values()) if run.resumed else []
    orders = [s.order for s in states]
    filled = {s.order.id: s.filled for s in states if s.status != "new"}
    executor = p.executor
    unsent = _guard(p, executor, "reconciling with the exchange", executor.reconcile,
                    orders, filled, live.on_start, live.unknown_orders)
    name = p.origin(executor)[1].name
    for order in unsent:
        lr = run.by_symbol.get(order.symbol, run.lanes[0])
        if live.unsent == "drop" and p.run.mode != "backtest":
            apply_reports(run, [Rejected(order.id, lr.ctx.event.ts if lr.ctx.event else 0,
                                         "not sent before the restart; dropped "
                                         "([live] unsent = drop)", "engine")])
            continue
        reason = executor.submit(order, lr.ctx)
        if reason is not None:
            apply_reports(run, [Rejected(order.id, 0, reason, name)])
    for lr in run.lanes:
        apply_reports(run, executor.reports(None, lr.lane.symbol))
    if live.on_start == "flatten" and p.run.mode != "backtest":
        _flatten(run)


#: Seconds a stopping paper or live run waits for the exchange's last answers.
SETTLE_TIMEOUT = 10.0


def _settle(run: Run) -> None:
    """A paper or live run stops: the executor sends what it still holds and looks at the
    exchange once more, and what it finds is booked before the summary, so the summary
    agrees with the exchange. The strategies' answers are not sent after a stop: they wait
    with the run's state (``deferred``) and go out when it resumes."""
    from gridkit.runtime.apply import apply_reports

    p = run.pipeline
    _guard(p, p.executor, "settling at the stop", p.executor.settle, SETTLE_TIMEOUT)
    for lr in run.lanes:
        apply_reports(run, p.executor.reports(None, lr.lane.symbol))
    for lr in run.lanes:
        if lr.actions:
            lr.deferred.extend(lr.actions)
            run.deferred += len(lr.actions)
            lr.actions.clear()


def _flatten(run: Run) -> None:
    """``[live] on_start = "flatten"``: cancel every order the journal holds open and close
    every position it holds, with market orders, before the strategy starts afresh."""
    from gridkit.core.types import Cancel
    from gridkit.runtime.apply import execute

    for oid, state in list(run.ledger.open.items()):
        lr = run.by_symbol.get(state.order.symbol, run.lanes[0])
        lr.actions.append(Cancel(oid))
    for lr in run.lanes:
        for pos in run.account.positions.values():
            if pos.symbol != lr.lane.symbol or abs(pos.qty) <= 1e-12:
                continue
            side = "sell" if pos.qty > 0 else "buy"
            price = pos.avg_price or 0.0
            lr.actions.append(lr.ctx.order(side, abs(pos.qty), price, kind="market",
                                           reduce_only=pos.kind != "spot",
                                           position_side=pos.side))
        if lr.actions:
            execute(run, lr, (), 0)
    for lr in run.lanes:  # a fresh start: the strategy lays its grid again
        lr.started = False


# --- one lane's stages -----------------------------------------------------------------------


def _lane_handler(run: Run, lr: LaneRun) -> Callable[[Any], None]:
    """The function that takes each raw event of one lane: bars go down the bar stages, other
    kinds down their validators and features (and the decision stages if ``decide_on`` names
    them); a perpetual's funding times are booked as the events pass them."""
    stages = build_stages(run, lr)
    on_bar, on_tick, funding = stages.on_bar, stages.on_tick, stages.funding
    source = lr.lane.source
    bars_only = lr.lane.source.provides == {"bars"} and not lr.lane.source.bar_interval
    if bars_only and lr.lane.market.type == "spot":
        handle = on_bar  # the common case: no dispatch at all
    elif bars_only:
        def handle(event: Any) -> None:
            if event.ts >= lr.next_funding:
                funding(event.ts)
            on_bar(event)
    else:
        def handle(event: Any) -> None:
            if event.ts >= lr.next_funding:
                funding(event.ts)
            if type(event) is Bar:
                on_bar(event)
            else:
                on_tick(event)
    lr.flush_bar = on_bar
    if not source.live:
        return handle
    inner, data = handle, stages.data
    executor = run.pipeline.executor

    def handle_live(event: Any) -> None:
        # A live source whose market data, or an executor whose user-data stream, went down
        # or came back: pause or resume trading.
        if (source.down or executor.down) is not lr.data_down:
            data(event.ts)
        inner(event)
    return handle_live
