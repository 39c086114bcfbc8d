"""``gridkit exchange serve``: a local Binance that trades, for pointing a pipeline at.

Declared in gridkit's ``gridkit.commands`` entry-point group. ``gridkit --help`` reads the short
help from this file without importing it; the server (:mod:`gridkit.testing_exchange`) is
imported only inside the command.
"""

from __future__ import annotations

import click


@click.group("exchange")
def exchange() -> None:
    """A local Binance exchange (spot or USDT-M) that trades on real data."""


@exchange.command("serve")
@click.option("--market", type=click.Choice(["spot", "usdm"]), default="spot",
              show_default=True, help="Spot or USDT-M futures.")
@click.option("--capture", type=click.Path(dir_okay=False),
              help="Binance websocket capture whose trades are the tape (default: the shipped "
                   "slice).")
@click.option("--candles", type=click.Path(dir_okay=False),
              help="freqtrade-json candles whose price path is the tape instead (four prints "
                   "per candle), e.g. examples/data/BTC_USDT-1m.json.gz.")
@click.option("--candle-seconds", default=1.0, show_default=True,
              help="With --candles: seconds each candle lasts (before --speed).")
@click.option("--exchange-info", type=click.Path(dir_okay=False),
              help="Real exchangeInfo response, .json or .json.gz (default: the shipped one).")
@click.option("--port", default=8765, show_default=True, help="Port on 127.0.0.1.")
@click.option("--speed", default=1.0, show_default=True,
              help="Replay the tape this many times faster than recorded.")
@click.option("--balance", "balance", multiple=True, metavar="ASSET=AMOUNT",
              help="Starting balance (repeatable; default USDT=10000 and, spot, BTC=0.1).")
@click.option("--api-key", help="The account's API key (default: a fixed test key, printed).")
@click.option("--secret", help="The account's secret (default: a fixed test secret, printed).")
@click.option("--lifetime", type=float, help="Stop after this many seconds (default: run until "
                                             "Ctrl-C or SIGTERM).")
def serve_cmd(market: str, capture: str | None, candles: str | None, candle_seconds: float,
              exchange_info: str | None, port: int,
              speed: float, balance: tuple[str, ...], api_key: str | None, secret: str | None,
              lifetime: float | None) -> None:
    """Serve a trading Binance on 127.0.0.1 until stopped; prints its URL and the keys."""
    from gridkit.testing_exchange.command import ServeError, parse_balances, serve
    from gridkit.testing_exchange.server import DEFAULT_API_KEY, DEFAULT_SECRET

    try:
        serve(market=market, capture=capture, exchange_info=exchange_info, port=port,
              speed=speed, balances=parse_balances(balance) or None,
              api_key=api_key or DEFAULT_API_KEY, secret=secret or DEFAULT_SECRET,
              lifetime=lifetime, candles=candles, candle_seconds=candle_seconds,
              echo=click.echo)
    except ServeError as err:
        raise click.ClickException(str(err)) from None
