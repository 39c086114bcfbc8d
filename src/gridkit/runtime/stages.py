"""The stages of one lane, one small function each, bound once when the run starts.

A bar runs ``validate`` and then :data:`gridkit.runtime.timing.STAGES` in order; one bar in
``2**SAMPLE_SHIFT`` runs them through a timing wrapper instead, so the clock is read only where
it is sampled. Other events (trades, quotes, depth) run their kind's validators, the executor's
reports, their features, and — when ``[pipeline] decide_on`` names their kind — the decision
stages.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from attrs import define

from gridkit.core.components import Feature, Monitor, RiskCheck, Strategy, Validator
from gridkit.core.errors import ComponentError, DataError
from gridkit.core.types import EVENT_KINDS, Bar, Funding, FundingPaid, Trade
from gridkit.runtime import apply as path
from gridkit.runtime import fusion, regime
from gridkit.runtime.journal import RegimeChanged
from gridkit.runtime.regime import hold
from gridkit.runtime.runstate import LaneRun, Run
from gridkit.runtime.timing import (
    FEATURE_COST_MASK,
    FEATURE_COST_SHIFT,
    RING,
    SAMPLE_MASK,
    SAMPLE_SHIFT,
)

_NAN = float("nan")


@define
class LaneStages:
    """What the engine calls per raw event of a lane."""

    on_bar: Callable[[Bar], None]
    on_tick: Callable[[Any], None]
    funding: Callable[[int], None]
    #: Called with the event's time when the source's :attr:`~gridkit.Source.down` is not
    #: what the lane last saw: pauses or resumes the lane's trading.
    data: Callable[[int], None]


def build_stages(run: Run, lr: LaneRun) -> LaneStages:
    """Bind every stage of ``lr``'s lane to its components."""
    p, lane, ctx = run.pipeline, lr.lane, lr.ctx
    sym = lane.symbol
    executor, strat = p.executor, lane.strategy
    bar_validators = [v for v in lane.validators if "bars" in v.inputs]
    validators = tuple(v.accept for v in bar_validators)
    # Only validators that override accepted() pay for the extra call.
    on_accepted = tuple(v.accepted for v in bar_validators
                        if path.overrides(v, Validator, "accepted"))
    fvals = ctx.features
    for key, _ in lane.features:
        fvals.setdefault(key, _NAN)
    bar_features = [(key, f) for key, f in lane.features if "bars" in f.inputs]
    size = lane.source.size_hint()
    groups = fusion.plan(bar_features, p.config.pipeline.fuse_features, p.run.mode, size)
    fused_keys = {key for _, members in groups for key, _ in members}
    lr.fused = [key for key, _ in bar_features if key in fused_keys]
    fused = tuple(fuser.build(members, fvals) for fuser, members in groups)
    lr.fused_state = [getattr(step, "state", ()) for step in fused]
    if lr.fused_saved:
        for arrays, saved in zip(lr.fused_state, lr.fused_saved, strict=False):
            for arr, val in zip(arrays, saved, strict=True):
                arr[:] = val
    features = tuple((key, f, f.update) for key, f in bar_features if key not in fused_keys)
    attention = tuple(a.observe for a in lane.attention)
    label_rules = [r for r in lane.regimes if r.labels]
    classify = label_rules[0].classify if label_rules else None  # build refuses a mix
    regimes = tuple((r.label, r.score) for r in lane.regimes if not r.labels)
    pcfg = p.config.pipeline
    dwell = pcfg.regime_dwell if pcfg.regime_dwell is not None else regime.DEFAULT_DWELL
    margin = pcfg.regime_hysteresis
    plain = dwell == 1 and margin == 0.0 and classify is None
    signals = tuple(s.update for s in lane.signals)
    filters = tuple(f.allow for f in lane.filters)
    risk_bar = tuple(r.on_bar for r in p.risk if path.overrides(r, RiskCheck, "on_bar"))
    risk_lift = tuple(r.lift for r in p.risk if path.overrides(r, RiskCheck, "lift"))
    risk_checks = tuple((p.origin(r)[1].name, r.check) for r in p.risk
                        if path.overrides(r, RiskCheck, "check"))
    # (a method several monitors share — the figure monitors' one RunMetrics — is called once)
    monitors = tuple(dict.fromkeys(m.on_event for m in p.monitors
                                   if path.overrides(m, Monitor, "on_event")))
    feedback = p.feedback
    every = feedback.every if feedback is not None else 0
    plans = path.overrides(strat, Strategy, "on_bar")
    ticks_decide = path.overrides(strat, Strategy, "on_tick")
    apply, execute = path.apply_reports, path.execute
    reports = executor.reports
    paused_seen: list[str | None] = [ctx.paused]
    regime_seen: list[str | None] = [ctx.regime]  # (a resumed run's, restored)
    journal = run.journal  # (its emit is read when called: subscribers may come after this)
    acct, pos, journal_mark = run.account, ctx.position, run.journal.mark
    acct_mark = acct.mark

    def bad_value(key: str, feature: Feature, value: Any) -> float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            spec, reg = p.origin(feature)
            raise ComponentError(reg.kind, reg.name, reg.origin, TypeError(
                f"update() returned {type(value).__name__} {value!r}, not a number"),
                f"({spec.path})") from None

    # --- the stages, in order ---------------------------------------------------------------

    def fills(bar: Bar) -> None:
        got = reports(bar, sym)
        if got:
            apply(run, got)

    def account(bar: Bar) -> None:
        close = bar.close
        journal_mark(bar.ts, sym, close, acct.cash, pos.qty, acct_mark(pos, close))

    def account_perpetual(bar: Bar) -> None:
        # The bar's adverse extreme may come before its close: liquidation is checked there.
        for p_ in positions:
            if p_.qty:
                liq = acct.liquidation(p_, bar.low if p_.qty > 0 else bar.high)
                if liq == liq:
                    path.liquidate(run, lr, p_, liq, bar.ts)
        for p_ in positions:
            if p_ is not pos:
                p_.price = bar.close
        journal_mark(bar.ts, sym, bar.close, acct.cash, sum(p_.qty for p_ in positions),
                     acct_mark(pos, bar.close))

    def feature_stage(bar: Bar) -> None:
        for step in fused:
            step(bar)
        for key, f, update in features:
            v = update(bar)
            fvals[key] = v if type(v) is float else bad_value(key, f, v)

    fused_members = tuple(tuple(key for key, _ in members) for _, members in groups)
    cost = ctx.feature_cost
    clock = time.perf_counter_ns

    def feature_stage_timed(bar: Bar) -> None:
        # The features stage of one accepted bar in 2**FEATURE_COST_SHIFT: each feature's
        # update timed on its own (a fused group's step shared equally by its members), the
        # running mean per key kept in ctx.feature_cost, in seconds.
        k = lr.accepted >> FEATURE_COST_SHIFT  # this lane's samples, this one included
        for step, keys in zip(fused, fused_members, strict=True):
            t0 = clock()
            step(bar)
            share = (clock() - t0) * 1e-9 / len(keys)
            for key in keys:
                old = cost.get(key, share)
                cost[key] = old + (share - old) / k
        for key, f, update in features:
            t0 = clock()
            v = update(bar)
            took = (clock() - t0) * 1e-9
            fvals[key] = v if type(v) is float else bad_value(key, f, v)
            old = cost.get(key, took)
            cost[key] = old + (took - old) / k

    def attention_stage(bar: Any) -> None:
        for observe in attention:
            observe(ctx)

    def regime_stage(bar: Any) -> None:
        if plain:
            if regimes:
                best_label, best = None, _NAN
                for label, score in regimes:
                    s = score(ctx)
                    if s == s and (best != best or s > best):  # s == s: not NaN
                        best_label, best = label, s
                ctx.regime, ctx.regime_score = best_label, best
        elif classify is not None:
            ctx.regime, lr.regime_pending, lr.regime_count = hold(
                ctx.regime, lr.regime_pending, lr.regime_count, classify(ctx), dwell)
        else:  # score rules with dwell and/or margin (gridkit.runtime.regime)
            cur = ctx.regime
            best_label, best, cur_score = None, _NAN, _NAN
            for label, score in regimes:
                s = score(ctx)
                if s == s:
                    if best != best or s > best:
                        best_label, best = label, s
                    if label == cur and (cur_score != cur_score or s > cur_score):
                        cur_score = s
            cand = best_label
            if cand != cur and cur_score == cur_score and not best >= cur_score + margin:
                cand = cur  # the challenger does not clear the incumbent's margin
            new, lr.regime_pending, lr.regime_count = hold(
                cur, lr.regime_pending, lr.regime_count, cand, dwell)
            ctx.regime = new
            ctx.regime_score = best if new == best_label else cur_score
        if ctx.regime != regime_seen[0]:  # (a change, journalled: per-regime figures)
            regime_seen[0] = ctx.regime
            journal.emit(RegimeChanged(bar.ts, sym, ctx.regime))
        if signals:
            fired = []
            for update in signals:
                sig = update(ctx)
                if sig is not None and all(allow(sig, ctx) for allow in filters):
                    fired.append(sig)
            ctx.signals = fired

    def strategy_stage(bar: Bar) -> None:
        if lr.started:
            if plans:
                got = strat.on_bar(ctx)
                if got:
                    lr.actions.extend(got)
        else:
            if lane.info is not None:
                _check_tick(lane, bar)
            preflight_strategy(run, lr)
            got = strat.start(ctx)
            lr.started = True
            lr.first_ts = bar.ts
            if lr.start_bar is None:
                lr.start_bar = (bar.ts, bar.close)
            if got:
                lr.actions.extend(got)

    def risk_stage(bar: Any) -> None:
        if run.halted is None:
            for on_bar in risk_bar:
                reason = on_bar(ctx)
                if reason:
                    path.halt(run, reason, bar.ts)
                    break
        else:
            for lift in risk_lift:
                why = lift(ctx)
                if why:
                    path.unhalt(run, why, bar.ts)
                    break

    def execute_stage(bar: Any) -> None:
        if ctx.paused is not paused_seen[0]:
            paused_seen[0] = ctx.paused
            path.pause_changed(run, lr, bar.ts)
        if lr.actions or (lr.deferred and ctx.paused is None):
            execute(run, lr, risk_checks, bar.ts)

    def data_stage(ts: int) -> None:
        # The source's market data went down or came back (a live source's ``down``). Its
        # pause never clears another's (a stale-data validator's), and the actions held while
        # it lasted go out as soon as data flows again.
        down, was = lane.source.down or p.executor.down, lr.data_down
        lr.data_down = down
        if down is not None:
            if ctx.paused is None or ctx.paused == was:
                ctx.paused = down
        elif was is not None and ctx.paused == was:
            ctx.paused = None
        if ctx.paused != paused_seen[0]:
            paused_seen[0] = ctx.paused
            path.pause_changed(run, lr, ts)
            if ctx.paused is None and lr.started and (lr.deferred or lr.actions):
                execute(run, lr, risk_checks, ts)

    def monitor_stage(bar: Any) -> None:
        for on_event in monitors:
            on_event(ctx)
        if every and not lr.accepted % every:
            feedback.step(ctx)  # type: ignore[union-attr]

    def one_monitor_stage(bar: Any) -> None:  # (the common case: no loop, no feedback test)
        only(ctx)

    only = monitors[0] if len(monitors) == 1 and not every else None

    # Stages with nothing to do are left out: no cost for what a pipeline does not use.
    positions = tuple(p_ for p_ in acct.positions.values() if p_.symbol == sym)
    perpetual = any(p_.kind != "spot" for p_ in positions)
    named = [("fills", fills), ("account", account_perpetual if perpetual else account),
             ("features", feature_stage if fused or features else None),
             ("attention", attention_stage if attention else None),
             ("regime", regime_stage if lane.regimes or signals else None),
             ("strategy", strategy_stage),
             ("risk", risk_stage if risk_bar or risk_lift else None),
             ("execute", execute_stage),
             ("monitor", one_monitor_stage if only is not None
              else monitor_stage if monitors or every else None)]
    stages = tuple(fn for _, fn in named if fn is not None)
    # The same stages with the features timed one by one, for the bars that sample their cost.
    cost_stages = tuple(feature_stage_timed if fn is feature_stage else fn for fn in stages)
    timer = run.timer
    timer.active.update(name for name, fn in named if fn is not None)
    rings = tuple(timer.rings[name] for name, fn in named if fn is not None)
    r_val, r_evt = timer.rings["validate"], timer.rings["event"]
    now = time.perf_counter_ns
    mask = RING - 1

    def on_bar(bar: Bar) -> None:
        t0 = now()
        lr.bars_seen += 1
        for accept in validators:
            if not accept(bar):
                return
        for note in on_accepted:
            note(bar)
        accepted = lr.accepted = lr.accepted + 1
        ctx.index += 1
        ctx.bar = ctx.event = bar
        n = timer.count
        timer.count = n + 1
        if n & SAMPLE_MASK:
            if accepted & FEATURE_COST_MASK:
                for stage in stages:
                    stage(bar)
            else:  # one bar in 4096: each feature's own cost
                for stage in cost_stages:
                    stage(bar)
        else:  # the sampled bar: the time of every stage
            j = (n >> SAMPLE_SHIFT) & mask
            t = now()
            r_val[j] = t - t0
            for ring, stage in zip(rings, stages if accepted & FEATURE_COST_MASK
                                   else cost_stages, strict=True):
                stage(bar)
                t1 = now()
                ring[j] = t1 - t
                t = t1
        r_evt[n & mask] = now() - t0

    on_tick = _tick_handler(run, lr, on_bar, bad_value, ticks_decide,
                            (attention_stage, regime_stage, risk_stage, execute_stage))
    return LaneStages(on_bar, on_tick, _funding_stage(run, lr), data_stage)


def _tick_handler(run: Run, lr: LaneRun, on_bar: Callable[[Bar], None],
                  bad_value: Callable[..., float], decides: bool,
                  decide_stages: tuple[Callable[[Any], None], ...]) -> Callable[[Any], None]:
    """The path of events that are not bars: each kind's validators, the executor's reports,
    each kind's features, the folding of trades into bars, and — for the kinds in
    ``decide_on`` — the decision stages."""
    p, lane, ctx = run.pipeline, lr.lane, lr.ctx
    sym, fvals = lane.symbol, ctx.features
    reports, apply = p.executor.reports, path.apply_reports
    decide_on = set(p.config.pipeline.decide_on)
    by_kind: dict[type, tuple[Any, ...]] = {}
    for cls, kind in EVENT_KINDS.items():
        if cls is Bar:
            continue
        vals = [v for v in lane.validators if kind in v.inputs]
        by_kind[cls] = (
            tuple(v.accept for v in vals),
            tuple(v.accepted for v in vals if path.overrides(v, Validator, "accepted")),
            tuple((key, f, f.update) for key, f in lane.features if kind in f.inputs),
            lr.ticks.setdefault(kind, [0, 0]),  # [seen, accepted]
            decides and kind in decide_on,
        )
    if lane.source.bar_interval and lr.folder is None:
        from gridkit.data.bars import TimeBars

        lr.folder = TimeBars(lane.source.bar_interval)
    strat = lane.strategy
    inf = float("inf")

    def tick(event: Any) -> None:
        accepts, notes, updates, counts, decide = by_kind[type(event)]
        counts[0] += 1
        for accept in accepts:
            if not accept(event):
                return
        for note in notes:
            note(event)
        counts[1] += 1
        ctx.event = event
        got = reports(event, sym)
        if got:
            apply(run, got)
        for key, f, update in updates:
            v = update(event)
            fvals[key] = v if type(v) is float else bad_value(key, f, v)
        if decide and lr.started:
            decide_stages[0](event)
            decide_stages[1](event)
            more = strat.on_tick(ctx)
            if more:
                lr.actions.extend(more)
            decide_stages[2](event)
            decide_stages[3](event)
        folder = lr.folder
        if folder is not None and type(event) is Trade:
            if 0.0 < event.price < inf and 0.0 <= event.qty < inf:
                bar = folder.add(event)
                if bar is not None:
                    on_bar(bar)
            else:
                folder.not_in_bars += 1

    return tick


def _funding_stage(run: Run, lr: LaneRun) -> Callable[[int], None]:
    """Funding payments of a perpetual lane at each funding time the events pass."""
    m = lr.lane.market
    if m.type != "linear" or not m.funding:
        return lambda ts: None
    from gridkit.trading.funding import load_funding, load_marks

    resolve = run.pipeline.run.resolve
    series = load_funding(resolve(m.funding))
    marks = load_marks(resolve(m.mark)) if m.mark else None
    times, rates = series.ts.tolist(), series.rate.tolist()
    interval = min((b - a for a, b in itertools.pairwise(times)), default=28_800_000)
    slack = interval // 8
    sym = lr.lane.symbol
    if not lr.funding_i:
        lr.next_funding = float("-inf")  # the first event checks that the data covers it

    def fund(ts: int) -> None:
        if lr.next_funding == float("-inf") and (not times or times[0] > ts + interval + slack):
            first = _iso(times[0]) if times else "nowhere"
            raise DataError(f"{sym}: funding data {m.funding} starts at {first}, after the "
                            f"run's first event at {_iso(ts)}; set [pipeline] start or give "
                            f"funding rates that cover the run")
        while lr.funding_i < len(times) and times[lr.funding_i] <= ts:
            i = lr.funding_i
            at = times[i]
            price = marks.at(at) if marks is not None else _NAN
            if price != price:
                price = lr.ctx.position.price
            paid = run.account.fund(sym, rates[i], price)
            run.journal.emit(Funding(at, rates[i], price))
            if paid:  # (what was booked, as a live executor reports it: for the report)
                run.journal.emit(FundingPaid(at, sym, paid))
            path.mark(run, lr, at, price)
            lr.funding_paid += paid
            lr.funding_i = i + 1
        if lr.funding_i < len(times):
            lr.next_funding = float(times[lr.funding_i])
        elif ts > times[-1] + interval + slack:
            raise DataError(f"{sym}: funding data {m.funding} ends at {_iso(times[-1])}, but "
                            f"the run reaches {_iso(ts)}; set [pipeline] end or give funding "
                            f"rates that cover the run")
        else:
            lr.next_funding = float(times[-1] + interval + slack)

    return fund


def preflight_strategy(run: Run, lr: LaneRun) -> None:
    """The strategy's pre-flight findings before its first order: in a paper or live run
    (real money at stake, or its rehearsal) errors stop the run; warnings, and a backtest's
    errors, are logged (DESIGN.md §9: one line each) — a backtest may study a bad grid."""
    import logging

    from gridkit.core.errors import ConfigError

    maker, taker = fees(run.pipeline, lr.lane.info)
    log = logging.getLogger("gridkit.preflight")
    for level, line in lr.lane.strategy.preflight(lr.ctx, maker, taker):
        if level == "error" and run.pipeline.run.mode != "backtest":
            raise ConfigError(f"pre-flight: {lr.lane.symbol}: {line}")
        if level in ("warning", "error"):
            log.warning("%s: %s", lr.lane.symbol, line)


def fees(pipeline: Any, market: Any) -> tuple[float, float]:
    """The maker and taker fee rates of the run: the executor's, else the market's, else 0."""
    cfg = pipeline.executor.config
    maker = getattr(cfg, "maker_fee", None)
    taker = getattr(cfg, "taker_fee", None)
    if maker is None and market is not None:
        maker, taker = market.maker, market.taker
    return float(maker or 0.0), float(taker or maker or 0.0)



def _check_tick(lane: Any, bar: Bar) -> None:
    """Refuse data the markets file does not describe: a first close off the market's tick."""
    from gridkit.trading.markets import price_on_tick

    info = lane.info
    if not price_on_tick(bar.close, info):
        raise DataError(f"{lane.symbol}: the close {bar.close!r} at {_iso(bar.ts)} is off the "
                        f"tick {info.tick:g} of {lane.market.markets or 'the exchange'}: the "
                        f"market does not describe this data")


def _iso(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
