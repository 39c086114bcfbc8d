"""Shared fixtures: the real market data folder, and isolation from third-party plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Core tests see gridkit's built-ins only: a third-party plugin installed in the same environment
# (the contrib package, say) must not change what they test. Set before any host is created.
os.environ["GRIDKIT_LOAD_PLUGINS"] = ""
os.environ.pop("GRIDKIT_DISABLE_PLUGINS", None)
os.environ.pop("GRIDKIT_STRICT_PLUGINS", None)

REPO = Path(__file__).resolve().parent.parent


def _data_dir() -> Path | None:
    env = os.environ.get("GRIDKIT_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "ohlcv").is_dir():
            return c
    return None


DATA = _data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real exchange data (../shared/data or $GRIDKIT_TEST_DATA); skips when absent."""
    if DATA is None:
        pytest.skip("real market data not found: put it at ../shared/data or set GRIDKIT_TEST_DATA")
    return DATA


@pytest.fixture(scope="session")
def btc_1m(data_dir: Path) -> Path:
    """Binance spot BTC/USDT 1m, 2021-04-20 .. 2021-05-20 (42,915 bars, includes 19 May crash)."""
    return data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json"


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO
