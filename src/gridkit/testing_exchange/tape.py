"""The trading server's one live tape: a capture's real messages replayed as "now".

:class:`Tape` walks a Binance websocket capture at ``speed`` × its recorded pace (looping, if
asked, with trade ids that keep increasing), stamps each message with the server's wall clock
(``E`` / ``T`` in ms) and hands it to ``publish``; every ``@trade`` print also goes to
``on_print`` (the matching engine). So the market-data websockets and the fills see the same
prints at the same times, as on the real exchange.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any


class Tape:
    """One replay of ``messages`` (``(ns, stream, data_json)`` as :func:`load_capture` gives
    them) shared by every client of the server.

    :param speed: the capture's pace sped up this many times.
    :param loop: start over at the end (else the tape stops after one pass).
    """

    def __init__(self, messages: Sequence[tuple[int, str, str]], *, speed: float = 1.0,
                 loop: bool = False) -> None:
        self.messages = messages
        self.speed = speed
        self.loop = loop
        self.printed = 0  # trade prints published
        self.passes = 0
        self.done = False

    def first_prices(self) -> dict[str, Decimal]:
        """The first print's price per symbol (the last price before the tape starts)."""
        out: dict[str, Decimal] = {}
        for _, stream, data in self.messages:
            if stream.endswith("@trade"):
                d = json.loads(data)
                out.setdefault(d["s"], Decimal(d["p"]))
        return out

    async def run(self, publish: Callable[[str, dict[str, Any]], None],
                  on_print: Callable[[str, Decimal, Decimal, int], None],
                  stopped: threading.Event) -> None:
        if not self.messages:
            self.done = True
            return
        ns0 = self.messages[0][0]
        span = self.messages[-1][0] - ns0 + 1_000_000  # one pass, plus 1 ms between passes
        t0 = time.monotonic()
        id_shift = 0  # added to trade ids on later passes so they keep increasing
        ids: list[int] = []
        while not stopped.is_set():
            for i, (ns, stream, data) in enumerate(self.messages):
                if stopped.is_set():
                    return
                due = t0 + (ns - ns0 + self.passes * span) / 1e9 / self.speed
                ahead = due - time.monotonic()
                if ahead > 0.001:
                    await asyncio.sleep(ahead)
                elif not i % 64:
                    await asyncio.sleep(0)
                if "@" not in stream:
                    continue
                d = json.loads(data)
                now = int(time.time() * 1000)
                if "E" in d:
                    d["E"] = now
                if "T" in d:
                    d["T"] = now
                if stream.endswith("@trade"):
                    ids.append(d["t"])
                    d["t"] += id_shift
                    self.printed += 1
                    on_print(d["s"], Decimal(d["p"]), Decimal(d["q"]), now)
                publish(stream, d)
            self.passes += 1
            if not self.loop:
                break
            if ids:
                id_shift += max(ids) - min(ids) + 1
                ids.clear()
        self.done = True


def candle_messages(rows: Sequence[Sequence[Any]], symbol: str = "BTCUSDT",
                    seconds: float = 1.0, tick: float = 0.0) -> list[tuple[int, str, str]]:
    """Trade prints made from real OHLCV candles, in a capture's shape (``(ns, stream,
    data_json)``), for a tape that moves as far as the candles did.

    Each candle with volume gives four prints, ``seconds`` apart over the candle: the open, the
    extreme nearer the open (the low if the candle closed up, else the high), the other
    extreme, and the close — the path a bar fill model assumes (DESIGN.md §6) — each of a
    quarter of the candle's volume, the taker selling on the way down. Candles with no volume
    give none (nothing traded). The candles' own times are not kept: the tape stamps prints
    with the server's clock. With ``tick``, prices are rounded to it (spot candles replayed
    on a futures market whose tick is coarser)."""
    out: list[tuple[int, str, str]] = []
    stream = f"{symbol.lower()}@trade"
    step = int(seconds * 1e9 / 4)
    ns = 0
    tid = 1
    for row in rows:
        o, h, low, c, v = (float(x) for x in row[1:6])
        if not v > 0 or not all(map(math.isfinite, (o, h, low, c, v))):
            continue
        path = (o, low, h, c) if c >= o else (o, h, low, c)
        if tick > 0:
            path = tuple(round(round(x / tick) * tick, 10) for x in path)
        qty = _num(v / 4)
        last = o
        for price in path:
            data = {"e": "trade", "E": 0, "s": symbol, "t": tid, "p": _num(price), "q": qty,
                    "T": 0, "m": price < last, "M": True}
            out.append((ns, stream, json.dumps(data, separators=(",", ":"))))
            last = price
            tid += 1
            ns += step
    return out


def _num(x: float) -> str:
    """A price or quantity as Binance writes it: 8 decimals."""
    return f"{x:.8f}"


__all__ = ["Tape", "candle_messages"]
