"""A level-2 order book: price -> quantity per side, with the best levels kept in order.

Sources that rebuild a book (Binance depth diffs, ccxt order-book streams) own one
:class:`OrderBook` and hand it to features inside :class:`gridkit.BookDepth` events; features read
it during the event and must not keep references to its internals.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable


class OrderBook:
    """Both sides of an L2 book. ``set`` is O(log n) to find a level plus a memmove to insert or
    remove it; best prices and top-n sums read from sorted price lists."""

    __slots__ = ("_ask_prices", "_asks", "_bid_prices", "_bids", "last_update_id", "ts")

    def __init__(self) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_prices: list[float] = []  # ascending; best bid is the last
        self._ask_prices: list[float] = []  # ascending; best ask is the first
        #: Exchange sequence number of the last change applied (Binance ``u``), or -1.
        self.last_update_id = -1
        #: Time of the last change, epoch ms.
        self.ts = 0

    def clear(self) -> None:
        """Empty both sides (before a snapshot)."""
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()
        self.last_update_id = -1

    def set(self, side: str, price: float, qty: float) -> None:
        """Set the quantity at a price level of ``side`` ("bid"/"ask"); 0 removes the level."""
        levels, prices = (self._bids, self._bid_prices) if side == "bid" else (
            self._asks, self._ask_prices)
        if qty > 0.0:
            if price not in levels:
                insort(prices, price)
            levels[price] = qty
        elif price in levels:
            del levels[price]
            i = bisect_left(prices, price)
            del prices[i]

    def load(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]],
             last_update_id: int = -1) -> None:
        """Replace the book with a snapshot."""
        self.clear()
        self._bids.update((p, q) for p, q in bids if q > 0.0)
        self._asks.update((p, q) for p, q in asks if q > 0.0)
        self._bid_prices.extend(sorted(self._bids))
        self._ask_prices.extend(sorted(self._asks))
        self.last_update_id = last_update_id

    @property
    def best_bid(self) -> float:
        """Highest bid price, NaN if the side is empty."""
        return self._bid_prices[-1] if self._bid_prices else float("nan")

    @property
    def best_ask(self) -> float:
        """Lowest ask price, NaN if the side is empty."""
        return self._ask_prices[0] if self._ask_prices else float("nan")

    def qty(self, side: str, price: float) -> float:
        """Quantity resting at a price (0 if none)."""
        return (self._bids if side == "bid" else self._asks).get(price, 0.0)

    def levels(self, side: str, n: int) -> list[tuple[float, float]]:
        """The best ``n`` levels of a side as (price, qty), best first."""
        if side == "bid":
            prices = self._bid_prices[-n:][::-1] if n else []
            book = self._bids
        else:
            prices = self._ask_prices[:n]
            book = self._asks
        return [(p, book[p]) for p in prices]

    def depth(self, side: str, n: int) -> float:
        """Total quantity of the best ``n`` levels of a side."""
        if side == "bid":
            book = self._bids
            return sum(book[p] for p in self._bid_prices[-n:]) if n else 0.0
        book = self._asks
        return sum(book[p] for p in self._ask_prices[:n])

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    @property
    def crossed(self) -> bool:
        """True if the best bid is at or above the best ask (a broken book)."""
        return bool(self._bid_prices and self._ask_prices
                    and self._bid_prices[-1] >= self._ask_prices[0])
