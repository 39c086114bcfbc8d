"""vectorbt's exact static grid (``Portfolio.from_order_func``, flexible), timed on given bars.

Run by ``bench_fused.py`` under a Python that has vectorbt (it pins its own numba and pandas,
so it usually lives in a virtualenv of its own: ``GRIDKIT_VECTORBT_PYTHON``). The grid is the
same as the fused benchmark's: cells between ``lines``, each EMPTY (a buy limit at its lower
line) or HOLDING (a sell limit at its upper line), seeded at the first close with one market
buy for the holding cells; every bar fills the buys it reaches (best first), then the sells,
at their limit price with the maker fee, several per bar. Prints one JSON line: the best
wall time of the simulation (compiled outside the timing) and the fills.

Usage: ``python vectorbt_grid.py BARS.npy LINES.npy QTY FEE REPEAT``
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import vectorbt as vbt
from numba import njit
from vectorbt.portfolio.enums import Direction
from vectorbt.portfolio.nb import order_nb, order_nothing_nb


@njit
def flex_order_func_nb(c, lows, highs, lines, state, qty, fee):  # pragma: no cover
    i = c.i
    n = lines.shape[0] - 1
    if i == 0:  # the first close seeds the cells; the holding ones are bought at market
        if c.call_idx == 0:
            held = 0
            for k in range(n):
                if lines[k] >= c.close[0, 0]:
                    state[k] = 1
                    held += 1
            if held:
                return 0, order_nb(size=held * qty, price=c.close[0, 0], fees=fee,
                                   direction=Direction.LongOnly)
        return -1, order_nothing_nb()
    lo, hi = lows[i], highs[i]
    for k in range(n - 1, -1, -1):  # the buys the bar reaches, best (highest) first
        if state[k] == 0 and lines[k] >= lo:
            state[k] = 2  # filled this bar: its sell waits for the next
            return 0, order_nb(size=qty, price=lines[k], fees=fee, direction=Direction.LongOnly)
    for k in range(n):  # then the sells, lowest first
        if state[k] == 1 and lines[k + 1] <= hi:
            state[k] = 3
            return 0, order_nb(size=-qty, price=lines[k + 1], fees=fee,
                               direction=Direction.LongOnly)
    for k in range(n):  # this bar's fills flip their cells, live from the next bar
        if state[k] == 2:
            state[k] = 1
        elif state[k] == 3:
            state[k] = 0
    return -1, order_nothing_nb()


def simulate(bars: np.ndarray, lines: np.ndarray, qty: float, fee: float) -> int:
    state = np.zeros(len(lines) - 1, dtype=np.int64)
    pf = vbt.Portfolio.from_order_func(
        bars[:, 4], flex_order_func_nb, bars[:, 3], bars[:, 2], lines, state,
        qty, fee, flexible=True, init_cash=100_000.0, max_orders=len(bars) * 2)
    return int(pf.orders.count())


def main() -> None:
    bars = np.load(sys.argv[1])
    lines = np.load(sys.argv[2])
    qty, fee, repeat = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    fills = simulate(bars[:1000], lines, qty, fee)  # compiled outside the timing
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fills = simulate(bars, lines, qty, fee)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"seconds": best, "fills": fills, "bars": len(bars),
                      "vectorbt": vbt.__version__}))


if __name__ == "__main__":
    main()
