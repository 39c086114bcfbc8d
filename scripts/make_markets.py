"""Regenerate ``examples/data/markets.json`` from the recorded Binance exchangeInfo fixtures.

The fixtures are cryptofeed's recordings ``BINANCE.0`` (spot ``/api/v3/exchangeInfo``,
2021-10-12) and ``BINANCE_FUTURES.0`` (USDⓈ-M ``/fapi/v1/exchangeInfo``, 2021-07-21), whose
first line is ``<URL> -> <receive ts>: <raw JSON body>``. Each body goes through ccxt's own
Binance parser (:func:`gridkit.trading.markets.markets_from_exchange_info`), so the output is
ccxt's ``load_markets()`` format for these four markets.

Usage::

    python scripts/make_markets.py [FIXTURES_DIR] [OUT]

FIXTURES_DIR defaults to ``../shared/data/api_fixtures/cryptofeed`` beside the repository,
OUT to ``examples/data/markets.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gridkit.trading.markets import markets_from_exchange_info

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = REPO.parent / "shared" / "data" / "api_fixtures" / "cryptofeed"
DEFAULT_OUT = REPO / "examples" / "data" / "markets.json"

#: (recording, ccxt class, Binance ids to keep)
SELECTION = (
    ("BINANCE.0", "binance", ("BTCUSDT", "ETHUSDT", "SOLUSDT")),
    ("BINANCE_FUTURES.0", "binanceusdm", ("XRPUSDT",)),
)


def read_recording(path: Path) -> str:
    """The raw response body on line 1 of a cryptofeed recording (``<URL> -> <ts>: <body>``)."""
    with path.open(encoding="utf-8") as f:
        line = f.readline()
    _, sep, rest = line.partition(" -> ")
    _, sep2, body = rest.partition(": ")
    if not sep or not sep2:
        raise ValueError(f"{path}: line 1 is not '<URL> -> <ts>: <body>'")
    return body


def build(fixtures: Path) -> dict[str, dict[str, Any]]:
    """The ccxt-format markets of :data:`SELECTION`, keyed by unified symbol."""
    out: dict[str, dict[str, Any]] = {}
    for name, exchange, ids in SELECTION:
        path = fixtures / name
        out.update(markets_from_exchange_info(read_recording(path), exchange, symbols=ids,
                                              source=str(path)))
    return out


def dumps(markets: dict[str, dict[str, Any]]) -> str:
    """The file's text: sorted keys, one-space indent, a final newline (stable diffs)."""
    return json.dumps(markets, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    fixtures = Path(argv[1]) if len(argv) > 1 else DEFAULT_FIXTURES
    out = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    out.write_text(dumps(build(fixtures)), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
