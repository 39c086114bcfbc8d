"""Market metadata in ccxt's ``load_markets()`` format, and the exchange's order filters.

A markets file is what ``ccxt.<exchange>().load_markets()`` returns, written as JSON: an
object mapping each unified symbol (``"BTC/USDT"``, ``"XRP/USDT:USDT"``) to a market object,
or a list of such objects (``fetch_markets()``). gridkit reads the fields below and ignores the
rest (``info`` keeps the exchange's raw symbol record):

=====================================  ==========================================================
``symbol, base, quote, settle``        unified names; ``settle`` is ``None`` on spot
``type``                               ``"spot"`` or ``"swap"``; a swap must be ``linear``
``precision.price``                    the tick, in ccxt's TICK_SIZE mode (``0.01``, not ``2``)
``precision.amount``                   the lot (quantity step), TICK_SIZE mode
``limits.amount.min/max``              Binance ``LOT_SIZE`` ``minQty``/``maxQty``
``limits.price.min/max``               Binance ``PRICE_FILTER`` ``minPrice``/``maxPrice``
``limits.cost.min``                    Binance ``MIN_NOTIONAL``/``NOTIONAL`` minimum
``maker, taker``                       fee rates (fractions)
``contractSize``                       base units per contract (1 on Binance USDⓈ-M)
``limits.leverage.max``                maximum leverage, when the file knows it
=====================================  ==========================================================

The order checks follow Binance's symbol filters
(https://developers.binance.com/docs/binance-spot-api-docs/filters): ``PRICE_FILTER``
(``minPrice <= price <= maxPrice``, ``price % tickSize == 0``; a 0 disables a rule),
``LOT_SIZE`` (``minQty <= qty <= maxQty``, ``qty % stepSize == 0``) and ``MIN_NOTIONAL`` /
``NOTIONAL`` (``price * qty >= minNotional``). The modulo tests are measured from 0 rather than
from ``minPrice``/``minQty`` as the legacy docs word it: in every Binance spot and USDⓈ-M
symbol of the recorded exchangeInfo fixtures the minimum is itself on the grid, so the two
readings agree (a test checks it).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from attrs import frozen

from gridkit.core.errors import ConfigError, DataError

Kind = Literal["spot", "linear"]

#: Relative tolerance of the tick and lot tests: a value within ``REL_TOL * |value|`` (and at
#: most 1 % of a step) of a multiple of the step counts as on it. Binary floats cannot hold
#: 0.01 exactly, so ``60000.01 / 0.01`` is not an integer; this absorbs that (a few units in
#: the last place, ~1e-16 relative) with a wide margin, and nothing a trader would notice.
REL_TOL = 1e-10

# A tick or lot outside this range is no real market's and would overflow ``price / tick``.
_STEP_RANGE = (1e-12, 1e9)

#: ccxt market types that are valid but not traded by gridkit: skipped when a file is read.
_OTHER_TYPES = ("future", "option", "margin", "index")

PRICE_FILTER = "Filter failure: PRICE_FILTER"
LOT_SIZE = "Filter failure: LOT_SIZE"


class UnsupportedMarket(DataError):
    """A well-formed ccxt market of a type gridkit does not trade (future, option, inverse)."""


@frozen
class MarketInfo:
    """One market's trading rules, as the account and the executors need them.

    Build it from a ccxt market with :meth:`from_ccxt` or read a whole file with
    :func:`load_markets`. Prices are in the quote currency, quantities in the base currency
    (for a linear contract: contracts of ``contract_size`` base units).
    """

    symbol: str
    base: str
    quote: str
    settle: str | None
    #: ``"spot"`` or ``"linear"`` (a USDⓈ-M-style perpetual settled in the quote currency).
    kind: Kind
    #: Price step (``PRICE_FILTER.tickSize``).
    tick: float
    #: Quantity step (``LOT_SIZE.stepSize``).
    lot: float
    min_qty: float = 0.0
    #: Smallest ``price * qty * contract_size``; 0 when the market has none.
    min_notional: float = 0.0
    maker: float | None = None
    taker: float | None = None
    contract_size: float = 1.0
    max_leverage: float | None = None
    #: The exchange's own id (``"BTCUSDT"``).
    id: str | None = None
    max_qty: float | None = None
    min_price: float | None = None
    max_price: float | None = None
    #: Which filter a too-small order fails: ``"MIN_NOTIONAL"`` or (newer spot) ``"NOTIONAL"``.
    notional_filter: str = "MIN_NOTIONAL"

    def __attrs_post_init__(self) -> None:
        # The rounding helpers divide by these; a bad one must fail here, not in a hot path.
        for name in ("tick", "lot"):
            step = getattr(self, name)
            if not (math.isfinite(step) and _STEP_RANGE[0] <= step <= _STEP_RANGE[1]):
                raise ValueError(f"{self.symbol}: {name} must be in [1e-12, 1e9], got {step!r}")

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any], source: str = "market") -> MarketInfo:
        """Read one market in ccxt's unified format; DataError naming ``source`` and the symbol.

        :param market: a value of ``exchange.markets`` (``load_markets()``).
        :param source: where it came from, for the error message (a file name).
        """
        if not isinstance(market, Mapping):
            raise DataError(f"{source}: a market is {_kind_of(market)}, not a market object")
        symbol = market.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            raise DataError(f"{source}: a market has no 'symbol' (got {_show(symbol)}): "
                            "not a ccxt markets file?")
        where = f"{source}: {_label(symbol)}"
        kind = _market_kind(market, where)
        names = {}
        for key in ("base", "quote"):
            value = market.get(key)
            if not isinstance(value, str) or not value:
                raise DataError(f"{where}: '{key}' is {_show(value)}, expected a currency code")
            names[key] = value
        settle = market.get("settle")
        if kind == "linear" and (not isinstance(settle, str) or not settle):
            raise DataError(f"{where}: a swap needs its 'settle' currency, got {_show(settle)}")
        if not isinstance(settle, str):
            settle = None

        precision = _mapping(market.get("precision"), "precision", where)
        limits = _mapping(market.get("limits"), "limits", where)
        tick = _number(precision.get("price"), "precision.price (the tick)", where,
                       required=True, positive=True)
        lot = _number(precision.get("amount"), "precision.amount (the lot)", where,
                      required=True, positive=True)
        for what, step in (("precision.price (the tick)", tick),
                           ("precision.amount (the lot)", lot)):
            if not _STEP_RANGE[0] <= step <= _STEP_RANGE[1]:
                raise DataError(f"{where}: {what} is {step!r}, outside the plausible range "
                                "1e-12 .. 1e9")
        amount = _mapping(limits.get("amount"), "limits.amount", where)
        price = _mapping(limits.get("price"), "limits.price", where)
        cost = _mapping(limits.get("cost"), "limits.cost", where)
        leverage = _mapping(limits.get("leverage"), "limits.leverage", where)
        min_qty = _number(amount.get("min"), "limits.amount.min", where, nonneg=True) or 0.0
        max_qty = _number(amount.get("max"), "limits.amount.max", where, nonneg=True) or None
        # Binance: a 0 in PRICE_FILTER disables that rule, so 0 means "no limit" here.
        min_price = _number(price.get("min"), "limits.price.min", where, nonneg=True) or None
        max_price = _number(price.get("max"), "limits.price.max", where, nonneg=True) or None
        min_notional = _number(cost.get("min"), "limits.cost.min", where, nonneg=True) or 0.0
        max_leverage = _number(leverage.get("max"), "limits.leverage.max", where,
                               positive=True)
        # ccxt's DECIMAL_PLACES mode writes precision as a digit count (2 for 0.01); read as a
        # step, that would be larger than the market's own minimum. Refuse instead of guessing.
        if min_qty and lot > min_qty * (1 + 1e-9):
            raise DataError(f"{where}: precision.amount {lot!r} is larger than limits.amount.min "
                            f"{min_qty!r}: gridkit reads ccxt's TICK_SIZE precision (the step "
                            "itself); is this file in DECIMAL_PLACES mode?")
        if min_price and tick > min_price * (1 + 1e-9):
            raise DataError(f"{where}: precision.price {tick!r} is larger than limits.price.min "
                            f"{min_price!r}: gridkit reads ccxt's TICK_SIZE precision (the step "
                            "itself); is this file in DECIMAL_PLACES mode?")
        contract_size = _number(market.get("contractSize"), "contractSize", where, positive=True)
        maker = _number(market.get("maker"), "maker", where)
        taker = _number(market.get("taker"), "taker", where)
        market_id = market.get("id")
        return cls(
            symbol=symbol, base=names["base"], quote=names["quote"], settle=settle, kind=kind,
            tick=tick, lot=lot, min_qty=min_qty, min_notional=min_notional,
            maker=maker, taker=taker,
            contract_size=contract_size if contract_size is not None else 1.0,
            max_leverage=max_leverage,
            id=market_id if isinstance(market_id, str) else None,
            max_qty=max_qty, min_price=min_price, max_price=max_price,
            notional_filter=_notional_filter(market.get("info")),
        )


# --- reading markets --------------------------------------------------------------------------


def load_markets(path: str | Path) -> dict[str, MarketInfo]:
    """Read a JSON markets file in ccxt's format into ``{symbol: MarketInfo}``.

    The file holds what ``load_markets()`` returns (an object keyed by symbol) or what
    ``fetch_markets()`` returns (a list). Markets of a type gridkit does not trade (dated
    futures, options, inverse swaps) are left out, so a full ``load_markets()`` dump loads;
    a file with none that it trades is an error. Any other problem — missing file, not JSON,
    a market without tick or lot, a non-finite or non-positive number, an unknown type — is
    one :class:`~gridkit.core.errors.DataError` line naming the file and the symbol.

    :param path: the ``.json`` file, e.g. ``examples/data/markets.json``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"markets file {p} not found") from None
    except OSError as e:
        raise DataError(f"markets file {p} cannot be read: {e.strerror or e}") from None
    if not raw.strip():
        raise DataError(f"markets file {p} is empty")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        # ValueError covers bad UTF-8, bad JSON and over-long integer literals.
        raise DataError(f"markets file {p} is not JSON: {_first_line(e)}") from None
    return markets_from_ccxt(data, source=str(p))


def markets_from_ccxt(data: Any, source: str = "markets") -> dict[str, MarketInfo]:
    """``{symbol: MarketInfo}`` from ccxt markets already in memory (``exchange.markets``).

    Like :func:`load_markets`, it leaves out markets of types gridkit does not trade.

    :param data: a dict symbol → market, or a list of markets.
    :param source: named in error messages.
    """
    out: dict[str, MarketInfo] = {}
    skipped = 0
    if isinstance(data, Mapping):
        for key, value in data.items():
            if not isinstance(value, Mapping):
                raise DataError(f"{source}: entry {_show(key)} is {_kind_of(value)}, not a "
                                "market object: not a ccxt markets file?")
            try:
                market = MarketInfo.from_ccxt(value, source)
            except UnsupportedMarket:
                skipped += 1
                continue
            if market.symbol != key:
                raise DataError(f"{source}: entry {_show(key)} holds the market of "
                                f"{_label(market.symbol)}")
            out[key] = market
    elif isinstance(data, list):
        for value in data:
            try:
                market = MarketInfo.from_ccxt(value, source)
            except UnsupportedMarket:
                skipped += 1
                continue
            if market.symbol in out:
                raise DataError(f"{source}: {_label(market.symbol)} is listed twice")
            out[market.symbol] = market
    else:
        raise DataError(f"{source}: expected an object of markets (symbol → market) or a list "
                        f"of markets, got {_kind_of(data)}")
    if not out:
        why = f" (only {skipped} of types gridkit does not trade)" if skipped else ""
        raise DataError(f"{source}: no spot or linear swap markets in it{why}")
    return out


def get_market(markets: Mapping[str, MarketInfo], symbol: str,
               source: str = "the markets file") -> MarketInfo:
    """The market of ``symbol``; a ConfigError naming close matches when it is not there.

    :param markets: what :func:`load_markets` returned.
    :param symbol: a unified symbol (``"BTC/USDT"``, ``"XRP/USDT:USDT"``).
    :param source: named in the error message.
    """
    try:
        return markets[symbol]
    except KeyError:
        close = difflib.get_close_matches(symbol, list(markets), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"symbol {symbol!r} is not in {source}{hint}") from None


def markets_from_exchange_info(
    raw: str | bytes | Mapping[str, Any],
    exchange: Literal["binance", "binanceusdm"] = "binance",
    symbols: Iterable[str] | None = None,
    source: str = "exchangeInfo",
) -> dict[str, dict[str, Any]]:
    """ccxt-format markets (``{symbol: market dict}``) from a raw Binance exchangeInfo response.

    The parsing is ccxt's own: ``ccxt.binance().parse_market`` (spot, ``/api/v3/exchangeInfo``)
    or ``ccxt.binanceusdm().parse_market`` (USDⓈ-M, ``/fapi/v1/exchangeInfo``) on each raw
    symbol, then ``set_markets`` — the same two steps as ``load_markets()``
    (``fetch_markets`` → ``parse_market`` → ``set_markets`` in ccxt/binance.py), minus the
    network. So the result is exactly what ``load_markets()`` would have given for that
    response, and :func:`load_markets` reads it back after ``json.dump``.

    Offline there are no margin-pair lists (ccxt fetches them from signed margin endpoints),
    so every spot market has ``marginModes`` cross/isolated ``False``.

    :param raw: the response body (JSON text) or its parsed object.
    :param exchange: ``"binance"`` for a spot response, ``"binanceusdm"`` for USDⓈ-M.
    :param symbols: keep only these (Binance ids like ``"BTCUSDT"`` or unified symbols);
        every one must be found. ``None`` keeps all.
    :param source: named in error messages.
    """
    if exchange not in ("binance", "binanceusdm"):
        raise ValueError(f"exchange must be 'binance' or 'binanceusdm', got {exchange!r}")
    if isinstance(raw, Mapping):
        data: Any = raw
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise DataError(f"{source}: not JSON: {_first_line(e)}") from None
    rows = data.get("symbols") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise DataError(f"{source}: not a Binance exchangeInfo response (no 'symbols' list)")
    rows = [r for r in rows if isinstance(r, Mapping)]
    # The USDⓈ-M response marks every symbol with a contractType; spot never does. Parsing one
    # with the other's class gives wrong fees and symbols, so refuse the mix-up.
    is_futures = any("contractType" in r for r in rows)
    if is_futures != (exchange == "binanceusdm"):
        kind = "a USDⓈ-M futures" if is_futures else "a spot"
        other = "binanceusdm" if is_futures else "binance"
        raise DataError(f"{source}: this is {kind} exchangeInfo; use exchange={other!r}")
    try:
        import ccxt
    except ImportError:
        raise DataError("markets_from_exchange_info needs ccxt: pip install 'gridkit[ccxt]'") \
            from None
    client = getattr(ccxt, exchange)()  # constructing a ccxt client does not touch the network
    # fetch_markets() fills these from the margin endpoints before it calls parse_market().
    client.options["crossMarginPairsData"] = []
    client.options["isolatedMarginPairsData"] = []
    wanted = None if symbols is None else set(symbols)
    parsed = []
    for row in rows:
        try:
            market = client.parse_market(row)
        except Exception as e:  # ccxt raises its own error tree on a malformed record
            raise DataError(f"{source}: ccxt cannot parse symbol {_show(row.get('symbol'))}: "
                            f"{_first_line(e)}") from None
        if market is None:
            continue
        if wanted is None or market["id"] in wanted or market["symbol"] in wanted:
            parsed.append(market)
    if not parsed:
        raise DataError(f"{source}: no symbols to parse" + (" matched" if wanted else ""))
    markets = client.set_markets(parsed)
    if wanted is not None:
        found = {m["id"] for m in markets.values()} | set(markets)
        missing = sorted(wanted - found)
        if missing:
            raise DataError(f"{source}: not in the response: {', '.join(missing)}")
    return {symbol: dict(market) for symbol, market in markets.items()}


# --- order filters ----------------------------------------------------------------------------


def price_on_tick(price: float, m: MarketInfo, rel_tol: float = REL_TOL) -> bool:
    """True if ``price`` is a multiple of the tick (within ``rel_tol``, see :data:`REL_TOL`).

    :param price: a limit or stop price.
    :param m: the market.
    :param rel_tol: relative tolerance.
    """
    return _on_step(price, m.tick, rel_tol)


def qty_on_lot(qty: float, m: MarketInfo, rel_tol: float = REL_TOL) -> bool:
    """True if ``qty`` is a multiple of the lot (within ``rel_tol``).

    :param qty: an order quantity.
    :param m: the market.
    :param rel_tol: relative tolerance.
    """
    return _on_step(qty, m.lot, rel_tol)


def round_price(price: float, m: MarketInfo, side: str) -> float:
    """``price`` on the tick grid, rounded in the trader's favour: a buy down, a sell up.

    A buy rounded down never pays more than the strategy asked, a sell rounded up never
    sells for less. A price already on the grid (within :data:`REL_TOL`) is returned as the
    grid value, so rounding is idempotent. The result is the float nearest the decimal value
    (``round_price(60000.014, btc, "buy") == 60000.01``).

    :param price: finite, ≥ 0.
    :param m: the market.
    :param side: ``"buy"`` or ``"sell"``.
    """
    direction = -1 if _side(side) == "buy" else 1
    return _round_to(price, m.tick, direction, "price")


def round_qty(qty: float, m: MarketInfo) -> float:
    """``qty`` down to the lot (toward zero), so an order never exceeds what was asked.

    :param qty: finite; a negative (signed) quantity keeps its sign.
    :param m: the market.
    """
    return math.copysign(_round_to(abs(qty), m.lot, -1, "qty"), qty)


def check_order(
    side: str,
    qty: float,
    price: float | None,
    m: MarketInfo,
    *,
    is_market: bool = False,
    reduce_only: bool = False,
) -> str | None:
    """Why the exchange would reject this order, in Binance's words; ``None`` if it passes.

    The filters run in exchangeInfo's order and the first failure is returned:
    ``"Filter failure: PRICE_FILTER"`` (price not > 0, outside ``[minPrice, maxPrice]`` or
    off the tick), ``"Filter failure: LOT_SIZE"`` (qty not > 0, outside
    ``[minQty, maxQty]`` or off the lot), ``"Filter failure: MIN_NOTIONAL"`` (or
    ``NOTIONAL`` for markets with the newer filter) when ``price * qty * contract_size`` is
    below the minimum. These are the spot API's texts (error -1013); Binance USDⓈ-M reports
    the same filter failures under its own codes (e.g. -4164 for the notional), the string
    here names the filter either way.

    :param side: ``"buy"`` or ``"sell"``.
    :param qty: the quantity (base units, or contracts).
    :param price: the limit price; for a market order the reference price used for the
        notional test (``None`` skips it).
    :param m: the market.
    :param is_market: a market order: no price filter, the notional uses ``price`` as reference.
    :param reduce_only: a reduce-only order on a linear market is exempt from the minimum
        notional, as on Binance USDⓈ-M.
    """
    _side(side)
    if not is_market:
        if price is None or not math.isfinite(price) or price <= 0:
            return PRICE_FILTER
        if m.min_price is not None and price < m.min_price * (1 - REL_TOL):
            return PRICE_FILTER
        if m.max_price is not None and price > m.max_price * (1 + REL_TOL):
            return PRICE_FILTER
        if not _on_step(price, m.tick, REL_TOL):
            return PRICE_FILTER
    if not math.isfinite(qty) or qty <= 0:
        return LOT_SIZE
    if qty < m.min_qty * (1 - REL_TOL):
        return LOT_SIZE
    if m.max_qty is not None and qty > m.max_qty * (1 + REL_TOL):
        return LOT_SIZE
    if not _on_step(qty, m.lot, REL_TOL):
        return LOT_SIZE
    exempt = reduce_only and m.kind == "linear"
    if m.min_notional > 0 and not exempt and price is not None and math.isfinite(price) \
            and price > 0 and price * qty * m.contract_size < m.min_notional * (1 - REL_TOL):
        return f"Filter failure: {m.notional_filter}"
    return None


# --- helpers ----------------------------------------------------------------------------------


def _on_step(x: float, step: float, rel_tol: float) -> bool:
    if not math.isfinite(x):
        return False
    n = x / step
    return abs(n - round(n)) <= _tolerance(n, rel_tol)


def _tolerance(n: float, rel_tol: float) -> float:
    """Tolerance in steps for a value of ``n`` steps: relative, and never above 1 % of a step."""
    return min(rel_tol * abs(n), 0.01)


def _round_to(x: float, step: float, direction: int, what: str) -> float:
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"cannot round {what} {x!r}: it must be finite and >= 0")
    n = x / step
    k = round(n)
    if abs(n - k) > _tolerance(n, REL_TOL):
        k = math.floor(n) if direction < 0 else math.ceil(n)
    return round(k * step, _decimals(step))


@lru_cache(maxsize=4096)
def _decimals(step: float) -> int:
    """Decimal places of a step's shortest repr (0.01 → 2, 1e-05 → 5, 10.0 → 0)."""
    try:
        exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    except InvalidOperation:  # pragma: no cover - steps are validated finite
        return 12
    return max(0, -int(exponent))


def _side(side: str) -> str:
    s = side.lower() if isinstance(side, str) else side
    if s not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    return s


def _market_kind(market: Mapping[str, Any], where: str) -> Kind:
    mtype = market.get("type")
    if mtype == "spot":
        return "spot"
    if mtype == "swap":
        if market.get("linear") is True:
            return "linear"
        raise UnsupportedMarket(f"{where}: an inverse (coin-margined) swap is not supported; "
                                "gridkit trades spot and linear perpetuals")
    if mtype in _OTHER_TYPES:
        raise UnsupportedMarket(f"{where}: type {mtype!r} is not supported; gridkit trades "
                                "'spot' markets and linear 'swap' perpetuals")
    raise DataError(f"{where}: type {_show(mtype)} is not supported; gridkit trades 'spot' "
                    "markets and linear 'swap' perpetuals")


def _notional_filter(info: Any) -> str:
    """``NOTIONAL`` when the raw Binance record has that (newer) filter, else ``MIN_NOTIONAL``."""
    filters = info.get("filters") if isinstance(info, Mapping) else None
    types = {f.get("filterType") for f in filters if isinstance(f, Mapping)} \
        if isinstance(filters, list) else set()
    return "NOTIONAL" if "NOTIONAL" in types and "MIN_NOTIONAL" not in types else "MIN_NOTIONAL"


def _mapping(value: Any, what: str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: '{what}' is {_kind_of(value)}, expected an object")
    return value


def _number(value: Any, what: str, where: str, *, required: bool = False,
            positive: bool = False, nonneg: bool = False) -> float | None:
    """A finite float from a JSON value; None when absent; DataError when unusable."""
    if value is None:
        if required:
            raise DataError(f"{where}: {what} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: {what} is {_show(value)}, not a number")
    try:
        x = float(value)
    except OverflowError:  # an int beyond float range
        x = math.inf
    except ValueError:
        raise DataError(f"{where}: {what} is {_show(value)}, not a number") from None
    if not math.isfinite(x):
        raise DataError(f"{where}: {what} is {_show(value)}, not a finite number")
    if positive and x <= 0:
        raise DataError(f"{where}: {what} is {_show(value)}, must be > 0")
    if nonneg and x < 0:
        raise DataError(f"{where}: {what} is {_show(value)}, must be >= 0")
    return x


def _show(value: Any) -> str:
    """A short repr for an error line, safe for hostile values (huge ints, long strings)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return "a huge integer"
    if isinstance(value, (Mapping, list)):
        return _kind_of(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(symbol: str) -> str:
    return symbol if len(symbol) <= 40 else symbol[:37] + "..."


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            bool: "a boolean", int: "a number", float: "a number"}.get(type(value),
                                                                        type(value).__name__)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."
