"""A grid's margin on a perpetual, and whether ``[market] leverage`` suits the instrument:
shared by the cells' pre-flight and the grid controls' start checks."""

from __future__ import annotations

from gridkit.runtime.context import Context


def grid_margin(lines: list[float], qtys: list[float], price: float) -> float:
    """The notional of every order a grid of ``lines`` places at ``price``: the buys below it
    at their lower lines and the sells above it at their upper lines (each holds margin on a
    perpetual)."""
    n = len(lines) - 1
    return sum((lines[i + 1] if lines[i] >= price else lines[i]) * qtys[i] for i in range(n))



def max_leverage(ctx: Context, notional: float) -> tuple[float, str] | None:
    """The highest leverage the lane's instrument allows for a position of ``notional``, and
    where that comes from: the markets file's ``limits.leverage.max``, else Binance's notional
    bracket (:data:`gridkit.trading.margin.BRACKETS`); None when neither knows."""
    m = ctx.market
    if m is not None and m.max_leverage:
        return float(m.max_leverage), "the markets file's limits.leverage.max"
    from gridkit.trading.margin import BRACKETS

    for floor, cap, _mmr, _amount, lev in BRACKETS.get(ctx.symbol, ()):
        if floor <= notional < cap:
            return lev, f"Binance's bracket for a {notional:,.0f} notional"
    return None


def leverage_problems(ctx: Context, lines: list[float], qtys: list[float],
                      price: float) -> tuple[str | None, str | None]:
    """``(error, warning)`` about a perpetual grid's leverage at ``price``: the error when
    ``[market] leverage`` is above the instrument's maximum, the warning when the margin the
    grid's orders need at that leverage is more than the account's balance."""
    pos = ctx.position
    if pos.kind == "spot":
        return None, None
    notional = grid_margin(lines, qtys, price)
    error = warning = None
    most = max_leverage(ctx, notional)
    if most is not None and pos.leverage > most[0]:
        error = (f"market.leverage: {pos.leverage:g} is above {ctx.symbol}'s maximum "
                 f"{most[0]:g} ({most[1]})")
    need = notional / pos.leverage
    if need > ctx.account.cash:
        warning = (f"the grid's orders need {need:,.2f} of margin at leverage "
                   f"{pos.leverage:g} but the account has {ctx.account.cash:,.2f}: orders "
                   f"will be refused")
    return error, warning
