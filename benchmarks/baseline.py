"""The engine's work, hard-coded: one plain Python loop with no plugins, no engine, no objects.

This is the baseline of ``bench_engine.py``: the same bars (already in memory as tuples), the
same validation checks, the same feature recurrences, the same static grid and bar fill model
(DESIGN.md §6-7) with two heaps, the same portfolio accounting. The difference between its speed
and the engine's is the cost of the plugin architecture (component objects, method calls, value
objects, per-stage timing), not of the work itself.

Flags switch parts of the work on to match each benchmarked pipeline:

* ``validate``: the four validators (timestamp, price, volume, ohlc);
* ``features``: Wilder RSI(14), volatility(20) of log returns, volume ratio(20);
* ``extras``: what the rest of the full slice does per bar: the four regime scores (one EMA of
  the volatility), progressive attention's Welford statistics per feature, the position-size
  check on each buy, the drawdown check per bar;
* ``store``: order, fill and equity rows written to SQLite ``:memory:`` every 1,000 bars.

Not reproduced: the simulated executor's cash/base reservations (no order is refused in these
runs, so they change no result) and the run summary.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
import time
from array import array
from typing import Any

INF = float("inf")
NAN = float("nan")


def _ramp(x: float, a: float, b: float) -> float:
    t = (x - a) / (b - a)
    return 0.0 if t < 0.0 else 1.0 if t > 1.0 else t


def plain_loop(bars: list[tuple[Any, ...]], *, lower: float, upper: float, grids: int,
               qty: float, maker: float = 0.001, taker: float = 0.001, capital: float = 10000.0,
               validate: bool = True, features: bool = True, extras: bool = False,
               store: bool = False, max_fraction: float = 0.95, dd_limit: float = 0.5,
               latency: array | None = None) -> dict[str, Any]:
    """Run the hard-coded pipeline over ``bars``; return counts, the result and the loop time.

    ``latency``, if given, receives the wall time of each accepted bar in ns (two clock reads
    per bar, which the throughput figure then includes).
    """
    heappush, heappop = heapq.heappush, heapq.heappop
    log, sqrt = math.log, math.sqrt
    now = time.perf_counter_ns
    step = (upper - lower) / grids
    lines = [lower + i * step for i in range(grids + 1)]
    holding = [False] * grids
    buys: list[tuple[float, int, int]] = []  # (-price, id, cell): highest first
    sells: list[tuple[float, int, int]] = []  # (price, id, cell): lowest first
    queued: list[tuple[int, str, float, float, int]] = []  # (id, side, price, qty, cell)
    oid = 0
    cash, base, avg, fees, realized = capital, 0.0, 0.0, 0.0, 0.0
    peak, max_dd, open_buy_qty = capital, 0.0, 0.0
    n_buy = n_sell = refused = seen = accepted = 0
    last_ts = None
    started = False
    # RSI(14)
    rp = 14
    r_prev, r_count, g_sum, l_sum, a_gain, a_loss = NAN, 0, 0.0, 0.0, 0.0, 0.0
    # volatility(20)
    vp = 20
    v_ring, v_prev, v_k, s1, s2 = [0.0] * vp, NAN, 0, 0.0, 0.0
    # volume-ratio(20)
    up = 20
    u_ring, u_i, u_s = [0.0] * up, 0, 0.0
    # extras: regimes' volatility EMA, attention statistics, drawdown halt
    alpha, ema = 2.0 / 501.0, NAN
    welford = {"rsi": [0.0, 0.0, 0.0], "volatility": [0.0, 0.0, 0.0],
               "volume-ratio": [0.0, 0.0, 0.0]}
    halted = False
    regime_counts: dict[str | None, int] = {}
    # store
    db = order_rows = fill_rows = equity_rows = None
    if store:
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE orders (run_id, order_id, ts, status, side, kind, price, qty, "
                   "tag)")
        db.execute("CREATE TABLE fills (run_id, order_id, ts, side, price, qty, fee, liquidity, "
                   "tag)")
        db.execute("CREATE TABLE equity (run_id, ts, close, cash, base, equity)")
        order_rows, fill_rows, equity_rows = [], [], []
    pending = 0
    rsi = vol = ratio = NAN

    t_start = time.perf_counter()
    for bar in bars:
        if latency is not None:
            t0 = now()
        seen += 1
        ts, o, h, lo, c, v = bar
        if validate:
            if last_ts is not None and ts <= last_ts:
                continue
            if not (0 < o < INF and 0 < h < INF and 0 < lo < INF and 0 < c < INF):
                continue
            if not 0 < v < INF and v != 0:
                continue
            if not (lo <= o <= h and lo <= c <= h):
                continue
            last_ts = ts
        accepted += 1

        # fills: queued orders go live (market orders fill at the open), then the heaps
        fills: list[tuple[int, str, float, float, float, int]] = []
        if queued:
            for q_id, side, price, q_qty, cell in queued:
                if cell < 0:
                    fills.append((q_id, side, o, q_qty, o * q_qty * taker, cell))
                elif side == "buy":
                    heappush(buys, (-price, q_id, cell))
                else:
                    heappush(sells, (price, q_id, cell))
            queued = []
        while buys and -buys[0][0] >= lo:
            neg, b_id, cell = heappop(buys)
            fills.append((b_id, "buy", -neg, qty, -neg * qty * maker, cell))
        while sells and sells[0][0] <= h:
            price, s_id, cell = heappop(sells)
            fills.append((s_id, "sell", price, qty, price * qty * maker, cell))

        # portfolio
        for f_id, side, price, f_qty, fee, _cell in fills:
            notional = price * f_qty
            fees += fee
            if side == "buy":
                held = base
                base = held + f_qty
                avg = (avg * held + notional + fee) / base
                cash -= notional + fee
                open_buy_qty -= f_qty
                n_buy += 1
            else:
                realized += (price - avg) * f_qty - fee
                base -= f_qty
                cash += notional - fee
                n_sell += 1
                if base <= 1e-12:
                    avg = 0.0
            if store:
                fill_rows.append((1, f_id, ts, side, price, f_qty, fee, "maker", _cell))
        equity = cash + base * c
        if equity > peak:
            peak = equity
        elif peak > 0:
            dd = (peak - equity) / peak
            if dd > max_dd:
                max_dd = dd
        if store:
            equity_rows.append((1, ts, c, cash, base, equity))
            pending += 1
            if pending >= 1000:
                pending = 0
                with db:
                    db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", order_rows)
                    db.executemany("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?)", fill_rows)
                    db.executemany("INSERT INTO equity VALUES (?,?,?,?,?,?)", equity_rows)
                order_rows, fill_rows, equity_rows = [], [], []

        if features:
            # RSI
            prev, r_prev = r_prev, c
            if prev == prev:
                diff = c - prev
                gain = diff if diff > 0.0 else 0.0
                loss = -diff if diff < 0.0 else 0.0
                r_count += 1
                if r_count < rp:
                    g_sum += gain
                    l_sum += loss
                    rsi = NAN
                else:
                    if r_count == rp:
                        a_gain = (g_sum + gain) / rp
                        a_loss = (l_sum + loss) / rp
                    else:
                        a_gain = (a_gain * (rp - 1) + gain) / rp
                        a_loss = (a_loss * (rp - 1) + loss) / rp
                    total = a_gain + a_loss
                    rsi = 100.0 * (a_gain / total) if total != 0.0 else 0.0
            # volatility
            prev, v_prev = v_prev, c
            if prev == prev:
                r = log(c / prev)
                slot = v_k % vp
                if v_k >= vp:
                    old = v_ring[slot]
                    s1 = s1 + r - old
                    s2 = s2 + r * r - old * old
                else:
                    s1 += r
                    s2 += r * r
                v_ring[slot] = r
                v_k += 1
                if slot == vp - 1:
                    s1 = s2 = 0.0
                    for x in v_ring:
                        s1 += x
                        s2 += x * x
                if v_k >= vp:
                    var = (s2 - s1 * s1 / vp) / (vp - 1)
                    vol = sqrt(var) if var > 0.0 else 0.0
            # volume ratio
            ratio = NAN
            if u_i >= up:
                mean = u_s / up
                if mean > 0.0:
                    ratio = v / mean
            slot = u_i % up
            if u_i >= up:
                u_s = u_s + v - u_ring[slot]
            else:
                u_s += v
            u_ring[slot] = v
            u_i += 1
            if slot == up - 1:
                u_s = 0.0
                for x in u_ring:
                    u_s += x

        if extras:
            # attention: Welford per ready feature
            for key, value in (("rsi", rsi), ("volatility", vol), ("volume-ratio", ratio)):
                if value == value:
                    st = welford[key]
                    n = st[0] + 1.0
                    delta = value - st[1]
                    mean = st[1] + delta / n
                    st[0], st[1], st[2] = n, mean, st[2] + delta * (value - mean)
            # regimes
            rel = NAN
            if vol == vol:
                ema = vol if ema != ema else ema + alpha * (vol - ema)
                rel = vol / ema if ema > 0.0 else 1.0
            label, best = None, NAN
            if rsi == rsi and rel == rel:
                t = abs(rsi - 50.0) / 50.0
                label, best = "RANGING", (1.0 - _ramp(t, 0.0, 0.3)) * (1.0 - _ramp(rel, 1.0, 2.0))
            if rsi == rsi:
                s = _ramp(abs(rsi - 50.0) / 50.0, 0.2, 0.4)
                if best != best or s > best:
                    label, best = "TRENDING", s
            if rel == rel:
                s = _ramp(rel, 1.2, 2.0)
                if best != best or s > best:
                    label, best = "VOLATILE", s
                if ratio == ratio:
                    s = min(_ramp(ratio, 0.5, 0.2), _ramp(rel, 0.8, 0.5))
                    if best != best or s > best:
                        label, best = "DORMANT", s
            regime_counts[label] = regime_counts.get(label, 0) + 1

        # strategy: seed on the first bar, then one follow-up order per limit fill
        new: list[tuple[int, str, float, float, int]] = []
        if started:
            for _f_id, side, _price, _q, _fee, cell in fills:
                if cell < 0:
                    continue
                oid += 1
                if side == "buy":
                    holding[cell] = True
                    new.append((oid, "sell", lines[cell + 1], qty, cell))
                else:
                    holding[cell] = False
                    new.append((oid, "buy", lines[cell], qty, cell))
        else:
            started = True
            oid += 1
            market = oid
            n_hold = 0
            seeds = []
            for i in range(grids):
                holding[i] = lines[i] >= c
                oid += 1
                if holding[i]:
                    n_hold += 1
                    seeds.append((oid, "sell", lines[i + 1], qty, i))
                else:
                    seeds.append((oid, "buy", lines[i], qty, i))
            if n_hold:
                new.append((market, "buy", c, n_hold * qty, -1))
            new.extend(seeds)

        # risk: drawdown halt per bar, position size per buy
        if extras and not halted and peak > 0 and (peak - equity) / peak >= dd_limit:
            halted = True
        for order in new:
            if halted:
                break
            if extras and order[1] == "buy" and equity > 0:
                share = (base + open_buy_qty + order[3]) * c / equity
                if share > max_fraction + 1e-12:
                    refused += 1
                    continue
            if order[1] == "buy":
                open_buy_qty += order[3]
            queued.append(order)
            if store:
                order_rows.append((1, order[0], ts, "placed", order[1],
                                   "market" if order[4] < 0 else "limit", order[2], order[3],
                                   order[4]))
        if latency is not None:
            latency.append(now() - t0)
    elapsed = time.perf_counter() - t_start
    if store:
        with db:
            db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", order_rows)
            db.executemany("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?)", fill_rows)
            db.executemany("INSERT INTO equity VALUES (?,?,?,?,?,?)", equity_rows)
        db.close()
    return {"seen": seen, "accepted": accepted, "elapsed": elapsed, "buy_fills": n_buy,
            "sell_fills": n_sell, "fees": fees, "final_equity": cash + base * c,
            "max_drawdown": max_dd, "refused": refused, "regimes": regime_counts,
            "rsi": rsi, "volatility": vol, "volume_ratio": ratio}
