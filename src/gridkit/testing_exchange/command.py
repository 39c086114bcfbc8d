"""``gridkit exchange serve``'s work: find the data, run a trading server until stopped.

The click declarations live in :mod:`gridkit.plugins.exchange_commands` (the entry point, whose
help ``gridkit --help`` reads from the source); this module does the rest, and is imported only
when the command runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gridkit.testing_exchange.server import DEFAULT_API_KEY, DEFAULT_SECRET, ExchangeServer

_REPO = Path(__file__).resolve().parents[3]
_INFO = "api_fixtures/nautilus_trader/binance_http_responses/http_{}_market_exchange_info.json"
_CAPTURE = "trades_orderbook/hftbacktest/{}/btcusdt_20240808.gz"

#: Starting balances when no ``--balance`` is given.
DEFAULT_BALANCES = {"spot": {"USDT": "10000", "BTC": "0.1"}, "usdm": {"USDT": "10000"}}


class ServeError(Exception):
    """Bad input or missing data: one line for the user."""


def _data_roots() -> list[Path]:
    """Where real data may be: $GRIDKIT_TEST_DATA, the shared data set beside the repository,
    the slices shipped in tests/data."""
    roots = []
    if os.environ.get("GRIDKIT_TEST_DATA") not in (None, "", "none"):
        roots.append(Path(os.environ["GRIDKIT_TEST_DATA"]))
    roots += [_REPO.parent / "shared" / "data", _REPO / "tests" / "data"]
    return [r for r in roots if r.is_dir()]


def default_data(market: str) -> tuple[Path | None, Path | None]:
    """The real exchangeInfo and capture for ``market``: the shipped slices (or the full data
    set when it is there). USDT-M without a USDT-M capture trades on the spot capture's prints
    (BTCUSDT's real prices either way)."""
    info_name = _INFO.format("spot" if market == "spot" else "futures")
    info = capture = None
    for root in _data_roots():
        for name in (info_name, info_name + ".gz"):
            if info is None and (root / name).is_file():
                info = root / name
        for kind in (("spot",) if market == "spot" else ("usdm", "spot")):
            if capture is None and (root / _CAPTURE.format(kind)).is_file():
                capture = root / _CAPTURE.format(kind)
    return info, capture


def parse_balances(items: Sequence[str]) -> dict[str, Decimal]:
    """``["USDT=10000", "BTC=0.1"]`` as ``{"USDT": Decimal("10000"), ...}``."""
    out: dict[str, Decimal] = {}
    for item in items:
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not sep or not asset.strip() or not value.is_finite() or value < 0:
            raise ServeError(f"--balance {item!r}: expected ASSET=AMOUNT, e.g. USDT=10000")
        out[asset.strip().upper()] = value
    return out


def serve(*, market: str = "spot", capture: str | None = None,
          exchange_info: str | None = None, port: int = 8765, speed: float = 1.0,
          balances: Mapping[str, Decimal] | None = None, api_key: str = DEFAULT_API_KEY,
          secret: str = DEFAULT_SECRET, lifetime: float | None = None,
          candles: str | None = None, candle_seconds: float = 1.0,
          echo: Callable[[str], Any] = print) -> None:
    """Run a trading :class:`ExchangeServer` on 127.0.0.1:``port`` until SIGINT / SIGTERM (or
    ``lifetime`` seconds), looping its tape; ``echo`` gets the one line saying where it is."""
    info_default, capture_default = default_data(market)
    info = exchange_info or info_default
    tape = capture or capture_default
    if info is None or not Path(info).is_file():
        raise ServeError(f"exchangeInfo file not found: {info or '(no default data found)'}; "
                         "pass --exchange-info PATH")
    if candles is not None:
        if not Path(candles).is_file():
            raise ServeError(f"candles file not found: {candles}")
        if not candle_seconds > 0:
            raise ServeError(f"--candle-seconds must be above 0, not {candle_seconds}")
    elif tape is None or not Path(tape).is_file():
        raise ServeError(f"capture file not found: {tape or '(no default data found)'}; pass "
                         "--capture PATH")
    if speed <= 0:
        raise ServeError(f"--speed must be above 0, not {speed}")
    try:
        extra: dict[str, Any] = ({"candles": candles, "candle_seconds": candle_seconds}
                                 if candles is not None else {"capture": tape})
        server = ExchangeServer(info, market=market, speed=speed, loop=True, **extra,
                                balances=dict(balances or DEFAULT_BALANCES[market]),
                                api_key=api_key, secret=secret, lifetime=lifetime, port=port)
    except (ValueError, OSError) as err:  # a file that is not candles: one line
        raise ServeError(f"cannot read {candles or tape}: {type(err).__name__}: {err}") from None
    try:
        server.start()
    except RuntimeError as err:
        raise ServeError(f"cannot serve on 127.0.0.1:{port}: {err.__cause__ or err}") from None
    stop = threading.Event()
    previous: dict[int, Any] = {}
    main = threading.current_thread() is threading.main_thread()
    if main:  # signal handlers can only be set from the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        echo(f"gridkit exchange ({market}) serving at {server.url} -- api key {api_key} "
             f"secret {secret} -- in pipeline.toml: url = \"{server.url}\"")
        while not stop.wait(0.1) and not server._stopped.is_set():
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()


__all__ = ["DEFAULT_BALANCES", "ServeError", "default_data", "parse_balances", "serve"]
