"""The portfolio risk book: returns aligned by bar time across lanes, statistics on a schedule,
VaR checked against an independent computation (numpy / scipy) on real Binance bars."""

from __future__ import annotations

import gzip
import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gridkit
from gridkit import Bar, Fill
from gridkit.plugins.risk.stats import Correlation, Var
from gridkit.runtime.account import Account, Position
from gridkit.runtime.context import Context, RunInfo
from gridkit.runtime.ledger import Ledger
from gridkit.runtime.riskbook import RiskBook, portfolio_var, risk_book
from gridkit.testing import advance, build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def load_bars(path: Path, count: int | None = None) -> list[Bar]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = json.load(f)
    return [Bar(int(r[0]), *map(float, r[1:6])) for r in rows[:count]]


@pytest.fixture(scope="module")
def nfi(data_dir: Path) -> dict[str, list[Bar]]:
    """Real Binance spot 5m bars from December 2020 (NostalgiaForInfinity's files), the same
    timestamps for the three symbols."""
    folder = data_dir / "ohlcv" / "nostalgiaforinfinity"
    bars = {s: load_bars(folder / f"{s.replace('/', '_')}-5m.json", 2000) for s in SYMBOLS}
    first = max(b[0].ts for b in bars.values())
    bars = {s: [x for x in b if x.ts >= first] for s, b in bars.items()}
    n = min(len(b) for b in bars.values())
    assert all([x.ts for x in b[:n]] == [x.ts for x in bars["BTC/USDT"][:n]]
               for b in bars.values())
    return {s: b[:n] for s, b in bars.items()}


def portfolio(symbols: tuple[str, ...], capital: float = 1e7) -> dict[str, Context]:
    """One context per lane, sharing the run, the account and the ledger, as the engine's."""
    run = RunInfo("t", "backtest", symbols[0], capital, Path.cwd(), symbols)
    acct, ledger = Account(capital, "USDT"), Ledger("t")
    return {s: Context(run, acct, ledger, s, acct.add(Position(s))) for s in symbols}


def feed(ctxs: dict[str, Context], bars: dict[str, list[Bar]], book_of: Any,
         upto: int, start: int = 0) -> None:
    """Every lane sees bar k in turn, then bar k+1: the engine's merge by time."""
    for k in range(start, upto):
        for s, ctx in ctxs.items():
            advance(ctx, bars[s][k])
            book_of.on_bar(ctx)


def hold(ctx: Context, qty: float) -> None:
    bar = ctx.bar
    ctx.portfolio.apply(Fill(f"h-{ctx.symbol}", bar.ts, "buy", qty, bar.close, 0.0,
                             symbol=ctx.symbol))
    ctx.portfolio.mark(bar.close)


def independent_returns(bars: dict[str, list[Bar]], first: int, last: int) -> np.ndarray:
    """Simple bar-close returns of bars first..last (inclusive), straight from the closes."""
    cols = []
    for s in SYMBOLS:
        c = np.array([b.close for b in bars[s][first - 1:last + 1]])
        cols.append(c[1:] / c[:-1] - 1.0)
    return np.column_stack(cols)


def test_returns_are_aligned_by_bar_time_and_a_gap_leaves_its_row_out(
        nfi: dict[str, list[Bar]]) -> None:
    ctxs = portfolio(SYMBOLS)
    check = build(Correlation, {"window": 20, "every": 5})
    feed(ctxs, nfi, check, 30)
    book = check.book
    assert book is not None and book.symbols == list(SYMBOLS) and book.rows == 30
    # Window of 20 complete rows: bars 9..28 (bar 29's row is still open).
    assert np.allclose(book.window_returns(), independent_returns(nfi, 9, 28), rtol=1e-12)
    # ETH misses bar 30: that row has no ETH return and drops out of the statistics; on bar 31
    # ETH's return spans the gap (its previous close), as the lane saw it.
    for s in ("BTC/USDT", "SOL/USDT"):
        advance(ctxs[s], nfi[s][30])
        check.on_bar(ctxs[s])
    for s, ctx in ctxs.items():
        advance(ctx, nfi[s][31])
        check.on_bar(ctx)
    advance(ctxs["BTC/USDT"], nfi["BTC/USDT"][32])
    check.on_bar(ctxs["BTC/USDT"])  # opens bar 32's row: bar 31's is complete
    got = book.window_returns()
    assert len(got) == 19  # 20 rows in the window, one incomplete
    eth = nfi["ETH/USDT"]
    assert got[-1, 1] == pytest.approx(eth[31].close / eth[29].close - 1.0, rel=1e-12)
    # A second check of the same run shares the book and does not count a bar twice.
    other = build(Var, {"limit": 0.1, "window": 20, "every": 5})
    other.on_bar(ctxs["BTC/USDT"])
    assert other.book is book and book.rows == 33


def test_statistics_are_recomputed_on_schedule_not_per_order(
        nfi: dict[str, list[Bar]], monkeypatch: pytest.MonkeyPatch) -> None:
    ctxs = portfolio(SYMBOLS)
    check = build(Var, {"limit": 0.5, "window": 100, "every": 10})
    feed(ctxs, nfi, check, 100)
    book = check.book
    assert book is not None and book.recomputes == 0 and not book.ready
    feed(ctxs, nfi, check, 161, start=100)
    # Rows complete at bars 100..160 when the next opens: a recompute at 100, 110, ..., 160.
    assert book.recomputes == 7 and book.ready and book.n == 100
    hold(ctxs["ETH/USDT"], 50.0)

    def no_window(*a: Any) -> Any:
        raise AssertionError("an order read the window")

    monkeypatch.setattr(RiskBook, "window_returns", no_window)
    ctx = ctxs["BTC/USDT"]
    for i in range(200):
        check.check(ctx.order("buy", 0.01 * (i + 1), ctx.bar.close), ctx)
    assert book.recomputes == 7


@pytest.mark.parametrize("method", ["historical", "parametric", "cornish-fisher"])
@pytest.mark.parametrize("confidence,horizon", [(0.95, 1), (0.99, 12)])
def test_var_matches_an_independent_computation_on_real_data(
        nfi: dict[str, list[Bar]], method: str, confidence: float, horizon: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    ctxs = portfolio(SYMBOLS)
    check = build(Var, {"limit": 0.5, "window": 288, "every": 12, "method": method,
                        "confidence": confidence, "horizon": horizon})
    feed(ctxs, nfi, check, 400)
    hold(ctxs["BTC/USDT"], 2.0)
    hold(ctxs["ETH/USDT"], -30.0 if method == "parametric" else 40.0)  # a short leg, too
    hold(ctxs["SOL/USDT"], 5000.0)
    book = check.book
    assert book is not None
    book.recompute()
    # The window: the 288 bars before the open row of bar 399.
    R = independent_returns(nfi, 399 - 288, 398)
    e = np.array([ctxs[s].position.qty * nfi[s][399].close for s in SYMBOLS])
    pnl = R @ e
    a = 1.0 - confidence
    if method == "historical":
        one = -np.quantile(pnl, a)
    else:
        q = stats.norm.ppf(a)
        if method == "cornish-fisher":
            S, K = stats.skew(pnl), stats.kurtosis(pnl)
            q = q + (q**2 - 1) * S / 6 + (q**3 - 3 * q) * K / 24 - (2 * q**3 - 5 * q) * S**2 / 36
        one = -(pnl.mean() + q * pnl.std(ddof=1))
    want = one * math.sqrt(horizon)
    got = book.var0[check.spec][0]
    assert got == pytest.approx(want, rel=1e-9)
    assert got > 0
    # The per-order estimate is VaR(e0) at e0, and close to the exact VaR nearby.
    assert book.var_estimate(check.spec, "ETH/USDT", 0.0) == pytest.approx(got, rel=1e-12)
    step = 0.05 * float(np.abs(e).sum())
    e2 = e.copy()
    e2[2] += step
    exact = portfolio_var(R, e2, method, confidence, horizon)
    est = book.var_estimate(check.spec, "SOL/USDT", step)
    assert est == pytest.approx(exact, rel=0.02)


def test_at_zero_exposure_the_estimate_is_the_sum_of_stand_alone_vars(
        nfi: dict[str, list[Bar]]) -> None:
    ctxs = portfolio(SYMBOLS)
    check = build(Var, {"limit": 0.5, "window": 288, "every": 12, "method": "parametric"})
    feed(ctxs, nfi, check, 301)
    book = check.book
    assert book is not None and book.ready and book.var0[check.spec][0] == 0.0
    R = book.window_returns()
    alone = [portfolio_var(R, np.eye(3)[i] * 1000.0, "parametric", 0.95) for i in range(3)]
    assert book.var_estimate(check.spec, "ETH/USDT", 1000.0) == pytest.approx(alone[1],
                                                                              rel=1e-6)
    # Both legs at once: no diversification credit before the next recompute.
    hold(ctxs["BTC/USDT"], 1000.0 / ctxs["BTC/USDT"].bar.close)
    est = book.var_estimate(check.spec, "ETH/USDT", 1000.0)
    assert est == pytest.approx(alone[0] + alone[1], rel=1e-6)
    both = portfolio_var(R, np.array([1000.0, 1000.0, 0.0]), "parametric", 0.95)
    assert both < est  # the exact figure is smaller: correlation below 1


def test_correlations_match_numpy_and_daily_pnl_follows_the_utc_day(
        nfi: dict[str, list[Bar]]) -> None:
    ctxs = portfolio(SYMBOLS, capital=100_000.0)
    check = build(Correlation, {"window": 288, "every": 12})
    feed(ctxs, nfi, check, 289)
    hold(ctxs["BTC/USDT"], 1.0)
    feed(ctxs, nfi, check, 301, start=289)
    book = check.book
    assert book is not None
    R = independent_returns(nfi, 300 - 288, 299)
    want = np.corrcoef(R, rowvar=False)
    assert np.allclose(book.corr, want, rtol=1e-10)
    assert book.correlation("BTC/USDT", "ETH/USDT") == pytest.approx(want[0, 1])
    assert np.allclose(book.vol, R.std(axis=0, ddof=1), rtol=1e-10)
    # Daily PnL: equity now less equity at the day's first bar (bars are 5 minutes apart).
    day0 = nfi["BTC/USDT"][300].ts // 86_400_000
    first = next(k for k in range(301) if nfi["BTC/USDT"][k].ts // 86_400_000 == day0)
    assert book._day == day0 and first <= 300
    acct = ctxs["BTC/USDT"].account
    assert book.daily_pnl == pytest.approx(acct.equity - book._day_open)
    assert book.worst_daily_pnl <= 0.0


def test_the_book_survives_a_resume_shared_and_without_the_account() -> None:
    ctxs = portfolio(("BTC/USDT", "ETH/USDT"))
    a = build(Correlation, {"window": 5, "every": 1})
    b = build(Var, {"limit": 0.1, "window": 10, "every": 1})
    run = ctxs["BTC/USDT"].run
    a.setup(run)
    b.setup(run)
    assert a.book is b.book and a.book is not None and a.book.window == 10
    for k in range(15):
        for s, ctx in ctxs.items():
            advance(ctx, Bar(k * 300_000, 100 + k, 101 + k, 99 + k, 100 + k + (s == "ETH/USDT"),
                             1.0))
            a.on_bar(ctx)
    a.book.exposure("BTC/USDT", ctxs["BTC/USDT"].account)
    saved = pickle.loads(pickle.dumps({"a": a.snapshot(), "b": b.snapshot()}))
    a2 = build(Correlation, {"window": 5, "every": 1})
    b2 = build(Var, {"limit": 0.1, "window": 10, "every": 1})
    a2.restore(saved["a"])
    b2.restore(saved["b"])
    assert a2.book is b2.book and a2.book is not None
    assert a2.book.rows == 15 and a2.book._positions == {} and a2.book._account is None
    assert np.array_equal(a2.book.window_returns(), a.book.window_returns())
    # The same pipeline run a second time starts a fresh book.
    a.setup(run)
    b.setup(run)
    assert a.book is b.book and a.book.rows == 0


def test_the_summary_has_a_risk_block_only_with_a_book(tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    base = (EXAMPLES / "portfolio.toml").read_text()
    (tmp_path / "plain.toml").write_text(base)
    plain = gridkit.run(tmp_path / "plain.toml")
    assert "risk" not in plain
    text = base.replace("capital = 40000", 'capital = 40000\nend = "2021-05-04T00:00:00Z"')
    text += '\n[[risk]]\nuse = "correlation"\nlimit = 0.8\nwindow = 144\nevery = 6\n'
    (tmp_path / "risk.toml").write_text(text)
    s = gridkit.run(tmp_path / "risk.toml")
    risk = s["risk"]
    # Three days of 5m bars, the end included.
    assert risk["ready"] and risk["window"] == 144 and risk["rows"] == 865
    assert set(risk["exposure"]) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert -1 < risk["correlation"]["BTC/USDT|ETH/USDT"] <= 1
    lanes = s["symbols"]
    for sym, e in risk["exposure"].items():
        assert e == pytest.approx(lanes[sym]["position"] * lanes[sym]["price"])
        assert risk["concentration"][sym] == pytest.approx(abs(e) / s["final_equity"])
    json.dumps(risk)  # the store keeps the summary as JSON


def test_risk_book_is_one_per_run() -> None:
    ctxs = portfolio(("BTC/USDT", "ETH/USDT"))
    run = ctxs["BTC/USDT"].run
    a, b = object(), object()
    book = risk_book(run, a)
    assert risk_book(run, b) is book  # the run's checks share it
    other = portfolio(("BTC/USDT", "ETH/USDT"))["BTC/USDT"].run
    theirs = risk_book(other, a)
    assert theirs is not book and risk_book(other, b) is theirs  # another run: its own
    assert risk_book(run, a) is not book  # the same check asking again: a fresh run of it


def _risk_example(tmp_path: Path, end: str, extra: str = "") -> Path:
    """The four-coin example with this module's checks only, up to ``end``."""
    text = (EXAMPLES / "portfolio-risk.toml").read_text()
    blocks = text.split("[[risk]]")
    text = "[[risk]]".join([blocks[0]] + [b for b in blocks[1:] if '"concentration"' not in b
                                           and '"daily-loss"' not in b])
    text = text.replace('end = "2021-05-20T20:35:00Z"', f'end = "{end}"') + extra
    if not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(EXAMPLES / "data")
    path = tmp_path / f"p{len(list(tmp_path.glob('p*.toml')))}.toml"
    path.write_text(text.replace("[executor]", extra + "\n[executor]", 1) if extra else text)
    return path


def test_a_run_stopped_mid_way_resumes_with_the_same_risk_book(tmp_path: Path) -> None:
    import os
    import signal

    from gridkit.cli import _load
    from gridkit.runtime.engine import run_pipeline

    path = _risk_example(tmp_path, "2021-05-06T00:00:00Z")
    whole = run_pipeline(_load(str(path), str(tmp_path / "a.db")))
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 4_000 and not sent:  # past the window: the book is ready
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    first = run_pipeline(_load(str(path), str(tmp_path / "b.db")), stop)
    assert first["status"] == "stopped" and first["risk"]["ready"]
    again = run_pipeline(_load(str(path), str(tmp_path / "b.db")), resume=True)
    assert again["resumed"]
    for key in ("final_equity", "orders_placed", "orders_rejected", "rejected_by", "risk"):
        assert again[key] == whole[key], key
    assert whole["orders_rejected"] > 0 and whole["risk"]["recomputes"] > 10


def test_a_window_longer_than_the_data_says_so_in_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _risk_example(tmp_path, "2021-05-01T12:00:00Z")  # 145 bars; the windows are 288
    s = gridkit.run(path)
    assert not s["risk"]["ready"] and s["risk"]["recomputes"] == 0
    comps = s["components"]
    corr, var = comps["risk[0]"], comps["risk[1]"]  # correlation, var in the example
    assert corr["refused"] == var["refused"] == 0 and var["unvetted"] > 0
    lines = [r.getMessage() for r in caplog.records if r.name == "gridkit.risk"]
    assert sorted(lines) == [
        f"{name}: the window of 288 bars never filled (the data gave 145 aligned bar times): "
        f"{c['unvetted']} orders passed unvetted; shorten window"
        for name, c in (("correlation", corr), ("var", var)) if c["unvetted"]]
    assert len(lines) >= 1
