"""Small helpers shared by the test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

from datetime import datetime, timezone

from gridkit.testing import sample_path

#: A static grid section for pipelines whose strategy does not matter to the test.
STRATEGY = """
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 10
qty = 0.001
"""


def ms(text: str) -> int:
    """Epoch milliseconds of a 'YYYY-MM-DD HH:MM' UTC time."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
               .timestamp() * 1000)


def feature_pipeline(features: str, path: str | None = None) -> str:
    """A backtest on the sample bars (or the file at ``path``) running ``features`` sections."""
    return f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{path or sample_path().as_posix()}"
{features}
{STRATEGY}"""


def xrp_trades_pipeline(path: str, sections: str = "", bars: str = "5m") -> str:
    """A grid backtest on XRP/ETH trade prints from ``path`` (the real freqtrade tape, or a
    doctored copy), folded into ``bars``; ``sections`` adds validators, features, ..."""
    return f"""
[pipeline]
symbol = "XRP/ETH"
capital = 10.0
[source]
use = "trades-file"
path = "{path}"
bars = "{bars}"
{sections}
[strategy]
use = "static"
lower = 0.00138
upper = 0.00156
grids = 12
qty = 100
"""
