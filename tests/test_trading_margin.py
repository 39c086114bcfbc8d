"""USDⓈ-M margin math: Binance's worked examples, the bracket tables, and the properties that
define a liquidation price."""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gridkit.trading import margin
from gridkit.trading.margin import (
    BRACKETS,
    DEFAULT_MAINTENANCE_AMOUNT,
    DEFAULT_MMR,
    bracket_arrays,
    bracket_index,
    funding_payment,
    hedge_liquidation_direction,
    initial_margin,
    is_liquidated,
    liquidation_price,
    liquidation_price_brackets,
    liquidation_price_hedge,
    maintenance_margin,
    unrealized_pnl,
)

# --- Binance's worked examples ----------------------------------------------------------------


def test_binance_faq_long_btcusdt_500_wallet() -> None:
    """Binance support FAQ on avoiding liquidation
    (https://www.binance.com/en/support/faq/25edcd7fe0e544839d0847b8cbb2e400): a wallet of
    500 USDT, a 1 000 USDT long BTCUSDT at 50 000 → liquidation price 25 100.40. Bracket 1 of
    BTCUSDT: MMR 0.4 %, maintenance amount 0. (The page's second figure, 35 857.67 after
    adding a 1 000 USDT long at 45 000, does not follow from the published formula with the
    stated inputs, which give 35 668.99; it implies a wallet of about 492 USDT, so costs the
    page does not state. It is not tested.)"""
    qty = 1000.0 / 50_000.0
    assert round(liquidation_price(500.0, qty, 50_000.0, 0.004, 0.0), 2) == 25_100.40


def test_binance_cross_margin_example_two_positions() -> None:
    """The example of Binance's "How to Calculate Liquidation Price of USDⓈ-M Futures
    Contracts": a cross wallet of 1 535 443.01 USDT holding ETHUSDT 3 683.979 long at 1 456.84
    (mark 1 335.18, MMR 10 %, amount 135 365) and BTCUSDT 109.488 long at 32 481.98 (mark
    31 967.27, MMR 2.5 %, amount 16 300). Binance gives LP 1 153.26 for ETHUSDT and 26 316.89
    for BTCUSDT. The figures are as freqtrade's tests reproduce them
    (tests/exchange/test_binance.py, test_liquidation_price_binance)."""
    wb = 1_535_443.01
    eth_qty, eth_entry, eth_mark, eth_mmr, eth_cum = 3683.979, 1456.84, 1335.18, 0.10, 135_365.0
    btc_qty, btc_entry, btc_mark, btc_mmr, btc_cum = 109.488, 32_481.98, 31_967.27, 0.025, 16_300.0
    # TMM1 and UPNL1 of each are the other position's maintenance margin and PnL at its mark;
    # the example states them: 71 200.81144 / −56 354.57 and 356 512.508 / −448 192.89.
    btc_mm = maintenance_margin(btc_qty * btc_mark, btc_mmr, btc_cum)
    btc_upnl = unrealized_pnl(btc_qty, btc_entry, btc_mark)
    eth_mm = maintenance_margin(eth_qty * eth_mark, eth_mmr, eth_cum)
    eth_upnl = unrealized_pnl(eth_qty, eth_entry, eth_mark)
    assert btc_mm == pytest.approx(71_200.81144, abs=5e-3)
    assert btc_upnl == pytest.approx(-56_354.57, abs=5e-3)
    assert eth_mm == pytest.approx(356_512.508, abs=5e-3)
    assert eth_upnl == pytest.approx(-448_192.89, abs=5e-3)
    eth_lp = liquidation_price(wb, eth_qty, eth_entry, eth_mmr, eth_cum, btc_mm, btc_upnl)
    btc_lp = liquidation_price(wb, btc_qty, btc_entry, btc_mmr, btc_cum, eth_mm, eth_upnl)
    assert round(eth_lp, 2) == 1153.26
    assert round(btc_lp, 2) == 26_316.89
    # The stated TMM1/UPNL1 figures give the same prices.
    assert round(liquidation_price(wb, eth_qty, eth_entry, 0.10, 135_365.0, 71_200.81144,
                                   -56_354.57), 2) == 1153.26
    assert round(liquidation_price(wb, btc_qty, btc_entry, 0.025, 16_300.0, 356_512.508,
                                   -448_192.89), 2) == 26_316.89


def test_binance_maintenance_amount_example() -> None:
    """Binance "Leverage and Margin": amount of level 3 = 250 000 × (1 % − 0.5 %) + 50 = 1 300
    (the BTCUSDT table of that page); the bracket tables here follow the same rule."""
    assert maintenance_margin(250_000.0, 0.01, 1300.0) == pytest.approx(
        maintenance_margin(250_000.0, 0.005, 50.0))


# --- basic quantities -------------------------------------------------------------------------


def test_margins_pnl_and_funding() -> None:
    assert initial_margin(1000.0, 20.0) == 50.0
    assert initial_margin(-1000.0, 20.0) == 50.0
    assert maintenance_margin(1000.0, 0.004, 0.0) == 4.0
    assert unrealized_pnl(2.0, 100.0, 110.0) == 20.0
    assert unrealized_pnl(-2.0, 100.0, 110.0) == -20.0
    # Longs pay when the rate is positive, shorts receive; the reverse when it is negative.
    assert funding_payment(1000.0, 1.1, 0.0001) == pytest.approx(-0.11)
    assert funding_payment(-1000.0, 1.1, 0.0001) == pytest.approx(0.11)
    assert funding_payment(1000.0, 1.1, -0.0021933) == pytest.approx(2.41263)
    assert funding_payment(0.0, 1.1, 0.0001) == 0.0


def test_edge_cases() -> None:
    assert math.isnan(liquidation_price(1000.0, 0.0, 100.0, 0.004, 0.0))
    assert math.isnan(liquidation_price(1000.0, 1.0, 100.0, 1.0, 0.0))
    assert math.isnan(liquidation_price(1000.0, 1.0, 100.0, -0.1, 0.0))
    # Fully collateralised long (leverage 1): never liquidated, 0.0 that no mark reaches.
    assert liquidation_price(100.0, 1.0, 100.0, 0.004, 0.0) == 0.0
    # A short in an account already under maintenance at any price: 0.0, which every mark
    # reaches (short: liquidated when mark >= LP).
    assert liquidation_price(-200.0, -1.0, 100.0, 0.004, 0.0) == 0.0
    assert is_liquidated(-200.0, -1.0, 100.0, 1e-9, 0.004, 0.0)
    # A short with lots of collateral: a high but finite price.
    lp = liquidation_price(1e6, -1.0, 100.0, 0.004, 0.0)
    assert math.isfinite(lp) and lp == pytest.approx((1e6 + 100.0) / 1.004)
    assert math.isnan(liquidation_price_hedge(100.0, 0.0, 1.0, 0.004, 0.0, 0.0, 1.0, 0.004, 0.0))


def test_hedge_mode_reduces_to_one_way_and_can_be_unliquidatable() -> None:
    wb, q, ep, mmr = 1000.0, 0.5, 20_000.0, 0.004
    assert liquidation_price_hedge(wb, q, ep, mmr, 0.0, 0.0, 0.0, 0.0, 0.0) == pytest.approx(
        liquidation_price(wb, q, ep, mmr, 0.0))
    assert liquidation_price_hedge(wb, 0.0, 0.0, 0.0, 0.0, q, ep, mmr, 0.0) == pytest.approx(
        liquidation_price(wb, -q, ep, mmr, 0.0))
    assert hedge_liquidation_direction(q, mmr, 0.0, mmr) == -1
    assert hedge_liquidation_direction(0.0, mmr, q, mmr) == 1
    # Equal legs with zero maintenance rates: the balance does not move with the price.
    assert liquidation_price_hedge(wb, q, ep, 0.0, 0.0, q, ep, 0.0, 0.0) == math.inf
    assert liquidation_price_hedge(-wb, q, ep, 0.0, 0.0, q, ep, 0.0, 0.0) == 0.0


# --- the bracket tables -----------------------------------------------------------------------


@pytest.mark.parametrize("symbol", sorted(BRACKETS))
def test_bracket_tables_are_consistent(symbol: str) -> None:
    rows = BRACKETS[symbol]
    assert rows[0][0] == 0.0 and rows[0][3] == 0.0
    for prev, row in itertools.pairwise(rows):
        floor, _cap, mmr, cum, max_lev = row
        assert floor == prev[1]  # contiguous: a floor is the previous cap
        assert mmr > prev[2] and max_lev < prev[4]
        # Binance: amount_n = floor_n × (mmr_n − mmr_{n−1}) + amount_{n−1} ...
        assert cum == pytest.approx(floor * (mmr - prev[2]) + prev[3], abs=1e-6)
        # ... which makes the maintenance margin continuous at each floor.
        assert maintenance_margin(floor, mmr, cum) == pytest.approx(
            maintenance_margin(floor, prev[2], prev[3]), abs=1e-6)
    for _floor, _cap, mmr, _cum, max_lev in rows:
        assert mmr * max_lev < 1.0  # the initial margin rate always exceeds the maintenance


def test_first_brackets_and_default() -> None:
    assert BRACKETS["BTC/USDT:USDT"][0] == (0.0, 50_000.0, 0.004, 0.0, 125.0)
    assert BRACKETS["ETH/USDT:USDT"][0] == (0.0, 50_000.0, 0.004, 0.0, 125.0)
    assert BRACKETS["XRP/USDT:USDT"][0] == (0.0, 10_000.0, 0.005, 0.0, 75.0)
    floors, mmrs, amounts = bracket_arrays("DOGE/USDT:USDT")
    assert list(floors) == [0.0] and list(mmrs) == [DEFAULT_MMR]
    assert list(amounts) == [DEFAULT_MAINTENANCE_AMOUNT]
    floors, mmrs, amounts = bracket_arrays("XRP/USDT:USDT")
    assert bracket_index(9_999.0, floors) == 0
    assert bracket_index(10_000.0, floors) == 1
    assert bracket_index(-15_000.0, floors) == 1
    assert bracket_index(1e12, floors) == len(floors) - 1


def test_liquidation_price_uses_the_bracket_at_the_liquidation_notional() -> None:
    floors, mmrs, amounts = bracket_arrays("BTC/USDT:USDT")
    for qty, entry, leverage in ((30.0, 50_000.0, 10.0), (14.0, 50_000.0, 60.0),
                                 (-14.0, 50_000.0, 60.0), (0.5, 50_000.0, 100.0),
                                 (13.0, 47_000.0, 20.0), (-11.5, 52_000.0, 20.0)):
        wb = abs(qty) * entry / leverage
        lp = liquidation_price_brackets(wb, qty, entry, floors, mmrs, amounts)
        i = bracket_index(abs(qty) * lp, floors)
        assert lp == pytest.approx(liquidation_price(wb, qty, entry, mmrs[i], amounts[i]))
        balance = wb + unrealized_pnl(qty, entry, lp)
        assert balance == pytest.approx(maintenance_margin(abs(qty) * lp, mmrs[i], amounts[i]),
                                        rel=1e-9, abs=1e-6)
    # 13 BTC long at 47 000 is 611 000 USDT (bracket 3, from 600 000) and, at 20x, liquidates
    # near 44 870, a 583 000 notional: bracket 2's rate and amount apply, not the entry's.
    wb = 13 * 47_000.0 / 20.0
    lp = liquidation_price_brackets(wb, 13.0, 47_000.0, floors, mmrs, amounts)
    assert bracket_index(13 * 47_000.0, floors) == 2 and bracket_index(13.0 * lp, floors) == 1
    assert lp == pytest.approx(liquidation_price(wb, 13.0, 47_000.0, 0.005, 50.0))
    assert lp != pytest.approx(liquidation_price(wb, 13.0, 47_000.0, 0.0065, 950.0), rel=1e-6)
    # 11.5 BTC short at 52 000 (598 000, bracket 2) at 20x liquidates above 600 000: bracket 3.
    wb = 11.5 * 52_000.0 / 20.0
    lp = liquidation_price_brackets(wb, -11.5, 52_000.0, floors, mmrs, amounts)
    assert bracket_index(11.5 * 52_000.0, floors) == 1 and bracket_index(11.5 * lp, floors) == 2
    assert lp == pytest.approx(liquidation_price(wb, -11.5, 52_000.0, 0.0065, 950.0))


# --- properties -------------------------------------------------------------------------------

prices = st.floats(min_value=1e-4, max_value=1e6)
sizes = st.floats(min_value=1e-4, max_value=1e5)
rates = st.floats(min_value=0.0, max_value=0.5)


@given(sizes, prices, rates, st.floats(min_value=1.01, max_value=125.0), st.booleans())
def test_lp_is_on_the_losing_side_of_entry(qty: float, entry: float, mmr: float,
                                           leverage: float, long: bool) -> None:
    """Isolated with the initial margin as collateral: LP < entry for a long, > for a short,
    whenever the leverage is one the exchange allows (initial margin rate 1/L above MMR)."""
    assume(mmr * leverage < 1.0)
    wb = initial_margin(qty * entry, leverage)
    lp = liquidation_price(wb, qty if long else -qty, entry, mmr, 0.0)
    if long:
        assert lp < entry
    else:
        assert lp > entry


@given(st.floats(min_value=-1e7, max_value=1e7), sizes, prices, rates,
       st.floats(min_value=0.0, max_value=1e5), st.floats(min_value=0.0, max_value=1e6),
       st.floats(min_value=-1e6, max_value=1e6), st.booleans())
def test_margin_balance_equals_maintenance_at_lp(wb: float, qty: float, entry: float,
                                                 mmr: float, cum: float, other_mm: float,
                                                 other_upnl: float, long: bool) -> None:
    q = qty if long else -qty
    lp = liquidation_price(wb, q, entry, mmr, cum, other_mm, other_upnl)
    assume(lp > 0.0)  # 0.0 is the clipped "never" / "now" answer, not a root
    balance = wb + other_upnl + unrealized_pnl(q, entry, lp)
    required = other_mm + maintenance_margin(qty * lp, mmr, cum)
    scale = max(abs(wb), qty * entry, qty * lp, other_mm, abs(other_upnl), cum)
    assert math.isclose(balance, required, rel_tol=1e-9, abs_tol=1e-9 * scale)
    # And the liquidation side is the losing one: a step past LP is liquidated, a step
    # before it is not (unless the step is lost in rounding).
    step = 1e-6 * lp
    # (a step that moves the position's margin by less than the other terms' rounding says
    # nothing: 16,384 of other margin beside a 0.004 position at 0.0001, say)
    assume(qty * step > 1e-12 * scale)
    past, before = (lp - step, lp + step) if long else (lp + step, lp - step)
    assert is_liquidated(wb, q, entry, past, mmr, cum, other_mm, other_upnl)
    assert not is_liquidated(wb, q, entry, before, mmr, cum, other_mm, other_upnl)


@given(st.floats(min_value=-1e6, max_value=1e7), sizes, prices, rates, sizes, prices, rates)
def test_hedge_lp_balances_margin(wb: float, lq: float, le: float, lm: float, sq: float,
                                  se: float, sm: float) -> None:
    lp = liquidation_price_hedge(wb, lq, le, lm, 0.0, sq, se, sm, 0.0)
    assume(0.0 < lp < math.inf)
    balance = wb + unrealized_pnl(lq, le, lp) + unrealized_pnl(-sq, se, lp)
    required = maintenance_margin(lq * lp, lm, 0.0) + maintenance_margin(sq * lp, sm, 0.0)
    scale = max(abs(wb), lq * le, sq * se, lq * lp, sq * lp)
    assert math.isclose(balance, required, rel_tol=1e-9, abs_tol=1e-9 * scale)
    direction = hedge_liquidation_direction(lq, lm, sq, sm)
    past = lp * (1 + 1e-6 * direction)
    balance_past = wb + unrealized_pnl(lq, le, past) + unrealized_pnl(-sq, se, past)
    required_past = maintenance_margin(lq * past, lm, 0.0) + maintenance_margin(sq * past, sm, 0.0)
    assert balance_past <= required_past + 1e-9 * scale


# --- numba ------------------------------------------------------------------------------------

SCALAR_CASES = {
    "initial_margin": (1000.0, 20.0),
    "maintenance_margin": (1000.0, 0.004, 0.0),
    "unrealized_pnl": (-2.0, 100.0, 90.0),
    "margin_balance": (100.0, -3.0),
    "is_liquidated": (500.0, 0.02, 50_000.0, 25_000.0, 0.004, 0.0, 0.0, 0.0),
    "liquidation_price": (500.0, 0.02, 50_000.0, 0.004, 0.0, 0.0, 0.0),
    "liquidation_price_hedge": (1000.0, 0.5, 20_000.0, 0.004, 0.0, 0.2, 21_000.0, 0.004, 0.0,
                                0.0, 0.0),
    "hedge_liquidation_direction": (0.5, 0.004, 0.2, 0.004),
    "funding_payment": (100.0, 1.1, 0.0001),
}


@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_numba_compiles_each_function(name: str) -> None:
    function = getattr(margin, name)
    args = SCALAR_CASES[name]
    assert numba.njit(function)(*args) == function(*args)


def test_numba_compiles_the_bracket_functions() -> None:
    floors, mmrs, amounts = bracket_arrays("BTC/USDT:USDT")
    assert numba.njit(margin.bracket_index)(700_000.0, floors) == 2
    args = (20_000.0, 13.0, 47_000.0, floors, mmrs, amounts, 0.0, 0.0)
    assert numba.njit(liquidation_price_brackets)(*args) == liquidation_price_brackets(*args)
    assert isinstance(floors, np.ndarray) and floors.dtype == np.float64
