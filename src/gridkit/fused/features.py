"""The fused bar features stepped over the accepted bars of whole arrays, in one compiled loop."""

from __future__ import annotations

from numba import njit

from gridkit.plugins.features.kernels_fused import fused_bar_step


@njit(cache=True)
def step_features(ints, floats, accepted, high, low, close, volume):  # pragma: no cover
    """Update the feature program of ``ints``/``floats`` (:class:`~gridkit.plugins.features
    .fusion.FusedBars`) with every accepted bar; the last values stay in ``floats[:m]``."""
    for i in range(close.shape[0]):
        if accepted[i]:
            fused_bar_step(ints, floats, high[i], low[i], close[i], volume[i])
