"""``gridkit exchange serve`` (through its click object and as a process stopped by SIGTERM),
and pipelines' way of pointing ccxt at the server: rehosting every URL with gridkit's
``make_exchange(..., url=...)``, spot and USDT-M, REST and user stream."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridkit.plugins.exchange_commands import exchange
from gridkit.testing_exchange import DEFAULT_API_KEY, DEFAULT_SECRET, ExchangeServer

ccxt = pytest.importorskip("ccxt")
ccxt_pro = pytest.importorskip("ccxt.pro")

SRC = Path(__file__).resolve().parents[1] / "src"


def test_serve_prints_where_and_stops_after_its_lifetime() -> None:
    result = CliRunner().invoke(exchange, ["serve", "--port", "0", "--lifetime", "1",
                                           "--balance", "USDT=500", "--speed", "4"])
    assert result.exit_code == 0, result.output
    [line] = result.output.splitlines()
    url = re.search(r"serving at (http://127\.0\.0\.1:\d+)", line).group(1)
    assert f'url = "{url}"' in line and DEFAULT_API_KEY in line and DEFAULT_SECRET in line


@pytest.mark.parametrize(("args", "message"), [
    (["--balance", "USDT"], "--balance 'USDT': expected ASSET=AMOUNT"),
    (["--capture", "/nowhere.gz"], "capture file not found: /nowhere.gz"),
    (["--speed", "0"], "--speed must be above 0"),
])
def test_serve_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(exchange, ["serve", "--port", "0", "--lifetime", "1", *args])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {result.output[7:].strip()}"]
    assert message in result.output


def test_serve_until_sigterm_and_trade_on_it() -> None:
    """As a process: it answers ccxt on the printed URL, then exits 0 on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = ("from gridkit.plugins.exchange_commands import exchange; "
            "exchange(['serve', '--port', '0', '--market', 'usdm', '--api-key', 'k', "
            "'--secret', 's'])")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        from gridkit.plugins.ccxt_sources import make_exchange

        ex = make_exchange(ccxt, "binanceusdm", "BTC/USDT:USDT", url=url, urls={}, options={})
        ex.apiKey, ex.secret = "k", "s"
        assert ex.fetch_balance()["USDT"]["total"] == 10_000.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rehosted_spot_exchange_trades_and_streams(data_dir: Path) -> None:
    """make_exchange rehosts ccxt's every URL (REST, /sapi, the WebSocket API) onto the server:
    ccxt loads markets with keys set (currencies, margin pairs), trades, and its user stream
    works, on Binance's own paths."""
    from gridkit.plugins.ccxt_sources import make_exchange

    info = (data_dir / "api_fixtures" / "nautilus_trader" / "binance_http_responses"
            / "http_spot_market_exchange_info.json")
    capture = data_dir / "trades_orderbook" / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
    with ExchangeServer(info, capture=capture, balances={"USDT": 1000}, speed=5.0,
                        loop=True, lifetime=60.0) as server:
        ex = make_exchange(ccxt, "binance", "BTC/USDT", url=server.url, urls={}, options={})
        ex.apiKey, ex.secret = server.api_key, server.secret
        ex.load_markets()
        assert {"/sapi/v1/capital/config/getall", "/api/v3/exchangeInfo"} <= {
            p for p, _ in server.requests}
        assert ex.currencies["BTC"]["active"] is True
        order = ex.create_order("BTC/USDT", "market", "buy", 0.001)
        assert order["status"] == "closed"

        async def watch() -> list:
            pro = make_exchange(ccxt_pro, "binance", "BTC/USDT", url=server.url, urls={},
                                options={})
            pro.apiKey, pro.secret = server.api_key, server.secret
            try:
                await pro.load_markets()
                pending = asyncio.ensure_future(pro.watch_orders("BTC/USDT"))
                await asyncio.sleep(0.3)
                await pro.create_order("BTC/USDT", "market", "sell", 0.0005)
                orders = list(await pending)
                while orders[-1]["status"] != "closed":  # NEW, then the fill
                    orders = list(await pro.watch_orders("BTC/USDT"))
                return orders
            finally:
                await pro.close()

        orders = asyncio.run(asyncio.wait_for(watch(), 30))
        assert orders[-1]["side"] == "sell" and orders[-1]["status"] == "closed"
        assert {p for p, _ in server.requests} >= {"/api/v3/order"}
