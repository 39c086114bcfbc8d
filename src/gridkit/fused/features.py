"""The fused bar features stepped over the accepted bars of whole arrays, in one compiled loop."""

from __future__ import annotations

from numba import njit

from gridkit.plugins.features.kernels_fused import fused_bar_step


@njit(cache=True, nogil=True)
def step_features(ints, floats, accepted, high, low, close, volume, row=-1,
                  out=None):  # pragma: no cover
    """Update the feature program of ``ints``/``floats`` (:class:`~gridkit.plugins.features
    .fusion.FusedBars`) with every accepted bar; the last values stay in ``floats[:m]``.
    ``row`` >= 0: feature ``row``'s value after each accepted bar into ``out`` (one slot per
    bar; the others left as they are). Releases the GIL: programs of features that share no
    state step side by side on threads."""
    for i in range(close.shape[0]):
        if accepted[i]:
            fused_bar_step(ints, floats, high[i], low[i], close[i], volume[i])
            if out is not None and row >= 0:
                out[i] = floats[row]
