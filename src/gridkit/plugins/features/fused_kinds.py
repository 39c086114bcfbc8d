"""The fused kernel's step functions, by number: what a fusable feature names in its layout.

A module of its own, free of numba, so that the fusion planner and the feature classes can name
a step without importing the compiled kernel (:mod:`~gridkit.plugins.features.kernels_fused`),
which only a fused run should pay for.
"""

PRICE_CHANGE = 0
PRICE_POSITION = 1
VOLUME_ACCELERATION = 2
RSI = 3
BB_POSITION = 4
VOLATILITY = 5
TREND_STRENGTH = 6
ATR = 7
EMA = 8
VOLUME_RATIO = 9
#: Every step number the kernel knows.
KINDS = frozenset(range(10))
