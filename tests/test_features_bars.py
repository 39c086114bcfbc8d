"""The bar features of the core set on whole real files, checked against TA-Lib.

``price-change``, ``price-position``, ``volume-acceleration``, ``bb-position``, ``trend-strength``,
``atr`` and ``ema`` (gridkit.plugins.features.bar_set): streaming ``update`` equals ``batch``
bit for bit, NaN for exactly the warm-up, values agree with TA-Lib where it computes the same
thing (``rsi``, ``ema``, ``atr``, ``BBANDS``, and ``STOCHF``/``ROCP`` for the two that are TA-Lib
functions in disguise) and with plain numpy references written here; state stays O(period); bad
options are reported with their TOML path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import gridkit
from gridkit.core.types import Bar
from gridkit.plugins.features.bar_set import (
    FEATURES as BAR_FEATURES,
)
from gridkit.plugins.features.bar_set import (
    Atr,
    BbPosition,
    Ema,
    PriceChange,
    PricePosition,
    TrendStrength,
    VolumeAcceleration,
)
from gridkit.plugins.features.rsi import Rsi
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import FeatureContract, build, columns_of
from helpers import expect, feature_pipeline

talib = pytest.importorskip("talib")

FILES = {
    "BTC-1m": "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json",
    "SOL-5m": "ohlcv/nostalgiaforinfinity/SOL_USDT-5m.json",
    "DOGE-1m": "ohlcv/tooyipjee-freqtrade/DOGE_USDT-1m.json",
}

# (class, options, index of the first value)
CASES: list[tuple[type, dict[str, Any], int]] = [
    (PriceChange, {}, 5), (PriceChange, {"period": 1}, 1), (PriceChange, {"period": 60}, 60),
    (PricePosition, {}, 19), (PricePosition, {"period": 1}, 0),
    (PricePosition, {"period": 3}, 2), (PricePosition, {"period": 240}, 239),
    (VolumeAcceleration, {}, 24), (VolumeAcceleration, {"period": 1, "lag": 1}, 1),
    (VolumeAcceleration, {"period": 50, "lag": 20}, 69),
    (BbPosition, {}, 19), (BbPosition, {"period": 2, "k": 1}, 1),
    (BbPosition, {"period": 100, "k": 2.5}, 99),
    (TrendStrength, {}, 10), (TrendStrength, {"period": 1}, 1),
    (TrendStrength, {"period": 120}, 120),
    (Atr, {}, 14), (Atr, {"period": 1}, 1), (Atr, {"period": 100}, 100),
    (Ema, {}, 19), (Ema, {"period": 2}, 1), (Ema, {"period": 200}, 199),
]
CASE_IDS = [f"{c.name}-" + "-".join(f"{k}{v}" for k, v in o.items()) for c, o, _ in CASES]

_cache: dict[str, tuple[list[Bar], dict[str, np.ndarray]]] = {}


def load(data_dir: Path, name: str) -> tuple[list[Bar], dict[str, np.ndarray]]:
    if name not in _cache:
        rows = json.loads((data_dir / FILES[name]).read_text())
        bars = [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
        _cache[name] = (bars, columns_of(bars))
    return _cache[name]


@pytest.fixture(params=list(FILES), scope="module")
def real(request: pytest.FixtureRequest, data_dir: Path) -> tuple[list[Bar], dict[str, Any]]:
    """(bars, columns) of one whole real file."""
    return load(data_dir, request.param)


_streamed: dict[tuple[int, type, str], np.ndarray] = {}


def streamed(cls: type, options: dict[str, Any], bars: list[Bar]) -> np.ndarray:
    """What a fresh feature's ``update`` returns bar by bar (cached per file; read-only)."""
    key = (id(bars), cls, repr(sorted(options.items())))
    if key not in _streamed:
        update = build(cls, options).update
        values = np.array([update(b) for b in bars])
        values.flags.writeable = False
        _streamed[key] = values
    return _streamed[key]


# --- streaming == batch, warm-up ----------------------------------------------------------------


@pytest.mark.parametrize(("cls", "options", "first"), CASES, ids=CASE_IDS)
def test_streaming_equals_batch_on_whole_file(real: Any, cls: type, options: dict[str, Any],
                                              first: int) -> None:
    bars, cols = real
    got = streamed(cls, options, bars)
    batch = np.asarray(build(cls, options).batch(cols))
    assert batch.shape == got.shape == (len(bars),)
    np.testing.assert_array_equal(got, batch)


@pytest.mark.parametrize(("cls", "options", "first"), CASES, ids=CASE_IDS)
def test_warm_up_is_exact_and_ready_follows_it(gridkit_sample_bars: list[Bar], cls: type,
                                               options: dict[str, Any], first: int) -> None:
    feature = build(cls, options)
    for i, bar in enumerate(gridkit_sample_bars[:first + 5]):
        value = feature.update(bar)
        if i < first:
            assert math.isnan(value) and not feature.ready, (i, value)
        else:
            assert feature.ready and not math.isnan(value), (i, value)


def test_every_feature_is_registered_with_its_catalogue_name(gridkit_host: Any) -> None:
    names = {"price-change", "price-position", "volume-acceleration", "bb-position",
             "trend-strength", "atr", "ema"}
    assert {c.name for c in BAR_FEATURES} == names
    for cls in BAR_FEATURES:
        assert cls.inputs == {"bars"}
    config = parse_pipeline(pipeline("".join(f'[[features]]\nuse = "{n}"\n'
                                             for n in sorted(names))))
    built = build_pipeline(config, gridkit_host)
    assert {type(f) for _, f in built.features} == set(BAR_FEATURES)


# --- TA-Lib ---------------------------------------------------------------------------------------


def assert_close_after_warm_up(got: np.ndarray, ref: np.ndarray, rtol: float,
                               atol: float = 0.0) -> None:
    """Same NaN positions as the reference (TA-Lib's warm-up), values within tolerance."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.sum() > 0.9 * len(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=rtol, atol=atol)


def test_talib_unstable_periods_are_the_defaults() -> None:
    # TA-Lib's EMA/ATR/RSI can drop a configurable number of leading "unstable" values; the
    # comparisons below rely on the default (0), where TA-Lib's first value is its seed.
    for func in ("EMA", "ATR", "RSI"):
        assert talib.get_unstable_period(func) == 0
    assert talib.get_compatibility() == 0  # TA_COMPATIBILITY_DEFAULT: EMA seeded with the SMA


@pytest.mark.parametrize("period", [2, 10, 20, 200])
def test_ema_equals_talib(real: Any, period: int) -> None:
    bars, cols = real
    got = streamed(Ema, {"period": period}, bars)
    ref = talib.EMA(cols["close"], timeperiod=period)
    # Same seed, same (x - e)*k + e order: equal to the last bit, except for rare 1-ulp
    # differences where TA-Lib's compiled code fuses the multiply-add (one rounding, not two):
    # under 0.1 % of a whole file, 12 of SOL's first 7,491 values at period 10.
    assert_close_after_warm_up(got, ref, rtol=4.5e-16)
    ok = ~np.isnan(ref)
    assert (got[ok] == ref[ok]).mean() > expect(0.999, 0.998)


@pytest.mark.parametrize("period", [1, 7, 14, 100])
def test_atr_matches_talib(real: Any, period: int) -> None:
    bars, cols = real
    got = streamed(Atr, {"period": period}, bars)
    ref = talib.ATR(cols["high"], cols["low"], cols["close"], timeperiod=period)
    assert_close_after_warm_up(got, ref, rtol=1e-12)


@pytest.mark.parametrize("period", [2, 14, 50])
def test_builtin_rsi_matches_talib(real: Any, period: int) -> None:
    bars, cols = real
    got = streamed(Rsi, {"period": period}, bars)
    ref = talib.RSI(cols["close"], timeperiod=period)
    assert_close_after_warm_up(got, ref, rtol=1e-9, atol=1e-9)


def exact_bb_position(close: np.ndarray, period: int, k: float) -> np.ndarray:
    """Bollinger position with a fresh two-pass population σ per window (numpy)."""
    out = np.full(len(close), np.nan)
    win = sliding_window_view(close, period)
    mid = win.mean(axis=1)
    sd = win.std(axis=1, ddof=0)
    lower, upper = mid - k * sd, mid + k * sd
    with np.errstate(divide="ignore", invalid="ignore"):
        out[period - 1:] = np.where(upper > lower, (close[period - 1:] - lower) / (upper - lower),
                                    np.nan)
    return out


@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.0), (100, 2.5)])
def test_bb_position_matches_talib_bbands(real: Any, period: int, k: float) -> None:
    bars, cols = real
    close = cols["close"]
    got = streamed(BbPosition, {"period": period, "k": k}, bars)
    upper, _, lower = talib.BBANDS(close, timeperiod=period, nbdevup=k, nbdevdn=k, matype=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where(upper > lower, (close - lower) / (upper - lower), np.nan)
    # The position is a ratio in ~[0, 1]: relative 1e-9 where it is away from 0, and 1e-9
    # absolute near 0 (the close at the lower band), where no relative bound is meaningful.
    assert_close_after_warm_up(got, ref, rtol=1e-9, atol=1e-9)
    # TA-Lib's σ is sqrt(Σx²/n − mean²) on raw prices, which cancels at BTC's price scale; the
    # shifted sums here stay closer to a fresh two-pass σ than TA-Lib does.
    exact = exact_bb_position(close, period, k)
    ok = ~np.isnan(exact)
    ours = np.abs(got[ok] - exact[ok]).max()
    theirs = np.abs(ref[ok] - exact[ok]).max()
    assert ours <= max(theirs, 1e-12)
    np.testing.assert_allclose(got[ok], exact[ok], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("period", [3, 20, 240])
def test_price_position_is_talib_stochf_fastk(real: Any, period: int) -> None:
    bars, cols = real
    got = streamed(PricePosition, {"period": period}, bars)
    fastk, _ = talib.STOCHF(cols["high"], cols["low"], cols["close"], fastk_period=period,
                            fastd_period=1, fastd_matype=0)
    ref = fastk / 100.0
    # TA-Lib answers 0 on a range of zero width; gridkit says NaN (no position in no range).
    flat = np.isnan(got) & ~np.isnan(ref)
    assert (ref[flat] == 0.0).all()
    ref = np.where(flat, np.nan, ref)
    assert_close_after_warm_up(got, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("period", [1, 5, 60])
def test_price_change_is_talib_rocp(real: Any, period: int) -> None:
    bars, cols = real
    got = streamed(PriceChange, {"period": period}, bars)
    assert_close_after_warm_up(got, talib.ROCP(cols["close"], timeperiod=period), rtol=0.0)


# --- independent numpy references ---------------------------------------------------------------


def ref_price_change(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    out[n:] = close[n:] / close[:-n] - 1.0
    return out


def ref_price_position(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                       n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    hh = sliding_window_view(high, n).max(axis=1)
    ll = sliding_window_view(low, n).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n - 1:] = np.where(hh > ll, (close[n - 1:] - ll) / (hh - ll), np.nan)
    return out


def ref_trend_strength(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    path = sliding_window_view(np.abs(np.diff(close)), n).sum(axis=1)
    net = np.abs(close[n:] - close[:-n])
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n:] = np.where(path > 0, net / path, 0.0)
    return out


def ref_volume_acceleration(volume: np.ndarray, n: int, lag: int) -> np.ndarray:
    """Textbook EMA ``e = a·v + (1−a)·e`` seeded with the mean of the first n volumes."""
    ema = np.full(len(volume), np.nan)
    a = 2.0 / (n + 1)
    e = volume[:n].mean()
    ema[n - 1] = e
    for i in range(n, len(volume)):
        e = a * volume[i] + (1.0 - a) * e
        ema[i] = e
    out = np.full(len(volume), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[lag:] = np.where(ema[:-lag] > 0, ema[lag:] / ema[:-lag] - 1.0, np.nan)
    return out


def test_price_change_matches_reference(real: Any) -> None:
    bars, cols = real
    for n in (1, 5, 60):
        got = streamed(PriceChange, {"period": n}, bars)
        assert_close_after_warm_up(got, ref_price_change(cols["close"], n), rtol=1e-9,
                                   atol=1e-15)


def test_price_position_matches_reference_and_stays_in_unit_interval(real: Any) -> None:
    bars, cols = real
    for n in (1, 3, 20, 240):
        got = streamed(PricePosition, {"period": n}, bars)
        ref = ref_price_position(cols["high"], cols["low"], cols["close"], n)
        np.testing.assert_array_equal(got, ref)  # max, min and one division: exact
        values = got[~np.isnan(got)]
        assert values.min() >= 0.0 and values.max() <= 1.0
        if n >= 3:
            assert values.min() == 0.0 and values.max() == 1.0  # a close at the low/high


def test_trend_strength_matches_reference_and_stays_in_unit_interval(real: Any) -> None:
    bars, cols = real
    for n in (1, 10, 120):
        got = streamed(TrendStrength, {"period": n}, bars)
        ref = ref_trend_strength(cols["close"], n)
        assert_close_after_warm_up(got, np.minimum(ref, 1.0), rtol=1e-9, atol=1e-12)
        values = got[~np.isnan(got)]
        assert values.min() >= 0.0 and values.max() <= 1.0
    # Period 1: one change is always "all in one direction" (or no move at all).
    one = streamed(TrendStrength, {"period": 1}, bars)
    assert set(np.unique(one[1:])) <= {0.0, 1.0}
    # A real market both trends and chops at the default window.
    ten = streamed(TrendStrength, {"period": 10}, bars)
    assert np.nanmax(ten) > 0.9 and np.nanmin(ten) < 0.05


def test_volume_acceleration_matches_reference(real: Any) -> None:
    bars, cols = real
    for n, lag in ((20, 5), (1, 1), (50, 20)):
        got = streamed(VolumeAcceleration, {"period": n, "lag": lag}, bars)
        ref = ref_volume_acceleration(cols["volume"], n, lag)
        # The reference's (1−a)·e form rounds differently from TA-Lib's (x − e)·a + e.
        assert_close_after_warm_up(got, ref, rtol=1e-9, atol=1e-12)
        assert np.nanmin(got) >= -1.0  # a volume EMA can fall to 0 at most


def test_bb_position_period_two_is_half_or_nan(real: Any) -> None:
    # Two closes: mean in the middle, σ = |a−b|/2, so with k=1 the bands are the two closes
    # and the latest close sits on one of them. The bands are rounded at the price's scale
    # (a few ε·price), up to ~1e-8 of a one-tick width at BTC ~55,000 (closes 54790.68, 54790.67).
    bars, _ = real
    got = streamed(BbPosition, {"period": 2, "k": 1}, bars)[1:]
    values = got[~np.isnan(got)]
    assert np.all(np.isclose(values, 0.0, atol=5e-8) | np.isclose(values, 1.0, atol=5e-8))
    # NaN exactly where two closes in a row are equal (bands of zero width).
    closes = np.array([b.close for b in bars])
    np.testing.assert_array_equal(np.isnan(got), closes[1:] == closes[:-1])


def test_bb_position_is_nan_on_a_flat_window(data_dir: Path) -> None:
    # SOL 5m has runs of equal closes (1.5186 five times in a row at bar 5,919): σ is exactly
    # 0 there, so there is no band to be in, even though rolling sums round to a tiny σ.
    bars, cols = load(data_dir, "SOL-5m")
    close = cols["close"]
    assert (close[5919:5924] == 1.5186).all()
    for period in (2, 5):
        got = streamed(BbPosition, {"period": period, "k": 1}, bars)
        flat = np.ptp(sliding_window_view(close, period), axis=1) == 0.0
        assert flat.any()
        np.testing.assert_array_equal(np.isnan(got[period - 1:]), flat)


def test_sol_zero_volume_bars_do_not_break_volume_acceleration(data_dir: Path) -> None:
    # SOL 5m has 39 zero-volume bars around maintenance (SOURCES.md §1.1; 22 in the slice).
    bars, cols = load(data_dir, "SOL-5m")
    assert (cols["volume"] == 0.0).sum() == expect(39, 22)
    got = streamed(VolumeAcceleration, {}, bars)
    assert np.isfinite(got[24:]).all()


# --- properties -----------------------------------------------------------------------------------

prices = st.lists(st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False), min_size=1,
                  max_size=120)


def bars_from(closes: list[float], spreads: list[float]) -> list[Bar]:
    out = []
    for i, c in enumerate(closes):
        s = spreads[i % len(spreads)]
        out.append(Bar(i * 60_000, c, c * (1 + s), c * (1 - s / 2), c, 1.0 + i % 7))
    return out


@settings(max_examples=60, deadline=None)
@given(prices, st.lists(st.floats(0.0, 0.05), min_size=1, max_size=10),
       st.integers(1, 30))
def test_unit_interval_features_and_batch_agree_on_any_prices(
        closes: list[float], spreads: list[float], period: int) -> None:
    bars = bars_from(closes, spreads)
    cols = columns_of(bars)
    for cls in (PricePosition, TrendStrength, BbPosition, PriceChange, Ema, Atr,
                VolumeAcceleration):
        opts: dict[str, Any] = {"period": max(period, 2)}
        feature = build(cls, opts)
        got = np.array([feature.update(b) for b in bars])
        np.testing.assert_array_equal(got, build(cls, opts).batch(cols))
        if cls in (PricePosition, TrendStrength):
            values = got[~np.isnan(got)]
            assert ((values >= 0.0) & (values <= 1.0)).all()


# --- state stays O(period) ----------------------------------------------------------------------


def test_state_does_not_grow_over_a_whole_file(data_dir: Path) -> None:
    bars, _ = load(data_dir, "BTC-1m")
    period = 20
    features = [build(cls, {"period": period}) for cls in BAR_FEATURES]
    lists_before = {id(f): {k: (id(v), len(v)) for k, v in vars(f).items()
                            if isinstance(v, list)} for f in features}
    longest = 0
    for bar in bars:
        for f in features:
            f.update(bar)
        pp = features[1]
        longest = max(longest, len(pp.hi_i), len(pp.lo_i))
    assert longest <= period
    for f in features:
        after = {k: (id(v), len(v)) for k, v in vars(f).items() if isinstance(v, list)}
        assert after == lists_before[id(f)], type(f).name
        for key, value in vars(f).items():
            if key != "config":
                assert isinstance(value, (int, float, bool, list)) or \
                    (key.startswith(("hi_", "lo_")) and len(value) <= period), key


# --- config errors with their TOML path; a whole pipeline ---------------------------------------


pipeline = feature_pipeline


@pytest.mark.parametrize(("use", "option", "value", "message"), [
    ("price-change", "period", "0", "must be >= 1, got 0"),
    ("price-change", "period", '"5"', "expected int, got '5'"),
    ("price-position", "period", "0", "must be >= 1, got 0"),
    ("price-position", "period", "2.5", "expected int, got 2.5"),
    ("volume-acceleration", "period", "0", "must be >= 1, got 0"),
    ("volume-acceleration", "lag", "0", "must be >= 1, got 0"),
    ("bb-position", "period", "1", "must be >= 2, got 1"),
    ("bb-position", "k", "0", "must be > 0"),
    ("bb-position", "k", '"two"', "expected float, got 'two'"),
    ("trend-strength", "period", "0", "must be >= 1, got 0"),
    ("atr", "period", "0", "must be >= 1, got 0"),
    ("atr", "period", "true", "expected int, got True"),
    ("ema", "period", "1", "must be >= 2, got 1"),
])
def test_bad_option_is_a_config_error_with_its_path(gridkit_host: Any, use: str, option: str,
                                                    value: str, message: str) -> None:
    config = parse_pipeline(pipeline(f'[[features]]\nuse = "{use}"\n{option} = {value}\n'))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    text = str(info.value)
    assert f"features[0].{option}" in text and message in text, text
    assert "\n" not in text


def test_bad_options_of_several_features_are_reported_at_once(gridkit_host: Any) -> None:
    config = parse_pipeline(pipeline(
        '[[features]]\nuse = "ema"\n'
        '[[features]]\nuse = "atr"\nperiod = 0\n'
        '[[features]]\nuse = "bb-position"\nk = -1\n'
        '[[features]]\nuse = "trend-strength"\nperiode = 3\n'))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    text = str(info.value)
    assert len(info.value.problems) == 3
    assert "features[1].period" in text and "features[2].k" in text
    assert "features[3].periode: unknown option (did you mean 'period'?)" in text
    assert "features[0]" not in text


ALL_FEATURES = """
[[features]]
use = "price-change"
period = 5
[[features]]
use = "price-position"
[[features]]
use = "volume-ratio"
[[features]]
use = "volume-acceleration"
[[features]]
use = "rsi"
[[features]]
use = "bb-position"
k = 2
[[features]]
use = "volatility"
[[features]]
use = "trend-strength"
[[features]]
use = "atr"
[[features]]
use = "ema"
key = "ema-50"
period = 50
"""


def test_pipeline_runs_with_all_of_them(gridkit_run_toml: Callable[..., dict[str, Any]]) -> None:
    s = gridkit_run_toml(pipeline(ALL_FEATURES, "{sample}"))
    assert s["status"] == "finished" and s["error"] is None
    assert s["bars_seen"] == s["bars_accepted"] == 3000
    bar_set = [k for k, v in s["pipeline"].items()
               if k.startswith("features[") and v["plugin"] == "gridkit.features_bars"]
    assert len(bar_set) == 7


def test_pipeline_values_equal_batch(gridkit_host: Any, gridkit_sample_columns: Any) -> None:
    built = build_pipeline(parse_pipeline(pipeline(ALL_FEATURES)), gridkit_host)
    seen: dict[str, list[float]] = {}

    keys = [k for k, _ in built.features]
    assert keys == ["price-change", "price-position", "volume-ratio", "volume-acceleration",
                    "rsi", "bb-position", "volatility", "trend-strength", "atr", "ema-50"]
    originals = dict(built.features)
    for key, feature in built.features:
        update = feature.update

        def recording(bar: Bar, _u: Any = update, _k: str = key) -> float:
            value = _u(bar)
            seen.setdefault(_k, []).append(value)
            return value

        # The engine takes each feature's bound update when the run starts: wrap it to
        # record exactly what the pipeline computed.
        feature.update = recording  # type: ignore[method-assign]
    summary = run_pipeline(built)
    assert summary["status"] == "finished"
    for key, feature in originals.items():
        batch = np.asarray(type(feature)(feature.config).batch(gridkit_sample_columns))
        np.testing.assert_array_equal(np.array(seen[key]), batch, err_msg=key)
        assert feature.ready, key


# --- contract tests -------------------------------------------------------------------------------


class TestPriceChangeContract(FeatureContract):
    component_class = PriceChange


class TestPriceChangeLongContract(FeatureContract):
    component_class = PriceChange
    options = {"period": 240}


class TestPricePositionContract(FeatureContract):
    component_class = PricePosition


class TestPricePositionShortContract(FeatureContract):
    component_class = PricePosition
    options = {"period": 1}


class TestVolumeAccelerationContract(FeatureContract):
    component_class = VolumeAcceleration


class TestVolumeAccelerationLongContract(FeatureContract):
    component_class = VolumeAcceleration
    options = {"period": 200, "lag": 60}


class TestBbPositionContract(FeatureContract):
    component_class = BbPosition


class TestBbPositionShortContract(FeatureContract):
    component_class = BbPosition
    options = {"period": 2, "k": 0.5}


class TestTrendStrengthContract(FeatureContract):
    component_class = TrendStrength


class TestTrendStrengthLongContract(FeatureContract):
    component_class = TrendStrength
    options = {"period": 300}


class TestAtrContract(FeatureContract):
    component_class = Atr


class TestAtrShortContract(FeatureContract):
    component_class = Atr
    options = {"period": 1}


class TestEmaContract(FeatureContract):
    component_class = Ema


class TestEmaLongContract(FeatureContract):
    component_class = Ema
    options = {"period": 500}
