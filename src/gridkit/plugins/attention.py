"""Built-in attention: ``progressive``, the learning → shadow → active phase controller."""

from __future__ import annotations

import logging
import math
import pickle
from typing import Any

from attrs import frozen

from gridkit.core.components import Attention, Strategy
from gridkit.core.config import at_least, option
from gridkit.core.errors import GridkitError
from gridkit.core.hookspecs import hookimpl
from gridkit.runtime.context import Context
from gridkit.runtime.shadow import BookScore, ShadowBook

log = logging.getLogger("gridkit.attention")
#: What the base parameters' shadow book sees: no weights, no multipliers (read-only).
_BASE: tuple[dict[str, float], dict[str, float]] = ({}, {})


class Progressive(Attention):
    """Phase controller of the 000/002 seeds: attention learns, then proves itself on a shadow
    book, then acts within bounds, and is rolled back when it does worse than the base.

    List it **after** the attention modules it governs (``feature-attention``,
    ``temporal-attention``, ``regime-attention``): they write their proposals into
    ``ctx.weights`` and ``ctx.adjust`` on every event, and this controller decides what of it
    the rest of the pipeline sees.

    * **learning** — observe only. For every feature it keeps the events it was ready on and its
      running mean and standard deviation over the phase (Welford, O(1) per event), and it
      takes the modules' proposals out of the context, so the run trades exactly as without
      attention. It moves on once it has seen ``learn_events`` events and the real book has
      made ``learn_trades`` trades (seed 002: 1,000).
    * **shadow** — the proposals, capped as active would apply them, run on a *shadow book*: a
      fresh copy of the lane's strategy on the ``simulated`` fill model with its own account,
      fed the same bars, features and regimes (:class:`gridkit.runtime.shadow.ShadowBook`). The
      real book still trades on the base parameters. After ``shadow_trades`` shadow trades (seed
      002: 200) the two are compared over that window on win rate, profit factor and maximum
      drawdown (:class:`gridkit.runtime.shadow.BookScore`): if the shadow's profit factor and
      win rate are at least the real book's and its drawdown is no more than the real book's
      plus ``margin``, the controller goes **active**; otherwise a new window starts.
    * **active** — the proposals reach the pipeline, each value at most ``max_influence`` (seed
      002: 0.3) away from its base (1 for a multiplier or a feature weight; a module's first
      proposal for the other keys), and gradually: the allowed change grows linearly from 0 to
      its cap over ``ramp_bars`` bars. A shadow book now runs the base parameters; after
      ``shadow_trades`` real trades, if the real book's profit factor is below the base
      shadow's times ``1 - margin``, or its drawdown above the shadow's plus ``margin``, the
      controller **rolls back**: back to shadow, base parameters, ``rollbacks`` counted.

    While a risk check has halted the lane's trading, the shadow book stands still too (there
    is no real book to compare it with). A proposal that is not finite (a weight gone NaN) is
    never applied: the controller uses the
    base parameters on that event, counts it in ``fallbacks`` and says so once in the log.
    Phase changes fire ``gridkit_phase_changed`` and are journalled; the summary has the phase,
    the trade counts, both books' figures and the last proposal. Everything, the shadow book
    included, is saved with the run: a resumed run goes on as one run straight through. The
    shadow book's fees are ``maker_fee``/``taker_fee`` (the ``simulated`` defaults).
    """

    name = "progressive"

    @frozen
    class Config:
        learn_events: int = option(0, doc="Events observed before leaving the learning phase "
                                          "(seed 000: 100,000+).", validator=at_least(0))
        learn_trades: int = option(1000, doc="Trades of the real book before leaving the "
                                             "learning phase (seed 002: 1,000).",
                                   validator=at_least(0))
        shadow_trades: int = option(200, doc="Trades in each comparison window (seed 002: "
                                             "200).", validator=at_least(1))
        max_influence: float = option(0.3, doc="Largest change of a value from its base, as a "
                                               "fraction of it (seed 002: 0.3).",
                                      validator=at_least(0), tunable=(0.0, 0.5))
        ramp_bars: int = option(500, doc="Bars over which active changes grow to their cap.",
                                validator=at_least(1))
        margin: float = option(0.1, doc="How much worse a book may do before it loses a "
                                        "comparison: profit factor x (1 - margin), drawdown + "
                                        "margin.", validator=at_least(0))
        maker_fee: float = option(0.001, doc="The shadow book's fee rate of limit fills.",
                                  validator=at_least(0))
        taker_fee: float = option(0.001, doc="The shadow book's fee rate of market fills.",
                                  validator=at_least(0))

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.phase = "learning"
        self.observed = 0
        # Welford state per feature in parallel lists, in the order of ctx.features (the engine
        # fixes that order before the first event); re-keyed if the set of features changes.
        self._keys: list[str] = []
        self._n: list[float] = []
        self._mean: list[float] = []
        self._m2: list[float] = []
        self._strategy: bytes | None = None
        self.shadow: ShadowBook | None = None
        self.real = BookScore()
        self.real_trades = 0  # trades of the real book since the run started
        self.active_bars = 0
        self.rollbacks = 0
        self.windows = 0
        self.fallbacks = 0
        self._warned = False
        self._base: dict[str, float] = {}  # first proposal of keys that are not multipliers
        self._w: dict[str, float] = {}  # the modules' last proposal: weights, multipliers
        self._a: dict[str, float] = {}
        self._version = 0  # bumped when the proposal changes
        self._cache_key: tuple[int, float, float] | None = None
        self._cache: tuple[dict[str, float], dict[str, float]] = ({}, {})
        self._pending: tuple[Any, ...] | None = None  # the last bar, for the shadow book
        self.compared: dict[str, Any] = {}

    def attach(self, strategy: Strategy) -> None:
        if self._strategy is None:  # (a resumed run keeps the copy made before its start)
            self._strategy = pickle.dumps(strategy, protocol=pickle.HIGHEST_PROTOCOL)

    def observe(self, ctx: Context) -> None:
        self.observed += 1
        if self.phase == "learning":  # the statistics describe the learning phase
            self._learn(ctx)
        usable = self._take(ctx)
        acct = ctx.account
        real = self.real
        before = real.trades
        real.update(acct.realized, acct.fees, acct.equity)
        self.real_trades += real.trades - before
        phase = self.phase
        if phase == "learning":
            if (self.observed >= self.config.learn_events
                    and self.real_trades >= self.config.learn_trades):
                self._enter(ctx, "shadow")
            return
        if ctx.halted is not None:  # the real book stopped trading: nothing to compare with
            return
        shadow = self.shadow
        if shadow is None:  # a phase entered: a fresh book and window
            shadow = self._new_book(ctx)
        # The shadow book runs one bar behind: the bar before this one, with the regime the
        # real strategy saw on it (this event's regime stage has not run yet).
        pending = self._pending
        if pending is not None:
            bar, index, features = pending
            weights, adjust = self._capped(1.0) if phase == "shadow" and usable else _BASE
            shadow.step(bar, index, features, ctx.regime, weights, adjust)
        self._pending = (ctx.bar, ctx.index, dict(ctx.features))
        if phase == "active":
            self.active_bars += 1
            if usable:
                weights, adjust = self._capped(min(1.0, self.active_bars / self.config.ramp_bars))
                ctx.weights.update(weights)
                ctx.adjust.update(adjust)
        self._judge(ctx)

    # --- proposals ------------------------------------------------------------------------

    def _take(self, ctx: Context) -> bool:
        """Take the modules' proposals out of the context (what is applied is put back);
        False when one of them is not finite (the base parameters are used)."""
        w, a = ctx.weights, ctx.adjust
        if not w and not a:
            if self._w or self._a:
                self._w, self._a = {}, {}
                self._version += 1
            return True
        if w == self._w and a == self._a:  # unchanged (and what is kept was finite)
            w.clear()
            a.clear()
            return True
        total = sum(w.values()) + sum(a.values())  # one pass in C: NaN or inf shows here
        if total != total or total in (math.inf, -math.inf):
            self.fallbacks += 1
            if not self._warned:
                self._warned = True
                key, value = next((k, v) for k, v in (*w.items(), *a.items())
                                  if not math.isfinite(v))
                log.warning("attention proposed %s = %r at bar %d: the base parameters "
                            "are used while it is not finite", key, value, ctx.index)
            w.clear()
            a.clear()
            return False
        self._w, self._a = dict(w), dict(a)
        self._version += 1
        w.clear()
        a.clear()
        return True

    def _capped(self, ramp: float) -> tuple[dict[str, float], dict[str, float]]:
        """The proposal as applied: each value within ``max_influence * ramp`` of its base
        (cached until the proposal or the ramp changes)."""
        key = (self._version, ramp, self.config.max_influence)
        if self._cache_key == key:
            return self._cache
        cap = self.config.max_influence * ramp
        lo, hi = 1.0 - cap, 1.0 + cap
        weights: dict[str, float] = {}
        for name, value in self._w.items():
            if name.startswith("horizon:"):
                base = self._base.setdefault(name, value)
                low, high = base * lo, base * hi
            else:
                low, high = lo, hi
            weights[name] = low if value < low else high if value > high else value
        adjust = {name: lo if v < lo else hi if v > hi else v for name, v in self._a.items()}
        self._cache_key, self._cache = key, (weights, adjust)
        return self._cache

    # --- phases ---------------------------------------------------------------------------

    def _new_book(self, ctx: Context) -> ShadowBook:
        if self._strategy is None:
            raise GridkitError("progressive attention was not attached to the lane's strategy")
        c = self.config
        self.shadow = ShadowBook(self._strategy, ctx, c.maker_fee, c.taker_fee)
        acct = ctx.account
        self.real.reset(acct.realized, acct.fees, acct.equity)
        self._pending = None
        self.windows += 1
        return self.shadow

    def _enter(self, ctx: Context, phase: str) -> None:
        old, self.phase = self.phase, phase
        self.shadow = None  # a new book, with the other parameters, from the next event
        if phase == "active":
            self.active_bars = 0
        ctx.phase_changed(self, old, phase)

    def _judge(self, ctx: Context) -> None:
        """At the end of a window: promote, roll back, or start a new window."""
        shadow = self.shadow
        assert shadow is not None
        c = self.config
        counted = shadow.score if self.phase == "shadow" else self.real
        if counted.trades < c.shadow_trades:
            return
        real, other = self.real, shadow.score
        self.compared = {"real": real.figures(), "shadow": other.figures(),
                         "phase": self.phase}
        if self.phase == "shadow":
            if (other.profit_factor >= real.profit_factor
                    and other.win_rate >= real.win_rate
                    and other.max_dd <= real.max_dd + c.margin):
                self._enter(ctx, "active")
                return
        elif (real.profit_factor < other.profit_factor * (1.0 - c.margin)
              or real.max_dd > other.max_dd + c.margin):
            self.rollbacks += 1
            self._enter(ctx, "shadow")
            return
        self._new_book(ctx)  # the same phase goes on: a new window

    # --- learning statistics ----------------------------------------------------------------

    def _learn(self, ctx: Context) -> None:
        features = ctx.features
        if len(features) != len(self._keys):
            self._rekey(features)
        counts, means, m2s = self._n, self._mean, self._m2
        for i, value in enumerate(features.values()):
            if value == value:  # not NaN: the feature is ready
                n = counts[i] + 1.0
                mean = means[i]
                delta = value - mean
                mean += delta / n
                counts[i] = n
                means[i] = mean
                m2s[i] += delta * (value - mean)

    def _rekey(self, features: dict[str, float]) -> None:
        old = {k: (n, m, s) for k, n, m, s in zip(self._keys, self._n, self._mean, self._m2,
                                                   strict=True)}
        self._keys = list(features)
        rows = [old.get(k, (0.0, 0.0, 0.0)) for k in self._keys]
        self._n = [r[0] for r in rows]
        self._mean = [r[1] for r in rows]
        self._m2 = [r[2] for r in rows]

    def feature_stats(self) -> dict[str, dict[str, float]]:
        """Per feature: events it was ready on, its mean and its standard deviation."""
        out = {}
        for key, n, mean, m2 in zip(self._keys, self._n, self._mean, self._m2, strict=True):
            if n:
                out[key] = {"ready": int(n), "mean": mean,
                            "std": math.sqrt(m2 / (n - 1)) if n > 1 else float("nan")}
        return out

    def figures(self) -> dict[str, Any]:
        c = self.config
        shadow = self.shadow
        learned = min(self.observed / c.learn_events if c.learn_events else 1.0,
                      self.real_trades / c.learn_trades if c.learn_trades else 1.0)
        counted = (shadow.score if self.phase == "shadow" else self.real).trades if shadow else 0
        return {"phase": self.phase,
                "progress": min(1.0, learned) if self.phase == "learning" else 1.0,
                "window": min(1.0, counted / c.shadow_trades) if shadow else 0.0,
                "rollbacks": self.rollbacks, "proposal": {**self._w, **self._a},
                "real": self.real.figures(),
                "shadow": shadow.score.figures() if shadow is not None else {}}

    def stats(self) -> dict[str, Any]:
        shadow = self.shadow
        return {
            "phase": self.phase, "observed": self.observed, "real_trades": self.real_trades,
            "windows": self.windows, "rollbacks": self.rollbacks, "fallbacks": self.fallbacks,
            "real": self.real.figures(),
            "shadow": shadow.score.figures() if shadow is not None else {},
            "last_comparison": self.compared,
            "proposal": {**self._w, **self._a},
            "features": self.feature_stats(),
        }


@hookimpl
def gridkit_register_attention(register: Any) -> None:
    register(Progressive)
