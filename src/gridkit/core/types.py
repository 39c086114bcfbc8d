"""Domain value types that flow through the pipeline: events, orders, reports and signals.

All are frozen, slotted attrs classes. Events (:class:`Bar`, :class:`Trade`, :class:`BookUpdate`,
:class:`BookDepth`, :class:`Funding`, :class:`Clock`) come from sources; requests
(:class:`Order`, :class:`Cancel`) go from strategies to the executor; reports
(:class:`Accepted`, :class:`Rejected`, :class:`Fill`, :class:`Cancelled`, :class:`Expired`) come
back from the executor and are booked by the engine's one apply path (DESIGN.md §11).
"""

from __future__ import annotations

from typing import Any, Literal

from attrs import field, frozen

Side = Literal["buy", "sell"]
#: ``stop`` is a stop-market order (fills at the trigger, taker); ``stop_limit`` rests as a limit
#: at ``price`` once ``stop_price`` is reached (DESIGN.md §6 rule 7).
OrderKind = Literal["limit", "market", "stop", "stop_limit"]
#: Time in force: good till cancelled, immediate or cancel, fill or kill, post-only (maker only:
#: refused if it would trade on arrival).
TimeInForce = Literal["GTC", "IOC", "FOK", "PO"]
Liquidity = Literal["maker", "taker"]

BUY: Side = "buy"
SELL: Side = "sell"
NAN = float("nan")


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

    ``book`` is the source's live :class:`gridkit.data.book.OrderBook`, valid during the event
    only; ``changes`` are the levels this update set, as (side, price, qty), qty 0 = removed.
    """

    ts: int
    book: Any
    changes: tuple[tuple[str, float, float], ...] = ()


@frozen
class Funding:
    """A perpetual's funding time (input kind ``funding``): ``rate`` per funding interval, paid
    on the position at ``mark`` (longs pay a positive rate)."""

    ts: int
    rate: float
    mark: float = NAN


@frozen
class Clock:
    """A clock tick in paper and live runs (input kind ``clock``): lets executors hand over what
    the exchange said and watchdogs notice silence when no market event arrives."""

    ts: int


@frozen
class Order:
    """A request to place an order.

    ``id`` is the client order id (the engine's ledger makes them: ``ctx.order(...)`` or
    ``ctx.next_order_id()``); ``price`` is the limit price, and for a market order the price the
    strategy expects (used for balance checks, never as the fill price). ``tag`` is the
    strategy's own reference (a grid cell index): the engine never reads it, and copies it onto
    every :class:`Fill` of the order. ``symbol`` empty means the lane's symbol.
    """

    id: str
    side: Side
    qty: float
    price: float
    kind: OrderKind = "limit"
    tag: int = -1
    symbol: str = ""
    tif: TimeInForce = "GTC"
    #: Trigger price of ``stop`` and ``stop_limit`` orders (0: none).
    stop_price: float = 0.0
    #: Only reduces a perpetual position; refused (or cut) if it would open or grow one.
    reduce_only: bool = False
    #: OCO / bracket group: when one order of a group fills, the executor cancels the others.
    group: str = ""
    #: Hedge-mode perpetuals: the position the order acts on (``long`` or ``short``); empty in
    #: one-way mode and for spot.
    position_side: str = ""


@frozen
class Cancel:
    """A request to cancel the open order with client order id ``order_id``."""

    order_id: str


@frozen
class Reject:
    """What a risk check returns to refuse an order.

    ``reason`` groups refusals in the run summary, so keep it stable (no per-order numbers).
    """

    reason: str


# --- reports: what happened to an order --------------------------------------------------------


@frozen
class Accepted:
    """The executor (or exchange) took the order: it is open."""

    order_id: str
    ts: int


@frozen
class Rejected:
    """The order did not go live: refused by a risk check, the executor or the exchange."""

    order_id: str
    ts: int
    reason: str
    #: Who refused it: a risk check's name, the executor's name, or ``engine``.
    by: str = ""


@frozen
class Fill:
    """Part or all of an order traded: ``qty`` at ``price``; ``remaining`` is what is still open.

    ``fee`` is paid in ``fee_currency`` (empty: the quote currency). ``tag`` is the order's.
    """

    order_id: str
    ts: int
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: Liquidity = "maker"
    tag: int = -1
    symbol: str = ""
    remaining: float = 0.0
    fee_currency: str = ""


@frozen
class Cancelled:
    """The order was cancelled (on request, by a halt, or by an OCO sibling's fill)."""

    order_id: str
    ts: int
    reason: str = ""


@frozen
class Expired:
    """The order ended without trading in full (IOC / FOK remainder, exchange expiry)."""

    order_id: str
    ts: int
    reason: str = ""


@frozen
class FundingPaid:
    """The exchange booked a funding payment on ``symbol``'s position: ``amount`` in the quote
    currency (negative: the account paid). A live executor reports it from the exchange's
    records (``id``), so the account's wallet follows the exchange's own figure."""

    ts: int
    symbol: str
    amount: float
    id: str = ""


#: Every report type the engine applies.
REPORTS: tuple[type, ...] = (Accepted, Rejected, Fill, Cancelled, Expired, FundingPaid)


@frozen
class Rejection:
    """What a strategy's ``on_rejected`` receives: the order that did not go live, and why."""

    order: Order
    reason: str
    by: str = field(default="")


@frozen
class Signal:
    """A trading signal: ``name`` fired on ``symbol`` at ``ts`` toward ``side`` with a
    ``strength`` in [0, 1]; ``meta`` carries what the generator wants the strategy to see."""

    ts: int
    symbol: str
    name: str
    side: Side
    strength: float = 1.0
    meta: dict[str, Any] = field(factory=dict)


#: Input kind of each event type: what ``Source.provides``, ``Feature.inputs`` and
#: ``Validator.inputs`` name.
EVENT_KINDS: dict[type, str] = {Bar: "bars", Trade: "trades", BookUpdate: "book",
                                BookDepth: "depth", Funding: "funding", Clock: "clock"}
