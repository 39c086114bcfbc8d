"""Built-in monitors: ``audit`` (a hash-chained log of what the run sent and heard)."""

from __future__ import annotations

from typing import Any

import attrs

from gridkit.core.components import Monitor, Store
from gridkit.core.errors import ConfigError
from gridkit.core.hookspecs import hookimpl
from gridkit.core.types import Accepted, Cancelled, Expired, Fill, Rejected
from gridkit.runtime import journal as j

#: The journal records the audit log keeps (marks, one per bar, are the equity curve's).
AUDITED = (j.OrderRequested, j.CancelRequested, Accepted, Rejected, Fill, Cancelled, Expired,
           j.Halted, j.Unhalted, j.Liquidated, j.Paused, j.ParamChanged, j.PhaseChanged)


class Audit(Monitor):
    """Every order request, report, halt, parameter and phase change in a hash-chained log.

    Each journal record of those kinds becomes an entry of the store's ``audit`` table: its
    canonical JSON and the SHA-256 of the previous entry's hash followed by it
    (:mod:`gridkit.runtime.audit`). The store writes the entries in the same transaction as
    the journal rows (in paper and live runs, before the order is sent), and continues one
    chain across the runs and resumptions of its file. ``gridkit audit verify --db PATH``
    walks the chain and names the first edited, deleted or reordered row.

    Needs a store that keeps a file (``[store] path`` or ``gridkit run --db``); it reads the
    journal only, so it costs the event loop nothing per bar.
    """

    name = "audit"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.entries = 0
        self._store: Any = None

    def bind(self, journal: Any, store: Store) -> None:
        if not getattr(store, "journaled", False) or not callable(getattr(store, "audit", None)):
            raise ConfigError("monitors: audit needs a store that keeps a file ([store] path, "
                              "or gridkit run --db PATH)")
        self._store = store
        journal.subscribe(self.record, _no_marks)

    def record(self, record: Any) -> None:
        """Append ``record`` to the log if it is of an audited kind."""
        if isinstance(record, AUDITED):
            data = attrs.asdict(record, recurse=True)
            ts = data.pop("ts", None)
            self._store.audit(ts, type(record).__name__, data)
            self.entries += 1

    def snapshot(self) -> Any:
        return {"entries": self.entries}  # (the store, bound again on resume, is not state)

    def restore(self, state: Any) -> None:
        if state:
            self.entries = int(state["entries"])

    def stats(self) -> dict[str, Any]:
        return {"entries": self.entries}


def _no_marks(*args: Any) -> None:
    return None


@hookimpl
def gridkit_register_monitors(register: Any) -> None:
    register(Audit)
