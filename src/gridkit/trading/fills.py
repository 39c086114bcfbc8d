"""The fill rules of DESIGN.md §6 and the grid cell rule of §7, written once.

Plain functions of floats and bools, so ``numba.njit`` compiles them unchanged: the
``simulated`` executor and the grid strategies call them from Python, and a fused whole-backtest
kernel compiles the same functions (``numba.njit(cache=True)(limit_reached)``), so the two paths
cannot diverge. ``tests/test_fill_rules.py`` checks that the compiled and the plain versions agree.
"""

from __future__ import annotations


def limit_reached(is_buy: bool, price: float, low: float, high: float) -> bool:
    """Rule 2: a live buy limit at ``price`` fills on a bar whose low reaches it; a sell limit
    on a bar whose high does. It fills at its own price, even when the bar opens through it."""
    return low <= price if is_buy else high >= price


def stop_triggered(is_buy: bool, stop: float, low: float, high: float) -> bool:
    """Rule 7: a sell stop at S triggers when ``low <= S``; a buy stop when ``high >= S``."""
    return low <= stop if not is_buy else high >= stop


def stop_fill_price(is_buy: bool, stop: float, open_: float) -> float:
    """Rule 7: a triggered stop fills at S, or at the bar's open when the bar opened beyond S
    (a gap: a sell stop below an open that is already under it fills at that open)."""
    if is_buy:
        return open_ if open_ > stop else stop
    return open_ if open_ < stop else stop


def would_cross(is_buy: bool, price: float, best_opposite: float) -> bool:
    """A limit order that would trade on arrival: a buy at or above the best ask (on bars: the
    open it meets), a sell at or below the best bid. A post-only order that would cross is
    rejected; an IOC or market order takes."""
    return price >= best_opposite if is_buy else price <= best_opposite


def fee(price: float, qty: float, rate: float) -> float:
    """Rule 2 and 4: the fee of a fill, ``price * qty * rate``, in the quote currency."""
    return price * qty * rate


def bracket_stop_first(stop_hit: bool, take_hit: bool) -> bool:
    """Rule 8: when one bar reaches both legs of a bracket or OCO group, the stop-loss fills
    and the take-profit is cancelled (the conservative reading of an unknown path)."""
    return stop_hit


def cell_after_fill(holding: bool, is_buy: bool) -> bool:
    """§7: a buy fill makes its cell HOLDING, a sell fill makes it EMPTY."""
    return is_buy


def cell_order_price(holding: bool, lower_line: float, upper_line: float) -> float:
    """§7: an EMPTY cell buys at its lower line; a HOLDING cell sells at its upper line."""
    return upper_line if holding else lower_line


def round_trip_profit(buy: float, sell: float, qty: float, buy_fee: float,
                      sell_fee: float) -> float:
    """§7: what one completed round trip of a cell earns, ``qty*(sell-buy)`` less both fees."""
    return (sell - buy) * qty - buy_fee - sell_fee


#: Every rule, for the fused kernels and the agreement test.
RULES = (limit_reached, stop_triggered, stop_fill_price, would_cross, fee, bracket_stop_first,
         cell_after_fill, cell_order_price, round_trip_profit)
