"""The exchange-rules risk check: orders fit Binance's filters before they are sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import gridkit
from gridkit import Reject
from gridkit.testing import build, context, registry
from gridkit.trading.markets import get_market, load_markets, price_on_tick, qty_on_lot

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MARKETS = load_markets(EXAMPLES / "data" / "markets.json")
BTC = get_market(MARKETS, "BTC/USDT")  # real exchangeInfo: tick 0.01, lot 0.00001, min 10


def rules(**options: object) -> gridkit.RiskCheck:
    return build(registry().get("risk", "exchange-rules").cls, options)


def ctx_with_rules() -> gridkit.Context:
    ctx = context(symbol="BTC/USDT", capital=100_000.0)
    ctx.market = BTC
    return ctx


def test_prices_move_onto_the_tick_on_the_safe_side_and_qty_onto_the_lot() -> None:
    check, ctx = rules(), ctx_with_rules()
    buy = check.check(ctx.order("buy", 0.0012345, 50_000.005), ctx)
    sell = check.check(ctx.order("sell", 0.0012345, 50_000.005), ctx)
    assert not isinstance(buy, Reject) and not isinstance(sell, Reject)
    assert (buy.price, sell.price) == (50_000.0, 50_000.01)  # never pays more, sells for less
    assert buy.qty == sell.qty == 0.00123
    assert check.stats()["rounded"] == 2


def test_what_still_breaks_a_filter_is_refused_in_the_exchanges_words() -> None:
    check, ctx = rules(), ctx_with_rules()
    small = check.check(ctx.order("buy", 0.0001, 50_000.0), ctx)  # 5 USDT < 10
    assert small == Reject("Filter failure: MIN_NOTIONAL")
    strict = rules(round=False)
    assert strict.check(ctx.order("buy", 0.001, 50_000.005), ctx) == Reject(
        "Filter failure: PRICE_FILTER")
    assert strict.check(ctx.order("buy", 0.0012345, 50_000.0), ctx) == Reject(
        "Filter failure: LOT_SIZE")


def test_without_market_rules_orders_pass_and_are_counted() -> None:
    check = rules()
    ctx = context(symbol="BTC/USDT")
    order = ctx.order("buy", 0.0012345, 50_000.005)
    assert check.check(order, ctx) is order
    assert check.stats()["without_rules"] == 1


def test_a_portfolio_with_rules_fills_only_on_the_tick_and_lot(tmp_path: Path) -> None:
    text = (EXAMPLES / "portfolio.toml").read_text().replace(
        '[[risk]]\nuse = "drawdown"', '[[risk]]\nuse = "exchange-rules"\n\n[[risk]]\n'
                                      'use = "drawdown"')
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    s = gridkit.run(tmp_path / "p.toml", db=str(tmp_path / "r.db"))
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    stats = s["components"]["risk[0]"]
    assert stats["rounded"] > 100  # the geometric grid's lines are off the tick
    assert stats["without_rules"] > 0  # the SOL lane has none (its override)
    with sqlite3.connect(tmp_path / "r.db") as conn:
        rows = conn.execute("SELECT symbol, price, qty, liquidity FROM fills").fetchall()
    checked = 0
    for symbol, price, qty, liquidity in rows:
        if symbol in ("BTC/USDT", "ETH/USDT") and liquidity == "maker":
            m = get_market(MARKETS, symbol)
            assert price_on_tick(price, m) and qty_on_lot(qty, m), (symbol, price, qty)
            checked += 1
    assert checked > 200
