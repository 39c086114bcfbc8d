"""Binance USDⓈ-M linear perpetual margin: PnL, margins, liquidation price, funding.

Every function takes and returns plain floats (or numpy arrays of floats for the bracket
tables) and calls only :mod:`math`, so numba's ``njit`` compiles each of them unchanged; the
kernel may call them from Python or from a fused kernel (a test compiles them all).

Conventions: ``qty_signed`` is the position in base units (contracts × contract size), > 0
long, < 0 short; prices and money are in the settlement currency (USDT); ``notional`` is
``|qty| × price``. One-way mode holds one signed ("BOTH") position per symbol, hedge mode a
LONG and a SHORT one; cross margin shares the wallet balance across all positions.

Sources (Binance support FAQ, USDⓈ-M futures):

* "Leverage and Margin of USDⓈ-M Futures" — initial margin = notional / leverage;
  maintenance margin = notional × maintenance margin rate − maintenance amount, with the
  rate and amount of the notional's bracket; the maintenance amount of bracket n is
  ``floor_n × (mmr_n − mmr_{n−1}) + amount_{n−1}``.
* "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
  (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93) — the cross
  margin formula implemented by :func:`liquidation_price` and :func:`liquidation_price_hedge`;
  in isolated mode the same formula applies with WB = the position's isolated wallet balance
  and TMM1 = UPNL1 = 0.
* "Introduction to Binance Futures Funding Rates" — funding = position value × funding rate,
  paid by longs to shorts when the rate is positive (:func:`funding_payment`).
"""

from __future__ import annotations

import math

import numpy as np

#: Maintenance margin rate used when a symbol's brackets are unknown: Binance's first-bracket
#: rate of BTCUSDT and ETHUSDT (0.4 %). An option for the caller, not a fact about other symbols.
DEFAULT_MMR = 0.004
#: Maintenance amount that goes with :data:`DEFAULT_MMR` (first bracket: 0).
DEFAULT_MAINTENANCE_AMOUNT = 0.0

#: Binance USDⓈ-M notional brackets: ``(floor, cap, maintenance margin rate, maintenance
#: amount "cum", max leverage)``, notional in USDT. Source: Binance ``GET /fapi/v1/leverageBracket``
#: as ccxt ``fetch_leverage_tiers`` returns it, snapshot in freqtrade's
#: ``freqtrade/exchange/binance_leverage_tiers.json`` (GitHub freqtrade/freqtrade, commit
#: ``01d10aebcab25c526473c603a88e14eb7d9699cc``). Binance revises brackets from time to time;
#: these are that snapshot's values, not necessarily those of the dates of gridkit's example
#: data (BTCUSDT's first bracket, 0–50 000 at 0.4 %, is the same in 2021 sources).
BRACKETS: dict[str, tuple[tuple[float, float, float, float, float], ...]] = {
    "BTC/USDT:USDT": (
        (0.0, 50_000.0, 0.004, 0.0, 125.0),
        (50_000.0, 600_000.0, 0.005, 50.0, 100.0),
        (600_000.0, 3_000_000.0, 0.0065, 950.0, 75.0),
        (3_000_000.0, 12_000_000.0, 0.01, 11_450.0, 50.0),
        (12_000_000.0, 70_000_000.0, 0.02, 131_450.0, 25.0),
        (70_000_000.0, 100_000_000.0, 0.025, 481_450.0, 20.0),
        (100_000_000.0, 230_000_000.0, 0.05, 2_981_450.0, 10.0),
        (230_000_000.0, 480_000_000.0, 0.1, 14_481_450.0, 5.0),
        (480_000_000.0, 600_000_000.0, 0.125, 26_481_450.0, 4.0),
        (600_000_000.0, 800_000_000.0, 0.15, 41_481_450.0, 3.0),
        (800_000_000.0, 1_200_000_000.0, 0.25, 121_481_450.0, 2.0),
        (1_200_000_000.0, 1_800_000_000.0, 0.5, 421_481_450.0, 1.0),
    ),
    "ETH/USDT:USDT": (
        (0.0, 50_000.0, 0.004, 0.0, 125.0),
        (50_000.0, 600_000.0, 0.005, 50.0, 100.0),
        (600_000.0, 3_000_000.0, 0.0065, 950.0, 75.0),
        (3_000_000.0, 12_000_000.0, 0.01, 11_450.0, 50.0),
        (12_000_000.0, 50_000_000.0, 0.02, 131_450.0, 25.0),
        (50_000_000.0, 65_000_000.0, 0.025, 381_450.0, 20.0),
        (65_000_000.0, 150_000_000.0, 0.05, 2_006_450.0, 10.0),
        (150_000_000.0, 320_000_000.0, 0.1, 9_506_450.0, 5.0),
        (320_000_000.0, 400_000_000.0, 0.125, 17_506_450.0, 4.0),
        (400_000_000.0, 530_000_000.0, 0.15, 27_506_450.0, 3.0),
        (530_000_000.0, 800_000_000.0, 0.25, 80_506_450.0, 2.0),
        (800_000_000.0, 1_200_000_000.0, 0.5, 280_506_450.0, 1.0),
    ),
    "XRP/USDT:USDT": (
        (0.0, 10_000.0, 0.005, 0.0, 75.0),
        (10_000.0, 20_000.0, 0.0065, 15.0, 50.0),
        (20_000.0, 160_000.0, 0.01, 85.0, 40.0),
        (160_000.0, 800_000.0, 0.02, 1_685.0, 25.0),
        (800_000.0, 1_600_000.0, 0.025, 5_685.0, 20.0),
        (1_600_000.0, 8_000_000.0, 0.05, 45_685.0, 10.0),
        (8_000_000.0, 16_000_000.0, 0.1, 445_685.0, 5.0),
        (16_000_000.0, 20_000_000.0, 0.125, 845_685.0, 4.0),
        (20_000_000.0, 40_000_000.0, 0.25, 3_345_685.0, 2.0),
        (40_000_000.0, 80_000_000.0, 0.5, 13_345_685.0, 1.0),
    ),
}


def initial_margin(notional: float, leverage: float) -> float:
    """Margin a position of ``notional`` needs at ``leverage``: ``|notional| / leverage``.

    :param notional: position or order value, ``|qty| × price``.
    :param leverage: the symbol's leverage setting, > 0.
    """
    return abs(notional) / leverage


def maintenance_margin(notional: float, mmr: float, maintenance_amount: float) -> float:
    """Margin below which the position is liquidated: ``|notional| × mmr − maintenance_amount``.

    :param notional: position value at the mark price.
    :param mmr: maintenance margin rate of the notional's bracket (0.004 = 0.4 %).
    :param maintenance_amount: that bracket's maintenance amount ("cum"), in USDT.
    """
    return abs(notional) * mmr - maintenance_amount


def unrealized_pnl(qty_signed: float, entry: float, mark: float) -> float:
    """Profit of a linear position if it were closed at ``mark``: ``qty × (mark − entry)``.

    :param qty_signed: position, > 0 long, < 0 short.
    :param entry: the position's average entry price.
    :param mark: the mark price.
    """
    return qty_signed * (mark - entry)


def margin_balance(wallet_balance: float, unrealized: float) -> float:
    """Wallet balance plus the unrealized PnL of the positions it margins.

    :param wallet_balance: deposits + realized PnL − fees ± funding, in USDT.
    :param unrealized: the sum of the positions' :func:`unrealized_pnl`.
    """
    return wallet_balance + unrealized


def is_liquidated(wallet_balance: float, qty_signed: float, entry: float, mark: float,
                  mmr: float, maintenance_amount: float, other_mm: float = 0.0,
                  other_upnl: float = 0.0) -> bool:
    """True when the margin balance is at or below the maintenance margin (margin ratio ≥ 100 %).

    Binance liquidates when the margin ratio, maintenance margin / margin balance, reaches
    100 %. This is that test at one mark price; :func:`liquidation_price` solves it for the
    price. A flat account (``qty_signed == 0``) is liquidated only if its balance plus
    ``other_upnl`` is at or below ``other_mm``.

    :param wallet_balance: cross wallet balance (isolated: the position's isolated balance).
    :param qty_signed: the position of this symbol.
    :param entry: its entry price.
    :param mark: the mark price now.
    :param mmr: maintenance margin rate of its bracket.
    :param maintenance_amount: that bracket's maintenance amount.
    :param other_mm: maintenance margin of every other position in the cross account (TMM1).
    :param other_upnl: unrealized PnL of every other position (UPNL1).
    """
    balance = wallet_balance + other_upnl + qty_signed * (mark - entry)
    required = other_mm + abs(qty_signed) * mark * mmr - maintenance_amount
    return balance <= required


def liquidation_price(wallet_balance: float, qty_signed: float, entry: float, mmr: float,
                      maintenance_amount: float, other_mm: float = 0.0,
                      other_upnl: float = 0.0) -> float:
    """Mark price at which a one-way (BOTH) position is liquidated under cross margin.

    Binance's formula (one-way mode, the LONG/SHORT terms 0)::

        LP = (WB − TMM1 + UPNL1 + cumB − Side·Position·EP) / (Position·MMR − Side·Position)

    with Position = ``|qty_signed|``, Side = +1 long / −1 short, EP = ``entry``, cumB =
    ``maintenance_amount``, TMM1 = ``other_mm``, UPNL1 = ``other_upnl``. It is the price at
    which margin balance equals maintenance margin, the other positions held fixed. A long
    is liquidated when the mark falls to LP or below, a short when it rises to LP or above.

    Edge cases, chosen so that those two comparisons stay right:

    * flat (``qty_signed == 0``), or ``mmr`` outside [0, 1): NaN — no price to give.
    * a long the formula puts at or below 0 (its collateral covers the whole fall to 0,
      e.g. leverage ≤ 1): 0.0, which no mark price reaches. Binance's UI shows "--".
    * a short the formula puts at or below 0 (the account is under its maintenance margin
      at every price): 0.0, which every mark price reaches — liquidate now.
    * a short is never "unliquidatable" here: its loss grows without bound while its
      maintenance margin grows at only ``mmr`` < 1 of the price, so its LP is finite. +inf
      (never reached) comes only from :func:`liquidation_price_hedge`, when a LONG leg
      covers the SHORT one.

    Use the ``mmr``/``maintenance_amount`` of the bracket of the notional *at the liquidation
    price*; :func:`liquidation_price_brackets` does that search.

    :param wallet_balance: cross wallet balance (isolated: the isolated wallet balance).
    :param qty_signed: position, > 0 long, < 0 short.
    :param entry: the position's entry price.
    :param mmr: maintenance margin rate.
    :param maintenance_amount: maintenance amount (cum).
    :param other_mm: maintenance margin of all other positions (TMM1; 0 when isolated).
    :param other_upnl: unrealized PnL of all other positions (UPNL1; 0 when isolated).
    """
    # Outside [0, 1) the denominator can vanish or flip sign and the long/short reading of
    # the result breaks; no Binance bracket has such a rate.
    if qty_signed == 0.0 or not 0.0 <= mmr < 1.0:
        return math.nan
    side = 1.0 if qty_signed > 0.0 else -1.0
    position = abs(qty_signed)
    numerator = (wallet_balance - other_mm + other_upnl + maintenance_amount
                 - side * position * entry)
    denominator = position * mmr - side * position
    lp = numerator / denominator
    if lp < 0.0:
        return 0.0
    return lp


def liquidation_price_hedge(wallet_balance: float,
                            long_qty: float, long_entry: float, long_mmr: float,
                            long_amount: float,
                            short_qty: float, short_entry: float, short_mmr: float,
                            short_amount: float,
                            other_mm: float = 0.0, other_upnl: float = 0.0) -> float:
    """Liquidation price of a symbol's LONG and SHORT hedge-mode positions under cross margin.

    Binance's formula; both positions share the price::

        LP = (WB − TMM1 + UPNL1 + cumL + cumS − PositionL·EPL + PositionS·EPS)
             / (PositionL·MMRL + PositionS·MMRS − PositionL + PositionS)

    (Binance's full cross formula with the one-way BOTH terms 0). Which way the mark must
    move to reach LP depends on the sign of the denominator D, see
    :func:`hedge_liquidation_direction`: D < 0 (the long dominates) → liquidated at or below
    LP; D > 0 → at or above. A result at or below 0 is 0.0 (never reached going down,
    always reached going up); with D = 0 the balance never changes with the price, so the
    result is +inf (never) if it is above maintenance, else 0.0 (now).

    :param wallet_balance: cross wallet balance.
    :param long_qty: size of the LONG position, ≥ 0.
    :param long_entry: its entry price.
    :param long_mmr: maintenance margin rate of its bracket.
    :param long_amount: maintenance amount of its bracket (cumL).
    :param short_qty: size of the SHORT position, ≥ 0 (a size, not signed).
    :param short_entry: its entry price.
    :param short_mmr: maintenance margin rate of its bracket.
    :param short_amount: maintenance amount of its bracket (cumS).
    :param other_mm: maintenance margin of the other symbols' positions (TMM1).
    :param other_upnl: unrealized PnL of the other symbols' positions (UPNL1).
    """
    long_qty = abs(long_qty)
    short_qty = abs(short_qty)
    if long_qty == 0.0 and short_qty == 0.0:
        return math.nan
    numerator = (wallet_balance - other_mm + other_upnl + long_amount + short_amount
                 - long_qty * long_entry + short_qty * short_entry)
    denominator = long_qty * long_mmr + short_qty * short_mmr - long_qty + short_qty
    if denominator == 0.0:
        return math.inf if numerator > 0.0 else 0.0
    lp = numerator / denominator
    if lp < 0.0:
        return 0.0
    return lp


def hedge_liquidation_direction(long_qty: float, long_mmr: float, short_qty: float,
                                short_mmr: float) -> int:
    """−1 if a hedge-mode pair is liquidated by a falling mark (at or below LP), +1 if rising.

    The sign of the formula's denominator: the margin balance minus the maintenance margin
    changes with the price at the rate ``(long − short) − (long·MMRL + short·MMRS)``.

    :param long_qty: LONG size.
    :param long_mmr: its maintenance margin rate.
    :param short_qty: SHORT size.
    :param short_mmr: its maintenance margin rate.
    """
    slope = abs(long_qty) - abs(short_qty) - abs(long_qty) * long_mmr - abs(short_qty) * short_mmr
    return -1 if slope > 0.0 else 1


def funding_payment(qty_signed: float, mark: float, rate: float) -> float:
    """Cash a position receives at a funding time: ``−qty_signed × mark × rate``.

    Negative means the position pays. With a positive rate longs pay and shorts receive;
    with a negative rate the reverse. Binance charges it only on positions open at the
    funding time, on the position value at the mark price.

    :param qty_signed: position at the funding time, > 0 long, < 0 short.
    :param mark: mark price at the funding time.
    :param rate: the funding rate (a fraction per interval, 0.0001 = 0.01 %).
    """
    return -qty_signed * mark * rate


# --- brackets ---------------------------------------------------------------------------------


def bracket_arrays(symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(floors, mmrs, amounts)`` of ``symbol``'s :data:`BRACKETS`, as float64 arrays.

    A symbol not in the table gets one bracket: :data:`DEFAULT_MMR` and
    :data:`DEFAULT_MAINTENANCE_AMOUNT` from 0 upward.

    :param symbol: a unified symbol (``"BTC/USDT:USDT"``).
    """
    rows = BRACKETS.get(symbol, ((0.0, math.inf, DEFAULT_MMR, DEFAULT_MAINTENANCE_AMOUNT,
                                  math.nan),))
    table = np.array([row[:4] for row in rows], dtype=np.float64)
    return table[:, 0].copy(), table[:, 2].copy(), table[:, 3].copy()


def bracket_index(notional: float, floors: np.ndarray) -> int:
    """Index of the bracket holding ``|notional|``: the last floor ≤ it (0 below the first).

    :param notional: position value.
    :param floors: ascending bracket floors, the first 0.
    """
    value = abs(notional)
    index = 0
    for i in range(floors.shape[0]):
        if floors[i] <= value:
            index = i
        else:
            break
    return index


def liquidation_price_brackets(wallet_balance: float, qty_signed: float, entry: float,
                               floors: np.ndarray, mmrs: np.ndarray, amounts: np.ndarray,
                               other_mm: float = 0.0, other_upnl: float = 0.0) -> float:
    """:func:`liquidation_price` with the bracket of the notional *at* the liquidation price.

    Binance: "if your position (calculated at the liquidation price) and the current
    position (calculated at the opening price) are of different levels, then you must
    substitute the maintenance margin rate and amount of the position level to recalculate".
    Each bracket's LP is tried and the one whose notional ``|qty| × LP`` falls in it is
    returned; the maintenance margin is continuous across brackets, so exactly one fits.

    :param wallet_balance: cross wallet balance.
    :param qty_signed: position, > 0 long, < 0 short.
    :param entry: entry price.
    :param floors: bracket floors (from :func:`bracket_arrays`).
    :param mmrs: bracket maintenance margin rates.
    :param amounts: bracket maintenance amounts.
    :param other_mm: maintenance margin of the other positions (TMM1).
    :param other_upnl: unrealized PnL of the other positions (UPNL1).
    """
    if qty_signed == 0.0:
        return math.nan
    # liquidation_price() inlined: numba compiles a function only with the functions it calls
    # jitted too, and these stay plain so that the caller decides what to compile.
    side = 1.0 if qty_signed > 0.0 else -1.0
    position = abs(qty_signed)
    base = wallet_balance - other_mm + other_upnl - side * position * entry
    n = floors.shape[0]
    first = math.nan
    for i in range(n):
        mmr = mmrs[i]
        if not 0.0 <= mmr < 1.0:
            return math.nan
        lp = (base + amounts[i]) / (position * mmr - side * position)
        if lp < 0.0:
            lp = 0.0
        if i == 0:
            first = lp
        cap = floors[i + 1] if i + 1 < n else math.inf
        if floors[i] <= position * lp < cap:
            return lp
    # Unreachable for a table whose amounts follow Binance's rule; keep the first bracket's.
    return first
