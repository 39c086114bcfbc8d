"""China A-share risk checks (seed 003, "T+1 settlement", ``LIMIT_PCT``, ``LOT_SIZE``):
``t-plus-one``, ``lot-size`` and ``price-limit``. The rules themselves are plain functions in
:mod:`gridkit.trading.ashare`; these classes apply them to the orders of a run.

Every one of them trades A-share symbols only (``600519.SH``, ``000953.SZ``, ``688981``,
``300033/CNY``; see :mod:`gridkit.trading.ashare`): a pipeline with another symbol is refused
before it runs (``gridkit check`` says ``risk[0]: 'BTC/USDT' is not an A-share symbol ...``),
and an order of such a symbol that reaches :meth:`check` anyway is refused with that line.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import OptionError, option
from gridkit.core.errors import ConfigError, DataError
from gridkit.core.types import Order, Reject
from gridkit.runtime.context import Context, RunInfo
from gridkit.trading import ashare
from gridkit.trading.ashare import Security

_EPS = 1e-9


class _AShareCheck(RiskCheck):
    """What the A-share checks share: the symbol must be an A-share code."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.refused = 0
        self._securities: dict[str, Security | str] = {}

    def validate(self, run: RunInfo) -> None:
        for symbol in run.symbols or (run.symbol,):
            found = self._security(symbol)
            if isinstance(found, str):
                raise ConfigError(f"{self.name}: {found}")

    def _security(self, symbol: str) -> Security | str:
        """The symbol's :class:`~gridkit.trading.ashare.Security`, or why it is none (cached:
        O(1) per order)."""
        found = self._securities.get(symbol)
        if found is None:
            try:
                found = ashare.parse_symbol(symbol)
            except ValueError as err:
                found = str(err)
            self._securities[symbol] = found
        return found

    def _refuse(self, reason: str) -> Reject:
        self.refused += 1
        return Reject(reason)

    def snapshot(self) -> Any:
        state = super().snapshot()
        if state:
            state.pop("_securities", None)  # a cache, rebuilt on demand
        return state


class TPlusOne(_AShareCheck):
    """A-share T+1: refuses a sell of shares bought on the same trading day.

    Shares bought on trading day *D* can be sold from *D+1* on (the T+1 rule of the SSE and
    SZSE trading rules for A shares; seed 003 "T+1 settlement tracking"). A sell decided
    on a bar passes when

        ``qty <= position - open sells - bought on the day it trades``

    and is refused otherwise (not cut down: the strategy sees the refusal, and a grid proposes
    the cell again after its next fill). ``bought`` is the ledger's running total of buy fills
    per symbol (:attr:`gridkit.runtime.ledger.Ledger.bought`); the check notes it at each bar, so
    what was bought on the day is the total now less the total before the day's first bar: O(1)
    per bar and per order.

    The day an order trades: orders decided on a bar are live from the next bar (DESIGN.md §6
    rule 1). A **daily** bar (stamped at midnight: a date, not a time) and an intraday bar at or
    after 15:00 Asia/Shanghai are after the session, so their orders trade on the next trading
    day, when everything bought so far is sellable: on daily bars the rule never binds in a
    backtest (a grid's follow-up sell of a buy filled on *D* is live on *D+1*). It binds on
    intraday bars, where a sell decided on the day of a buy trades the same day
    (:func:`gridkit.trading.ashare.decided_after_session`).
    """

    name = "t-plus-one"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        #: Per symbol: [trading day, bought total before that day, bought total at last bar].
        self.days: dict[str, list[Any]] = {}

    def on_bar(self, ctx: Context) -> str | None:
        sym = ctx.symbol
        total = ctx.ledger.bought.get(sym, 0.0)
        day = ashare.day_number(ctx.bar.ts)
        st = self.days.get(sym)
        if st is None:
            self.days[sym] = [day, 0.0, total]
        else:
            if st[0] != day:  # the day's first bar: its fills are the day's first
                st[0], st[1] = day, st[2]
            st[2] = total
        return None

    def bought_today(self, ctx: Context) -> float:
        """What the lane's symbol bought on the trading day of the current bar."""
        sym = ctx.symbol
        total = ctx.ledger.bought.get(sym, 0.0)
        st = self.days.get(sym)
        if st is None:
            return total
        return total - (st[1] if st[0] == ashare.day_number(ctx.bar.ts) else st[2])

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        if order.side != "sell":
            return order
        found = self._security(ctx.symbol)
        if isinstance(found, str):
            return self._refuse(found)
        bar = ctx.bar
        if bar is None or ashare.decided_after_session(bar.ts):
            return order
        today = self.bought_today(ctx)
        if today <= _EPS:
            return order
        held = ctx.position.qty
        free = held - ctx.ledger.open_sell_qty.get(ctx.symbol, 0.0) - today
        if order.qty > free + _EPS:
            return self._refuse("T+1: sells shares bought today (sellable: held before "
                                "today less open sells)")
        return order

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused}


class LotSize(_AShareCheck):
    """A-share board lots: buys in lots of 100 shares (STAR: at least 200, in 1-share steps).

    SSE/SZSE trading rules: a buy is a whole number of board lots of 100 shares; a sell is
    too, except that the odd part of a holding (below 100 shares) is sold all at once: a sell
    of ``n`` out of ``held`` shares passes if ``n % 100 == 0`` or ``n % 100 == held % 100``.
    STAR Market (科创板股票交易特别规定): at least 200 shares in steps of 1; below 200 only to
    sell the whole holding. :func:`gridkit.trading.ashare.lot_problem` is the rule.

    An order off the lot is refused with the reason (``buy of 150 shares is not a whole number
    of 100-share lots``), or with ``round = true`` cut down to the largest quantity that fits
    (:func:`gridkit.trading.ashare.round_lot`; refused if that is none).
    """

    name = "lot-size"

    @frozen
    class Config:
        round: bool = option(False, doc="Cut quantities down to whole lots instead of "
                                        "refusing them.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.rounded = 0

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        found = self._security(ctx.symbol)
        if isinstance(found, str):
            return self._refuse(found)
        held = ctx.position.qty
        problem = ashare.lot_problem(order.side, order.qty, held, found.board)
        if problem is None:
            return order
        if self.config.round:
            qty = ashare.round_lot(order.side, order.qty, held, found.board)
            if qty > 0:
                self.rounded += 1
                return attrs.evolve(order, qty=qty)
        return self._refuse(problem)

    def stats(self) -> dict[str, Any]:
        return {"refused": self.refused, "rounded": self.rounded}


class PriceLimit(_AShareCheck):
    """A-share daily price limit: refuses limit orders priced outside the day's band.

    The band of a trading day is ``[round_half_up(ref * (1 - p)), round_half_up(ref * (1 + p))]``
    to 0.01 CNY, ``ref`` the previous close (SSE/SZSE trading rules; seed 003 ``LIMIT_PCT``):
    ``p`` = 10 % on the main boards, 5 % for ST stocks there (options ``st``), 20 % on ChiNext
    (300/301, from 2020-08-24; 10 % before) and STAR (688); no limit in the first five
    sessions after a listing on STAR, on ChiNext since 2020-08-24 and on the main board since
    2023-04-10 (option ``listed``). :func:`gridkit.trading.ashare.limit_percent` and
    :func:`~gridkit.trading.ashare.limit_prices` are the rules.

    ``ref`` is the close of the previous bar of the day before the one the order trades on:
    the last bar's close for orders decided on a daily bar (they trade the next day), the
    previous day's last close for orders decided on an intraday bar. On an ex-dividend day the
    exchange's reference (``pre_close``, the ex-rights price) is lower than that close (10 such
    days in 2010-2020 for 600519): option ``pre_close`` names a CSV that lists it per day
    (tushare's ``pro.daily`` files do; the bar file itself serves), and the check prefers it
    wherever it has the day (``from_pre_close`` counts the bands it moved). The
    ``simulated`` executor's ``locked_limits = "a-share"`` gives no fills on the locked side of
    a bar locked at a limit all session.

    A limit (or stop-limit) order priced above limit-up or below limit-down is refused, in
    one line that names the rule (``buy priced above the day's limit-up (+10% of the previous
    close)``; :meth:`band` gives the prices); market orders pass (they trade inside the band).
    """

    name = "price-limit"

    @frozen
    class Config:
        st: list[str] = option(
            factory=list, doc="Codes under risk warning (ST stocks), limited to ±5 % on the main "
                              "boards: ST status is not in the market data.")
        listed: dict[str, str] = option(
            factory=dict, doc="Listing date (YYYY-MM-DD) by code: the first five sessions "
                              "from it have no limit (STAR; ChiNext and main board under "
                              "the registration rules).")
        pre_close: str | None = option(
            None, doc="A CSV with the exchange's reference price per trading day (columns "
                      "trade_date or date, and pre_close; ts_code to hold several codes), "
                      "e.g. the tushare file the bars come from: used instead of the previous "
                      "close on the days it lists (ex-dividend days differ).")

        def __attrs_post_init__(self) -> None:
            for code in self.st:
                if not (len(ashare.code_of(code)) == 6 and ashare.code_of(code).isdigit()):
                    raise OptionError("st", f"{code!r} is not a six-digit A-share code")
            for code, day in self.listed.items():
                if not ashare.code_of(code).isdigit():
                    raise OptionError("listed", f"{code!r} is not a six-digit A-share code")
                try:
                    ashare.parse_day(day)
                except ValueError:
                    raise OptionError("listed", f"{code}: {day!r} is not a date "
                                                f"(YYYY-MM-DD)") from None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self._st = frozenset(ashare.code_of(code) for code in c.st)
        self._listed = {ashare.code_of(code): ashare.parse_day(day)
                        for code, day in c.listed.items()}
        #: Per symbol: [trading day of the last bar, its close, the previous day's last close,
        #: sessions seen since the listing date (0: not counting)].
        self.days: dict[str, list[Any]] = {}
        #: Per symbol: (bar ts, band) of the orders decided on that bar: (down, up, percent,
        #: ref), or None when they trade without a limit.
        self._bands: dict[str, tuple[int, Any]] = {}
        self.refused_above = 0
        self.refused_below = 0
        self.unlimited = 0
        self.from_pre_close = 0
        #: pre_close: (code, day number) -> the day's reference price; and the reference of
        #: the row after that day's (what orders decided on a daily bar of the day trade at).
        self._ref_on: dict[tuple[str, int], float] = {}
        self._ref_after: dict[tuple[str, int], float] = {}

    def setup(self, run: RunInfo) -> None:
        if self.config.pre_close is not None:
            self._ref_on, self._ref_after = _read_pre_close(run.resolve(self.config.pre_close))

    def validate(self, run: RunInfo) -> None:
        super().validate(run)
        if self.config.pre_close is not None and not run.resolve(self.config.pre_close).is_file():
            raise ConfigError(f"price-limit: pre_close file not found: "
                              f"{run.resolve(self.config.pre_close)}")

    def on_bar(self, ctx: Context) -> str | None:
        bar, sym = ctx.bar, ctx.symbol
        day = ashare.day_number(bar.ts)
        st = self.days.get(sym)
        if st is None:
            st = self.days[sym] = [day, bar.close, float("nan"),
                                   self._sessions_before(sym, day)]
            st[3] += self._counts(sym, day)
        elif st[0] != day:
            st[0], st[2] = day, st[1]
            st[3] += self._counts(sym, day)
        st[1] = bar.close
        return None

    def _counts(self, sym: str, day: int) -> int:
        """1 if the day is a session on or after the symbol's listing date."""
        listed = self._listed.get(ashare.code_of(sym))
        return int(listed is not None and day >= (listed - _EPOCH).days)

    def _sessions_before(self, sym: str, day: int) -> int:
        """Weekdays from the listing date up to ``day`` (excluded): the sessions a run that
        starts after the listing did not see (holidays counted as sessions)."""
        listed = self._listed.get(ashare.code_of(sym))
        if listed is None:
            return 0
        first = _EPOCH + timedelta(days=day)
        n, d = 0, listed
        while d < first and n <= ashare.FIRST_SESSIONS:
            n += d.weekday() < 5
            d += timedelta(days=1)
        return n

    def band(self, ctx: Context) -> tuple[float, float, int, float] | None:
        """(limit-down, limit-up, percent, ref) of the day the orders decided on the current
        bar trade, or None when that day has no limit (a first session, no previous close)."""
        bar, sym = ctx.bar, ctx.symbol
        cached = self._bands.get(sym)
        if cached is not None and cached[0] == bar.ts:
            return cached[1]
        found = self._security(sym)
        st = self.days.get(sym)
        out = None
        if not isinstance(found, str) and st is not None:
            after = ashare.decided_after_session(bar.ts)
            ref = st[1] if after else st[2]
            if self._ref_on:
                table = self._ref_after if after else self._ref_on
                exch = table.get((found.code, st[0]), table.get(("", st[0])))
                if exch is not None:
                    if exch != ref:
                        self.from_pre_close += 1
                    ref = exch
            sessions = st[3] + after  # the session the order trades in, from the listing
            listed = self._listed.get(found.code)
            free = listed is not None and 0 < sessions <= ashare.unlimited_sessions(
                found.board, listed)
            if ref == ref and not free:
                when = _next_weekday(st[0]) if after else _EPOCH + timedelta(days=st[0])
                pct = ashare.limit_percent(found.board, when, found.code in self._st)
                down, up = ashare.limit_prices(ref, pct)
                out = (down, up, pct, ref)
        self._bands[sym] = (bar.ts, out)
        return out

    def check(self, order: Order, ctx: Context) -> Order | Reject:
        found = self._security(ctx.symbol)
        if isinstance(found, str):
            return self._refuse(found)
        if order.kind not in ("limit", "stop_limit") or ctx.bar is None:
            return order
        band = self.band(ctx)
        if band is None:
            self.unlimited += 1
            return order
        down, up, pct, _ = band
        price = order.price
        # The reason names the rule, not the prices, so the summary's refusals group by it.
        if price > up + _EPS:
            self.refused_above += 1
            return self._refuse(f"{order.side} priced above the day's limit-up "
                                f"(+{pct}% of the previous close)")
        if price < down - _EPS:
            self.refused_below += 1
            return self._refuse(f"{order.side} priced below the day's limit-down "
                                f"(-{pct}% of the previous close)")
        return order

    def stats(self) -> dict[str, Any]:
        out = {"refused": self.refused, "refused_above": self.refused_above,
               "refused_below": self.refused_below, "unlimited": self.unlimited}
        if self.config.pre_close is not None:
            out["from_pre_close"] = self.from_pre_close
        return out

    def snapshot(self) -> Any:
        state = super().snapshot()
        if state:  # read again from the file by setup
            state.pop("_ref_on", None)
            state.pop("_ref_after", None)
        return state


_EPOCH = date(1970, 1, 1)


def _read_pre_close(path: Path) -> tuple[dict[tuple[str, int], float],
                                          dict[tuple[str, int], float]]:
    """(reference by (code, day), reference of the next listed row by (code, day)) from a CSV
    with ``trade_date`` (or ``date``) and ``pre_close`` columns; code "" without ``ts_code``."""
    import csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise DataError(f"price-limit: cannot read pre_close file {path}: "
                        f"{err.strerror}") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    at = {h: i for i, h in enumerate(header)}
    i_day = at.get("trade_date", at.get("date"))
    i_ref = at.get("pre_close")
    i_code = at.get("ts_code", at.get("code"))
    if i_day is None or i_ref is None:
        raise DataError(f"price-limit: pre_close file {path} needs a trade_date (or date) and "
                        f"a pre_close column (columns: {', '.join(header)})")
    on: dict[tuple[str, int], float] = {}
    after: dict[tuple[str, int], float] = {}
    last: dict[str, int] = {}
    for row in rows:
        try:
            d = (ashare.parse_day(row[i_day]) - _EPOCH).days
            ref = float(row[i_ref])
        except (ValueError, IndexError):
            continue  # a malformed row gives no reference: the previous close serves
        code = ashare.code_of(row[i_code]) if i_code is not None else ""
        on[(code, d)] = ref
        if code in last:
            after[(code, last[code])] = ref
        last[code] = d
    return on, after


def _next_weekday(day: int) -> date:
    """The weekday after day number ``day``: the next session (holidays aside, which change
    no limit: every rule change took effect on a trading day)."""
    d = _EPOCH + timedelta(days=day + 1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d
