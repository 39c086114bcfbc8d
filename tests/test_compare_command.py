"""``gridkit compare``: runs side by side, and each one's gap from the first (issue 12)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


def pipeline(folder: Path, name: str, maker: str = "0.001", end: str = "") -> Path:
    text = EXAMPLE.read_text().replace('path = "', f'path = "{EXAMPLE.parent.as_posix()}/')
    text = text.replace("maker_fee = 0.001", f"maker_fee = {maker}")
    if end:
        text = text.replace('mode = "backtest"', f'mode = "backtest"\nend = "{end}"', 1)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real runs of the example: as it is, with a dearer maker fee, and its first ten
    days."""
    folder = tmp_path_factory.mktemp("compare")
    db = folder / "runs.db"
    for path in (pipeline(folder, "base"), pipeline(folder, "dear", maker="0.0015"),
                 pipeline(folder, "short", end="2021-04-30T00:00:00Z")):
        out = gridkit("run", str(path), "--db", str(db), "-q")
        assert out.returncode == 0, out.stderr
    return db


def compared(*args: str) -> dict:
    out = gridkit("compare", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_dearer_fee_is_the_whole_gap(store: Path) -> None:
    got = compared("--db", str(store), "1", "2")
    base, dear = got["runs"]
    (gap,) = got["gaps"]
    assert (base["run"], dear["run"]) == (1, 2)
    assert gap["fees"] == pytest.approx(dear["fees paid"] - base["fees paid"]) and gap["fees"] > 80
    # The same fills at the same prices: the equity gap is the fees, to the cent
    assert (gap["slippage"], gap["missed_fills"], gap["extra_fills"]) == (0.0, 0, 0)
    assert gap["matched_fills"] == base["buy fills"] + base["sell fills"] == 677
    assert gap["equity_gap"] == pytest.approx(-gap["fees"], abs=1e-6)


def test_a_shorter_run_missed_the_fills_after_its_end(store: Path) -> None:
    got = compared(f"{store}:1", f"{store}:3")
    base, short = got["runs"]
    (gap,) = got["gaps"]
    fills = short["buy fills"] + short["sell fills"]
    assert gap["matched_fills"] == fills and gap["slippage"] == 0.0
    assert gap["missed_fills"] == 677 - fills > 100 and gap["extra_fills"] == 0
    assert short["to"] < base["to"]


def test_slippage_is_what_the_prices_cost(store: Path, tmp_path: Path) -> None:
    worse = tmp_path / "worse.db"
    shutil.copy(store, worse)
    with sqlite3.connect(worse) as conn:  # every buy a dollar dearer, every sell 50c cheaper
        conn.execute("UPDATE fills SET price = price + 1.0 WHERE run_id = 1 AND side = 'buy'")
        conn.execute("UPDATE fills SET price = price - 0.5 WHERE run_id = 1 AND side = 'sell'")
        buys, sells = (conn.execute(f"SELECT SUM(qty) FROM fills WHERE run_id = 1 AND "
                                    f"side = '{s}'").fetchone()[0] for s in ("buy", "sell"))
    got = compared(f"{store}:1", f"{worse}:1")
    assert got["gaps"][0]["slippage"] == pytest.approx(buys * 1.0 + sells * 0.5, rel=1e-9)
    text = gridkit("compare", f"{store}:1", f"{worse}:1").stdout
    assert "run 1 against run 1" in text and "lost on 677 matched fills" in text


def test_bad_input_is_one_line(store: Path, tmp_path: Path) -> None:
    for args, message in ((["1", "2"], "give the store it is in with --db PATH"),
                          (["--db", str(store), "1"], "needs at least two runs"),
                          (["--db", str(store), "1", "9"], "holds no run 9"),
                          ([str(store), str(tmp_path / "no.db")], "store not found")):
        out = gridkit("compare", *args)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1
