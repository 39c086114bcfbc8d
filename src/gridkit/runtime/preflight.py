"""The pre-flight check: what a pipeline's strategies say before their first order.

``gridkit check FILE`` runs it at the first price of each lane's data; paper and live runs run
it before each strategy's ``start`` and stop on an error (:meth:`gridkit.Strategy.preflight`).
"""

from __future__ import annotations

from typing import Any

from gridkit.core.types import Bar, Trade
from gridkit.runtime.build import Pipeline
from gridkit.runtime.stages import fees


def check(pipeline: Pipeline) -> list[tuple[str, str, str]]:
    """Every lane's findings at the first price of its data: (symbol, level, line)."""
    from gridkit.runtime.engine import _new_run, _stream

    run = _new_run(pipeline)
    out: list[tuple[str, str, str]] = []
    for lr in run.lanes:
        lane, ctx = lr.lane, lr.ctx
        source = lane.source
        source.setup(pipeline.run)
        try:
            bar = next((_as_bar(e) for e in _stream(run, lr) if type(e) in (Bar, Trade)), None)
            if lane.info is None:  # a live source's exchange describes the market itself
                lane.info = ctx.market = source.markets.get(lane.symbol)
        finally:
            source.close()
        if bar is None:
            out.append((lane.symbol, "error", "the data holds no bar or trade to check at"))
            continue
        ctx.bar = ctx.event = bar
        run.account.mark(ctx.position, bar.close)
        maker, taker = fees(pipeline, lane.info)
        out += [(lane.symbol, level, line)
                for level, line in lane.strategy.preflight(ctx, maker, taker)]
    return out


def _as_bar(event: Any) -> Bar:
    if type(event) is Bar:
        return event
    p = event.price
    return Bar(event.ts, p, p, p, p, event.qty)
