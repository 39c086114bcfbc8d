"""Runs a fused backtest in place of the event loop, and leaves the run as the loop would.

The bars are read once into arrays; :func:`~gridkit.fused.validate.validate_bars` accepts or
drops them, the strategy is started in Python on the first accepted bar (its checks, its
pre-flight lines and its lines are the plugin path's own), :func:`~gridkit.fused.grid
.grid_backtest` trades the rest, and the fills are booked through the run's real
:class:`~gridkit.runtime.account.Account`, so the summary's accounting (FIFO grid profit,
average price, realized profit) is computed by the same code as on the plugin path.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from gridkit.core.types import Bar, Fill
from gridkit.plugins.features.fused_kinds import BB_POSITION, PRICE_POSITION, VOLATILITY
from gridkit.runtime.pipeline_file import parse_time

#: Timestamps beyond this (ms) would overflow the kernels' int64 differences: plugin path.
TS_LIMIT = 2**53


class BarArrays(NamedTuple):
    """A lane's bars within the run's window, as columns."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def bar(self, i: int) -> Bar:
        """Bar ``i`` as the source replays it."""
        return Bar(int(self.ts[i]), float(self.open[i]), float(self.high[i]),
                   float(self.low[i]), float(self.close[i]), float(self.volume[i]))


def bar_arrays(source: Any, start: str = "", end: str = "",
               events: Any = None) -> BarArrays | str:
    """The source's bars within ``[start, end]`` as it would replay them (``events``: those
    it replays, already read, or its :meth:`~gridkit.Source.columns`), or why they cannot be
    arrays (an event that is not a bar, a timestamp out of int64 range)."""
    first, last = parse_time(start), parse_time(end)
    columns = source.columns() if events is None else (
        events if isinstance(events, dict) else None)
    if columns is not None:
        return _window(BarArrays(*(np.asarray(columns[role]) for role in BarArrays._fields)),
                       first, last)
    events = iter(source.events() if events is None else events)
    if first is not None:
        events = itertools.dropwhile(lambda e: e.ts < first, events)
    if last is not None:
        events = itertools.takewhile(lambda e: e.ts <= last, events)
    bars = list(events)
    if any(type(b) is not Bar for b in bars):
        return "the source replays events that are not bars"
    try:
        ts = np.fromiter((b.ts for b in bars), dtype=np.int64, count=len(bars))
    except (OverflowError, TypeError, ValueError):
        return "a timestamp out of the int64 range"

    def col(name: str) -> np.ndarray:
        return np.fromiter((getattr(b, name) for b in bars), dtype=np.float64, count=len(bars))

    return _window(BarArrays(ts, col("open"), col("high"), col("low"), col("close"),
                             col("volume")), None, None)


def _window(arrays: BarArrays, first: int | None, last: int | None) -> BarArrays | str:
    """``arrays`` from the first bar at or after ``first`` up to (not including) the first
    after it beyond ``last``, as the event loop's window cuts a replay; or why the timestamps
    cannot be a kernel's."""
    ts = arrays.ts
    lo = 0 if first is None else int(np.argmax(ts >= first)) if (ts >= first).any() else len(ts)
    hi = len(ts)
    if last is not None:
        beyond = np.flatnonzero(ts[lo:] > last)
        hi = lo + int(beyond[0]) if len(beyond) else len(ts)
    if lo or hi < len(ts):
        arrays = BarArrays(*(col[lo:hi] for col in arrays))
    ts = arrays.ts
    if len(ts) and (ts.max() > TS_LIMIT or ts.min() < -TS_LIMIT):
        return "a timestamp beyond 2**53 ms"
    return arrays


def validator_program(validators: list[Any]) -> tuple[np.ndarray, int, float, float]:
    """The validators as a program of :mod:`~gridkit.fused.validate` codes, with the
    timestamp validator's interval, horizon (now plus its tolerance) and maximum jump."""
    from gridkit.fused import validate as fv
    from gridkit.plugins.validators import TimestampValidator, VolumeValidator

    codes = []
    interval, horizon, max_jump = 0, np.inf, np.inf
    for v in validators:
        if type(v) is TimestampValidator:
            codes.append(fv.TIMESTAMP)
            interval, horizon, max_jump = v.limits()
        elif type(v) is VolumeValidator:
            codes.append(fv.VOLUME_KEEP if v.config.zero == "keep" else fv.VOLUME_DROP)
        else:
            codes.append(fv.PRICE if v.name == "price" else fv.OHLC)
    return np.array(codes, dtype=np.int64), interval, horizon, max_jump


def validate(arrays: BarArrays, validators: list[Any]) -> np.ndarray:
    """Run the validators' fused pass; leave each validator's counts (and the timestamp
    validator's state) as its own pass would have; the accepted mask."""
    from gridkit.fused import validate as fv
    from gridkit.plugins.validators import TimestampValidator

    program, interval, horizon, max_jump = validator_program(validators)
    accepted, counts, tstate, steps = fv.validate_bars(
        arrays.ts, arrays.open, arrays.high, arrays.low, arrays.close, arrays.volume, program,
        interval, horizon, max_jump)
    for row, v in enumerate(validators):
        names = fv.REASONS[int(program[row])]
        v.counts = {name: int(counts[row, k]) for k, name in enumerate(names)
                    if counts[row, k]}
        if type(v) is TimestampValidator:
            last, has_last, step, held, has_held, _pending = (int(x) for x in tstate)
            v.resume_from(last if has_last else -np.inf, step or None,
                          held if has_held else None, [(int(a), int(b)) for a, b in steps])
    return accepted


#: Within :func:`shared_bars`: the events of each data file read so far, by file.
_SHARED: dict[tuple[Any, ...], Any] | None = None


@contextmanager
def shared_bars() -> Iterator[None]:
    """Within it, :func:`lane_bars` reads each data file once: the searches of a walk-forward
    cut their windows from the same bars instead of parsing the file for every window."""
    global _SHARED
    outer = _SHARED
    if outer is None:
        _SHARED = {}
    try:
        yield
    finally:
        if outer is None:
            _SHARED = None


def _source_events(source: Any, run: Any) -> Any:
    """The source set up and its events read (its columns, if it has them); from
    :func:`shared_bars`' files when the same file (path, size, modification time) with the
    same options was read already."""
    key = None
    path = getattr(source.config, "path", None)
    if _SHARED is not None and isinstance(path, str):
        try:
            st = run.resolve(path).stat()
            key = (type(source).__qualname__, repr(source.config), str(run.resolve(path)),
                   st.st_size, st.st_mtime_ns)
        except OSError:
            key = None  # (setup says what is wrong with the file)
    if key is not None and _SHARED is not None and key in _SHARED:
        return _SHARED[key]
    source.setup(run)
    events = source.columns()
    if events is None:
        events = list(source.events())
    if key is not None and _SHARED is not None:
        _SHARED[key] = events
    return events


def lane_bars(pipeline: Any) -> tuple[BarArrays, np.ndarray] | str:
    """A built (not yet set up) pipeline's first lane as arrays and its accepted mask: its
    source and validators set up, its bars read within the run's window and validated; or
    why its bars cannot be arrays."""
    lane = pipeline.lanes[0]
    events = _source_events(lane.source, pipeline.run)
    for v in lane.validators:
        v.setup(pipeline.run)
    section = pipeline.config.pipeline
    arrays = bar_arrays(lane.source, section.start, section.end, events)
    if isinstance(arrays, str):
        return arrays
    return arrays, validate(arrays, lane.validators)


def run_fused(run: Any) -> np.ndarray | None:
    """Run the lane of ``run`` fused, leaving its account, counters, strategy, validators and
    features where the event loop would have; the fills, rows of
    :data:`~gridkit.fused.grid.FILL_COLUMNS` (the bar as an index of the source's bars in the
    window). None when the data cannot be arrays: ``run.path`` then says why, and the caller
    runs the event loop."""
    p = run.pipeline
    lr = run.lanes[0]
    lane, ctx = lr.lane, lr.ctx
    section = p.config.pipeline
    arrays = bar_arrays(lane.source, section.start, section.end)
    if isinstance(arrays, str):
        run.path = {"fused": False, "why": arrays}
        return None
    accepted = validate(arrays, lane.validators)
    n = len(arrays.ts)
    run.seen = lr.consumed = lr.bars_seen = n
    index = np.flatnonzero(accepted)
    lr.accepted = ctx.index = run.timer.count = len(index)
    finish_features = _features(lr, lane, ctx, arrays, accepted)
    try:
        out = _trade(run, lr, arrays, accepted, index)
    finally:
        finish_features()
    return out


def _trade(run: Any, lr: Any, arrays: BarArrays, accepted: np.ndarray,
           index: np.ndarray) -> np.ndarray:
    """The strategy started on the first accepted bar, the grid kernel over the rest, and
    the run left as the event loop leaves it; the fills."""
    from gridkit.core.errors import ConfigError
    from gridkit.fused.grid import grid_backtest
    from gridkit.fused.plan import grid_params, kernel_grid, risk_params
    from gridkit.runtime.stages import fees, preflight_strategy

    p = run.pipeline
    lane, ctx = lr.lane, lr.ctx
    if not len(index):
        return np.empty((0, 6))
    # The strategy starts in Python on the first accepted bar, as the strategy stage does.
    first = arrays.bar(int(index[0]))
    acct, pos = run.account, ctx.position
    ctx.bar = ctx.event = first
    saved_index, ctx.index = ctx.index, 1
    acct.mark(pos, first.close)
    strat = lane.strategy
    got = measured_volatility(strat, lane.features, arrays, accepted)
    measured = None
    if got is not None:  # it starts on its feature's value at the first bar (the last
        measured, values = got  # values are put in place once the features are stepped)
        ctx.features[strat.key] = float(values[int(index[0])])
    preflight_strategy(run, lr)
    strat.start(ctx)
    ctx.index = saved_index
    grid = kernel_grid(strat)
    if isinstance(grid, str):
        raise ConfigError(f"strategy: {grid}; set [pipeline] fuse = \"off\"")
    lines, qtys, uniform = grid
    maker, taker = fees(p, lane.info)
    out, figures, counters, state, parked, _, final_lines = grid_backtest(
        arrays.open, arrays.high, arrays.low, arrays.close, accepted, lines, qtys, uniform,
        float(acct.capital), maker, taker, bool(p.executor.config.check_balance),
        **risk_params(p.risk), **grid_params(strat, measured))
    _book(run, arrays, out)
    cash, base, equity, peak, max_dd, _grid_profit, lots_profit, halt_dd = (
        float(x) for x in figures[:8])
    if (acct.cash, pos.qty, pos.grid_profit, pos.round_trips) != (
            cash, base, lots_profit, int(counters[9])):  # the same operations in the same order
        raise RuntimeError(f"fused booking disagrees with the kernel: cash {acct.cash!r} vs "
                           f"{cash!r}, base {pos.qty!r} vs {base!r}, lots' profit "
                           f"{pos.grid_profit!r} vs {lots_profit!r}")
    acct.equity, acct.peak, acct.max_drawdown = equity, peak, max_dd
    acct.returns = [int(figures[11]), float(figures[12]), float(figures[13]),
                    float(figures[14])]
    if (pos.gross_win, pos.gross_loss) != (float(figures[9]), float(figures[10])):
        raise RuntimeError("fused booking disagrees with the kernel on the gross win or loss")
    last = arrays.bar(int(counters[7]))
    pos.price = last.close
    ctx.bar = ctx.event = last
    lr.started = True
    lr.first_ts = first.ts
    lr.start_bar = (first.ts, first.close)
    _leave_grid(strat, figures, counters, state, parked, final_lines, measured is not None)
    if counters[16]:
        run.rejected["engine: trading halted"] = int(counters[16])
    p.executor.fills = int(counters[0])
    run.orders_placed = int(counters[1])
    name = p.origin(p.executor)[1].name
    for slot, reason in ((2, "insufficient cash"), (3, "insufficient base")):
        if counters[slot]:
            run.rejected[f"{name}: {reason}"] = int(counters[slot])
    run.fused_open_orders = int(counters[5])
    run.orders_cancelled = int(counters[12])  # (a re-centring's cancels, a halt's)
    _risk(run, arrays, counters, halt_dd)
    return out


def _leave_grid(strat: Any, figures: np.ndarray, counters: np.ndarray, state: np.ndarray,
                parked: np.ndarray, final_lines: np.ndarray, volatility: bool) -> None:
    """The grid strategy's cells and counters as its own run would leave them."""
    from gridkit.plugins.grids.cells import GridCells

    laid = int(counters[6]) >= 0
    if volatility and laid:  # (it may have been laid in the kernel only, after its start)
        if strat.cells is None:
            strat.cells = GridCells([float(x) for x in final_lines], strat.config.qty)
        strat.relays = int(counters[15])
        strat.spacing, strat.laid_with = float(figures[18]), float(figures[19])
        strat.laid_at = int(counters[17])
    cells = strat.cells
    if cells is None:  # never laid: nothing traded
        return
    cells.state = [int(s) for s in state]
    cells.parked = {int(i) for i in np.flatnonzero(parked)}
    cells.order_of = [None] * len(state)
    cells.round_trips = int(counters[4])
    cells.grid_profit = float(figures[5])
    if int(counters[15]) or volatility:  # laid again: the last laying's cells, what it banked
        cells.lines = [float(x) for x in final_lines]
        if not volatility:
            strat.recentres = int(counters[15])
        strat.banked_trips = int(counters[14])
        strat.banked_profit = float(figures[15])
        strat.lower, strat.upper = float(figures[16]), float(figures[17])


def measured_volatility(strategy: Any, features: list[tuple[str, Any]], arrays: BarArrays,
                        accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A ``volatility-adjusted`` grid's measured volatility m after each bar and the values of
    the feature it reads (NaN where not known), from a fused pass of that feature; None for
    another strategy, or when no feature has its key (its start says so)."""
    from gridkit.plugins.grids.volatility_adjusted import VolatilityAdjustedGrid

    if type(strategy) is not VolatilityAdjustedGrid:
        return None
    from gridkit.fused.features import step_features
    from gridkit.plugins.features.fusion import FusedBars

    feature = next((f for k, f in features if k == strategy.key), None)
    if feature is None:
        return None
    fused = FusedBars([feature.fused_layout()])
    values = np.full(len(arrays.close), np.nan)
    step_features(fused.ints, fused.floats, accepted, arrays.high, arrays.low, arrays.close,
                  arrays.volume, 0, values)
    if strategy.config.measure != "atr":
        return values, values
    with np.errstate(divide="ignore", invalid="ignore"):  # m = ATR/close, as it divides
        return values / arrays.close, values


def _risk(run: Any, arrays: BarArrays, counters: np.ndarray, halt_dd: float) -> None:
    """The risk checks' counters, refusals and halt as the plugin path leaves them."""
    from gridkit.plugins.risk import Drawdown, PositionSize

    p = run.pipeline
    for check in p.risk:
        c = check.config
        name = p.origin(check)[1].name
        if type(check) is PositionSize:
            check.refused = int(counters[10] + counters[11])
            if counters[10]:
                run.rejected[f"{name}: position above max_base {c.max_base:g}"] = \
                    int(counters[10])
            if counters[11]:
                run.rejected[f"{name}: position above max_fraction {c.max_fraction:g} of "
                             f"equity"] = int(counters[11])
        elif type(check) is Drawdown and counters[13] >= 0:
            check.tripped_at, check.halting = int(arrays.ts[int(counters[13])]), True
            reason = f"drawdown {halt_dd:.2%} reached the limit {c.limit:.2%}"
            run.halted = run.lanes[0].ctx.halted = reason


def _features(lr: Any, lane: Any, ctx: Any, arrays: BarArrays,
              accepted: np.ndarray) -> Callable[[], None]:
    """Start stepping the lane's features over the accepted bars (:func:`start_features`);
    the returned function waits for them and puts their last values into the context."""
    features = [f for _, f in lane.features]
    if not features:
        return lambda: None
    wait = start_features(features, arrays, accepted)

    def finish() -> None:
        values = wait()
        for key, f in lane.features:
            ctx.features[key] = values[id(f)]
        lr.fused = [key for key, _ in lane.features]

    return finish


def start_features(features: list[Any], arrays: BarArrays,
                   accepted: np.ndarray) -> Callable[[], dict[int, float]]:
    """Start stepping fusable ``features`` over the accepted bars, in groups of about equal
    cost (:func:`feature_groups`, one per core), each a fused program on a thread of its own:
    the compiled step releases the GIL and the groups share no state, so the values are those
    of one program stepping them all. Returns a function that waits for them: their last
    values by ``id`` of the feature, or it raises what a step raised, the feature named (in
    ``gridkit_component``, as the plugin path's fused step names it)."""
    from gridkit.fused.features import step_features
    from gridkit.plugins.features.fusion import BAR_FUSER

    groups = feature_groups(features, _cores())
    programs = [BAR_FUSER.program(group) for group in groups]
    errors: list[BaseException] = []

    def step(fused: Any, group: list[Any]) -> None:
        try:
            step_features(fused.ints, fused.floats, accepted, arrays.high, arrays.low,
                          arrays.close, arrays.volume)
        except Exception as err:
            err.gridkit_component = group[fused.current()]  # type: ignore[attr-defined]
            errors.append(err)

    threads = [threading.Thread(target=step, args=pair, daemon=True)
               for pair in zip(programs, groups, strict=True)] if len(groups) > 1 else []
    for t in threads:
        t.start()
    if not threads:  # one core, or one feature: no thread to start
        step(programs[0], groups[0])

    def wait() -> dict[int, float]:
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return {id(f): v for fused, group in zip(programs, groups, strict=True)
                for f, v in zip(group, fused.values.tolist(), strict=True)}

    return wait


#: The relative cost of a bar of each fused feature kind (from ``benchmarks/bench_fused.py``'s
#: year): the rolling extremes' deques and the log return cost most.
_KIND_COST = {PRICE_POSITION: 4.0, VOLATILITY: 2.0, BB_POSITION: 2.0}


def feature_groups(features: list[Any], parts: int) -> list[list[Any]]:
    """``features`` in at most ``parts`` groups of about equal cost (the costliest first, each
    to the cheapest group so far), each in its original order."""
    parts = max(1, min(parts, len(features)))
    load = [0.0] * parts
    member: list[list[int]] = [[] for _ in range(parts)]
    costs = [_KIND_COST.get(f.fused_layout().kind, 1.0) for f in features]
    for i in sorted(range(len(features)), key=lambda i: -costs[i]):
        g = load.index(min(load))
        load[g] += costs[i]
        member[g].append(i)
    return [[features[i] for i in sorted(m)] for m in member if m]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _book(run: Any, arrays: BarArrays, out: np.ndarray) -> None:
    """Book the kernel's fills through the run's account, in their order."""
    acct = run.account
    sym = run.lanes[0].lane.symbol
    ts = arrays.ts
    apply = acct.apply
    for k, (bar, buy, price, qty, fee, cell) in enumerate(out.tolist()):
        market = cell < 0
        apply(Fill(f"fused-{k}", int(ts[int(bar)]), "buy" if buy else "sell", qty, price, fee,
                   "taker" if market else "maker", int(cell), sym), sym)
