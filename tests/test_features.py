"""The features ``rsi``, ``volatility`` and ``volume-ratio`` on whole real files.

Streaming ``update`` must equal ``batch`` exactly (DESIGN.md §4), NaN exactly for the warm-up,
values must match straightforward reference implementations written here, and the state must stay
O(period) however long the stream. Bad periods are refused with their TOML path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import gridkit
from gridkit.core.types import Bar
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import FeatureContract, build, columns_of
from helpers import expect, feature_pipeline

FILES = {
    "BTC-1m": "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json",
    "SOL-5m": "ohlcv/nostalgiaforinfinity/SOL_USDT-5m.json",
    "DOGE-1m": "ohlcv/tooyipjee-freqtrade/DOGE_USDT-1m.json",
}
FEATURES = [(Rsi, 14), (Rsi, 2), (Rsi, 50), (Volatility, 20), (Volatility, 2),
            (Volatility, 100), (VolumeRatio, 20), (VolumeRatio, 1), (VolumeRatio, 60)]
FEATURE_IDS = [f"{cls.name}-{p}" for cls, p in FEATURES]

_cache: dict[str, tuple[list[Bar], dict[str, np.ndarray]]] = {}


@pytest.fixture(params=list(FILES), scope="module")
def real(request: pytest.FixtureRequest, data_dir: Path) -> tuple[list[Bar], dict[str, Any]]:
    """(bars, columns) of one whole real file."""
    name = request.param
    if name not in _cache:
        rows = json.loads((data_dir / FILES[name]).read_text())
        bars = [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
        _cache[name] = (bars, columns_of(bars))
    return _cache[name]


def stream(cls: type, period: int, bars: list[Bar]) -> np.ndarray:
    """What a fresh feature's ``update`` returns bar by bar."""
    feature = build(cls, {"period": period})
    update = feature.update
    return np.array([update(b) for b in bars])


_streamed: dict[tuple[int, type, int], np.ndarray] = {}


def streamed_once(cls: type, period: int, bars: list[Bar]) -> np.ndarray:
    """``stream`` over a cached whole file, computed once per module (read-only result)."""
    key = (id(bars), cls, period)
    if key not in _streamed:
        values = stream(cls, period, bars)
        values.flags.writeable = False
        _streamed[key] = values
    return _streamed[key]


# --- independent reference implementations ------------------------------------------------------


def ref_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Wilder's RSI in its textbook form 100 − 100/(1 + RS), seeded with simple means."""
    out = np.full(len(close), np.nan)
    change = np.diff(close)
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    if len(change) < n:
        return out
    avg_gain, avg_loss = gains[:n].mean(), losses[:n].mean()
    for i in range(n, len(close)):
        if i > n:
            avg_gain += (gains[i - 1] - avg_gain) / n
            avg_loss += (losses[i - 1] - avg_loss) / n
        if avg_loss == 0.0:
            out[i] = 100.0 if avg_gain > 0.0 else 0.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def ref_volatility(close: np.ndarray, n: int) -> np.ndarray:
    """Sample std (ddof=1) of each window of the last n log returns."""
    out = np.full(len(close), np.nan)
    returns = np.log(close[1:] / close[:-1])
    if len(returns) >= n:
        out[n:] = sliding_window_view(returns, n).std(axis=1, ddof=1)
    return out


def ref_volume_ratio(volume: np.ndarray, n: int) -> np.ndarray:
    """Volume over the explicit mean of the n volumes before it; NaN if that mean is 0."""
    out = np.full(len(volume), np.nan)
    for i in range(n, len(volume)):
        mean = volume[i - n:i].sum() / n
        if mean > 0:
            out[i] = volume[i] / mean
    return out


REFERENCE = {Rsi: ref_rsi, Volatility: ref_volatility, VolumeRatio: ref_volume_ratio}
INPUT = {Rsi: "close", Volatility: "close", VolumeRatio: "volume"}


# --- whole real files ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "period"), FEATURES, ids=FEATURE_IDS)
def test_streaming_equals_batch_on_whole_file(real: Any, cls: type, period: int) -> None:
    bars, cols = real
    streamed = streamed_once(cls, period, bars)
    batch = np.asarray(build(cls, {"period": period}).batch(cols))
    assert batch.shape == streamed.shape == (len(bars),)
    np.testing.assert_array_equal(streamed, batch)


@pytest.mark.parametrize(("cls", "period"), FEATURES, ids=FEATURE_IDS)
def test_matches_reference_and_warm_up(real: Any, cls: type, period: int) -> None:
    bars, cols = real
    got = streamed_once(cls, period, bars)
    ref = REFERENCE[cls](cols[INPUT[cls]], period)
    # NaN for exactly the warm-up, then a value (volume-ratio: except after an all-zero window).
    assert np.isnan(got[:period]).all()
    assert not np.isnan(got[period])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    if cls is not VolumeRatio:
        assert not np.isnan(got[period:]).any()
    ok = ~np.isnan(ref)
    if cls is Rsi:
        np.testing.assert_allclose(got[ok], ref[ok], rtol=0, atol=1e-9)
    else:
        # Rolling sums against a fresh sum per window: relative agreement, plus a floor for
        # windows whose true value is ~0 (a flat market).
        np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-9, atol=1e-12)


def test_rsi_stays_in_range(real: Any) -> None:
    bars, _ = real
    for period in (2, 14, 50):
        values = streamed_once(Rsi, period, bars)
        values = values[~np.isnan(values)]
        assert len(values) == len(bars) - period
        assert values.min() >= 0.0 and values.max() <= 100.0
    # On a real market both extremes are reached with a short period.
    short = streamed_once(Rsi, 2, bars)
    assert np.nanmax(short) > 95 and np.nanmin(short) < 5


def test_volatility_is_non_negative_and_scale_free(real: Any) -> None:
    bars, _ = real
    sigma = streamed_once(Volatility, 20, bars)
    assert np.nanmin(sigma) >= 0.0
    # Log returns do not depend on the price scale: the same bars x1000 give the same σ.
    scaled = [Bar(b.ts, b.open * 1000, b.high * 1000, b.low * 1000, b.close * 1000, b.volume)
              for b in bars[:5000]]
    np.testing.assert_allclose(stream(Volatility, 20, scaled), sigma[:5000], rtol=1e-9,
                               atol=1e-15)


def test_volume_ratio_is_nan_after_an_all_zero_window(data_dir: Path) -> None:
    # SOL 5m has 39 zero-volume bars (SOURCES.md §1.1; 22 in the slice of tests/data): a bar
    # after one has no mean to divide by.
    rows = json.loads((data_dir / FILES["SOL-5m"]).read_text())
    bars = [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
    values = stream(VolumeRatio, 1, bars)
    zero = np.array([b.volume == 0.0 for b in bars])
    assert zero.sum() == expect(39, 22)
    after_zero = np.flatnonzero(zero[:-1]) + 1
    assert np.isnan(values[after_zero]).all()
    assert np.isnan(values).sum() == 1 + len(after_zero)


def test_doge_tick_size_change_is_handled(data_dir: Path) -> None:
    # DOGE prices switch from 7 to 5 decimals inside the file; the features do not care.
    rows = json.loads((data_dir / FILES["DOGE-1m"]).read_text())
    text = [str(r[4]) for r in rows]
    decimals = [len(t.split(".")[1]) if "." in t else 0 for t in text]
    assert max(decimals[:1000]) > max(decimals[-1000:]), "the documented tick-size change"
    bars = [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
    for cls in (Rsi, Volatility):
        values = stream(cls, 14, bars)
        assert np.isfinite(values[14:]).all()


# --- state stays O(period) ----------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "period"), [(Volatility, 20), (VolumeRatio, 20),
                                             (Volatility, 3), (VolumeRatio, 7)])
def test_ring_buffer_does_not_grow(btc_1m: Path, cls: type, period: int) -> None:
    rows = json.loads(btc_1m.read_text())[:40_000]
    feature = build(cls, {"period": period})
    ring = feature.ring
    for r in rows:
        feature.update(Bar(int(r[0]), *(float(x) for x in r[1:6])))
    assert feature.ring is ring
    assert len(feature.ring) == period
    assert all(not isinstance(v, (list, dict, tuple, set)) or v is ring
               for v in vars(feature).values())


def test_rsi_state_is_a_few_scalars(btc_1m: Path) -> None:
    rows = json.loads(btc_1m.read_text())[:40_000]
    feature = build(Rsi, {"period": 14})
    before = set(vars(feature))
    for r in rows:
        feature.update(Bar(int(r[0]), *(float(x) for x in r[1:6])))
    assert set(vars(feature)) == before
    for key, value in vars(feature).items():
        if key != "config":
            assert isinstance(value, (int, float, bool)), f"{key} is {type(value).__name__}"


# --- bad periods are refused with their TOML path -----------------------------------------------


pipeline = feature_pipeline


@pytest.mark.parametrize(("use", "period", "message"), [
    ("rsi", "1", "must be >= 2, got 1"),
    ("rsi", '"x"', "expected int, got 'x'"),
    ("rsi", "14.5", "expected int, got 14.5"),
    ("rsi", "true", "expected int, got True"),
    ("volatility", "1", "must be >= 2, got 1"),
    ("volatility", '"x"', "expected int, got 'x'"),
    ("volume-ratio", "0", "must be >= 1, got 0"),
    ("volume-ratio", '"x"', "expected int, got 'x'"),
])
def test_bad_period_is_a_config_error_with_its_path(gridkit_host: Any, use: str, period: str,
                                                     message: str) -> None:
    config = parse_pipeline(pipeline(f'[[features]]\nuse = "{use}"\nperiod = {period}\n'))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    text = str(info.value)
    assert "features[0].period" in text and message in text
    assert "\n" not in text


def test_every_bad_feature_is_reported_at_once(gridkit_host: Any) -> None:
    config = parse_pipeline(pipeline(
        '[[features]]\nuse = "rsi"\n'
        '[[features]]\nuse = "volatility"\nperiod = 1\n'
        '[[features]]\nuse = "volume-ratio"\nperiod = "x"\n'
        '[[features]]\nuse = "rsi"\nkey = "rsi-slow"\nperoid = 30\n'))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    assert len(info.value.problems) == 3
    text = str(info.value)
    assert "features[1].period" in text and "features[2].period" in text
    assert "features[3].peroid: unknown option (did you mean 'period'?)" in text
    assert "features[0]" not in text


def test_good_periods_build(gridkit_host: Any) -> None:
    config = parse_pipeline(pipeline(
        '[[features]]\nuse = "rsi"\nperiod = 2\n'
        '[[features]]\nuse = "volatility"\nperiod = 2\n'
        '[[features]]\nuse = "volume-ratio"\nperiod = 1\n'))
    built = build_pipeline(config, gridkit_host)
    assert [(k, f.config.period) for k, f in built.features] == [
        ("rsi", 2), ("volatility", 2), ("volume-ratio", 1)]


# --- contract tests ------------------------------------------------------------------------------


class TestRsiContract(FeatureContract):
    component_class = Rsi


class TestRsiShortContract(FeatureContract):
    component_class = Rsi
    options = {"period": 2}


class TestRsiLongContract(FeatureContract):
    component_class = Rsi
    options = {"period": 200}


class TestVolatilityContract(FeatureContract):
    component_class = Volatility


class TestVolatilityShortContract(FeatureContract):
    component_class = Volatility
    options = {"period": 2}


class TestVolatilityLongContract(FeatureContract):
    component_class = Volatility
    options = {"period": 240}


class TestVolumeRatioContract(FeatureContract):
    component_class = VolumeRatio


class TestVolumeRatioShortContract(FeatureContract):
    component_class = VolumeRatio
    options = {"period": 1}


class TestVolumeRatioLongContract(FeatureContract):
    component_class = VolumeRatio
    options = {"period": 300}


def test_nan_count_is_the_period_on_the_sample(gridkit_sample_bars: list[Bar]) -> None:
    # The contract only checks "NaN until ready"; the warm-up length is exact too.
    for cls, period in FEATURES:
        values = stream(cls, period, gridkit_sample_bars)
        first = next(i for i, v in enumerate(values) if not math.isnan(v))
        assert first == period, (cls.name, period)
