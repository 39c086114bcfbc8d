"""Domain value types that flow through the pipeline: bars, trades, book updates, orders, fills."""

from __future__ import annotations

from typing import Any, Literal

from attrs import field, frozen

Side = Literal["buy", "sell"]
OrderKind = Literal["limit", "market"]

BUY: Side = "buy"
SELL: Side = "sell"


@frozen
class Bar:
    """One closed OHLCV candle; ``ts`` is its open time in Unix epoch milliseconds (UTC)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@frozen
class Trade:
    """One trade print; ``side`` is the taker's side."""

    ts: int
    price: float
    qty: float
    side: Side
    id: str = ""


@frozen
class BookUpdate:
    """Best bid/ask and top-of-book sizes after an order-book change (input kind ``book``)."""

    ts: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float


@frozen
class BookDepth:
    """A level-2 book after one depth update (input kind ``depth``).

    ``book`` is the source's live :class:`gridkit.core.book.OrderBook`, valid during the event
    only; ``changes`` are the levels this update set, as (side, price, qty), qty 0 = removed.
    """

    ts: int
    book: Any
    changes: tuple[tuple[str, float, float], ...] = ()


@frozen
class Order:
    """An order a strategy wants live: a limit at ``price`` or a market order (price is a guess).

    ``tag`` is the strategy's own reference (a grid cell index); the engine never reads it.
    """

    id: int
    side: Side
    qty: float
    price: float
    kind: OrderKind = "limit"
    tag: int = -1


@frozen
class Cancel:
    """A strategy's request to cancel the live order ``order_id``."""

    order_id: int


@frozen
class Reject:
    """What a risk check returns to refuse an order.

    ``reason`` groups refusals in the run summary, so keep it stable (no per-order numbers).
    """

    reason: str


@frozen
class Fill:
    """An order (fully) filled: at ``price``, paying ``fee`` in the quote currency."""

    order_id: int
    ts: int
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: Literal["maker", "taker"] = "maker"
    tag: int = -1


@frozen
class Rejection:
    """An order that did not go live: refused by a risk check or by the executor."""

    order: Order
    reason: str
    by: str = field(default="")


#: Input kind of each event type: what ``Source.provides``, ``Feature.inputs`` and
#: ``Validator.inputs`` name.
EVENT_KINDS: dict[type, str] = {Bar: "bars", Trade: "trades", BookUpdate: "book",
                                BookDepth: "depth"}
