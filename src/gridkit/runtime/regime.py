"""The regime stage's decision: the label a lane is in, from its rules, with minimum dwell and
a score margin (hysteresis), so the regime does not flicker from bar to bar.

Per event, in O(number of rules):

1. **Raw label.** Score rules: the label of the highest score that is not NaN (ties to the rule
   listed first), None while no rule is ready. A label rule: what its ``classify`` returns.
2. **Margin** (score rules, ``[pipeline] regime_hysteresis = h``): a challenger replaces the
   incumbent label only if its score is at least the incumbent rule's current score plus
   ``h``; otherwise the incumbent stays the candidate. An incumbent whose score is NaN (its
   rule not ready) defends nothing.
3. **Minimum dwell** (``regime_dwell = d``): a candidate that differs from the incumbent is
   adopted only once it has been the candidate on ``d`` events in a row (any other candidate,
   the incumbent included, restarts the count). So once a label is adopted, it is held for at
   least ``d`` events: every run of a label in the output lasts ``d`` events or more, except
   the last run, cut by the end of the data. None (no rule ready, or an input NaN) is a
   candidate like any label, so a label is dropped for None only after ``d`` such events; the
   first label after None is adopted at once (there is nothing to hold). ``d = 1`` with
   ``h = 0`` is the plain rule of step 1, unchanged.

``ctx.regime_score`` is the score of the label in force (the incumbent's current score while
it holds against a challenger); a label rule has no score, so it is NaN.

The dwell state (the pending challenger and its count) is the lane's
(:class:`gridkit.runtime.runstate.LaneRun`) and is saved in the run's snapshot, so a resumed
run labels as one run straight through.
"""

from __future__ import annotations

#: ``regime_dwell`` when the pipeline does not set it. Measured by
#: ``benchmarks/regime_flicker.py`` on the real 1m, 5m and 1h files: the four score rules
#: flip about 150 times per 1,000 bars and ``markov`` 350-470; a dwell of 3 removes the one-
#: and two-bar runs, the most common, and leaves about 50 (see :doc:`/concepts`).
#: ``regime_dwell = 1`` gives the plain rule of step 1.
DEFAULT_DWELL = 3


def hold(current: str | None, pending: str | None, count: int, candidate: str | None,
         dwell: int) -> tuple[str | None, str | None, int]:
    """One step of the minimum-dwell filter: ``(label, pending, count)`` after ``candidate``.

    ``current`` is the label in force, ``pending`` the challenger seen on the last ``count``
    events in a row (None and 0 when there is none).
    """
    if candidate == current:
        return current, None, 0
    if current is None:
        return candidate, None, 0
    count = count + 1 if candidate == pending else 1
    if count >= dwell:
        return candidate, None, 0
    return current, candidate, count


def held_labels(raw: list[str | None], dwell: int) -> list[str | None]:
    """:func:`hold` over a whole sequence of raw labels (for scripts and tests)."""
    out: list[str | None] = []
    current, pending, count = None, None, 0
    for candidate in raw:
        current, pending, count = hold(current, pending, count, candidate, dwell)
        out.append(current)
    return out


def flips(labels: list[str | None]) -> int:
    """Changes of label between two events that both have one (None runs do not count)."""
    n, prev = 0, None
    for label in labels:
        if label is not None:
            if prev is not None and label != prev:
                n += 1
            prev = label
    return n
