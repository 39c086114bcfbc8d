"""The ``disabled`` grid: the DORMANT choice, a grid that stands aside."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from gridkit.core.components import Strategy
from gridkit.core.types import Cancel, Order
from gridkit.runtime.context import Context


class DisabledGrid(Strategy):
    """A grid that stands aside (the 000 seed's DORMANT regime: no trading).

    It has no lines and places no orders. At the start and on every bar it cancels each order
    of its lane that is open (``ctx.open_orders``: left by an earlier strategy or a resumed
    run), once per order: a cancel already asked for is not asked again while it is pending.
    The base and cash the account holds are left as they are.
    """

    name = "disabled"

    @frozen
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.asked: set[str] = set()  # order ids whose cancel is requested and still open
        self.cancels = 0

    def _cancel_open(self, ctx: Context) -> list[Order | Cancel]:
        open_ids = ctx.open_orders.keys()
        self.asked &= open_ids  # forget orders that are gone
        out: list[Order | Cancel] = [Cancel(oid) for oid in open_ids if oid not in self.asked]
        self.asked.update(c.order_id for c in out)  # type: ignore[union-attr]
        self.cancels += len(out)
        return out

    def start(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self._cancel_open(ctx)

    def on_bar(self, ctx: Context) -> Sequence[Order | Cancel]:
        return self._cancel_open(ctx)

    def stats(self) -> dict[str, Any]:
        return {"cancels": self.cancels}
