"""The portfolio risk book: one per run, shared by the portfolio risk checks (``correlation``,
``var``, ``safe-size``), and the run summary's ``risk`` block.

What it keeps (see ``docs/concepts.rst``, *Portfolio risk*):

* **Returns, aligned by bar time.** A ring of ``window + 1`` rows, one per bar timestamp, one
  column per symbol: the bar-close log return ``r = ln(close_t / close_{t-1})`` of each symbol
  whose lane saw that timestamp (NaN where it did not: a gap). The engine hands every lane's
  events out merged by time, so all lanes see a timestamp before any sees a later one; the row
  of a timestamp is opened by the first lane that sees it and is complete once a later one
  opens. A statistic is taken over the complete rows in which every symbol has a return
  (complete-case), ``n`` of them.
* **Exposure** per symbol: the signed position value ``qty * mark`` of every position of the
  symbol in the run's one account (spot base, or a perpetual's signed size), and its
  **concentration** ``|exposure| / equity``.
* **Statistics, on a schedule.** Every ``every`` bar timestamps (when a row completes), never
  per order, from the window's simple returns ``R = exp(r) - 1``: the mean and standard
  deviation per symbol, the Pearson correlation matrix, and the portfolio value at risk of
  every method a ``var`` check asked for, at the exposures ``e0`` of that moment, with its
  gradient ``g`` (below). The cost, ``O(window * symbols**2)``, is paid once per ``every``
  bars: amortized O(1) per bar and per order.
* **Daily PnL**: equity now less equity at the first bar of the UTC day, and the worst day.

**Value at risk.** The portfolio's profit per bar in each scenario (row) ``k`` is
``P_k = sum_i e_i R_ki``; with ``c`` the confidence, ``a = 1 - c``, ``q = Phi^-1(a)`` (the
standard normal quantile), ``m`` and ``s`` the mean and sample standard deviation of ``P``,
``S`` its skewness and ``K`` its excess kurtosis (population moments), the one-bar VaR is

* historical: ``VaR = -Q_a(P)``, the empirical ``a``-quantile (linear interpolation, as
  ``numpy.quantile``) — Jorion, *Value at Risk* (3rd ed., 2007), ch. 10;
* parametric (normal): ``VaR = -(m + q s)`` — RiskMetrics Technical Document (J.P. Morgan /
  Reuters, 4th ed., 1996), §6;
* Cornish–Fisher: ``VaR = -(m + z s)`` with
  ``z = q + (q^2 - 1) S / 6 + (q^3 - 3q) K / 24 - (2q^3 - 5q) S^2 / 36`` — Zangari, "A VaR
  methodology for portfolios that include options", RiskMetrics Monitor Q1 1996; Favre and
  Galeano, *Journal of Alternative Investments* 5(2), 2002.

Over ``h`` bars it is scaled by ``sqrt(h)`` (the square-root-of-time rule of the Basel
Committee's 1996 Amendment to the Capital Accord: exact for independent, identically
distributed, zero-mean returns; it ignores the drift's ``h`` scaling and volatility clustering).

**Per order.** A check must not recompute a window per order: VaR is positively homogeneous
of degree 1 in the exposures, so the book keeps, with ``VaR(e0)``, its gradient ``g`` (finite
differences, one evaluation per symbol, at the same schedule) and answers for any exposures
``e`` with the first-order estimate ``VaR(e) ~ VaR(e0) + g . (e - e0)`` — the incremental VaR of
Jorion (ch. 7), O(symbols). It is exact along ``e0``'s direction (Euler); at ``e0 = 0`` each
``g_i`` is symbol i's stand-alone VaR per unit of exposure, so the estimate is the sum of
stand-alone VaRs, an upper bound for the normal and Cornish–Fisher methods (no diversification
credit until the next schedule).
"""

from __future__ import annotations

import math
import weakref
from statistics import NormalDist
from typing import Any

import numpy as np

#: The VaR methods a ``var`` check may name.
_DAY_MS = 86_400_000
_NAN = float("nan")


# --- the VaR of one profit series: plain functions, also for tests and other code --------------


def normal_quantile(p: float) -> float:
    """``Phi^-1(p)``, the standard normal quantile (``statistics.NormalDist``)."""
    return NormalDist().inv_cdf(p)


def var_historical(pnl: np.ndarray, confidence: float) -> Any:
    """One-period historical VaR: ``-Q_{1-c}(pnl)``, the empirical quantile with linear
    interpolation (``numpy.quantile``'s default). ``pnl`` is one series, or one per column
    (then an array of VaRs)."""
    srt = np.sort(pnl, axis=0)
    n = srt.shape[0]
    h = (n - 1) * (1.0 - confidence)
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    q = srt[lo] + (h - lo) * (srt[hi] - srt[lo])
    return -q if np.ndim(q) else float(-q)


def var_parametric(pnl: np.ndarray, confidence: float) -> Any:
    """One-period normal VaR: ``-(mean + Phi^-1(1-c) * std)``, std with ``ddof=1``; per column
    for a 2-D ``pnl``."""
    m = pnl.mean(axis=0)
    s = pnl.std(axis=0, ddof=1) if len(pnl) > 1 else 0.0 * m
    out = -(m + normal_quantile(1.0 - confidence) * s)
    return out if np.ndim(out) else float(out)


def var_cornish_fisher(pnl: np.ndarray, confidence: float) -> Any:
    """One-period Cornish–Fisher VaR: the normal quantile corrected by the skewness ``S`` and
    excess kurtosis ``K`` of ``pnl`` (population moments, as ``scipy.stats.skew`` and
    ``kurtosis`` compute by default); per column for a 2-D ``pnl``."""
    m = pnl.mean(axis=0)
    s = pnl.std(axis=0, ddof=1) if len(pnl) > 1 else 0.0 * m
    d = pnl - m
    d2 = d * d
    m2 = d2.mean(axis=0)
    flat = m2 <= 0.0
    safe = np.where(flat, 1.0, m2)
    sk = np.where(flat, 0.0, (d2 * d).mean(axis=0) / safe ** 1.5)
    ku = np.where(flat, 0.0, (d2 * d2).mean(axis=0) / (safe * safe) - 3.0)
    q = normal_quantile(1.0 - confidence)
    z = (q + (q * q - 1.0) * sk / 6.0 + (q ** 3 - 3.0 * q) * ku / 24.0
         - (2.0 * q ** 3 - 5.0 * q) * sk * sk / 36.0)
    out = -(m + z * s)
    return out if np.ndim(out) else float(out)


_VAR = {"historical": var_historical, "parametric": var_parametric,
        "cornish-fisher": var_cornish_fisher}


def portfolio_var(returns: np.ndarray, exposures: np.ndarray, method: str, confidence: float,
                  horizon: int = 1) -> Any:
    """VaR over ``horizon`` bars (``sqrt(horizon)`` scaling) of a portfolio holding
    ``exposures`` (quote currency, per column of ``returns``) given simple ``returns`` (rows =
    scenarios). ``exposures`` may be a matrix, one portfolio per column: then one VaR each."""
    return _VAR[method](returns @ exposures, confidence) * math.sqrt(horizon)


# --- the book ---------------------------------------------------------------------------------


class RiskBook:
    """The run's portfolio risk figures (module docstring): returns aligned by bar time,
    exposures, and the statistics recomputed every ``every`` bars over ``window`` bars."""

    def __init__(self, window: int = 0, every: int = 0) -> None:
        self.window = window
        self.every = every
        self.symbols: list[str] = []
        self.index: dict[str, int] = {}
        self._ret = np.full((window + 1, 0), _NAN)
        self._row = -1  # slot of the open row
        self._row_ts: int | None = None
        #: Rows (bar timestamps) opened so far.
        self.rows = 0
        #: Lane events that came with a timestamp older than the open row (not aligned).
        self.misaligned = 0
        self._last: dict[str, tuple[int, float]] = {}  # symbol -> (ts, close)
        self._positions: dict[tuple[int, int, str], tuple[Any, ...]] = {}
        self._account: Any = None
        #: VaR specs asked for: (method, confidence, horizon).
        self.specs: list[tuple[str, float, int]] = []
        # --- the scheduled figures ---
        self.recomputes = 0
        self.ready_recomputes = 0
        self.computed_at: int | None = None
        #: Complete rows the last recompute used.
        self.n = 0
        self.vol = np.zeros(0)
        self.corr = np.zeros((0, 0))
        self.e0 = np.zeros(0)
        self.equity0 = 0.0
        #: Per VaR spec: (VaR(e0), gradient g) from the last recompute.
        self.var0: dict[tuple[str, float, int], tuple[float, np.ndarray]] = {}
        #: Running mean of each symbol's volatility over the recomputes (safe-size's reference).
        self.vol_mean = np.zeros(0)
        self.max_concentration = 0.0
        self.max_var_fraction: dict[tuple[str, float, int], float] = {}
        self._day = -1
        self._day_open = _NAN
        self.daily_pnl = 0.0
        self.worst_daily_pnl = 0.0

    # --- configuration, before data -----------------------------------------------------------

    def need(self, window: int | None = None, every: int | None = None,
             var: tuple[str, float, int] | None = None) -> None:
        """A check's needs: the window grows to the largest asked for, the schedule to the
        most frequent, and a VaR spec joins the list computed at each recompute."""
        if every is not None and (self.every <= 0 or every < self.every):
            self.every = every
        if window is not None and window > self.window:
            self._grow(window)
        if var is not None and var not in self.specs:
            self.specs.append(var)

    def _grow(self, window: int) -> None:
        old, cap = self._ret, self._ret.shape[0]
        new = np.full((window + 1, old.shape[1]), _NAN)
        if self._row >= 0:  # copy the kept rows, oldest first, ending at the open row
            order = [(self._row + 1 + k) % cap for k in range(cap)]
            new[window + 1 - cap:] = old[order]
            self._row = window
        self._ret, self.window = new, window

    def _add_symbol(self, symbol: str) -> int:
        j = len(self.symbols)
        self.symbols.append(symbol)
        self.index[symbol] = j
        self._ret = np.hstack([self._ret, np.full((self._ret.shape[0], 1), _NAN)])
        for name in ("vol", "e0", "vol_mean"):
            setattr(self, name, np.append(getattr(self, name), 0.0 if name != "vol" else _NAN))
        corr = np.full((j + 1, j + 1), _NAN)
        corr[:j, :j] = self.corr
        self.corr = corr
        self.var0 = {}
        return j

    # --- per bar (O(symbols), a recompute every ``every`` rows) ---------------------------------

    def observe(self, ctx: Any) -> None:
        """Take the bar of ``ctx``'s lane; every check calls it, the first call per bar counts."""
        bar = ctx.bar
        if bar is None:
            return
        sym, ts = ctx.symbol, bar.ts
        last = self._last.get(sym)
        if last is not None and last[0] >= ts:
            return  # this lane's bar is in already
        self._account = ctx.account
        j = self.index.get(sym)
        if j is None:
            for s in ctx.run.symbols or (sym,):
                if s not in self.index:
                    self._add_symbol(s)
            j = self.index.get(sym)
            if j is None:
                j = self._add_symbol(sym)
        close = bar.close
        self._last[sym] = (ts, close)
        if self._row_ts is None or ts > self._row_ts:
            self._open_row(ts)
        elif ts < self._row_ts:
            self.misaligned += 1
            return
        if last is not None and last[1] > 0.0 and close > 0.0:
            self._ret[self._row, j] = math.log(close / last[1])
        self._daily(ts)

    def _open_row(self, ts: int) -> None:
        cap = self._ret.shape[0]
        self._row = (self._row + 1) % cap
        self._ret[self._row, :] = _NAN
        self._row_ts = ts
        self.rows += 1
        done = self.rows - 1  # rows complete now
        if 0 < self.window <= done and done % max(1, self.every) == 0:
            self.recompute()

    def _daily(self, ts: int) -> None:
        acct = self._account
        equity = acct.equity
        day = ts // _DAY_MS
        if day != self._day:
            self._day, self._day_open = day, equity
        pnl = equity - self._day_open
        self.daily_pnl = pnl
        if pnl < self.worst_daily_pnl:
            self.worst_daily_pnl = pnl

    # --- exposures ------------------------------------------------------------------------------

    def exposure(self, symbol: str, account: Any = None) -> float:
        """Signed value ``qty * mark`` of every position of ``symbol`` (quote currency)."""
        acct = account if account is not None else self._account
        if acct is None:
            return 0.0
        # The positions of a symbol, found once per account and number of positions: a
        # position the account opens later (a hedge side, another account) is not missed.
        key = (id(acct), len(acct.positions), symbol)
        ps = self._positions.get(key)
        if ps is None:
            ps = tuple(p for p in acct.positions.values() if p.symbol == symbol)
            self._positions[key] = ps
        total = 0.0
        for p in ps:
            price = p.price
            if p.qty and price == price:
                total += p.qty * price
        return total

    def exposures(self, account: Any = None) -> np.ndarray:
        """Every symbol's exposure, in column order (O(symbols))."""
        return np.array([self.exposure(s, account) for s in self.symbols])

    # --- the schedule -----------------------------------------------------------------------------

    def window_returns(self) -> np.ndarray:
        """The simple returns of the complete rows of the window, oldest first (the open row
        left out)."""
        cap = self._ret.shape[0]
        rows = [(self._row + 1 + k) % cap for k in range(cap - 1)]
        w = self._ret[rows]
        w = w[np.isfinite(w).all(axis=1)] if w.shape[1] else w[:0]
        return np.expm1(w)

    @property
    def ready(self) -> bool:
        """True once a recompute had enough complete rows (half a window, at least 3); the
        figures of the last such recompute stand until the next one."""
        return self.ready_recomputes > 0

    def recompute(self) -> None:
        """The statistics and every VaR spec, from the window, at the current exposures."""
        R = self.window_returns()
        self.n = n = len(R)
        self.recomputes += 1
        self.computed_at = self._row_ts
        if n < max(3, self.window // 2):
            return
        sd = R.std(axis=0, ddof=1)
        self.vol = sd
        self.ready_recomputes += 1
        k = self.ready_recomputes
        self.vol_mean = self.vol_mean + (sd - self.vol_mean) / k
        with np.errstate(invalid="ignore", divide="ignore"):
            self.corr = np.corrcoef(R, rowvar=False).reshape(len(self.symbols), -1)
        e0 = self.exposures()
        self.e0 = e0
        acct = self._account
        self.equity0 = acct.equity if acct is not None else 0.0
        gross = float(np.abs(e0).sum())
        eps = 0.01 * gross if gross > 0 else 1.0
        # e0 and e0 + eps in each symbol, one portfolio per column: one matrix product and
        # one vectorized VaR per spec give VaR(e0) and the finite-difference gradient.
        k = len(e0)
        E = np.repeat(e0[:, None], k + 1, axis=1)
        E[np.arange(k), np.arange(k) + 1] += eps
        for spec in self.specs:
            method, conf, h = spec
            v = np.asarray(portfolio_var(R, E, method, conf, h), dtype=float)
            v0 = float(v[0]) if gross > 0 else 0.0
            g = (v[1:] - v0) / eps
            self.var0[spec] = (v0, g)
            if self.equity0 > 0:
                f = v0 / self.equity0
                if f > self.max_var_fraction.get(spec, -math.inf):
                    self.max_var_fraction[spec] = f
        if self.equity0 > 0 and gross > 0:
            c = float(np.abs(e0).max()) / self.equity0
            self.max_concentration = max(self.max_concentration, c)

    # --- what the checks ask, O(symbols) ----------------------------------------------------------

    def var_estimate(self, spec: tuple[str, float, int], symbol: str, added: float,
                     account: Any = None) -> float | None:
        """The VaR (quote currency) of the current exposures with ``added`` more of
        ``symbol``: ``VaR(e0) + g . (e - e0)``; None before the first ready recompute."""
        got = self.var0.get(spec)
        if got is None:
            return None
        v0, g = got
        total = v0
        for i, s in enumerate(self.symbols):
            e = self.exposure(s, account)
            if s == symbol:
                e += added
            total += g[i] * (e - self.e0[i])
        return total

    def correlation(self, a: str, b: str) -> float:
        """The last scheduled correlation of two symbols' returns (NaN before it is known)."""
        i, j = self.index.get(a), self.index.get(b)
        if i is None or j is None or not self.ready:
            return _NAN
        return float(self.corr[i, j])

    # --- resume and summary -------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # The account's positions are the run's, not the book's: looked up again after a resume.
        state = dict(self.__dict__)
        state["_positions"] = {}
        state["_account"] = None
        return state

    def summary(self) -> dict[str, Any]:
        """The ``risk`` block of the run summary (JSON-able; NaN as None)."""
        def num(x: float) -> float | None:
            x = float(x)
            return x if math.isfinite(x) else None

        acct = self._account
        equity = acct.equity if acct is not None else _NAN
        ex = {s: self.exposure(s) for s in self.symbols}
        corr = {}
        if self.ready:
            for i, a in enumerate(self.symbols):
                for j in range(i + 1, len(self.symbols)):
                    corr[f"{a}|{self.symbols[j]}"] = num(self.corr[i, j])
        var = {}
        for spec in self.specs:
            method, conf, h = spec
            got = self.var0.get(spec)
            v = got[0] if got is not None else _NAN
            var[f"{method}@{conf:g}x{h}"] = {
                "var": num(v),
                "fraction": num(v / self.equity0) if got is not None and self.equity0 > 0
                else None,
                "max_fraction": num(self.max_var_fraction.get(spec, _NAN)),
            }
        return {
            "window": self.window, "every": self.every, "rows": self.rows,
            "aligned_rows": self.n, "ready": self.ready, "recomputes": self.recomputes,
            "computed_at": self.computed_at, "misaligned": self.misaligned,
            "exposure": ex,
            "concentration": {s: num(abs(v) / equity) if equity > 0 else None
                              for s, v in ex.items()},
            "max_concentration": num(self.max_concentration),
            "volatility": {s: num(self.vol[i]) for i, s in enumerate(self.symbols)}
            if self.ready else {},
            "correlation": corr, "var": var,
            "daily_pnl": num(self.daily_pnl), "worst_daily_pnl": num(self.worst_daily_pnl),
        }


# --- one book per run ---------------------------------------------------------------------------

#: id(RunInfo) -> (weak reference to it, its book, ids of the checks that share the book).
_BOOKS: dict[int, tuple[weakref.ref[Any], RiskBook, set[int]]] = {}


def risk_book(run: Any, owner: Any) -> RiskBook:
    """The risk book of the run whose :class:`~gridkit.runtime.context.RunInfo` is ``run``
    (``ctx.run``; every lane of a run shares it) for the check ``owner``: made by the first
    check that asks (in ``setup``, or lazily on its first bar), shared by the others. A check
    that asks again (the same pipeline run once more) gets a fresh book. The entry goes with
    the RunInfo. A resumed run's checks keep the book they were restored with (one pickle
    holds every check's state, so they still share one object)."""
    key = id(run)
    got = _BOOKS.get(key)
    if got is not None and got[0]() is run and id(owner) not in got[2]:
        got[2].add(id(owner))
        return got[1]
    book = RiskBook()
    if got is None or got[0]() is not run:
        weakref.finalize(run, _BOOKS.pop, key, None)
    _BOOKS[key] = (weakref.ref(run), book, {id(owner)})
    return book


def find(run: Any) -> RiskBook | None:
    """The risk book of a :class:`~gridkit.runtime.runstate.Run`, if a check made one."""
    for c in run.pipeline.risk:
        book = getattr(c, "book", None)
        if isinstance(book, RiskBook):
            return book
    return None
