"""The order ledger: random submit / cancel / partial-fill sequences keep it consistent."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import Accepted, Cancelled, Expired, Fill, Ledger, Order, Rejected

actions = st.lists(st.tuples(st.sampled_from(["submit", "accept", "fill", "cancel", "expire",
                                              "reject", "stray"]),
                             st.integers(0, 20), st.floats(0.01, 1.0)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_random_order_flows_keep_the_ledger_consistent(flow: list[tuple[str, int, float]]
                                                       ) -> None:
    """Every order is live or ended once; filled never exceeds ordered; the average price is
    the fills' weighted mean; open buy quantity equals what the live buys have left; a report
    for an order that is not live is an anomaly, never a state change."""
    ledger = Ledger("t")
    orders: dict[str, Order] = {}
    fills: dict[str, list[tuple[float, float]]] = {}
    ended: set[str] = set()
    anomalies = 0
    for ts, (what, k, frac) in enumerate(flow):
        ids = sorted(orders)
        pick = ids[k % len(ids)] if ids else None
        if what == "submit":
            side = "buy" if k % 2 else "sell"
            order = Order(ledger.next_id(), side, 1.0 + k, 100.0 + k, symbol="X")
            ledger.request(order, ts)
            orders[order.id] = order
            continue
        if pick is None:
            continue
        live = ledger.get(pick) is not None
        if what == "stray" or not live:
            anomalies += 1
            report = Fill(pick if what != "stray" else "nope", ts, "buy", 1.0, 1.0, 0.0)
            assert ledger.apply(report) is None
            if what != "stray":
                assert pick in ended
            continue
        state = ledger.get(pick)
        assert state is not None
        if what == "accept":
            ledger.apply(Accepted(pick, ts))
            assert state.status in ("open", "partial")
        elif what == "fill":
            qty = state.remaining * frac if frac < 0.9 else state.remaining
            price = orders[pick].price - frac
            fills.setdefault(pick, []).append((qty, price))
            ledger.apply(Fill(pick, ts, orders[pick].side, qty, price, 0.0,
                              remaining=state.remaining - qty))
            if frac >= 0.9:
                assert state.status == "filled"
                ended.add(pick)
            else:
                assert state.status == "partial"
            done = fills[pick]
            total = sum(q for q, _ in done)
            assert math.isclose(state.filled, total, rel_tol=1e-12)
            assert math.isclose(state.avg_price, sum(q * p for q, p in done) / total,
                                rel_tol=1e-9)
        else:
            report = {"cancel": Cancelled(pick, ts), "expire": Expired(pick, ts),
                      "reject": Rejected(pick, ts, "no", "x")}[what]
            ledger.apply(report)
            assert state.status == {"cancel": "cancelled", "expire": "expired",
                                    "reject": "rejected"}[what]
            ended.add(pick)
        # invariants after every step
        assert set(ledger.open) == set(orders) - ended
        for s in ledger.open.values():
            assert s.filled <= s.order.qty + 1e-9
        want = sum(s.remaining for s in ledger.open.values() if s.order.side == "buy")
        assert math.isclose(ledger.open_buy_qty.get("X", 0.0), want, abs_tol=1e-9)
    assert len(ledger.anomalies) == anomalies
    assert sum(ledger.closed.values()) == len(ended)
    assert ledger.seq == len(orders)


def test_ids_are_the_run_key_and_a_sequence_restored_by_snapshot() -> None:
    ledger = Ledger("r7")
    assert [ledger.next_id() for _ in range(3)] == ["r7-1", "r7-2", "r7-3"]
    ledger.request(Order("r7-3", "buy", 2.0, 10.0, symbol="X"), 5)
    again = Ledger()
    again.restore(ledger.snapshot())
    assert again.next_id() == "r7-4"
    assert again.get("r7-3") is not None and again.open_buy_qty["X"] == 2.0
