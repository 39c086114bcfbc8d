"""The ``ccxt`` executor, live, against the local Binance (ccxt's own classes, real data): a
grid that trades and agrees with the exchange; retries that never duplicate an order; refusals
the strategy sees; a user stream that drops; a resume that picks up fills made while away;
unknown orders; an exchange that cannot be reached; keys that are never written anywhere."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import gridkit
from gridkit.core.errors import GridkitError
from gridkit.core.plugins import PluginHost
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing_exchange import ExchangeServer

pytest.importorskip("ccxt")

REPO = Path(__file__).resolve().parents[1]
CANDLES = REPO / "examples" / "data" / "BTC_USDT-1m.json.gz"
INFO = (Path("api_fixtures") / "nautilus_trader" / "binance_http_responses"
        / "http_spot_market_exchange_info.json")
KEY = "k-7f3c9e1d2b4a6f8e0c1d3b5a7f9e2c4d6b8a0f1e3d5c7b9a"
SECRET = "s-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f"


def live_toml(url: str, *, seconds: float = 4.0, executor: str = "", live: str = "",
              capital: float = 10000, strategy: str = "") -> str:
    """A static grid on the candle tape (BTC/USDT from 56,739): 1 s bars folded from the
    prints, cells of 250 USDT (0.44 %, clearing the 0.2 % round trip)."""
    strategy = strategy or """
use = "static"
lower = 54000
upper = 59000
grids = 20
qty = 0.008"""
    return f"""
[pipeline]
name = "live-test"
mode = "live"
symbol = "BTC/USDT"
capital = {capital}
[source]
use = "ccxt-stream"
exchange = "binance"
streams = ["trades", "bars"]
bars_from = "trades"
timeframe = "1s"
duration = {seconds}
backoff = 0.05
url = "{url}"
[strategy]
{strategy}
[[risk]]
use = "exchange-rules"
[executor]
use = "ccxt"
exchange = "binance"
url = "{url}"
backoff = 0.05
poll = 0.5
{executor}
[live]
heartbeat = 0
{live}
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDKIT_API_KEY", KEY)
    monkeypatch.setenv("GRIDKIT_API_SECRET", SECRET)
    monkeypatch.delenv("GRIDKIT_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("GRIDKIT_BINANCE_SECRET", raising=False)


def exchange(data_dir: Path, **kw: Any) -> ExchangeServer:
    """The local Binance: spot, 10,000 USDT and no BTC, a tape of real 1m candles at 50 ms
    each (two hours of BTC in six seconds)."""
    args: dict[str, Any] = {"candles": CANDLES, "candle_seconds": 0.05, "loop": True,
                            "balances": {"USDT": 10000, "BTC": 0}, "api_key": KEY,
                            "secret": SECRET, "lifetime": 120.0}
    args.update(kw)
    return ExchangeServer(data_dir / INFO, **args)


def run(text: str, tmp_path: Path, host: PluginHost | None = None, resume: bool = False,
        db: Path | None = None, server: ExchangeServer | None = None,
        hold: float = 1.0) -> tuple[dict[str, Any], Any]:
    """Run the pipeline; with ``server``, its matching stops for the last ``hold`` seconds of
    the run (market data goes on), so what the exchange did has reached the bot when it
    stops."""
    p = build_pipeline(parse_pipeline(text, base_dir=tmp_path), host,
                       store_path=str(db or tmp_path / "live.db"))
    timer = None
    if server is not None:
        server.freeze(False)
        seconds = float(text.split("duration = ")[1].split()[0])
        timer = threading.Timer(max(seconds - hold, 0.1), server.freeze)
        timer.start()
    try:
        return run_pipeline(p, resume=resume), p
    finally:
        if timer is not None:
            timer.cancel()


def agrees(server: ExchangeServer, summary: dict[str, Any], db: Path) -> None:
    """The journal and the exchange agree: every order the exchange has was requested once,
    the open ones are the journal's open ones, each order's fills add up to what the exchange
    executed, and the account holds what the exchange holds."""
    with sqlite3.connect(db) as conn:
        requested = [r[0] for r in conn.execute(
            "SELECT order_id FROM orders WHERE status = 'requested'")]
        fills = Counter()
        for oid, qty in conn.execute("SELECT order_id, qty FROM fills"):
            fills[oid] += qty
    on_exchange = server.orders()
    cids = [o.client_id for o in on_exchange]
    assert len(cids) == len(set(cids)), "an order was sent twice"
    assert set(cids) <= set(requested), "the exchange has orders the journal never requested"
    assert len(requested) == len(set(requested))
    open_ex = {o.client_id for o in server.open_orders()}
    assert open_ex == set(summary["open_order_ids"]), "open orders differ"
    for o in on_exchange:
        assert fills[o.client_id] == pytest.approx(float(o.filled), abs=1e-12), o.client_id
    bal = server.balances()
    usdt = float(sum(bal["USDT"]))
    btc = float(sum(bal.get("BTC", (Decimal(0), Decimal(0)))))
    assert summary["final_cash"] == pytest.approx(usdt, abs=1e-6)
    assert summary["final_base"] == pytest.approx(btc, abs=1e-12)


def only_fee_shortfall(summary: dict[str, Any]) -> None:
    """At most one refusal, and that one the start's: Binance takes the buy's fee in BTC, so
    the grid's last starting sell asks for a little more than the account holds; the cell
    sells what it holds after the next fill."""
    assert summary["orders_rejected"] <= 1, summary["rejected_by"]
    assert all("insufficient balance" in r for r in summary["rejected_by"])


def test_a_live_grid_trades_and_agrees_with_the_exchange(keys: None, data_dir: Path,
                                                         tmp_path: Path) -> None:
    with exchange(data_dir) as server:
        summary, _ = run(live_toml(server.url, seconds=6), tmp_path, server=server)
        assert summary["status"] == "finished"
        assert summary["buy_fills"] + summary["sell_fills"] >= 3
        only_fee_shortfall(summary)
        agrees(server, summary, tmp_path / "live.db")
        stats = summary["components"]["executor"]
        assert stats["in_doubt"] == 0 and stats["fills"] >= 3
        kinds = Counter((o.type, o.tif) for o in server.orders())
        assert kinds[("LIMIT", "GTC")] >= 15 and kinds[("MARKET", "")] == 1


def test_an_order_taken_but_not_answered_is_not_sent_twice(keys: None, data_dir: Path,
                                                           tmp_path: Path) -> None:
    """The exchange takes the order and the connection drops before the answer: the retry
    finds it by its client order id instead of sending it again."""
    with exchange(data_dir) as server:
        server.fail("drop-after-take", "/api/v3/order", times=3, method="POST")
        server.fail("429", "/api/v3/order", times=2, method="POST")
        server.fail("503", "/api/v3/order", times=2, method="POST")
        summary, _ = run(live_toml(server.url, seconds=4), tmp_path, server=server)
        stats = summary["components"]["executor"]
        assert stats["adopted_after_retry"] >= 1 and stats["retries"] >= 5
        only_fee_shortfall(summary)
        agrees(server, summary, tmp_path / "live.db")


def test_exchange_refusals_reach_the_strategy_with_binances_reason(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    """The exchange holds 600 USDT, the pipeline thinks 10,000: buys beyond the balance are
    refused by the exchange with its own message, as rejections the summary counts."""
    with exchange(data_dir, balances={"USDT": 600, "BTC": 0}) as server:
        summary, _ = run(live_toml(server.url, seconds=2), tmp_path)
        reasons = summary["rejected_by"]
        assert any("insufficient balance" in r for r in reasons), reasons
        assert summary["components"]["executor"]["balance_short"] == 1  # and it was said
        assert all(r.startswith("ccxt: ") for r in reasons)
        cids = [o.client_id for o in server.orders()]
        assert len(cids) == len(set(cids))


def test_a_dropped_user_stream_pauses_trading_and_polling_keeps_the_books(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    with exchange(data_dir) as server:
        timer = threading.Timer(1.5, server.disconnect_user_streams)
        timer.start()
        try:
            summary, _ = run(live_toml(server.url, seconds=7), tmp_path, server=server)
        finally:
            timer.cancel()
        stats = summary["components"]["executor"]
        assert stats["stream_errors"] >= 1 and stats["polls"] >= 1
        with sqlite3.connect(tmp_path / "live.db") as conn:
            pauses = [json.loads(d)["reason"] for (d,) in conn.execute(
                "SELECT data FROM journal WHERE kind = 'Paused' ORDER BY rowid")]
        assert any(r and "user-data stream down" in r for r in pauses), pauses
        assert pauses[-1] is None  # and trading resumed
        agrees(server, summary, tmp_path / "live.db")


def test_a_resumed_run_applies_the_fills_made_while_it_was_away(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    with exchange(data_dir) as server:
        text = live_toml(server.url, seconds=2.5)
        first, _ = run(text, tmp_path)
        assert first["status"] == "finished"
        before = {o.client_id: o.filled for o in server.orders()}
        # The tape goes on: resting orders fill while no bot is running.
        server.wait_for(lambda: any(o.filled > before.get(o.client_id, 0)
                                    for o in server.orders()), timeout=20)
        second, _ = run(text, tmp_path, resume=True, server=server)
        stats = second["components"]["executor"]
        assert second["resumed"] and stats["fills_while_away"] >= 1
        agrees(server, second, tmp_path / "live.db")


def test_unknown_orders_are_reported_cancelled_or_refuse_the_start(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    manual = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "0.001", "price": "40000", "newClientOrderId": "by-hand-1"}
    with exchange(data_dir) as server:
        server.place_order(manual)
        summary, _ = run(live_toml(server.url, seconds=1), tmp_path)
        assert summary["components"]["executor"]["unknown"] == ["BTC/USDT by-hand-1"]
        assert server.order("by-hand-1").status == "NEW"  # reported, left alone
    with exchange(data_dir) as server:
        server.place_order(manual)
        with pytest.raises(GridkitError, match="refusing to start: 1 open order"):
            run(live_toml(server.url, seconds=1, live='on_start = "refuse"'), tmp_path,
                db=tmp_path / "refused.db")
        assert len(server.orders()) == 1  # nothing was sent
    with exchange(data_dir) as server:
        server.place_order(manual)
        # (3 s: the grid starts on the first 1 s bar folded from the prints, which a loaded
        # machine may not close within a 1 s run)
        summary, _ = run(live_toml(server.url, seconds=3, live='unknown_orders = "cancel"'),
                         tmp_path, db=tmp_path / "cancel.db")
        assert server.order("by-hand-1").status == "CANCELED"
        assert summary["components"]["executor"]["unknown_cancelled"] == 1
        assert len(server.orders()) > 1


def test_flatten_cancels_the_journals_orders_and_sells_its_position(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    with exchange(data_dir, balances={"USDT": 20000, "BTC": 0}) as server:
        text = live_toml(server.url, seconds=3, capital=20000)
        first, _ = run(text, tmp_path)
        assert first["final_base"] > 0 and first["open_orders"] > 0
        second, _ = run(live_toml(server.url, seconds=3, capital=20000,
                                  live='on_start = "flatten"'),
                        tmp_path, resume=True, server=server)
        # Every order of the first run was cancelled (the grid was laid again afresh).
        first_ids = set(first["open_order_ids"])
        assert not first_ids & {o.client_id for o in server.open_orders()}
        agrees(server, second, tmp_path / "live.db")


def gridkit_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_an_exchange_that_cannot_be_reached_exits_3(data_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, GRIDKIT_API_KEY=KEY, GRIDKIT_API_SECRET=SECRET)
    # A port nobody listens on.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "live.toml"
    path.write_text(live_toml(f"http://127.0.0.1:{port}", seconds=1))
    out = gridkit_cli("run", str(path), "--live", "--db", str(tmp_path / "x.db"), env=env,
                      cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not be reached" in lines[0], out.stderr
    with exchange(data_dir) as server:
        path.write_text(live_toml(server.url, seconds=1))
        bad = dict(env, GRIDKIT_API_SECRET="not-the-secret-of-this-account")
        out = gridkit_cli("run", str(path), "--live", "--db", str(tmp_path / "y.db"), env=bad,
                          cwd=tmp_path)
        assert out.returncode == 3, out.stderr
        assert "refused the API keys" in out.stderr
        assert server.orders() == []


def test_the_keys_appear_nowhere_a_run_writes(data_dir: Path, tmp_path: Path) -> None:
    """Grep everything a live run writes — the store, the summary, JSON logs, errors — for
    the key and the secret."""
    env = dict(os.environ, GRIDKIT_API_KEY=KEY, GRIDKIT_API_SECRET=SECRET)
    path = tmp_path / "live.toml"
    db = tmp_path / "live.db"
    with exchange(data_dir) as server:
        server.fail("429", "/api/v3/order", times=1, method="POST")
        path.write_text(live_toml(server.url, seconds=3))
        out = gridkit_cli("run", str(path), "--live", "--db", str(db), "--json",
                          "--log-format", "json", "--log-level", "debug", env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["buy_fills"] >= 1
    written = [out.stdout, out.stderr, db.read_bytes().decode("latin-1")]
    written += [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir() if p.is_file()]
    for text in written:
        for secret in (KEY, SECRET, KEY[2:18], SECRET[2:18]):
            assert secret not in text


class Kinds(gridkit.Strategy):
    """Sends one order of each kind at start, around the first close."""

    name = "test-kinds"

    def start(self, ctx: Any) -> list[Any]:
        c = ctx.bar.close
        return [ctx.order("buy", 0.01, round(c * 0.97, 2)),
                ctx.order("buy", 0.01, round(c * 0.96, 2), tif="PO"),
                ctx.order("buy", 0.01, round(c * 0.95, 2), tif="IOC"),
                ctx.order("buy", 0.01, round(c * 0.95, 2), tif="FOK"),
                ctx.order("buy", 0.01, c, kind="market"),
                ctx.order("sell", 0.005, round(c * 0.90, 2), kind="stop_limit",
                          stop_price=round(c * 0.91, 2))]


@pytest.fixture
def kinds_host(gridkit_host: PluginHost) -> PluginHost:
    class Plugin:
        @staticmethod
        @gridkit.hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Kinds)

    gridkit_host.register(Plugin, "test-kinds-plugin")
    return gridkit_host


def test_every_order_kind_reaches_the_exchange_as_binance_names_it(
        keys: None, kinds_host: PluginHost, data_dir: Path, tmp_path: Path) -> None:
    with exchange(data_dir) as server:
        summary, _ = run(live_toml(server.url, seconds=3, strategy='use = "test-kinds"'),
                         tmp_path, kinds_host, server=server)
        got = {(o.type, o.tif if o.type != "LIMIT_MAKER" else "") for o in server.orders()}
        assert got == {("LIMIT", "GTC"), ("LIMIT_MAKER", ""), ("LIMIT", "IOC"),
                       ("LIMIT", "FOK"), ("MARKET", ""), ("STOP_LOSS_LIMIT", "GTC")}, got
        assert summary["orders_rejected"] == 0
        expired = {o.client_id for o in server.orders() if o.status == "EXPIRED"}
        assert len(expired) == 2  # the IOC and FOK far below the price
        agrees(server, summary, tmp_path / "live.db")


class Taker(gridkit.Strategy):
    """Buys 0.0002 at market on every trade after its first second: the last one is still
    queued when the run stops."""

    name = "test-taker"

    def start(self, ctx: Any) -> list[Any]:
        self.t0 = time.monotonic()
        return []

    def on_tick(self, ctx: Any) -> list[Any]:
        if time.monotonic() - self.t0 < 1.0:
            return []
        return [ctx.order("buy", 0.0002, ctx.event.price, kind="market")]


def test_what_the_exchange_did_up_to_the_stop_is_in_the_summary(
        keys: None, gridkit_host: PluginHost, data_dir: Path, tmp_path: Path) -> None:
    """The order a strategy sent on the last event goes out as the run stops, and the
    exchange fills it at once: the executor's last look books that fill before the summary,
    so summary, journal and exchange agree without waiting for a resume."""
    class Plugin:
        @staticmethod
        @gridkit.hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Taker)

    gridkit_host.register(Plugin, "test-taker-plugin")
    with exchange(data_dir) as server:
        text = live_toml(server.url, seconds=3, strategy='use = "test-taker"').replace(
            'capital = 10000', 'capital = 10000\ndecide_on = ["bars", "trades"]')
        summary, _ = run(text, tmp_path, gridkit_host, server=server, hold=0.0)
        assert all(o.status == "FILLED" for o in server.orders())
        assert len(server.orders()) == summary["orders_placed"] == summary["buy_fills"] >= 2
        agrees(server, summary, tmp_path / "live.db")  # base, cash and every order's fills


def test_smart_placement_makes_passive_orders_post_only_and_crossing_ones_ioc(
        keys: None, kinds_host: PluginHost, data_dir: Path, tmp_path: Path) -> None:
    strategy = """
use = "static"
lower = 56000
upper = 57600
grids = 8
qty = 0.01"""
    with exchange(data_dir) as server:
        summary, _ = run(live_toml(server.url, seconds=3, strategy=strategy,
                                   executor='placement = "smart"'), tmp_path, server=server)
        kinds = Counter(o.type for o in server.orders())
        assert kinds["LIMIT_MAKER"] >= 6 and kinds["LIMIT"] == 0, kinds
        agrees(server, summary, tmp_path / "live.db")


def test_the_executor_refuses_other_modes_and_unknown_exchanges() -> None:
    with pytest.raises(GridkitError, match="runs only with mode"):
        build_pipeline(parse_pipeline(live_toml("http://127.0.0.1:1").replace(
            'mode = "live"', 'mode = "paper"')))
    with pytest.raises(GridkitError, match="no exchange 'nowhere'"):
        build_pipeline(parse_pipeline(live_toml("http://127.0.0.1:1").replace(
            'use = "ccxt"\nexchange = "binance"', 'use = "ccxt"\nexchange = "nowhere"')))



def test_usdm_orders_go_in_batches_with_reduce_only_and_fills_come_back(
        keys: None, data_dir: Path) -> None:
    """USDT-M through ``ccxt.pro.binanceusdm``, the executor driven on a run's event loop as
    the engine drives it: orders decided together go out with createOrders, a reduce-only
    order with no position is refused with Binance's reason, and a market order's fill comes
    back with its fee in USDT."""
    import asyncio

    from gridkit.core.types import Accepted, Fill, Order, Rejected
    from gridkit.plugins.executors.ccxt_live import CcxtExecutor
    from gridkit.runtime.account import LINEAR, Account, Position
    from gridkit.runtime.context import Context, RunInfo
    from gridkit.runtime.ledger import Ledger

    info = (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_futures_market_exchange_info.json")
    symbol = "BTC/USDT:USDT"
    with ExchangeServer(info, market="usdm", candles=CANDLES, candle_seconds=0.05, loop=True,
                        balances={"USDT": 10000}, api_key=KEY, secret=SECRET,
                        lifetime=60.0) as server:
        loop = asyncio.new_event_loop()
        run_info = RunInfo("usdm", "live", symbol, 10000.0, symbols=(symbol,), loop=loop)
        ex = CcxtExecutor(CcxtExecutor.Config(exchange="binanceusdm", url=server.url,
                                              backoff=0.05, poll=0.5))
        try:
            ex.validate(run_info)
            ex.setup(run_info)
            acct = Account(10000.0, "USDT")
            ctx = Context(run_info, acct, Ledger(), symbol,
                          acct.add(Position(symbol, LINEAR)))
            price = float(server.last_price("BTCUSDT"))
            orders = [Order(f"u-{i}", "buy", 0.002, round(price * (0.98 - i / 100), 1))
                      for i in range(4)]
            orders.append(Order("u-ro", "sell", 0.002, round(price * 1.05, 1),
                                reduce_only=True))
            orders.append(Order("u-mkt", "buy", 0.002, price, kind="market"))
            for o in orders:
                assert ex.submit(o, ctx) is None
            got: list[Any] = []
            for _ in range(60):
                loop.run_until_complete(asyncio.sleep(0.1))
                got += ex.reports(None, symbol)
                if any(type(r) is Fill for r in got) and len(
                        {r.order_id for r in got if type(r) in (Accepted, Rejected)}) == 6:
                    break
        finally:
            ex.close()
            loop.close()
        accepted = {r.order_id for r in got if type(r) is Accepted}
        assert {f"u-{i}" for i in range(4)} | {"u-mkt"} <= accepted
        refused = [r for r in got if type(r) is Rejected]
        assert [r.order_id for r in refused] == ["u-ro"]
        assert "-2022" in refused[0].reason or "ReduceOnly" in refused[0].reason
        fill = next(r for r in got if type(r) is Fill)
        assert (fill.order_id, fill.qty, fill.fee_currency) == ("u-mkt", 0.002, "")
        assert fill.fee > 0 and fill.liquidity == "taker"
        assert ex.counts["batches"] >= 1
        on_exchange = [o.client_id for o in server.orders()]
        assert len(on_exchange) == len(set(on_exchange))


def test_a_paper_run_whose_exchange_is_down_exits_3(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = live_toml(f"http://127.0.0.1:{port}", seconds=1).replace(
        'mode = "live"', 'mode = "paper"')
    text = text.split("[executor]")[0] + '[executor]\nuse = "paper"\n'
    path = tmp_path / "paper.toml"
    path.write_text(text)
    out = gridkit_cli("run", str(path), "--db", str(tmp_path / "p.db"), env=dict(os.environ),
                      cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "could not be reached" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_check_reads_a_live_pipelines_fees_and_filters_from_the_exchange(
        data_dir: Path, tmp_path: Path) -> None:
    """``gridkit check`` on a live pipeline without a markets file: the market comes from the
    exchange (no keys needed), so the round trip is checked against its 0.1 % fees."""
    path = tmp_path / "live.toml"
    with exchange(data_dir) as server:
        path.write_text(live_toml(server.url, seconds=1))
        out = gridkit_cli("check", str(path), env=dict(os.environ), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "clears the round-trip fee 0.2000%" in out.stdout, out.stdout


def test_a_live_perpetual_grid_books_the_funding_the_exchange_charges(
        keys: None, data_dir: Path, tmp_path: Path) -> None:
    """A neutral grid on the USDT-M BTC perpetual through ``binanceusdm``: the exchange charges
    funding every half second of the run, the executor reports it from ``/fapi/v1/income``, and the
    account's wallet and position end equal to the exchange's."""
    info = (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_futures_market_exchange_info.json")
    strategy = """
use = "static"
lower = 55000
upper = 58600
grids = 12
qty = 0.002
direction = "neutral"
"""
    with ExchangeServer(info, market="usdm", candles=CANDLES, candle_seconds=0.05, loop=True,
                        balances={"USDT": 10000}, api_key=KEY, secret=SECRET,
                        lifetime=120.0) as server:
        text = live_toml(server.url, seconds=10, strategy=strategy).replace(
            'symbol = "BTC/USDT"', 'symbol = "BTC/USDT:USDT"').replace(
            'exchange = "binance"', 'exchange = "binanceusdm"').replace(
            "[source]", '[market]\ntype = "linear"\nleverage = 7\n[source]', 1).replace(
            "poll = 0.5", "poll = 0.5\nfunding_poll = 0.3")
        charges = [threading.Timer(3.0 + 0.5 * i, server.charge_funding, ("0.001",))
                   for i in range(8)]
        for t in charges:
            t.start()
        try:
            summary, _ = run(text, tmp_path, server=server, hold=3.0)
        finally:
            for t in charges:
                t.cancel()
        paid = [Decimal(r["income"]) for r in server.engine.account(KEY).incomes]
        assert len(paid) >= 1, "no position was open at a funding time"
        assert summary["funding_paid"] == pytest.approx(-float(sum(paid)), abs=1e-9)
        wallet = float(server.balances()["USDT"][0])
        amt = sum(float(p.amt) for p in server.positions())
        assert summary["final_base"] == pytest.approx(amt, abs=1e-12)
        assert summary["final_cash"] == pytest.approx(wallet, abs=1e-6)
        cids = [o.client_id for o in server.orders()]
        assert len(cids) == len(set(cids))
        assert {o.client_id for o in server.open_orders()} == set(summary["open_order_ids"])
        acct = server.engine.account(KEY)
        assert acct.leverage["BTCUSDT"] == 7 and acct.dual is False  # [market] set it


def test_a_live_perpetual_takes_its_funding_from_the_exchange_not_a_file(
        tmp_path: Path) -> None:
    text = live_toml("http://127.0.0.1:1").replace('symbol = "BTC/USDT"',
                                                    'symbol = "BTC/USDT:USDT"')
    funding = REPO / "examples" / "data" / "XRP_USDT_USDT-8h-funding_rate.feather"
    text = text.replace("[source]", f'[market]\ntype = "linear"\nfunding = "{funding}"\n'
                                    f'[source]', 1)
    with pytest.raises(GridkitError, match="a live run books the funding the exchange charges"):
        build_pipeline(parse_pipeline(text))
