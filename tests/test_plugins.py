"""The plugin rules of DESIGN.md §3: lazy isolated loading, duplicates, replaces=, env controls."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gridkit import ConfigError, Feature, PluginError, hookimpl
from gridkit.core.plugins import new_host
from gridkit.core.registry import build_registry
from gridkit.plugins.features.rsi import Rsi

BUILTINS_ONLY = {"GRIDKIT_LOAD_PLUGINS": ""}


def make_dist(root: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    """A real installed distribution on ``root``: module + .dist-info with a gridkit entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gridkit]\n{ep_name or module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def feature_plugin(name: str, replaces: str | None = None) -> object:
    class Plugin:
        class Thing(Feature):
            """A test feature."""

        Thing.name = name

        @staticmethod
        @hookimpl
        def gridkit_register_features(register: object) -> None:
            register(Plugin.Thing, replaces=replaces)  # type: ignore[operator]

    return Plugin


def test_builtins_register_through_their_own_entry_points() -> None:
    host = new_host(env=BUILTINS_ONLY)
    registry = build_registry(host)
    assert host.failures == []
    reg = registry.get("strategy", "static")
    assert reg.plugin == "gridkit.grids" and reg.distribution == "gridkit"
    kinds = {r.kind for r in registry.all()}
    assert {"source", "validator", "feature", "attention", "regime", "strategy", "risk",
            "executor", "store"} <= kinds


def test_a_name_registered_twice_is_an_error_naming_both_plugins() -> None:
    host = new_host(env=BUILTINS_ONLY)
    host.register(feature_plugin("rsi"), "acme")
    registry = build_registry(host)
    assert any("gridkit.features (gridkit)" in f.error and "acme" in f.error
               for f in host.failures)
    with pytest.raises(ConfigError) as err:
        registry.get("feature", "rsi", where="features[0]")
    msg = str(err.value)
    assert "registered by both gridkit.features (gridkit) and acme" in msg
    assert "replaces='rsi'" in msg
    # Other names are unaffected.
    assert registry.get("feature", "volatility").plugin == "gridkit.features"


def test_strict_mode_makes_a_duplicate_fatal() -> None:
    host = new_host(env={**BUILTINS_ONLY, "GRIDKIT_STRICT_PLUGINS": "1"})
    host.register(feature_plugin("rsi"), "acme")
    with pytest.raises(PluginError, match="registered twice"):
        build_registry(host)


def test_replaces_takes_over_a_name_and_remembers_what_it_replaced() -> None:
    host = new_host(env=BUILTINS_ONLY)
    plugin = feature_plugin("my-rsi", replaces="rsi")
    host.register(plugin, "acme")
    registry = build_registry(host)
    reg = registry.get("feature", "rsi")
    assert reg.plugin == "acme" and reg.replaces == "rsi"
    assert reg.cls is plugin.Thing  # type: ignore[attr-defined]
    assert [r.cls for r in registry.replaced] == [Rsi]
    assert host.failures == []


def test_replacing_an_unknown_name_is_reported() -> None:
    host = new_host(env=BUILTINS_ONLY)
    host.register(feature_plugin("x", replaces="no-such-feature"), "acme")
    build_registry(host)
    assert any("replaces feature 'no-such-feature', which no plugin registered" in f.error
               for f in host.failures)


def test_two_replacements_of_one_name_conflict() -> None:
    host = new_host(env=BUILTINS_ONLY)
    host.register(feature_plugin("a", replaces="rsi"), "acme")
    host.register(feature_plugin("b", replaces="rsi"), "other")
    registry = build_registry(host)
    with pytest.raises(ConfigError, match="registered by both"):
        registry.get("feature", "rsi")


def test_registering_something_that_is_not_a_component_is_reported() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: object) -> None:
            register(dict)  # type: ignore[operator]

    host = new_host(env=BUILTINS_ONLY)
    host.register(Plugin, "acme")
    registry = build_registry(host)
    assert any(f.plugin == "acme" and "not a subclass of gridkit.Feature" in f.error
               for f in host.failures)
    assert registry.get("feature", "rsi")  # the rest still works


def test_a_misspelled_hook_is_an_error_not_silence() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_featurs(register: object) -> None:
            pass

    host = new_host(env=BUILTINS_ONLY)
    assert host.register(Plugin, "typo") is False
    assert any(f.plugin == "typo" and "gridkit_register_featurs" in f.error
               for f in host.failures)
    assert host.pm.get_plugin("typo") is None


def test_a_broken_entry_point_is_reported_and_the_rest_load(site: Path) -> None:
    make_dist(site, "gridkit-broken", "gridkit_broken", "raise RuntimeError('boom at import')\n")
    host = new_host(env={"GRIDKIT_LOAD_PLUGINS": "gridkit-broken"})
    failure = next(f for f in host.failures if f.plugin == "gridkit_broken")
    assert failure.distribution == "gridkit-broken"
    assert "import failed: RuntimeError: boom at import" in failure.error
    assert build_registry(host).get("strategy", "static")


def test_strict_plugins_turns_a_broken_entry_point_into_an_error(site: Path) -> None:
    make_dist(site, "gridkit-broken", "gridkit_broken", "import no_such_module_at_all\n")
    with pytest.raises(PluginError, match=r"gridkit_broken \(gridkit-broken\): import failed"):
        new_host(env={"GRIDKIT_LOAD_PLUGINS": "gridkit-broken", "GRIDKIT_STRICT_PLUGINS": "1"})


GOOD_PLUGIN = """
from gridkit import Feature, hookimpl

class Ones(Feature):
    '''Always 1.'''
    name = "ones"
    def update(self, bar):
        return 1.0

@hookimpl
def gridkit_register_features(register):
    register(Ones)
"""


def test_load_plugins_selects_third_party_plugins_by_distribution(site: Path) -> None:
    make_dist(site, "gridkit-ones", "gridkit_ones", GOOD_PLUGIN)
    assert "ones" in build_registry(
        new_host(env={"GRIDKIT_LOAD_PLUGINS": "gridkit-ones"})).names("feature")
    assert "ones" not in build_registry(new_host(env=BUILTINS_ONLY)).names("feature")
    # Unset: every installed plugin loads.
    assert "ones" in build_registry(new_host(env={})).names("feature")


def test_disable_plugins_drops_entry_points_even_builtins(site: Path) -> None:
    make_dist(site, "gridkit-ones", "gridkit_ones", GOOD_PLUGIN)
    host = new_host(env={"GRIDKIT_DISABLE_PLUGINS": "gridkit-ones,gridkit.grids"})
    registry = build_registry(host)
    assert "ones" not in registry.names("feature")
    assert registry.names("strategy") == []
    assert "rsi" in registry.names("feature")


def test_a_registration_hook_that_raises_is_reported_with_its_plugin() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: object) -> None:
            raise ValueError("bad plugin")

    host = new_host(env=BUILTINS_ONLY)
    host.register(Plugin, "acme")
    registry = build_registry(host)
    assert any(f.plugin == "acme" and "gridkit_register_features raised: ValueError: bad plugin"
               in f.error for f in host.failures)
    assert "rsi" in registry.names("feature")


def test_import_gridkit_loads_no_plugins_and_no_numeric_libraries() -> None:
    code = ("import sys, gridkit; "
            "bad = [m for m in sys.modules if m.startswith('gridkit.plugins') "
            "or m.split('.')[0] in ('numpy', 'numba', 'pandas', 'sqlite3', 'ccxt', 'click')]; "
            "print(','.join(sorted(bad)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_plugins_lists_failures_without_dying(site: Path) -> None:
    from click.testing import CliRunner

    from gridkit.cli import cli
    from gridkit.core.plugins import set_host

    make_dist(site, "gridkit-broken", "gridkit_broken", "raise ImportError('nope')\n")
    old = set_host(new_host(env={"GRIDKIT_LOAD_PLUGINS": "gridkit-broken"}))
    try:
        result = CliRunner().invoke(cli, ["plugins"])
    finally:
        set_host(old)
    assert result.exit_code == 0
    assert "gridkit.grids  (gridkit" in result.output
    assert "FAILED gridkit_broken (gridkit-broken): import failed: ImportError: nope" in (
        result.output)


def test_require_fails_when_the_distribution_is_installed_but_not_loaded(site: Path) -> None:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline
    from gridkit.testing import sample_path

    make_dist(site, "gridkit-ones", "gridkit_ones", GOOD_PLUGIN)
    text = f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[strategy]
use = "static"
lower = 1
upper = 2
grids = 2
qty = 1
[plugins]
require = ["gridkit-ones>=0.1"]
"""
    config = parse_pipeline(text)
    with pytest.raises(PluginError, match="'gridkit-ones' is installed but its plugins are not"):
        build_pipeline(config, new_host(env=BUILTINS_ONLY))
    assert build_pipeline(config, new_host(env={"GRIDKIT_LOAD_PLUGINS": "gridkit-ones"}))


def test_a_hookimpl_with_wrong_arguments_is_reported_not_fatal() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_features(registr: object) -> None:  # misspelled argument
            pass

    host = new_host(env=BUILTINS_ONLY)
    assert host.register(Plugin, "bad-args") is False
    assert any(f.plugin == "bad-args" and "not registered" in f.error for f in host.failures)
    assert "rsi" in build_registry(host).names("feature")
