"""Clock ticks: a paper run whose market goes quiet still calls its executor."""

from __future__ import annotations

from typing import Any

import pytest

from test_ccxt_sources import capture, exchange_info, ws_server  # noqa: F401 (fixtures)

pytest.importorskip("ccxt")


@pytest.mark.parametrize("ws_server", [{"max_messages": 40}], indirect=True)
def test_a_quiet_market_gets_clock_ticks_in_a_paper_run(ws_server: Any,  # noqa: F811
                                                        gridkit_run_toml: Any) -> None:
    summary = gridkit_run_toml(f"""
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades"]
duration = 2.0
stall = 30.0
clock = 0.2
backoff = 0.0
url = "{ws_server.url}"
[strategy]
use = "static"
lower = 61000
upper = 62500
grids = 15
qty = 0.001
""")
    assert summary["status"] == "finished"
    ticks = summary["events"]["clock"]
    # The exchange sends 40 messages and falls silent: the rest of the two seconds are ticks.
    assert ticks["seen"] == ticks["accepted"] >= 3
    assert summary["components"]["source"]["clock"] == ticks["seen"]
    assert summary["events"]["trades"]["seen"] > 0
