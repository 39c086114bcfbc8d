"""``gridkit check``: what a grid needs and risks, before any order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_examples_pass_and_say_what_they_need() -> None:
    out = check(EXAMPLES / "pipeline.toml")
    assert out.returncode == 0, out.stderr
    assert "the narrowest grid step, 0.8403%, clears the round-trip fee 0.2000% by 0.6403%" \
        in out.stdout
    assert "the grid needs 7,802.21 of cash at 56814; the account has 10,000.00" in out.stdout
    perp = check(EXAMPLES / "perpetual.toml")
    assert perp.returncode == 0, perp.stderr
    assert "of margin at 1.0808" in perp.stdout  # the price at [pipeline] start
    assert "the position is liquidated at 0.53157073" in perp.stdout
    folio = check(EXAMPLES / "portfolio.toml")
    assert folio.returncode == 0
    assert ("warning  BTC/USDT: 29 of 31 grid lines fail the exchange's 'Filter failure: "
            "PRICE_FILTER'") in folio.stdout
    assert "SOL/USDT" in folio.stdout and "warning  SOL" not in folio.stdout  # no rules there


def test_a_grid_that_cannot_work_is_an_error_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f"""
[pipeline]
symbol = "BTC/USDT"
capital = 1000
[source]
use = "freqtrade-json"
path = "{(EXAMPLES / 'data' / 'BTC_USDT-1m.json.gz').as_posix()}"
[strategy]
use = "static"
lower = 56000
upper = 57000
grids = 100
qty = 0.01
""")
    out = check(bad)
    assert out.returncode == 2
    assert "does not clear the round-trip fee 0.2000%" in out.stdout
    assert "but the account has 1,000.00" in out.stdout
    assert out.stderr.count("\n") == 1 and "2 pre-flight error(s)" in out.stderr
