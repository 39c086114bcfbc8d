"""The account a run trades: one quote balance, a position per symbol, fees, profit, drawdown.

Spot positions hold base (``qty >= 0``) and use the average-cost method: a buy's fee is part of
its cost basis, a sell's fee comes off its proceeds, so ``equity - capital == realized +
sum(qty * (price - avg_price))`` at every mark (the property tests check it). Linear perpetual
positions are signed (long > 0, short < 0), settle profit and fees in the quote balance (the
wallet), and are worth their unrealized profit; funding payments move the wallet at funding
times. One-way mode has one position per symbol, hedge mode one per side.

Beside the average cost, every position keeps its open **lots**, first in, first out: a fill
against the position's direction closes the oldest lots first (a sell closes the oldest buys of
a long, a buy the oldest sells of a short), and what is left of it opens a lot of its own. A lot
holds its signed quantity and its basis: the fill price with the fill's fee folded in (``price +
fee/qty`` for a buy, ``price - fee/qty`` for a sell), so closing it realizes ``(close - basis) *
qty`` less the closing fee. Realized this way it is the position's ``grid_profit``; the lots
still open at the last price are its floating profit (:meth:`Position.floating`). Both are the
run's grid accounting (``gridkit.summary``), computed by the kernel from fills for any strategy,
and their sum equals the average-cost ``realized + unrealized``: ``equity - capital ==
grid_profit + floating + funding - liquidation_fees`` at every mark. Work per fill is O(1)
amortized (each lot is opened once and closed once).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from attrs import evolve

from gridkit.core.types import Fill, Order

SPOT, LINEAR = "spot", "linear"
_EPS = 1e-12


class Position:
    """What the account holds of one instrument, and what it has earned on it."""

    __slots__ = ("avg_price", "buy_fills", "fees", "funding", "grid_profit", "gross_loss",
                 "gross_win", "kind", "last_closer", "leverage", "liquidation_fees", "lots",
                 "mm_amount", "mmr", "price", "qty", "realized", "round_trips", "sell_fills",
                 "side", "symbol")
    #: The fields of :meth:`snapshot`, in order: those a state saved before the grid
    #: accounting holds, then the lots and their counters (so such a state still restores).
    _STATE = ("avg_price", "buy_fills", "fees", "funding", "kind", "leverage", "mm_amount",
              "mmr", "price", "qty", "realized", "sell_fills", "side", "symbol",
              "grid_profit", "liquidation_fees", "lots", "round_trips", "last_closer",
              "gross_win", "gross_loss")
    _OLD_STATE = 14
    #: A state saved with the lots but before the gross win and loss were kept.
    _LOTS_STATE = 19

    def __init__(self, symbol: str, kind: str = SPOT, side: str = "", leverage: float = 1.0,
                 mmr: float = 0.004, mm_amount: float = 0.0) -> None:
        self.symbol = symbol
        self.kind = kind
        #: ``long`` / ``short`` for hedge-mode positions, empty otherwise.
        self.side = side
        self.leverage = leverage
        #: Maintenance margin rate and amount (Binance's bracket ``maintMarginRatio``/``cum``).
        self.mmr = mmr
        self.mm_amount = mm_amount
        #: Base held (spot), or the signed position size (perpetuals).
        self.qty = 0.0
        #: Average cost per unit including buy fees (spot), or the entry price (perpetuals).
        self.avg_price = 0.0
        #: The last mark price (NaN before the first).
        self.price = float("nan")
        self.realized = 0.0
        self.fees = 0.0
        self.funding = 0.0
        self.buy_fills = 0
        self.sell_fills = 0
        #: Open lots, oldest first: ``[signed qty, basis]`` (see the module's docstring).
        self.lots: deque[list[float]] = deque()
        #: Profit realized by closing lots first in, first out, after both fees.
        self.grid_profit = 0.0
        #: Orders that closed (part of) the position: one per order, at its first closing fill.
        self.round_trips = 0
        #: The id of the order counted last (a partly filled order's later fills are not new).
        self.last_closer = ""
        #: Clearance fees of liquidations (quote): not part of any lot.
        self.liquidation_fees = 0.0
        #: The closing fills' profits (after fees) and losses, summed apart: profit factor.
        self.gross_win = 0.0
        self.gross_loss = 0.0

    def floating(self, price: float | None = None) -> float:
        """Unrealized profit of the open lots at ``price`` (default: the last mark) against
        their basis, fees paid to open them included; 0 when flat or never marked."""
        if price is None:
            price = self.price
        if not self.lots or price != price:
            return 0.0
        return sum(q * (price - basis) for q, basis in self.lots)

    def book_lots(self, signed: float, price: float, fee: float, order_id: str = "") -> float:
        """Match a fill of ``signed`` quantity (buy > 0) at ``price`` with ``fee`` (quote)
        against the open lots, first in, first out; return the profit it realized.

        The fee is split by quantity between the part that closes lots and the part that opens
        one. An order that closes anything counts once in :attr:`round_trips`."""
        qty = abs(signed)
        if qty <= 0.0:
            return 0.0
        lots = self.lots
        buy = signed > 0
        left = qty
        gain = 0.0
        while left > _EPS and lots and (lots[0][0] > 0) != buy:
            lot = lots[0]
            size = abs(lot[0])
            if size - left <= _EPS:  # the whole lot closes (with a float residue of it)
                take = size
                lots.popleft()
            else:
                take = left
                lot[0] += take if buy else -take
            # a sell closing a long earns price - basis; a buy closing a short, basis - price
            gain += (price - lot[1]) * (-take if buy else take)
            left -= take
        if left < qty:  # something closed
            closed = min(qty - left, qty)
            gain -= fee * closed / qty
            self.grid_profit += gain
            if gain > 0:
                self.gross_win += gain
            else:
                self.gross_loss -= gain
            if not order_id or order_id != self.last_closer:
                self.round_trips += 1
                self.last_closer = order_id
        if left > _EPS:  # the rest opens (or adds to) the position: a lot of its own
            per_unit = fee / qty
            lots.append([left if buy else -left,
                         price + per_unit if buy else price - per_unit])
        return gain

    @property
    def value(self) -> float:
        """What the position adds to equity: base at the mark (spot) or unrealized profit."""
        if self.qty == 0.0 or self.price != self.price:
            return 0.0
        if self.kind == SPOT:
            return self.qty * self.price
        return self.qty * (self.price - self.avg_price)

    @property
    def notional(self) -> float:
        """Absolute size at the mark price."""
        return abs(self.qty) * self.price if self.price == self.price else 0.0

    def liquidation_price(self, wallet: float) -> float:
        """Binance USDT-M cross-margin liquidation price of this position alone, given the
        wallet balance (NaN when flat or spot); see :func:`gridkit.trading.margin`."""
        if self.kind == SPOT or self.qty == 0.0:
            return float("nan")
        from gridkit.trading.margin import liquidation_price

        return liquidation_price(wallet, self.qty, self.avg_price, self.mmr, self.mm_amount)

    def snapshot(self) -> tuple[Any, ...]:
        """The position's state, for resume (the lots copied: the state does not move on)."""
        return tuple([tuple(lot) for lot in self.lots] if name == "lots" else getattr(self, name)
                     for name in self._STATE)

    def restore(self, state: tuple[Any, ...]) -> None:
        """Put back what :meth:`snapshot` returned. A state saved before the lots were kept
        restores with one lot: the position at its average cost (what the lots sum to)."""
        if len(state) not in (len(self._STATE), self._LOTS_STATE, self._OLD_STATE):
            raise ValueError(f"a position state of {len(state)} fields")
        for name, value in zip(self._STATE, state, strict=False):
            setattr(self, name, deque([list(lot) for lot in value]) if name == "lots" else value)
        if len(state) == self._OLD_STATE:  # what was realized before is all that is known
            self.lots = deque([[self.qty, self.avg_price]] if self.qty else [])
            self.grid_profit = self.realized


class Account:
    """Cash in the quote currency and a position per symbol, updated from fills and marked to
    each event's price; keeps the equity peak and the largest drawdown."""

    __slots__ = ("_list", "buy_fills", "capital", "cash", "equity", "fees", "funding",
                 "max_drawdown", "other_fees", "peak", "positions", "quote", "realized",
                 "returns", "sell_fills")

    def __init__(self, capital: float, quote: str = "") -> None:
        self.capital = capital
        self.quote = quote
        #: The quote balance: cash (spot) and the wallet balance (perpetuals).
        self.cash = capital
        self.positions: dict[str, Position] = {}
        self._list: list[Position] = []
        self.fees = 0.0
        #: Fees paid in an asset that is neither the quote nor a position's base (BNB).
        self.other_fees: dict[str, float] = {}
        self.realized = 0.0
        self.funding = 0.0
        self.buy_fills = 0
        self.sell_fills = 0
        self.equity = capital
        self.peak = capital
        self.max_drawdown = 0.0
        #: The marks' equity returns, each ``equity / previous equity - 1``: how many, their
        #: sum, their sum of squares and that of the negative ones (Sharpe and Sortino).
        self.returns = [0, 0.0, 0.0, 0.0]

    def add(self, position: Position) -> Position:
        """Open the book of a position (once per symbol, or per side in hedge mode)."""
        key = _key(position.symbol, position.side)
        if key in self.positions:
            raise ValueError(f"position {key} exists already")
        self.positions[key] = position
        self._list.append(position)
        return position

    def position(self, symbol: str, side: str = "") -> Position:
        """The position of ``symbol`` (and ``side`` in hedge mode); opened as spot if new."""
        p = self.positions.get(_key(symbol, side))
        return p if p is not None else self.add(Position(symbol, side=side))

    def apply(self, fill: Fill, symbol: str, order: Order | None = None) -> Position:
        """Book one fill of ``symbol``; ``order`` says the position side in hedge mode."""
        side = order.position_side if order is not None else ""
        pos = self.positions.get(_key(symbol, side)) or self.position(symbol, side)
        if fill.fee_currency and fill.fee_currency != self.quote and pos.kind == SPOT:
            fill = self._base_fee(pos, fill)
        self.fees += fill.fee
        pos.fees += fill.fee
        if fill.side == "buy":
            self.buy_fills += 1
            pos.buy_fills += 1
        else:
            self.sell_fills += 1
            pos.sell_fills += 1
        if pos.kind == SPOT:
            self._spot(pos, fill)
        else:
            self._linear(pos, fill)
        pos.book_lots(fill.qty if fill.side == "buy" else -fill.qty, fill.price, fill.fee,
                      fill.order_id)
        return pos

    def _base_fee(self, pos: Position, fill: Fill) -> Fill:
        """A spot fee paid in the base asset (Binance's default on buys), as the same fill with
        the fee folded into quantity and price, so the account holds what the exchange holds.

        Buying q at p with a fee f in base leaves q - f bought for p * q; selling q with f in
        base gives up q + f for p * q. The fee's quote value (f * p) is counted in ``fees``.
        A fee in a third asset (BNB) is not the account's to book: kept in ``other_fees``."""
        base = pos.symbol.split("/")[0]
        if fill.fee_currency != base:
            self.other_fees[fill.fee_currency] = (self.other_fees.get(fill.fee_currency, 0.0)
                                                  + fill.fee)
            return evolve(fill, fee=0.0, fee_currency="")
        qty = fill.qty - fill.fee if fill.side == "buy" else fill.qty + fill.fee
        value = fill.fee * fill.price
        self.fees += value
        pos.fees += value
        return evolve(fill, qty=qty, price=fill.price * fill.qty / qty, fee=0.0,
                      fee_currency="")

    def _spot(self, pos: Position, fill: Fill) -> None:
        notional = fill.price * fill.qty
        if fill.side == "buy":
            held = pos.qty
            pos.qty = held + fill.qty
            # (A spot position is short only with check_balance off; a buy that brings it back
            # to flat starts the next cost basis afresh instead of dividing by zero.)
            pos.avg_price = ((pos.avg_price * held + notional + fill.fee) / pos.qty
                             if pos.qty > _EPS else 0.0)
            self.cash -= notional + fill.fee
        else:
            gain = (fill.price - pos.avg_price) * fill.qty - fill.fee
            pos.realized += gain
            self.realized += gain
            pos.qty -= fill.qty
            self.cash += notional - fill.fee
            if pos.qty <= _EPS:
                # Flat: start the next position's cost basis afresh; a float residue must not
                # carry an old average into it.
                pos.avg_price = 0.0

    def _linear(self, pos: Position, fill: Fill) -> None:
        signed = fill.qty if fill.side == "buy" else -fill.qty
        qty = pos.qty
        gain = -fill.fee
        if qty == 0.0 or (qty > 0) == (signed > 0):  # opening or adding: a new average entry
            new = qty + signed
            pos.avg_price = (pos.avg_price * abs(qty) + fill.price * fill.qty) / abs(new)
            pos.qty = new
        else:  # reducing, closing, maybe flipping
            closed = min(abs(signed), abs(qty))
            direction = 1.0 if qty > 0 else -1.0
            gain += (fill.price - pos.avg_price) * closed * direction
            new = qty + signed
            if abs(new) <= _EPS:
                pos.qty, pos.avg_price = 0.0, 0.0
            elif (new > 0) != (qty > 0):  # flipped: the rest opens at the fill price
                pos.qty, pos.avg_price = new, fill.price
            else:
                pos.qty = new
        pos.realized += gain
        self.realized += gain
        self.cash += gain

    def fund(self, symbol: str, rate: float, mark: float) -> float:
        """Book a funding payment on every position of ``symbol``; returns what the account
        received (negative: paid). Binance: a long pays ``qty * mark * rate`` when the rate is
        positive, a short receives it."""
        total = 0.0
        for pos in self._list:
            if pos.symbol == symbol and pos.kind != SPOT and pos.qty:
                price = mark if mark == mark else pos.price
                paid = -pos.qty * price * rate
                pos.funding += paid
                total += paid
        self.cash += total
        self.funding += total
        return total

    def book_funding(self, symbol: str, amount: float) -> None:
        """Book a funding payment the exchange reported (``amount``: received, negative:
        paid) on ``symbol``'s perpetual position (the first side, in hedge mode)."""
        pos = next((p for p in self._list if p.symbol == symbol and p.kind != SPOT), None)
        if pos is not None:
            pos.funding += amount
        self.cash += amount
        self.funding += amount

    def liquidation(self, pos: Position, adverse: float) -> float:
        """The price at which cross-margin ``pos`` is liquidated if the account's margin
        balance falls to its total maintenance margin before the price reaches ``adverse``;
        NaN if it is not reached (or ``pos`` is spot or flat). Binance's formula, with the
        other perpetual positions' maintenance margin and unrealized profit held at their
        marks (:func:`gridkit.trading.margin.liquidation_price`)."""
        if pos.kind == SPOT or not pos.qty:
            return float("nan")
        from gridkit.trading.margin import liquidation_price, maintenance_margin

        other_mm = other_upnl = 0.0
        for p in self._list:
            if p is not pos and p.kind != SPOT and p.qty:
                other_mm += maintenance_margin(p.notional, p.mmr, p.mm_amount)
                other_upnl += p.value
        lp = liquidation_price(self.cash, pos.qty, pos.avg_price, pos.mmr, pos.mm_amount,
                               other_mm, other_upnl)
        reached = adverse <= lp if pos.qty > 0 else adverse >= lp
        return lp if reached and lp == lp else float("nan")

    def liquidate(self, pos: Position, price: float) -> tuple[float, float]:
        """Close ``pos`` at its liquidation ``price``; what is left of its maintenance margin
        goes as the clearance fee. Returns (quantity closed, signed; fee)."""
        from gridkit.trading.margin import maintenance_margin

        qty = pos.qty
        fee = maintenance_margin(abs(qty) * price, pos.mmr, pos.mm_amount)
        gain = (price - pos.avg_price) * qty - fee
        pos.realized += gain
        pos.fees += fee
        # The lots close at the liquidation price (realized, not a round trip of the grid's);
        # the clearance fee belongs to no lot.
        rounds = pos.round_trips
        pos.book_lots(-qty, price, 0.0)
        pos.round_trips = rounds
        pos.lots.clear()
        pos.liquidation_fees += fee
        self.realized += gain
        self.fees += fee
        self.cash += gain
        pos.qty, pos.avg_price, pos.price = 0.0, 0.0, price
        return qty, fee

    def mark(self, pos: Position, price: float) -> float:
        """Value the account with ``pos`` at ``price``; update peak and max drawdown; return
        equity (O(positions), a handful)."""
        pos.price = price
        equity = self.cash
        for p in self._list:
            if p.qty:
                equity += p.value
        prev = self.equity
        if prev > 0:
            r = equity / prev - 1.0
            if r == r:  # (a NaN mark is no return)
                rs = self.returns
                rs[0] += 1
                rs[1] += r
                rs[2] += r * r
                if r < 0:
                    rs[3] += r * r
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        elif self.peak > 0:
            dd = (self.peak - equity) / self.peak
            if dd > self.max_drawdown:
                self.max_drawdown = dd
        return equity

    @property
    def drawdown(self) -> float:
        """Current drawdown from the equity peak, as a fraction."""
        return (self.peak - self.equity) / self.peak if self.peak > 0 else 0.0

    def balances(self) -> dict[str, float]:
        """Balance per asset: the quote currency and the base of every spot position."""
        out = {self.quote or "quote": self.cash}
        for p in self._list:
            if p.kind == SPOT:
                base = p.symbol.split("/")[0] if "/" in p.symbol else p.symbol
                out[base] = out.get(base, 0.0) + p.qty
        return out

    def snapshot(self) -> dict[str, Any]:
        """The account's state, for resume."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__
                               if name not in ("_list", "positions")}
        out["returns"] = list(self.returns)  # (a copy: the state does not move on)
        out["positions"] = [(p.symbol, p.side, p.snapshot()) for p in self._list]
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` returned (positions already added keep identity)."""
        for name, value in state.items():
            if name != "positions":
                setattr(self, name, value)
        for symbol, side, pstate in state["positions"]:
            self.position(symbol, side).restore(pstate)


class AccountView:
    """The account as one lane (symbol) sees it: ``cash`` and ``equity`` are the account's,
    ``base``, ``price`` and ``avg_cost`` are its own position's. ``ctx.portfolio`` is one."""

    __slots__ = ("account", "pos")

    def __init__(self, account: Account, pos: Position) -> None:
        self.account = account
        self.pos = pos

    cash = property(lambda self: self.account.cash, doc="The account's quote balance.")
    equity = property(lambda self: self.account.equity, doc="The account's equity.")
    capital = property(lambda self: self.account.capital, doc="Starting capital.")
    peak = property(lambda self: self.account.peak, doc="The account's equity peak.")
    drawdown = property(lambda self: self.account.drawdown, doc="The account's drawdown.")
    max_drawdown = property(lambda self: self.account.max_drawdown,
                            doc="The account's largest drawdown so far.")
    fees = property(lambda self: self.account.fees, doc="Fees paid by the account.")
    realized = property(lambda self: self.account.realized,
                        doc="Realized profit of the account.")
    buy_fills = property(lambda self: self.account.buy_fills, doc="Buy fills of the account.")
    sell_fills = property(lambda self: self.account.sell_fills, doc="Sell fills of the account.")
    base = property(lambda self: self.pos.qty,
                    doc="This symbol's position: base held (spot) or signed size (perpetual).")
    price = property(lambda self: self.pos.price, doc="This symbol's last mark price.")
    avg_cost = property(lambda self: self.pos.avg_price,
                        doc="This symbol's average cost (spot) or entry price (perpetual).")

    def apply(self, fill: Fill) -> None:
        """Book a fill of this symbol."""
        self.account.apply(fill, self.pos.symbol)

    def mark(self, price: float) -> float:
        """Mark this symbol at ``price``; the account's equity."""
        return self.account.mark(self.pos, price)


def _key(symbol: str, side: str) -> str:
    return f"{symbol}:{side}" if side else symbol


#: The account of a one-symbol run, as earlier versions named it.
def Portfolio(capital: float, base: float = 0.0, symbol: str = "") -> AccountView:
    """A one-symbol spot account (``capital`` cash, ``base`` held): the view a lane sees."""
    account = Account(capital)
    pos = account.add(Position(symbol))
    pos.qty = base
    if base:  # given, not bought: a lot that cost nothing, as ``capital`` does not count it
        pos.lots.append([base, 0.0])
    return AccountView(account, pos)
