"""The local exchange's trading logic, without I/O: accounts, orders, filters, matching, fees.

:class:`Engine` holds one market kind (``"spot"`` or ``"usdm"``): accounts per API key, their
orders and fills, spot balances (free/locked per asset) or a USDT-M wallet with positions. It
checks Binance's filters from a real exchangeInfo and raises :class:`BinanceError` with
Binance's real codes and messages. Prices come from the trade tape (:meth:`Engine.on_print`):

* a resting limit fills when a print reaches its price — a buy at a print **at or below** its
  price, a sell at or above (a print *at* the price fills it: queue position is not modelled,
  which is the optimistic choice a grid bot's tests want, since they test the bot, not the
  queue), at the order's own price (maker), up to the print's quantity, shared among the resting
  orders best price first, then oldest first: partial fills come from small prints;
* an order that crosses the last print on arrival (a buy above it, a sell below it) takes at the
  last print's price, whole (taker); so does a market order; a post-only order that would take
  is refused;
* a stop triggers when a print reaches its stop price, then acts as its market or limit order.

Amounts are :class:`decimal.Decimal`; every change of an account is reported to ``on_event``
(the user-data stream formats them), in the order it happened.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from attrs import define, field

ZERO = Decimal(0)

#: Binance's order status names.
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
LIMIT_TYPES = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "STOP",
               "TAKE_PROFIT")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "STOP",
              "STOP_MARKET", "TAKE_PROFIT_MARKET")


class BinanceError(Exception):
    """An error answer in Binance's format: ``{"code": code, "msg": msg}`` with HTTP ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def dec(text: Any, name: str = "value") -> Decimal:
    """A parameter as a Decimal; Binance's -1100 for anything that is not a number."""
    try:
        d = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                                  "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not d.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return d


def client_id() -> str:
    """A client order id as Binance makes one when none is sent (22 random characters)."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=22))


@define
class Rules:
    """One symbol's trading rules, read from its exchangeInfo entry."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    notional_on_market: bool
    order_types: tuple[str, ...]
    price_dp: int
    qty_dp: int

    @classmethod
    def from_info(cls, info: Mapping[str, Any], market: str) -> Rules:
        f = {x["filterType"]: x for x in info.get("filters", [])}
        price = f.get("PRICE_FILTER", {})
        lot = f.get("LOT_SIZE", {})
        notional = f.get("NOTIONAL") or f.get("MIN_NOTIONAL") or {}
        spot = market == "spot"
        return cls(
            symbol=info["symbol"], base=info["baseAsset"], quote=info["quoteAsset"],
            tick=Decimal(price.get("tickSize", "0")), min_price=Decimal(price.get("minPrice", "0")),
            max_price=Decimal(price.get("maxPrice", "0")), step=Decimal(lot.get("stepSize", "0")),
            min_qty=Decimal(lot.get("minQty", "0")), max_qty=Decimal(lot.get("maxQty", "0")),
            min_notional=Decimal(str(notional.get("minNotional", notional.get("notional", "0")))),
            notional_on_market=bool(notional.get("applyMinToMarket",
                                                 notional.get("applyToMarket", True))),
            order_types=tuple(info.get("orderTypes", ())),
            # Spot writes every amount with 8 decimals; futures with the symbol's precisions.
            price_dp=8 if spot else int(info.get("pricePrecision", 8)),
            qty_dp=8 if spot else int(info.get("quantityPrecision", 8)))


@define(eq=False)
class Order:
    """An order as the exchange keeps it."""

    account: str
    symbol: str
    order_id: int
    client_id: str
    side: str  # BUY / SELL
    type: str  # Binance's type as sent (LIMIT, MARKET, STOP_LOSS_LIMIT, STOP_MARKET, ...)
    tif: str  # GTC / IOC / FOK / GTX ("" for market orders)
    qty: Decimal
    price: Decimal  # 0 for market orders
    stop_price: Decimal  # 0 when not a stop
    time: int
    update_time: int
    status: str = "NEW"
    filled: Decimal = ZERO
    quote: Decimal = ZERO  # cumulative quote quantity
    reduce_only: bool = False
    position_side: str = "BOTH"
    triggered: bool = True  # False while a stop waits for its price
    reserved: Decimal = ZERO  # spot: the amount still locked for it
    reserved_asset: str = ""
    margin: Decimal = ZERO  # futures: initial margin held for the open part
    cancel_client_id: str = ""  # the client id of the request that cancelled it
    algo: bool = False  # a USDT-M conditional order placed through the Algo Order API

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal:
        return self.quote / self.filled if self.filled else ZERO

    @property
    def working_type(self) -> str:
        """The type it works as now (a triggered stop is a market or limit order)."""
        if self.type in STOP_TYPES and self.triggered:
            return "LIMIT" if self.type in LIMIT_TYPES else "MARKET"
        return self.type


@define
class Fill:
    """One execution of an order."""

    account: str
    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: Decimal
    qty: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool
    realized_pnl: Decimal = ZERO
    position_side: str = "BOTH"


@define
class Position:
    """A USDT-M position (``amt`` signed: short below zero)."""

    symbol: str
    side: str  # BOTH / LONG / SHORT
    amt: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    update_time: int = 0


@define(eq=False)
class Account:
    """One API key's account."""

    key: str
    secret: str
    #: spot: asset -> [free, locked]; usdm: asset -> [wallet balance, 0].
    balances: dict[str, list[Decimal]] = field(factory=dict)
    positions: dict[tuple[str, str], Position] = field(factory=dict)
    leverage: dict[str, int] = field(factory=dict)
    dual: bool = False  # hedge mode (futures)
    orders: list[Order] = field(factory=list)
    fills: list[Fill] = field(factory=list)
    #: USDT-M income records (funding fees), in Binance's ``/fapi/v1/income`` fields.
    incomes: list[dict[str, Any]] = field(factory=list)
    update_time: int = 0

    def balance(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [ZERO, ZERO])


def _q8(x: Decimal) -> Decimal:
    return x.quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)


class Engine:
    """Accounts, orders and matching for one market kind.

    :param market: ``"spot"`` or ``"usdm"``.
    :param exchange_info: a real exchangeInfo response (its symbols are the tradable ones).
    :param maker_fee: commission rate of fills of resting orders.
    :param taker_fee: commission rate of fills on arrival (market, crossing limits).
    :param on_event: called ``(api_key, kind, data)`` for each change: ``("order", (order,
        fill or None, execution type))`` and ``("account", reason)``.
    :param fill_fraction: cap each fill of a resting order at this fraction of its quantity
        (rounded down to the lot step, at least one step); 1 = no cap.
    """

    def __init__(self, market: str, exchange_info: Mapping[str, Any], *,
                 maker_fee: float | str = "0.001", taker_fee: float | str = "0.001",
                 on_event: Callable[[str, str, Any], None] | None = None,
                 fill_fraction: float = 1.0, leverage: int = 20) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', not {market!r}")
        self.market = market
        self.spot = market == "spot"
        self.rules = {s["symbol"]: Rules.from_info(s, market)
                      for s in exchange_info.get("symbols", [])
                      if s.get("status", "TRADING") == "TRADING"}
        self.maker_fee = Decimal(str(maker_fee))
        self.taker_fee = Decimal(str(taker_fee))
        self.on_event = on_event
        self.fill_fraction = Decimal(str(fill_fraction))
        self.default_leverage = leverage
        self.accounts: dict[str, Account] = {}
        self.last: dict[str, Decimal] = {}
        self.last_time = 0
        self._order_ids = itertools.count(4_000_000_001)
        self._trade_ids = itertools.count(300_000_001)
        self._income_ids = itertools.count(9_000_000_001)

    # --- accounts ------------------------------------------------------------------------------

    def add_account(self, key: str, secret: str,
                    balances: Mapping[str, float | str | Decimal] | None = None,
                    now: int = 0) -> Account:
        """A new account (or the existing one of ``key``) credited with ``balances`` at
        ``now`` (ms)."""
        acct = self.accounts.get(key) or Account(key, secret)
        self.accounts[key] = acct
        acct.update_time = max(acct.update_time, now)
        for asset, amount in (balances or {}).items():
            acct.balance(asset)[0] += Decimal(str(amount))
        return acct

    def account(self, key: str) -> Account:
        acct = self.accounts.get(key)
        if acct is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return acct

    def _emit(self, key: str, kind: str, data: Any) -> None:
        if self.on_event is not None:
            self.on_event(key, kind, data)

    def rules_of(self, symbol: str) -> Rules:
        if not symbol:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was "
                                      "empty/null, or malformed.")
        r = self.rules.get(symbol)
        if r is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return r

    # --- orders --------------------------------------------------------------------------------

    def new_order(self, key: str, p: Mapping[str, str], now: int, *, algo: bool = False
                  ) -> Order:
        """Place an order from Binance's request parameters; returns it after any fill on
        arrival. Raises :class:`BinanceError` with Binance's code when refused. USDT-M
        conditional orders come through the Algo Order API (``algo``), as on Binance."""
        acct = self.account(key)
        r = self.rules_of(p.get("symbol", ""))
        side = p.get("side", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was empty/null,"
                                      " or malformed.")
        typ = p.get("type", "")
        spot_types = ("LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT",
                      "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
        fut_types = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                     "TAKE_PROFIT_MARKET")
        if typ not in (spot_types if self.spot else fut_types):
            raise BinanceError(-1116, "Invalid orderType.")
        if not self.spot and (typ in STOP_TYPES) != algo:
            raise BinanceError(-4120, "Order type not supported for this endpoint. Please use "
                                      "the Algo Order API endpoints instead.")
        if self.spot and typ == "STOP_LOSS" and "STOP_LOSS" not in r.order_types:
            raise BinanceError(-2010, "Stop loss orders are not supported for this symbol.")
        if self.spot and typ == "TAKE_PROFIT" and "TAKE_PROFIT" not in r.order_types:
            raise BinanceError(-2010, "Take profit orders are not supported for this symbol.")
        limit = typ in LIMIT_TYPES
        tif = p.get("timeInForce", "")
        if limit and typ != "LIMIT_MAKER":
            if not tif:
                raise BinanceError(-1102, "Mandatory parameter 'timeInForce' was not sent, was "
                                          "empty/null, or malformed.")
            if tif not in (("GTC", "IOC", "FOK") if self.spot else ("GTC", "IOC", "FOK", "GTX")):
                raise BinanceError(-1115, "Invalid timeInForce.")
        elif not limit and tif and self.spot:
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        if typ == "LIMIT_MAKER":
            tif = "GTC"
        price = dec(p["price"], "price") if limit and "price" in p else ZERO
        if limit and "price" not in p:
            raise BinanceError(-1102, "Mandatory parameter 'price' was not sent, was empty/null,"
                                      " or malformed.")
        stop = ZERO
        if typ in STOP_TYPES:
            if "stopPrice" not in p:
                raise BinanceError(-1102, "Mandatory parameter 'stopPrice' was not sent, was "
                                          "empty/null, or malformed.")
            stop = dec(p["stopPrice"], "stopPrice")
        last = self.last.get(r.symbol)
        if "quantity" in p:
            qty = dec(p["quantity"], "quantity")
        elif self.spot and typ == "MARKET" and "quoteOrderQty" in p:
            if last is None:
                raise BinanceError(-1013, "Market is closed.")
            quote_qty = dec(p["quoteOrderQty"], "quoteOrderQty")
            qty = (quote_qty / last).quantize(r.step, rounding=ROUND_DOWN) if r.step else \
                quote_qty / last
        else:
            raise BinanceError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                                      "empty/null, or malformed.")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        pos_side = p.get("positionSide", "BOTH")
        if self.spot and (reduce_only or "positionSide" in p):
            raise BinanceError(-1104, "Not all sent parameters were read; read 10 parameter(s) "
                                      "but was sent 11.")
        self._check_filters(r, typ, price, stop, qty, last, reduce_only)
        cid = p.get("newClientOrderId") or client_id()
        if any(o.client_id == cid and o.is_open for o in acct.orders):
            if self.spot:
                raise BinanceError(-2010, "Duplicate order sent.")
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        if not self.spot:
            self._check_position_side(acct, pos_side, reduce_only)
        # Stops must not trigger at once (Binance refuses them).
        if stop and last is not None and self._stop_reached(typ, side, stop, last):
            if self.spot:
                raise BinanceError(-2010, "Stop price would trigger immediately.")
            raise BinanceError(-2021, "Order would immediately trigger.")
        crosses = limit and typ not in STOP_TYPES and last is not None and (
            price > last if side == "BUY" else price < last)
        if crosses and typ == "LIMIT_MAKER":
            raise BinanceError(-2010, "Order would immediately match and take.")
        if crosses and tif == "GTX":
            raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post "
                                      "Only order will be rejected. The order will not be "
                                      "recorded in the order history")
        if typ == "MARKET" and last is None:
            raise BinanceError(-1013, "Market is closed.")
        order = Order(key, r.symbol, next(self._order_ids), cid, side, typ, tif, qty, price,
                      stop, now, now, reduce_only=reduce_only, position_side=pos_side,
                      triggered=typ not in STOP_TYPES, algo=algo)
        if self.spot:
            self._reserve_spot(acct, r, order, last)
        else:
            self._reserve_margin(acct, r, order, last)
        acct.orders.append(order)
        self._emit(key, "order", (order, None, "NEW"))
        if self.spot and order.reserved:
            self._emit(key, "account", "ORDER")
        if order.triggered:
            self._on_arrival(acct, r, order, now)
        return order

    def _check_filters(self, r: Rules, typ: str, price: Decimal, stop: Decimal, qty: Decimal,
                       last: Decimal | None, reduce_only: bool) -> None:
        spot = self.spot
        for value in (price, stop) if typ in LIMIT_TYPES or stop else ():
            if not value:
                continue
            if value < r.min_price or (r.max_price and value > r.max_price):
                if spot:
                    raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
                raise BinanceError(-4013 if value < r.min_price else -4016,
                                   "Price less than min price." if value < r.min_price
                                   else "Price greater than max price.")
            if r.tick and value % r.tick:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER") if spot else \
                    BinanceError(-4014, "Price not increased by tick size.")
        if qty <= 0:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE") if spot else \
                BinanceError(-4003, "Quantity less than or equal to zero.")
        if r.step and qty % r.step:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE") if spot else \
                BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < r.min_qty or (r.max_qty and qty > r.max_qty):
            if spot:
                raise BinanceError(-1013, "Filter failure: LOT_SIZE")
            raise BinanceError(-4004 if qty < r.min_qty else -4005,
                               "Quantity less than min quantity." if qty < r.min_qty
                               else "Quantity greater than max quantity.")
        ref = price if typ in LIMIT_TYPES else (stop or last)
        if ref is not None and r.min_notional and (typ in LIMIT_TYPES or r.notional_on_market) \
                and ref * qty < r.min_notional and not reduce_only:
            if spot:
                raise BinanceError(-1013, "Filter failure: NOTIONAL")
            raise BinanceError(-4164, f"Order's notional must be no smaller than "
                                      f"{r.min_notional.normalize():f} (unless you choose reduce "
                                      "only).")

    def _check_position_side(self, acct: Account, pos_side: str, reduce_only: bool) -> None:
        if pos_side not in ("BOTH", "LONG", "SHORT"):
            raise BinanceError(-4006, "Invalid position side.")
        if (acct.dual and pos_side == "BOTH") or (not acct.dual and pos_side != "BOTH"):
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        if acct.dual and reduce_only:
            raise BinanceError(-1106, "Parameter 'reduceonly' sent when not required.")

    @staticmethod
    def _stop_reached(typ: str, side: str, stop: Decimal, price: Decimal) -> bool:
        # Stop-loss style: a buy stop above the market, a sell stop below; take-profit inverse.
        take_profit = typ.startswith("TAKE_PROFIT")
        if (side == "BUY") != take_profit:
            return price >= stop
        return price <= stop

    # --- spot reservations ---------------------------------------------------------------------

    def _reserve_spot(self, acct: Account, r: Rules, order: Order, last: Decimal | None) -> None:
        if order.side == "SELL":
            asset, amount = r.base, order.qty
        else:
            asset = r.quote
            ref = order.price if order.type in LIMIT_TYPES else (order.stop_price or last)
            amount = _q8((ref or ZERO) * order.qty)
        bal = acct.balance(asset)
        if bal[0] < amount:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        bal[0] -= amount
        bal[1] += amount
        order.reserved, order.reserved_asset = amount, asset

    def _release(self, acct: Account, order: Order, amount: Decimal | None = None) -> None:
        """Unlock ``amount`` (all that is left by default) of a spot order's reservation."""
        amount = order.reserved if amount is None else min(amount, order.reserved)
        if not amount:
            return
        bal = acct.balance(order.reserved_asset)
        bal[1] -= amount
        bal[0] += amount
        order.reserved -= amount

    # --- futures margin ------------------------------------------------------------------------

    def _position(self, acct: Account, symbol: str, side: str) -> Position:
        pos = acct.positions.get((symbol, side))
        if pos is None:
            pos = acct.positions[(symbol, side)] = Position(symbol, side)
        return pos

    def _opening(self, acct: Account, order: Order, qty: Decimal) -> Decimal:
        """How much of ``qty`` of ``order`` would open (rather than close) a position."""
        if acct.dual:
            opens = (order.position_side == "LONG") == (order.side == "BUY")
            return qty if opens else ZERO
        pos = acct.positions.get((order.symbol, "BOTH"))
        amt = pos.amt if pos else ZERO
        if (amt > 0 and order.side == "SELL") or (amt < 0 and order.side == "BUY"):
            return max(ZERO, qty - abs(amt))
        return qty

    def available(self, acct: Account, asset: str = "USDT") -> Decimal:
        """Futures: wallet + unrealized PnL - margin of positions and of open orders."""
        wallet = acct.balance(asset)[0]
        upnl = sum((self._upnl(p) for p in acct.positions.values()), ZERO)
        used = sum((self._pos_margin(acct, p) for p in acct.positions.values()), ZERO)
        held = sum((o.margin for o in acct.orders if o.is_open), ZERO)
        return wallet + upnl - used - held

    def _upnl(self, pos: Position) -> Decimal:
        mark = self.last.get(pos.symbol)
        return (mark - pos.entry) * pos.amt if mark is not None and pos.amt else ZERO

    def _pos_margin(self, acct: Account, pos: Position) -> Decimal:
        lev = acct.leverage.get(pos.symbol, self.default_leverage)
        mark = self.last.get(pos.symbol, pos.entry)
        return abs(pos.amt) * mark / lev

    def _reserve_margin(self, acct: Account, r: Rules, order: Order,
                        last: Decimal | None) -> None:
        pos = acct.positions.get((r.symbol, "BOTH"))
        if order.reduce_only:
            amt = pos.amt if pos else ZERO
            if not amt or (amt > 0) == (order.side == "BUY"):
                raise BinanceError(-2022, "ReduceOnly Order is rejected.")
            return
        ref = order.price if order.type in LIMIT_TYPES else (order.stop_price or last or ZERO)
        lev = acct.leverage.get(r.symbol, self.default_leverage)
        need = self._opening(acct, order, order.qty) * ref / lev
        if need > self.available(acct, r.quote):
            raise BinanceError(-2019, "Margin is insufficient.")
        order.margin = need if order.type in LIMIT_TYPES or order.type in STOP_TYPES else ZERO

    # --- matching ------------------------------------------------------------------------------

    def _on_arrival(self, acct: Account, r: Rules, order: Order, now: int) -> None:
        """Fill what an order takes when it arrives (or its stop triggers), at the last print."""
        last = self.last.get(r.symbol)
        typ = order.working_type
        if typ == "MARKET":
            if last is None:
                self._expire(acct, order, now)
                return
            self._fill(acct, r, order, order.remaining, last, now, maker=False)
            return
        crosses = last is not None and (order.price > last if order.side == "BUY"
                                        else order.price < last)
        if crosses:
            assert last is not None
            self._fill(acct, r, order, order.remaining, last, now, maker=False)
        elif order.tif in ("IOC", "FOK"):
            self._expire(acct, order, now)

    def _expire(self, acct: Account, order: Order, now: int) -> None:
        order.status = "EXPIRED"
        order.update_time = now
        self._close(acct, order)
        self._emit(acct.key, "order", (order, None, "EXPIRED"))

    def _close(self, acct: Account, order: Order) -> None:
        """Release what a finished order still holds."""
        if self.spot:
            had = order.reserved
            self._release(acct, order)
            if had:
                self._emit(acct.key, "account", "ORDER")
        order.margin = ZERO

    def cancel(self, key: str, symbol: str, now: int, order_id: int | None = None,
               orig_client_id: str | None = None, new_client_id: str | None = None) -> Order:
        """Cancel an open order; Binance's -2011 when it is unknown or no longer open."""
        acct = self.account(key)
        self.rules_of(symbol)
        if order_id is None and not orig_client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but"
                                      " both were empty/null!")
        order = self._find(acct, symbol, order_id, orig_client_id)
        if order is None or not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_time = now
        order.cancel_client_id = new_client_id or client_id()
        self._close(acct, order)
        self._emit(key, "order", (order, None, "CANCELED"))
        return order

    def cancel_all(self, key: str, symbol: str, now: int) -> list[Order]:
        acct = self.account(key)
        self.rules_of(symbol)
        return [self.cancel(key, symbol, now, o.order_id)
                for o in list(acct.orders) if o.symbol == symbol and o.is_open]

    def _find(self, acct: Account, symbol: str, order_id: int | None,
              cid: str | None) -> Order | None:
        for o in reversed(acct.orders):
            if o.symbol == symbol and (o.order_id == order_id if order_id is not None
                                       else o.client_id == cid):
                return o
        return None

    def query(self, key: str, symbol: str, order_id: int | None = None,
              orig_client_id: str | None = None) -> Order:
        acct = self.account(key)
        self.rules_of(symbol)
        if order_id is None and not orig_client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but"
                                      " both were empty/null!")
        order = self._find(acct, symbol, order_id, orig_client_id)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def on_print(self, symbol: str, price: Decimal, qty: Decimal, now: int) -> None:
        """A trade print of the tape: triggers stops, then fills resting orders it reaches."""
        r = self.rules.get(symbol)
        self.last[symbol] = price
        self.last_time = now
        if r is None:
            return
        for acct in self.accounts.values():
            for o in acct.orders:
                if o.symbol == symbol and o.is_open and not o.triggered and \
                        self._stop_reached(o.type, o.side, o.stop_price, price):
                    o.triggered = True
                    o.update_time = now
                    if o.working_type == "MARKET" and self.spot:
                        # The stop's reservation was an estimate: settle at the real price.
                        self._release(acct, o)
                        if o.side == "BUY" and acct.balance(r.quote)[0] < price * o.remaining:
                            self._expire(acct, o, now)
                            continue
                        if o.side == "SELL":
                            self._reserve_again(acct, r.base, o, o.remaining)
                    self._on_arrival(acct, r, o, now)
        for side in ("BUY", "SELL"):
            resting = [(acct, o) for acct in self.accounts.values() for o in acct.orders
                       if o.symbol == symbol and o.is_open and o.triggered and o.side == side
                       and o.working_type == "LIMIT"
                       and (price <= o.price if side == "BUY" else price >= o.price)]
            resting.sort(key=lambda ao: ((-ao[1].price if side == "BUY" else ao[1].price),
                                         ao[1].time, ao[1].order_id))
            left = qty
            for acct, o in resting:
                if left <= 0:
                    break
                take = min(o.remaining, left)
                if self.fill_fraction < 1 and r.step:
                    cap = (o.qty * self.fill_fraction).quantize(r.step, rounding=ROUND_DOWN)
                    take = min(take, max(cap, r.step))
                if r.step:
                    take = take.quantize(r.step, rounding=ROUND_DOWN)
                if take <= 0:
                    continue
                self._fill(acct, r, o, take, o.price, now, maker=True)
                left -= take

    def _reserve_again(self, acct: Account, asset: str, order: Order, amount: Decimal) -> None:
        bal = acct.balance(asset)
        amount = min(amount, bal[0])
        bal[0] -= amount
        bal[1] += amount
        order.reserved, order.reserved_asset = amount, asset

    def _fill(self, acct: Account, r: Rules, order: Order, qty: Decimal, price: Decimal,
              now: int, *, maker: bool) -> None:
        if not self.spot and order.reduce_only:
            pos = acct.positions.get((r.symbol, "BOTH"))
            amt = pos.amt if pos else ZERO
            if not amt or (amt > 0) == (order.side == "BUY"):
                self._expire(acct, order, now)
                return
            qty = min(qty, abs(amt))
        rate = self.maker_fee if maker else self.taker_fee
        quote = price * qty
        if self.spot:
            fill = self._settle_spot(acct, r, order, qty, price, quote, rate, now, maker)
            if fill is None:
                return
        else:
            fill = self._settle_futures(acct, r, order, qty, price, quote, rate, now, maker)
        order.filled += qty
        order.quote += quote
        order.update_time = now
        order.status = "FILLED" if order.filled >= order.qty else "PARTIALLY_FILLED"
        if order.status == "PARTIALLY_FILLED" and order.tif in ("IOC", "FOK") and not maker:
            order.status = "EXPIRED"
        if order.is_open and order.reduce_only and not \
                self._position(acct, r.symbol, "BOTH").amt:
            # Nothing left to reduce: Binance expires the rest of a reduce-only order.
            order.status = "EXPIRED"
        acct.fills.append(fill)
        acct.update_time = now
        if not order.is_open:
            self._close(acct, order)
        elif not self.spot and order.margin:
            lev = acct.leverage.get(r.symbol, self.default_leverage)
            order.margin = order.remaining * order.price / lev
        self._emit(acct.key, "order", (order, fill, "TRADE"))
        self._emit(acct.key, "account", "ORDER")

    def _settle_spot(self, acct: Account, r: Rules, order: Order, qty: Decimal, price: Decimal,
                     quote: Decimal, rate: Decimal, now: int, maker: bool) -> Fill | None:
        if order.side == "BUY":
            paid = _q8(quote)
            # What this part of the order had reserved (at its own price, or at the estimate a
            # market order was given), released, then the real cost taken from free.
            part = order.reserved if qty >= order.remaining else \
                min(order.reserved, _q8(order.reserved * qty / order.remaining))
            self._release(acct, order, part)
            bal = acct.balance(r.quote)
            if bal[0] < paid:  # a market order whose price moved: Binance expires it
                self._expire(acct, order, now)
                return None
            bal[0] -= paid
            commission = _q8(qty * rate)
            acct.balance(r.base)[0] += qty - commission
            asset = r.base
        else:
            if order.reserved:
                self._release(acct, order, qty)
            base = acct.balance(r.base)
            if base[0] < qty:
                self._expire(acct, order, now)
                return None
            base[0] -= qty
            commission = _q8(quote * rate)
            acct.balance(r.quote)[0] += _q8(quote) - commission
            asset = r.quote
        return Fill(acct.key, r.symbol, next(self._trade_ids), order.order_id, order.side, price,
                    qty, quote, commission, asset, now, maker)

    def _settle_futures(self, acct: Account, r: Rules, order: Order, qty: Decimal,
                        price: Decimal, quote: Decimal, rate: Decimal, now: int,
                        maker: bool) -> Fill:
        side = order.position_side if acct.dual else "BOTH"
        pos = self._position(acct, r.symbol, side)
        delta = qty if order.side == "BUY" else -qty
        realized = ZERO
        if pos.amt and (pos.amt > 0) != (delta > 0):
            closed = min(abs(pos.amt), qty)
            realized = (price - pos.entry) * closed * (1 if pos.amt > 0 else -1)
            rest = qty - closed
            pos.amt += closed if delta > 0 else -closed
            if rest:  # the order goes through zero: a new position at the fill price
                pos.amt = rest if delta > 0 else -rest
                pos.entry = price
            elif not pos.amt:
                pos.entry = ZERO
        else:
            size = abs(pos.amt)
            pos.entry = (pos.entry * size + price * qty) / (size + qty)
            pos.amt += delta
        pos.realized += realized
        pos.update_time = now
        commission = _q8(quote * rate)
        wallet = acct.balance(r.quote)
        wallet[0] += realized - commission
        return Fill(acct.key, r.symbol, next(self._trade_ids), order.order_id, order.side, price,
                    qty, quote, commission, r.quote, now, maker, realized, side)

    def charge_funding(self, rate: Decimal, now: int) -> list[dict[str, Any]]:
        """A funding time: every open USDT-M position pays ``rate`` × its notional at the last
        price (longs pay a positive rate, shorts receive it), booked on the wallet as a
        ``FUNDING_FEE`` income record. Returns the records."""
        out = []
        for acct in self.accounts.values():
            for pos in acct.positions.values():
                last = self.last.get(pos.symbol)
                if not pos.amt or last is None:
                    continue
                amount = _q8(-pos.amt * last * rate)
                quote = self.rules_of(pos.symbol).quote
                acct.balance(quote)[0] += amount
                record = {"symbol": pos.symbol, "incomeType": "FUNDING_FEE",
                          "income": str(amount), "asset": quote, "info": "FUNDING_FEE",
                          "time": now, "tranId": next(self._income_ids), "tradeId": ""}
                acct.incomes.append(record)
                out.append(record)
                self._emit(acct.key, "account", "FUNDING_FEE")
        return out

    # --- futures settings ----------------------------------------------------------------------

    def set_leverage(self, key: str, symbol: str, leverage: int) -> int:
        acct = self.account(key)
        self.rules_of(symbol)
        if not 1 <= leverage <= 125:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        acct.leverage[symbol] = leverage
        return leverage

    def set_dual(self, key: str, dual: bool) -> None:
        acct = self.account(key)
        if acct.dual == dual:
            raise BinanceError(-4059, "No need to change position side.")
        if any(p.amt for p in acct.positions.values()) or any(o.is_open for o in acct.orders):
            raise BinanceError(-4068, "Position side cannot be changed if there exists "
                                      "position.")
        acct.dual = dual


__all__ = ["Account", "BinanceError", "Engine", "Fill", "Order", "Position", "Rules"]
