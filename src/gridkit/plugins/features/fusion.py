"""Runs the built-in bar features of a pipeline as one compiled step per bar.

Eight of the core features and ``atr`` and ``ema`` each cost 0.5-1.5 µs per bar as Python
``update`` calls; :data:`BAR_FUSER` lays the state of all of them out in two arrays and updates
them in one call of :func:`~gridkit.plugins.features.kernels_fused.fused_bar_step`, whose cost
barely grows with the number of features. The values are those of the Python updates, bit for
bit. Importing numba and loading the cached kernel cost about a second at the start of a run,
which is why the engine fuses only when it pays (``[pipeline] fuse_features``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from gridkit.core.components import Feature
from gridkit.plugins.features.fused_kinds import KINDS

if TYPE_CHECKING:
    import numpy as np

    from gridkit.core.types import Bar



class Layout(NamedTuple):
    """What one feature needs in the fused arrays, as its class declares it.

    The feature builds it from its own (already validated) private settings, so the kernel
    starts exactly where a fresh ``update`` would. The slots are those its step function in
    :mod:`~gridkit.plugins.features.kernels_fused` documents.
    """

    #: The kernel step that updates it: one of :data:`KINDS`.
    kind: int
    #: Int state slots and float state slots.
    n_int: int
    n_float: int
    period: int
    lag: int = 0
    #: The float option of the step: bb-position's ``k`` or an EMA's ``alpha``.
    option: float = 0.0
    #: Float slots that start as NaN (a "previous close" not seen yet); the others start at 0.
    nan_slots: tuple[int, ...] = ()
    #: ``ready`` is true once int slot ``ready_slot`` (a count of bars or changes) exceeds
    #: ``ready_after``: what the feature's ``update`` would have set it to.
    ready_slot: int = 0
    ready_after: int = 0


class BarFuser:
    """Fuses the ten built-in bar features the kernel knows into one compiled step."""

    def accepts(self, feature: Feature) -> bool:
        """True if ``feature``'s own class declares a layout for a step the kernel has.

        The declaration must be in the class body itself (:meth:`FusableBarFeature.fused_layout`):
        a subclass that inherits it does not qualify, since it may override ``update`` and the
        kernel would not know.
        """
        return (isinstance(feature, FusableBarFeature)
                and "fused_layout" in type(feature).__dict__
                and feature.fused_layout().kind in KINDS)

    def program(self, features: Sequence[Feature]) -> FusedBars:
        """The fused state of ``features``, each as a fresh ``update`` would start; from now
        on each feature's ``ready`` reads its state there."""
        fused = FusedBars([f.fused_layout() for f in features])  # type: ignore[attr-defined]
        for row, feature in enumerate(features):
            feature._fused = (fused, row)  # type: ignore[attr-defined]
        return fused

    def build(self, members: Sequence[tuple[str, Feature]],
              values: dict[str, float]) -> Callable[[Bar], None]:
        """One callable per bar that updates every member and writes ``values[key]``."""
        fused = self.program([f for _, f in members])
        return fused.publisher(tuple(k for k, _ in members), values,
                               tuple(f for _, f in members))


class FusedBars:
    """The two arrays of a fused feature set: its program, options and state, and its values.

    ``ints = [m, m rows of (kind, int offset, float offset, period, lag), current row, int
    state]``;
    ``floats = [m values, m float options, float state]``. Offsets are absolute indices.
    """

    def __init__(self, layouts: Sequence[Layout]) -> None:
        import numpy as np

        m = len(layouts)
        io, fo = 2 + 5 * m, 2 * m  # ints[1 + 5m]: the row being stepped
        rows: list[int] = [m]
        options: list[float] = []
        nan_at: list[int] = []
        #: Per row: (absolute int slot, count) that its ``ready`` compares with.
        self._ready_at: list[tuple[int, int]] = []
        for lay in layouts:
            if lay.kind not in KINDS:
                raise ValueError(f"no fused step of kind {lay.kind}")
            rows.extend((lay.kind, io, fo, lay.period, lay.lag))
            options.append(lay.option)
            nan_at.extend(fo + s for s in lay.nan_slots)
            self._ready_at.append((io + lay.ready_slot, lay.ready_after))
            io += lay.n_int
            fo += lay.n_float
        self.m = m
        self.ints = np.zeros(io, dtype=np.int64)
        self.ints[:len(rows)] = rows
        self.floats = np.zeros(fo)
        self.floats[:m] = np.nan
        self.floats[m:2 * m] = options
        self.floats[nan_at] = np.nan
        #: The latest values, one per feature (a view into ``floats``, overwritten per bar).
        self.values = self.floats[:m]
        self.kernel = _entry_point()

    def ready(self, row: int) -> bool:
        """Whether feature ``row`` is warm: what its ``update`` would have set ``ready`` to."""
        slot, after = self._ready_at[row]
        return bool(self.ints[slot] > after)

    def current(self) -> int:
        """The row the last step was updating (the one that raised, if one did)."""
        return int(self.ints[1 + 5 * self.m])

    def step(self, bar: Bar) -> np.ndarray:
        """Update with one bar; the new values, one per feature (:attr:`values`)."""
        self.kernel(self.ints, self.floats, bar.high, bar.low, bar.close, bar.volume)
        return self.values

    def publisher(self, keys: Sequence[str], values: dict[str, float],
                  members: Sequence[Feature] = ()) -> Callable[[Bar], None]:
        """A function of one bar that steps and writes the new values to ``values[key]``.

        When the step raises, the exception's ``gridkit_component`` is set to the one of
        ``members`` (the features, in ``keys`` order) that was being stepped, so the engine
        names that feature (see :class:`gridkit.runtime.fusion.Fuser`).
        """
        # The assignment is generated as one unpacking statement, ``v[k0], v[k1], ... = row``:
        # about half the cost of a loop over zip(). Keys are bound as names, never as code.
        names = {f"k{i}": key for i, key in enumerate(keys)}
        targets = ", ".join(f"v[{n}]" for n in names) + ("," if len(names) == 1 else "")
        src = ("def step(bar):\n"
               "    try:\n"
               "        kernel(ints, floats, bar.high, bar.low, bar.close, bar.volume)\n"
               "    except Exception as err:\n"
               "        err.gridkit_component = members[current()]\n"
               "        raise\n"
               f"    {targets} = tolist()\n")
        scope: dict[str, Any] = {"kernel": self.kernel, "ints": self.ints, "floats": self.floats,
                                 "v": values, "tolist": self.values.tolist,
                                 "members": tuple(members), "current": self.current, **names}
        exec(compile(src, "<gridkit fused features>", "exec"), scope)
        step = scope["step"]
        # All of the fused state: a resumed run copies its saved arrays back into these.
        step.state = (self.ints, self.floats)
        return step  # type: ignore[no-any-return]

    def batch(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Run over whole columns (``high, low, close, volume``); one row per feature."""
        import numpy as np

        from gridkit.plugins.features.kernels_fused import fused_bar_batch

        def col(name: str) -> np.ndarray:
            return np.ascontiguousarray(columns[name], dtype=np.float64)

        return fused_bar_batch(self.ints, self.floats, col("high"), col("low"), col("close"),
                               col("volume"))


def _entry_point() -> Callable[..., None]:
    """The compiled step, called without numba's per-call type dispatch.

    Dispatch inspects the type of every argument on every call (about 1 µs for this
    signature); the arguments here always have the same types, so the compiled entry point
    of that one signature is taken once and called directly. Falls back to the dispatcher if
    numba ever stops exposing it.
    """
    import numpy as np
    from numba import types

    from gridkit.plugins.features.kernels_fused import fused_bar_step

    ints, floats = np.zeros(1, dtype=np.int64), np.zeros(1)  # m = 0: compiles, does nothing
    fused_bar_step(ints, floats, 0.0, 0.0, 0.0, 0.0)
    f8 = types.float64
    sig = (types.int64[::1], f8[::1], f8, f8, f8, f8)
    try:
        return fused_bar_step.overloads[sig].entry_point  # type: ignore[no-any-return]
    except (AttributeError, KeyError):  # pragma: no cover - numba internals moved
        return fused_bar_step  # type: ignore[no-any-return]


#: The fuser the built-in bar features name as their ``fuser``.
BAR_FUSER = BarFuser()


class FusableBarFeature(Feature):
    """Base of the built-in bar features :data:`BAR_FUSER` can run fused.

    Each fusable class declares, in its own body, :meth:`fused_layout`: which kernel step
    updates it and how its state is laid out. ``ready`` reads the fused state once the feature
    is fused, so it stays true to the feature either way; the Python ``update`` sets ``_ready``.
    """

    fuser = BAR_FUSER
    _ready = False
    _fused: tuple[FusedBars, int] | None = None

    def fused_layout(self) -> Layout:
        """The kernel step and state layout of this feature with its options (see
        :class:`Layout`). Only a class that defines this itself is fused."""
        raise NotImplementedError

    @property  # type: ignore[override]
    def ready(self) -> bool:
        """False until the window is full (see :attr:`gridkit.Feature.ready`)."""
        if self._fused is None:
            return self._ready
        fused, row = self._fused
        return fused.ready(row)
