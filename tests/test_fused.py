"""Fused backtests (issue 11): the same fills as the plugin path, to the last bit.

Each test runs one pipeline twice — the event loop (``fuse = "off"``, fills read back from its
SQLite store) and the fused kernels (``fuse = "on"``) — and compares every fill's bar, side,
price, quantity and fee, the final cash, base and equity, and the rest of the summary.
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridkit import ConfigError
from gridkit.fused.plan import why_not
from gridkit.fused.run import bar_arrays, run_fused
from gridkit.runtime import engine
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data
from helpers import expect

#: Summary figures that must agree between the two paths.
SAME = ("bars_seen", "bars_accepted", "bars_dropped", "dropped_by", "first_ts", "last_ts",
        "orders_placed", "orders_rejected", "rejected_by", "open_orders", "orders_cancelled",
        "buy_fills", "sell_fills", "fees_paid", "final_cash", "final_base", "final_price",
        "final_equity", "realized_profit", "return_pct", "max_drawdown", "halted", "grid",
        "sharpe", "sortino", "profit_factor")


def pipeline(source: dict[str, Any], lower: float, upper: float, grids: int, qty: float, *,
             capital: float = 10_000.0, mode: str = "arithmetic", use: str = "static",
             maker: float = 0.001, taker: float = 0.001, check_balance: bool = True,
             features: tuple[str, ...] = ("rsi",), end: str = "",
             risk: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    strategy: dict[str, Any] = {"use": use, "qty": qty}
    if use in ("static", "fibonacci") and lower > 0:
        strategy.update(lower=lower, upper=upper)
    if use == "static":
        strategy.update(grids=grids, mode=mode)
    return {
        "pipeline": {"name": "fused", "mode": "backtest", "symbol": "BTC/USDT",
                     "capital": capital, "end": end},
        "source": source,
        "features": [{"use": f} for f in features],
        "strategy": strategy,
        "executor": {"use": "simulated", "maker_fee": maker, "taker_fee": taker,
                     "check_balance": check_balance},
        "risk": list(risk),
    }


def plugin_run(data: dict[str, Any], db: Path) -> tuple[dict[str, Any], list[tuple]]:
    """The event loop's summary and fills (ts, side, price, qty, fee) from its store."""
    d = copy.deepcopy(data)
    d["pipeline"]["fuse"] = "off"
    d["store"] = {"use": "sqlite", "path": str(db)}
    summary = run_pipeline(build_pipeline(pipeline_from_data(d, "<test>", db.parent)))
    assert summary["backtest_path"] == {"fused": False, "why": '[pipeline] fuse = "off"'}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ts, side, price, qty, fee FROM fills WHERE run_id = ? "
                            "ORDER BY rowid", (summary["run_id"],)).fetchall()
    return summary, rows


def fused_run(data: dict[str, Any], base: Path) -> tuple[dict[str, Any], list[tuple]]:
    """The fused path's summary (through ``gridkit run``'s engine) and fills (through the same
    kernels, read directly)."""
    d = copy.deepcopy(data)
    d["pipeline"]["fuse"] = "on"
    summary = run_pipeline(build_pipeline(pipeline_from_data(d, "<test>", base)))
    assert summary["backtest_path"] == {"fused": True, "why": ""}
    built = build_pipeline(pipeline_from_data(d, "<test>", base))
    run = engine._new_run(built)
    for component in built.components():
        component.setup(built.run)
    out = run_fused(run)
    assert out is not None
    ts = bar_arrays(built.lanes[0].source, d["pipeline"].get("start", ""),
                    d["pipeline"].get("end", "")).ts
    rows = [(int(ts[int(b)]), "buy" if buy else "sell", price, qty, fee)
            for b, buy, price, qty, fee, _cell in out.tolist()]
    return summary, rows


def assert_same(data: dict[str, Any], tmp: Path) -> tuple[dict[str, Any], list[tuple]]:
    plugin, plugin_fills = plugin_run(data, tmp / "plugin.db")
    fused, fused_fills = fused_run(data, tmp)
    assert fused_fills == plugin_fills
    for key in SAME:
        assert _same(fused[key], plugin[key]), (key, fused[key], plugin[key])
    assert _same(fused["components"]["strategy"], plugin["components"]["strategy"])
    assert fused["components"]["executor"] == plugin["components"]["executor"]
    for k in range(len(data.get("risk", []))):
        assert fused["components"].get(f"risk[{k}]") == plugin["components"].get(f"risk[{k}]")
    sym = data["pipeline"]["symbol"]
    assert _same(fused["symbols"][sym], plugin["symbols"][sym])
    return plugin, plugin_fills


def _same(a: Any, b: Any) -> bool:
    """Equal to the last bit (NaN equal to NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --- every real OHLCV file ---------------------------------------------------------------------

#: Every OHLCV file of shared/data (the funding-rate file holds rates, not prices), with its
#: source table.
OHLCV = {
    **{f"ohlcv/tooyipjee-freqtrade/{n}": {"use": "freqtrade-json"}
       for n in ("BTC_USDT-1m.json", "ETH_USDT-1m.json", "DOGE_USDT-1m.json",
                 "BTC_USDT-5m.json", "ETH_USDT-5m.json")},
    **{f"ohlcv/nostalgiaforinfinity/{n}": {"use": "freqtrade-json"}
       for n in ("BTC_USDT-5m.json", "ETH_USDT-5m.json", "SOL_USDT-5m.json")},
    "ohlcv/freqtrade/orderflow/candles.json": {"use": "freqtrade-json"},
    "ohlcv/nautilus_trader/btc-perp-20211231-20220201_1m.csv": {"use": "csv"},
    **{f"ohlcv/freqtrade/futures/XRP_USDT_USDT-{n}.feather": {"use": "parquet"}
       for n in ("5m-futures", "1h-futures", "1h-mark", "8h-mark")},
    **{f"ohlcv/a-share/qbot/{n}": {"use": "csv", "columns": {"ts": "trade_date"}}
       for n in ("600519.csv", "000001.SZ.csv", "000953.SZ.csv")},
    **{f"ohlcv/a-share/volatility-regime-momentum/{n}": {"use": "csv"}
       for n in ("300033.csv", "688981.csv")},
}


@pytest.mark.parametrize("rel", sorted(OHLCV))
def test_every_real_ohlcv_file_fills_the_same(rel: str, data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / rel
    if not path.is_file():
        pytest.skip(f"no {rel} in the data in use")
    source = {**OHLCV[rel], "path": str(path)}
    built = build_pipeline(pipeline_from_data(pipeline(source, 1.0, 2.0, 10, 1.0), "<t>",
                                              tmp_path))
    built.lanes[0].source.setup(built.run)
    closes = np.array([b.close for b in built.lanes[0].source.events()], dtype=float)
    closes = closes[np.isfinite(closes) & (closes > 0)]
    lo, hi = np.percentile(closes, [10, 90])
    # Cells sized so that the cash runs out before the bottom of the range: the refusals and
    # the parked cells' retries are compared too.
    qty = 10_000.0 / (20 * float(np.median(closes))) * 1.3
    data = pipeline(source, float(lo), float(hi), 20, qty, features=("rsi", "atr", "ema"))
    if rel.endswith("-mark.feather"):  # mark prices have no volume (NaN): nothing to check
        data["validators"] = [{"use": "timestamp"}, {"use": "price"}, {"use": "ohlc"}]
    _, fills = assert_same(data, tmp_path)
    # (A slice of tests/data may be too short for the grid to trade: then it is the
    # validators' and the marks' agreement that is checked.)
    assert len(fills) > expect(10, -1), "the grid trades on this file"
    # The grid that lays itself from the ATR, again as the close and the ATR move.
    data["strategy"] = {"use": "volatility-adjusted", "levels": 6, "qty": qty / 2, "k": 2.5,
                        "cooldown": 10, "threshold": 0.2}
    assert_same(data, tmp_path / "volatility")


def test_refusals_and_parked_cells_are_exercised(data_dir: Path, tmp_path: Path) -> None:
    source = {"use": "freqtrade-json",
              "path": str(data_dir / "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json")}
    data = pipeline(source, 40000, 60000, 40, 0.02, end="2021-05-10T00:00:00Z")
    plugin, _ = assert_same(data, tmp_path)
    assert plugin["rejected_by"].get("simulated: insufficient cash", 0) > 0


def test_a_symmetric_grid_recentres_alike(data_dir: Path, tmp_path: Path) -> None:
    source = {"use": "freqtrade-json",
              "path": str(data_dir / "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json")}
    for k, (mode, risk) in enumerate((("arithmetic", ()), ("geometric", (
            {"use": "position-size", "max_fraction": 0.6},
            {"use": "drawdown", "limit": 0.12})))):
        data = pipeline(source, 0, 0, 0, 0.01, risk=risk)
        data["strategy"] = {"use": "symmetric", "levels": 6, "spacing": 0.004, "qty": 0.01,
                            "mode": mode, "cooldown": 20}
        plugin, _ = assert_same(data, tmp_path / str(k))
        assert plugin["components"]["strategy"]["recentres"] > 5
        assert plugin["orders_cancelled"] > 0


@pytest.mark.parametrize(("measure", "mode", "risk"), [
    ("atr", "arithmetic", ()),
    ("sigma", "geometric", ({"use": "position-size", "max_fraction": 0.6},
                            {"use": "drawdown", "limit": 0.12}))])
def test_a_volatility_adjusted_grid_lays_itself_alike(
        measure: str, mode: str, risk: tuple[dict[str, Any], ...], data_dir: Path,
        tmp_path: Path) -> None:
    source = {"use": "freqtrade-json",
              "path": str(data_dir / "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json")}
    data = pipeline(source, 0, 0, 0, 0.01, risk=risk, features=("rsi", "atr", "volatility"))
    # Laid once the feature is warm (not at the first bar), then again as the close leaves
    # the grid or the volatility moves past the threshold.
    data["strategy"] = {"use": "volatility-adjusted", "levels": 5, "qty": 0.01,
                        "measure": measure, "k": 3.0, "mode": mode, "cooldown": 15,
                        "threshold": 0.3, "min_spacing": 0.001, "max_spacing": 0.02}
    plugin, fills = assert_same(data, tmp_path)
    stats = plugin["components"]["strategy"]
    assert stats["relays"] > 5 and plugin["orders_cancelled"] > 0
    assert fills[0][0] > plugin["first_ts"], "not laid before the feature is warm"


def test_the_example_risk_checks_refuse_and_halt_alike(data_dir: Path, tmp_path: Path) -> None:
    source = {"use": "freqtrade-json",
              "path": str(data_dir / "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json")}
    risk = ({"use": "position-size", "max_fraction": 0.5}, {"use": "drawdown", "limit": 0.08})
    data = pipeline(source, 40000, 60000, 40, 0.01, capital=20_000, risk=risk)
    plugin, _ = assert_same(data, tmp_path / "a")
    assert plugin["rejected_by"]["position-size: position above max_fraction 0.5 of equity"]
    assert plugin["halted"].startswith("drawdown ") and plugin["orders_cancelled"] > 0
    capped = pipeline(source, 40000, 60000, 40, 0.01,
                      risk=({"use": "position-size", "max_base": 0.1},))
    plugin, _ = assert_same(capped, tmp_path / "b")
    assert plugin["rejected_by"]["position-size: position above max_base 0.1"]


# --- random grids, hostile data ----------------------------------------------------------------

#: 3,000 real 1m bars (2021-04-20 .. 04-22), shared by the examples of the property test.
_SLICE: list[list[Any]] = []


def _real_rows(data_dir: Path) -> list[list[Any]]:
    if not _SLICE:
        raw = json.loads((data_dir / "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json").read_text())
        _SLICE.extend(raw[:3000])
    return _SLICE


corruption = st.lists(st.tuples(st.integers(0, 2999), st.sampled_from(
    ["nan", "inf", "zero", "neg", "dup", "back", "future", "jump", "swap", "zero_volume",
     "high_below_low"])),
    max_size=12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lower=st.floats(50000, 56000), width=st.floats(0.005, 0.3),
       grids=st.integers(2, 60), mode=st.sampled_from(["arithmetic", "geometric"]),
       qty=st.floats(0.0005, 0.05), capital=st.floats(200, 50_000),
       maker=st.sampled_from([0.0, 0.0002, 0.001]), check=st.booleans(),
       use=st.sampled_from(["static", "fibonacci", "geometric", "asymmetric", "symmetric",
                            "volatility-adjusted"]),
       bad=corruption,
       size=st.one_of(st.none(), st.fixed_dictionaries({"max_fraction": st.floats(0.05, 1.0)}),
                      st.fixed_dictionaries({"max_base": st.floats(0.001, 0.5)})),
       halt=st.one_of(st.none(), st.floats(0.001, 0.2)))
def test_random_grids_on_corrupted_real_bars_fill_the_same(
        data_dir: Path, tmp_path_factory: pytest.TempPathFactory, lower: float, width: float,
        grids: int, mode: str, qty: float, capital: float, maker: float, check: bool,
        use: str, bad: list[tuple[int, str]], size: dict[str, float] | None,
        halt: float | None) -> None:
    rows = copy.deepcopy(_real_rows(data_dir))
    for i, what in bad:
        row = rows[i]
        if what == "nan":
            row[2] = math.nan
        elif what == "inf":
            row[3] = math.inf
        elif what == "zero":
            row[4] = 0.0
        elif what == "neg":
            row[1] = -row[1]
        elif what == "dup":
            rows.insert(i, list(row))
        elif what == "back":
            row[0] -= 3_600_000
        elif what == "future":
            row[0] += 10 * 365 * 86_400_000
        elif what == "jump":  # two days ahead, in the past: held until the next bar says
            row[0] += 2 * 86_400_000
        elif what == "high_below_low":
            row[2], row[3] = row[3] - 1.0, row[2] + 1.0
        elif what == "swap" and i + 1 < len(rows):
            rows[i], rows[i + 1] = rows[i + 1], rows[i]
        elif what == "zero_volume":
            row[5] = 0.0
    tmp = tmp_path_factory.mktemp("fused")
    (tmp / "bars.json").write_text(json.dumps(rows))
    source = {"use": "freqtrade-json", "path": "bars.json"}
    risk = ([{"use": "position-size", **size}] if size else []) + (
        [{"use": "drawdown", "limit": halt}] if halt else [])
    data = pipeline(source, lower, lower * (1 + width), grids, qty, capital=capital, mode=mode,
                    maker=maker, taker=maker * 2, check_balance=check, use=use,
                    risk=tuple(risk), features=("rsi", "atr", "volatility"))
    if use == "geometric":
        data["strategy"].update(spacing=width / 20, levels=min(6, max(2, grids // 4)),
                                growth=1.1)
    if use == "asymmetric":
        data["strategy"].update(spacing_up=width / 12, spacing_down=width / 15,
                                levels_up=max(1, grids // 5), levels_down=max(1, grids // 4))
    if use == "symmetric":  # re-centres when the close leaves it, after `cooldown` bars
        data["strategy"].update(levels=max(1, grids // 6), spacing=width / 40,
                                cooldown=grids % 7 * 5, mode=mode)
    if use == "volatility-adjusted":  # laid when the feature is warm, again as it moves
        data["strategy"].update(levels=max(1, grids // 6), mode=mode, k=width * 40,
                                measure="atr" if grids % 2 else "sigma",
                                cooldown=grids % 7 * 5, threshold=0.05 + width,
                                min_spacing=0.0005, max_spacing=min(0.05, 0.9 / max(
                                    1, grids // 6)))
    assert_same(data, tmp)


# --- the path taken ------------------------------------------------------------------------------


def _built(data: dict[str, Any], base: Path) -> Any:
    return build_pipeline(pipeline_from_data(data, "<t>", base))


def test_why_not_names_the_component_that_has_no_fused_form(btc_1m: Path,
                                                            tmp_path: Path) -> None:
    source = {"use": "freqtrade-json", "path": str(btc_1m)}
    base = pipeline(source, 50000, 60000, 10, 0.01)
    assert why_not(_built(base, tmp_path)) is None
    assert why_not(_built({**base, "risk": [{"use": "drawdown", "limit": 0.3},
                                            {"use": "position-size", "max_base": 1}]},
                          tmp_path)) is None
    risky = {**base, "risk": [{"use": "daily-loss", "limit": 0.05}]}
    assert why_not(_built(risky, tmp_path)) == \
        "risk[0] (daily-loss): a risk check has no fused form (fused: position-size, drawdown)"
    stop = copy.deepcopy(base)
    stop["strategy"]["stop_loss"] = 40000
    assert "controls" in why_not(_built(stop, tmp_path))
    trailing = copy.deepcopy(base)
    trailing["strategy"] = {"use": "trailing", "lower": 50000, "upper": 60000, "grids": 10,
                            "qty": 0.01}
    assert why_not(_built(trailing, tmp_path)).startswith("strategy (trailing) has no fused")
    stored = {**base, "store": {"use": "sqlite", "path": str(tmp_path / "x.db")}}
    assert "keeps the order journal" in why_not(_built(stored, tmp_path))


def test_auto_fuses_long_data_and_on_refuses_what_it_cannot(btc_1m: Path,
                                                             tmp_path: Path) -> None:
    source = {"use": "freqtrade-json", "path": str(btc_1m)}
    data = pipeline(source, 50000, 60000, 10, 0.01, end="2021-04-21T00:00:00Z")
    short = run_pipeline(_built(data, tmp_path))
    assert short["backtest_path"]["fused"] is False
    assert "auto fuses from 100,000" in short["backtest_path"]["why"]
    data["risk"] = [{"use": "daily-loss", "limit": 0.05}]
    data["pipeline"]["fuse"] = "on"
    with pytest.raises(ConfigError, match=r'pipeline.fuse: "on", but risk\[0\] \(daily-loss\)'):
        run_pipeline(_built(data, tmp_path))


def test_a_feature_that_raises_is_named_as_on_the_plugin_path(data_dir: Path,
                                                              tmp_path: Path) -> None:
    """With no validator a zero close reaches volatility's log: both paths name it, though
    the fused one steps the features in groups on threads of their own."""
    rows = _real_rows(data_dir)[:2000]
    rows = [list(r) for r in rows]
    rows[1500][4] = 0.0
    (tmp_path / "bars.json").write_text(json.dumps(rows))
    data = pipeline({"use": "freqtrade-json", "path": "bars.json"}, 50000, 60000, 10, 0.01,
                    features=("rsi", "volatility", "atr", "price-position"))
    data["validators"] = []
    lines = []
    for fuse in ("off", "on"):
        d = copy.deepcopy(data)
        d["pipeline"]["fuse"] = fuse
        with pytest.raises(Exception) as err:
            run_pipeline(build_pipeline(pipeline_from_data(d, "<t>", tmp_path)))
        lines.append(str(err.value))
    assert all("feature 'volatility'" in line and "(features[1]): ValueError: math domain "
               "error" in line for line in lines), lines


def test_features_split_into_groups_of_about_equal_cost(btc_1m: Path, tmp_path: Path) -> None:
    from gridkit.fused.run import feature_groups

    names = ("rsi", "atr", "ema", "volatility", "bb-position", "price-change",
             "price-position", "trend-strength", "volume-ratio", "volume-acceleration")
    data = pipeline({"use": "freqtrade-json", "path": str(btc_1m)}, 1, 2, 2, 1.0,
                    features=names)
    features = [f for _, f in _built(data, tmp_path).lanes[0].features]
    two = feature_groups(features, 2)
    both = [f for group in two for f in group]
    assert sorted(map(len, two)) == [5, 5] and both != features
    assert sorted(both, key=features.index) == features
    assert feature_groups(features, 1) == [features]
    assert feature_groups(features[:1], 8) == [features[:1]]
