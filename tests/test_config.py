"""pipeline.toml: schema, strict types, and every problem reported with its TOML path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gridkit import (
    ConfigError,
    OptionError,
    at_least,
    between,
    fee_rate,
    fraction,
    non_negative,
    positive,
)
from gridkit.core.config import optional
from gridkit.runtime.engine import build_pipeline
from gridkit.runtime.pipeline_file import load_pipeline, parse_pipeline
from gridkit.testing import sample_path

SAMPLE = sample_path().as_posix()
GOOD = f"""
[pipeline]
name = "t"
symbol = "BTC/USDT"
capital = 5000

[source]
use = "freqtrade-json"
path = "{SAMPLE}"

[[features]]
use = "rsi"
period = 14

[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 20
qty = 0.001

[[risk]]
use = "drawdown"
limit = 0.2

[executor]
use = "simulated"
maker_fee = 0.001
taker_fee = 0.001
"""


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    return str(err.value)


def test_good_pipeline_builds() -> None:
    p = build_pipeline(parse_pipeline(GOOD))
    assert p.run.capital == 5000.0
    assert [k for k, _ in p.features] == ["rsi"]
    assert p.strategy.config.grids == 20
    # Absent sections take their defaults: the four validators, the sqlite store.
    assert [v.name for v in p.validators] == ["timestamp", "price", "volume", "ohlc"]
    assert p.store.name == "sqlite"


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline("[pipeline]\nsymbol = \n", source="p.toml")
    msg = str(err.value)
    assert msg.startswith("p.toml: TOML syntax error")
    assert "line 2" in msg and "column" in msg


def test_unknown_section_suggests_the_close_one() -> None:
    msg = problems(GOOD.replace("[strategy]", "[stratgy]"))
    assert "unknown section [stratgy]; did you mean [strategy]?" in msg
    assert "missing section [strategy]" in msg


def test_unknown_option_suggests_the_close_one() -> None:
    msg = problems(GOOD.replace("grids = 20", "gridz = 20"))
    assert "strategy.gridz: unknown option (did you mean 'grids'?)" in msg


def test_unknown_pipeline_key() -> None:
    assert "pipeline.capitl: unknown option (did you mean 'capital'?)" in problems(
        GOOD.replace("capital = 5000", "capitl = 5000"))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("grids = 20", "grids = 'ten'", "strategy.grids: expected int, got 'ten'"),
    ("grids = 20", "grids = 20.5", "strategy.grids: expected int, got 20.5"),
    ("grids = 20", "grids = true", "strategy.grids: expected int, got True"),
    ("qty = 0.001", "qty = '0.001'", "strategy.qty: expected float, got '0.001'"),
    ("capital = 5000", "capital = -1", "pipeline.capital: must be > 0, got -1"),
    ("maker_fee = 0.001", "maker_fee = -0.001", "executor.maker_fee: must be in [0, 0.1), a "
     "fraction of the traded value (0.001 is 0.1 %), got -0.001"),
    # A fee of 10 % or more is a percentage written as a fraction (0.1 meant as 0.1 %).
    ("maker_fee = 0.001", "maker_fee = 0.1", "executor.maker_fee: must be in [0, 0.1), a "
     "fraction of the traded value (0.001 is 0.1 %), got 0.1"),
    ("taker_fee = 0.001", "taker_fee = 1.5", "executor.taker_fee: must be in [0, 0.1), a "
     "fraction of the traded value (0.001 is 0.1 %), got 1.5"),
    ("taker_fee = 0.001", "taker_fee = inf", "executor.taker_fee: must be a finite number in "
     "[0, 0.1), a fraction of the traded value (0.001 is 0.1 %), got inf"),
    ("period = 14", "period = 1", "features[0].period: must be >= 2, got 1"),
    ("limit = 0.2", "limit = 2", "risk[0].limit: must be in (0, 1], got 2"),
    # TOML has inf and nan: no capital, price, quantity or limit is either.
    ("capital = 5000", "capital = inf", "pipeline.capital: must be a finite number > 0, got inf"),
    ("capital = 5000", "capital = nan", "pipeline.capital: must be a finite number > 0, got nan"),
    ("upper = 60000", "upper = inf", "strategy.upper: must be a finite number > 0, got inf"),
    ("qty = 0.001", "qty = +inf", "strategy.qty: must be a finite number > 0, got inf"),
    ("limit = 0.2", "limit = nan", "risk[0].limit: must be a finite number in (0, 1], got nan"),
    ('mode = "backtest"', 'mode = "paper"', ""),
])
def test_type_and_range_errors_carry_the_toml_path(old: str, new: str, expected: str) -> None:
    text = GOOD.replace(old, new) if old in GOOD else GOOD.replace(
        'name = "t"', f'name = "t"\n{new}')
    if not expected:  # paper mode with a file source: refused with a reason
        assert "paper mode needs a live data source" in problems(text)
        return
    assert expected in problems(text)


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("check", "condition", "good"), [
    (positive(), "> 0", 1e-12), (non_negative(), ">= 0", 0.0), (at_least(2), ">= 2", 2),
    (fraction(), "in (0, 1]", 1.0), (between(-1, 1), "in (-1, 1)", 0.5),
    (optional(positive()), "> 0", None),
    (fee_rate(), "in [0, 0.1), a fraction of the traded value (0.001 is 0.1 %)", 0.0999),
])
@pytest.mark.parametrize("bad", [INF, -INF, NAN])
def test_every_numeric_validator_refuses_inf_and_nan(check: Any, condition: str, good: Any,
                                                     bad: float) -> None:
    field = SimpleNamespace(name="x")
    check(None, field, good)
    if condition in ("> 0", ">= 0"):
        check(None, field, 10**400)  # an int too large for a float is still finite
    with pytest.raises(OptionError) as err:
        check(None, field, bad)
    assert str(err.value) == f"must be a finite number {condition}, got {bad!r}"
    assert err.value.option == "x"


def test_fee_rate_bounds() -> None:
    field = SimpleNamespace(name="fee")
    for ok in (0, 0.0, 0.001, 0.0999):
        fee_rate()(None, field, ok)
    fee_rate(below=0.5)(None, field, 0.2)  # a plugin may allow more
    for bad in (0.1, 1.5, -1e-9):
        with pytest.raises(OptionError):
            fee_rate()(None, field, bad)


def test_all_problems_are_collected_in_one_error() -> None:
    text = (GOOD.replace("grids = 20", "grids = 1")
            .replace("maker_fee = 0.001", "maker_fee = -1")
            .replace('use = "rsi"', 'use = "rsx"'))
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    assert len(err.value.problems) == 3
    assert "3 problems" in str(err.value)


def test_every_bad_option_of_one_component_is_reported_together() -> None:
    # attrs stops at the first validator that raises: each option is checked on its own first.
    text = (GOOD.replace("grids = 20", "grids = 1")
            .replace("qty = 0.001", "qty = -0.5\nmode = \"cubic\"\ngridz = 3")
            .replace("lower = 50000\n", "")
            .replace("upper = 60000", "upper = inf"))
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    strategy = [p for p in err.value.problems if p.startswith("strategy")]
    assert strategy == [
        "strategy.gridz: unknown option (did you mean 'grids'?); options are: direction, "
        "exit_bars, grids, lower, mode, on_exit, on_stop, qty, stop_loss, stop_loss_equity, "
        "take_profit, take_profit_equity, upper",
        "strategy.lower: required option is missing",
        "strategy.upper: must be a finite number > 0, got inf",
        "strategy.grids: must be >= 2, got 1",
        "strategy.qty: must be > 0, got -0.5",
        "strategy.mode: expected one of 'arithmetic', 'geometric', got 'cubic'",
    ]


def test_type_errors_and_validator_errors_show_together() -> None:
    text = GOOD.replace("grids = 20", "grids = 'ten'").replace("qty = 0.001", "qty = 0")
    problems_ = problems(text)
    assert "strategy.grids: expected int, got 'ten'" in problems_
    assert "strategy.qty: must be > 0, got 0" in problems_


def test_section_options_are_all_reported_too() -> None:
    text = GOOD.replace("capital = 5000", "capital = -1\nmode = \"later\"\nfuse_features = 1")
    with pytest.raises(ConfigError) as err:
        parse_pipeline(text)
    assert err.value.problems == [
        "pipeline.mode: expected one of 'backtest', 'paper', 'live', got 'later'",
        "pipeline.capital: must be > 0, got -1.0",
        "pipeline.fuse_features: expected one of 'auto', 'on', 'off', got 1",
    ]


def test_cross_option_checks_run_once_every_option_is_valid() -> None:
    # __attrs_post_init__ compares options: it runs only when each option is fine on its own.
    assert "strategy.lower: must be below upper (60000.0 >= 50000.0)" in problems(
        GOOD.replace("lower = 50000", "lower = 60000").replace("upper = 60000", "upper = 50000"))
    msg = problems(GOOD.replace("lower = 50000", "lower = 70000").replace("grids = 20",
                                                                          "grids = 0"))
    assert "strategy.grids: must be >= 2, got 0" in msg and "must be below upper" not in msg


def test_a_validator_may_read_the_other_options() -> None:
    from attrs import frozen

    from gridkit import option
    from gridkit.core.config import structure

    def below_high(instance: Any, attribute: Any, value: float) -> None:
        if value >= instance.high:
            raise OptionError(attribute.name, f"must be below high ({instance.high})")

    @frozen
    class Config:
        low: float = option(0.0, validator=below_high)
        high: float = option(1.0, validator=positive())
        n: int = option(1, validator=at_least(1))

    assert structure({"low": 0.5}, Config, "x") == (Config(0.5, 1.0, 1), [])
    assert structure({"low": 2.0, "n": 0}, Config, "x")[1] == [
        "x.low: must be below high (1.0)", "x.n: must be >= 1, got 0"]
    # high failed its own check: low's validator, which reads it, is not run against it.
    assert structure({"low": 2.0, "high": "big"}, Config, "x")[1] == [
        "x.low: must be below high (1.0)", "x.high: expected float, got 'big'"]


def test_unknown_component_lists_close_matches_and_the_installed_ones() -> None:
    msg = problems(GOOD.replace('use = "static"', 'use = "statc"'))
    assert "strategy: unknown strategy 'statc'; did you mean 'static'?" in msg
    assert ("available: asymmetric, disabled, fibonacci, geometric, regime-selector, static, "
            "symmetric, trailing, volatility-adjusted") in msg


def test_missing_required_option() -> None:
    assert "strategy.lower: required option is missing" in problems(
        GOOD.replace("lower = 50000\n", ""))


def test_component_section_needs_use() -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline(GOOD.replace('use = "drawdown"\n', ""))
    assert "risk[0].use: required" in str(err.value)


def test_feature_keys_must_be_unique_and_key_names_them() -> None:
    text = GOOD.replace("[strategy]", '[[features]]\nuse = "rsi"\nperiod = 7\n\n[strategy]')
    with pytest.raises(ConfigError) as err:
        parse_pipeline(text)
    assert "features[1]: feature key 'rsi' is used by features[0] too" in str(err.value)
    fixed = text.replace("period = 7", 'period = 7\nkey = "rsi_7"')
    p = build_pipeline(parse_pipeline(fixed))
    assert [k for k, _ in p.features] == ["rsi", "rsi_7"]


def test_missing_pipeline_file() -> None:
    with pytest.raises(ConfigError, match=r"pipeline file not found: nope\.toml"):
        load_pipeline("nope.toml")


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    msg = problems(GOOD.replace(SAMPLE, (tmp_path / "missing.json").as_posix()))
    assert "source: data file not found:" in msg and "missing.json" in msg


def test_relative_paths_resolve_against_the_pipeline_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bars.json.gz").write_bytes(sample_path().read_bytes())
    toml = tmp_path / "pipeline.toml"
    toml.write_text(GOOD.replace(SAMPLE, "data/bars.json.gz"))
    p = build_pipeline(load_pipeline(toml))
    assert p.run.resolve("data/bars.json.gz") == data / "bars.json.gz"


def test_live_mode_refuses_without_a_live_executor() -> None:
    msg = problems(GOOD.replace('name = "t"', 'name = "t"\nmode = "live"'))
    assert "live mode needs an executor that sends real orders; use one of: ccxt" in msg


def test_required_plugin_distribution_is_named() -> None:
    from gridkit import PluginError

    text = GOOD + '\n[plugins]\nrequire = ["gridkit-acme>=0.2"]\n'
    with pytest.raises(PluginError) as err:
        build_pipeline(parse_pipeline(text))
    assert "required plugin distribution 'gridkit-acme' is not installed" in str(err.value)


def test_required_plugin_version_too_old() -> None:
    from gridkit import PluginError

    text = GOOD + '\n[plugins]\nrequire = ["pluggy>=999"]\n'
    with pytest.raises(PluginError, match="but the pipeline requires pluggy>=999"):
        build_pipeline(parse_pipeline(text))


def test_plugins_disable_removes_a_plugins_components() -> None:
    text = GOOD + '\n[plugins]\ndisable = ["gridkit.risk"]\n'
    msg = problems(text)
    assert "risk[0]: unknown risk 'drawdown'" in msg


def test_a_bare_string_is_a_one_item_list_never_its_letters() -> None:
    config = parse_pipeline(GOOD + '\n[plugins]\ndisable = "gridkit.risk"\nrequire = "pluggy"\n')
    assert config.plugins.disable == ["gridkit.risk"] and config.plugins.require == ["pluggy"]
    assert "risk[0]: unknown risk 'drawdown'" in problems(
        GOOD + '\n[plugins]\ndisable = "gridkit.risk"\n')


@pytest.mark.parametrize("value", ["5", '["gridkit.risk", 5]', "{ a = 1 }"])
def test_a_list_of_strings_refuses_other_values(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline(GOOD + f"\n[plugins]\ndisable = {value}\n")
    assert "plugins.disable: expected a string or a list of strings" in str(err.value)


def test_one_of_group_is_one_line_among_the_other_problems() -> None:
    text = GOOD.replace('use = "drawdown"\nlimit = 0.2', 'use = "position-size"\nmax_bse = 1')
    with pytest.raises(ConfigError) as err:
        build_pipeline(parse_pipeline(text))
    assert err.value.problems == [
        "risk[0].max_bse: unknown option (did you mean 'max_base'?); options are: max_base, "
        "max_fraction",
        "risk[0]: at least one of max_base, max_fraction is required",
    ]


def _config_with_one_of(groups: Any) -> type:
    from attrs import frozen

    from gridkit import option

    @frozen
    class Config:
        one_of = groups
        d: int = option()
        a: float | None = option(None)
        b: float | None = option(None)
        c: int = option(1, validator=at_least(1))
        e: str | None = option(None)

    return Config


def test_one_of_groups_are_read_from_the_config() -> None:
    from gridkit.core.config import describe_fields, one_of_groups, structure

    cls = _config_with_one_of([("a", "b"), ["b", "e"]])
    assert one_of_groups(cls) == (("a", "b"), ("b", "e"))
    assert structure({"d": 1, "e": "y"}, cls, "x")[1] == ["x: at least one of a, b is required"]
    assert structure({"d": 1, "b": 2.0}, cls, "x")[1] == []
    assert structure({"c": 0}, cls, "x")[1] == [
        "x.d: required option is missing", "x.c: must be >= 1, got 0",
        "x: at least one of a, b is required", "x: at least one of b, e is required"]
    assert {f["name"]: f["one_of"] for f in describe_fields(cls)} == {
        "d": [], "a": [["a", "b"]], "b": [["a", "b"], ["b", "e"]], "c": [], "e": [["b", "e"]]}


@pytest.mark.parametrize(("groups", "message"), [
    ("a", "expected a list of groups of option names"),
    ([("a",)], "a group names two options or more"),
    ([("a", "z")], "'z' is not an option of the Config"),
    ([("a", "d")], "'d' must default to None (not set), it has no default"),
    ([("a", "c")], "'c' must default to None (not set), not 1"),
])
def test_a_bad_one_of_declaration_fails_the_registration(groups: Any, message: str) -> None:
    from gridkit import Feature, hookimpl
    from gridkit.core.plugins import new_host
    from gridkit.core.registry import build_registry

    class Odd(Feature):
        """A feature with a bad one_of."""

        name = "odd"
        Config = _config_with_one_of(groups)

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: Any) -> None:
            register(Odd)

    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": ""})
    host.register(Plugin, "acme")
    registry = build_registry(host)
    assert "odd" not in registry.names("feature")
    [failure] = [f for f in host.failures if f.plugin == "acme"]
    assert "PluginError: Odd.Config.one_of: " in failure.error and message in failure.error
