"""Trading math the kernel's account and executors call: fill rules, markets, margin, funding.

Plain modules over floats and numpy arrays, with no dependency on the kernel (they import only
:mod:`gridkit.core.errors`), so the kernel imports them and never the reverse:

* :mod:`gridkit.trading.fills` — the fill rules of DESIGN.md §6 and the grid cell rule of §7,
  as plain functions numba can compile, shared by the executor, the grids and fused kernels;
* :mod:`gridkit.trading.markets` — market metadata in ccxt's ``load_markets()`` format, and
  the exchange's order filters (tick, lot, minimum notional);
* :mod:`gridkit.trading.margin` — Binance USDⓈ-M linear perpetual margin, PnL, liquidation
  price and funding payment, as scalar functions numba can compile;
* :mod:`gridkit.trading.funding` — funding-rate and mark-price series of a perpetual from
  freqtrade's feather files, CSV or ccxt JSON.
"""
