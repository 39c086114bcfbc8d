"""Kill tests, the long version: a live and a paper grid SIGKILLed 50 times each and resumed.

Target (issue "a grid bot that never loses an order"): after ≥ 50 kills at random points
(including between an order leaving and its acknowledgement) and ``--resume`` each time, the
exchange and the journal agree: no order lost, none duplicated, position and balances equal to
the exchange's. The checks are those of ``tests/test_kill_resume.py`` (run here on the same
local exchange and tape); this script prints what the runs did.

Run from the repository root: ``python benchmarks/kill_resume.py [--quick]`` (``--quick``: 8
kills each; GRIDKIT_KILLS sets the number). Takes about 4 minutes at 50 kills.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, Row, Section, main

sys.path.insert(0, str(REPO / "tests"))

from test_kill_resume import (
    journal_orders,
    live_kills,
    local_exchange,
    paper_kills,
    pct,
    rows,
)


def _resume_rows(name: str, report: object, wall: float) -> list[Row]:
    times = report.resume_times  # type: ignore[attr-defined]
    restarts = len(report.kills) + 1  # type: ignore[attr-defined]
    how = ("process start (python -m gridkit run --resume) to the run reopened in the store, "
           "i.e. interpreter start, imports, pipeline build and store open")
    return [
        Row(f"{name}: kills (SIGKILL)", len(report.kills), "",  # type: ignore[attr-defined]
            "≥ 50", len(report.kills) >= 50, how="random times; some during start-up"),  # type: ignore[attr-defined]
        Row(f"{name}: kills during start-up", report.kills_starting, "",  # type: ignore[attr-defined]
            how="kills before the resumed process had reopened its run"),
        Row(f"{name}: restarts per second", restarts / wall, "/s",
            how=f"{restarts} processes in {wall:.0f} s of wall time"),
        Row(f"{name}: time to resume p50", pct(times, 0.5), "s", how=how),
        Row(f"{name}: time to resume p99", pct(times, 0.99), "s", how=how),
    ]


def collect(quick: bool) -> list[Section]:
    kills = int(os.environ.get("GRIDKIT_KILLS", 8 if quick else 50))
    os.environ["GRIDKIT_KILLS"] = str(kills)
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "live"
        folder.mkdir()
        with local_exchange(folder) as exchange:
            t0 = time.monotonic()
            agreed = "yes"
            try:
                report, caught = live_kills(exchange, folder, kills, seed=50)
            except AssertionError as err:
                agreed = f"NO: {str(err).splitlines()[0][:200]}"
                raise
            finally:
                wall = time.monotonic() - t0
            ex_orders = exchange.orders()
            journal = journal_orders(folder / "live.db")
            live_rows = [
                *_resume_rows("live", report, wall),
                Row("live: kills with an order in flight", caught.kills, "", "> 0",
                    caught.kills > 0, how="kills after the exchange had taken an order and "
                    "before its answer reached the bot (answers it could not deliver)"),
                Row("live: orders unacknowledged at a kill", caught.unacked, "",
                    how="orders committed to the journal with no report yet when the process "
                    "died, summed over the kills"),
                Row("live: of those, taken by the exchange", caught.taken, "",
                    how="on the exchange right after the kill (the user stream usually tells "
                    "the bot before the REST answer comes)"),
                Row("live: orders on the exchange", len(ex_orders), ""),
                Row("live: fills on the exchange", len(exchange.fills()), ""),
                Row("live: orders journalled", len(journal), ""),
                Row("live: lost + duplicated orders", 0, "", "0", True,
                    how="every check of tests/test_kill_resume.py::check_live passed"),
            ]
        sections.append(Section(
            "kill-live", "Kill and resume: live (ccxt executor, local exchange)",
            f"A static grid (24 cells, 52,600 to 57,400) trading through the ``ccxt`` executor "
            f"against gridkit's local Binance (real spot exchangeInfo; the first 2,000 real "
            f"BTC/USDT one-minute candles as the tape, 20 candles a second, looping). Order "
            f"creation is answered 0.15 s after the exchange took the order (the first 3 are taken "
            f"and never answered). "
            f"{kills} SIGKILLs, each 0.3 to 2.5 s after the resumed run reopened (15 % at a "
            f"random time from the process start), then a final resume, the market frozen, "
            f"SIGTERM; then the journal, the ledger, the account and the exchange compared. "
            f"Agreement: {agreed}.", live_rows))
        folder = Path(tmp) / "paper"
        folder.mkdir()
        with local_exchange(folder) as exchange:
            t0 = time.monotonic()
            report = paper_kills(exchange, folder, kills, seed=51)
            wall = time.monotonic() - t0
            db = folder / "paper.db"
            paper_rows = [
                *_resume_rows("paper", report, wall),
                Row("paper: orders journalled", len(journal_orders(db)), ""),
                Row("paper: fills journalled", rows(db, "SELECT count(*) FROM fills")[0][0], ""),
                Row("paper: fills booked twice or lost", 0, "", "0", True,
                    how="cash and base recomputed from the fills table equal the summary's"),
            ]
        sections.append(Section(
            "kill-paper", "Kill and resume: paper (paper executor, the exchange's market data)",
            f"The same grid in paper mode (market data from the local exchange's websocket, "
            f"fills simulated by the ``paper`` executor, 0.1 % fees), {kills} SIGKILLs as above, "
            f"then the journal replayed against the final summary.", paper_rows))
    return sections


if __name__ == "__main__":
    main(collect, __doc__.splitlines()[0])
