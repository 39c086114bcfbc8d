"""Trade-flow features (seed 001's flow and information providers): ``cvd``, ``tbsr``, ``vpin``,
``vwap``, ``volume-profile``.

They read trade prints (``inputs = {"trades"}``; ``vwap`` can read bars instead). The taker side
of each print is known exactly (Binance's ``m`` flag, ccxt's ``side``), so no trade is classified
by a tick or bulk rule. Streaming state is plain Python, O(1) per trade (amortized: each trade
enters and leaves a window once; running sums are re-summed once per window's worth of removals,
so they never drift). The batch kernels, in :mod:`gridkit.plugins.features.kernels_flow`, repeat
the same operations in the same order, so ``batch`` equals streaming exactly.

A print whose quantity is not finite and >= 0, or whose price is not finite and > 0 (a bar, for
``vwap`` on bars, with such a volume or high/low/close) is skipped: the state is left as it was,
the previous value is repeated and the skip is counted in ``stats()``; batch does the same.

Batch columns for trade features: ``ts`` (epoch ms, int), ``price``, ``qty`` and ``side``
(+1 for a taker buy, -1 for a taker sell), one element per trade.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from math import floor, sqrt
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from gridkit.core.components import Feature
from gridkit.core.config import OptionError, at_least, fraction, option, positive
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Bar, Trade
from gridkit.data.bars import parse_interval

if TYPE_CHECKING:
    import numpy as np

NAN = float("nan")
INF = float("inf")
DAY_MS = 86_400_000

#: Window modes (shared with the numba kernels).
ALL, COUNT, SPAN, DAY = 0, 1, 2, 3

_WINDOW_DOC = ("Window: a number of events (``\"500\"``), a duration (``\"30s\"``, ``\"5m\"``, "
               "``\"1h\"``), ``\"day\"`` (the current UTC day, a session anchored at 00:00 UTC) "
               "or ``\"all\"`` (everything since the start).")


def parse_window(text: str, field: str = "window", allow: tuple[int, ...] = (ALL, COUNT, SPAN, DAY)
                 ) -> tuple[int, int]:
    """``(mode, n)`` of a window option: ``"all"``, ``"day"``, ``"500"`` (events) or ``"5m"``."""
    t = text.strip().lower()
    if t == "all":
        mode, n = ALL, 0
    elif t == "day":
        mode, n = DAY, 0
    elif t.isdigit():
        mode, n = COUNT, int(t)
        if n < 1:
            raise OptionError(field, f"a window of events must hold at least 1, got {text!r}")
    else:
        try:
            mode, n = SPAN, parse_interval(t)
        except ValueError:
            raise OptionError(field, f"not a window: {text!r} (use e.g. '500', '5m', 'day', "
                                     f"'all')") from None
    if mode not in allow:
        names = {ALL: "'all'", COUNT: "a number of events", SPAN: "a duration", DAY: "'day'"}
        raise OptionError(field, f"{text!r}: use {' or '.join(names[m] for m in allow)}")
    return mode, n


class _Window:
    """Running sums of two values over a window of events (see :func:`parse_window`).

    The same operations, in the same order, as ``kernels_flow.window_sums``.
    """

    __slots__ = ("day", "first_ts", "items", "mode", "n", "pops", "ready", "sa", "sb", "started")

    def __init__(self, mode: int, n: int) -> None:
        self.mode, self.n = mode, n
        self.items: deque[tuple[int, float, float]] = deque()
        self.sa = self.sb = 0.0
        self.pops = 0
        self.first_ts: int | None = None
        self.day = -1
        self.started = False
        self.ready = False

    def push(self, ts: int, a: float, b: float) -> bool:
        """Add one event; return whether the window is ready (full)."""
        mode = self.mode
        if mode == DAY:
            d = ts // DAY_MS
            if d != self.day:
                if self.day != -1:
                    self.started = True
                self.day = d
                self.sa = self.sb = 0.0
            self.sa = self.sa + a
            self.sb = self.sb + b
            self.ready = self.started
            return self.ready
        if mode == ALL:
            self.sa = self.sa + a
            self.sb = self.sb + b
            self.ready = True
            return True
        items = self.items
        items.append((ts, a, b))
        sa = self.sa + a
        sb = self.sb + b
        pops = self.pops
        if mode == COUNT:
            if len(items) > self.n:
                _, a0, b0 = items.popleft()
                sa = sa - a0
                sb = sb - b0
                pops += 1
            self.ready = len(items) == self.n
        else:
            if self.first_ts is None:
                self.first_ts = ts
            lim = ts - self.n
            while items[0][0] <= lim:
                _, a0, b0 = items.popleft()
                sa = sa - a0
                sb = sb - b0
                pops += 1
            if not self.ready and ts - self.first_ts >= self.n:
                self.ready = True
        if pops > 0 and pops >= len(items):
            sa = sb = 0.0
            for _, a0, b0 in items:
                sa += a0
                sb += b0
            pops = 0
        self.sa, self.sb, self.pops = sa, sb, pops
        return self.ready


def _trade_columns(columns: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    return (np.ascontiguousarray(columns["ts"], dtype=np.int64),
            np.ascontiguousarray(columns["price"], dtype=np.float64),
            np.ascontiguousarray(columns["qty"], dtype=np.float64),
            np.ascontiguousarray(columns["side"], dtype=np.float64))


class _FlowFeature(Feature):
    """Shared by the flow features: an invalid print (quantity not finite and >= 0, or price not
    finite and > 0) leaves the state untouched, repeats the previous value and is counted."""

    inputs = frozenset({"trades"})
    value: float = NAN
    skipped: int = 0

    def update(self, event: Any) -> float:
        q, p = event.qty, event.price
        if 0.0 <= q < INF and 0.0 < p < INF:
            self.value = self._update(event)
        else:
            self.skipped += 1
        return self.value

    def _update(self, event: Any) -> float:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {"invalid_skipped": self.skipped} if self.skipped else {}

    def _valid(self, columns: Mapping[str, Any]) -> Any:
        import numpy as np

        q = np.asarray(columns["qty"], dtype=np.float64)
        p = np.asarray(columns["price"], dtype=np.float64)
        return (q >= 0.0) & (q < INF) & (p > 0.0) & (p < INF)

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Batch over valid events; an invalid one repeats the previous value, as streaming."""
        import numpy as np

        valid = self._valid(columns)
        if valid.all():
            return self._batch(columns)
        n = valid.shape[0]
        part = self._batch({k: np.asarray(v)[valid] for k, v in columns.items()
                            if np.ndim(v) == 1 and len(v) == n})
        full = np.full(n, np.nan)
        full[valid] = part
        last = np.where(valid, np.arange(n), -1)
        np.maximum.accumulate(last, out=last)
        return np.where(last >= 0, full[np.maximum(last, 0)], np.nan)

    def _batch(self, columns: Mapping[str, Any]) -> Any:
        raise NotImplementedError


@frozen
class _WindowConfig:
    """Base of the Configs with a ``window`` option: checks it parses."""

    def __attrs_post_init__(self) -> None:
        parse_window(self.window)  # type: ignore[attr-defined]


class Cvd(_FlowFeature):
    """Cumulative volume delta: taker-buy volume minus taker-sell volume over a window of trades.

    ``CVD_t = Σ s_i q_i`` over the trades i in the window, where ``q_i`` is the trade's quantity
    and ``s_i`` = +1 when the taker bought, -1 when the taker sold: the *volume delta* of order
    flow (footprint) analysis, i.e. the net market order flow of Kyle (1985), *Continuous
    Auctions and Insider Trading*, Econometrica 53(6), accumulated over time.
    The taker side comes from the exchange, so no trade is classified by a tick rule.

    ``window = "all"`` (default) is the running total since the start (ready from the first
    trade); ``"500"`` sums the last 500 trades (NaN until 500 were seen); ``"5m"`` sums the trades
    of the last 5 minutes, ``(t - 5m, t]`` (NaN until 5 minutes of trades were seen); ``"day"``
    restarts at 00:00 UTC (NaN during the first, partial, day). O(1) amortized per trade.

    ``output = "flip"`` gives seed 001's *delta flip* event (its ``event-cvd-deltaflip`` topic)
    instead: the zero-line crossing of the rolling CVD. With ``C_(t-1)``, ``C_t`` the CVD after
    the previous and the current trade, the value is +1 when ``C_(t-1) <= 0 < C_t`` (net
    buying takes over), -1 when ``C_t < 0 <= C_(t-1)`` (net selling takes over), else 0 — the
    usual crossover test of a series against a level (current value beyond it, previous value
    not). NaN until two CVD values exist (the first value of the window has no predecessor);
    the comparison runs across a ``"day"`` restart too (the new session's first trade against
    the last CVD of the previous one). A print that is skipped (invalid) changes no sum, so it
    gives 0 (NaN before the first value), never a repeated flip.
    Batch columns: ``ts``, ``price``, ``qty``, ``side`` (+1 buy / -1 sell).
    """

    name = "cvd"
    inputs = frozenset({"trades"})

    @frozen
    class Config(_WindowConfig):
        window: str = option("all", doc=_WINDOW_DOC)
        output: Literal["cvd", "flip"] = option(
            "cvd", doc="``cvd``: the rolling CVD; ``flip``: +1 / -1 on the trade where it turns "
                       "positive / negative (delta flip), 0 otherwise.")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._mode, self._n = parse_window(self.config.window)
        self._w = _Window(self._mode, self._n)
        self._flip = self.config.output == "flip"
        self._last = NAN  # the previous CVD value (flip output)
        self.ready = False

    def update(self, event: Any) -> float:
        if not self._flip:
            return super().update(event)
        q, p = event.qty, event.price
        if 0.0 <= q < INF and 0.0 < p < INF:
            self.value = self._update(event)
        else:  # no sum moved: no flip (NaN stays NaN before the first value)
            self.skipped += 1
            self.value = 0.0 if self.value == self.value else NAN
        return self.value

    def _update(self, trade: Trade) -> float:
        q = trade.qty
        w = self._w
        if not w.push(trade.ts, q if trade.side == "buy" else -q, 0.0):
            return NAN
        cvd = w.sa
        if not self._flip:
            self.ready = True
            return cvd
        prev, self._last = self._last, cvd
        if prev != prev:
            return NAN
        self.ready = True
        if cvd > 0.0 and prev <= 0.0:
            return 1.0
        if cvd < 0.0 and prev >= 0.0:
            return -1.0
        return 0.0

    def batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """As streaming: with ``output = "flip"`` an invalid print gives 0, not a repeat."""
        out = super().batch(columns)
        if self._flip:
            import numpy as np

            valid = self._valid(columns)
            if not valid.all():
                out = np.where(valid | np.isnan(out), out, 0.0)
        return out

    def _batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels_flow import window_sums

        ts, _, qty, side = _trade_columns(columns)
        signed = np.where(side > 0, qty, -qty)
        sa, _, ready = window_sums(ts, signed, np.zeros_like(qty), self._mode, self._n)
        cvd = np.where(ready, sa, np.nan)
        if not self._flip:
            return cvd
        prev = np.empty_like(cvd)
        prev[:1] = np.nan
        prev[1:] = cvd[:-1]
        out = np.where((cvd > 0.0) & (prev <= 0.0), 1.0,
                       np.where((cvd < 0.0) & (prev >= 0.0), -1.0, 0.0))
        out[np.isnan(cvd) | np.isnan(prev)] = np.nan
        return out


class Tbsr(_FlowFeature):
    """Taker buy/sell ratio: the share of the window's traded volume bought by takers.

    ``TBSR = B / (B + S)`` with B, S the taker-buy and taker-sell volumes of the trades in the
    window: in [0, 1], 0.5 when both sides traded the same volume (the taker buy share of
    Easley, López de Prado & O'Hara 2012, before taking ``|B - S|``). ``form = "ratio"`` gives
    ``B / S`` instead, as Binance's *taker buy/sell volume* statistic (``buySellRatio``,
    ``GET /futures/data/takerlongshortRatio``): in [0, inf), 1 when balanced, inf when nothing was
    sold. NaN while the window is not full and when its volume is 0. Window as for ``cvd``.
    Rolling sums that a rounding error leaves below 0 count as 0. O(1) amortized per trade.
    Batch columns: ``ts``, ``price``, ``qty``, ``side`` (+1 buy / -1 sell).
    """

    name = "tbsr"
    inputs = frozenset({"trades"})

    @frozen
    class Config(_WindowConfig):
        window: str = option("5m", doc=_WINDOW_DOC)
        form: Literal["share", "ratio"] = option(
            "share", doc="``share``: B/(B+S), in [0, 1]; ``ratio``: B/S, in [0, inf).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._mode, self._n = parse_window(self.config.window)
        self._w = _Window(self._mode, self._n)
        self._share = self.config.form == "share"
        self.ready = False

    def _update(self, trade: Trade) -> float:
        q = trade.qty
        w = self._w
        if trade.side == "buy":
            ok = w.push(trade.ts, q, 0.0)
        else:
            ok = w.push(trade.ts, 0.0, q)
        if not ok:
            return NAN
        self.ready = True
        buy = w.sa if w.sa > 0.0 else 0.0
        sell = w.sb if w.sb > 0.0 else 0.0
        if self._share:
            total = buy + sell
            return buy / total if total > 0.0 else NAN
        if sell > 0.0:
            return buy / sell
        return float("inf") if buy > 0.0 else NAN

    def _batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels_flow import window_sums

        ts, _, qty, side = _trade_columns(columns)
        buys = np.where(side > 0, qty, 0.0)
        sells = np.where(side > 0, 0.0, qty)
        sa, sb, ready = window_sums(ts, buys, sells, self._mode, self._n)
        buy = np.where(sa > 0.0, sa, 0.0)
        sell = np.where(sb > 0.0, sb, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self._share:
                total = buy + sell
                out = np.where(total > 0.0, buy / total, np.nan)
            else:
                out = np.where(sell > 0.0, buy / sell, np.where(buy > 0.0, np.inf, np.nan))
        return np.where(ready, out, np.nan)


class Vwap(_FlowFeature):
    """Volume-weighted average price over a rolling window or since the UTC day's open.

    ``VWAP = Σ p_i q_i / Σ q_i`` over the window (Berkowitz, Logue & Noser 1988, *The Total Cost
    of Transactions on the NYSE*, J. Finance 43(1)). ``input = "trades"`` (default) weighs each
    trade's price by its quantity; ``input = "bars"`` weighs each bar's typical price
    ``(high + low + close) / 3`` by its volume, as charting packages do. ``window = "day"``
    (default) is the session VWAP anchored at 00:00 UTC: NaN during the first day of data, which
    is seen only in part; a duration (``"1h"``) or a count (``"500"``) gives a rolling VWAP, NaN
    until the window is full. NaN while the window's volume is 0. O(1) amortized per event.
    Batch columns: ``ts``, ``price``, ``qty``, ``side`` for trades; ``ts``, ``high``, ``low``,
    ``close``, ``volume`` for bars.
    """

    name = "vwap"
    inputs = frozenset({"trades"})

    @frozen
    class Config(_WindowConfig):
        window: str = option("day", doc=_WINDOW_DOC)
        input: Literal["trades", "bars"] = option(
            "trades", doc="Events read: ``trades`` (price × quantity) or ``bars`` "
                          "(typical price × volume).")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._mode, self._n = parse_window(self.config.window)
        self._w = _Window(self._mode, self._n)
        self._bars = self.config.input == "bars"
        self.inputs = frozenset({self.config.input})  # type: ignore[misc]
        self.ready = False

    def update(self, event: Any) -> float:
        if not self._bars:
            return super().update(event)
        v, h, lo, c = event.volume, event.high, event.low, event.close
        if 0.0 <= v < INF and 0.0 < h < INF and 0.0 < lo < INF and 0.0 < c < INF:
            self.value = self._update(event)
        else:
            self.skipped += 1
        return self.value

    def _valid(self, columns: Mapping[str, Any]) -> Any:
        if not self._bars:
            return super()._valid(columns)
        import numpy as np

        ok = np.ones(len(columns["volume"]), dtype=bool)
        for name, low in (("volume", -1.0), ("high", 0.0), ("low", 0.0), ("close", 0.0)):
            x = np.asarray(columns[name], dtype=np.float64)
            ok &= (x < INF) & ((x >= 0.0) if low < 0 else (x > 0.0))
        return ok

    def _update(self, event: Trade | Bar) -> float:
        w = self._w
        if self._bars:
            v = event.volume  # type: ignore[union-attr]
            tp = (event.high + event.low + event.close) / 3.0  # type: ignore[union-attr]
            ok = w.push(event.ts, tp * v, v)
        else:
            q = event.qty  # type: ignore[union-attr]
            ok = w.push(event.ts, event.price * q, q)  # type: ignore[union-attr]
        if not ok:
            return NAN
        self.ready = True
        return w.sa / w.sb if w.sb > 0.0 else NAN

    def _batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        from gridkit.plugins.features.kernels_flow import window_sums

        ts = np.ascontiguousarray(columns["ts"], dtype=np.int64)
        if self._bars:
            high, low, close, vol = (np.ascontiguousarray(columns[c], dtype=np.float64)
                                     for c in ("high", "low", "close", "volume"))
            a = (high + low + close) / 3.0 * vol
            b = vol
        else:
            _, price, qty, _ = _trade_columns(columns)
            a = price * qty
            b = qty
        sa, sb, ready = window_sums(ts, a, b, self._mode, self._n)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(sb > 0.0, sa / sb, np.nan)
        return np.where(ready, out, np.nan)


class Vpin(_FlowFeature):
    """Volume-synchronized probability of informed trading over the last n volume buckets.

    Easley, López de Prado & O'Hara (2012), *Flow Toxicity and Liquidity in a High-frequency
    World*, Review of Financial Studies 25(5): trades fill buckets of exactly ``V`` =
    ``bucket_volume`` (a trade that overfills a bucket is split, the rest opens the next one);
    for each full bucket τ, ``OI_τ = |V_buy - V_sell| / V``; ``VPIN = (1/n) Σ OI_τ`` over the last
    n = ``buckets`` full buckets. Unlike the paper's bulk volume classification, each trade's
    volume goes to the side the exchange reports for its taker (exact, not estimated). The
    value after each trade is the VPIN of the buckets completed so far: NaN until n buckets are
    full, in [0, 1] (rounding clamped). O(1) per trade plus O(1) per bucket it completes; the
    rolling sum of the n imbalances is re-summed once per n buckets.

    ``output = "zscore"`` gives seed 001's *VPIN z-score* instead: with x_1..x_m the VPIN values
    at the last m = ``zscore_window`` bucket closes, ``z = (x_m - mean) / sd`` (sample standard
    deviation, ``m - 1`` in the denominator; z = 0 when the variance is at rounding level,
    i.e. ``var <= 1e-12 * mean^2``), NaN until m VPIN values exist; the sums are rolling and
    re-summed once per m buckets. High z = flow more toxic than usual (Easley, López de Prado &
    O'Hara 2011, *The Microstructure of the "Flash Crash"*, J. Portfolio Management 37(2), read
    VPIN against its own history, as its CDF).
    Batch columns: ``ts``, ``price``, ``qty``, ``side`` (+1 buy / -1 sell).
    """

    name = "vpin"
    inputs = frozenset({"trades"})

    @frozen
    class Config:
        bucket_volume: float = option(
            doc="Volume per bucket V, in base units (the paper uses 1/50 of the average daily "
                "volume).", validator=positive())
        buckets: int = option(50, doc="Number n of buckets averaged.", validator=at_least(1))
        output: Literal["vpin", "zscore"] = option(
            "vpin", doc="``vpin``: the VPIN, in [0, 1]; ``zscore``: its z-score against the "
                        "last ``zscore_window`` VPIN values.")
        zscore_window: int = option(100, doc="Number m of VPIN values (one per bucket) the "
                                             "z-score compares with.", validator=at_least(2))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._v = float(self.config.bucket_volume)
        self._n = n = self.config.buckets
        self.ring = [0.0] * n
        self.s = 0.0
        self.done = 0  # full buckets
        self.slot = 0
        self.room = self._v
        self.vb = self.vs = 0.0
        self.value = NAN
        self.ready = False
        self._z = self.config.output == "zscore"
        self._m = m = self.config.zscore_window
        self.zring = [0.0] * m
        self.z1 = self.z2 = 0.0
        self.zk = 0  # VPIN values pushed
        self.zslot = 0

    def _zscore(self, x: float) -> float:
        """Push one VPIN value; its z-score against the last m, or NaN until m exist."""
        m, ring, slot = self._m, self.zring, self.zslot
        if self.zk >= m:
            old = ring[slot]
            z1 = self.z1 + x - old
            z2 = self.z2 + x * x - old * old
        else:
            z1 = self.z1 + x
            z2 = self.z2 + x * x
        ring[slot] = x
        self.zk += 1
        if slot == m - 1:
            z1 = z2 = 0.0
            for y in ring:
                z1 += y
                z2 += y * y
            self.zslot = 0
        else:
            self.zslot = slot + 1
        self.z1, self.z2 = z1, z2
        if self.zk < m:
            return NAN
        mean = z1 / m
        var = (z2 - z1 * z1 / m) / (m - 1)
        if var > 1e-12 * (mean * mean) and var > 0.0:
            return (x - mean) / sqrt(var)
        return 0.0

    def _update(self, trade: Trade) -> float:
        q = trade.qty
        if not q > 0.0:
            return self.value
        buy = trade.side == "buy"
        room = self.room
        if q >= room:
            v, n, ring = self._v, self._n, self.ring
            vb, vs, s, done, slot = self.vb, self.vs, self.s, self.done, self.slot
            while q >= room:
                # The bucket holds exactly v: the side that fills it gets v less the other
                # side (not its running sum plus the room, which can round below v).
                if buy:
                    vb = v - vs
                else:
                    vs = v - vb
                q = q - room
                oi = abs(vb - vs) / v
                if oi > 1.0:
                    oi = 1.0
                if done >= n:
                    s = s + oi - ring[slot]
                else:
                    s = s + oi
                ring[slot] = oi
                done += 1
                if slot == n - 1:
                    s = 0.0
                    for x in ring:
                        s += x
                    slot = 0
                else:
                    slot += 1
                vb = vs = 0.0
                room = v
                if done >= n:
                    value = s / n
                    value = 1.0 if value > 1.0 else (0.0 if value < 0.0 else value)
                    if self._z:
                        value = self._zscore(value)
                    if value == value:
                        self.ready = True
                    self.value = value
            self.vb, self.vs, self.s, self.done, self.slot = vb, vs, s, done, slot
        if q > 0.0:
            if buy:
                self.vb += q
            else:
                self.vs += q
            room = room - q
        self.room = room
        return self.value

    def _batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_flow import vpin_batch

        _, _, qty, side = _trade_columns(columns)
        return vpin_batch(qty, side, self._v, self._n, self._z, self._m)


class VolumeProfile(_FlowFeature):
    """Where the last trade's price sits in a rolling volume profile (POC, value area).

    Its distance from the point of control, from the value area's high or low, or its position
    in the value area.

    The volume profile of Steidlmayer's Market Profile (Steidlmayer & Koy 1986, *Markets and
    Market Logic*; Dalton, Jones & Dalton 1990, *Mind Over Markets*): the volume traded in each
    price bin over the window. Bins are fixed for the run, relative to the first trade's price
    p0: bin ``k = floor((p - p0) / w)`` with width ``w = p0 * bin_bps / 10000``. The *point of
    control* (POC) is the bin with the most volume (ties: the lower bin).

    The *value area* is the price range holding the central ``value_area`` share ``f`` (70 %,
    about one standard deviation) of the window's volume ``V``: the equal-tailed interval of the
    volume distribution over the bins, cut at its ``(1 - f) / 2`` and ``(1 + f) / 2`` volume
    quantiles, which is how "the middle 70 % of the volume" of Steidlmayer's value area (about
    one standard deviation each side of a normal profile's centre) reads as a quantile band.
    With ``a = (1 - f) / 2``: its bottom bin ``k_val`` is the lowest bin whose cumulative volume
    from below exceeds ``a V`` (so at most ``a V`` lies under it), its top bin ``k_vah`` the
    highest bin whose cumulative volume from above exceeds ``a V``; ``k_val <= k_vah``, and the
    bins between hold at least ``f V``. The value area high is the top edge
    ``VAH = p0 + (k_vah + 1) w``, the value area low the bottom edge ``VAL = p0 + k_val w``.
    (CBOT's Market Profile manuals, 1984-1991, and Dalton, Jones & Dalton, ch. 1, grow the
    value area greedily from the POC, a price row or two at a time toward the side with more
    volume. That procedure is path dependent: one trade that changes one bin's volume can
    change which side every later step takes, and so move an edge by any number of bins, so it
    cannot be kept up to date in O(1). The quantile band can: one trade moves each cut by the
    volume it adds or removes. On a single-peaked profile both bands are close; they differ
    when the profile has two peaks, and a POC holding less than ``a V`` may lie outside the
    quantile band.)

    ``output`` chooses the value (one number per trade: use several instances, with
    ``key = ...``, for several outputs); positive always means trading above the level:

    - ``poc-distance`` (default): from the POC bin's centre ``c = p0 + (k_poc + 1/2) w``:
      ``10000 (p - c) / c`` in bps (``unit = "bps"``), or ``k - k_poc`` in bins;
    - ``vah-distance``: ``10000 (p - VAH) / VAH`` in bps, or ``k - k_vah`` in bins (0: in the
      value area's top bin);
    - ``val-distance``: ``10000 (p - VAL) / VAL`` in bps, or ``k - k_val`` in bins;
    - ``value-area-position``: ``(p - VAL) / (VAH - VAL)``: in [0, 1] inside the value area,
      below 0 under it, above 1 over it (``unit`` does not apply).

    NaN until the window is full. Each trade adds its quantity to its bin and the trades
    leaving the window take theirs out, so the POC moves in O(1) except when the POC bin itself
    loses volume: then the occupied bins are rescanned. The value area is incremental: the
    window's volume ``V`` and the volumes under ``k_val`` and over ``k_vah`` are running sums
    that each trade adds to and each departure subtracts from; then each edge steps, from where
    it was, over the bins whose volume has crossed its cut (and the window's lowest and
    highest occupied bins step up or down as bins empty). A trade costs O(1) plus the bins
    these steps cross. A cut moves only by the volume that entered and left, so on a trade
    tape the edges barely move: on the real trade sets of the tests (3,000-trade window) the
    two edges together step 0.001 to 0.02 bins per trade on average with 10 bps bins, 0.02 to
    0.34 with 0.5 bps bins, whatever the window's span of bins; only a price jump across a wide
    empty range, or one trade holding much of the window's volume, makes an edge step further
    (by the bins it crosses, once). The bin volumes and the three sums are re-summed from the
    window's trades once per window's worth of departures (O(1) per trade, amortized) so they
    never drift; where a cumulative volume is within rounding of ``a V``, the rounding of
    these sums decides which side of the cut its bin falls.
    Batch columns: ``ts``, ``price``, ``qty``, ``side``.
    """

    name = "volume-profile"
    inputs = frozenset({"trades"})

    @frozen
    class Config:
        window: str = option("1h", doc="Window: a number of trades (``\"5000\"``) or a duration "
                                       "(``\"30m\"``, ``\"1h\"``).")
        bin_bps: float = option(10.0, doc="Bin width, in basis points of the first price.",
                                validator=positive())
        unit: Literal["bps", "bins"] = option(
            "bps", doc="Unit of the distances: ``bps`` of the level's price, or whole ``bins``.")
        output: Literal["poc-distance", "vah-distance", "val-distance",
                        "value-area-position"] = option(
            "poc-distance", doc="Distance from the point of control, from the value area high "
                                "or low, or the position in [VAL, VAH] (0 at VAL, 1 at VAH).")
        value_area: float = option(
            0.70, doc="Share of the window's volume the value area holds (CBOT: 0.70).",
            validator=fraction())

        def __attrs_post_init__(self) -> None:
            parse_window(self.window, allow=(COUNT, SPAN))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._mode, self._n = parse_window(self.config.window, allow=(COUNT, SPAN))
        self._bins = self.config.unit == "bins"
        self._out = _VP_OUTPUTS.index(self.config.output)
        self._frac = float(self.config.value_area)
        self._alpha = 0.5 * (1.0 - self._frac)
        self.items: deque[tuple[int, int, float]] = deque()
        self.vol: dict[int, float] = {}
        self.cnt: dict[int, int] = {}
        self.p0 = NAN
        self.width = NAN
        self.poc = 0
        self.pops = 0
        self.lo = self.hi = 0  # the window's lowest and highest occupied bins
        self.val = self.vah = 0  # the value area's bottom and top bins
        self.total = 0.0  # the window's volume
        self.below = 0.0  # its volume in the bins under val
        self.above = 0.0  # ... and over vah
        self.first_ts: int | None = None
        self.ready = False

    def _rescan(self) -> None:
        vol = self.vol
        poc = self.items[0][1]
        best = vol[poc]
        for b, v in vol.items():
            if v > best or (v == best and b < poc):
                poc, best = b, v
        self.poc = poc

    def value_area(self) -> tuple[int, int]:
        """``(k_val, k_vah)``: the bottom and top bins of the current value area (kept up to
        date by each trade when ``output`` is not ``poc-distance``)."""
        return self.val, max(self.vah, self.val)

    def _edges(self) -> None:
        """Move the value area's edges to the current profile: each steps over the bins whose
        volume now lies on the other side of its tail's cut (``kernels_flow._edges``: the same
        float operations in the same order)."""
        get = self.vol.get
        lo, hi = self.lo, self.hi
        target = self._alpha * self.total
        val, below = self.val, self.below
        if val < lo:
            val, below = lo, 0.0
        while below > target and val > lo:
            val -= 1
            below = below - get(val, 0.0)
        while val < hi:
            v = below + get(val, 0.0)
            if v > target:
                break
            below = v
            val += 1
        vah, above = self.vah, self.above
        if vah > hi:
            vah, above = hi, 0.0
        while above > target and vah < hi:
            vah += 1
            above = above - get(vah, 0.0)
        while vah > lo:
            v = above + get(vah, 0.0)
            if v > target:
                break
            above = v
            vah -= 1
        self.val, self.below, self.vah, self.above = val, below, vah, above

    def _update(self, trade: Trade) -> float:
        price, q, ts = trade.price, trade.qty, trade.ts
        if self.first_ts is None:
            self.first_ts = ts
            self.p0 = price
            self.width = price * self.config.bin_bps / 10_000.0
            first = True
        else:
            first = False
        b = floor((price - self.p0) / self.width)
        vol, cnt, items = self.vol, self.cnt, self.items
        edges = self._out != 0
        if first:
            self.lo = self.hi = self.val = self.vah = b
        items.append((ts, b, q))
        vol[b] = vol.get(b, 0.0) + q
        cnt[b] = cnt.get(b, 0) + 1
        if b < self.lo:
            self.lo = b
        elif b > self.hi:
            self.hi = b
        if edges:
            self.total = self.total + q
            if b < self.val:
                self.below = self.below + q
            if b > self.vah:
                self.above = self.above + q
        poc = self.poc
        if first:
            poc = b
        elif b != poc:
            v, best = vol[b], vol[poc]
            if v > best or (v == best and b < poc):
                poc = b
        self.poc = poc
        rescan = False
        pops = self.pops
        if self._mode == COUNT:
            if len(items) > self._n:
                _, o, q0 = items.popleft()
                rescan |= self._remove(o, q0, edges)
                pops += 1
            ready = len(items) == self._n
        else:
            lim = ts - self._n
            while items[0][0] <= lim:
                _, o, q0 = items.popleft()
                rescan |= self._remove(o, q0, edges)
                pops += 1
            ready = self.ready or ts - self.first_ts >= self._n
        while self.lo not in cnt:  # the newest trade's bin is occupied: both loops stop
            self.lo += 1
        while self.hi not in cnt:
            self.hi -= 1
        if pops > 0 and pops >= len(items):
            # Re-sum once per window's worth of departures: the sums never drift.
            for key in vol:
                vol[key] = 0.0
            for _, o, q0 in items:
                vol[o] = vol[o] + q0
            if edges:
                val, vah = self.val, self.vah
                total = below = above = 0.0
                for _, o, q0 in items:
                    total = total + q0
                    if o < val:
                        below = below + q0
                    if o > vah:
                        above = above + q0
                self.total, self.below, self.above = total, below, above
            pops = 0
            rescan = True
        self.pops = pops
        if rescan:
            self._rescan()
        if edges:
            self._edges()
        self.ready = ready
        if not ready:
            return NAN
        out = self._out
        p0, width = self.p0, self.width
        if out == 0:
            if self._bins:
                return float(b - self.poc)
            centre = p0 + (self.poc + 0.5) * width
            return 10_000.0 * (price - centre) / centre
        val, vah = self.value_area()
        if out == 3:
            low = p0 + val * width
            return (price - low) / (p0 + (vah + 1) * width - low)
        if out == 1:
            if self._bins:
                return float(b - vah)
            level = p0 + (vah + 1) * width
        else:
            if self._bins:
                return float(b - val)
            level = p0 + val * width
        return 10_000.0 * (price - level) / level

    def _remove(self, b: int, q: float, edges: bool) -> bool:
        """Take a departing trade out of its bin; True if that bin was the POC."""
        n = self.cnt[b] - 1
        if n == 0:
            del self.cnt[b]
            del self.vol[b]
        else:
            self.cnt[b] = n
            self.vol[b] = self.vol[b] - q
        if edges:
            self.total = self.total - q
            if b < self.val:
                self.below = self.below - q
            if b > self.vah:
                self.above = self.above - q
        return b == self.poc

    def _batch(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        from gridkit.plugins.features.kernels_flow import volume_profile_batch

        ts, price, qty, _ = _trade_columns(columns)
        return volume_profile_batch(ts, price, qty, self._mode, self._n,
                                    float(self.config.bin_bps), self._bins, self._out,
                                    self._alpha)


#: ``volume-profile`` outputs, in the order of the kernel's ``output`` code.
_VP_OUTPUTS = ("poc-distance", "vah-distance", "val-distance", "value-area-position")


@hookimpl
def gridkit_register_features(register: Any) -> None:
    for cls in (Cvd, Tbsr, Vwap, Vpin, VolumeProfile):
        register(cls)
