"""feature-attention, temporal-attention and regime-attention: their formulas against numpy on
real BTC/USDT 5m bars, their state under hostile inputs, resume, and their options.

The modules are registered on the test's host here: the installed metadata of an editable
install may predate their entry point (``gridkit.attention_modules``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridkit
from gridkit import Bar, ConfigError
from gridkit.plugins import attention_modules
from gridkit.plugins.attention_modules import (
    FeatureAttention,
    RegimeAttention,
    TemporalAttention,
)
from gridkit.plugins.features import Rsi, Volatility, VolumeRatio
from gridkit.plugins.regimes import Dormant, Ranging, Trending, Volatile
from gridkit.testing import AttentionContract, advance, build, context

REPO = Path(__file__).resolve().parent.parent
BTC_5M = REPO / "examples" / "data" / "BTC_USDT-5m.json.gz"


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    """The shipped real Binance BTC/USDT 5m bars (22,430)."""
    rows = json.loads(gzip.decompress(BTC_5M.read_bytes()))
    return [Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows]


@pytest.fixture
def host(gridkit_host: Any) -> Any:
    """The test's host, with the attention modules registered if the entry point is not."""
    if not gridkit_host.pm.is_registered(attention_modules):
        gridkit_host.register(attention_modules, "gridkit.attention_modules", "gridkit")
    return gridkit_host


def alpha(halflife: float) -> float:
    return 1.0 - 2.0 ** (-1.0 / halflife)


def ew_weights(n: int, a: float) -> np.ndarray:
    """The weights an EW recursion started at the first sample gives n samples (sum 1)."""
    w = a * (1.0 - a) ** np.arange(n - 1, -1, -1, dtype=float)
    w[0] = (1.0 - a) ** (n - 1)
    return w


def ew_var(x: np.ndarray, a: float) -> float:
    w = ew_weights(len(x), a)
    return float(w @ (x - w @ x) ** 2)


def ew_corr(x: np.ndarray, y: np.ndarray, a: float) -> float:
    w = ew_weights(len(x), a)
    dx, dy = x - w @ x, y - w @ y
    return float((w @ (dx * dy)) / math.sqrt((w @ dx**2) * (w @ dy**2)))


def step_features(module: Any, bars: list[Bar], *, cost: dict[str, float] | None = None,
                  labels: bool = False) -> dict[str, Any]:
    """Step ``module`` over ``bars`` as the engine does (features, attention, regime), holding
    0.1 BTC so equity follows the price; returns what it saw, per bar."""
    feats = {"rsi": Rsi(), "volatility": Volatility(), "volume-ratio": VolumeRatio()}
    rules = [Ranging(), Trending(), Volatile(), Dormant()]
    ctx = context(bar=bars[0], base=0.1)
    ctx.index = -1
    if cost:
        ctx.feature_cost.update(cost)
    seen: dict[str, list[Any]] = {"equity": [], "regime": [], "close": [],
                                  **{k: [] for k in feats}}
    for bar in bars:
        advance(ctx, bar)
        for key, f in feats.items():
            ctx.features[key] = v = f.update(bar)
            seen[key].append(v)
        seen["equity"].append(ctx.portfolio.equity)
        seen["regime"].append(ctx.regime)
        seen["close"].append(bar.close)
        module.observe(ctx)
        if labels:
            best_label, best = None, math.nan
            for rule in rules:
                s = rule.score(ctx)
                if s == s and (best != best or s > best):
                    best_label, best = rule.label, s
            ctx.regime = best_label
    seen["ctx"] = ctx
    return seen


# --- contracts -----------------------------------------------------------------------------------


class TestFeatureAttentionContract(AttentionContract):
    component_class = FeatureAttention


class TestTemporalAttentionContract(AttentionContract):
    component_class = TemporalAttention


class TestRegimeAttentionContract(AttentionContract):
    component_class = RegimeAttention


def test_the_modules_are_registered(host: Any) -> None:
    from gridkit.testing import registry

    reg = registry(host)
    for name, cls in [("feature-attention", FeatureAttention),
                      ("temporal-attention", TemporalAttention),
                      ("regime-attention", RegimeAttention)]:
        assert reg.get("attention", name).cls is cls
        assert cls.phase == "active"


# --- formulas against numpy on real bars ---------------------------------------------------


def test_ew_recursion_is_the_weighted_moments() -> None:
    # The closed form the checks below use is what the modules' recursion computes.
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    a = alpha(20)
    m, v = x[0], 0.0
    for xi in x[1:]:
        d = xi - m
        m += a * d
        v = (1 - a) * (v + a * d * d)
    w = ew_weights(len(x), a)
    assert math.isclose(w.sum(), 1.0, rel_tol=1e-12)
    assert math.isclose(m, w @ x, rel_tol=1e-9)
    assert math.isclose(v, ew_var(x, a), rel_tol=1e-9)


def test_feature_weights_match_numpy(bars: list[Bar]) -> None:
    cost = {"rsi": 3e-6, "volatility": 1e-6}  # volume-ratio has no sample yet: speed 1
    module = build(FeatureAttention, {"halflife": 300, "refresh": 1})
    seen = step_features(module, bars, cost=cost)
    a = alpha(300)
    equity = np.array(seen["equity"])
    r = np.r_[np.nan, equity[1:] / equity[:-1] - 1.0]
    raw, scores = {}, {}
    for key in ("rsi", "volatility", "volume-ratio"):
        x = np.array(seen[key])
        finite = x[np.isfinite(x)]
        var_score = min(1.0, ew_var(np.diff(finite), a) / (2 * ew_var(finite, a)))
        pair = np.isfinite(x[:-1]) & np.isfinite(r[1:])
        corr = abs(ew_corr(x[:-1][pair], r[1:][pair], a))
        speed = {"rsi": 1e-6 / 3e-6, "volatility": 1.0}.get(key, 1.0)
        scores[key] = (var_score, corr, speed)
        raw[key] = 0.4 * var_score + 0.4 * corr + 0.2 * speed
    mean = sum(raw.values()) / 3
    got = module.proposal()
    stats = module.stats()["features"]
    for key in raw:
        assert math.isclose(got[key], raw[key] / mean, rel_tol=1e-6), key
        for name, want in zip(("variance_score", "correlation", "speed_score"), scores[key],
                              strict=True):
            assert math.isclose(stats[key][name], want, rel_tol=1e-6, abs_tol=1e-12), (key, name)
    assert math.isclose(sum(got.values()) / len(got), 1.0, rel_tol=1e-12)
    assert seen["ctx"].weights == got, "written into ctx as if active"
    # Real features carry information: none has a zero score, and they are not all alike.
    assert all(0 < v < 1 for v, _, _ in scores.values())
    assert len({round(w, 6) for w in got.values()}) == 3


def test_feature_weights_without_speed_and_before_ready(bars: list[Bar]) -> None:
    module = build(FeatureAttention, {"speed": 0, "variance": 1, "correlation": 0})
    ctx = context(bar=bars[0])
    ctx.features.update({"a": math.nan, "b": 1.0})
    module.observe(ctx)
    assert ctx.weights == {}, "no feature has two finite values yet"
    advance(ctx, bars[1])
    ctx.features.update({"a": 5.0, "b": 1.0})
    module.observe(ctx)
    # b is ready but constant: every raw score is 0, so the ready features weigh 1.
    assert ctx.weights == {"b": 1.0}


def test_temporal_weights_match_numpy(bars: list[Bar]) -> None:
    module = build(TemporalAttention, {"rate": 0.02, "halflife": 200})
    ctx = context()
    for bar in bars:
        advance(ctx, bar)
        module.observe(ctx)
    close = pd.Series([b.close for b in bars])
    a = alpha(200)
    outcome = np.sign(np.diff(close.to_numpy()))  # outcome[t]: bar t -> t + 1
    hit_at = []  # per horizon: the EW hit rate after each bar t + 1 (NaN before the first)
    for h in (20, 100, 500):
        ema = close.ewm(alpha=2 / (h + 1), adjust=False).mean().to_numpy()
        pred = np.sign(close.to_numpy() - ema)
        pred[: h - 1] = 0  # made once h closes were seen
        p = pred[:-1]
        scored = (p != 0) & (outcome != 0)
        hits = pd.Series((p[scored] == outcome[scored]).astype(float))
        rate = hits.ewm(alpha=a, adjust=False).mean().to_numpy()
        series = np.full(len(outcome), np.nan)
        series[scored] = rate
        hit_at.append(pd.Series(series).ffill().to_numpy())
        st_ = module.stats()["horizons"][f"horizon:{h}"]
        assert st_["scored"] == int(scored.sum())
        assert math.isclose(st_["hit_rate"], rate[-1], rel_tol=1e-9)
    w = np.array([0.5, 0.3, 0.2])
    for t in range(len(outcome)):
        hr = np.array([s[t] for s in hit_at])
        if outcome[t] == 0 or np.isnan(hr).any():
            continue
        e = np.abs(2 * hr - 1)
        if e.sum() > 0:
            w = 0.98 * w + 0.02 * e / e.sum()
            w /= w.sum()
    got = module.proposal()
    assert list(got) == ["horizon:20", "horizon:100", "horizon:500"]
    np.testing.assert_allclose(list(got.values()), w, rtol=1e-9)
    assert math.isclose(sum(got.values()), 1.0, rel_tol=1e-12)
    assert ctx.weights == got
    assert not np.allclose(w, [0.5, 0.3, 0.2], atol=0.01), "it learned something"


def test_regime_multipliers_match_numpy(bars: list[Bar]) -> None:
    opts = {"rate": 0.1, "halflife": 200, "min_bars": 30, "min_mult": 0.3, "max_mult": 3.0}
    module = build(RegimeAttention, opts)
    seen = step_features(module, bars, labels=True)
    equity = np.array(seen["equity"])
    labels = np.array(seen["regime"], dtype=object)  # the label current during each bar
    r = np.r_[np.nan, equity[1:] / equity[:-1] - 1.0]
    a = alpha(200)
    start = attention_modules.SEED_ADJUSTMENTS
    got = module.stats()["regimes"]
    assert set(got) == set(start)
    for label in start:
        rs = pd.Series(r[1:][labels[1:] == label])
        assert got[label]["bars"] == len(rs) > 30
        mean = rs.ewm(alpha=a, adjust=False).mean().to_numpy()
        var = rs.ewm(alpha=a, adjust=False).var(bias=True).to_numpy()
        s, lv = start[label]["spacing"], start[label]["levels"]
        for i in range(29, len(rs)):  # from the 30th bar of the regime
            mu, sd = mean[i], math.sqrt(var[i])
            if mu == 0:
                continue
            step = 0.1 * (min(1.0, abs(mu) / sd) if sd > 0 else 1.0)
            if mu < 0:
                s, lv = min(3.0, max(0.3, s * (1 + step))), min(3.0, max(0.3, lv * (1 - step)))
            else:
                s = min(3.0, max(0.3, s + step * (start[label]["spacing"] - s)))
                lv = min(3.0, max(0.3, lv + step * (start[label]["levels"] - lv)))
        assert math.isclose(got[label]["mean_return"], mean[-1], rel_tol=1e-6)
        assert math.isclose(got[label]["std_return"], math.sqrt(var[-1]), rel_tol=1e-6)
        assert math.isclose(got[label]["spacing"], s, rel_tol=1e-9), label
        assert math.isclose(got[label]["levels"], lv, rel_tol=1e-9), label
    adjust = seen["ctx"].adjust
    assert adjust == module.proposal()
    assert set(adjust) == {f"{k}:{p}" for k in start for p in ("spacing", "levels")}


def test_regime_attention_moves_only_the_current_regime() -> None:
    module = build(RegimeAttention, {"min_bars": 2, "rate": 0.5, "halflife": 1, "refresh": 1})
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0), base=1.0)
    ctx.regime = "TRENDING"
    module.observe(ctx)
    for i, price in enumerate([99.0, 98.0, 97.0], start=1):  # the grid of TRENDING loses
        advance(ctx, Bar(i, price, price, price, price, 1.0))
        module.observe(ctx)
    assert ctx.adjust["TRENDING:spacing"] > 1.5 and ctx.adjust["TRENDING:levels"] < 0.8
    assert ctx.adjust["RANGING:spacing"] == 1.0 and ctx.adjust["RANGING:levels"] == 1.2
    assert ctx.adjust["VOLATILE:spacing"] == 2.0 and ctx.adjust["VOLATILE:levels"] == 0.5
    wide = ctx.adjust["TRENDING:spacing"]
    for i, price in enumerate([110.0, 120.0, 130.0, 140.0, 150.0], start=4):  # it wins
        advance(ctx, Bar(i, price, price, price, price, 1.0))
        module.observe(ctx)
    assert 1.5 <= ctx.adjust["TRENDING:spacing"] < wide, "drifts back toward the start"


def test_regime_attention_publishes_every_refresh_bars() -> None:
    module = build(RegimeAttention, {"min_bars": 2, "rate": 0.1, "halflife": 1, "refresh": 4})
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0), base=1.0)
    ctx.regime = "TRENDING"
    module.observe(ctx)
    seen = []
    for i, price in enumerate([99.0, 98.0, 97.0, 96.0, 95.0], start=1):
        advance(ctx, Bar(i, price, price, price, price, 1.0))
        module.observe(ctx)
        seen.append(ctx.adjust["TRENDING:spacing"])
    assert seen[:3] == [1.5] * 3, "learned, not yet published"
    assert seen[3] > 1.5 and seen[4] == seen[3], "published at bar 4, held until bar 8"
    assert module.stats()["regimes"]["TRENDING"]["spacing"] > seen[3], "still learning"


def test_a_tick_event_learns_nothing(bars: list[Bar]) -> None:
    # The attention stage also runs on trades when decide_on names them: same bar, same index.
    for cls in (FeatureAttention, TemporalAttention, RegimeAttention):
        module, twin = cls(), cls()
        ctx, ctx2 = context(bar=bars[0], base=0.1), context(bar=bars[0], base=0.1)
        for bar in bars[:300]:
            for c, m, times in ((ctx, module, 1), (ctx2, twin, 3)):
                if c.bar is not bar:
                    advance(c, bar)
                c.features["x"] = bar.close
                for _ in range(times):
                    m.observe(c)
        assert pickle.dumps(module.snapshot()) == pickle.dumps(twin.snapshot()), cls.name


# --- hostile streams ------------------------------------------------------------------------------

_values = st.one_of(st.floats(-1e9, 1e9, allow_nan=False),
                    st.sampled_from([math.nan, math.inf, -math.inf, 0.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(_values, _values, _values, st.floats(1.0, 1e6)),
                     min_size=2, max_size=80),
       coeffs=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 1)))
def test_feature_weights_stay_finite_positive_and_mean_one(rows: list[tuple[float, ...]],
                                                           coeffs: tuple[float, ...]) -> None:
    module = build(FeatureAttention, {"variance": coeffs[0], "correlation": coeffs[1],
                                      "speed": coeffs[2], "halflife": 5})
    ctx = context(bar=Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0), base=1.0)
    ctx.feature_cost.update({"a": 1e-6, "b": 0.0})
    for i, (x, y, z, price) in enumerate(rows, start=1):
        advance(ctx, Bar(i, price, price, price, price, 1.0))
        ctx.features.update({"a": x, "b": y, "c": z})
        module.observe(ctx)
        w = ctx.weights
        assert all(math.isfinite(v) and v > 0 for v in w.values()), w
        if w:
            assert math.isclose(sum(w.values()) / len(w), 1.0, rel_tol=1e-9)
    for s in module._stats.tolist():  # NaN never entered the statistics
        assert all(not math.isnan(v) for i, v in enumerate(s) if i not in (1, 2)), s


@settings(max_examples=60, deadline=None)
@given(closes=st.lists(st.one_of(st.floats(1e-3, 1e6),
                                 st.sampled_from([math.nan, math.inf, 0.0, -1.0])),
                       min_size=1, max_size=200))
def test_temporal_weights_stay_a_distribution(closes: list[float]) -> None:
    module = build(TemporalAttention, {"horizons": [2, 3, 5], "start": [0.2, 0.3, 0.5],
                                       "rate": 0.5, "halflife": 3})
    ctx = context()
    for i, c in enumerate(closes):
        ctx.bar = ctx.event = Bar(i, c, c, c, c, 1.0)  # a bad close is still a new bar
        ctx.index = i
        module.observe(ctx)
        w = [ctx.weights[f"horizon:{h}"] for h in (2, 3, 5)]
        assert all(math.isfinite(v) and v > 0 for v in w)
        assert math.isclose(sum(w), 1.0, rel_tol=1e-12)
    assert all(not math.isnan(e) for e in module._ema if module._closes)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["RANGING", "TRENDING", "VOLATILE", "DORMANT",
                                                 None]), st.floats(1.0, 1e6)),
                      min_size=1, max_size=150))
def test_regime_multipliers_stay_bounded(steps: list[tuple[str | None, float]]) -> None:
    module = build(RegimeAttention, {"rate": 1.0, "min_bars": 2, "min_mult": 0.5,
                                     "max_mult": 2.0})
    ctx = context(bar=Bar(0, 1.0, 1.0, 1.0, 1.0, 1.0), base=1.0)
    for i, (label, price) in enumerate(steps, start=1):
        advance(ctx, Bar(i, price, price, price, price, 1.0))
        ctx.regime = label
        module.observe(ctx)
        assert len(ctx.adjust) == 6
        assert all(0.5 <= v <= 2.0 for v in ctx.adjust.values()), ctx.adjust


# --- resume ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [FeatureAttention, TemporalAttention, RegimeAttention])
def test_snapshot_restore_continues_identically(cls: type, bars: list[Bar]) -> None:
    cost = {"rsi": 2e-6, "volatility": 1e-6, "volume-ratio": 1.5e-6}
    straight = cls()
    want = step_features(straight, bars[:4000], cost=cost, labels=True)
    first = cls()
    step_features(first, bars[:2500], cost=cost, labels=True)
    saved = pickle.loads(pickle.dumps(first.snapshot()))
    resumed = cls()
    resumed.restore(saved)
    # Re-run the same bars through fresh features, handing the resumed module only bars 2500+.
    got = step_features(_From(resumed, 2500), bars[:4000], cost=cost, labels=True)
    assert resumed.proposal() == straight.proposal()
    assert resumed.stats() == straight.stats() or _nan_equal(resumed.stats(), straight.stats())
    assert dict(got["ctx"].weights) == dict(want["ctx"].weights)
    assert dict(got["ctx"].adjust) == dict(want["ctx"].adjust)


class _From:
    """Passes observe() to a module from bar ``start`` on (the bars before were its past)."""

    def __init__(self, module: Any, start: int) -> None:
        self.module, self.start = module, start

    def observe(self, ctx: Any) -> None:
        if ctx.index >= self.start:
            self.module.observe(ctx)
        else:
            ctx.weights.clear()
            ctx.adjust.clear()


def _nan_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class Record(gridkit.Monitor):
    """Records every bar's weights, adjustments and feature costs (tests only)."""

    name = "attention-record"
    log: list[str] = []

    def on_event(self, ctx: gridkit.Context) -> None:
        Record.log.append(json.dumps([ctx.weights, ctx.adjust]))
        if ctx.index == 4095:
            Record.cost = dict(ctx.feature_cost)


PIPELINE = (REPO / "examples" / "dynamic.toml").read_text().replace(
    'use = "progressive"', """use = "feature-attention"
speed = 0
[[attention]]
use = "temporal-attention"
[[attention]]
use = "regime-attention"
""").replace('[strategy]\nuse = "symmetric"\nlevels = 8',
             '[strategy]\nuse = "regime-selector"\n#').replace("spacing = 0.006", "") \
    .replace("recenter_on_regime = true", "").replace("cooldown = 720", "") \
    + '\n[[monitors]]\nuse = "attention-record"\n'


def test_engine_run_stopped_and_resumed_equals_straight(tmp_path: Path, host: Any) -> None:
    """The three modules in the dynamic example with the regime selector, stopped half way and
    resumed: every bar's ctx.weights and ctx.adjust equal a run straight through. (speed = 0:
    the feature timings differ between any two runs.)"""
    from gridkit.runtime.engine import build_pipeline, run_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    class Plugin:
        @staticmethod
        @gridkit.hookimpl
        def gridkit_register_monitors(register: Any) -> None:
            register(Record)

    host.register(Plugin, "attention-record")

    def build_(db: str) -> Any:
        config = parse_pipeline(PIPELINE, base_dir=REPO / "examples")
        return build_pipeline(config, host, store_path=str(tmp_path / db))

    Record.log = []
    whole = run_pipeline(build_("a.db"))
    straight = Record.log
    assert whole["status"] == "finished"
    assert set(Record.cost) == {"rsi", "volatility", "volume-ratio"}, "sampled on bar 4096"
    assert all(v > 0 for v in Record.cost.values())
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 20_000 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    Record.log = []
    first = run_pipeline(build_("b.db"), stop)
    assert first["status"] == "stopped" and first["bars_seen"] < whole["bars_seen"]
    resumed = run_pipeline(build_("b.db"), resume=True)
    assert Record.log == straight
    assert resumed["final_equity"] == whole["final_equity"]
    for i in range(3):
        got, want = (_timeless(run["components"][f"attention[{i}]"]) for run in (resumed, whole))
        assert _nan_equal(got, want), i


def _timeless(stats: dict[str, Any]) -> dict[str, Any]:
    """A module's stats less the speed scores, which come from the run's own clock readings."""
    features = {k: {n: v for n, v in row.items() if n != "speed_score"}
                for k, row in stats.get("features", {}).items()}
    return {**stats, "features": features}


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "options", "words"), [
    (FeatureAttention, {"variance": -0.4}, ["options.variance", ">= 0"]),
    (FeatureAttention, {"variance": 0, "correlation": 0, "speed": 0}, ["must be > 0"]),
    (TemporalAttention, {"horizons": [20, 500, 100]}, ["options.horizons", "increasing"]),
    (TemporalAttention, {"start": [0.5, 0.3, 0.3]}, ["options.start", "sum to 1"]),
    (TemporalAttention, {"horizons": [20, 100], "start": [0.5, 0.3, 0.2]},
     ["options.start", "one weight per horizon"]),
    (RegimeAttention, {"regimes": {"RANGING": {"spacing": 1.0, "levles": 1.2}}},
     ["options.regimes", "unknown key 'levles'"]),
    (RegimeAttention, {"regimes": {"ranging": {"spacing": 1.0, "levels": 1.2}}},
     ["options.regimes", "upper-case"]),
    (RegimeAttention, {"regimes": {"RANGING": {"spacing": 9.0, "levels": 1.2}}},
     ["options.regimes", "outside"]),
])
def test_bad_options_are_one_clear_line(cls: type, options: dict[str, Any],
                                        words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build(cls, options)
    text = str(info.value)
    assert "\n" not in text, text
    for word in words:
        assert word in text, text
