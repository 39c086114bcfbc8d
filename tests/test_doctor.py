"""``gridkit doctor`` (issue 12, seed 003): the installation, a store and a pipeline's
exchanges, checked; ``--strict`` fails on a warning."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridkit.testing_exchange import ExchangeServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


def doctor(*args: str) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    out = gridkit("doctor", *args, "--json")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in json.loads(out.stdout):
        by_name.setdefault(c["name"], []).append(c)
    return out.returncode, by_name


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the example, audited, in a store."""
    folder = tmp_path_factory.mktemp("doctor")
    text = EXAMPLE.read_text().replace('path = "', f'path = "{EXAMPLE.parent.as_posix()}/')
    pipeline = folder / "audited.toml"
    pipeline.write_text(text + '\n[[monitors]]\nuse = "audit"\n')
    db = folder / "run.db"
    assert gridkit("run", str(pipeline), "--db", str(db), "-q").returncode == 0
    return db


def test_the_installation_is_checked() -> None:
    status, checks = doctor()
    assert status == 0
    assert checks["python"][0]["status"] == "ok"
    for name in ("numpy", "numba", "pluggy", "click", "sqlite-utils"):
        assert checks[name][0]["status"] == "ok" and checks[name][0]["detail"][0].isdigit()
    assert checks["numba cache"][0]["detail"].endswith("(writable)")
    assert checks["plugins"][0]["detail"].endswith("none failed")
    text = gridkit("doctor").stdout
    assert text.splitlines()[0].startswith("ok    python")


def test_a_healthy_store_passes_and_a_damaged_one_is_named(store: Path,
                                                            tmp_path: Path) -> None:
    status, checks = doctor("--db", str(store))
    assert status == 0
    assert [checks[k][0]["status"] for k in ("store integrity", "journal", "saved states",
                                              "audit chain")] == ["ok"] * 4
    damaged = tmp_path / "damaged.db"
    shutil.copy(store, damaged)
    with sqlite3.connect(damaged) as conn:  # a fill whose request was removed, an edited entry
        order = conn.execute("SELECT order_id FROM fills LIMIT 1").fetchone()[0]
        conn.execute("DELETE FROM orders WHERE order_id = ? AND status = 'requested'", (order,))
        conn.execute("UPDATE audit SET entry = replace(entry, 'buy', 'sell') WHERE seq = 5")
        conn.execute("UPDATE state SET digest = 'x'")
    status, checks = doctor("--db", str(damaged))
    assert status == 1
    assert checks["journal"][0]["detail"] == ("run 1: 1 fill(s) of orders it never journalled "
                                              "as requested")
    assert checks["audit chain"][0]["detail"].startswith("audit row 5 (rowid 5): edited")
    assert checks["saved states"][0]["status"] == "fail"


def test_a_run_left_running_warns_and_strict_fails_on_it(store: Path, tmp_path: Path) -> None:
    left = tmp_path / "left.db"
    shutil.copy(store, left)
    with sqlite3.connect(left) as conn:
        conn.execute("UPDATE runs SET status = 'running'")
    status, checks = doctor("--db", str(left))
    assert status == 0 and checks["runs"][0]["status"] == "warn"
    assert "run 1 ('btc-static-grid') is marked running" in checks["runs"][0]["detail"]
    assert gridkit("doctor", "--db", str(left), "--strict").returncode == 1
    out = gridkit("doctor", "--db", str(tmp_path / "missing.db"))
    assert out.returncode == 2 and "store not found" in out.stderr


def pipeline_at(folder: Path, url: str) -> Path:
    path = folder / "paper.toml"
    path.write_text(f"""[pipeline]
name = "paper"
mode = "paper"
symbol = "BTC/USDT"
capital = 1000
[source]
use = "ccxt-stream"
exchange = "binance"
url = "{url}"
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 4
qty = 0.001
""")
    return path


@pytest.mark.parametrize(("offset_ms", "status", "word"), [
    (0, "ok", None), (3_000, "warn", "behind"), (-600_000, "fail", "ahead of")])
def test_the_clock_is_measured_against_the_exchange(
        data_dir: Path, tmp_path: Path, offset_ms: int, status: str, word: str | None) -> None:
    info = (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_spot_market_exchange_info.json")
    with ExchangeServer(info) as server:
        # The exchange's clock runs offset_ms from this machine's (the server's own now_ms
        # would stand still).
        server._now = lambda: int(time.time() * 1000) + offset_ms  # type: ignore[method-assign]
        code, checks = doctor("--pipeline", str(pipeline_at(tmp_path, server.url)))
    check = checks["clock vs binance"][0]
    assert check["status"] == status, check
    assert word is None or word in check["detail"]
    assert code == (1 if status == "fail" else 0)
