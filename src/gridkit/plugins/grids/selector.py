"""The ``regime-selector``: the market regime picks the grid (seed 000 §2.5, seed 002 §3.5)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import attrs
from attrs import frozen

from gridkit.core.components import Component, Strategy
from gridkit.core.config import OptionError, at_least, non_negative, option, positive
from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.runtime.context import Context

#: The selection matrix of seed 000 (§2.5, "Strategy Selection Matrix"): RANGING → a uniform
#: symmetric grid, 0.15 % spacing, 8 levels; TRENDING → a pyramid (asymmetric) grid, 0.2–0.4 %,
#: 3–6 levels; VOLATILE → a wide geometric grid with inverse distribution, 0.3–0.5 %, 3–5
#: levels; DORMANT → no grid. Where the seed gives a range, the pyramid takes its two ends for
#: its two sides and the geometric grid starts at the low end and widens to the high end.
SEED_MAP: dict[str, dict[str, Any]] = {
    "RANGING": {"use": "symmetric", "spacing": 0.0015, "levels": 8},
    "TRENDING": {"use": "asymmetric", "spacing_up": 0.002, "spacing_down": 0.004,
                 "levels_up": 6, "levels_down": 3, "pyramid": 1.5},
    "VOLATILE": {"use": "geometric", "spacing": 0.003, "levels": 4, "growth": 1.2},
    "DORMANT": {"use": "disabled"},
}
#: The strategy that stands in for a label the map does not name, and for low volume.
STAND_ASIDE = {"use": "disabled"}
_ASIDE = "(aside)"


class RegimeSelector(Strategy):
    """Runs one grid per market regime and hands over between them when the regime changes.

    **Selection.** ``map`` gives, for each regime label (``ctx.regime``, from the pipeline's
    ``[[regimes]]`` rules), a strategy table as pipeline.toml's ``[strategy]`` table is written:
    ``use`` plus its options; ``qty`` is given to every grid that takes it and does not set its
    own. The default is the selection matrix of seed 000 (:data:`SEED_MAP`). A label the map
    does not name stands aside (the ``disabled`` strategy); before any rule is ready
    (``ctx.regime`` None) no grid runs. Each grid is built when the pipeline is, so a map
    naming an unknown strategy, or options a strategy does not take, fail ``gridkit check``.

    **Dynamic adjustments** (seed 002 §3.5, each an option), applied to the options of the grid
    being laid, at each hand-over:

    * volatility: every option whose name starts with ``spacing`` is multiplied by
      ``m = σ / σ_baseline``, clamped to [``vol_min``, ``vol_max``]. σ is the ``volatility``
      feature; σ_baseline is ``vol_baseline`` when above 0 (the seed uses 0.001 for 5-minute
      bars), else the EMA of σ over ``vol_slow`` bars, so that the rule needs no threshold per
      timeframe (the regime rules use the same baseline). Off with ``vol_adjust = false``.
    * spread: when the ``spread`` feature (in basis points; off while the option is empty) is
      above ``spread_bps`` (5), spacing options are multiplied by ``spread_spacing`` (1.5)
      and every option whose name starts with ``levels`` loses ``spread_levels`` (2) but not
      below ``min_levels`` (4), and never rises (a side of 3 stays 3).
    * volume: when the ``volume`` feature (the volume ratio) is below ``min_volume_ratio``
      (0.3) the selector stands aside whatever the regime, and hands back when it recovers.

    An adjusted table a grid refuses (its own validation: a spacing so wide the lowest line is
    below 0) falls back to the table as written, counted in ``adjust_refused``.

    **Attention** (``ctx.adjust``, written by attention modules such as ``regime-attention``
    in their active phase): ``"LABEL:spacing"`` multiplies the spacing options and
    ``"LABEL:levels"`` the level counts (rounded, at least 1) of the grid laid for LABEL,
    before the spread rule.

    **Hand-over.** A new grid replaces the running one when the selected label changed and
    the running one has run ``min_bars`` bars (the first grid starts at once). In one event:

    1. every open order of the lane is cancelled;
    2. the new grid starts (``start`` on the current bar); the market orders it places to seed
       its inventory are replaced by one market order for the difference between that
       inventory and the position the lane holds, so the account holds what the new grid's
       cells expect — nothing is bought to be sold again;
    3. ``handover = "adopt"`` (default): a grid that places no order at all (``disabled``)
       leaves the position as it is; ``"flatten"``: it closes the position (one market order).
       ``"keep"`` trades no inventory at any hand-over: the new grid starts from the position
       as it is — on spot its sells go out, lowest first, as far as the base held covers
       them, and the cells beyond wait (parked, ``withheld``) for the grid's next fill.

    A fill of an order that belonged to an earlier grid (it filled before its cancel arrived)
    would leave inventory no grid expects: the selector answers it with a market order the
    other way, counted in ``stray_fills``. One-way positions only (no hedge mode).

    Reports go to the grid that sent the order (by order id); ``stats`` has the running label,
    the hand-overs, the bars per label, and round trips and grid profit over every grid run.
    """

    name = "regime-selector"

    @frozen
    class Config:
        qty: float = option(doc="Base quantity per cell, given to every grid of the map that "
                                "takes a qty and does not set its own.", validator=positive())
        map: dict[str, dict[str, Any]] = option(
            factory=lambda: {k: dict(v) for k, v in SEED_MAP.items()},
            doc="Regime label -> strategy table (use = ... and its options). Given, it "
                "replaces the default (seed 000's matrix) as a whole.")
        handover: Literal["adopt", "flatten", "keep"] = option(
            "adopt", doc="adopt: the new grid's inventory is reached with one market order "
                         "for the difference, and a grid that places no orders keeps the "
                         "position; flatten: such a grid closes it; keep: no inventory is "
                         "traded, the new grid starts from the position.")
        min_bars: int = option(10, doc="Bars a grid runs before another may replace it.",
                               validator=non_negative(), tunable=(0, 100_000))
        vol_adjust: bool = option(True, doc="Scale spacing by sigma / sigma_baseline.")
        volatility: str = option("volatility", doc="Feature key of sigma.")
        vol_baseline: float = option(0.0, doc="Fixed sigma baseline (seed 002: 0.001); 0 uses "
                                              "the EMA of sigma over vol_slow bars.",
                                     validator=non_negative())
        vol_slow: int = option(500, doc="EMA span of the sigma baseline, in bars.",
                               validator=at_least(2))
        vol_min: float = option(0.5, doc="Smallest spacing multiplier.", validator=positive())
        vol_max: float = option(3.0, doc="Largest spacing multiplier.", validator=positive(),
                                tunable=(1.0, 10.0))
        spread: str = option("", doc="Feature key of the spread in basis points; empty: the "
                                     "spread rule is off.")
        spread_bps: float = option(5.0, doc="Spread above which grids widen.",
                                   validator=non_negative())
        spread_spacing: float = option(1.5, doc="Spacing multiplier when the spread is wide.",
                                       validator=positive())
        spread_levels: int = option(2, doc="Levels removed when the spread is wide.",
                                    validator=non_negative())
        min_levels: int = option(4, doc="Fewest levels the spread rule leaves.",
                                 validator=at_least(1))
        volume: str = option("volume-ratio", doc="Feature key of the volume ratio; empty: the "
                                                 "volume rule is off.")
        min_volume_ratio: float = option(0.3, doc="Volume ratio below which the selector "
                                                  "stands aside.", validator=non_negative(),
                                         tunable=(0.0, 1.0))
        trend_bars: int = option(20, doc="A TRENDING grid's trend (when its table does not "
                                         "set one): up if the close is above the close this "
                                         "many bars ago, else down.", validator=at_least(1))

        def __attrs_post_init__(self) -> None:
            if not self.map:
                raise OptionError("map", "names no regime")
            if self.vol_min > self.vol_max:
                raise OptionError("vol_min", f"must not exceed vol_max ({self.vol_min} > "
                                             f"{self.vol_max})")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        #: The grid of each label as the map writes it (built by :meth:`compose`).
        self.protos: dict[str, Strategy] = {}
        self.label: str | None = None  # the label whose grid runs; None before the first
        self.grid: Strategy | None = None
        self.since = 0  # ctx.index of the last hand-over
        self.mine: set[str] = set()  # ids of the running grid's live orders
        self.earlier: set[str] = set()  # ids of earlier grids' orders still open
        self.trades: set[str] = set()  # ids of the selector's own market orders
        self.ema = math.nan
        self.closes: deque[float] = deque(maxlen=self.config.trend_bars + 1)
        self.handovers = 0
        self.bars: dict[str, int] = {}
        self.stray_fills = 0
        self.withheld = 0
        self.adjust_refused = 0
        self.done_trips = 0
        self.done_profit = 0.0

    @property
    def regime_labels(self) -> tuple[str, ...]:
        """The labels the map names: ``gridkit check`` refuses one no regime rule gives."""
        return tuple(self.config.map)

    def compose(self, build: Any) -> None:
        c = self.config
        for label, table in {**c.map, _ASIDE: STAND_ASIDE}.items():
            path = f"strategy.map.{label}"
            built = build("strategy", table, path, {"qty": c.qty})
            if built is None:
                continue
            if type(built).compose is not Component.compose:
                # Each hand-over builds a fresh grid from its Config alone: one made of other
                # components would come without them.
                raise ConfigError(f"{path}: '{type(built).name}' is made of other components; "
                                  f"a map entry must be a grid of its own")
            self.protos[label] = built

    # --- selection ------------------------------------------------------------------------

    def _target(self, ctx: Context) -> str | None:
        regime = ctx.regime
        if regime is None:
            return self.label
        c = self.config
        if c.volume:
            u = ctx.features.get(c.volume, math.nan)
            if u == u and u < c.min_volume_ratio:
                return _ASIDE
        return regime if regime in c.map else _ASIDE

    def _observe(self, ctx: Context) -> None:
        c = self.config
        self.closes.append(ctx.bar.close)
        if c.vol_adjust and not c.vol_baseline:
            sigma = ctx.features.get(c.volatility, math.nan)
            if sigma == sigma:
                ema = self.ema
                self.ema = sigma if ema != ema else ema + 2.0 / (c.vol_slow + 1.0) * (sigma - ema)

    def adjusted(self, label: str, ctx: Context) -> dict[str, Any]:
        """The options seed 002 §3.5 changes for ``label``'s grid now (empty: none)."""
        c = self.config
        proto = self.protos[label]
        names = [a.alias for a in attrs.fields(type(proto.config))]
        out: dict[str, Any] = {}
        scale = 1.0
        if c.vol_adjust:
            sigma = ctx.features.get(c.volatility, math.nan)
            base = c.vol_baseline or self.ema
            if sigma == sigma and base == base and base > 0:
                scale *= min(max(sigma / base, c.vol_min), c.vol_max)
        wide = False
        if c.spread:
            bps = ctx.features.get(c.spread, math.nan)
            wide = bps == bps and bps > c.spread_bps
            if wide:
                scale *= c.spread_spacing
        attend = ctx.adjust
        more = attend.get(f"{label}:levels", 1.0) if attend else 1.0
        scale *= attend.get(f"{label}:spacing", 1.0) if attend else 1.0
        for name in names:
            value = getattr(proto.config, name)
            if name.startswith("spacing") and scale != 1.0:
                out[name] = value * scale
            elif name.startswith("levels") and (wide or more != 1.0):
                if more != 1.0:  # attention's multiplier, at least one level
                    value = max(1, round(value * more))
                out[name] = max(min(value, c.min_levels), value - c.spread_levels) if wide \
                    else value
        table = c.map.get(label, {})
        if "trend" in names and "trend" not in table and len(self.closes) > 1:
            out["trend"] = "up" if self.closes[-1] >= self.closes[0] else "down"
        return out

    def _build(self, label: str, ctx: Context) -> Strategy:
        proto = self.protos[label]
        changes = self.adjusted(label, ctx)
        config = proto.config
        if changes:
            try:
                config = attrs.evolve(config, **changes)
            except (ValueError, TypeError):
                self.adjust_refused += 1
        return type(proto)(config)

    # --- hand-over ------------------------------------------------------------------------

    def _hand_over(self, label: str, ctx: Context) -> list[Order | Cancel]:
        if label not in self.protos:
            raise ConfigError(f"strategy.map: no grid for regime {label!r}")
        out: list[Order | Cancel] = []
        # The lane's open orders, and those the running grid answered this event's reports
        # with: not yet sent, they go out before these cancels (the engine keeps the order).
        open_ids = list(dict.fromkeys([*ctx.open_orders, *self.mine]))
        out.extend(Cancel(oid) for oid in open_ids)
        self.earlier.update(open_ids)
        self.mine.clear()
        if self.grid is not None:
            got = self.grid.stats()
            self.done_trips += int(got.get("round_trips", 0))
            self.done_profit += float(got.get("grid_profit", 0.0))
            self.handovers += 1
        self.grid = self._build(label, ctx)
        self.label, self.since = label, ctx.index
        started = list(self.grid.start(ctx) or ())
        want = 0.0
        rest: list[Order | Cancel] = []
        for action in started:
            if isinstance(action, Order) and action.kind == "market":
                want += action.qty if action.side == "buy" else -action.qty
            else:
                rest.append(action)
        held = ctx.position.qty
        policy = self.config.handover
        if policy == "keep":
            rest = self._within(rest, held, ctx)
            want = held  # no inventory is traded: the new grid starts from the position
        elif not any(isinstance(a, Order) for a in started) and policy == "adopt":
            want = held  # a grid that stands aside keeps what the lane holds
        delta = want - held
        lot = ctx.market.lot if ctx.market is not None else 0.0
        if abs(delta) > max(lot / 2, 1e-12):
            out.append(self._trade("buy" if delta > 0 else "sell", abs(delta), ctx))
        pending = set(open_ids)  # the new grid need not cancel what is being cancelled
        out.extend(self._own([a for a in rest if not (isinstance(a, Cancel)
                                                      and a.order_id in pending)]))
        return out

    def _within(self, actions: list[Order | Cancel], held: float,
                ctx: Context) -> list[Order | Cancel]:
        """``handover = "keep"`` on spot: the new grid's sells, lowest first, as far as the
        base held covers them; each other sell is handed back to the grid as refused, so its
        cell waits (parked) for the grid's next fill instead of the exchange refusing it."""
        if ctx.position.kind != "spot" or self.grid is None:
            return actions
        left = max(held, 0.0)
        out: list[Order | Cancel] = []
        sells = sorted((a for a in actions if isinstance(a, Order) and a.side == "sell"),
                       key=lambda o: o.price)
        refused = set()
        for o in sells:
            if o.qty <= left * (1 + 1e-9):
                left -= o.qty
            else:
                refused.add(o.id)
        for a in actions:
            if isinstance(a, Order) and a.id in refused:
                self.grid.on_rejected(Rejection(a, "no base to sell: kept at the hand-over",
                                                "regime-selector"), ctx)
                self.withheld += 1
            else:
                out.append(a)
        return out

    def _trade(self, side: str, qty: float, ctx: Context) -> Order:
        """A market order of the selector's own (an inventory change, not a grid's)."""
        order = ctx.order(side, qty, ctx.bar.close, "market")
        self.trades.add(order.id)
        return order

    def _own(self, actions: Sequence[Order | Cancel] | None) -> list[Order | Cancel]:
        """The running grid's actions, its orders' ids noted so that reports find it."""
        if not actions:
            return []
        for a in actions:
            if isinstance(a, Order):
                self.mine.add(a.id)
        return list(actions)

    # --- the strategy ---------------------------------------------------------------------

    def preflight(self, ctx: Context, maker_fee: float,
                  taker_fee: float) -> list[tuple[str, str]]:
        out = []
        for label in self.protos:
            if label == _ASIDE:
                continue
            grid = self._build(label, ctx)
            for level, text in grid.preflight(ctx, maker_fee, taker_fee) or ():
                out.append((level, f"map.{label} ({type(grid).name}): {text}"))
        return out

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        c = self.config
        if c.vol_adjust and c.volatility not in ctx.features:
            raise ConfigError(f"strategy.vol_adjust: the pipeline has no {c.volatility!r} "
                              f"feature (add [[features]] use = \"volatility\", or set "
                              f"vol_adjust = false)")
        self._observe(ctx)
        label = self._target(ctx)
        return self._hand_over(label, ctx) if label is not None else ()

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        self._observe(ctx)
        label = self._target(ctx)
        if label is not None and label != self.label and (
                self.grid is None or ctx.index - self.since >= self.config.min_bars):
            return self._hand_over(label, ctx)
        if self.label is not None:
            self.bars[self.label] = self.bars.get(self.label, 0) + 1
        if self.grid is None:
            return ()
        return self._own(self.grid.on_bar(ctx))

    def on_tick(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self._own(self.grid.on_tick(ctx)) if self.grid is not None else ()

    def on_fill(self, fill: Fill, ctx: Context) -> Sequence[Order | Cancel]:
        oid = fill.order_id
        if oid in self.mine:
            if fill.remaining <= 0:
                self.mine.discard(oid)
            return self._own(self.grid.on_fill(fill, ctx)) if self.grid is not None else ()
        if oid in self.trades:
            if fill.remaining <= 0:
                self.trades.discard(oid)
            return ()
        if oid not in self.earlier:
            return ()  # not an order of any grid of this selector
        if fill.remaining <= 0:
            self.earlier.discard(oid)
        # An earlier grid's order filled before its cancel: undo the inventory it added
        # (with "keep" the inventory is the grids' to carry: nothing to undo).
        self.stray_fills += 1
        if self.config.handover == "keep":
            return ()
        return [self._trade("sell" if fill.side == "buy" else "buy", fill.qty, ctx)]

    def on_rejected(self, rejection: Rejection, ctx: Context) -> Sequence[Order | Cancel]:
        oid = rejection.order.id
        self.earlier.discard(oid)
        self.trades.discard(oid)
        if oid in self.mine:
            self.mine.discard(oid)
            if self.grid is not None:
                return self._own(self.grid.on_rejected(rejection, ctx))
        return ()

    def on_cancelled(self, report: Any, ctx: Context) -> Sequence[Order | Cancel]:
        oid = report.order_id
        self.earlier.discard(oid)
        self.trades.discard(oid)
        if oid in self.mine:
            self.mine.discard(oid)
            if self.grid is not None:
                return self._own(self.grid.on_cancelled(report, ctx))
        return ()

    def stats(self) -> dict[str, Any]:
        got = self.grid.stats() if self.grid is not None else {}
        return {
            "grid": "none" if self.label is None else
            f"{self.label} ({type(self.grid).name})" if self.label != _ASIDE else
            "standing aside",
            "handovers": self.handovers,
            "bars_by_regime": dict(self.bars),
            "round_trips": self.done_trips + int(got.get("round_trips", 0)),
            "grid_profit": self.done_profit + float(got.get("grid_profit", 0.0)),
            "stray_fills": self.stray_fills,
            "withheld": self.withheld,
            "adjust_refused": self.adjust_refused,
        }


__all__ = ["SEED_MAP", "RegimeSelector"]
