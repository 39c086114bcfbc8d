"""What users of exchange grid bots expect on every grid, written once: stop-loss and
take-profit triggers, what a fixed-range grid does when the price leaves its range, and the
grid's direction (long, short, neutral) on a perpetual.

A grid's ``Config`` derives from :class:`StopOptions` (the triggers), :class:`DirectionOptions`
(plus ``direction``) or :class:`RangeOptions` (plus ``on_exit`` and ``exit_bars``, for a grid
whose lines stay where they were laid); the strategy mixes in :class:`GridControls` and calls
its ``controls_*`` methods from ``start``, ``on_bar``, ``on_fill`` and ``stats``.

How grid bots elsewhere describe the same options (their public help pages):

* Binance's futures grid ("What Is Futures Grid Trading?", binance.com support FAQ
  f4c453bab89648beb722aa26634120c3): a *long* grid may open a long position when it is
  created, a *short* grid a short one, and a *neutral* grid opens none; each then places buy
  limits below the price and sell limits above it. (Binance's own wording of its grids'
  TP/SL and stop-trigger options was not among the pages available when this was written;
  the behaviour below follows the bots that document theirs.)
* Bitsgap's grid "Stop Loss" (helpdesk.bitsgap.com, article "Stop Loss"): when the price
  reaches the stop, every open order of the bot is cancelled, its base is sold at market and
  the bot is ended; the stop price is a condition, not the fill price. 3Commas' grid bots
  ("Grid Bots: Configuring Stop Loss", help.3commas.io): "stop bot" when the price leaves the
  upper or lower grid line, or sell the base (below) and stop.

gridkit decides on closed bars (DESIGN.md §6): a trigger looks at each bar's close, and what it
sends (cancels, a closing market order) goes out in the same bar's execute stage, the market
order filling at the next bar's open. An exchange's own trigger watches the last or mark price
between bars, so it may stop a grid a little earlier, at a different price.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from attrs import frozen

from gridkit.core.config import OptionError, at_least, option, optional, positive
from gridkit.core.errors import ConfigError
from gridkit.core.types import Cancel, Fill, Order, Rejection
from gridkit.plugins.grids.cells import GridCells
from gridkit.plugins.grids.leverage import leverage_problems
from gridkit.runtime.context import Context

log = logging.getLogger("gridkit.strategy")

Action = Order | Cancel


def _above_stop_loss(instance: Any, attribute: Any, value: float | None) -> None:
    if value is None:
        return
    positive()(instance, attribute, value)
    low = getattr(instance, "stop_loss", None)
    if low is not None and value <= low:
        raise OptionError(attribute.name, f"must be above stop_loss ({value:g} <= {low:g})")


def _loss_fraction(_instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and -1.0 < value < 0.0):
        raise OptionError(attribute.name, f"must be a fraction of the starting equity in "
                                          f"(-1, 0), e.g. -0.1 for a 10% loss, got {value!r}")


@frozen(kw_only=True)
class StopOptions:
    """The stop-loss and take-profit options every grid has (see :class:`GridControls`)."""

    stop_loss: float | None = option(
        None, doc="Stop the grid at the first close at or below this price.",
        validator=optional(positive()))
    take_profit: float | None = option(
        None, doc="Stop the grid at the first close at or above this price (above "
                  "stop_loss).", validator=_above_stop_loss)
    stop_loss_equity: float | None = option(
        None, doc="Stop the grid when the account's equity has changed by this fraction of "
                  "its equity at the grid's start, or less: -0.1 stops at a 10% loss.",
        validator=_loss_fraction)
    take_profit_equity: float | None = option(
        None, doc="Stop the grid when the account's equity has grown by this fraction of its "
                  "equity at the grid's start, or more: 0.2 stops at a 20% gain.",
        validator=optional(positive()))
    on_stop: Literal["cancel", "close"] = option(
        "cancel", doc="What a stop does: cancel every order of the grid, or cancel them and "
                      "close the position with one market order (a long sold, a short bought "
                      "back).")


@frozen(kw_only=True)
class DirectionOptions(StopOptions):
    """The triggers, and the grid's direction on a perpetual."""

    direction: Literal["long", "short", "neutral"] = option(
        "long", doc="long: at the start, buy the base the cells above the price hold. short "
                    "(perpetuals): sell short, at the start, what the cells below the price "
                    "would buy back. neutral (perpetuals): trade nothing at the start.")


@frozen(kw_only=True)
class RangeOptions(DirectionOptions):
    """The triggers, the direction, and what a fixed-range grid does outside its range."""

    on_exit: Literal["hold", "pause", "recenter", "close"] = option(
        "hold", doc="When the close leaves [lowest line, highest line]: hold (keep the orders "
                    "and wait), pause (cancel them while outside, put them back when a close is "
                    "inside again), recenter (after exit_bars closes outside, lay the same grid "
                    "around the close) or close (after exit_bars closes outside, stop as "
                    "on_stop = \"close\").")
    exit_bars: int = option(
        1, doc="Consecutive closes outside the range before recenter or close act.",
        validator=at_least(1))


# --- direction: the position a grid's cells imply ----------------------------------------------


def held(cells: GridCells) -> tuple[float, float, float]:
    """``(long, short, unit)``: the long position the grid's long-leg cells hold and the size
    of the short position its short-leg cells hold, both in units of ``unit`` (cells of one
    ``qty``: counts of cells, ``unit`` = qty; else base, ``unit`` = 1).

    A long-leg cell holds its quantity while HOLDING; a short-leg cell is short its quantity
    while EMPTY (it buys back at its lower line). The grid's net position is
    ``(long - short) * unit``."""
    uniform = isinstance(cells.qty, (int, float))
    legs = cells.legs or ["long"] * cells.n
    long_ = short = 0.0 if not uniform else 0
    for q, s, leg in zip(cells.qtys, cells.state, legs, strict=False):
        w = 1 if uniform else q
        if leg == "short":
            if not s:
                short += w
        elif s:
            long_ += w
    return long_, short, (cells.qty if uniform else 1.0)  # type: ignore[return-value]


def net_position(cells: GridCells) -> float:
    """The signed position the grid's cells imply (see :func:`held`)."""
    long_, short, unit = held(cells)
    return (long_ - short) * unit


def relay(old: GridCells | None, new: GridCells, price: float, ctx: Context,
          direction: str = "long") -> list[Action]:
    """Lay the grid ``new`` at ``price`` in place of ``old`` (None: at the start).

    Cancels every order of ``old``, seeds ``new`` (DESIGN.md §7: a cell HOLDING if its lower
    line >= ``price``) in ``direction``, and trades the difference between the position the new
    cells imply and the one the old cells held with one market order (in hedge mode, one per
    side that changes). Returns cancels, the market order, then the cells' orders."""
    out: list[Action] = old.cancel_all() if old is not None else []
    orders, _ = new.seed(price, ctx, direction)
    nl, ns, nu = held(new)
    ol, os_, ou = held(old) if old is not None else (0, 0, nu)
    hedge = ctx.position.side != ""
    if nu == ou:  # cells of one qty: count the cells, then multiply (no float residue)
        dl, ds = (nl - ol) * nu, (ns - os_) * nu
        net = ((nl - ol) - (ns - os_)) * nu
    else:
        dl, ds = nl * nu - ol * ou, ns * nu - os_ * ou
        net = dl - ds
    if hedge:
        if dl:
            out.append(ctx.order("buy" if dl > 0 else "sell", abs(dl), price, "market",
                                 position_side="long", reduce_only=dl < 0))
        if ds:
            out.append(ctx.order("sell" if ds > 0 else "buy", abs(ds), price, "market",
                                 position_side="short", reduce_only=ds < 0))
    elif net:
        out.append(ctx.order("buy" if net > 0 else "sell", abs(net), price, "market"))
    out.extend(orders)
    return out


def close_position(ctx: Context, price: float) -> list[Order]:
    """One market order that closes the lane's position (a long sold, a short bought back);
    in hedge mode one per side that is open. Reduce-only on a perpetual."""
    out = []
    pos = ctx.position
    sides = ((pos,) if not pos.side else
             (ctx.account.position(ctx.symbol, "long"), ctx.account.position(ctx.symbol, "short")))
    for p in sides:
        if abs(p.qty) <= 1e-12:
            continue
        more: dict[str, Any] = {}
        if p.kind != "spot":
            more["reduce_only"] = True
        if p.side:
            more["position_side"] = p.side
        out.append(ctx.order("sell" if p.qty > 0 else "buy", abs(p.qty), price, "market",
                             **more))
    return out


# --- the mixin -----------------------------------------------------------------------------------


class GridControls:
    """Stop-loss / take-profit, range exit and direction, for a grid strategy with ``cells``
    (a :class:`~gridkit.plugins.grids.cells.GridCells`) and a Config from
    :class:`StopOptions`, :class:`DirectionOptions` or :class:`RangeOptions`.

    **Triggers.** At each bar's close, after the fills of the bar: ``stop_loss`` fires when
    the close is at or below it, ``take_profit`` when it is at or above it,
    ``stop_loss_equity`` / ``take_profit_equity`` when the account's equity
    (``ctx.portfolio.equity``, marked at the close) has changed by that fraction of the equity
    at the grid's start or more. A stop cancels every order of the grid (``on_stop =
    "cancel"``) and, with ``on_stop = "close"``, closes the position with one market order,
    filled at the next bar's open. The stopped grid places nothing more, ever: a fill of an
    order already on its way gets no follow-up, and the state survives a resume (it is in the
    strategy's snapshot). ``stats()`` says why (``stopped: "stop-loss at 51234.5 (close
    51200.0)"``) and one log line of ``gridkit.strategy`` says so when it happens. A stop price
    already crossed by the first close is refused at the start (the grid would stop at once).

    **Range exit** (``on_exit``, fixed-range grids), by the close against the lowest and
    highest line:

    * ``hold``: nothing happens; the orders stay and wait for the price to come back.
    * ``pause``: on the first close outside, every order of the grid is cancelled; the cells
      keep their states. On the first close inside again, each cell's order is placed again
      exactly as its state says (the same side, price and quantity as before the pause).
    * ``recenter``: after ``exit_bars`` consecutive closes outside, the grid is laid again
      around the close: every line is multiplied by ``close / centre`` (centre: the price the
      grid was laid around — ``geometric`` and ``asymmetric``'s start price, else
      ``sqrt(lowest * highest)``), so it keeps its number of cells, its quantities and the
      ratios between its lines. The orders are cancelled, the cells seeded at the close
      (DESIGN.md §7) and the difference between the position the new cells imply and the one
      the old cells held is traded with one market order — the ``symmetric`` grid's
      re-centring (:func:`relay`).
    * ``close``: after ``exit_bars`` consecutive closes outside, stop as ``on_stop = "close"``
      does (``stopped: "range exit below 50000.0 (close 49876.5)"``).

    **Direction** (perpetuals; spot allows only ``long``). The cells, their orders and their
    fills are the same in every direction; what differs is the position they start from,
    traded with one market order at the start: ``long`` buys the base the cells above the
    price hold (the grid is long from 0 at its top to all cells' base at its bottom);
    ``short`` sells short the base of the cells below the price, which buy it back one line
    down and sell it again one line up (short all cells' base at the top, flat at the bottom);
    ``neutral`` trades nothing (short above its start, long below). At any time the position
    equals what the cells imply (:func:`net_position`). In hedge mode a long grid trades the
    long side, a short grid the short side, and a neutral one the long side below its start
    and the short side above.

    **Leverage.** At the start, a ``[market] leverage`` above the instrument's maximum (the
    markets file's, else Binance's bracket for the grid's notional) stops the run with one
    line; margin the grid's orders need beyond the balance is one warning line (and an error
    in the pre-flight of a paper or live run).
    """

    #: Why the grid stopped ("stop-loss at ... (close ...)"), or None while it runs.
    stopped: str | None = None
    #: The account's equity when the grid started (the equity triggers' reference).
    start_equity: float = math.nan
    #: Consecutive closes outside the range, and whether ``pause`` took the orders away.
    outside_bars: int = 0
    range_paused: bool = False
    recentres: int = 0
    #: Round trips and grid profit of the cells an earlier laying replaced.
    banked_trips: int = 0
    banked_profit: float = 0.0
    cells: Any
    config: Any

    def lay(self, new: GridCells, price: float, ctx: Context) -> list[Action]:
        """Put ``new`` in place of the grid's cells at ``price`` (:func:`relay`, in the
        Config's direction), keeping the replaced cells' round trips and profit for
        :meth:`grid_stats`: every re-laying grid (re-centring, range exit) goes through here."""
        old = self.cells
        if old is not None:
            self.banked_trips += old.round_trips
            self.banked_profit += old.grid_profit
        out = relay(old, new, price, ctx, getattr(self.config, "direction", "long"))
        self.cells = new
        return out

    def grid_stats(self) -> dict[str, Any]:
        """The cells' counters with the round trips and profit of every laying, and the
        controls' (:meth:`controls_stats`)."""
        cells = self.cells.stats() if self.cells is not None else {}
        return {**cells,
                "round_trips": self.banked_trips + cells.get("round_trips", 0),
                "grid_profit": self.banked_profit + cells.get("grid_profit", 0.0),
                **self.controls_stats()}

    # -- start -------------------------------------------------------------------------------

    def controls_check(self, ctx: Context, lines: list[float] | None = None,
                       qtys: list[float] | None = None) -> None:
        """The checks before the first order (one ConfigError line each), and the equity the
        equity triggers measure from."""
        c = self.config
        direction = getattr(c, "direction", "long")
        if direction != "long" and ctx.position.kind == "spot":
            raise ConfigError(f"strategy.direction: a {direction} grid sells short, which "
                              f"needs a perpetual ([market] type = \"linear\")")
        close = ctx.bar.close
        if c.stop_loss is not None and close <= c.stop_loss:
            raise ConfigError(f"strategy.stop_loss: {c.stop_loss:g} is not below the first "
                              f"close {close:g}: the grid would stop at once")
        if c.take_profit is not None and close >= c.take_profit:
            raise ConfigError(f"strategy.take_profit: {c.take_profit:g} is not above the first "
                              f"close {close:g}: the grid would stop at once")
        if lines is None:
            lines, qtys = self.cells.lines, self.cells.qtys
        # (Too little margin is the pre-flight's warning, in every mode: said once, there.)
        error, _ = leverage_problems(ctx, lines, qtys or [], close)
        if error:
            raise ConfigError(error)
        self.start_equity = ctx.portfolio.equity

    def controls_start(self, ctx: Context) -> list[Action]:
        """Check, then lay ``self.cells`` at the first close in the Config's direction: the
        opening market order and every cell's order (none while ``pause`` finds the price
        outside the range)."""
        self.controls_check(ctx)
        out = relay(None, self.cells, ctx.bar.close, ctx, getattr(self.config, "direction",
                                                                  "long"))
        if getattr(self.config, "on_exit", "hold") == "pause" and not self._inside(ctx):
            self.range_paused = True
            self.cells.cancel_all()  # nothing sent yet: just forget the cells' orders
            out = [a for a in out if isinstance(a, Order) and a.kind == "market"]
        return out

    # -- per bar -----------------------------------------------------------------------------

    def _inside(self, ctx: Context) -> bool:
        lines = self.cells.lines
        return lines[0] <= ctx.bar.close <= lines[-1]

    def _trigger(self, ctx: Context) -> str | None:
        c = self.config
        close = ctx.bar.close
        if c.stop_loss is not None and close <= c.stop_loss:
            return f"stop-loss at {float(c.stop_loss)!r} (close {float(close)!r})"
        if c.take_profit is not None and close >= c.take_profit:
            return f"take-profit at {float(c.take_profit)!r} (close {float(close)!r})"
        if c.stop_loss_equity is not None or c.take_profit_equity is not None:
            equity = ctx.portfolio.equity
            change = equity / self.start_equity - 1.0
            if c.stop_loss_equity is not None and change <= c.stop_loss_equity:
                return (f"equity stop-loss at {c.stop_loss_equity:+.2%} (equity "
                        f"{equity:,.2f}, {change:+.2%})")
            if c.take_profit_equity is not None and change >= c.take_profit_equity:
                return (f"equity take-profit at {c.take_profit_equity:+.2%} (equity "
                        f"{equity:,.2f}, {change:+.2%})")
        return None

    def controls_stop(self, ctx: Context, reason: str, close: bool) -> list[Action]:
        """Stop the grid for good: cancel its orders and, with ``close``, its position."""
        self.stopped = reason
        out: list[Action] = self.cells.cancel_all() if self.cells is not None else []
        if close:
            out.extend(close_position(ctx, ctx.bar.close))
        log.warning("%s: grid stopped: %s; %s", ctx.symbol, reason,
                    "orders cancelled, position closed at market" if close
                    else "orders cancelled")
        return out

    def controls_bar(self, ctx: Context) -> list[Action] | None:
        """What the controls do on this bar: None when nothing (the grid goes on as usual),
        else the actions to send (an empty list once stopped: nothing more, ever)."""
        if self.stopped is not None:
            return []
        reason = self._trigger(ctx)
        if reason is not None:
            return self.controls_stop(ctx, reason, self.config.on_stop == "close")
        on_exit = getattr(self.config, "on_exit", "hold")
        if on_exit == "hold":
            return None
        cells = self.cells
        if self._inside(ctx):
            self.outside_bars = 0
            if self.range_paused:
                self.range_paused = False
                return [o for i in range(cells.n) if (o := cells.order_for(i, ctx)) is not None]
            return None
        self.outside_bars += 1
        if on_exit == "pause":
            if self.range_paused:
                return []
            self.range_paused = True
            return list(cells.cancel_all())
        if self.outside_bars < self.config.exit_bars:
            return None
        close = ctx.bar.close
        if on_exit == "close":
            below = close < cells.lines[0]
            line = cells.lines[0] if below else cells.lines[-1]
            return self.controls_stop(ctx, f"range exit {'below' if below else 'above'} "
                                           f"{float(line)!r} (close {float(close)!r})", True)
        self.outside_bars = 0
        self.recentres += 1
        out = self.lay(GridCells(self.relaid_lines(close), cells.qty), close, ctx)
        if hasattr(self, "centre"):
            self.centre = close
        return out

    def relaid_lines(self, price: float) -> list[float]:
        """The grid's lines laid again around ``price``: each line times ``price / centre``."""
        lines = self.cells.lines
        centre = getattr(self, "centre", 0.0) or math.sqrt(lines[0] * lines[-1])
        k = price / centre
        return [line * k for line in lines]

    # -- reports -----------------------------------------------------------------------------

    def controls_fill(self, fill: Fill, ctx: Context) -> list[Action]:
        """The cells' follow-up of a fill: none once stopped; while paused the cell flips but
        its order waits for the price to come back."""
        if self.stopped is not None or self.cells is None:
            return []
        out = self.cells.on_fill(fill, ctx)
        if self.range_paused and out:
            self.cells.cancel_all()  # not sent: forget them, the re-entry places them
            return []
        return out

    def controls_rejected(self, rejection: Rejection) -> None:
        if self.stopped is None and self.cells is not None:
            self.cells.on_rejected(rejection)

    def controls_stats(self) -> dict[str, Any]:
        """``stopped`` once stopped; ``range_paused`` and ``recentres`` with those policies."""
        out: dict[str, Any] = {}
        if self.stopped is not None:
            out["stopped"] = self.stopped
        on_exit = getattr(self.config, "on_exit", "hold")
        if on_exit == "pause":
            out["range_paused"] = self.range_paused
        if on_exit == "recenter":
            out["recentres"] = self.recentres
        return out
