"""The run summary: what ``gridkit run`` prints and the store keeps (DESIGN.md §7)."""

from __future__ import annotations

import math
from typing import Any

#: A year in epoch milliseconds, as exchange grid bots annualize (365 days).
YEAR_MS = 365 * 86_400_000


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def return_ratios(returns: list[Any], years: float) -> tuple[float | None, float | None]:
    """Annualized Sharpe and Sortino ratios of the marks' equity returns (``Account.returns``:
    count, sum, sum of squares, sum of the negative ones' squares), with no risk-free rate:
    the mean return over its standard deviation (Sharpe, 1966) or over its downside deviation
    (Sortino and Price, 1994), times the square root of the marks per year. None when the run
    is too short or never moved (or, for Sortino, never lost)."""
    n, total, squares, down = returns
    if n < 2 or years <= 0:
        return None, None
    mean = total / n
    var = squares / n - mean * mean
    scale = math.sqrt(n / years)
    sharpe = mean / math.sqrt(var) * scale if var > 0 else None
    sortino = mean / math.sqrt(down / n) * scale if down > 0 else None
    return sharpe, sortino


def profit_factor(win: float, loss: float) -> float | None:
    """Gross profit over gross loss of the closing fills (FIFO lots, after fees); None when
    nothing lost."""
    return win / loss if loss > 0 else None


def grid_figures(positions: list[Any], start: tuple[int, float] | None, last_price: float
                 ) -> dict[str, Any]:
    """The grid accounting of some positions (one symbol's, or all of them): see
    ``docs/concepts.rst`` (run summary, ``grid``) for each figure and its formula."""
    grid = sum(p.grid_profit for p in positions)
    floating = sum(p.floating() for p in positions)
    funding = sum(p.funding for p in positions)
    other = sum(p.liquidation_fees for p in positions)
    trips = sum(p.round_trips for p in positions)
    first = start[1] if start is not None else None
    bh = (last_price / first - 1.0
          if first and first == first and last_price == last_price else None)
    return {
        "grid_profit": grid, "floating_pnl": floating, "funding": funding,
        "fees": sum(p.fees for p in positions) - other, "other_fees": other,
        "total_pnl": grid + floating + funding - other,
        "round_trips": trips, "avg_round_trip_profit": grid / trips if trips else None,
        "first_price": first, "last_price": last_price, "buy_hold_return": bh,
    }


def grid_accounting(run: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What exchange grid bots report, for the whole run and per symbol: grid profit (FIFO
    round trips, after fees), floating PnL, funding, fees, total PnL, grid and total APR over
    the run's duration in event time, and the buy-and-hold benchmark. O(open lots)."""
    acct = run.account
    capital = acct.capital
    per: dict[str, dict[str, Any]] = {}
    benchmarks: list[float] = []
    first_ts: int | None = None
    last_ts: int | None = None
    for lr in run.lanes:
        sym = lr.lane.symbol
        bar = lr.ctx.bar
        last = bar.close if bar is not None else lr.ctx.position.price
        figures = grid_figures([p for p in acct.positions.values() if p.symbol == sym],
                               lr.start_bar, last)
        per[sym] = figures
        if figures["buy_hold_return"] is not None:
            benchmarks.append(figures["buy_hold_return"])
        if lr.start_bar is not None:
            ts = lr.start_bar[0]
            first_ts = ts if first_ts is None else min(first_ts, ts)
        if bar is not None:
            last_ts = bar.ts if last_ts is None else max(last_ts, bar.ts)
    total = grid_figures(list(acct.positions.values()), None, float("nan"))
    for key in ("first_price", "last_price", "buy_hold_return"):
        del total[key]
    total["funding"] = acct.funding  # (funding booked on a symbol without a perpetual, too)
    total["total_pnl"] = (total["grid_profit"] + total["floating_pnl"] + total["funding"]
                          - total["other_fees"])
    days = ((last_ts - first_ts) / 86_400_000
            if first_ts is not None and last_ts is not None else 0.0)
    years = days * 86_400_000 / YEAR_MS
    total["duration_days"] = days
    grid_return = _ratio(total["grid_profit"], capital)
    total_return = _ratio(total["total_pnl"], capital)
    total["grid_apr"] = grid_return / years if grid_return is not None and years > 0 else None
    total["total_apr"] = total_return / years if total_return is not None and years > 0 \
        else None
    total["total_return"] = total_return
    # Capital split evenly over the symbols, each bought at its first price: the mean return.
    bh = sum(benchmarks) / len(benchmarks) if benchmarks and len(benchmarks) == len(per) \
        else None
    total["buy_hold_return"] = bh
    total["excess_return"] = (total_return - bh if total_return is not None and bh is not None
                              else None)
    total["fees_other_assets"] = dict(acct.other_fees)
    # The strategies' own figure where they keep one (a grid's cells: a sell matched with the
    # buy one line below it, Binance's "matched orders"); None when no strategy reports it.
    own = [st["grid_profit"] for st in (lr.lane.strategy.stats() for lr in run.lanes)
           if "grid_profit" in st]
    total["strategy_grid_profit"] = sum(own) if own else None
    return total, per


def _ratios(acct: Any, grid: dict[str, Any]) -> dict[str, Any]:
    years = grid["duration_days"] * 86_400_000 / YEAR_MS
    sharpe, sortino = return_ratios(acct.returns, years)
    positions = list(acct.positions.values())
    return {"sharpe": sharpe, "sortino": sortino,
            "profit_factor": profit_factor(sum(p.gross_win for p in positions),
                                           sum(p.gross_loss for p in positions))}


def summarize(run: Any) -> dict[str, Any]:
    """The summary of a :class:`gridkit.runtime.runstate.Run`, JSON-able.

    One-symbol runs keep the flat keys of earlier versions (``final_base``, ``final_price``);
    every run also has ``symbols``, one entry per lane with its position and counters.
    """
    p, acct = run.pipeline, run.account
    comps: dict[str, dict[str, Any]] = {}
    for c in p.components():
        stats = c.stats()
        if stats:
            spec, _ = p.origin(c)
            comps[spec.path] = stats
    if run.fused_open_orders is not None and "executor" in comps:
        comps["executor"]["open_orders"] = run.fused_open_orders  # (never held as objects)
    lanes = run.lanes
    first = lanes[0]
    dropped_by: dict[str, Any] = {}
    for lr in lanes:
        for v in lr.lane.validators:
            st = v.stats()
            if st:
                name = p.origin(v)[0].use
                if len(lanes) > 1:
                    name = f"{name}@{lr.lane.symbol}"
                dropped_by[name] = st
    ticks: dict[str, list[int]] = {}
    not_in_bars = 0
    for lr in lanes:
        for kind, (s, a) in lr.ticks.items():
            t = ticks.setdefault(kind, [0, 0])
            t[0] += s
            t[1] += a
        if lr.folder is not None:
            not_in_bars += lr.folder.not_in_bars
    accepted = sum(lr.accepted for lr in lanes)
    bars_seen = sum(lr.bars_seen for lr in lanes)
    folded = any(lr.folder is not None for lr in lanes)
    equity = acct.equity
    pos = first.ctx.position
    executor_open = {o.id for o in p.executor.open_orders()}
    ledger_open = {oid for oid, s in run.ledger.open.items() if s.status != "new"}
    unreconciled = sorted(ledger_open ^ executor_open)
    unreconciled += [f"{oid}: {what}" for oid, what in run.ledger.anomalies]
    grid, grid_by_symbol = grid_accounting(run)
    symbols = {}
    for lr in lanes:
        ps = lr.ctx.position
        sides = {p.side: p.qty for p in acct.positions.values()
                 if p.symbol == lr.lane.symbol and p.side}
        st = lr.lane.strategy.stats()
        symbols[lr.lane.symbol] = {
            "kind": ps.kind, "position": ps.qty, "avg_price": ps.avg_price, "price": ps.price,
            "realized": ps.realized, "fees": ps.fees, "funding": ps.funding,
            "buy_fills": ps.buy_fills, "sell_fills": ps.sell_fills,
            "bars_accepted": lr.accepted,
            "features": dict(lr.ctx.features),  # the last value of each, NaN while warming
            **({"liquidation_price": ps.liquidation_price(acct.cash)}
               if ps.kind != "spot" and not sides else {}),
            **({"hedge": sides} if sides else {}),
            **({k: st[k] for k in ("round_trips", "grid_profit") if k in st}),
            "grid": grid_by_symbol[lr.lane.symbol],
        }
    out = {
        "name": p.run.name, "mode": p.run.mode, "symbol": p.run.symbol,
        "symbols": symbols,
        "status": run.status, "error": run.error, "run_id": run.run_id,
        "resumed": run.resumed,
        "bars_seen": bars_seen, "bars_accepted": accepted,
        "bars_dropped": bars_seen - accepted, "dropped_by": dropped_by,
        "events": {kind: {"seen": s, "accepted": a, "dropped": s - a,
                          **({"not_in_bars": not_in_bars} if kind == "trades" and folded
                             else {})}
                   for kind, (s, a) in ticks.items() if s},
        "paused": first.ctx.paused, "orders_deferred": run.deferred,
        "orders_deferred_at_end": sum(len(lr.deferred) for lr in lanes),
        "features_fused": first.fused,
        "first_ts": first.first_ts,
        "last_ts": first.ctx.bar.ts if first.ctx.bar is not None else None,
        "orders_placed": run.orders_placed, "orders_cancelled": run.orders_cancelled,
        "orders_rejected": sum(run.rejected.values()), "rejected_by": dict(run.rejected),
        "open_orders": (len(executor_open) if run.fused_open_orders is None
                        else run.fused_open_orders),
        "open_order_ids": sorted(executor_open),
        # Orders the ledger holds open but the executor does not, or the reverse, and reports
        # that did not fit the ledger: a grid that never loses an order keeps this empty.
        "unreconciled_orders": unreconciled,
        "buy_fills": acct.buy_fills, "sell_fills": acct.sell_fills,
        "fees_paid": acct.fees, "funding_paid": -acct.funding, "capital": acct.capital,
        "final_cash": acct.cash, "final_base": pos.qty, "final_price": pos.price,
        "final_equity": equity, "realized_profit": acct.realized,
        "return_pct": (equity / acct.capital - 1.0) * 100.0 if acct.capital else 0.0,
        "max_drawdown": acct.max_drawdown, "halted": run.halted,
        **_ratios(acct, grid),
        "grid": grid,
        # Paper and live: the figures of the last heartbeat line (already computed: free).
        "heartbeat": (run.heartbeat.last or None) if run.heartbeat is not None else None,
        "regime": first.ctx.regime,
        "pipeline": {spec.path: {"use": spec.use, "plugin": reg.plugin,
                                 "distribution": reg.distribution}
                     for spec, reg in (p.origin(c) for c in p.components())},
        "components": comps,
        # (A fused backtest has no per-event stages to time.)
        "latency_us": None if (run.path or {}).get("fused") else run.timer.percentiles(),
        "elapsed_s": run.elapsed,
        "backtest_path": run.path,
        "events_per_s": run.seen / run.elapsed if run.elapsed > 0 else None,
    }
    # The portfolio risk book's figures, when a risk check keeps one (gridkit.runtime.riskbook).
    from gridkit.runtime.riskbook import find

    book = find(run)
    if book is not None:
        out["risk"] = book.summary()
    return out
