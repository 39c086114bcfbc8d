"""The built-in bar validators (``timestamp``, ``price``, ``volume``, ``ohlc``) as one compiled
pass over the OHLCV arrays: which bars the plugin path accepts, and each validator's counts.

The decisions are those of :mod:`gridkit.plugins.validators`, rule for rule (the tests run both
on every real OHLCV file): the validators run in the pipeline's order, a bar one of them drops is
not shown to the next, and ``timestamp``'s baseline moves only with a bar every validator took.
Validation depends on the data alone, so a search runs it once for all of its trials.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Validator codes of a program, in pipeline order.
TIMESTAMP, PRICE, VOLUME_KEEP, VOLUME_DROP, OHLC = 0, 1, 2, 3, 4
#: Count slots of each code (the names the plugin validators count under).
REASONS = {
    TIMESTAMP: ("duplicate", "out_of_order", "future", "time_jump", "held_at_jump", "gaps",
                "missing_bars"),
    PRICE: ("nan", "infinite", "non_positive"),
    VOLUME_KEEP: ("zero", "nan", "infinite", "negative"),
    VOLUME_DROP: ("zero", "nan", "infinite", "negative"),
    OHLC: ("high_below_low", "open_close_outside_range"),
}
LEARN = 32  # TimestampValidator._LEARN
JUMP_STEPS = 100  # TimestampValidator.JUMP_STEPS
_GAPS, _MISSING = 5, 6


@njit(cache=True)
def _price_fault(o, h, lo, c):  # pragma: no cover - numba
    if o != o or h != h or lo != lo or c != c:
        return 0  # nan
    inf = np.inf
    if o == inf or o == -inf or h == inf or h == -inf or lo == inf or lo == -inf \
            or c == inf or c == -inf:
        return 1  # infinite
    return 2  # non_positive


@njit(cache=True)
def _gap(counts, row, step, last, ts):  # pragma: no cover - numba
    if step == 0 or ts - last <= step:
        return
    missing = (ts - last) // step - 1
    if missing > 0:
        counts[row, _GAPS] += 1
        counts[row, _MISSING] += missing


@njit(cache=True)
def validate_bars(ts, open_, high, low, close, volume, program, interval, horizon,
                  max_jump):  # pragma: no cover - numba
    """Accept or drop every bar; returns ``(accepted, counts, tstate, steps)``.

    ``program``: the validators' codes in pipeline order (at most one ``TIMESTAMP``);
    ``interval``: its ``interval_ms`` (0: learnt); ``horizon``: the latest timestamp that is not
    in the future (inf: no check); ``max_jump``: ms, or inf. ``counts[k]`` holds validator
    ``k``'s counts in :data:`REASONS` order; ``tstate = [last, has_last, step, held, has_held,
    pending]`` and ``steps`` (``pending`` rows of ``(last, ts)``) are the timestamp validator's
    state at the end, for its ``stats()``.
    """
    n = ts.shape[0]
    k = program.shape[0]
    accepted = np.zeros(n, dtype=np.bool_)
    counts = np.zeros((k, 7), dtype=np.int64)
    tsrow = -1
    for j in range(k):
        if program[j] == TIMESTAMP:
            tsrow = j
    inf = np.inf
    last = 0
    has_last = False
    step = interval
    jump = max(max_jump, float(JUMP_STEPS * step))
    min_step = 0
    has_min = False
    held = 0
    has_held = False
    steps = np.zeros((LEARN, 2), dtype=np.int64)
    pending = 0
    for i in range(n):
        t = ts[i]
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        ok = True
        for j in range(k):
            code = program[j]
            if code == TIMESTAMP:
                if has_last and t <= last:
                    counts[j, 0 if t == last else 1] += 1
                    ok = False
                elif t > horizon:
                    counts[j, 2] += 1
                    ok = False
                elif has_last and t - last > jump and not (
                        has_held and held < t and t - held <= jump):
                    if has_held:
                        if t == held:
                            counts[j, 0] += 1
                            ok = False
                        else:
                            counts[j, 3] += 1
                    if ok:
                        held = t
                        has_held = True
                        ok = False
            elif code == PRICE:
                if not (0.0 < o < inf and 0.0 < h < inf and 0.0 < lo < inf and 0.0 < c < inf):
                    counts[j, _price_fault(o, h, lo, c)] += 1
                    ok = False
            elif code in (VOLUME_KEEP, VOLUME_DROP):
                v = volume[i]
                if not (0.0 < v < inf):
                    if v == 0:
                        counts[j, 0] += 1
                        ok = code == VOLUME_KEEP
                    else:
                        counts[j, 1 if v != v else 2 if (v == inf or v == -inf) else 3] += 1
                        ok = False
            else:  # OHLC
                if not (lo <= o <= h and lo <= c <= h):
                    counts[j, 0 if h < lo else 1] += 1
                    ok = False
            if not ok:
                break
        if not ok:
            continue
        accepted[i] = True
        if tsrow < 0:
            continue
        # TimestampValidator.accepted
        if has_held:
            counts[tsrow, 4 if t > held else 3] += 1
            has_held = False
        prev, had = last, has_last
        last = t
        has_last = True
        if step != 0:
            if had and t - prev > step:
                _gap(counts, tsrow, step, prev, t)
        elif had:
            diff = t - prev
            steps[pending, 0] = prev
            steps[pending, 1] = t
            pending += 1
            if not has_min or diff < min_step:
                min_step = diff
                has_min = True
                jump = max(max_jump, float(JUMP_STEPS * diff))
            if pending == LEARN:
                spans = np.sort(steps[:, 1] - steps[:, 0])
                step = spans[LEARN // 2]
                jump = max(max_jump, float(JUMP_STEPS * step))
                for r in range(LEARN):
                    _gap(counts, tsrow, step, steps[r, 0], steps[r, 1])
                pending = 0
    tstate = np.array([last, 1 if has_last else 0, step, held, 1 if has_held else 0, pending],
                      dtype=np.int64)
    return accepted, counts, tstate, steps[:pending].copy()
