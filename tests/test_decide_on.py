"""``[pipeline] decide_on``: a strategy may decide on trades as well as bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gridkit
from gridkit import hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.plugins.grids.static import StaticGrid
from helpers import xrp_trades_pipeline


class TickGrid(StaticGrid):
    """The static grid, counting the trades it was asked to decide on."""

    name = "tick-grid"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.ticks = 0

    def on_tick(self, ctx: gridkit.Context) -> list[gridkit.Order]:
        self.ticks += 1
        assert isinstance(ctx.event, gridkit.Trade)
        return []

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "ticks": self.ticks}


@pytest.fixture
def tick_host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(TickGrid)

    gridkit_host.register(Plugin, "tick-grid")
    return gridkit_host


@pytest.mark.parametrize("decide_on", ['["bars"]', '["bars", "trades"]'])
def test_strategy_sees_trades_only_when_asked(tick_host: PluginHost, data_dir: Path,
                                              gridkit_run_toml: Any, decide_on: str) -> None:
    text = xrp_trades_pipeline(
        (data_dir / "trades_orderbook/freqtrade/XRP_ETH-trades.json.gz").as_posix())
    text = text.replace('use = "static"', 'use = "tick-grid"').replace(
        'capital = 10.0', f'capital = 10.0\ndecide_on = {decide_on}')
    s = gridkit_run_toml(text)
    ticks = s["components"]["strategy"]["ticks"]
    accepted = s["events"]["trades"]["accepted"]
    if decide_on == '["bars"]':
        assert ticks == 0
    else:
        # every accepted trade after the first bar closed (the strategy starts on a bar)
        assert 0 < ticks < accepted
        assert accepted - ticks < 200  # the trades of the first 5-minute bar
