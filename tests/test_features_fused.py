"""The fused bar-feature step: the same values as the Python updates, and when the engine uses it.

The fused kernel (gridkit.plugins.features.kernels_fused) re-implements ten ``update`` methods
over state arrays; every value must equal the Python one bit for bit, on whole real files and on
adversarial bar sequences. The engine fuses only when :mod:`gridkit.runtime.fusion` says it pays,
and a fused run must trade exactly like an unfused one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit.core.errors import ComponentError
from gridkit.core.types import Bar
from gridkit.plugins.features.bar_set import (
    Atr,
    BbPosition,
    Ema,
    PriceChange,
    PricePosition,
    TrendStrength,
    VolumeAcceleration,
)
from gridkit.plugins.features.fusion import BAR_FUSER
from gridkit.plugins.features.rsi import Rsi
from gridkit.plugins.features.volatility import Volatility
from gridkit.plugins.features.volume_ratio import VolumeRatio
from gridkit.runtime import fusion
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import build
from helpers import feature_pipeline

# Every fusable class with edge-case and default options, several of a kind side by side (the
# offsets of each must stay apart).
MEMBERS: list[tuple[type, dict[str, Any]]] = [
    (PriceChange, {}), (PriceChange, {"period": 1}),
    (PricePosition, {}), (PricePosition, {"period": 1}), (PricePosition, {"period": 3}),
    (VolumeAcceleration, {}), (VolumeAcceleration, {"period": 1, "lag": 1}),
    (Rsi, {}), (Rsi, {"period": 2}),
    (BbPosition, {}), (BbPosition, {"period": 2, "k": 1}),
    (Volatility, {}), (Volatility, {"period": 2}),
    (TrendStrength, {}), (TrendStrength, {"period": 1}),
    (Atr, {}), (Atr, {"period": 1}),
    (Ema, {}), (Ema, {"period": 2}),
    (VolumeRatio, {}), (VolumeRatio, {"period": 1}),
]
FILES = ["ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json",
         "ohlcv/nostalgiaforinfinity/SOL_USDT-5m.json"]


def fresh() -> list[Any]:
    return [build(cls, options) for cls, options in MEMBERS]


def assert_same_stream(bars: list[Bar]) -> None:
    """Python updates and the fused step give identical values (NaN where NaN) bar by bar."""
    python, fused = fresh(), BAR_FUSER.program(fresh())
    for i, bar in enumerate(bars):
        want = [f.update(bar) for f in python]
        got = fused.step(bar).tolist()
        for j, (a, b) in enumerate(zip(want, got, strict=True)):
            assert a == b or (math.isnan(a) and math.isnan(b)), (
                f"bar {i}: {type(python[j]).__name__}{MEMBERS[j][1]} python {a!r} fused {b!r}")


@pytest.mark.parametrize("name", FILES)
def test_fused_equals_python_updates_on_whole_real_files(data_dir: Path, name: str) -> None:
    rows = json.loads((data_dir / name).read_text())
    assert_same_stream([Bar(int(r[0]), *(float(x) for x in r[1:6])) for r in rows])


def test_fused_batch_equals_each_features_batch(gridkit_sample_columns: dict[str, Any]) -> None:
    got = BAR_FUSER.program(fresh()).batch(gridkit_sample_columns)
    for row, feature in zip(got, fresh(), strict=True):
        np.testing.assert_array_equal(row, feature.batch(gridkit_sample_columns))


prices = st.sampled_from([1.0, 2.0, 2.0, 3.5, 100.0, 1e-8, 1e8])
volumes = st.sampled_from([0.0, 0.0, 1.0, 2.5, 1e6])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(prices, prices, volumes), min_size=1, max_size=80))
def test_fused_equals_python_on_flat_runs_zero_volume_and_jumps(rows: list[Any]) -> None:
    # Repeated closes (flat Bollinger windows), zero volumes (zero means), huge jumps.
    bars = [Bar(i * 60_000, a, max(a, b), min(a, b), b, v) for i, (a, b, v) in enumerate(rows)]
    assert_same_stream(bars)


def test_ready_follows_the_fused_state_as_update_would_set_it(
        gridkit_sample_bars: list[Bar]) -> None:
    python, members = fresh(), fresh()
    BAR_FUSER.program(members)  # from here on, members' ready reads the fused state
    fused = members[0]._fused[0]
    for bar in gridkit_sample_bars[:300]:
        for f in python:
            f.update(bar)
        fused.step(bar)
        assert [f.ready for f in members] == [f.ready for f in python]
    assert all(f.ready for f in members)


def test_only_exact_built_in_classes_are_accepted() -> None:
    class MyRsi(Rsi):
        def update(self, bar: Bar) -> float:
            return 1.0

    assert BAR_FUSER.accepts(Rsi()) and BAR_FUSER.accepts(Atr())
    assert not BAR_FUSER.accepts(MyRsi())


# --- when the engine fuses ---------------------------------------------------------------------


def three() -> list[tuple[str, Any]]:
    return [("rsi", Rsi()), ("atr", Atr()), ("ema", Ema())]


@pytest.mark.parametrize(("setting", "mode", "events", "fused"), [
    ("off", "live", None, False),
    ("on", "backtest", 10, True),
    ("auto", "backtest", 10, False),           # short backtest: the start-up does not pay
    ("auto", "backtest", 499_999, False),      # 3 features x 499,999 bars < 1.5M updates
    ("auto", "backtest", 500_000, True),
    ("auto", "backtest", None, True),           # length unknown
    ("auto", "paper", 10, True),                # latency counts, start-up does not
    ("auto", "live", 10, True),
])
def test_plan_policy(setting: str, mode: str, events: int | None, fused: bool) -> None:
    groups = fusion.plan(three(), setting, mode, events)
    assert bool(groups) is fused
    if fused:
        assert [k for k, _ in groups[0][1]] == ["rsi", "atr", "ema"]


def test_auto_needs_enough_features_but_on_fuses_even_one() -> None:
    assert fusion.plan(three()[:2], "auto", "live", None) == []
    assert fusion.plan(three()[:2], "auto", "backtest", 10_000_000) == []
    assert len(fusion.plan(three()[:1], "on", "backtest", 1)) == 1


def toml(setting: str, validators: str = "") -> str:
    features = "".join(f'[[features]]\nuse = "{n}"\n' for n in
                       ("rsi", "volatility", "volume-ratio", "bb-position", "atr"))
    text = feature_pipeline(features + '[[features]]\nuse = "ema"\nkey = "ema50"\nperiod = 50\n')
    return text.replace('symbol = "BTC/USDT"',
                        f'symbol = "BTC/USDT"\nfuse_features = "{setting}"\n{validators}')


def test_a_fused_run_trades_exactly_like_an_unfused_one(gridkit_host: Any) -> None:
    on, off = (run_pipeline(build_pipeline(parse_pipeline(toml(setting)), gridkit_host))
               for setting in ("on", "off"))
    assert on["features_fused"] == ["rsi", "volatility", "volume-ratio", "bb-position", "atr",
                                    "ema50"]
    assert off["features_fused"] == []
    for key in ("buy_fills", "sell_fills", "final_equity", "realized_profit", "max_drawdown"):
        assert on[key] == off[key], key


def test_features_seen_by_later_stages_are_the_same(gridkit_host: Any) -> None:
    # The last bar's feature values, as a regime or strategy reads them from ctx.features.
    seen = {}
    for setting in ("on", "off"):
        pipeline = build_pipeline(parse_pipeline(toml(setting)), gridkit_host)
        captured: dict[str, float] = {}
        original = pipeline.strategy.on_bar

        def spy(ctx: Any, original: Any = original, captured: dict = captured) -> Any:
            captured.update(ctx.features)
            return original(ctx)

        pipeline.strategy.on_bar = spy  # type: ignore[method-assign]
        run_pipeline(pipeline)
        seen[setting] = captured
    assert seen["on"].keys() == seen["off"].keys()
    assert all(not math.isnan(v) for v in seen["on"].values())
    assert seen["on"] == seen["off"]


def test_a_raising_fused_step_names_the_feature(gridkit_host: Any, tmp_path: Path) -> None:
    # With the validators switched off a zero close reaches volatility: log(0) raises in Python
    # and in the kernel alike, and the error names that feature, as an unfused run does.
    rows = [[i * 60_000, 10.0, 11.0, 9.0, 10.0 if i != 30 else 0.0, 1.0] for i in range(60)]
    data = tmp_path / "zero.json"
    data.write_text(json.dumps(rows))
    messages = []
    for setting in ("on", "off"):
        text = toml(setting).replace("path = ", f'path = "{data.as_posix()}"\n# ', 1)
        text = text.replace("[pipeline]", "validators = []\n[pipeline]", 1)
        with pytest.raises(ComponentError) as err:
            run_pipeline(build_pipeline(parse_pipeline(text), gridkit_host))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("feature 'volatility' (plugin gridkit.features (gridkit)) "
                                  "raised on event #31")
    assert "(features[1]): ValueError: math domain error" in messages[0]


def test_each_feature_names_its_own_step_of_the_kernel() -> None:
    from gridkit.plugins.features import fused_kinds

    kinds = set()
    for cls, options in MEMBERS:
        constant = cls.name.upper().replace("-", "_")
        kind = build(cls, options).fused_layout().kind
        assert getattr(fused_kinds, constant) == kind
        kinds.add(kind)
    assert kinds == set(fused_kinds.KINDS)  # every step of the kernel has its feature


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside functions."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_fusion_modules_import_no_feature_module() -> None:
    # The fusable classes declare their layouts; the fusion code only lays them out, so the
    # features import fusion and never the other way round.
    from gridkit.plugins.features import fusion as fusion_module

    package = Path(fusion_module.__file__).parent
    kinds = "gridkit.plugins.features.fused_kinds"
    allowed = {kinds, *(f"{kinds}.{name}" for name in dir(__import__(kinds, fromlist=["x"]))),
               "gridkit.plugins.features.fusion", "gridkit.plugins.features.kernels_fused",
               "gridkit.plugins.features.kernels_fused.fused_bar_batch",
               "gridkit.plugins.features.kernels_fused.fused_bar_step"}
    for name in ("fusion.py", "kernels_fused.py"):
        imported = {m for m in _imports(package / name)
                    if m.startswith("gridkit.plugins.features")}
        assert imported <= allowed, (name, imported - allowed)


def test_a_subclass_is_fused_only_if_it_declares_its_own_layout() -> None:
    class Declared(Rsi):
        def fused_layout(self) -> Any:
            return super().fused_layout()

    class Unknown(Rsi):
        def fused_layout(self) -> Any:
            return super().fused_layout()._replace(kind=99)

    assert BAR_FUSER.accepts(Declared()) and not BAR_FUSER.accepts(Unknown())
    with pytest.raises(ValueError, match="no fused step of kind 99"):
        BAR_FUSER.program([Unknown()])
