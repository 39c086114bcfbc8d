"""The engine's path for events that are not bars, time bars from trades, the L2 book, and
pausing (deferred orders)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gridkit import Bar, BookUpdate, Feature, Source, Trade, Validator, hookimpl
from gridkit.core.plugins import PluginHost
from gridkit.data.bars import TimeBars, parse_interval
from gridkit.data.book import OrderBook
from gridkit.testing import sample_bars
from helpers import xrp_trades_pipeline


def test_time_bars_fold_trades_on_interval_boundaries() -> None:
    tb = TimeBars(parse_interval("1m"))
    out = [tb.add(Trade(ts, p, q, "buy")) for ts, p, q in [
        (60_000, 10.0, 1.0), (61_000, 12.0, 2.0), (119_999, 9.0, 1.0),
        (120_000, 11.0, 1.0), (300_500, 13.0, 4.0)]]
    assert out[:3] == [None, None, None]
    assert out[3] == Bar(60_000, 10.0, 12.0, 9.0, 9.0, 4.0)
    assert out[4] == Bar(120_000, 11.0, 11.0, 11.0, 11.0, 1.0)  # 3 empty minutes: no bars
    assert tb.flush() == Bar(300_000, 13.0, 13.0, 13.0, 13.0, 4.0)
    assert tb.flush() is None


def test_fold_yields_each_bar_after_the_trade_that_closed_it_and_asks_first() -> None:
    trades = [Trade(ts, p, 1.0, "buy") for ts, p in
              [(0, 10.0), (30_000, 99.0), (59_000, 11.0), (60_000, 12.0), (61_000, math.nan)]]
    tb = TimeBars(60_000)
    asked: list[float] = []
    verdicts = iter([True, False, True, True, True])

    def accepted() -> bool:
        asked.append(trades[len(asked)].price)  # asked after the trade itself was yielded
        return next(verdicts)

    out = list(tb.fold(trades, accepted))
    assert out[:4] == trades[:4]
    assert out[4] == Bar(0, 10.0, 11.0, 10.0, 11.0, 2.0)  # the refused 99.0 is not in it
    assert out[5] is trades[4]
    assert out[6] == Bar(60_000, 12.0, 12.0, 12.0, 12.0, 1.0)  # NaN print left out, counted
    assert tb.not_in_bars == 1 and len(asked) == 5
    # A live stream that stops mid-interval ends without the unfinished bar.
    assert list(TimeBars(60_000).fold(trades[:3], flush=False)) == trades[:3]


def test_dropped_prints_never_reach_the_bars(data_dir: Any, tmp_path: Any) -> None:
    # The real XRP/ETH tape, and the same with 12 prints 20% off inserted: the anomaly
    # validator drops them, and since the engine folds only accepted trades, the bars — and
    # so every fill of the grid — are exactly those of the clean tape.
    import gzip
    import json

    from gridkit.testing import run_toml

    rows = json.loads(gzip.decompress(
        (data_dir / "trades_orderbook/freqtrade/XRP_ETH-trades.json.gz").read_bytes()))
    bad = [list(r) for r in rows]
    for k in range(12):
        i = 500 + 1000 * k
        row = list(bad[i])
        row[4] = float(row[4]) * (1.2 if k % 2 else 0.8)
        bad.insert(i + 1, row)
    summaries = []
    for name, data in (("clean.json", rows), ("bad.json", bad)):
        (tmp_path / name).write_text(json.dumps(data))
        summaries.append(run_toml(xrp_trades_pipeline(
            name, '[[validators]]\nuse = "anomaly"\npolicy = "drop"'), base_dir=tmp_path))
    clean, dirty = summaries
    assert dirty["events"]["trades"]["dropped"] == clean["events"]["trades"]["dropped"] + 12
    for key in ("bars_seen", "buy_fills", "sell_fills", "final_equity", "max_drawdown"):
        assert dirty[key] == clean[key], key


@pytest.mark.parametrize(("text", "ms"), [("500ms", 500), ("1s", 1000), ("5m", 300_000),
                                          ("1h", 3_600_000), ("1d", 86_400_000)])
def test_parse_interval(text: str, ms: int) -> None:
    assert parse_interval(text) == ms


@pytest.mark.parametrize("text", ["", "0s", "5x", "m", "-1m"])
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an interval"):
        parse_interval(text)


def test_order_book_levels_and_sums() -> None:
    book = OrderBook()
    book.load([(100.0, 1.0), (99.0, 2.0), (98.0, 0.0)], [(101.0, 1.5), (102.0, 3.0)], 7)
    assert (book.best_bid, book.best_ask, book.last_update_id) == (100.0, 101.0, 7)
    book.set("bid", 100.5, 0.5)
    book.set("ask", 101.0, 0.0)
    assert book.levels("bid", 2) == [(100.5, 0.5), (100.0, 1.0)]
    assert book.levels("ask", 5) == [(102.0, 3.0)]
    assert book.depth("bid", 3) == pytest.approx(3.5)
    assert not book.crossed
    book.set("bid", 103.0, 1.0)
    assert book.crossed and len(book) == 5
    book.set("bid", 42.0, 0.0)  # removing a level that is not there is a no-op
    assert len(book) == 5


class TradesAndBars(Source):
    """Real sample bars, each preceded by two trade prints and a quote inside it."""

    name = "test-ticks"
    provides = frozenset({"bars", "trades", "book"})

    def events(self) -> Iterator[Any]:
        for b in sample_bars()[:600]:
            yield Trade(b.ts + 1, b.low, 0.5, "sell")
            yield Trade(b.ts + 2, b.high, 0.25, "buy")
            yield BookUpdate(b.ts + 3, b.close - 0.5, 1.0, b.close + 0.5, 2.0)
            yield b


class BuyVolume(Feature):
    """Taker buy quantity seen so far."""

    name = "buy-volume"
    inputs = frozenset({"trades"})

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.total = 0.0

    def update(self, event: Any) -> float:
        if event.side == "buy":
            self.total += event.qty
        return self.total


class Spread(Feature):
    """Quoted spread."""

    name = "quoted-spread"
    inputs = frozenset({"book"})

    def update(self, event: Any) -> float:
        return event.ask - event.bid


class DropSells(Validator):
    """Drops sell prints."""

    name = "drop-sells"
    inputs = frozenset({"trades"})

    def accept(self, event: Any) -> bool:
        return event.side != "sell"


class Pauser(Validator):
    """Pauses trading for bars 100-199 of the run."""

    name = "pauser"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.ctx: Any = None
        self.n = 0

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    def accept(self, event: Any) -> bool:
        self.n += 1
        self.ctx.paused = "test pause" if 100 <= self.n < 200 else None
        return True


class Plugin:
    @staticmethod
    @hookimpl
    def gridkit_register_sources(register: Any) -> None:
        register(TradesAndBars)

    @staticmethod
    @hookimpl
    def gridkit_register_features(register: Any) -> None:
        register(BuyVolume)
        register(Spread)

    @staticmethod
    @hookimpl
    def gridkit_register_validators(register: Any) -> None:
        register(DropSells)
        register(Pauser)


PIPE = """
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "test-ticks"
[[features]]
use = "buy-volume"
[[features]]
use = "quoted-spread"
[[features]]
use = "rsi"
[strategy]
use = "static"
lower = 54000
upper = 58000
grids = 20
qty = 0.05
"""


@pytest.fixture
def host(gridkit_register_plugin: Callable[..., PluginHost]) -> PluginHost:
    return gridkit_register_plugin(Plugin, "ticks")


def test_ticks_reach_their_features_and_validators(host: PluginHost,
                                                   gridkit_run_toml: Callable[..., Any]) -> None:
    s = gridkit_run_toml(PIPE + """
[[validators]]
use = "timestamp"
[[validators]]
use = "drop-sells"
""")
    assert s["bars_seen"] == 600 and s["bars_accepted"] == 600
    assert s["events"] == {"trades": {"seen": 1200, "accepted": 600, "dropped": 600},
                           "book": {"seen": 600, "accepted": 600, "dropped": 0}}
    assert "drop-sells" not in s["dropped_by"]  # it counts nothing itself
    assert s["buy_fills"] + s["sell_fills"] > 0


def test_pause_defers_orders_and_sends_them_after(host: PluginHost,
                                                  gridkit_run_toml: Callable[..., Any]) -> None:
    base = gridkit_run_toml(PIPE)
    paused = gridkit_run_toml(PIPE + '[[validators]]\nuse = "pauser"\n')
    assert paused["orders_deferred"] > 0 and paused["orders_deferred_at_end"] == 0
    assert paused["paused"] is None
    assert paused["unreconciled_orders"] == []
    # Nothing was lost: every deferred order went out once the pause ended.
    assert paused["orders_rejected"] == 0
    assert paused["orders_placed"] >= base["orders_placed"] - 5
    assert math.isfinite(paused["final_equity"])


def test_a_feature_needing_depth_on_a_source_without_it_is_refused(
        host: PluginHost, gridkit_run_toml: Callable[..., Any]) -> None:
    from gridkit import ConfigError

    class DepthFeature(Feature):
        """Needs depth."""

        name = "needs-depth"
        inputs = frozenset({"depth"})

    class More:
        @staticmethod
        @hookimpl
        def gridkit_register_features(register: Any) -> None:
            register(DepthFeature)

    host.register(More, "more")
    with pytest.raises(ConfigError, match="reads depth, which source 'test-ticks' does not"):
        gridkit_run_toml(PIPE + '[[features]]\nuse = "needs-depth"\n')
