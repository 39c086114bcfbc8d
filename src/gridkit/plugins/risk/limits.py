"""Order and account limits: ``concurrent-orders``, ``daily-loss``, ``concentration`` and
``cooldown``.

Each refuses single orders (a :class:`gridkit.Reject` with a one-line reason) and never halts
the run; each does O(1) work per order and per bar (``concentration`` O(size of a group)).
"Adds risk" means the same thing throughout: an order that would make the absolute position of
its symbol larger — a buy while long or flat, a sell while short (perpetuals) — and that is not
``reduce_only``. Orders that reduce a position always pass these checks, so a grid can still
take profit, and a stop can still close, while its entries are refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import OptionError, at_least, fraction, non_negative, option, optional
from gridkit.core.types import Order, Reject
from gridkit.runtime.context import Context

_EPS = 1e-12


def _position_qty(order: Order, ctx: Context) -> float:
    """The signed position that ``order`` would change (its side's in hedge mode)."""
    if order.symbol == ctx.symbol and order.position_side == ctx.position.side:
        return ctx.position.qty
    key = f"{order.symbol}:{order.position_side}" if order.position_side else order.symbol
    pos = ctx.account.positions.get(key)
    return pos.qty if pos is not None else 0.0


def adds_risk(order: Order, ctx: Context) -> bool:
    """True if ``order`` would make the absolute position of its symbol larger: a buy while
    long or flat, a sell while short; never a ``reduce_only`` order. A spot sell never does
    (spot cannot go short)."""
    if order.reduce_only:
        return False
    qty = _position_qty(order, ctx)
    if order.position_side:  # hedge mode: each side only grows by its own direction
        return (order.side == "buy") == (order.position_side == "long")
    if order.side == "buy":
        return qty >= -_EPS
    return qty < -_EPS or (qty <= _EPS and ctx.position.kind != "spot")


class ConcurrentOrders(RiskCheck):
    """Caps the number of live orders: per symbol (``max_per_symbol``) and in all (``max_total``).

    A live order is one the ledger holds as new, open or partially filled. A new order is
    refused when ``live(symbol) + 1 > max_per_symbol`` or ``live(all) + 1 > max_total``; both
    counts are kept by the ledger as orders come and go, so the check is O(1). Orders cancelled
    in the same batch as the new one still count until their cancel is confirmed (the
    conservative reading). Source: the seeds' ``max_concurrent_orders`` (8–12 live orders,
    seeds 000/002/003), and Binance's own cap on open orders per symbol (``MAX_NUM_ORDERS``,
    200 on spot), which this check lets a pipeline hit before the exchange does.
    """

    name = "concurrent-orders"

    @frozen
    class Config:
        one_of = [("max_per_symbol", "max_total")]

        max_per_symbol: int | None = option(
            None, doc="Most live orders of one symbol, e.g. 10.", validator=optional(at_least(1)))
        max_total: int | None = option(
            None, doc="Most live orders of the whole run (every symbol), e.g. 12.",
            validator=optional(at_least(1)))

        def __attrs_post_init__(self) -> None:
            if (self.max_per_symbol is not None and self.max_total is not None
                    and self.max_per_symbol > self.max_total):
                raise OptionError("max_per_symbol", f"must be <= max_total "
                                                    f"({self.max_total}), got "
                                                    f"{self.max_per_symbol}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.refused = 0
        #: The most live orders seen (of the run, after accepting one).
        self.peak = 0

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        ledger = ctx.ledger
        total = len(ledger.open)
        c = self.config
        if c.max_total is not None and total >= c.max_total:
            self.refused += 1
            return Reject(f"max_total {c.max_total} orders live")
        if c.max_per_symbol is not None:
            mine = ledger.open_count.get(order.symbol, 0)
            if mine >= c.max_per_symbol:
                self.refused += 1
                return Reject(f"max_per_symbol {c.max_per_symbol} orders of {order.symbol} "
                              f"live")
        if total + 1 > self.peak:
            self.peak = total + 1
        return order

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused, "peak_live_orders": self.peak}


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise OptionError("timezone", f"unknown time zone {name!r} ({type(err).__name__}); "
                                      f"give an IANA name like 'Asia/Shanghai'") from None


def _check_zone(_instance: Any, _attribute: Any, value: str) -> None:
    _zone(value)


class DailyLoss(RiskCheck):
    """Refuses orders that add risk for the rest of the day once the day's loss reaches ``limit``.

    The trading day starts at ``day_start`` hours after midnight in ``timezone`` (UTC midnight
    by default; ``timezone = "Asia/Shanghai"`` for A-shares). With ``E0`` the account's equity
    at the start of the day — marked at the close of the last bar before it — and ``E`` the
    equity marked at each close (or, on a tick, at the last mark), the day's loss is::

        loss = (E0 - E) / E0

    ``E - E0`` is the realized profit plus the change in floating profit since the day began,
    fees and funding included (equity is cash plus the positions at their marks). When ``loss
    >= limit`` the check trips: for the rest of the day it refuses every order that adds risk
    (a buy on a long grid; any order that makes ``|position|`` larger) and lets orders that
    reduce a position through. At the first bar of the next trading day it takes ``E0`` afresh
    and trades again by itself. ``trips`` counts the days it tripped, ``refused`` the orders
    it refused. Source: the prop-trading "daily loss limit" (FTMO's maximum daily loss: 5 % of
    the day's starting balance, reset at midnight CE(S)T), and seeds 000/002 (``daily_loss_limit``
    1–2 %).
    """

    name = "daily-loss"

    @frozen
    class Config:
        limit: float = option(doc="Largest loss of a trading day, as a fraction of the equity at "
                                  "its start (0.02 = 2 %).", validator=fraction(),
                              tunable=(0.002, 0.5))
        timezone: str = option("UTC", doc="IANA time zone of the trading day, e.g. "
                                          "'Asia/Shanghai'.", validator=_check_zone)
        day_start: float = option(0.0, doc="Hours after midnight (in timezone) at which the "
                                           "trading day starts, in [0, 24).",
                                  validator=non_negative())

        def __attrs_post_init__(self) -> None:
            if self.day_start >= 24:
                raise OptionError("day_start", f"must be in [0, 24), got {self.day_start!r}")

    def conflicts(self, others: Sequence[RiskCheck]) -> list[str]:
        # The day starts at an equity no higher than the peak, so the day's loss is never
        # more than the drawdown: at or above the drawdown's limit this check cannot bind.
        return [f"daily-loss limit {self.config.limit:.2%} is not below the drawdown limit "
                f"{o.config.limit:.2%}: drawdown halts first, so daily-loss never binds"
                for o in others if o.name == "drawdown"
                and self.config.limit >= o.config.limit]

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.trips = 0
        self.refused = 0
        #: Start of the current trading day (ms) and of the next one.
        self.day_ts: int | None = None
        self.next_day_ts: int | None = None
        self.day_equity = float("nan")
        #: The equity at the last mark this check saw (what the next day starts from).
        self.last_equity = float("nan")
        #: ms of the bar the current trip began on, or None while trading.
        self.tripped_at: int | None = None
        #: The refusal of the current trip (one line, the same for the whole day).
        self.reason = ""
        self.worst = 0.0

    def _day_bounds(self, ts: int) -> tuple[int, int]:
        """Start and end (ms) of the trading day holding ``ts`` (once per day: zoneinfo)."""
        c = self.config
        zone = _zone(c.timezone)
        shift = timedelta(hours=c.day_start)
        local = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).astimezone(zone) - shift
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        start = (midnight + shift).replace(tzinfo=zone)
        end = (midnight + timedelta(days=1) + shift).replace(tzinfo=zone)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def _roll(self, ts: int, equity: float) -> None:
        if self.next_day_ts is None or ts >= self.next_day_ts or ts < (self.day_ts or 0):
            self.day_ts, self.next_day_ts = self._day_bounds(ts)
            last = self.last_equity
            self.day_equity = last if last == last else equity
            self.tripped_at = None

    def on_bar(self, ctx: Context) -> str | None:
        ts = ctx.event.ts if ctx.event is not None else ctx.bar.ts
        equity = ctx.account.equity
        self._roll(ts, equity)
        self.last_equity = equity
        start = self.day_equity
        if start > 0:
            loss = (start - equity) / start
            if loss > self.worst:
                self.worst = loss
            if self.tripped_at is None and loss >= self.config.limit - _EPS:
                self.tripped_at = ts
                self.trips += 1
                until = _utc(self.next_day_ts or 0)
                self.reason = (f"daily loss reached the limit {self.config.limit:.2%} at "
                               f"{_utc(ts)} UTC; no new risk until {until} UTC")
        return None

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if self.tripped_at is None or not adds_risk(order, ctx):
            return order
        self.refused += 1
        return Reject(self.reason)

    def stats(self) -> dict[str, Any]:
        return {"trips": self.trips, "refused": self.refused, "worst_day_loss": self.worst,
                "tripped": self.tripped_at is not None}


def _check_groups(_instance: Any, _attribute: Any, value: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for group, symbols in value.items():
        if not symbols:
            raise OptionError("groups", f"group {group!r} lists no symbol")
        for sym in symbols:
            if sym in seen:
                raise OptionError("groups", f"{sym} is in two groups, {seen[sym]!r} and "
                                            f"{group!r}; a symbol belongs to one")
            seen[sym] = group


class Concentration(RiskCheck):
    """Refuses orders that would put more than ``max_fraction`` of equity in one asset or group.

    For the asset of an order of ``q`` at price ``p`` (the asset's last mark, or the order's
    price before the first), in the order's direction, the exposure is::

        exposure = (|position| + open same-side quantity + q) * p

    — the position plus every live order that would grow it filling, the new one included —
    and the order is refused when ``exposure / equity > max_fraction``. An order that reduces
    the position passes (unless it flips it, and then the flipped size counts). With
    ``groups = {"L1" = ["BTC/USDT", "ETH/USDT"]}`` the exposures of a group's members (each
    ``(|position| + open same-side quantity) * mark``) add up with the new order's, against the
    same cap. Equity is the run's one account, shared by every lane. Source: the seeds'
    ``max_concentration`` (20–30 % per asset, 000/002) and position concentration limits as
    risk managers set them (e.g. UCITS' 5/10/40 rule: at most 10 % in one issuer).
    """

    name = "concentration"

    @frozen
    class Config:
        max_fraction: float = option(doc="Largest share of equity in one asset or group "
                                         "(0.25 = 25 %).", validator=fraction(),
                                     tunable=(0.05, 1.0))
        groups: dict[str, list[str]] = option(
            factory=dict, doc='Sectors: group name -> its symbols, e.g. {"L1" = ["BTC/USDT", '
                              '"ETH/USDT"]}; each group shares the cap.',
            validator=_check_groups)

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.refused = 0
        self.refused_groups = 0
        self._group_of = {sym: (name, tuple(members))
                          for name, members in self.config.groups.items() for sym in members}

    @staticmethod
    def _exposure(sym: str, ledger: Any, account: Any, buy: bool | None) -> float:
        """(|position| + its same-side live orders) * mark of ``sym``; ``buy`` None: the
        position's own direction."""
        pos = account.positions.get(sym)
        if pos is None:
            return 0.0
        qty, price = pos.qty, pos.price
        if price != price:
            return 0.0
        if buy is None:
            buy = qty >= 0
        live = ledger.open_buy_qty.get(sym, 0.0) if buy else ledger.open_sell_qty.get(sym, 0.0)
        return (abs(qty) + max(live, 0.0)) * price

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if order.reduce_only:
            return order
        equity = ctx.account.equity
        if equity <= 0:
            return order
        sym, buy = order.symbol, order.side == "buy"
        pos = _position_qty(order, ctx)
        signed = order.qty if buy else -order.qty
        if pos and (pos > 0) != buy:  # reducing: passes unless it flips the position
            flipped = abs(pos + signed) if (pos + signed > 0) == buy else 0.0
            if flipped <= _EPS or ctx.position.kind == "spot":
                return order
            add = flipped
            pos = 0.0
        else:
            add = order.qty
        ledger = ctx.ledger
        live = ledger.open_buy_qty.get(sym, 0.0) if buy else ledger.open_sell_qty.get(sym, 0.0)
        mark = ctx.position.price if sym == ctx.symbol else float("nan")
        if mark != mark:
            p = ctx.account.positions.get(sym)
            mark = p.price if p is not None and p.price == p.price else order.price
        mine = (abs(pos) + max(live, 0.0) + add) * mark
        cap = self.config.max_fraction
        if mine / equity > cap + _EPS:
            self.refused += 1
            return Reject(f"{sym} would exceed max_fraction {cap:.0%} of equity")
        group = self._group_of.get(sym)
        if group is not None:
            name, members = group
            total = mine + sum(self._exposure(m, ledger, ctx.account, None)
                               for m in members if m != sym)
            if total / equity > cap + _EPS:
                self.refused += 1
                self.refused_groups += 1
                return Reject(f"group {name} would exceed max_fraction {cap:.0%} of equity")
        return order

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused, "refused_by_group": self.refused_groups}


class Cooldown(RiskCheck):
    """Locks a symbol's new entries for ``bars`` bars after ``losses`` losses in ``lookback``.

    The trigger, exactly: at each bar of a symbol the check compares the symbol's realized
    profit (the account's, average-cost: ``Position.realized``, fees included) with its value
    at the previous bar; a drop of more than ``min_loss`` (quote) is one loss — whatever
    closed at a loss during that bar, a stop-out or a grid sell below the average cost. When
    the losses of the last ``lookback`` bars of the symbol (this one included) reach
    ``losses``, the symbol is locked from this bar for ``bars`` bars: orders that add risk are
    refused (``block = "all"``: every order of the symbol), those that reduce a position pass.
    The losses that triggered a lock are used up by it. Work per bar is O(1) amortized (a
    queue of loss bars). Source: freqtrade's protections — ``StoplossGuard`` (N stop-losses
    within ``lookback_period_candles`` lock the pair for ``stop_duration_candles``) and
    ``CooldownPeriod`` (``losses = 1``, ``lookback = 1``).
    """

    name = "cooldown"

    @frozen
    class Config:
        bars: int = option(doc="Bars a locked symbol stays locked.", validator=at_least(1))
        losses: int = option(1, doc="Losses within lookback that lock the symbol.",
                             validator=at_least(1))
        lookback: int = option(60, doc="Bars of the symbol in which the losses are counted.",
                               validator=at_least(1))
        min_loss: float = option(0.0, doc="Smallest drop of realized profit (quote) that "
                                          "counts as a loss.", validator=non_negative())
        block: Literal["entries", "all"] = option(
            "entries", doc="What a lock refuses: orders that add risk, or all the symbol's.")

        def __attrs_post_init__(self) -> None:
            if self.losses > self.lookback:
                raise OptionError("losses", f"must be <= lookback ({self.lookback}) bars, got "
                                            f"{self.losses}: at most one loss counts per bar")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.locks = 0
        self.refused = 0
        self.losses_seen = 0
        #: Per symbol: realized profit at its last bar; bar indexes of its recent losses; the
        #: bar index its lock ends before (and why).
        self._realized: dict[str, float] = {}
        self._loss_bars: dict[str, deque[int]] = {}
        self._until: dict[str, tuple[int, str]] = {}
        self._index: dict[str, int] = {}

    def on_bar(self, ctx: Context) -> str | None:
        sym, i = ctx.symbol, ctx.index
        self._index[sym] = i
        realized = ctx.position.realized
        last = self._realized.get(sym, realized)
        self._realized[sym] = realized
        c = self.config
        if last - realized > c.min_loss + _EPS:
            self.losses_seen += 1
            q = self._loss_bars.get(sym)
            if q is None:
                q = self._loss_bars[sym] = deque()
            q.append(i)
            while q and q[0] <= i - c.lookback:
                q.popleft()
            if len(q) >= c.losses:
                q.clear()
                self.locks += 1
                when = ctx.bar.ts if ctx.bar is not None else 0
                self._until[sym] = (i + c.bars, f"{c.losses} loss"
                                                f"{'es' * (c.losses > 1)} on {sym} within "
                                                f"{c.lookback} bars; locked for {c.bars} bars "
                                                f"from {_utc(when)} UTC")
        return None

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        lock = self._until.get(order.symbol)
        if lock is None:
            return order
        until, why = lock
        if until <= self._index.get(order.symbol, ctx.index):
            del self._until[order.symbol]
            return order
        if self.config.block == "entries" and not adds_risk(order, ctx):
            return order
        self.refused += 1
        return Reject(why)

    def stats(self) -> dict[str, Any]:
        return {"locks": self.locks, "refused": self.refused, "losses": self.losses_seen}


__all__ = ["Concentration", "ConcurrentOrders", "Cooldown", "DailyLoss", "adds_risk"]
