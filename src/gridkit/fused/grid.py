"""A long spot grid of fixed lines through the ``simulated`` executor, as one compiled loop.

:func:`grid_backtest` is the plugin path of a grid strategy (:class:`~gridkit.plugins.grids.cells
.GridCells` laid by :func:`~gridkit.plugins.grids.controls.relay`), the ``simulated`` executor
(:mod:`gridkit.plugins.executors.bars` with its balance checks) and the account
(:class:`~gridkit.runtime.account.Account`), written again as arrays, operation for operation,
so every float comes out the same: DESIGN.md §6 and §7 through the shared rule functions of
:mod:`gridkit.trading.fills`, compiled here. A bar that reaches no order costs a mark to market
and two comparisons.

Per bar, as the engine does: the orders queued since the last bar go live (the opening market
order fills at the open with the taker fee), the reached buys fill best price first, then the
reached sells; each fill is booked and flips its cell, whose next order waits for the execute
stage; the account is marked at the close; the cells' orders are sent, each checked against the
free cash or base as the executor checks it, and live from the next bar. A refused order parks
its cell until the grid's next fill.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gridkit.trading import fills as rules

_limit_reached = njit(cache=True)(rules.limit_reached)
_fee = njit(cache=True)(rules.fee)
_cell_order_price = njit(cache=True)(rules.cell_order_price)
_round_trip_profit = njit(cache=True)(rules.round_trip_profit)

EMPTY, HOLDING = 0, 1
#: A cell's order: none, decided (to be sent this bar), queued (live from the next bar), live.
NONE, PENDING, QUEUED, LIVE = 0, 1, 2, 3
#: Fill columns: bar index, 1.0 buy / 0.0 sell, price, quantity, fee, cell (-1: market order).
FILL_COLUMNS = ("bar", "buy", "price", "qty", "fee", "cell")
#: Slots of the ``figures`` result.
FIGURES = ("cash", "base", "equity", "peak", "max_drawdown", "grid_profit", "lots_profit",
           "halt_drawdown", "max_base", "gross_win", "gross_loss", "returns", "returns_sum",
           "returns_squares", "returns_down_squares", "banked_profit", "lower", "upper",
           "spacing", "measured")
#: Slots of the ``counters`` result.
COUNTERS = ("fills", "orders_placed", "insufficient_cash", "insufficient_base", "round_trips",
            "open_orders", "start_bar", "last_bar", "market_rejected", "lots_round_trips",
            "max_base_refused", "max_fraction_refused", "cancelled", "halted_bar",
            "banked_round_trips", "recentres", "engine_halted", "centred_at")
#: Position.book_lots' tolerance (gridkit.runtime.account._EPS).
EPS = 1e-12


@njit(cache=True, inline="always")
def _record(out, k, bar, buy, price, qty, fee, cell):  # pragma: no cover - numba
    if k == out.shape[0]:
        bigger = np.empty((2 * out.shape[0] + 16, 6))
        bigger[:k] = out[:k]
        out = bigger
    out[k, 0] = bar
    out[k, 1] = 1.0 if buy else 0.0
    out[k, 2] = price
    out[k, 3] = qty
    out[k, 4] = fee
    out[k, 5] = cell
    return out


def grid_backtest(open_, high, low, close, accepted, lines, qtys, uniform, capital, maker,
                  taker, check_balance, max_base=np.inf, max_fraction=np.inf,
                  position_size=False, dd_limit=np.inf, levels=0, spacing=0.0,
                  geometric=False, cooldown=0, lower=-np.inf, upper=np.inf, measured=None,
                  k=0.0, min_spacing=0.0, max_spacing=0.0, threshold=0.0):
    """Trade the grid of ``lines`` (N+1, increasing) and ``qtys`` (N) over the accepted bars;
    the first accepted bar lays it at its close.

    ``uniform``: every cell has one quantity (the opening order is then the count of holding
    cells times it, as :func:`~gridkit.plugins.grids.controls.relay` computes it).
    ``position_size`` with ``max_base`` / ``max_fraction``: the ``position-size`` risk check
    (against the ledger's open buys, as :class:`~gridkit.runtime.ledger.Ledger` keeps them);
    ``dd_limit``: the ``drawdown`` check's limit (inf: none), which halts trading — every open
    order cancelled, none placed — at the first close whose drawdown reaches it.
    ``levels`` > 0: the ``symmetric`` grid's re-centring — once ``cooldown`` accepted bars
    have passed since the last centring, a close outside [``lower``, ``upper``] lays the grid
    again around it (``levels`` cells each side, ``spacing`` apart, ``geometric`` lines or
    not): every order of the grid cancelled, the cells seeded at the close, the difference in
    base traded with one market order (:func:`~gridkit.plugins.grids.controls.relay`), in the
    order the engine sends them.
    ``measured``: the ``volatility-adjusted`` grid's measured volatility m after each bar (NaN
    where unknown), with ``levels``, ``geometric``, ``cooldown`` and its ``k``,
    ``min_spacing``, ``max_spacing`` and ``threshold``: the grid is laid (``lines`` only sets
    how many) at the first accepted close where m is known, with the spacing ``k*m`` clamped,
    and laid again as :class:`~gridkit.plugins.grids.volatility_adjusted
    .VolatilityAdjustedGrid` decides — the close out of the grid, or m moved past the
    threshold.
    Returns ``(fills, figures, counters, state, parked, order, lines)``: the fills (rows of
    :data:`FILL_COLUMNS`), :data:`FIGURES`, :data:`COUNTERS`, per cell its state, whether it
    is parked and its open order's status, and the lines last laid.
    """
    vol = np.empty(0) if measured is None else np.ascontiguousarray(measured,
                                                                     dtype=np.float64)
    return _grid_kernel(open_, high, low, close, accepted, lines, qtys, uniform, capital,
                        maker, taker, check_balance, max_base, max_fraction, position_size,
                        dd_limit, levels, spacing, geometric, cooldown, lower, upper, vol,
                        k, min_spacing, max_spacing, threshold)  # (k: the kernel's vk)


@njit(cache=True)
def _grid_kernel(open_, high, low, close, accepted, lines, qtys, uniform, capital, maker,
                 taker, check_balance, max_base, max_fraction, position_size, dd_limit, levels,
                 spacing, geometric, cooldown, lower, upper, vol, vk, min_spacing, max_spacing,
                 threshold):  # pragma: no cover - numba
    """:func:`grid_backtest`'s loop (every argument given; ``vol`` empty: no measured
    volatility; ``vk``: its ``k``)."""
    n = lines.shape[0] - 1
    nbars = close.shape[0]
    lines = lines.copy()  # (the re-centring lays them again)
    recenter = levels > 0
    vmode = vol.shape[0] > 0  # volatility-adjusted: the spacing follows vol, laid when known
    m0 = 0.0  # the measured volatility the grid was laid with
    # ctx.index (accepted bars so far) of each bar, for the re-centring's cooldown
    cum = np.cumsum(accepted) if recenter else np.zeros(1, dtype=np.int64)
    centred_at = 1
    edge_lo, edge_hi = (lower, upper) if recenter else (-np.inf, np.inf)
    recentres = 0
    banked_trips = 0
    banked_profit = 0.0
    old_live = 0  # orders a re-centring on this bar is to cancel (the ledger's, for a halt)
    relayed = False
    # A re-centring's followups (orders the old cells decided on this bar) and cancels
    f_buy = np.zeros(n + 1, dtype=np.bool_)
    f_qty = np.zeros(n + 1)
    f_price = np.zeros(n + 1)
    f_held = np.zeros(n + 1)
    f_verdict = np.zeros(n + 1, dtype=np.int8)
    nf = 0
    c_live = np.zeros(n + 1, dtype=np.bool_)  # a live order (else followup c_ref)
    c_ref = np.zeros(n + 1, dtype=np.int64)
    c_buy = np.zeros(n + 1, dtype=np.bool_)
    c_qty = np.zeros(n + 1)
    c_held = np.zeros(n + 1)
    nc = 0
    mkt_buy = True
    state = np.zeros(n, dtype=np.int8)
    ostat = np.zeros(n, dtype=np.int8)
    obuy = np.zeros(n, dtype=np.bool_)
    oqty = np.zeros(n)
    oprice = np.zeros(n)
    oheld = np.zeros(n)
    selling = np.zeros(n)
    parked = np.zeros(n, dtype=np.bool_)
    has_entry = np.zeros(n, dtype=np.bool_)
    entry_price = np.zeros(n)
    entry_fee = np.zeros(n)
    queue = np.empty(n + 1, dtype=np.int64)  # cells queued in send order; -1: the market order
    actions = np.empty(4 * n + 4, dtype=np.int64)  # cells whose order goes out this bar
    sending = np.empty(n + 1, dtype=np.int64)  # this bar's orders, in send order
    # 0 sent, 1 refused by position-size (max_base), 3 (max_fraction), 2 by the executor
    verdict = np.zeros(n + 1, dtype=np.int8)
    done = np.empty(n + 1, dtype=np.int64)  # fill rows of this bar
    out = np.empty((64, 6))
    nfill = 0
    nq = 0
    # GridCells' scalars, shared with _order_for: the base its open sells ask for, and how
    # many sells, parked cells and decided orders there are.
    sc = np.zeros(1)
    ic = np.zeros(3, dtype=np.int64)
    round_trips = 0
    grid_profit = 0.0
    # The position's lots, first in first out (Position.lots): a ring of (signed qty, basis).
    lot_q = np.empty(n + 8)
    lot_b = np.empty(n + 8)
    lot_i = np.zeros(3, dtype=np.int64)  # head, count, round trips
    lot_f = np.zeros(3)  # profit realized by closing lots; its wins and losses apart
    cash = capital
    base = 0.0
    most_base = 0.0  # the largest inventory held (worst case of a falling market)
    equity = capital
    peak = capital
    max_dd = 0.0
    dd = 0.0
    # Account.returns: the marks' returns, how many, their sum, squares, negative squares.
    rn, rs, rq, rd = 0, 0.0, 0.0, 0.0
    # The executor's holds: cash its open buys reserve, base its open sells reserve, base the
    # queued market buy brings.
    cash_held = 0.0
    base_held = 0.0
    base_coming = 0.0
    # The ledger's open buys (Ledger.open_buy_qty and open_buys), which position-size reads.
    open_buy_qty = 0.0
    open_buys = 0
    mkt = NONE
    mkt_qty = 0.0
    mkt_held = 0.0
    mkt_coming = 0.0
    best_buy = -1  # highest cell with a live buy
    best_sell = n  # lowest cell with a live sell
    placed = 0
    no_cash = 0
    no_base = 0
    mkt_refused = 0
    size_refused = 0
    base_refused = 0
    cancelled = 0
    halted_at = -1
    halt_dd = 0.0
    engine_halted = 0
    start = -1
    last = -1
    b = -1
    while b + 1 < nbars:
        b += 1
        tripped = False
        if start >= 0 and nq == 0:  # skip, marking to market, to the next bar that fills
            b, equity, peak, max_dd, dd, last, tripped, rn, rs, rq, rd = _quiet(
                b, accepted, low, high, close, oprice[best_buy] if best_buy >= 0 else -np.inf,
                oprice[best_sell] if best_sell < n else np.inf, cash, base, equity, peak,
                max_dd, last, dd_limit if halted_at < 0 else np.inf, rn, rs, rq, rd,
                edge_lo, edge_hi, cum, centred_at + cooldown, vmode, vol, m0, threshold, vk,
                min_spacing, max_spacing, spacing)
            if b == nbars:
                break
        if not accepted[b]:
            continue
        last = b
        lo, hi, c = low[b], high[b], close[b]
        if not tripped and start >= 0 and (
                nq > 0 or (best_buy >= 0 and oprice[best_buy] >= lo)
                or (best_sell < n and oprice[best_sell] <= hi)):
            # --- the executor's fills of this bar -----------------------------------------
            nd = 0
            for q in range(nq):
                i = queue[q]
                if i < 0:  # the market order: at this bar's open, before the limits (rule 4)
                    px = open_[b]
                    out = _record(out, nfill, b, mkt_buy, px, mkt_qty,
                                  _fee(px, mkt_qty, taker), -1)
                    done[nd] = nfill
                    nd += 1
                    nfill += 1
                    if check_balance:
                        if mkt_buy:
                            cash_held = max(0.0, cash_held - mkt_held)
                            base_coming = max(0.0, base_coming - mkt_coming)
                        else:
                            base_held = max(0.0, base_held - mkt_held)
                    mkt = NONE
                else:
                    ostat[i] = LIVE
                    if obuy[i]:
                        if i > best_buy:
                            best_buy = i
                    elif i < best_sell:
                        best_sell = i
            nq = 0
            # the buys the bar reached, best (highest) first; then the sells, lowest first
            best_buy, out, nfill, nd, cash_held = _drain(
                True, best_buy, -1, n, ostat, obuy, oprice, oqty, oheld, lo, hi, out, nfill,
                done, nd, b, maker, check_balance, cash_held)
            best_sell, out, nfill, nd, base_held = _drain(
                False, best_sell, 1, n, ostat, obuy, oprice, oqty, oheld, lo, hi, out, nfill,
                done, nd, b, maker, check_balance, base_held)
            # --- booking each fill (ledger, account), and the cell's answer ----------------
            for d in range(nd):
                r = done[d]
                px, qty, fee = out[r, 2], out[r, 3], out[r, 4]
                notional = px * qty
                is_buy = out[r, 1] == 1.0
                if is_buy:
                    open_buy_qty -= qty
                    open_buys -= 1
                    open_buy_qty = open_buy_qty - (qty - (0.0 + qty)) if open_buys else 0.0
                    base = base + qty
                    cash -= notional + fee
                    if base > most_base:
                        most_base = base
                else:
                    base -= qty
                    cash += notional - fee
                lot_q, lot_b = _book_lots(qty if is_buy else -qty, px, fee, lot_q, lot_b,
                                          lot_i, lot_f)
                i = int(out[r, 5])
                if i < 0:
                    continue
                # GridCells.on_fill
                if is_buy:
                    state[i] = HOLDING
                    has_entry[i] = True
                    entry_price[i] = px
                    entry_fee[i] = fee
                else:
                    state[i] = EMPTY
                    if has_entry[i]:
                        round_trips += 1
                        grid_profit += _round_trip_profit(entry_price[i], px, qty,
                                                          entry_fee[i], fee)
                    has_entry[i] = False
                _order_for(i, False, state, qtys, lines, selling, parked, ostat, obuy, oqty,
                           oprice, actions, base, sc, ic)
                if ic[_NPARKED] > 0:  # every parked cell, in order, proposed once more
                    for j in range(n):
                        if parked[j]:
                            parked[j] = False
                            ic[_NPARKED] -= 1
                            _order_for(j, False, state, qtys, lines, selling, parked, ostat,
                                       obuy, oqty, oprice, actions, base, sc, ic)
        if not tripped:
            # --- the account marked at the close (Account.mark) ----------------------------
            equity, peak, max_dd, dd, rn, rs, rq, rd = _mark(cash, base, c, peak, max_dd,
                                                             equity, rn, rs, rq, rd)
        # --- the strategy's start: the grid laid at the first close (relay) ----------------
        # (volatility-adjusted: at the first close where the measured volatility is known)
        if start < 0 and vmode and vol[b] != vol[b]:
            pass
        elif start < 0:
            start = b
            if vmode:
                m0 = vol[b]
                spacing = _clamp(vk * m0, min_spacing, max_spacing)
                _lay_lines(lines, c, levels, spacing, geometric)
                edge_lo, edge_hi = lines[0], lines[n]  # (its lower and upper: the lines')
                centred_at = cum[b]
                relayed = True
            holding_n = 0
            holding_q = 0.0
            for i in range(n):
                if lines[i] >= c:
                    state[i] = HOLDING
                    holding_n += 1
                    holding_q += qtys[i]
            net = holding_n * qtys[0] if uniform else holding_q
            if net != 0.0:
                mkt = PENDING
                mkt_qty = net
            for i in range(n):
                _order_for(i, True, state, qtys, lines, selling, parked, ostat, obuy, oqty,
                           oprice, actions, base, sc, ic)
        elif recenter and cum[b] - centred_at >= cooldown and (
                c > edge_hi or c < edge_lo or (vmode and _drifted(
                    vol[b], m0, threshold, vk, min_spacing, max_spacing, spacing))):
            # --- SymmetricGrid.on_bar: re-centre on the close (GridControls.lay, relay);
            # VolatilityAdjustedGrid.on_bar: the same with the spacing of this bar's m -------
            if vmode:
                mm = vol[b]
                if mm == mm:
                    m0 = mm
                spacing = _clamp(vk * m0, min_spacing, max_spacing)
            relayed = True
            recentres += 1
            banked_trips += round_trips
            banked_profit += grid_profit
            round_trips = 0
            grid_profit = 0.0
            nf = 0
            for a in range(ic[_NACTIONS]):  # the old cells' orders decided on this bar
                i = actions[a]
                if ostat[i] == PENDING:
                    f_buy[nf], f_qty[nf], f_price[nf] = obuy[i], oqty[i], oprice[i]
                    c_ref[i] = nf  # (by cell for now: the cancels below read it)
                    nf += 1
            held_old = 0
            for i in range(n):
                if state[i] == HOLDING:
                    held_old += 1
            nc = 0
            old_live = 0
            for i in range(n):  # GridCells.cancel_all: by cell, each order it has
                if ostat[i] == LIVE:
                    c_live[nc], c_buy[nc], c_qty[nc], c_held[nc] = True, obuy[i], oqty[i], \
                        oheld[i]
                    old_live += 1
                    nc += 1
                elif ostat[i] == PENDING:
                    c_live[nc], c_ref[nc] = False, c_ref[i]
                    nc += 1
            edge_lo, edge_hi = _lay_lines(lines, c, levels, spacing, geometric)
            if vmode:
                edge_lo, edge_hi = lines[0], lines[n]
            held_new = 0
            for i in range(n):
                ostat[i] = NONE
                selling[i] = 0.0
                parked[i] = False
                has_entry[i] = False
                state[i] = HOLDING if lines[i] >= c else EMPTY
                held_new += state[i]
            sc[0] = 0.0
            ic[_SELLS] = 0
            ic[_NPARKED] = 0
            ic[_NACTIONS] = 0
            best_buy, best_sell = -1, n
            for i in range(n):
                _order_for(i, True, state, qtys, lines, selling, parked, ostat, obuy, oqty,
                           oprice, actions, base, sc, ic)
            net = (held_new - held_old) * qtys[0]
            if net != 0.0:
                mkt = PENDING
                mkt_buy = net > 0
                mkt_qty = abs(net)
            centred_at = cum[b]
        # --- the risk stage: drawdown halts trading (Drawdown.on_bar, apply.halt) ----------
        if halted_at < 0 and dd >= dd_limit:
            halted_at = b
            halt_dd = dd
            cancelled += nq + old_live  # every open order: the queued ones and the live ones
            for i in range(n):
                if ostat[i] == LIVE:
                    cancelled += 1
                ostat[i] = NONE
            nq = 0
            mkt = NONE
            best_buy, best_sell = -1, n
            ic[_NACTIONS] = 0  # what the strategy decided on this bar is dropped
        if halted_at >= 0:
            if relayed and halted_at < b:  # a halted run's strategy still re-centres: the
                # engine refuses each order it sends (apply.execute: "trading halted")
                for a in range(ic[_NACTIONS]):
                    if ostat[actions[a]] == PENDING:
                        engine_halted += 1
                        ostat[actions[a]] = NONE
                if mkt == PENDING:
                    engine_halted += 1
            relayed = False
            ic[_NACTIONS] = 0
            mkt = NONE
            nf = nc = old_live = 0
            continue
        # --- the execute stage (apply.execute), in the engine's order: after a
        # re-centring the old cells' followups, then the cancels; the market order; the
        # cells' orders. Risk checks and the ledger's requests, the risk's refusals booked,
        # the executor's balance checks (SimulatedBase.submit), its refusals booked ---------
        for k in range(nf):  # requests and position-size: the followups first
            f_verdict[k], open_buy_qty, open_buys = _request(
                f_buy[k], f_qty[k], position_size, base, open_buy_qty, open_buys, max_base,
                max_fraction, equity, c)
        m_verdict = 0
        if mkt == PENDING:
            m_verdict, open_buy_qty, open_buys = _request(
                mkt_buy, mkt_qty, position_size, base, open_buy_qty, open_buys, max_base,
                max_fraction, equity, c)
        ns = 0
        for a in range(ic[_NACTIONS]):
            if ostat[actions[a]] == PENDING:
                sending[ns] = actions[a]
                ns += 1
        ic[_NACTIONS] = 0
        for k in range(ns):
            i = sending[k]
            verdict[k], open_buy_qty, open_buys = _request(
                obuy[i], oqty[i], position_size, base, open_buy_qty, open_buys, max_base,
                max_fraction, equity, c)
        # the risk's refusals booked, in order (the old cells ignore theirs)
        for k in range(nf):
            if f_verdict[k] != 0:
                if f_verdict[k] == 1:
                    base_refused += 1
                else:
                    size_refused += 1
                open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, f_qty[k])
        if mkt == PENDING and m_verdict != 0:
            if m_verdict == 1:
                base_refused += 1
            else:
                size_refused += 1
            open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, mkt_qty)
        for k in range(ns):
            if verdict[k] == 1 or verdict[k] == 3:
                i = sending[k]
                if verdict[k] == 1:
                    base_refused += 1
                else:
                    size_refused += 1
                open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, oqty[i])
                _park(i, ostat, selling, parked, sc, ic)
        # the executor: followups submitted, the cancels, the market order, the new orders
        for k in range(nf):
            if f_verdict[k] != 0:
                continue
            if not check_balance:
                f_held[k] = 0.0
                continue
            ok, cash_held, base_held, f_held[k] = _hold(
                f_buy[k], f_price[k], f_qty[k], maker, cash, cash_held, base, base_coming,
                base_held)
            if not ok:
                f_verdict[k] = 2
        for k in range(nc):
            if c_live[k]:
                buy, held = c_buy[k], c_held[k]
            else:
                r = c_ref[k]
                if f_verdict[r] != 0:  # refused: the executor never had it
                    continue
                buy, held = f_buy[r], f_held[r]
            if check_balance:
                if buy:
                    cash_held = max(0.0, cash_held - held)
                else:
                    base_held = max(0.0, base_held - held)
        if mkt == PENDING and m_verdict == 0 and check_balance:
            # (a market order is checked at the last mark, the close, with the taker fee)
            ok, cash_held, base_held, mkt_held = _hold(
                mkt_buy, c, mkt_qty, taker, cash, cash_held, base, base_coming, base_held)
            if not ok:
                m_verdict = 2
            elif mkt_buy:  # the base it brings counts for the sells sent after it
                mkt_coming = mkt_qty
                base_coming = base_coming + mkt_qty
            else:
                mkt_coming = 0.0
        for k in range(ns):
            if verdict[k] != 0 or not check_balance:
                continue
            i = sending[k]
            ok, cash_held, base_held, held = _hold(obuy[i], oprice[i], oqty[i], maker, cash,
                                                   cash_held, base, base_coming, base_held)
            if ok:
                oheld[i] = held
            else:
                verdict[k] = 2
        # its refusals booked first, in order; then its reports: the followups accepted,
        # the cancels, the market order and the new orders accepted
        for k in range(nf):
            if f_verdict[k] == 2:
                if f_buy[k]:
                    no_cash += 1
                    open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, f_qty[k])
                else:
                    no_base += 1
        if mkt == PENDING and m_verdict == 2:
            mkt_refused += 1
            if mkt_buy:
                no_cash += 1
                open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, mkt_qty)
            else:
                no_base += 1
        for k in range(ns):
            if verdict[k] == 2:
                i = sending[k]
                if obuy[i]:
                    no_cash += 1
                    open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, oqty[i])
                else:
                    no_base += 1
                _park(i, ostat, selling, parked, sc, ic)
        for k in range(nf):
            if f_verdict[k] == 0:
                placed += 1
        for k in range(nc):
            if c_live[k]:
                buy, qty = c_buy[k], c_qty[k]
            else:
                r = c_ref[k]
                if f_verdict[r] != 0:
                    continue
                buy, qty = f_buy[r], f_qty[r]
            cancelled += 1
            if buy:
                open_buy_qty, open_buys = _close_buy(open_buy_qty, open_buys, qty)
        if mkt == PENDING:
            if m_verdict == 0:
                placed += 1
                mkt = QUEUED
                queue[nq] = -1
                nq += 1
            else:
                mkt = NONE
        for k in range(ns):
            if verdict[k] == 0:
                placed += 1
                i = sending[k]
                ostat[i] = QUEUED
                queue[nq] = i
                nq += 1
        nf = 0
        nc = 0
        relayed = False
        old_live = 0
    open_orders = nq  # the queued ones (the market order among them) and the live ones
    for i in range(n):
        if ostat[i] == LIVE:
            open_orders += 1
    figures = np.array([cash, base, equity, peak, max_dd, grid_profit, lot_f[0], halt_dd,
                        most_base, lot_f[1], lot_f[2], rn, rs, rq, rd, banked_profit, edge_lo,
                        edge_hi, spacing, m0])
    counters = np.array([nfill, placed, no_cash, no_base, round_trips, open_orders, start,
                         last, mkt_refused, lot_i[2], base_refused, size_refused, cancelled,
                         halted_at, banked_trips, recentres, engine_halted, centred_at],
                        dtype=np.int64)
    return out[:nfill].copy(), figures, counters, state, parked, ostat, lines


_SELLS, _NPARKED, _NACTIONS = 0, 1, 2


@njit(cache=True, inline="always")
def _drain(is_buy, i, step, n, ostat, obuy, oprice, oqty, oheld, low, high, out, nfill, done,
           nd, b, maker, check_balance, held):  # pragma: no cover - numba
    """SimulatedExecutor._drain: from cell ``i`` (the best live order of the side) walking by
    ``step``, fill the side's live orders the bar reaches at their own price with the maker
    fee, each releasing what it held; stop at the first it does not reach. Returns the new
    best cell (-1 or ``n``: none), the fills' array, its length, this bar's fills and the
    side's holds."""
    while 0 <= i < n:
        if ostat[i] == LIVE and obuy[i] == is_buy:
            if not _limit_reached(is_buy, oprice[i], low, high):
                break
            out = _record(out, nfill, b, is_buy, oprice[i], oqty[i],
                          _fee(oprice[i], oqty[i], maker), i)
            done[nd] = nfill
            nd += 1
            nfill += 1
            ostat[i] = NONE
            if check_balance:
                held = max(0.0, held - oheld[i])
        i += step
    return i, out, nfill, nd, held


@njit(cache=True, inline="always")
def _hold(buy, price, qty, rate, cash, cash_held, base, base_coming,
          base_held):  # pragma: no cover - numba
    """SimulatedBase._reserve on a spot market: ``(ok, cash_held, base_held, held)`` — a buy
    holds ``price * qty * (1 + rate)`` of the free cash, a sell ``qty`` of the free base
    (counting what a queued market buy brings); refused when they do not cover it."""
    if buy:
        cost = price * qty * (1 + rate)
        if cost > cash - cash_held + 1e-9:
            return False, cash_held, base_held, 0.0
        return True, cash_held + cost, base_held, cost
    if qty > base + base_coming - base_held + 1e-12:
        return False, cash_held, base_held, 0.0
    return True, cash_held, base_held + qty, qty


@njit(cache=True, inline="always")
def _close_buy(open_buy_qty, open_buys, qty):  # pragma: no cover - numba
    """Ledger._close of a buy that filled nothing (refused or cancelled): its quantity out of
    the open buys, and no float residue once none is open."""
    open_buys -= 1
    return (open_buy_qty - (qty - 0.0) if open_buys else 0.0), open_buys


@njit(cache=True, inline="always")
def _park(i, ostat, selling, parked, sc, ic):  # pragma: no cover - numba
    """GridCells.on_rejected: cell ``i``'s order was refused; it waits for the next fill."""
    ostat[i] = NONE
    _unsell(i, selling, sc, ic)
    if not parked[i]:
        parked[i] = True
        ic[_NPARKED] += 1


@njit(cache=True, inline="always")
def _request(buy, qty, position_size, base, open_buy_qty, open_buys, max_base, max_fraction,
             equity, price):  # pragma: no cover - numba
    """One order through the risk checks and into the ledger (apply.execute):
    ``(verdict, open_buy_qty, open_buys)``, the verdict :func:`_size_check`'s for a buy when
    ``position-size`` runs (else 0); the ledger counts every requested buy, refused or not."""
    verdict = 0
    if position_size and buy:
        verdict = _size_check(base, open_buy_qty, qty, max_base, max_fraction, equity, price)
    if buy:
        open_buy_qty = open_buy_qty + qty
        open_buys += 1
    return verdict, open_buy_qty, open_buys


@njit(cache=True, inline="always")
def _size_check(base, open_buy_qty, qty, max_base, max_fraction, equity,
                price):  # pragma: no cover - numba
    """PositionSize.check of a buy: 0 passes, 1 above ``max_base``, 3 above ``max_fraction``
    of equity (the exposure counts the base held and every open buy)."""
    exposure = base + open_buy_qty + qty
    if exposure > max_base + 1e-12:
        return 1
    if equity > 0:
        share = exposure * price / equity
        if share > max_fraction + 1e-12:
            return 3
    return 0


@njit(cache=True, inline="always")
def _mark(cash, base, close, peak, max_dd, prev, rn, rs, rq, rd):  # pragma: no cover - numba
    """Account.mark of one spot position: equity, the peak and the largest drawdown; the
    drawdown now (Account.drawdown: the same expression, 0.0 at a new peak); and the return
    since ``prev``, the last mark's equity, added to the sums (Account.returns).

    Written without the branches whose way a price path makes random (a return below zero, a
    new peak): selects instead, so a bar costs no mispredicted jump. Every value is the one
    the branches give, bit for bit: a return at or above zero adds ``0.0*0.0`` to the
    downside squares, and at a new peak the drawdown is ``0.0/peak`` and cannot raise the
    largest one."""
    equity = cash
    if base != 0.0:
        equity += base * close
    if prev > 0:
        r = equity / prev - 1.0
        if r == r:
            rn += 1
            rs += r
            rq += r * r
            neg = r if r < 0 else 0.0
            rd += neg * neg
    peak = equity if equity > peak else peak
    dd = (peak - equity) / peak if peak > 0 else 0.0
    max_dd = dd if dd > max_dd else max_dd
    return equity, peak, max_dd, dd, rn, rs, rq, rd


@njit(cache=True)
def _quiet(b, accepted, low, high, close, buy, sell, cash, base, equity, peak, max_dd,
           last, dd_limit, rn, rs, rq, rd, edge_lo, edge_hi, cum, ready, vmode, vol, m0,
           threshold, k, min_spacing, max_spacing, spacing):  # pragma: no cover - numba
    """From bar ``b``, mark the accepted bars that reach neither the best buy nor the best
    sell, nor close outside [``edge_lo``, ``edge_hi``] (nor, ``vmode``, see the measured
    volatility ``vol`` drift from ``m0``: :func:`_drifted`) once ``cum`` (ctx.index) reaches
    ``ready`` (a re-centring); stop at the first that does (or at the end), or right after
    marking one whose drawdown reaches ``dd_limit`` (``tripped``). A tight loop of its own,
    so the compiler keeps its few values in registers: most bars of a grid's life are these."""
    n = close.shape[0]
    dd = 0.0
    while b < n:
        if accepted[b]:
            if _limit_reached(True, buy, low[b], high[b]) or \
                    _limit_reached(False, sell, low[b], high[b]):
                break
            c = close[b]
            if (c > edge_hi or c < edge_lo or (vmode and _drifted(
                    vol[b], m0, threshold, k, min_spacing, max_spacing, spacing))) \
                    and cum[b] >= ready:  # a re-centring's bar
                break
            last = b
            equity, peak, max_dd, dd, rn, rs, rq, rd = _mark(cash, base, close[b], peak,
                                                             max_dd, equity, rn, rs, rq, rd)
            if dd >= dd_limit:
                return b, equity, peak, max_dd, dd, last, True, rn, rs, rq, rd
        b += 1
    return b, equity, peak, max_dd, dd, last, False, rn, rs, rq, rd


@njit(cache=True, inline="always")
def _clamp(s, low, high):  # pragma: no cover - numba
    """volatility_adjusted.clamp_spacing of ``s = k*m``."""
    return low if s < low else high if s > high else s


@njit(cache=True, inline="always")
def _drifted(m, m0, threshold, k, low, high, spacing):  # pragma: no cover - numba
    """VolatilityAdjustedGrid.on_bar: m known, moved by more than ``threshold`` of ``m0``, and
    its clamped spacing not the grid's."""
    return m == m and abs(m - m0) > threshold * m0 and _clamp(k * m, low, high) != spacing


@njit(cache=True, inline="always")
def _lay_lines(lines, c, levels, spacing, geometric):  # pragma: no cover - numba
    """A centred grid's lines at close ``c`` into ``lines`` (``levels`` cells each side,
    ``spacing`` apart: cells.grid_lines); its lowest and highest line."""
    n = lines.shape[0] - 1
    edge_lo = c * (1 - levels * spacing)
    edge_hi = c * (1 + levels * spacing)
    if geometric:
        ratio = edge_hi / edge_lo
        for i in range(n + 1):
            lines[i] = edge_lo * ratio ** (i / n)
    else:
        step = (edge_hi - edge_lo) / n
        for i in range(n + 1):
            lines[i] = edge_lo + i * step
    return edge_lo, edge_hi


@njit(cache=True, inline="always")
def _book_lots(signed, price, fee, lot_q, lot_b, lot_i, lot_f):  # pragma: no cover - numba
    """Position.book_lots: match a fill against the open lots, first in first out; the lots'
    arrays (grown when full)."""
    qty = abs(signed)
    if qty <= 0.0:
        return lot_q, lot_b
    cap = lot_q.shape[0]
    buy = signed > 0
    left = qty
    gain = 0.0
    while left > EPS and lot_i[1] > 0 and (lot_q[lot_i[0]] > 0) != buy:
        h = lot_i[0]
        size = abs(lot_q[h])
        if size - left <= EPS:  # the whole lot closes
            take = size
            lot_i[0] = (h + 1) % cap
            lot_i[1] -= 1
        else:
            take = left
            lot_q[h] += take if buy else -take
        gain += (price - lot_b[h]) * (-take if buy else take)
        left -= take
    if left < qty:
        closed = min(qty - left, qty)
        gain -= fee * closed / qty
        lot_f[0] += gain
        if gain > 0:
            lot_f[1] += gain
        else:
            lot_f[2] -= gain
        lot_i[2] += 1
    if left > EPS:
        per_unit = fee / qty
        if lot_i[1] == cap:  # full: lay the ring out again, twice as large, oldest first
            q2 = np.empty(2 * cap)
            b2 = np.empty(2 * cap)
            for k in range(cap):
                q2[k] = lot_q[(lot_i[0] + k) % cap]
                b2[k] = lot_b[(lot_i[0] + k) % cap]
            lot_q, lot_b = q2, b2
            lot_i[0] = 0
            cap = 2 * cap
        t = (lot_i[0] + lot_i[1]) % cap
        lot_q[t] = left if buy else -left
        lot_b[t] = price + per_unit if buy else price - per_unit
        lot_i[1] += 1
    return lot_q, lot_b


@njit(cache=True, inline="always")
def _unsell(i, selling, sc, ic):  # pragma: no cover - numba
    """GridCells._unsell: cell ``i``'s sell is no longer open."""
    if selling[i] != 0.0:
        sc[0] -= selling[i]
        selling[i] = 0.0
        ic[_SELLS] -= 1
        if ic[_SELLS] == 0:
            sc[0] = 0.0  # no drift from adding and taking away floats


@njit(cache=True, inline="always")
def _order_for(i, seeding, state, qtys, lines, selling, parked, ostat, obuy, oqty, oprice,
               actions, base, sc, ic):  # pragma: no cover - numba
    """GridCells.order_for on a spot market: decide cell ``i``'s order (its sell no larger than
    the base beyond the other open sells), or park the cell when nothing is left to sell."""
    holding = state[i] == HOLDING
    _unsell(i, selling, sc, ic)
    q = qtys[i]
    if holding:
        free = (np.inf if seeding else base) - sc[0]
        if free < q * (1.0 - 1e-9):
            q = max(free, 0.0)
        if q <= 0.0:
            ostat[i] = NONE
            if not parked[i]:
                parked[i] = True
                ic[_NPARKED] += 1
            return
        selling[i] = q
        sc[0] += q
        ic[_SELLS] += 1
    obuy[i] = not holding
    oqty[i] = q
    oprice[i] = _cell_order_price(holding, lines[i], lines[i + 1])
    ostat[i] = PENDING
    actions[ic[_NACTIONS]] = i
    ic[_NACTIONS] += 1
