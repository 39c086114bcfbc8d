"""``gridkit data download``: candles from any ccxt exchange into a file the sources read.

Declared in gridkit's ``gridkit.commands`` entry-point group. ``gridkit --help`` reads the short
help from this file without importing it; the module is imported only when ``gridkit data`` is
run, and it imports the ccxt machinery (:mod:`gridkit.plugins.ccxt_sources`) only inside the
command.
"""

from __future__ import annotations

import sys
from typing import Any

import click


@click.group("data")
def data() -> None:
    """Market data: download candles from exchanges."""


@data.command("download")
@click.argument("exchange")
@click.argument("symbol")
@click.argument("timeframe")
@click.option("--since", required=True, help="First candle: ISO date (UTC) or epoch ms.")
@click.option("--until", help="End (exclusive): ISO date or epoch ms; default now.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="freqtrade-json file to write (resumes after its last candle).")
@click.option("--db", type=click.Path(dir_okay=False),
              help="SQLite file to write a 'candles' table to (resumes too).")
@click.option("--url", help="API base URL instead of the exchange's hosts (proxy, local "
                            "server).")
@click.option("--limit", default=1000, show_default=True, help="Candles per request.")
@click.option("--retries", default=5, show_default=True,
              help="Retries of a failed request.")
@click.option("--backoff", default=1.0, show_default=True,
              help="Seconds before the first retry; doubled each time.")
def download_cmd(exchange: str, symbol: str, timeframe: str, since: str,
                 until: str | None, out: str | None, db: str | None, url: str | None,
                 limit: int, retries: int, backoff: float) -> None:
    """Download EXCHANGE's SYMBOL candles of TIMEFRAME (e.g. binance BTC/USDT 1m)."""
    from gridkit.plugins.ccxt_sources import download

    bar: Any = None
    done = [0]

    def progress(n: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total or None, label="candles",
                                    file=sys.stderr, show_pos=True)
            bar.__enter__()
        bar.update(n - done[0])
        if total is not None and bar.length != total:
            bar.length = total
            bar.render_progress()
        done[0] = n

    tty = sys.stderr.isatty()
    try:
        result = download(exchange, symbol, timeframe, since, until, out=out, db=db,
                          url=url, limit=limit, retries=retries, backoff=backoff,
                          progress=progress if tty else None)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(f"{result['candles']} candles of {symbol} {timeframe} from {exchange} "
               f"written to {result['path']}")
