"""A local Binance exchange for tests: real market data, and trading in Binance's real formats.

:class:`ExchangeServer` answers on 127.0.0.1 (a free port) in Binance's REST and websocket
formats, from real recorded data, so ccxt's own unmodified classes (``ccxt.binance``,
``ccxt.binanceusdm`` and their ``ccxt.pro`` twins) run against it with only their URLs changed —
by :meth:`ExchangeServer.ccxt_config`, or by rehosting every URL onto :attr:`ExchangeServer.url`
(gridkit's ``make_exchange(..., url=server.url)``): the server answers on Binance's real paths.

**Market data** (always): ``exchangeInfo`` (a real response file, gzip or not), ``klines`` (from
real OHLCV rows), ``depth`` (the capture's REST snapshot brought up to date), ``time``, ``ping``,
under ``/api/v3`` and ``/fapi/v1``; websockets replaying a real capture's ``@trade``,
``@depth``, ``@bookTicker`` and ``@kline_<tf>`` streams.

**Trading** (``balances=...`` or ``trading=True``): one tape per server walks the capture's real
prints at ``speed`` × real time (``loop=True`` starts it over, ids and times increasing) and
every market-data websocket gets the same prints live, stamped with the server's clock. Resting
orders fill from the prints (a buy at a print at or below its price, a sell at or above: see
:mod:`~gridkit.testing_exchange.matching`); market orders and crossing limits take at the last
print. Signed REST (HMAC-SHA256, Binance's -1022 / -2015 errors): spot ``/api/v3/order``,
``openOrders``, ``allOrders``, ``myTrades``, ``account``, ``userDataStream``; USDT-M
``/fapi/v1/order``, ``batchOrders``, ``openOrders``, ``allOpenOrders``, ``userTrades``,
``algoOrder`` (conditional orders), ``listenKey``, ``leverage``, ``positionSide/dual``,
``/fapi/v2|v3/account``, ``balance``, ``positionRisk``. Binance's filters and error codes
apply. User-data streams: spot ``executionReport`` / ``outboundAccountPosition`` (on
``/ws/<listenKey>`` and the WebSocket API ``/ws-api/v3`` that ccxt.pro uses), USDT-M
``ORDER_TRADE_UPDATE`` / ``ACCOUNT_UPDATE`` (``/ws/<listenKey>``, ``/private/ws?listenKey=``).

**Faults**: :meth:`ExchangeServer.fail` (429 / 418 with ``Retry-After``, 5xx, ``drop``,
``timeout``, ``reject`` with a Binance code, ``drop-after-take``, ``late``, per path and method),
:meth:`ExchangeServer.disconnect_user_streams`, :meth:`ExchangeServer.partial_fills`.

**Inspection**: :meth:`~ExchangeServer.orders`, :meth:`~ExchangeServer.open_orders`,
:meth:`~ExchangeServer.fills`, :meth:`~ExchangeServer.balances`,
:meth:`~ExchangeServer.positions`, :meth:`~ExchangeServer.place_order` (an order the bot did not
make).

.. code-block:: python

    import ccxt
    from gridkit.testing_exchange import ExchangeServer

    with ExchangeServer(info_path, capture=capture_path, balances={"USDT": 10000, "BTC": 0.1},
                        speed=5.0, loop=True) as server:
        ex = ccxt.binance(server.ccxt_config())
        order = ex.create_order("BTC/USDT", "limit", "buy", 0.001, 61000.0)
        server.wait_for(lambda: server.fills())

From a shell, ``gridkit exchange serve`` runs one until stopped (:mod:`.command`).
"""

from __future__ import annotations

from gridkit.testing_exchange.market_data import (
    ERRORS,
    FAULTS,
    INTERVALS,
    MarketDataServer,
    kline_row,
    load_candles,
    load_capture,
    load_json,
)
from gridkit.testing_exchange.matching import (
    Account,
    BinanceError,
    Engine,
    Fill,
    Order,
    Position,
    Rules,
)
from gridkit.testing_exchange.server import (
    DEFAULT_API_KEY,
    DEFAULT_SECRET,
    MARKETS,
    ExchangeServer,
    rehost,
)

__all__ = [
    "DEFAULT_API_KEY", "DEFAULT_SECRET", "ERRORS", "FAULTS", "INTERVALS", "MARKETS", "Account",
    "BinanceError", "Engine", "ExchangeServer", "Fill", "MarketDataServer", "Order", "Position",
    "Rules", "kline_row", "load_candles", "load_capture", "load_json", "rehost",
]
