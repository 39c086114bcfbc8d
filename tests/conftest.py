"""Shared fixtures: the real market data folder, and isolation from third-party plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridkit import DataError
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


#: Where ``data_dir`` laid the slices out, once it has.
_SLICES_AT: list[Path] = []


def _missing_from_slices(err: BaseException) -> str | None:
    """The data file, relative to the slices' folder, whose absence ``err`` reports, if it is
    one: a file of the full set that tests/data does not hold."""
    if not _SLICES_AT:
        return None
    root = f"{_SLICES_AT[0]}{os.sep}"
    if isinstance(err, FileNotFoundError) and err.filename:
        path = os.fsdecode(err.filename)
    elif isinstance(err, DataError) and root in str(err) and (
            "not found" in str(err) or "no capture file matches" in str(err)):
        path = str(err)[str(err).index(root):].split()[0].rstrip(".,:;'\")")
    else:
        return None
    return path[len(root):] if path.startswith(root) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    """On the slices, a test that needs a data file they do not hold is skipped, naming the
    file, as it was before there were slices: add a slice of it (tests/data/SOURCE.md)."""
    outcome = yield
    report = outcome.get_result()
    missing = _missing_from_slices(call.excinfo.value) if call.excinfo and report.failed else None
    if missing is not None:
        report.outcome = "skipped"
        line = item.location[1]
        report.longrepr = (str(item.path), (line or 0) + 1,
                           "Skipped: " + full_data_reason(f"tests/data holds no {missing}"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real exchange data: the full set (../shared/data or $GRIDKIT_TEST_DATA) when it is
    there, else the slices shipped in tests/data (see its SOURCE.md), laid out the same way."""
    if SHARED_DATA is not None:
        return SHARED_DATA
    root = lay_out_slices(tmp_path_factory.mktemp("data-slices"))
    _SLICES_AT.append(root)
    return root


@pytest.fixture(scope="session")
def btc_1m(data_dir: Path) -> Path:
    """Binance spot BTC/USDT 1m, 2021-04-20 .. 2021-05-20 (42,915 bars, includes 19 May crash)."""
    return data_dir / "ohlcv" / "tooyipjee-freqtrade" / "BTC_USDT-1m.json"


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO
