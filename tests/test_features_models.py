"""The model features ``garch``, ``volatility-state`` and ``kalman`` on real data.

* streaming ``update`` equals ``batch`` exactly on whole real files (refits included);
* GARCH(1,1), zero and constant mean: the fitted (μ,) ω, α, β agree with ``arch`` (test-only)
  and the log-likelihood is never worse than arch's; with the same parameters the one-step
  variance forecasts equal ``arch``'s ``forecast(horizon=1)`` to 1e-9 relative;
* Kalman: the filtered means equal ``pykalman.KalmanFilter.filter`` with the same matrices and
  prior to 1e-9 relative;
* volatility-state: thresholds and hysteresis against a reference written here, and properties.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridkit
from gridkit.core.types import Bar
from gridkit.plugins.features.models import Garch, Kalman, VolatilityState
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import FeatureContract, build, columns_of
from helpers import feature_pipeline

FILES = {
    "BTC-1m": "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json",
    "BTC-5m": "ohlcv/tooyipjee-freqtrade/BTC_USDT-5m.json",
    "ETH-5m": "ohlcv/tooyipjee-freqtrade/ETH_USDT-5m.json",
    "BTC-5m-NFI": "ohlcv/nostalgiaforinfinity/BTC_USDT-5m.json",
}

_cache: dict[str, tuple[list[Bar], dict[str, np.ndarray]]] = {}


def load(data_dir: Path, name: str) -> tuple[list[Bar], dict[str, np.ndarray]]:
    """(bars, columns) of one whole real file, read once per session."""
    if name not in _cache:
        rows = json.loads((data_dir / FILES[name]).read_text())
        bars = [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]
        _cache[name] = (bars, columns_of(bars))
    return _cache[name]


def returns(data_dir: Path, name: str, scale: float = 100.0) -> np.ndarray:
    close = load(data_dir, name)[1]["close"]
    return scale * np.log(close[1:] / close[:-1])


def stream(cls: type, options: dict[str, Any], bars: list[Bar]) -> np.ndarray:
    feature = build(cls, options)
    update = feature.update
    return np.array([update(b) for b in bars])


# --- streaming == batch on whole real files -------------------------------------------------------

WHOLE = [
    ("BTC-1m", Garch, {"fit_window": 3000, "refit": 10000}),
    ("BTC-5m-NFI", Garch, {"fit_window": 2000, "annualize": True, "bars_per_year": 105120.0}),
    ("BTC-1m", Garch, {"omega": 5e-4, "alpha": 0.1, "beta": 0.85, "fit_window": 100}),
    ("BTC-1m", Garch, {"fit_window": 3000, "refit": 10000, "mean": "constant"}),
    ("BTC-5m-NFI", Garch, {"mean": "constant", "mu": 0.002, "omega": 5e-4, "alpha": 0.1,
                           "beta": 0.85, "fit_window": 100, "annualize": True}),
    ("BTC-1m", VolatilityState, {"period": 60, "low": 0.5, "high": 0.9, "hysteresis": 0.05}),
    ("BTC-5m-NFI", VolatilityState, {"estimator": "garch", "bars_per_year": 105120.0,
                                     "low": 0.6, "high": 1.0, "hysteresis": 0.05}),
    ("BTC-1m", Kalman, {}),
    ("BTC-1m", Kalman, {"output": "slope", "level_noise": 0.5, "slope_noise": 0.01}),
    ("BTC-5m-NFI", Kalman, {"slope_noise": 0.0, "initial_slope_var": 0.0, "warmup": 1}),
]


@pytest.mark.parametrize(("name", "cls", "options"), WHOLE,
                         ids=[f"{c.name}-{n}-{i}" for i, (n, c, _) in enumerate(WHOLE)])
def test_streaming_equals_batch_on_whole_file(data_dir: Path, name: str, cls: type,
                                              options: dict[str, Any]) -> None:
    bars, cols = load(data_dir, name)
    streamed = stream(cls, options, bars)
    batch = np.asarray(build(cls, options).batch(cols))
    assert batch.shape == streamed.shape == (len(bars),)
    np.testing.assert_array_equal(streamed, batch)
    first = int(np.argmax(~np.isnan(streamed)))
    assert np.isnan(streamed[:first]).all() and not np.isnan(streamed[first:]).any()


def test_garch_warm_up_is_fit_window_bars(gridkit_sample_bars: list[Bar]) -> None:
    f = build(Garch, {"fit_window": 500})
    for b in gridkit_sample_bars[:500]:  # bar 0 has no return; bars 1..499 bring 499
        assert math.isnan(f.update(b))
        assert not f.ready
    assert not math.isnan(f.update(gridkit_sample_bars[500])) and f.ready


def test_garch_refits_on_schedule(gridkit_sample_bars: list[Bar]) -> None:
    f = build(Garch, {"fit_window": 500, "refit": 400})
    for b in gridkit_sample_bars:  # 2,999 returns: fits at 500, 900, ..., 2900
        f.update(b)
    assert f.stats()["fits"] == 7
    fixed = build(Garch, {"omega": 1e-3, "alpha": 0.05, "beta": 0.9, "refit": 10})
    for b in gridkit_sample_bars:
        fixed.update(b)
    assert fixed.stats() == {"omega": 1e-3, "alpha": 0.05, "beta": 0.9, "fits": 0}


# --- GARCH against arch ---------------------------------------------------------------------------


def arch_fit(r: np.ndarray, mean: str = "Zero") -> Any:
    from arch import arch_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arch's DataScaleWarning on 1m returns
        res = arch_model(r, mean=mean, vol="GARCH", p=1, q=1, dist="normal",
                         rescale=False).fit(disp="off")
    assert res.convergence_flag == 0
    return res


# (file, number of returns or None for all, scale). arch's SLSQP needs the variance in its
# recommended range: on some whole files of ×100 returns (variance ~0.01-0.1) it reports success
# at its own starting values (α=0.1, β=0.88), a worse likelihood than ours (checked below);
# ×1000 puts the variance near 1 and it then finds the optimum.
ARCH_CASES = [
    ("BTC-5m", None, 100.0),
    ("ETH-5m", None, 100.0),
    ("BTC-1m", 5000, 100.0),
    ("BTC-1m", 10000, 100.0),
    ("BTC-5m-NFI", 5000, 100.0),
    ("BTC-1m", None, 1000.0),
    ("BTC-5m-NFI", None, 1000.0),
]


@pytest.mark.parametrize(("name", "n", "scale"), ARCH_CASES,
                         ids=[f"{a}-{b or 'all'}-x{c:g}" for a, b, c in ARCH_CASES])
def test_garch_fit_matches_arch(data_dir: Path, name: str, n: int | None, scale: float) -> None:
    from gridkit.plugins.features.kernels_models import garch_backcast, garch_fit, garch_nll

    r = returns(data_dir, name, scale)[:n]
    res = arch_fit(r)
    omega, alpha, beta, nll = garch_fit(r)
    # Same likelihood function: ours at arch's optimum equals arch's log-likelihood.
    w, a, b = res.params.values
    assert -garch_nll(r, w, a, b, garch_backcast(r)) == pytest.approx(res.loglikelihood,
                                                                      rel=1e-12)
    # Our optimum is at least as good (to 1e-9 relative) and the parameters agree.
    assert -nll >= res.loglikelihood - 1e-9 * abs(res.loglikelihood)
    np.testing.assert_allclose([omega, alpha, beta], [w, a, b], rtol=1e-3)


@pytest.mark.parametrize("name", ["BTC-1m", "BTC-5m-NFI"])
def test_garch_fit_at_least_as_good_as_arch_on_scaled_percent_returns(
        data_dir: Path, name: str) -> None:
    from gridkit.plugins.features.kernels_models import garch_fit

    r = returns(data_dir, name, 100.0)
    res = arch_fit(r)
    _, alpha, beta, nll = garch_fit(r)
    assert -nll >= res.loglikelihood - 1e-9 * abs(res.loglikelihood)
    assert alpha > 0.0 and beta > 0.0 and alpha + beta < 1.0
    # The same optimum as on ×1000 returns: α, β do not depend on the scale, ω scales by 100.
    _, alpha10, beta10, _ = garch_fit(r * 10.0)
    np.testing.assert_allclose([alpha, beta], [alpha10, beta10], rtol=1e-3)


@pytest.mark.parametrize("name", ["BTC-5m", "BTC-1m"])
def test_garch_one_step_forecast_matches_arch(data_dir: Path, name: str) -> None:
    from arch import arch_model

    bars, _ = load(data_dir, name)
    r = returns(data_dir, name, 100.0)
    res = arch_fit(r[:8000])
    w, a, b = (float(x) for x in res.params.values)
    fixed = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fix([w, a, b])
    want = fixed.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    window = 200
    got = stream(Garch, {"omega": w, "alpha": a, "beta": b, "fit_window": window}, bars)
    # After the bar bringing return j (index j + 1), the forecast of σ²_(j+1).
    var = (got[window:] * 100.0) ** 2
    np.testing.assert_allclose(var, want[window - 1:], rtol=1e-9, atol=0)
    # The fitted feature's own forecast, with its own parameters, against arch's.
    fitted = build(Garch, {"fit_window": 8000})
    got = np.array([fitted.update(bar) for bar in bars])
    s = fitted.stats()
    np.testing.assert_allclose([s["omega"], s["alpha"], s["beta"]], [w, a, b], rtol=1e-3)
    again = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fix(
        [s["omega"], s["alpha"], s["beta"]])
    want = again.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    np.testing.assert_allclose((got[8000:] * 100.0) ** 2, want[7999:], rtol=1e-9, atol=0)


@pytest.mark.parametrize(("name", "n", "scale"), ARCH_CASES,
                         ids=[f"{a}-{b or 'all'}-x{c:g}" for a, b, c in ARCH_CASES])
def test_garch_constant_mean_fit_matches_arch(data_dir: Path, name: str, n: int | None,
                                              scale: float) -> None:
    """arch_model(r, mean="Constant", vol="GARCH", p=1, q=1): the same checks, tolerances
    and cases as the zero-mean fit above."""
    from gridkit.plugins.features.kernels_models import (
        garch_backcast_mean,
        garch_fit,
        garch_fit_mean,
        garch_nll_mean,
    )

    r = returns(data_dir, name, scale)[:n]
    res = arch_fit(r, "Constant")
    mu, omega, alpha, beta, nll = garch_fit_mean(r)
    # Same likelihood: ours at arch's optimum, with arch's backcast (residuals at the sample
    # mean, its starting value), equals arch's log-likelihood.
    m, w, a, b = res.params.values
    assert -garch_nll_mean(r, m, w, a, b, garch_backcast_mean(r, float(r.mean()))) == \
        pytest.approx(res.loglikelihood, rel=1e-12)
    assert -nll >= res.loglikelihood - 1e-9 * abs(res.loglikelihood)
    np.testing.assert_allclose([mu, omega, alpha, beta], [m, w, a, b], rtol=1e-3)
    # The mean is really estimated (not left at its start, the sample mean), and the extra
    # parameter fits better than the zero-mean model of the same returns.
    assert mu != r.mean()
    assert nll < garch_fit(r)[3]


@pytest.mark.parametrize("name", ["BTC-5m", "BTC-1m"])
def test_garch_constant_mean_one_step_forecast_matches_arch(data_dir: Path, name: str) -> None:
    from arch import arch_model

    bars, _ = load(data_dir, name)
    r = returns(data_dir, name, 100.0)
    res = arch_fit(r[:8000], "Constant")
    m, w, a, b = (float(x) for x in res.params.values)
    fixed = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, rescale=False).fix(
        [m, w, a, b])
    want = fixed.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    window = 200
    got = stream(Garch, {"mean": "constant", "mu": m, "omega": w, "alpha": a, "beta": b,
                         "fit_window": window}, bars)
    var = (got[window:] * 100.0) ** 2
    np.testing.assert_allclose(var, want[window - 1:], rtol=1e-9, atol=0)
    # The zero-mean model with the same ω, α, β forecasts something else: μ is used.
    zero = stream(Garch, {"omega": w, "alpha": a, "beta": b, "fit_window": window}, bars)
    assert not np.allclose(zero[window:], got[window:], rtol=1e-9)
    # The fitted feature's own forecast, with its own parameters, against arch's.
    fitted = build(Garch, {"fit_window": 8000, "mean": "constant"})
    got = np.array([fitted.update(bar) for bar in bars])
    s = fitted.stats()
    np.testing.assert_allclose([s["mu"], s["omega"], s["alpha"], s["beta"]], [m, w, a, b],
                               rtol=1e-3)
    again = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, rescale=False).fix(
        [s["mu"], s["omega"], s["alpha"], s["beta"]])
    want = again.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    np.testing.assert_allclose((got[8000:] * 100.0) ** 2, want[7999:], rtol=1e-9, atol=0)
    # The mean forecast is μ, as arch's.
    assert again.forecast(horizon=1, start=0, reindex=False).mean.to_numpy()[-1, 0] == \
        pytest.approx(s["mu"], rel=1e-12)


# --- Kalman against pykalman ----------------------------------------------------------------------

KALMAN_CASES = [
    {},
    {"level_noise": 0.5, "slope_noise": 0.01, "initial_level_var": 10.0,
     "initial_slope_var": 1.0},
    {"slope_noise": 0.0, "initial_slope_var": 0.0, "level_noise": 0.05},  # local level
]


@pytest.mark.parametrize(("name", "options"), [
    ("BTC-1m", KALMAN_CASES[0]), ("BTC-1m", KALMAN_CASES[1]), ("ETH-5m", KALMAN_CASES[2])],
    ids=["BTC-1m-default", "BTC-1m-fast", "ETH-5m-local-level"])
def test_kalman_matches_pykalman(data_dir: Path, name: str, options: dict[str, Any]) -> None:
    from pykalman import KalmanFilter

    # pykalman filters in a Python loop: the first 3,000 closes keep the test short.
    bars, cols = load(data_dir, name)
    bars, close = bars[:3000], cols["close"][:3000]
    level = build(Kalman, {**options, "warmup": 1})
    slope = build(Kalman, {**options, "warmup": 1, "output": "slope"})
    got_level = np.array([level.update(b) for b in bars])
    got_slope = np.array([slope.update(b) for b in bars])
    c = level.config
    kf = KalmanFilter(
        transition_matrices=[[1.0, 1.0], [0.0, 1.0]], observation_matrices=[[1.0, 0.0]],
        transition_covariance=np.diag([c.level_noise, c.slope_noise]),
        observation_covariance=[[1.0]],
        initial_state_mean=[close[0], 0.0],
        initial_state_covariance=np.diag([c.initial_level_var, c.initial_slope_var]))
    means, _ = kf.filter(close)
    np.testing.assert_allclose(got_level, means[:, 0], rtol=1e-9, atol=0)
    # The slope is near zero at times: relative to the size of the price steps.
    np.testing.assert_allclose(got_slope, means[:, 1], rtol=1e-9,
                               atol=1e-9 * float(np.abs(np.diff(close)).mean()))


def test_kalman_is_invariant_to_price_scale(gridkit_sample_bars: list[Bar]) -> None:
    # Variances are ratios to the measurement noise: scaling the prices scales the output.
    bars = gridkit_sample_bars
    scaled = [Bar(b.ts, b.open, b.high, b.low, b.close * 1000.0, b.volume) for b in bars]
    a = stream(Kalman, {"initial_level_var": 0.0, "initial_slope_var": 0.0}, bars)
    b = stream(Kalman, {"initial_level_var": 0.0, "initial_slope_var": 0.0}, scaled)
    np.testing.assert_allclose(b, a * 1000.0, rtol=1e-9)


def test_kalman_level_smooths_the_close(gridkit_sample_columns: dict[str, Any]) -> None:
    close = gridkit_sample_columns["close"]
    level = build(Kalman, {"slope_noise": 0.0, "initial_slope_var": 0.0}).batch(
        gridkit_sample_columns)
    ok = ~np.isnan(level)
    # Filtered level: within the close's range, and its steps are smaller than the close's.
    assert close.min() <= level[ok].min() and level[ok].max() <= close.max()
    assert np.abs(np.diff(level[ok])).mean() < np.abs(np.diff(close[ok])).mean()


# --- volatility-state -----------------------------------------------------------------------------


def ref_state(vol: np.ndarray, low: float, high: float, h: float) -> np.ndarray:
    """Schmitt-trigger classification written from the definition, one threshold at a time."""
    out = np.full(len(vol), np.nan)
    state = None
    for i, v in enumerate(vol):
        if np.isnan(v):
            continue
        if state is None:
            state = sum(v >= t for t in (low, high))
        else:
            thresholds = (low, high)
            while state < 2 and v >= thresholds[state] + h:
                state += 1
            while state > 0 and v < thresholds[state - 1] - h:
                state -= 1
        out[i] = state
    return out


@pytest.mark.parametrize("h", [0.0, 0.02, 0.1])
def test_volatility_state_matches_reference(data_dir: Path, h: float) -> None:
    from gridkit.plugins.features.volatility import Volatility

    bars, cols = load(data_dir, "BTC-1m")
    opts = {"period": 60, "low": 0.6, "high": 0.9, "hysteresis": h}
    got = stream(VolatilityState, opts, bars)
    vol = build(Volatility, {"period": 60}).batch(cols) * math.sqrt(525600.0)
    np.testing.assert_array_equal(got, ref_state(vol, 0.6, 0.9, h))
    assert set(np.unique(got[~np.isnan(got)])) == {0.0, 1.0, 2.0}


def test_seed_thresholds_on_real_5m(data_dir: Path) -> None:
    # The seed's 30 % / 45 % table on 5m BTC (2021): mostly HIGH, with calmer stretches.
    bars, _ = load(data_dir, "BTC-5m-NFI")
    got = stream(VolatilityState, {"period": 288, "bars_per_year": 105120.0}, bars)
    got = got[~np.isnan(got)]
    assert (got == 2.0).mean() > 0.5 and (got < 2.0).any()


def test_hysteresis_reduces_flapping(data_dir: Path) -> None:
    _, cols = load(data_dir, "BTC-1m")
    changes = []
    for h in (0.0, 0.05, 0.2):
        got = build(VolatilityState, {"period": 30, "low": 0.6, "high": 0.9,
                                      "hysteresis": h}).batch(cols)
        got = got[~np.isnan(got)]
        changes.append(int((np.diff(got) != 0).sum()))
    assert changes[0] > changes[1] > changes[2] > 0


vols = st.lists(st.one_of(st.floats(0.0, 2.0), st.just(float("nan"))), max_size=200)


@settings(max_examples=200, deadline=None)
@given(vols, st.floats(0.05, 0.9), st.floats(0.01, 0.9), st.floats(0.0, 0.3))
def test_state_kernel_properties(values: list[float], low: float, gap: float, h: float) -> None:
    from gridkit.plugins.features.kernels_models import state_batch

    vol = np.array(values, dtype=np.float64)
    high = low + gap
    got = state_batch(vol, low, high, h)
    np.testing.assert_array_equal(got, ref_state(vol, low, high, h))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(vol))
    plain = state_batch(vol, low, high, 0.0)
    ok = ~np.isnan(vol)
    # No hysteresis: plain thresholding. With it: never further than one class from plain.
    np.testing.assert_array_equal(plain[ok], (vol[ok] >= low) + (vol[ok] >= high) * 1.0)
    if h <= gap:
        assert (np.abs(got[ok] - plain[ok]) <= 1).all()


# --- configuration --------------------------------------------------------------------------------


pipeline = feature_pipeline


@pytest.mark.parametrize(("text", "where", "message"), [
    ('use = "garch"\nomega = 0.1', "omega", "together"),
    ('use = "garch"\nomega = 0.1\nalpha = 0.5\nbeta = 0.6', "beta", "< 1"),
    ('use = "garch"\nfit_window = 10', "fit_window", ">= 100"),
    ('use = "garch"\nomega = 0.1\nalpha = 0.1\nbeta = 0.8\nmu = 0.01', "mu", "constant"),
    ('use = "garch"\nmean = "constant"\nmu = 0.01', "mu", "omega, alpha and beta"),
    ('use = "garch"\nmean = "constant"\nomega = 0.1\nalpha = 0.1\nbeta = 0.8', "mu",
     "needs mu"),
    ('use = "garch"\nmean = "ar"', "mean", "expected one of"),
    ('use = "volatility-state"\nlow = 0.5\nhigh = 0.4', "low", "below high"),
    ('use = "volatility-state"\nestimator = "ewma"', "estimator", "expected one of"),
    ('use = "kalman"\nlevel_noise = -1.0', "level_noise", ">= 0"),
    ('use = "kalman"\noutput = "trend"', "output", "expected one of"),
])
def test_bad_options_are_config_errors(gridkit_host: Any, text: str, where: str,
                                       message: str) -> None:
    config = parse_pipeline(pipeline(f"[[features]]\n{text}\n"))
    with pytest.raises(gridkit.ConfigError) as info:
        build_pipeline(config, gridkit_host)
    assert f"features[0].{where}" in str(info.value) and message in str(info.value)


def test_features_run_in_a_pipeline(gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(pipeline(
        '[[features]]\nuse = "garch"\nfit_window = 500\n'
        '[[features]]\nuse = "volatility-state"\n'
        '[[features]]\nuse = "kalman"\noutput = "slope"\n'))
    assert summary["status"] == "finished" and summary["bars_accepted"] == 3000
    fit = summary["components"]["features[0]"]
    assert fit["fits"] == 1 and fit["alpha"] + fit["beta"] < 1.0 and fit["omega"] > 0.0
    assert "mu" not in fit
    summary = gridkit_run_toml(pipeline(
        '[[features]]\nuse = "garch"\nfit_window = 500\nmean = "constant"\n'))
    fit = summary["components"]["features[0]"]
    assert fit["fits"] == 1 and math.isfinite(fit["mu"]) and fit["mu"] != 0.0


# --- contract tests -------------------------------------------------------------------------------


class TestGarchContract(FeatureContract):
    component_class = Garch
    options = {"fit_window": 1000}


class TestGarchRefitAnnualizedContract(FeatureContract):
    component_class = Garch
    options = {"fit_window": 500, "refit": 700, "annualize": True}


class TestGarchConstantMeanContract(FeatureContract):
    component_class = Garch
    options = {"fit_window": 1000, "mean": "constant", "refit": 900}


class TestGarchFixedContract(FeatureContract):
    component_class = Garch
    options = {"omega": 1e-3, "alpha": 0.05, "beta": 0.9, "fit_window": 100}


class TestVolatilityStateContract(FeatureContract):
    component_class = VolatilityState


class TestVolatilityStateGarchContract(FeatureContract):
    component_class = VolatilityState
    options = {"estimator": "garch", "fit_window": 1000, "low": 0.5, "high": 1.0,
               "hysteresis": 0.05}


class TestKalmanContract(FeatureContract):
    component_class = Kalman


class TestKalmanSlopeContract(FeatureContract):
    component_class = Kalman
    options = {"output": "slope", "level_noise": 0.1, "slope_noise": 0.001}
