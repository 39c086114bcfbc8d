"""The fill rules of DESIGN.md §6/§7 are plain functions that numba compiles unchanged: the
compiled versions (what a fused backtest kernel calls) agree with the Python ones (what the
simulated executor and the grid cells call) on every input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit.trading import fills

numba = pytest.importorskip("numba")

COMPILED = {fn.__name__: numba.njit(cache=False)(fn) for fn in fills.RULES}
prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
flags = st.booleans()


@settings(max_examples=300, deadline=None)
@given(flags, prices, prices, prices, prices, prices, flags, flags)
def test_compiled_rules_equal_the_python_ones(is_buy: bool, a: float, b: float, c: float,
                                              d: float, e: float, x: bool, y: bool) -> None:
    low, high = min(b, c), max(b, c)
    calls = {
        "limit_reached": (is_buy, a, low, high),
        "stop_triggered": (is_buy, a, low, high),
        "stop_fill_price": (is_buy, a, d),
        "would_cross": (is_buy, a, d),
        "fee": (a, b, 0.001),
        "bracket_stop_first": (x, y),
        "cell_after_fill": (x, is_buy),
        "cell_order_price": (x, a, d),
        "round_trip_profit": (a, b, c, d, e),
    }
    assert set(calls) == set(COMPILED)
    for name, args in calls.items():
        want = getattr(fills, name)(*args)
        got = COMPILED[name](*args)
        if isinstance(want, float):
            assert got == want or (math.isnan(got) and math.isnan(want)), name
        else:
            assert bool(got) == bool(want), name


def test_the_rules_say_what_design_6_says() -> None:
    # rule 2: a buy limit fills when the low reaches it, a sell when the high does
    assert fills.limit_reached(True, 100.0, 99.0, 101.0)
    assert not fills.limit_reached(True, 98.0, 99.0, 101.0)
    assert fills.limit_reached(False, 101.0, 99.0, 101.0)
    # rule 7: a stop fills at its price, or at the open when the bar gapped through it
    assert fills.stop_fill_price(False, 95.0, 97.0) == 95.0
    assert fills.stop_fill_price(False, 95.0, 90.0) == 90.0
    assert fills.stop_fill_price(True, 105.0, 110.0) == 110.0
    # rule 8: both legs reached on one bar: the stop wins
    assert fills.bracket_stop_first(True, True)
    # §7: a round trip earns qty * (sell - buy) less both fees
    assert fills.round_trip_profit(100.0, 101.0, 2.0, 0.2, 0.202) == pytest.approx(1.598)
