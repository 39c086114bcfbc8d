"""Rebuild the data slices in this folder from the full shared data set.

    python tests/data/make_slices.py ../shared/data

A slice keeps the exact bytes of the rows it keeps, and nothing else changes:

* ``rows``: a JSON array (freqtrade OHLCV or trades, ccxt trades) cut after its first N
  elements and closed with ``]``;
* ``columns``: a pandas "columns" JSON object whose every column keeps its first N entries;
* ``lines``: a text file (CSV, a raw websocket capture) cut after its first N lines (a CSV keeps
  its header on top of them);
* ``whole``: the file unchanged.

Text is stored gzip-compressed (``<name>.gz``, or re-compressed under its own name when the
original was a gzip file already); binary files (parquet, feather) are copied byte for byte.
The tests see every slice under its original name and format: ``tests/conftest.py`` lays them
out in a temporary folder like shared/data, decompressing those stored as ``<name>.gz``, and
checks the sha256 that SOURCE.md gives for each: of the uncompressed content, which does not
depend on the compressor. The script prints those SOURCE.md table rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (path in shared/data, cut, N).
SLICES: list[tuple[str, str, int | None]] = [
    ("ohlcv/nostalgiaforinfinity/BTC_USDT-5m.json", "rows", 7_500),
    ("ohlcv/nostalgiaforinfinity/ETH_USDT-5m.json", "rows", 7_500),
    ("ohlcv/nostalgiaforinfinity/SOL_USDT-5m.json", "rows", 7_500),
    ("ohlcv/tooyipjee-freqtrade/ETH_USDT-1m.json", "rows", 7_000),
    ("ohlcv/tooyipjee-freqtrade/DOGE_USDT-1m.json", "rows", 16_700),
    ("ohlcv/tooyipjee-freqtrade/BTC_USDT-5m.json", "whole", None),
    ("ohlcv/tooyipjee-freqtrade/ETH_USDT-5m.json", "rows", 3_000),
    ("ohlcv/nautilus_trader/btc-perp-20211231-20220201_1m.csv", "lines", 3_000),
    ("ohlcv/freqtrade/orderflow/candles.json", "columns", 2_000),
    ("ohlcv/freqtrade/futures/XRP_USDT_USDT-1h-futures.feather", "whole", None),
    ("ohlcv/freqtrade/futures/XRP_USDT_USDT-1h-mark.feather", "whole", None),
    ("trades_orderbook/hftbacktest/spot/btcusdt_20240808.gz", "lines", 15_000),
    ("trades_orderbook/hftbacktest/spot/ethusdt_20240808.gz", "lines", 13_500),
    ("trades_orderbook/hftbacktest/usdm/btcusdt_20240808.gz", "lines", 18_000),
    ("trades_orderbook/freqtrade/XRP_ETH-trades.json.gz", "whole", None),
    ("trades_orderbook/freqtrade/XRP_OLD-trades.json.gz", "rows", 3_000),
    ("trades_orderbook/freqtrade/orderflow/public_trades_list.csv", "whole", None),
    ("trades_orderbook/nautilus_trader/binance/btcusdt-trades.parquet", "whole", None),
    ("trades_orderbook/nautilus_trader/binance/btcusdt-quotes.parquet", "whole", None),
    ("trades_orderbook/nautilus_trader/binance/btcusdt-depth-snap.csv", "whole", None),
    ("trades_orderbook/nautilus_trader/binance/btcusdt-depth-update.csv", "whole", None),
    ("api_fixtures/bbgo/btcusdt-trades.json", "whole", None),
    ("api_fixtures/cryptofeed/BINANCE.0", "whole", None),
    ("api_fixtures/cryptofeed/BINANCE_FUTURES.0", "whole", None),
    ("ohlcv/a-share/qbot/600519.csv", "whole", None),
    ("ohlcv/a-share/qbot/000001.SZ.csv", "whole", None),
    ("ohlcv/a-share/volatility-regime-momentum/300033.csv", "whole", None),
    ("ohlcv/a-share/volatility-regime-momentum/688981.csv", "whole", None),
    *((f"api_fixtures/nautilus_trader/binance_http_responses/http_{name}.json", "whole", None)
      for name in ("spot_market_exchange_info", "spot_market_klines", "spot_market_trades",
                   "spot_market_agg_trades", "futures_market_exchange_info")),
]
#: Files the tests read that examples/data already ships, byte for byte (see its SOURCE.md):
#: SOURCE.md lists them as stored there, and they are not copied again.
IN_EXAMPLES = {
    "ohlcv/tooyipjee-freqtrade/BTC_USDT-1m.json": "BTC_USDT-1m.json.gz",
    "ohlcv/a-share/qbot/000953.SZ.csv": "000953.SZ.csv",
    **{f"ohlcv/freqtrade/futures/XRP_USDT_USDT-{name}.feather": f"XRP_USDT_USDT-{name}.feather"
       for name in ("5m-futures", "8h-funding_rate", "8h-mark")},
}

BINARY = (".parquet", ".feather")


def element_ends(text: str) -> list[int]:
    """Offsets just past each element of the top-level JSON array ``text``, whose elements are
    arrays or objects (strings and their escapes respected)."""
    ends, depth, in_str, esc = [], 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 1:
                ends.append(i + 1)
    return ends


def cut_rows(raw: bytes, n: int) -> bytes:
    text = raw.decode()
    assert text.startswith("[") and text.endswith("]"), "a compact JSON array"
    out = text[: element_ends(text)[n - 1]] + "]"
    assert json.loads(out) == json.loads(text)[:n]
    return out.encode()


def cut_columns(raw: bytes, n: int) -> bytes:
    """Keep entries "0" .. str(n - 1) of every column of a compact pandas columns JSON."""
    text = raw.decode()
    full = json.loads(text)
    parts, pos = [], 0
    for name, column in full.items():
        head = f'"{name}":{{'
        start = text.index(head, pos) + len(head)
        keys = list(column)
        assert keys[:n] == [str(k) for k in range(n)]
        stop = text.index(f',"{keys[n]}":', start)
        parts.append(text[pos:stop] + "}")
        pos = text.index("}", stop) + 1
    out = "".join(parts) + text[pos:]
    assert json.loads(out) == {c: dict(list(v.items())[:n]) for c, v in full.items()}
    return out.encode()


def cut_lines(raw: bytes, n: int, header: bool) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join(lines[: n + header])


def make(shared: Path, rel: str, how: str, n: int | None) -> tuple[str, bytes, str]:
    """(stored name relative to this folder, stored bytes, description of the cut)."""
    src = shared / rel
    stored = src.read_bytes()
    gz = stored[:2] == b"\x1f\x8b"
    content = gzip.decompress(stored) if gz else stored
    if how == "whole":
        total = None
    elif how == "rows":
        total = len(json.loads(content))
        content = cut_rows(content, n)
    elif how == "columns":
        total = len(next(iter(json.loads(content).values())))
        content = cut_columns(content, n)
    else:
        header = rel.endswith(".csv")
        total = content.count(b"\n") - header
        content = cut_lines(content, n, header)
    unit = "rows"
    if how == "lines":
        unit = "rows, and the header" if rel.endswith(".csv") else "lines"
    cut = "whole file" if total is None else f"first {n:,} of {total:,} {unit}"
    if rel.endswith(BINARY):
        return rel, content, cut
    name = rel if gz else rel + ".gz"
    if how == "whole" and gz:
        return name, stored, cut  # the original gzip bytes
    return name, gzip.compress(content, compresslevel=9, mtime=0), cut + (
        " (re-compressed)" if gz else "")


def content_of(data: bytes) -> bytes:
    """What the sha256 of SOURCE.md is taken of: the uncompressed content."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def main(argv: list[str]) -> None:
    shared = Path(argv[1] if len(argv) > 1 else HERE.parents[2] / "shared" / "data")
    total = 0
    for rel, how, n in SLICES:
        name, data, cut = make(shared, rel, how, n)
        out = HERE / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        total += len(data)
        sha = hashlib.sha256(content_of(data)).hexdigest()
        print(f"| `{rel}` | `tests/data/{name}` | {cut} | `{sha}` |")
    for rel, name in IN_EXAMPLES.items():
        data = (HERE.parents[1] / "examples" / "data" / name).read_bytes()
        sha = hashlib.sha256(content_of(data)).hexdigest()
        assert sha == hashlib.sha256((shared / rel).read_bytes()).hexdigest(), rel
        print(f"| `{rel}` | `examples/data/{name}` | whole file (the example's) | `{sha}` |")
    print(f"{total:,} bytes stored", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
