"""The portfolio statistics checks — correlation, var, safe-size — against their contract, on
real Binance bars, and in the four-coin example."""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import pytest

import gridkit
from gridkit import Bar, ConfigError, Order, Reject
from gridkit.core.config import OptionError
from gridkit.plugins.risk.stats import Correlation, SafeSize, Var
from gridkit.testing import RiskCheckContract, advance, build
from gridkit.trading.markets import load_markets
from test_riskbook import EXAMPLES, feed, hold, load_bars, portfolio

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


class TestCorrelationContract(RiskCheckContract):
    component_class = Correlation
    options = {"limit": 0.8, "window": 20, "every": 5}


class TestVarContract(RiskCheckContract):
    component_class = Var
    options = {"limit": 0.05, "window": 20, "every": 5}


class TestSafeSizeContract(RiskCheckContract):
    component_class = SafeSize
    options = {"window": 20, "every": 5}


@pytest.fixture(scope="module")
def may() -> dict[str, list[Bar]]:
    """Binance 5m bars of May 2021 shipped with the examples, the first 1,200 of each (same
    timestamps). Over the day before bar 1,152, BTC and ETH move together (correlation 0.87),
    SOL less (0.65 with BTC)."""
    bars = {s: load_bars(EXAMPLES / "data" / f"{s.replace('/', '_')}-5m.json.gz", 1200)
            for s in SYMBOLS}
    assert len({tuple(b.ts for b in v) for v in bars.values()}) == 1
    return bars


def warmed(check: object, may: dict, upto: int = 1153) -> dict:
    ctxs = portfolio(SYMBOLS, capital=100_000.0)
    feed(ctxs, may, check, upto)
    return ctxs


# --- correlation ----------------------------------------------------------------------------------


def test_correlation_refuses_adding_to_a_coin_that_moves_with_a_held_one(may: dict) -> None:
    check = build(Correlation, {"limit": 0.8, "window": 288, "every": 12})
    ctxs = warmed(check, may)
    book = check.book
    assert book is not None
    btc_eth = book.correlation("BTC/USDT", "ETH/USDT")
    eth_sol = book.correlation("ETH/USDT", "SOL/USDT")
    assert btc_eth > 0.8 > eth_sol  # the real data's correlations, over the window
    eth, btc, sol = ctxs["ETH/USDT"], ctxs["BTC/USDT"], ctxs["SOL/USDT"]
    order = btc.order("buy", 0.01, btc.bar.close)
    assert check.check(order, btc) is order  # nothing held yet
    hold(eth, 2.0)  # about 5,400 USDT of ETH, 5% of equity
    refused = check.check(btc.order("buy", 0.01, btc.bar.close), btc)
    assert isinstance(refused, Reject)
    assert refused.reason == "BTC/USDT correlates with ETH/USDT above the limit 0.8"
    assert isinstance(check.check(sol.order("buy", 1.0, sol.bar.close), sol), Order)
    assert isinstance(check.check(btc.order("sell", 0.01, btc.bar.close), btc), Order)
    loose = build(Correlation, {"limit": round(btc_eth + 0.01, 2), "window": 288, "every": 12})
    loose.book = book
    assert isinstance(loose.check(btc.order("buy", 0.01, btc.bar.close), btc), Order)
    assert check.stats()["refused"] == 1
    assert check.stats()["max_refused"] == pytest.approx(btc_eth)


def test_weighted_correlation_lets_a_small_correlated_position_weigh_little(may: dict) -> None:
    strict = build(Correlation, {"limit": 0.7, "mode": "max", "window": 288, "every": 12})
    ctxs = warmed(strict, may)
    book = strict.book
    weighted = build(Correlation, {"limit": 0.7, "mode": "weighted", "window": 288,
                                   "every": 12})
    weighted.book = book
    btc = ctxs["BTC/USDT"]
    hold(ctxs["ETH/USDT"], 1.0)  # ~2,700 USDT, correlated
    hold(ctxs["SOL/USDT"], 900.0)  # ~38,000 USDT, far less correlated with BTC
    rho_eth = book.correlation("BTC/USDT", "ETH/USDT")
    rho_sol = book.correlation("BTC/USDT", "SOL/USDT")
    assert rho_eth > 0.7 > rho_sol
    order = btc.order("buy", 0.01, btc.bar.close)
    assert isinstance(strict.check(order, btc), Reject)
    e_eth = ctxs["ETH/USDT"].position.qty * ctxs["ETH/USDT"].bar.close
    e_sol = 900.0 * ctxs["SOL/USDT"].bar.close
    mean = (e_eth * rho_eth + e_sol * rho_sol) / (e_eth + e_sol)
    assert mean < 0.7
    assert weighted.check(order, btc) is order
    # Dust does not count as a held position.
    dusty = build(Correlation, {"limit": 0.7, "min_position": 0.05, "window": 288,
                                "every": 12})
    dusty.book = book
    ctxs2 = portfolio(SYMBOLS, capital=100_000.0)
    for s, c in ctxs2.items():
        advance(c, may[s][1152])
    hold(ctxs2["ETH/USDT"], 1.0)  # 2.7% of equity: below 5%
    assert dusty.check(ctxs2["BTC/USDT"].order("buy", 0.01, 1.0), ctxs2["BTC/USDT"]).qty == 0.01


def test_correlation_of_one_symbol_is_refused_when_the_pipeline_is_built(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    (tmp_path / "one.toml").write_text(
        '[pipeline]\nsymbol = "BTC/USDT"\ncapital = 1000\n[source]\nuse = "freqtrade-json"\n'
        'path = "data/BTC_USDT-5m.json.gz"\n[strategy]\nuse = "static"\nlower = 30000\n'
        'upper = 60000\ngrids = 10\nqty = 0.001\n[[risk]]\nuse = "correlation"\n'
        '[executor]\nuse = "simulated"\n')
    with pytest.raises(ConfigError) as err:
        gridkit.run(tmp_path / "one.toml")
    assert ("risk[0]: correlation needs at least two symbols ([pipeline] symbols); this "
            "pipeline trades only BTC/USDT") in str(err.value)


def test_bad_options_give_one_clear_line() -> None:
    with pytest.raises(OptionError, match="50 bars is longer than the window of 20 bars") as e:
        Var.Config(limit=0.05, horizon=50, window=20)
    assert e.value.option == "horizon"
    with pytest.raises(OptionError, match="2 is above max_multiplier 1"):
        SafeSize.Config(min_multiplier=2.0, max_multiplier=1.0)
    with pytest.raises(OptionError, match="the multiplier of 'VOLATILE' must be a positive"):
        SafeSize.Config(regimes={"VOLATILE": -1.0})
    with pytest.raises(ValueError):
        Correlation.Config(limit=1.5)


# --- var ----------------------------------------------------------------------------------------


def test_var_refuses_what_would_push_var_above_the_limit(may: dict) -> None:
    check = build(Var, {"limit": 0.004, "method": "historical", "confidence": 0.99,
                        "horizon": 12, "window": 288, "every": 12})
    ctxs = warmed(check, may, upto=10)
    btc = ctxs["BTC/USDT"]
    big = btc.order("buy", 1.0, btc.bar.close)  # ~57,000 USDT: half of equity
    assert check.check(big, btc) is big  # the window has not filled: unvetted
    assert check.stats()["unvetted"] == 1
    feed(ctxs, may, check, 1153, start=10)
    book = check.book
    assert book is not None and book.ready
    est = book.var_estimate(check.spec, "BTC/USDT", big.qty * big.price)
    assert est / btc.account.equity > 0.004
    refused = check.check(btc.order("buy", 1.0, btc.bar.close), btc)
    assert isinstance(refused, Reject)
    assert refused.reason == "historical VaR (0.99, 12 bars) would exceed 0.40% of equity"
    small = btc.order("buy", 0.01, btc.bar.close)
    assert book.var_estimate(check.spec, "BTC/USDT", small.qty * small.price) \
        / btc.account.equity < 0.004
    assert check.check(small, btc) is small
    # Open buys count (all of them may fill): many small ones add up to the big one.
    btc.ledger.request(btc.order("buy", 0.99, btc.bar.close * 0.9), btc.bar.ts)
    assert isinstance(check.check(btc.order("buy", 0.01, btc.bar.close), btc), Reject)
    # Sells reduce exposure on spot: never refused.
    assert isinstance(check.check(btc.order("sell", 5.0, btc.bar.close), btc), Order)
    assert check.stats()["refused_by_symbol"] == {"BTC/USDT": 2}


@pytest.mark.parametrize("cls", [Var, Correlation])
def test_until_ready_refuse_holds_orders_that_add_risk_until_the_window_fills(
        may: dict, cls: type) -> None:
    """A paper or live run starts with an empty book: with until_ready = refuse, nothing
    that adds risk goes out unvetted; sells still pass; once the book is ready it vets."""
    options = {"window": 288, "every": 12, "until_ready": "refuse"}
    check = build(cls, {**options, "limit": 0.05 if cls is Var else 0.8})
    ctxs = warmed(check, may, upto=10)
    btc = ctxs["BTC/USDT"]
    early = check.check(btc.order("buy", 0.01, btc.bar.close), btc)
    assert isinstance(early, Reject)
    assert early.reason == (f"no {check.name} figure yet (9 of 288 bars of returns); "
                            f"until_ready = refuse")
    assert isinstance(check.check(btc.order("sell", 0.01, btc.bar.close), btc), Order)
    feed(ctxs, may, check, 1153, start=10)
    small = btc.order("buy", 0.01, btc.bar.close)
    assert check.check(small, btc) is small
    assert check.stats()["unvetted"] == 1 and check.stats()["refused"] == 1


@pytest.mark.parametrize("method", ["historical", "parametric", "cornish-fisher"])
def test_each_method_vets_orders(may: dict, method: str) -> None:
    check = build(Var, {"limit": 0.003, "method": method, "window": 288, "every": 12})
    ctxs = warmed(check, may)
    sol = ctxs["SOL/USDT"]  # 2,000 SOL: about 80% of equity, so a one-bar VaR near 0.6%
    assert isinstance(check.check(sol.order("buy", 2000.0, sol.bar.close), sol), Reject)
    assert isinstance(check.check(sol.order("buy", 1.0, sol.bar.close), sol), Order)


# --- safe-size ----------------------------------------------------------------------------------


def test_safe_size_multiplies_bounded_factors_and_keeps_the_order_id(may: dict) -> None:
    check = build(SafeSize, {"window": 288, "every": 12, "max_fraction": None})
    ctxs = warmed(check, may)
    eth, btc = ctxs["ETH/USDT"], ctxs["BTC/USDT"]
    hold(btc, 0.5)
    eth.regime = "VOLATILE"
    order = eth.order("buy", 1.0, eth.bar.close)
    m = check.multipliers(order, eth)
    book = check.book
    assert book is not None
    i = book.index["ETH/USDT"]
    assert m["volatility"] == pytest.approx(min(2.0, max(0.25, book.vol_mean[i] / book.vol[i])))
    rho = book.correlation("ETH/USDT", "BTC/USDT")
    assert m["correlation"] == pytest.approx(1 / math.sqrt(1 + rho))
    assert m["regime"] == 0.5 and m["drawdown"] == 1.0 and "attention" not in m
    out = check.check(order, eth)
    assert isinstance(out, Order) and out.id == order.id
    assert out == attrs.evolve(order, qty=pytest.approx(math.prod(m.values())))
    # Attention's risk adjustment, when it publishes one; bounded.
    eth.adjust["VOLATILE:risk"] = 10.0
    assert check.multipliers(order, eth)["attention"] == 2.0
    # A drawdown halfway to max_drawdown halves the size; all the way, the lower bound.
    acct = eth.account
    acct.peak = acct.equity / (1 - 0.025)
    assert check.multipliers(order, eth)["drawdown"] == pytest.approx(0.5)
    acct.peak = acct.equity * 2
    assert check.multipliers(order, eth)["drawdown"] == 0.25
    # Sells on spot reduce exposure: unchanged.
    sell = eth.order("sell", 1.0, eth.bar.close)
    assert check.check(sell, eth) is sell


def test_safe_size_caps_the_position_and_rounds_to_the_lot(may: dict) -> None:
    check = build(SafeSize, {"window": 288, "every": 12, "max_fraction": 0.2,
                             "regimes": {}})
    ctxs = warmed(check, may)
    btc = ctxs["BTC/USDT"]
    btc.market = load_markets(EXAMPLES / "data" / "markets.json")["BTC/USDT"]
    price = btc.bar.close
    order = btc.order("buy", 10.0, price)  # far above 20% of 100,000
    out = check.check(order, btc)
    assert isinstance(out, Order) and out.id == order.id
    assert out.qty * price <= 0.2 * btc.account.equity + 1e-6
    assert out.qty == pytest.approx(round(out.qty, 5)) and out.qty > 0.3  # lot 0.00001
    hold(btc, 0.2 * btc.account.equity / price)
    refused = check.check(btc.order("buy", 0.01, price), btc)
    assert isinstance(refused, Reject)
    assert refused.reason == "position at max_fraction 0.2 of equity"
    tiny = check.check(ctxs["ETH/USDT"].order("buy", 1e-9, price), ctxs["ETH/USDT"])
    assert isinstance(tiny, Order)  # no market rules for ETH here: nothing to round to
    ctxs["ETH/USDT"].market = load_markets(EXAMPLES / "data" / "markets.json")["ETH/USDT"]
    tiny = check.check(ctxs["ETH/USDT"].order("buy", 1e-9, price), ctxs["ETH/USDT"])
    assert isinstance(tiny, Reject) and "below ETH/USDT's lot" in tiny.reason


# --- the example ----------------------------------------------------------------------------------


def test_the_four_coin_example_refuses_and_says_why(tmp_path: Path) -> None:
    """The example, as the README runs it: every check in it refuses something, and says why."""
    text = (EXAMPLES / "portfolio-risk.toml").read_text()
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    (tmp_path / "p.toml").write_text(text)
    s = gridkit.run(tmp_path / "p.toml")
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert list(s["symbols"]) == ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"]
    assert all(lane["bars_accepted"] >= 5719 for lane in s["symbols"].values())
    by = s["rejected_by"]
    corr = {k: v for k, v in by.items() if k.startswith("correlation: ")}
    var = {k: v for k, v in by.items() if k.startswith("var: ")}
    assert "correlation: BTC/USDT correlates with ETH/USDT above the limit 0.8" in corr
    assert var == {"var: historical VaR (0.99, 12 bars) would exceed 3.00% of equity":
                   sum(var.values())} and sum(var.values()) > 0
    comps = s["components"]
    c = next(v for k, v in comps.items() if k.startswith("risk[") and "max_refused" in v)
    assert c["refused"] == sum(corr.values()) and c["max_refused"] > 0.8
    risk = s["risk"]
    assert risk["ready"] and risk["window"] == 288 and risk["every"] == 12
    assert risk["correlation"]["BTC/USDT|ETH/USDT"] > 0.8
    assert 0 < risk["var"]["historical@0.99x12"]["max_fraction"] <= 0.05
    assert risk["worst_daily_pnl"] < 0
    for check in ("concentration", "daily-loss"):
        assert any(k.startswith(f"{check}: ") for k in by), check
