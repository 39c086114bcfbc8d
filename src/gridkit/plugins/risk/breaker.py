"""The kill switch: ``circuit-breaker``, and the halt requests an operator leaves in a run's
store (``gridkit halt`` / ``gridkit resume-trading``, :mod:`gridkit.plugins.halt_commands`)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.components import RiskCheck
from gridkit.core.config import at_least, fraction, option, optional, positive
from gridkit.core.errors import ConfigError
from gridkit.runtime.context import Context, RunInfo

_log = logging.getLogger("gridkit.risk")



def latest_request(conn: sqlite3.Connection) -> tuple[int, str, str] | None:
    """The newest operator request in a store: (id, ``halt`` | ``resume``, reason), or None
    (no request yet, or no table: nobody asked). One indexed row: O(1)."""
    try:
        row = conn.execute("SELECT id, action, reason FROM halt_requests "
                           "ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return None
        raise
    return (int(row[0]), str(row[1]), str(row[2] or "")) if row is not None else None


def store_problem(path: Path) -> str | None:
    """Why ``path`` cannot take operator requests (one line), or None: it is a gridkit store."""
    from gridkit.runtime.store_schema import is_gridkit_store

    if not path.is_file():
        return f"{path}: no such store (give the --db file a run records into)"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as err:
        return f"{path}: cannot open it: {err}"
    try:
        ours = is_gridkit_store(conn)
    except sqlite3.DatabaseError:
        ours = False
    finally:
        conn.close()
    return None if ours else f"{path} is not a gridkit store (no gridkit mark or runs table)"


def write_request(path: Path, action: str, reason: str,
                  timeout: float = 10.0) -> tuple[int, int | None, bool]:
    """Record an operator request (``halt`` or ``resume``) in the store at ``path``, in one
    transaction (the table is made if new); return (request id, the store's last run id,
    whether that run's pipeline has a ``circuit-breaker`` to act on it).

    Raises :class:`gridkit.DataError` with one line for a file that is not a gridkit store.
    """
    from gridkit.core.errors import DataError

    problem = store_problem(path)
    if problem is not None:
        raise DataError(problem + ("; nothing written" if path.is_file() else ""))
    try:
        conn = sqlite3.connect(str(path), timeout=timeout)
    except sqlite3.Error as err:
        raise DataError(f"{path}: cannot open it: {err}") from None
    try:
        # The table of requests (one row per ``gridkit halt`` or ``resume-trading``; the
        # newest stands), made by sqlite-utils from its declaration on the first request.
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'halt_requests'"
                            ).fetchone():
            from gridkit.runtime.store_schema import HALT_REQUESTS, migrate

            migrate(conn, (HALT_REQUESTS,))
        with conn:
            last, config = conn.execute("SELECT id, config FROM runs ORDER BY id DESC "
                                        "LIMIT 1").fetchone() or (None, None)
            cur = conn.execute("INSERT INTO halt_requests (requested, action, reason, run_id) "
                               "VALUES (?, ?, ?, ?)", (time.time(), action, reason, last))
        return int(cur.lastrowid or 0), last, '"circuit-breaker"' in (config or "")
    except sqlite3.OperationalError as err:  # locked by a writer for ``timeout``, read-only
        raise DataError(f"{path}: cannot write the request ({err}); nothing written, try "
                        f"again") from None
    finally:
        conn.close()


class CircuitBreaker(RiskCheck):
    """Kill switch: halts on an equity drop, rejections in a row, a price gap or an operator.

    A halt cancels every order and places none; it lasts, across restarts, until an operator
    runs ``gridkit resume-trading`` (see ``gridkit halt``).

    Triggers, each checked at every bar of every symbol (those whose option is unset are off):

    * **equity drop** — with ``E`` the account's equity marked at the bar's close and ``M`` the
      highest equity marked at the closes of the symbol's last ``window`` bars (this one
      included): halts when ``(M - E) / M >= max_drop``. O(1) amortized (a monotonic queue).
    * **rejections in a row** — the orders the ledger saw end rejected (by the executor, the
      exchange or a risk check) since the last bar in which an order went through (the count
      of live and ended orders, less the rejected ones, grew): a bar where some orders are
      refused and others go live (a grid short of cash for its lowest levels) is not a streak.
      Halts when the streak reaches ``max_rejections``. The ledger's counts are read once per
      bar (O(1)); refusals by other risk checks count too, so set it above what they refuse
      in a row while nothing else goes out.
    * **price gap** — with ``C`` the symbol's previous close: halts when ``max(|open - C|,
      |close - C|) / C > max_gap``.
    * **operator** — ``gridkit halt --db PATH`` leaves a request in the run's store (``db``,
      default: the file the run records into); the check reads the newest request every
      ``poll_bars`` bars or ``poll_seconds`` seconds, whichever comes first (one indexed row
      per poll). Requests are for the run that is on: a run started afresh (not ``--resume``)
      passes over those already in the store, and says so in one warning line if the newest
      is a halt nobody lifted; a resumed run acts on every request made since its last
      commit. A ``db`` that is not a gridkit store is refused before the run; a store the run
      cannot read during it is one warning line (the run goes on; ``poll_errors`` counts).

    While the run is halted (by this check or any other, a liquidation included) the check
    polls on the same schedule, and ``gridkit resume-trading --db PATH`` lifts the halt: the
    engine journals it and proposes again the orders the halt cancelled (vetted by every risk
    check). The halt is part of the run's saved state, so a halted run that is resumed
    (``gridkit run --resume``) stays halted until then. A lift starts the equity window and
    the rejection streak afresh. Source: the exchanges' market-wide circuit breakers (NYSE
    Rule 7.12: a 7 % / 13 % / 20 % fall of the S&P 500 halts trading) applied to one account,
    and seeds 000/002/003 (``circuit_breaker``, emergency stop, manual kill switch).
    """

    name = "circuit-breaker"

    @frozen
    class Config:
        max_drop: float | None = option(None, doc="Equity drop within window that halts "
                                                  "(0.05 = 5 %).", validator=optional(fraction()))
        window: int = option(60, doc="Bars over which max_drop is measured.",
                             validator=at_least(1))
        max_rejections: int | None = option(None, doc="Rejected orders in a row that halt.",
                                            validator=optional(at_least(1)))
        max_gap: float | None = option(None, doc="Bar-to-bar price move that halts "
                                                 "(0.1 = 10 %).", validator=optional(positive()))
        operator: bool = option(True, doc="Obey gridkit halt / resume-trading requests in "
                                          "the store.")
        db: str | None = option(None, doc="Store to poll for operator requests (relative to "
                                          "pipeline.toml's folder); default: the run's store.")
        poll_bars: int = option(60, doc="Poll the store at least every this many bars.",
                                validator=at_least(1))
        poll_seconds: float = option(5.0, doc="... and at least every this many seconds.",
                                     validator=positive())

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.halts: dict[str, int] = {}
        self.lifts = 0
        self.polls = 0
        self.poll_errors = 0
        self.last_halt: str | None = None
        #: The id of the newest operator request acted on or passed over.
        self.seen = 0
        self._in_halt = False
        self._peaks: dict[str, deque[tuple[int, float]]] = {}
        self._prev: dict[str, tuple[int, float]] = {}
        self._streak = 0
        self._ok = self._rej = -1
        self._since_poll = 0
        self._db: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._polled_at = float("-inf")
        self._fresh = True
        self._warned = False
        self._standing: tuple[int, str, str] | None = None

    def conflicts(self, others: Sequence[RiskCheck]) -> list[str]:
        # The window's peak is never above the run's, so a drop within the window is never
        # more than the drawdown: at or above the drawdown's limit this trigger cannot fire.
        drop = self.config.max_drop
        return [f"circuit-breaker max_drop {drop:.2%} is not below the drawdown limit "
                f"{o.config.limit:.2%}: drawdown halts first, so the equity-drop trigger never "
                f"fires" for o in others
                if o.name == "drawdown" and drop is not None and drop >= o.config.limit]

    # -- the store --------------------------------------------------------------------------

    def validate(self, run: RunInfo) -> None:
        c = self.config
        if c.operator and c.db:
            path = run.resolve(c.db)
            # A file not made yet is the run's own store before its first run: fine.
            problem = (store_problem(path) if path.exists() or not path.parent.is_dir()
                       else None)
            if problem is not None:
                raise ConfigError(f"circuit-breaker db: {problem}: gridkit halt could not "
                                  f"reach this run")

    def setup(self, run: RunInfo) -> None:
        c = self.config
        if c.operator:
            self._db = str(run.resolve(c.db)) if c.db else run.store
            if self._db is None and run.mode != "backtest":
                _log.warning("circuit-breaker: the run keeps no store (no --db or [store]), so "
                             "gridkit halt cannot reach it; its other triggers stand")
        self._polled_at = float("-inf")  # a (re)started run polls at its first bar
        self._fresh = True  # (until its first bar of trading)
        self._warned = False
        # Requests already in the store were for earlier runs: a fresh run starts after them
        # (a resumed run puts back its own ``seen`` when its state is restored, after this).
        got = self._read()
        self._standing = got if got is not None and got[1] == "halt" else None
        if got is not None:
            self.seen = got[0]

    def _say_standing(self, ctx: Context) -> None:
        """At the first bar: one line if the store's newest request is a halt this run passed
        over (a fresh run; a resumed one that obeyed it is halted, and says nothing)."""
        got, self._standing = self._standing, None
        if got is not None and self.seen == got[0] and not ctx.halted:
            _log.warning("circuit-breaker: %s holds an unlifted halt (request %d: %s) of an "
                         "earlier run; this run does not take it over (gridkit halt again to "
                         "halt it)", self._db, got[0], got[2] or "no reason given")

    def _read(self) -> tuple[int, str, str] | None:
        """The newest request in the store (None: none, no store yet, or unreadable now)."""
        if self._db is None:
            return None
        try:
            if self._conn is None:
                if not Path(self._db).is_file():
                    return None
                self._conn = sqlite3.connect(self._db, timeout=1.0, check_same_thread=False)
            return latest_request(self._conn)
        except sqlite3.Error as err:
            self.poll_errors += 1  # a busy or damaged file: the next poll tries again
            if not self._warned:
                self._warned = True
                _log.warning("circuit-breaker: cannot read operator requests from %s (%s); "
                             "trying again at every poll", self._db, err)
            return None

    def _poll(self) -> tuple[int, str, str] | None:
        """The newest request, if it is time to look and there is one newer than ``seen``."""
        self._since_poll += 1
        if self._db is None:
            return None
        now = time.monotonic()
        if self._since_poll < self.config.poll_bars and now - self._polled_at < \
                self.config.poll_seconds:
            return None
        self._since_poll, self._polled_at = 0, now
        self.polls += 1
        got = self._read()
        if got is None or got[0] <= self.seen:
            return None
        self.seen = got[0]
        return got

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def snapshot(self) -> Any:
        state = super().snapshot() or {}
        for key in ("_conn", "_db", "_polled_at", "_since_poll", "_fresh", "_warned",
                    "_standing"):
            state.pop(key, None)
        return state

    # -- trading ----------------------------------------------------------------------------

    def _halt(self, kind: str, reason: str) -> str:
        self.halts[kind] = self.halts.get(kind, 0) + 1
        self.last_halt = reason
        self._in_halt = True
        return reason

    def on_bar(self, ctx: Context) -> str | None:
        if self._standing is not None:
            self._say_standing(ctx)
        self._in_halt = self._fresh = False
        c = self.config
        sym, bar, i = ctx.symbol, ctx.bar, ctx.index
        prev = self._prev.get(sym)
        new_bar = prev is None or prev[0] != i
        if new_bar:
            self._prev[sym] = (i, bar.close)
            if c.max_gap is not None and prev is not None and prev[1] > 0:
                before = prev[1]
                jump = max(abs(bar.open - before), abs(bar.close - before)) / before
                if jump > c.max_gap:
                    return self._halt("gap", f"circuit breaker: {sym} moved {jump:.2%} from the "
                                             f"close {before:.8g} (bar open {bar.open:.8g}, "
                                             f"close {bar.close:.8g}), above max_gap "
                                             f"{c.max_gap:.2%}")
            if c.max_drop is not None:
                equity = ctx.account.equity
                q = self._peaks.get(sym)
                if q is None:
                    q = self._peaks[sym] = deque()
                while q and q[-1][1] <= equity:
                    q.pop()
                q.append((i, equity))
                while q[0][0] <= i - c.window:
                    q.popleft()
                top = q[0][1]
                if top > 0 and (top - equity) / top >= c.max_drop:
                    return self._halt("equity_drop", f"circuit breaker: equity fell "
                                                     f"{(top - equity) / top:.2%} within "
                                                     f"{c.window} bars ({top:,.2f} -> "
                                                     f"{equity:,.2f}), max_drop "
                                                     f"{c.max_drop:.2%}")
        if c.max_rejections is not None:
            ledger = ctx.ledger
            rej = ledger.closed.get("rejected", 0)
            ok = sum(ledger.closed.values()) + len(ledger.open) - rej
            if self._ok >= 0:
                d_rej = rej - self._rej
                self._streak = 0 if ok > self._ok else self._streak + d_rej
            self._ok, self._rej = ok, rej
            if self._streak >= c.max_rejections:
                streak, self._streak = self._streak, 0
                return self._halt("rejections", f"circuit breaker: {streak} orders rejected "
                                                f"in a row (max_rejections "
                                                f"{c.max_rejections})")
        got = self._poll()
        if got is not None and got[1] == "halt":
            return self._halt("operator", f"operator halt (gridkit halt, request {got[0]}): "
                                          f"{got[2] or 'no reason given'}")
        return None

    def lift(self, ctx: Context) -> str | None:
        self._standing = None  # halted: nothing to say about a halt passed over
        sym = ctx.symbol
        self._prev[sym] = (ctx.index, ctx.bar.close)  # no gap across the halt
        if not self._in_halt:
            self._in_halt = True
            if not self._fresh:  # just halted by another check: what was asked before the
                self._since_poll = self.config.poll_bars  # halt does not lift it
                self._polled_at = float("-inf")
                self._poll()
                return None
        got = self._poll()
        if got is None or got[1] != "resume":
            return None
        self.lifts += 1
        self._in_halt = False
        self._peaks.clear()
        self._streak, self._ok, self._rej = 0, -1, -1
        return f"gridkit resume-trading, request {got[0]}" + (f": {got[2]}" if got[2] else "")

    def stats(self) -> dict[str, Any]:
        return {"halts": dict(self.halts), "lifts": self.lifts, "last_halt": self.last_halt,
                "polls": self.polls, "poll_errors": self.poll_errors,
                "store": self._db}


__all__ = ["CircuitBreaker", "latest_request", "write_request"]
