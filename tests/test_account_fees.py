"""Spot fees paid in the base asset (Binance's default on buys) and in a third asset (BNB):
the account must hold what the exchange holds, checked on a real account's fills."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridkit.core.types import Fill
from gridkit.runtime.account import Account, Position


def _bbgo_fills(data_dir: Path) -> list[dict]:
    path = data_dir / "api_fixtures" / "bbgo" / "btcusdt-trades.json"
    raw = path.read_bytes() if path.exists() else gzip.decompress(
        path.with_suffix(".json.gz").read_bytes())
    return json.loads(raw)


def test_real_account_fills_leave_the_exchange_balances(data_dir: Path) -> None:
    """3,432 real Binance BTCUSDT fills with fees in BTC, USDT and BNB: the account's BTC and
    USDT move exactly as an exchange wallet does (base fee off the base bought, quote fee off
    the quote received, BNB fees kept apart)."""
    fills = _bbgo_fills(data_dir)
    acct = Account(1_000_000.0, "USDT")
    pos = acct.add(Position("BTC/USDT"))
    btc, usdt, bnb = 0.0, 1_000_000.0, 0.0
    for i, t in enumerate(fills):
        side = "buy" if t["isBuyer"] else "sell"
        qty, price, fee, cur = t["quantity"], t["price"], t["fee"], t["feeCurrency"]
        if side == "sell" and qty + (fee if cur == "BTC" else 0.0) > btc:
            continue  # the file starts mid-history: skip sells of BTC bought before it
        acct.apply(Fill(str(i), i, side, qty, price, fee, fee_currency=cur), "BTC/USDT")
        if side == "buy":
            btc += qty - (fee if cur == "BTC" else 0.0)
            usdt -= qty * price
        else:
            btc -= qty + (fee if cur == "BTC" else 0.0)
            usdt += qty * price - (fee if cur == "USDT" else 0.0)
        bnb += fee if cur == "BNB" else 0.0
    assert pos.qty == pytest.approx(btc, abs=1e-9)
    assert acct.cash == pytest.approx(usdt, rel=1e-12)
    assert acct.other_fees["BNB"] == pytest.approx(bnb)
    assert acct.fees > 0


@given(qty=st.floats(0.001, 5), price=st.floats(100, 100_000), rate=st.floats(0, 0.002),
       sell_share=st.floats(0.01, 1))
def test_base_fee_round_trip_keeps_equity_identity(qty: float, price: float, rate: float,
                                                   sell_share: float) -> None:
    """Buy with the fee in base, sell part with the fee in quote: holdings equal the wallet's
    and equity - capital == realized + unrealized, whatever the sizes."""
    acct = Account(10_000_000.0, "USDT")
    pos = acct.add(Position("BTC/USDT"))
    fee = qty * rate
    acct.apply(Fill("1", 0, "buy", qty, price, fee, fee_currency="BTC"), "BTC/USDT")
    held = qty - fee
    assert pos.qty == pytest.approx(held)
    assert acct.cash == pytest.approx(10_000_000.0 - qty * price)
    sold = held * sell_share
    acct.apply(Fill("2", 1, "sell", sold, price * 1.01, sold * price * 1.01 * rate),
               "BTC/USDT")
    assert pos.qty == pytest.approx(held - sold, abs=1e-12)
    acct.mark(pos, price)
    unrealized = (price - pos.avg_price) * pos.qty
    assert acct.equity - acct.capital == pytest.approx(acct.realized + unrealized,
                                                       abs=1e-6 * qty * price)


def test_a_spot_short_bought_back_to_flat_starts_a_fresh_basis() -> None:
    # Only check_balance = false lets a spot position go short (the hypothesis test of the
    # fused kernels found it): the buy that flattens it must not divide by zero.
    acct = Account(1000.0, "USDT")
    acct.apply(Fill("s", 1, "sell", 0.03125, 50_000.0, 1.5), "BTC/USDT")
    pos = acct.apply(Fill("b", 2, "buy", 0.03125, 49_000.0, 1.5), "BTC/USDT")
    assert pos.qty == 0.0 and pos.avg_price == 0.0
    assert acct.cash == 1000.0 + 0.03125 * 50_000.0 - 1.5 - (0.03125 * 49_000.0 + 1.5)
