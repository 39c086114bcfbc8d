"""China A-share trading rules as plain functions: the board from the code, the daily price
limit and its prices, board lots, T+1 trading days and the fee schedule (seed 003).

Symbols. An A-share symbol is its six-digit code, optionally with the exchange suffix of
tushare's ``ts_code`` or the quote currency: ``600519.SH``, ``000953.SZ``, ``688981``,
``300033/CNY``. A suffix that contradicts the code (``600519.SZ``) is an error, and so is any
other symbol (``BTC/USDT``), a Beijing Stock Exchange code (4xxxxx, 8xxxxx, 920xxx) or a B share
(900xxx, 200xxx): :func:`parse_symbol` raises a :class:`ValueError` whose message is one line.

Boards and codes (SSE and SZSE code allocation rules): SSE main board 600/601/603/605, STAR
Market 688/689; SZSE main board 000/001/002/003 (the SME board merged into it in 2021),
ChiNext 300/301.

Trading days. A trading date is a date in Asia/Shanghai (UTC+8, no daylight saving time).
:func:`trading_day` reads it from a timestamp as ``(ts + 8 h) // 1 day``, which is right for
every stamp a daily or intraday A-share bar carries: the ``csv`` source's date label (00:00
UTC of the trading date), 00:00 Asia/Shanghai (an open-time stamp), or any time inside the
09:15-15:00 session.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import NamedTuple

#: Asia/Shanghai's offset from UTC in ms (fixed: no daylight saving time since 1991).
CST_MS = 8 * 3_600_000
DAY_MS = 86_400_000
#: The end of the continuous session, 15:00 Asia/Shanghai, as ms after that day's midnight.
SESSION_END_MS = 15 * 3_600_000
_EPOCH = date(1970, 1, 1)

#: ChiNext registration reform: ±20 % and no limit in the first five sessions from this
#: trading day (SZSE, 创业板交易特别规定, 2020-08-24; before it ±10 %, ST ±5 %).
CHINEXT_REFORM = date(2020, 8, 24)
#: Main board registration reform: new listings have no limit in their first five sessions
#: from this day (SSE/SZSE 股票上市规则 2023, first listings 2023-04-10).
MAIN_REGISTRATION = date(2023, 4, 10)
#: Main-board risk-warning (ST) stocks move from ±5 % to ±10 % (SSE/SZSE notice on the
#: price limit of main-board risk-warning stocks, consultation of 2025-06-27; in force
#: 2025-07-07).
MAIN_ST_TEN = date(2025, 7, 7)
#: Sessions without a price limit after a listing under the registration rules.
FIRST_SESSIONS = 5

MAIN, CHINEXT, STAR = "main", "chinext", "star"

_BOARDS = (  # (code prefixes, exchange, board)
    (("600", "601", "603", "605"), "SH", MAIN),
    (("688", "689"), "SH", STAR),
    (("000", "001", "002", "003"), "SZ", MAIN),
    (("300", "301"), "SZ", CHINEXT),
)
_SYMBOL = re.compile(r"^(\d{6})(?:\.(SH|SZ|SS)|/CNY)?$", re.IGNORECASE)


class Security(NamedTuple):
    """An A-share: its six-digit ``code``, ``exchange`` (``SH`` or ``SZ``) and ``board``
    (``main``, ``chinext`` or ``star``)."""

    code: str
    exchange: str
    board: str


def parse_symbol(symbol: str) -> Security:
    """The :class:`Security` of an A-share symbol; ValueError (one line) for anything else."""
    m = _SYMBOL.match(symbol.strip())
    if m is None:
        raise ValueError(f"{symbol!r} is not an A-share symbol: use the six-digit code, "
                         f"e.g. 600519.SH, 000001.SZ or 600519/CNY")
    code, suffix = m.group(1), (m.group(2) or "").upper()
    for prefixes, exchange, board in _BOARDS:
        if code.startswith(prefixes):
            if suffix and {"SS": "SH"}.get(suffix, suffix) != exchange:
                raise ValueError(f"{symbol!r}: code {code} trades on {exchange}, not {suffix}")
            return Security(code, exchange, board)
    raise ValueError(f"{symbol!r}: code {code} is not an SSE/SZSE A share on the main board, "
                     f"ChiNext or STAR (Beijing and B-share codes are not covered)")


def code_of(symbol: str) -> str:
    """The six-digit code of a symbol or code as a user writes it (``000953.SZ`` -> ``000953``)
    for matching option lists; the text itself when it holds no code."""
    m = re.match(r"\s*(\d{6})", symbol)
    return m.group(1) if m else symbol.strip()


# --- days ------------------------------------------------------------------------------------


def day_number(ts: int) -> int:
    """Days since 1970-01-01 of the Asia/Shanghai date of ``ts`` (epoch ms)."""
    return (ts + CST_MS) // DAY_MS


def trading_day(ts: int) -> date:
    """The Asia/Shanghai date of ``ts`` (epoch ms): the trading date of a bar."""
    return _EPOCH + timedelta(days=day_number(ts))


def parse_day(text: str) -> date:
    """A date from ``YYYY-MM-DD`` or ``YYYYMMDD``; ValueError if it is neither."""
    t = text.strip()
    if len(t) == 8 and t.isdigit():
        t = f"{t[:4]}-{t[4:6]}-{t[6:]}"
    return date.fromisoformat(t)


def decided_after_session(ts: int) -> bool:
    """True if an order decided on a bar stamped ``ts`` cannot trade before the next session.

    A bar is seen when it has closed (DESIGN.md §6 rule 1). A daily bar carries a date, not a
    time: it is stamped at 00:00 UTC or 00:00 Asia/Shanghai of its trading date, and what is
    decided on it trades from the next trading day. An intraday bar stamped at or after 15:00
    Asia/Shanghai is after the close too. Any other intraday bar's orders trade the same day
    (the last bar before 15:00 counts as the same day: the conservative reading).
    """
    in_day = (ts + CST_MS) % DAY_MS
    return in_day == 0 or ts % DAY_MS == 0 or in_day >= SESSION_END_MS


# --- price limits -----------------------------------------------------------------------------


def limit_percent(board: str, day: date, st: bool = False) -> int:
    """The daily price limit in whole percent (10 = ±10 %) of a security on ``board`` on
    ``day``, ST (risk warning) or not.

    The SSE and SZSE trading rules (上海/深圳证券交易所交易规则): ±10 % on the main boards,
    ±5 % for risk-warning (ST, \\*ST) stocks there (±10 % from :data:`MAIN_ST_TEN`); the STAR
    Market (上海证券交易所科创板股票交易特别规定): ±20 %, ST too; ChiNext (深圳证券交易所
    创业板股票交易特别规定, 2020): ±20 %, ST
    too, from :data:`CHINEXT_REFORM`, before it as the main board.
    """
    if board == STAR or (board == CHINEXT and day >= CHINEXT_REFORM):
        return 20
    if st and not (board == MAIN and day >= MAIN_ST_TEN):
        return 5
    return 10


def unlimited_sessions(board: str, listed: date) -> int:
    """How many sessions from the listing day trade without a price limit: five on STAR, on
    ChiNext from :data:`CHINEXT_REFORM` and on the main board from :data:`MAIN_REGISTRATION`
    (registration-based listings), else none (older listings had a first-day band that this
    module does not model)."""
    if board == STAR or (board == CHINEXT and listed >= CHINEXT_REFORM) or (
            board == MAIN and listed >= MAIN_REGISTRATION):
        return FIRST_SESSIONS
    return 0


def limit_prices(ref: float, percent: int) -> tuple[float, float]:
    """(limit-down, limit-up) of a day whose reference price is ``ref`` (the previous close).

    ``limit = round_half_up(ref * (1 ± percent/100), 0.01 CNY)`` (SSE/SZSE trading rules:
    涨跌幅限制价格 = 前收盘价 × (1 ± 涨跌幅限制比例), 计算结果按照四舍五入原则取至价格最小变动单位
    0.01 元). Computed in integer cents, so no binary-float residue moves a price by a cent.
    """
    cents = round(ref * 100)
    up = (cents * (100 + percent) + 50) // 100
    down = (cents * (100 - percent) + 50) // 100
    return down / 100, up / 100


def locked_side(high: float, low: float, prev_close: float, percents: tuple[int, ...]
                ) -> str:
    """``"up"`` if a bar traded at one price (``high == low``) equal to a limit-up of
    ``prev_close`` for one of ``percents``, ``"down"`` at a limit-down, else ``""``.

    A one-price bar at the limit was locked there all session: at limit-up nobody sold (a buy
    gets no fill), at limit-down nobody bought (a sell gets no fill)."""
    if high != low or not prev_close > 0:
        return ""
    for p in percents:
        down, up = limit_prices(prev_close, p)
        if high == up:
            return "up"
        if high == down:
            return "down"
    return ""


def board_percents(board: str, day: date) -> tuple[int, ...]:
    """Every limit percent a security of ``board`` can have on ``day`` (ST or not)."""
    return tuple(sorted({limit_percent(board, day, False), limit_percent(board, day, True)}))


# --- board lots -------------------------------------------------------------------------------


def lot_rule(board: str) -> tuple[int, int]:
    """(minimum, step) of a buy in shares: 100 and 100 (a board lot, SSE/SZSE trading
    rules), on STAR at least 200 in steps of 1 (科创板股票交易特别规定)."""
    return (200, 1) if board == STAR else (100, 100)


def lot_problem(side: str, qty: float, held: float, board: str) -> str | None:
    """Why ``qty`` shares break the board-lot rule, or None.

    A buy is at least the minimum and a whole number of steps above it. A sell is that too, or
    carries the holding's whole odd part at once: on the main boards and ChiNext a sell of
    ``n`` shares out of ``held`` passes if ``n % 100 == held % 100`` (余额不足 100 股的部分,
    应当一次性申报卖出); on STAR a sell below 200 shares passes only as the whole holding
    (余额不足 200 股的部分, 应当一次性申报卖出).
    """
    minimum, step = lot_rule(board)
    n = round(qty)
    if abs(qty - n) > 1e-9:
        return f"{qty:g} shares is not a whole number of shares"
    if side == "buy":
        if n < minimum:
            return f"buy of {n} shares is below the minimum of {minimum}"
        if (n - minimum) % step:
            return f"buy of {n} shares is not a whole number of {step}-share lots"
        return None
    h = round(held)
    if n == h:
        return None
    if step == 1:
        if n < minimum:
            return (f"sell of {n} shares is below the minimum of {minimum} (fewer only as "
                    f"the whole holding of {h})")
        return None
    if n % step == 0 or (n % step == h % step and n <= h):
        return None
    return (f"sell of {n} shares is not whole {step}-share lots (an odd lot goes only with the "
            f"holding's whole odd part, {h % step} of {h})")


def round_lot(side: str, qty: float, held: float, board: str) -> float:
    """The largest quantity up to ``qty`` that :func:`lot_problem` accepts (0 if none)."""
    minimum, step = lot_rule(board)
    n = int(qty + 1e-9)
    h = round(held)
    if side == "buy":
        return float(minimum + (n - minimum) // step * step) if n >= minimum else 0.0
    if n == h:
        return float(n)
    if step == 1:
        return float(n) if n >= minimum else 0.0
    odd = h % step
    best = n // step * step
    if odd and n >= odd and h >= n:
        best = max(best, (n - odd) // step * step + odd)
    return float(best)


# --- fees -------------------------------------------------------------------------------------

#: Minimum broker commission per order, CNY (seed 003: commission 0.0003, and the usual
#: 5-yuan minimum of a Chinese broker's schedule).
MIN_COMMISSION = 5.0

#: Stamp duty (印花税) from each date on: (first day, rate on buys, rate on sells). Ministry of
#: Finance / State Taxation Administration: 0.3 % both sides from 2007-05-30, 0.1 % both sides
#: from 2008-04-24, 0.1 % on sells only from 2008-09-19, 0.05 % on sells only from 2023-08-28
#: (财政部 税务总局公告 2023 年第 39 号). Dates before the first row use the first row.
STAMP_DUTY = (
    (date(2007, 5, 30), 0.003, 0.003),
    (date(2008, 4, 24), 0.001, 0.001),
    (date(2008, 9, 19), 0.0, 0.001),
    (date(2023, 8, 28), 0.0, 0.0005),
)
#: Transfer fee (过户费, China Securities Depository and Clearing, both sides) from each date
#: on: (first day, rate on SSE value, rate on SZSE value, CNY per SSE share). Before
#: 2015-08-01: SSE 0.3 ‰ of par value (1 CNY a share: 0.0003 CNY per share), SZSE 0.0255 ‰ of
#: value; from 2015-08-01 0.02 ‰ of value on both; from 2022-04-29 0.01 ‰ of value (中国结算,
#: 2022-04-28: 过户费由按照成交金额 0.02‰ 统一下调为按照成交金额 0.01‰ 双向收取).
TRANSFER_FEE = (
    (date(1990, 1, 1), 0.0, 0.0000255, 0.0003),
    (date(2015, 8, 1), 0.00002, 0.00002, 0.0),
    (date(2022, 4, 29), 0.00001, 0.00001, 0.0),
)


def _row(table: tuple[tuple, ...], day: date) -> tuple:  # type: ignore[type-arg]
    row = table[0]
    for r in table:
        if r[0] <= day:
            row = r
        else:
            break
    return row


def stamp_duty_rate(side: str, day: date) -> float:
    """The stamp duty rate of a ``side`` trade on ``day`` (:data:`STAMP_DUTY`)."""
    row = _row(STAMP_DUTY, day)
    return row[2] if side == "sell" else row[1]


def fee_parts(side: str, price: float, qty: float, commission_rate: float, day: date,
              exchange: str, min_commission: float = MIN_COMMISSION
              ) -> tuple[float, float, float]:
    """(commission, stamp duty, transfer fee) in CNY of one fill of ``qty`` shares at
    ``price`` on ``day``:

    * commission = max(value × ``commission_rate``, ``min_commission``) (0 if the rate is 0);
    * stamp duty = value × :func:`stamp_duty_rate` (sells only since 2008-09-19);
    * transfer fee = value × the exchange's rate of :data:`TRANSFER_FEE` (+ shares × the
      per-share SSE fee before 2015-08-01).

    where value = price × qty.
    """
    value = price * qty
    commission = max(value * commission_rate, min_commission) if commission_rate > 0 else 0.0
    stamp = value * stamp_duty_rate(side, day)
    row = _row(TRANSFER_FEE, day)
    transfer = value * (row[1] if exchange == "SH" else row[2])
    if exchange == "SH":
        transfer += qty * row[3]
    return commission, stamp, transfer


def fee(side: str, price: float, qty: float, commission_rate: float, ts: int,
        exchange: str, min_commission: float = MIN_COMMISSION) -> float:
    """The whole fee in CNY of a fill at ``ts`` (epoch ms): the sum of :func:`fee_parts` on the
    fill's Asia/Shanghai trading day."""
    c, s, t = fee_parts(side, price, qty, commission_rate, trading_day(ts), exchange,
                        min_commission)
    return c + s + t


# --- what the simulated executors need ----------------------------------------------------------


def symbols_problem(symbols: tuple[str, ...] | list[str], what: str) -> str | None:
    """The first of ``symbols`` that is no A-share, as one line prefixed by ``what`` (the
    option that needs A-shares), or None."""
    for symbol in symbols:
        try:
            parse_symbol(symbol)
        except ValueError as err:
            return f"{what}: {err}"
    return None


class LockWatch:
    """Tells, bar by bar, whether a symbol's bar is locked at a price limit
    (:func:`locked_side` against the previous bar's close, with every limit percent the
    symbol's board can have that day): O(1) per bar, state that pickles."""

    def __init__(self) -> None:
        self.closes: dict[str, float] = {}  # symbol -> previous bar's close
        self.boards: dict[str, str] = {}
        #: Bars seen locked at a limit.
        self.locked = 0

    def side(self, symbol: str, ts: int, high: float, low: float, close: float) -> str:
        """``"up"`` / ``"down"`` if this bar is locked at that limit, else ``""``; then the bar's
        close is the next bar's reference."""
        prev = self.closes.get(symbol)
        self.closes[symbol] = close
        if prev is None or high != low:
            return ""
        board = self.boards.get(symbol)
        if board is None:
            board = self.boards[symbol] = parse_symbol(symbol).board
        side = locked_side(high, low, prev, board_percents(board, trading_day(ts)))
        self.locked += bool(side)
        return side
