"""The kill switch: ``circuit-breaker`` halts at the bar its triggers say, an operator's
``gridkit halt`` / ``resume-trading`` go through the run's store, and a halt lasts across a
resumed run until it is lifted."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridkit import (
    Accepted,
    Bar,
    ComponentError,
    ConfigError,
    DataError,
    Halted,
    Mark,
    Order,
    OrderRequested,
    Rejected,
    RiskCheck,
)
from gridkit.core.config import structure
from gridkit.plugins.grids.static import StaticGrid
from gridkit.plugins.halt_commands import halt, resume_trading
from gridkit.plugins.risk import ExchangeRules
from gridkit.plugins.risk.breaker import CircuitBreaker, write_request
from gridkit.testing import RiskCheckContract, build, context, step_strategy
from test_risk_limits import GRID, btc_5m, grid_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class TestCircuitBreakerContract(RiskCheckContract):
    component_class = CircuitBreaker
    options = {"max_drop": 0.05, "window": 12, "max_rejections": 5, "max_gap": 0.1}


@pytest.mark.parametrize("options, line", [
    ({"max_drop": -0.05}, "risk[0].max_drop: must be in (0, 1], got -0.05"),
    ({"window": 0}, "risk[0].window: must be >= 1, got 0"),
    ({"max_rejections": 0}, "risk[0].max_rejections: must be >= 1, got 0"),
    ({"max_gap": 0.0}, "risk[0].max_gap: must be > 0, got 0.0"),
    ({"poll_seconds": -1.0}, "risk[0].poll_seconds: must be > 0, got -1.0"),
])
def test_bad_options_are_one_clear_line(options: dict[str, Any], line: str) -> None:
    config, problems = structure(options, CircuitBreaker.Config, "risk[0]")
    assert config is None and problems == [line]


def halt_of(run: Any) -> Halted:
    halts = [r for r in run.records if type(r) is Halted]
    assert len(halts) == 1
    return halts[0]


def nothing_after(run: Any, ts: int) -> None:
    """After the halt: no order requested, none left open."""
    assert not [r for r in run.records if type(r) is OrderRequested and r.ts > ts]
    assert run.summary["open_orders"] == 0


def test_equity_drop_within_the_window_halts_at_that_bar_on_real_bars() -> None:
    check = build(CircuitBreaker, {"max_drop": 0.05, "window": 12, "operator": False})
    run = grid_run(check)
    marks = [(r.ts, r.equity) for r in run.records if type(r) is Mark]
    want = None
    for i, (ts, e) in enumerate(marks):
        top = max(eq for _, eq in marks[max(0, i - 11):i + 1])
        if (top - e) / top >= 0.05:
            want = (ts, top, e)
            break
    assert want is not None
    halted = halt_of(run)
    assert halted.ts == want[0]
    assert halted.reason == (f"circuit breaker: equity fell {(want[1] - want[2]) / want[1]:.2%} "
                             f"within 12 bars ({want[1]:,.2f} -> {want[2]:,.2f}), max_drop "
                             f"5.00%")
    assert run.summary["halted"] == halted.reason
    nothing_after(run, halted.ts)
    assert check.stats()["halts"] == {"equity_drop": 1}


def test_a_price_gap_halts_at_that_bar_on_real_bars() -> None:
    bars = btc_5m()[:7000]
    check = build(CircuitBreaker, {"max_gap": 0.025, "operator": False})
    run = grid_run(check)
    want = next(b for a, b in itertools.pairwise(bars)
                if max(abs(b.open - a.close), abs(b.close - a.close)) / a.close > 0.025)
    halted = halt_of(run)
    assert halted.ts == want.ts
    assert halted.reason.startswith("circuit breaker: BTC/USDT moved ")
    assert halted.reason.endswith("above max_gap 2.50%")
    nothing_after(run, halted.ts)


def test_rejections_in_a_row_count_until_an_order_goes_through() -> None:
    check = build(CircuitBreaker, {"max_rejections": 3, "operator": False})
    bar = Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0)
    ctx = context(bar=bar)
    ledger = ctx.ledger

    def reject(n: int) -> None:
        for _ in range(n):
            o = ctx.order("buy", 1.0, 90.0)
            ledger.request(o, 0)
            ledger.apply(Rejected(o.id, 0, "insufficient cash", "simulated"))

    assert check.on_bar(ctx) is None
    reject(2)
    assert check.on_bar(ctx) is None
    ledger.request(ctx.order("buy", 1.0, 90.0), 0)  # one goes through: the streak is over
    reject(5)
    assert check.on_bar(ctx) is None
    reject(1)
    assert check.on_bar(ctx) is None
    reject(1)
    assert check.on_bar(ctx) is None
    reject(1)
    assert check.on_bar(ctx) == "circuit breaker: 3 orders rejected in a row (max_rejections 3)"


def test_rejections_in_a_row_halt_a_grid_below_the_minimum_notional_on_real_bars() -> None:
    """A grid whose levels are below Binance's minimum notional: every order it proposes is
    refused (``Filter failure: NOTIONAL``), nothing goes live, and the breaker halts at the
    next bar, counting them."""
    markets = EXAMPLES / "data" / "markets.json"
    check = build(CircuitBreaker, {"max_rejections": 5, "operator": False})
    run = step_strategy(StaticGrid, btc_5m()[:500], options={**GRID, "qty": 0.0001},
                        risk=[build(ExchangeRules), check],
                        pipeline=f'[market]\nmarkets = "{markets.as_posix()}"\n')
    halted = halt_of(run)
    before = run.records[:run.records.index(halted)]
    refused = [r for r in before if type(r) is Rejected]
    assert len(refused) >= 5 and not [r for r in before if type(r) is Accepted]
    assert all(r.by == "exchange-rules" for r in refused)
    marks = [r.ts for r in run.records if type(r) is Mark]
    assert halted.ts == marks[1]  # the bar after the start, whose orders were all refused
    assert halted.reason == (f"circuit breaker: {len(refused)} orders rejected in a row "
                             f"(max_rejections 5)")
    nothing_after(run, halted.ts)


# --- the operator's kill switch ---------------------------------------------------------------


def test_halt_refuses_a_file_that_is_not_a_gridkit_store(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    out = CliRunner().invoke(halt, ["--db", str(other), "--reason", "x"])
    assert isinstance(out.exception, DataError)
    assert str(out.exception) == (f"{other} is not a gridkit store (no gridkit mark or runs "
                                  f"table); nothing written")
    with sqlite3.connect(other) as conn:  # untouched
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    out = CliRunner().invoke(resume_trading, ["--db", str(text)])
    assert "is not a gridkit store" in str(out.exception)
    out = CliRunner().invoke(halt, ["--db", str(tmp_path / "none.db")])
    assert str(out.exception) == f"{tmp_path / 'none.db'}: no such store (give the --db file " \
                                 f"a run records into)"


def test_halt_cli_error_is_one_line_with_status_2(tmp_path: Path) -> None:
    """Through gridkit's own front (as the installed entry point runs it)."""
    from gridkit.cli import cli, main

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    cli.add_command(halt)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["halt", "--db", str(other)])
    finally:
        cli.commands.pop("halt", None)
    assert exit_.value.code == 2


def example_text(poll_bars: int = 5) -> str:
    text = (EXAMPLES / "pipeline.toml").read_text()
    return text + (f'\n[[risk]]\nuse = "circuit-breaker"\npoll_bars = {poll_bars}\n'
                   f'poll_seconds = 3600.0\n')


def build_example(db: Path, poll_bars: int = 5) -> Any:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    config = parse_pipeline(example_text(poll_bars), base_dir=EXAMPLES)
    return build_pipeline(config, store_path=str(db))


def journal(db: Path, kind: str) -> list[tuple[int, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        return [(ts, json.loads(data)) for ts, data in conn.execute(
            "SELECT ts, data FROM journal WHERE kind = ? ORDER BY rowid", (kind,))]


def test_an_operator_halt_lasts_across_a_resume_until_resume_trading(tmp_path: Path) -> None:
    """``gridkit halt`` mid-run halts at the breaker's next poll; the run, stopped and
    resumed, stays halted (nothing placed) until ``gridkit resume-trading``; then the orders
    the halt cancelled go out again and the grid trades on."""
    from gridkit.runtime.engine import run_pipeline

    db = tmp_path / "run.db"
    done_at: dict[str, int] = {}

    def first(done: int, total: int | None) -> None:
        if done >= 4096 and "halt" not in done_at:
            done_at["halt"] = done
            out = CliRunner().invoke(halt, ["--db", str(db), "--reason", "exchange incident"])
            assert out.exit_code == 0, out.output
            assert out.output.startswith("halt requested (request 1) for run 1 in ")
            assert out.stderr == ""  # its pipeline has a circuit-breaker: no warning
        elif done >= 12288 and "stop" not in done_at:
            done_at["stop"] = done
            os.kill(os.getpid(), signal.SIGTERM)

    one = run_pipeline(build_example(db), first)
    assert one["status"] == "stopped"
    reason = "operator halt (gridkit halt, request 1): exchange incident"
    assert one["halted"] == reason and one["open_orders"] == 0
    (ts, data), = journal(db, "Halted")
    assert data == {"reason": reason}
    # It halted within poll_bars (5) of the request, not later.
    with sqlite3.connect(db) as conn:
        bars_to_halt = conn.execute("SELECT COUNT(*) FROM equity WHERE ts <= ?",
                                    (ts,)).fetchone()[0]
    assert done_at["halt"] <= bars_to_halt <= done_at["halt"] + 5

    def stop_again(done: int, total: int | None) -> None:
        if done >= 8192 and "again" not in done_at:
            done_at["again"] = done
            os.kill(os.getpid(), signal.SIGTERM)

    two = run_pipeline(build_example(db), stop_again, resume=True)
    assert two["status"] == "stopped" and two["resumed"]
    assert two["halted"] == reason  # restored with the run: still halted
    assert two["orders_placed"] == one["orders_placed"]
    assert journal(db, "Unhalted") == []

    out = CliRunner().invoke(resume_trading, ["--db", str(db), "--reason", "all clear"])
    assert out.exit_code == 0 and out.output.startswith("resume requested (request 2)")
    three = run_pipeline(build_example(db), resume=True)
    assert three["status"] == "finished" and three["halted"] is None
    assert three["orders_placed"] > two["orders_placed"]
    (lift_ts, lifted), = journal(db, "Unhalted")
    assert lifted == {"by": "gridkit resume-trading, request 2: all clear", "halted": reason}
    breaker = three["components"]["risk[2]"]
    assert breaker["lifts"] == 1 and breaker["halts"] == {"operator": 1}
    # The orders the halt cancelled were proposed again, with their client order ids.
    with sqlite3.connect(db) as conn:
        cancelled = {r[0] for r in conn.execute(
            "SELECT order_id FROM orders WHERE status = 'cancelled' AND ts = ?", (ts,))}
        again = {r[0] for r in conn.execute(
            "SELECT order_id FROM orders WHERE status = 'requested' AND ts = ?", (lift_ts,))}
    assert cancelled and again == cancelled


def store_with_a_run(tmp_path: Path) -> tuple[Path, Any]:
    """A gridkit store at tmp_path/run.db holding one opened run, and that run's RunInfo."""
    from gridkit.plugins.stores import SqliteStore
    from gridkit.runtime.context import RunInfo

    db = tmp_path / "run.db"
    info = RunInfo("t", "backtest", "BTC/USDT", 1.0, tmp_path, store=str(db))
    store = build(SqliteStore, {"path": str(db)})
    store.setup(info)
    store.open_run(info, {})
    store.close()
    return db, info


def test_a_db_that_is_not_a_store_is_refused_before_the_run(tmp_path: Path) -> None:
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for db, says in ((notes, "is not a gridkit store"),
                     (tmp_path / "gone" / "run.db", "no such store")):
        text = example_text() + f'db = "{db.as_posix()}"\n'
        with pytest.raises(ConfigError) as err:
            build_pipeline(parse_pipeline(text, base_dir=EXAMPLES))
        line = str(err.value)
        assert says in line and "gridkit halt could not reach this run" in line
        assert "\n" not in line


def test_a_fresh_run_does_not_take_over_an_earlier_runs_halt(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Requests are for the run that is on: a halt left for run 1 is one warning line for a
    run started afresh on the same store, which trades."""
    from gridkit.runtime.engine import run_pipeline

    db = tmp_path / "run.db"
    one = run_pipeline(build_example(db))
    assert one["halted"] is None
    write_request(db, "halt", "for run 1")
    with caplog.at_level("WARNING", logger="gridkit.risk"):
        two = run_pipeline(build_example(db))
    assert two["halted"] is None and two["orders_placed"] == one["orders_placed"]
    said = [r.getMessage() for r in caplog.records if "unlifted halt" in r.getMessage()]
    assert said == [f"circuit-breaker: {db} holds an unlifted halt (request 1: for run 1) of "
                    f"an earlier run; this run does not take it over (gridkit halt again to "
                    f"halt it)"]


def test_requests_unreadable_mid_run_are_one_warning_and_the_run_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db, info = store_with_a_run(tmp_path)
    check = build(CircuitBreaker, {"poll_bars": 1})
    check.setup(info)
    with sqlite3.connect(db) as other:  # another program's table under the same name
        other.execute("CREATE TABLE halt_requests (note TEXT)")
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    with caplog.at_level("WARNING", logger="gridkit.risk"):
        assert check.on_bar(ctx) is None and check.on_bar(ctx) is None
    check.close()
    assert check.stats()["poll_errors"] == 2
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(
        f"circuit-breaker: cannot read operator requests from {db} (")


def test_halt_on_a_locked_store_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    db, _ = store_with_a_run(tmp_path)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DataError) as err:
            write_request(db, "halt", "x", timeout=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(err.value) == (f"{db}: cannot write the request (database is locked); nothing "
                              f"written, try again")
    assert write_request(db, "halt", "x")[0] == 1  # the first request that got in


def test_a_resume_request_written_before_a_halt_does_not_lift_it(tmp_path: Path) -> None:
    """A drop halts the run; a ``resume`` left in the store earlier is not a lift."""
    check = build(CircuitBreaker, {"max_drop": 0.05, "window": 12, "poll_bars": 1})
    db, info = store_with_a_run(tmp_path)
    write_request(db, "resume", "stale")
    check.setup(info)
    ctx = context(bar=Bar(0, 100.0, 100.0, 100.0, 100.0, 1.0))
    assert check.on_bar(ctx) is None  # polls: the stale resume is passed over
    assert check.lift(ctx) is None and check.lift(ctx) is None
    write_request(db, "resume", "now")
    assert check.lift(ctx) == "gridkit resume-trading, request 2: now"
    check.close()


# --- a risk check that raises ------------------------------------------------------------------


class Boom(RiskCheck):
    """Raises on the fifth order it sees."""

    name = "boom"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen = 0

    def check(self, order: Order, ctx: Any) -> Order:
        self.seen += 1
        if self.seen == 5:
            raise RuntimeError("limits table missing")
        return order


def test_a_raising_risk_check_is_named_and_nothing_is_sent_after_it() -> None:
    from gridkit.plugins.executors.bars import SimulatedExecutor

    class Recording(SimulatedExecutor):
        sent: list[str] = []

        def submit(self, order: Order, ctx: Any) -> str | None:
            Recording.sent.append(order.id)
            return super().submit(order, ctx)

    Recording.sent = []
    with pytest.raises(ComponentError) as err:
        step_strategy(StaticGrid, btc_5m()[:50], options=GRID, risk=[Boom()],
                      fill_model=Recording())
    line = str(err.value)
    assert "risk 'boom'" in line and "limits table missing" in line
    assert "\n" not in line
    assert "gridkit.testing" in line  # the plugin that registered it
    assert Recording.sent == []  # the failing batch (the grid's first) never went out



def test_a_check_that_raises_mid_run_stops_the_orders_there() -> None:
    """Failing on a later event, after orders went out: the run ends named and in one line,
    and nothing the executor is handed comes after the failure."""
    from gridkit.plugins.executors.bars import SimulatedExecutor

    sent: list[str] = []
    raised_after: list[int] = []

    class Recording(SimulatedExecutor):
        def submit(self, order: Order, ctx: Any) -> str | None:
            sent.append(order.id)
            return super().submit(order, ctx)

    class LateBoom(Boom):
        def check(self, order: Order, ctx: Any) -> Order:
            self.seen += 1
            if self.seen == 45:
                raised_after.append(len(sent))
                raise RuntimeError("limits table missing")
            return order

    with pytest.raises(ComponentError) as err:
        step_strategy(StaticGrid, btc_5m(), options=GRID, risk=[LateBoom()],
                      fill_model=Recording())
    assert "risk 'boom'" in str(err.value) and "\n" not in str(err.value)
    assert raised_after and raised_after[0] > 30  # the first batch and answers to fills went
    assert len(sent) == raised_after[0]  # and nothing after the failure


def test_a_lift_is_one_warning_line_in_the_event_log(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    from types import SimpleNamespace

    from gridkit.runtime.eventlog import EventLog
    from gridkit.runtime.journal import Unhalted
    from gridkit.runtime.ledger import Ledger

    log = EventLog(SimpleNamespace(ledger=Ledger()))
    with caplog.at_level(logging.INFO, logger="gridkit.orders"):
        log(Unhalted(5, "gridkit resume-trading, request 2", "operator halt"))
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING
    assert rec.getMessage() == "halt lifted (gridkit resume-trading, request 2): trading resumes"


def test_halt_warns_when_the_runs_pipeline_has_no_breaker(tmp_path: Path) -> None:
    from gridkit.runtime.engine import run_pipeline

    db = tmp_path / "run.db"
    text = (EXAMPLES / "pipeline.toml").read_text()
    from gridkit.runtime.engine import build_pipeline
    from gridkit.runtime.pipeline_file import parse_pipeline

    run_pipeline(build_pipeline(parse_pipeline(text, base_dir=EXAMPLES), store_path=str(db)))
    out = CliRunner().invoke(halt, ["--db", str(db)])
    assert out.exit_code == 0
    assert out.stderr.strip() == (f"Warning: run 1's pipeline has no circuit-breaker risk check: "
                                  f"nothing reads this request until a pipeline with one runs "
                                  f"on {db}")
    missing = CliRunner().invoke(halt, ["--db", str(tmp_path / "b.db")])
    assert isinstance(missing.exception, DataError)  # gridkit's front: one line, exit 2


def test_the_entry_points_declared_for_the_commands_resolve_with_static_help() -> None:
    """pyproject.toml declares ``halt`` and ``resume-trading`` as ``gridkit.commands`` entry
    points; once installed, ``gridkit --help`` lists them from their source, unimported."""
    from importlib import import_module
    from importlib.metadata import EntryPoint

    from gridkit.cli import static_help

    text = (EXAMPLES.parent / "pyproject.toml").read_text()
    group = text.split('[project.entry-points."gridkit.commands"]\n', 1)[1].split("\n\n")[0]
    declared = dict(line.replace('"', "").split(" = ") for line in group.splitlines())
    for name, cmd in (("halt", halt), ("resume-trading", resume_trading)):
        ep = EntryPoint(name, declared[name], "gridkit.commands")
        module, attr = ep.value.split(":")
        assert getattr(import_module(module), attr) is cmd and cmd.name == name
        info = static_help(ep)
        assert info is not None and info["help"] == cmd.help


def test_a_lifted_drawdown_halt_measures_again_from_the_lift() -> None:
    """Without re-arming, the account's drawdown (still past the limit) would halt the run at
    the first bar after every lift, and the orders the lift proposed again would be lost."""
    from types import SimpleNamespace

    from gridkit.plugins.risk import Drawdown

    check = build(Drawdown, {"limit": 0.1})

    def at(equity: float, drawdown: float, ts: int) -> Any:
        return SimpleNamespace(account=SimpleNamespace(equity=equity, drawdown=drawdown),
                               bar=SimpleNamespace(ts=ts))

    assert check.on_bar(at(95.0, 0.05, 1)) is None
    assert check.on_bar(at(88.0, 0.12, 2)) == "drawdown 12.00% reached the limit 10.00%"
    # (halted: on_bar is not called; a lift) trading again at 85, 15 % below the old peak
    assert check.on_bar(at(85.0, 0.15, 3)) is None
    assert check.on_bar(at(90.0, 0.10, 4)) is None  # a new peak since the lift: 90
    assert check.on_bar(at(81.0, 0.19, 5)) == "drawdown 10.00% reached the limit 10.00%"
    assert check.tripped_at == 5


def test_halt_takes_a_relative_db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = store_with_a_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert write_request(Path(db.name), "halt", "x")[0] == 1
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    with pytest.raises(DataError, match=r"notes\.db is not a gridkit store"):
        write_request(Path("notes.db"), "halt", "x")
