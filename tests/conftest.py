"""Shared fixtures: the real market data folder, and isolation from third-party plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import REPO, SHARED_DATA, full_data_reason, lay_out_slices

# Core tests see gridkit's built-ins only: a third-party plugin installed in the same environment
# (the contrib package, say) must not change what they test. Set before any host is created.
os.environ["GRIDKIT_LOAD_PLUGINS"] = ""
os.environ.pop("GRIDKIT_DISABLE_PLUGINS", None)
os.environ.pop("GRIDKIT_STRICT_PLUGINS", None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "full_data(reason): needs the full shared data set, not the slices in "
                   "tests/data; skipped, saying why, when only the slices are there")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SHARED_DATA is not None:
        return
    for item in items:
        mark = item.get_closest_marker("full_data")
        if mark is not None:
            why = mark.args[0] if mark.args else "it reads more than the slices hold"
            item.add_marker(pytest.mark.skip(reason=full_data_reason(why)))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real exchange data: the full set (../shared/data or $GRIDKIT_TEST_DATA) when it is
    there, else the slices shipped in tests/data (see its SOURCE.md), laid out the same way."""
    if SHARED_DATA is not None:
        return SHARED_DATA
    return lay_out_slices(tmp_path_factory.mktemp("data-slices"))


@pytest.fixture(scope="session")
def btc_1m(data_dir: Path) -> Path:
    """Binance spot BTC/USDT 1m, 2021-04-20 .. 2021-05-20 (42,915 bars, includes 19 May crash)."""
    return data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json"


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO
