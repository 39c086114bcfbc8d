"""The portfolio and perpetual examples, run offline on the shipped real data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import gridkit
from gridkit import ConfigError, DataError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_portfolio_shares_one_balance_across_three_lanes() -> None:
    s = gridkit.run(EXAMPLES / "portfolio.toml")
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    assert list(s["symbols"]) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    lanes = s["symbols"].values()
    assert all(lane["bars_accepted"] > 22_000 and lane["round_trips"] > 100 for lane in lanes)
    # One account: the cash and every position at its last price make the equity.
    equity = s["final_cash"] + sum(lane["position"] * lane["price"] for lane in lanes)
    assert math.isclose(equity, s["final_equity"], rel_tol=1e-12)
    assert s["buy_fills"] == sum(lane["buy_fills"] for lane in lanes)
    assert s["final_cash"] >= 0


def test_a_lane_alone_trades_as_its_own_one_symbol_pipeline(tmp_path: Path) -> None:
    """With cash to spare, a lane in a portfolio fills exactly as the symbol run alone."""
    text = (EXAMPLES / "portfolio.toml").read_text().replace("capital = 40000",
                                                              "capital = 10000000")
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    both = gridkit.run(tmp_path / "p.toml")
    alone = text.replace('symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]',
                         'symbols = ["ETH/USDT"]')
    alone = alone[:alone.index('[lanes."SOL/USDT"')] + alone[alone.index("[[risk]]"):]
    (tmp_path / "eth.toml").write_text(alone)
    eth = gridkit.run(tmp_path / "eth.toml")
    a, b = both["symbols"]["ETH/USDT"], eth["symbols"]["ETH/USDT"]
    for key in ("position", "buy_fills", "sell_fills", "round_trips", "grid_profit", "fees"):
        assert a[key] == b[key], key


def test_unknown_and_duplicate_symbols_and_stray_lanes_are_refused(tmp_path: Path) -> None:
    base = (EXAMPLES / "portfolio.toml").read_text()
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    bad = base.replace('symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]',
                       'symbols = ["BTC/USDT", "BTC/USDT", "ETH/USDT"]')
    (tmp_path / "a.toml").write_text(bad)
    with pytest.raises(ConfigError) as err:
        gridkit.run(tmp_path / "a.toml")
    assert "pipeline.symbols: 'BTC/USDT' is listed twice" in str(err.value)
    stray = base.replace('symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]',
                         'symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDC"]')
    (tmp_path / "b.toml").write_text(stray)
    with pytest.raises(ConfigError) as err:
        gridkit.run(tmp_path / "b.toml")
    assert "lanes.\"SOL/USDT\": 'SOL/USDT' is not one of the pipeline's symbols (did you " \
           "mean 'SOL/USDC'?)" in str(err.value)
    assert "SOL/USDC" in str(err.value)  # and SOL/USDC itself is not in markets.json


def test_markets_that_contradict_the_data_are_refused(tmp_path: Path) -> None:
    text = (EXAMPLES / "portfolio.toml").read_text()
    text = text[:text.index("# markets.json is")] + text[text.index('[lanes."SOL/USDT".source]'):]
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    with pytest.raises(DataError, match=r"SOL/USDT: the close 42\.698 at 2021-05-01 00:00 is "
                                        r"off the tick 0\.01 of data/markets\.json"):
        gridkit.run(tmp_path / "p.toml")


def test_perpetual_neutral_grid_pays_real_funding() -> None:
    s = gridkit.run(EXAMPLES / "perpetual.toml")
    assert s["status"] == "finished" and s["unreconciled_orders"] == []
    lane = s["symbols"]["XRP/USDT:USDT"]
    assert lane["kind"] == "linear"
    assert s["sell_fills"] > 0 and s["buy_fills"] > 0
    # 12 funding times pass in the window; the funding booked is what the account paid.
    assert lane["funding"] == -s["funding_paid"] != 0.0
    # Perpetual equity: the wallet plus the unrealized profit of the position.
    unrealized = lane["position"] * (lane["price"] - lane["avg_price"])
    assert math.isclose(s["final_cash"] + unrealized, s["final_equity"], rel_tol=1e-12)
    # Wallet = capital + realized (net of fees) + funding.
    assert math.isclose(s["final_cash"], s["capital"] + s["realized_profit"] - s["funding_paid"],
                        rel_tol=1e-12)


def test_funding_that_does_not_cover_the_run_is_refused(tmp_path: Path) -> None:
    text = (EXAMPLES / "perpetual.toml").read_text().replace(
        'start = "2021-11-17T16:00"', 'start = "2021-11-15T00:00"')
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    with pytest.raises(DataError, match=r"funding data .* starts at 2021-11-18 00:00, after the "
                                        r"run's first event at 2021-11-15 00:00"):
        gridkit.run(tmp_path / "p.toml")


def test_a_neutral_grid_on_spot_is_refused(tmp_path: Path) -> None:
    text = (EXAMPLES / "perpetual.toml").read_text()
    text = text[:text.index("[market]")] + text[text.index("[source]"):]
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    with pytest.raises(ConfigError, match="a neutral grid sells short"):
        gridkit.run(tmp_path / "p.toml")


def test_a_symbol_missing_from_the_markets_file_is_refused(tmp_path: Path) -> None:
    text = (EXAMPLES / "portfolio.toml").read_text().replace('"SOL/USDT"]', '"SOL/BUSD"]')
    text = text.replace('[lanes."SOL/USDT"', '[lanes."SOL/BUSD"')
    text = text.replace('[lanes."SOL/BUSD".market]\nmarkets = ""\n', "")
    (tmp_path / "p.toml").write_text(text)
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    with pytest.raises(ConfigError) as err:
        gridkit.run(tmp_path / "p.toml")
    assert ('lanes."SOL/BUSD".market.markets: symbol \'SOL/BUSD\' is not in data/markets.json; '
            "did you mean SOL/USDT?") in str(err.value)


def test_funding_that_ends_before_the_run_does_is_refused(tmp_path: Path) -> None:
    import pyarrow.feather as feather

    table = feather.read_table(EXAMPLES / "data" / "XRP_USDT_USDT-8h-funding_rate.feather")
    feather.write_feather(table.slice(0, 6), tmp_path / "short.feather")  # 2 days only
    text = (EXAMPLES / "perpetual.toml").read_text().replace(
        '"data/XRP_USDT_USDT-8h-funding_rate.feather"', '"short.feather"')
    for name in ("markets.json", "XRP_USDT_USDT-5m-futures.feather",
                 "XRP_USDT_USDT-8h-mark.feather"):
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / name).symlink_to(EXAMPLES / "data" / name)
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(DataError, match=r"funding data short\.feather ends at 2021-11-19 16:00, "
                                        r"but the run reaches"):
        gridkit.run(tmp_path / "p.toml")
