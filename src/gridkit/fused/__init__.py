"""Fused backtests: a whole bar backtest as compiled numba loops over the OHLCV arrays.

:mod:`~gridkit.fused.validate` drops bars as the built-in validators do, :mod:`~gridkit.fused.grid`
trades a fixed-line grid through the ``simulated`` executor's fill rules (the functions of
:mod:`gridkit.trading.fills`, compiled), :mod:`~gridkit.fused.plan` says whether a pipeline has a
fused form (and why not), and :mod:`~gridkit.fused.run` runs one in place of the event loop.
Every fill, and the final cash, base and equity, are those of the plugin path to the last bit.
"""
