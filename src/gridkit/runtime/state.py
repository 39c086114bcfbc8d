"""A run's state for resume: the kernel's (ledger, account, lanes, counters) and every
component's :meth:`~gridkit.Component.snapshot`, pickled into one blob that the store commits
in the same transaction as the journal rows it goes with.

Sources are not snapshotted: a resumed lane skips the events it had already taken. The store is
where the state goes. A component whose state does not pickle gets one clear error naming it.
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

from gridkit.core.errors import ComponentError, DataError
from gridkit.runtime.runstate import Run, component_at

#: Bumped when the layout of the blob changes; an older blob is refused clearly.
STATE_VERSION = 1
_LANE_FIELDS = ("consumed", "bars_seen", "accepted", "started", "first_ts", "ticks",
                "deferred", "folder", "funding_i", "next_funding", "funding_paid", "data_down",
                "start_bar", "regime_pending", "regime_count")
_CTX_FIELDS = ("bar", "event", "features", "weights", "adjust", "regime", "regime_score",
               "signals", "halted", "paused", "index", "feature_cost")
_RUN_FIELDS = ("seen", "orders_placed", "orders_cancelled", "rejected", "deferred", "halted",
               "tuned", "halt_orders")


def _components(run: Run) -> dict[str, Any]:
    p = run.pipeline
    out = {}
    for component in p.components():
        if component is p.store or any(component is lr.lane.source for lr in run.lanes):
            continue
        spec, _ = p.origin(component)
        if any(component is f and key in lr.fused for lr in run.lanes
               for key, f in lr.lane.features):
            continue  # its state lives in the fused arrays
        out[spec.path] = component
    return out


def snapshot(run: Run) -> bytes:
    """The run's whole state, as bytes."""
    lanes = []
    for lr in run.lanes:
        lanes.append({
            **{name: getattr(lr, name) for name in _LANE_FIELDS},
            "ctx": {name: getattr(lr.ctx, name) for name in _CTX_FIELDS},
            "fused": [[arr.copy() for arr in arrays] for arrays in lr.fused_state],
        })
    if len(lanes) == 1:  # one lane counts nothing itself: it took every event the loop saw
        lanes[0]["consumed"] = run.seen
    state = {
        "version": STATE_VERSION,
        "run": {name: getattr(run, name) for name in _RUN_FIELDS},
        "ledger": run.ledger.snapshot(),
        "account": run.account.snapshot(),
        "lanes": lanes,
        "components": {},
    }
    comps = state["components"]
    for path, component in _components(run).items():
        comps[path] = component.snapshot()
    try:
        return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
    except Exception as err:
        culprit = _unpicklable(run)
        if culprit is None:
            raise
        spec, reg = run.pipeline.origin(culprit)
        raise ComponentError(reg.kind, reg.name, reg.origin, err,
                             f"saving its state for resume ({spec.path}): override "
                             f"snapshot() and restore()") from err


def _unpicklable(run: Run) -> Any:
    for component in _components(run).values():
        try:
            pickle.dumps(component.snapshot())
        except Exception:
            return component
    return None


def restore(run: Run, data: bytes) -> None:
    """Put a run back as :func:`snapshot` saw it (on a pipeline built from the same config)."""
    try:
        state = pickle.loads(zlib.decompress(data))
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r}")
    except Exception as err:
        raise DataError(f"the saved state of run {run.run_id} cannot be read ({err}); it "
                        f"cannot be resumed") from None
    for name, value in state["run"].items():
        setattr(run, name, value)
    run.ledger.restore(state["ledger"])
    run.account.restore(state["account"])
    for lr, saved in zip(run.lanes, state["lanes"], strict=True):
        for name in _LANE_FIELDS:
            if name in saved:  # (a state saved before the field existed keeps its default)
                setattr(lr, name, saved[name])
        for name, value in saved["ctx"].items():
            setattr(lr.ctx, name, value)
        lr.fused_saved = saved["fused"]
    comps = _components(run)
    for path, value in state["components"].items():
        component = comps.get(path)
        if component is None:
            raise DataError(f"the saved state of run {run.run_id} has a component at {path} "
                            f"that this pipeline does not; it cannot be resumed")
        try:
            component.restore(value)
        except Exception as err:
            spec, reg = run.pipeline.origin(component)
            raise ComponentError(reg.kind, reg.name, reg.origin, err,
                                 f"restoring its state ({spec.path})") from err
    # Options tuned while the run went on (journalled, in run.tuned): the pipeline was built
    # from the file's values, so the tuned ones are put back, the last one of each option last.
    if run.tuned:
        for path, _old, new in run.tuned:
            component_at(run, path)[0].config = new
