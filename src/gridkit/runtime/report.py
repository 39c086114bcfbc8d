"""``gridkit report``: one self-contained HTML file of a stored run, that opens offline.

Charts are drawn by plotly (``pip install 'gridkit[report]'``), whose JavaScript is embedded
in the file, so nothing is fetched when it is viewed: equity and drawdown, the price with the
grid's levels (the distinct prices of its limit orders) and every fill, the position, and the
fees and funding paid over time, and the profit by regime and by attention phase where the run
had them (:mod:`gridkit.runtime.breakdown`); then the summary's figures, the per-regime and
per-phase tables (bars, profit, fills, fees) and the configuration. Long runs are thinned to a
few thousand points a line, keeping each stretch's highest and lowest. A run still running (or
killed before its summary) gives a partial report, marked as such.
"""

from __future__ import annotations

import html
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from gridkit.core.errors import ConfigError
from gridkit.runtime.breakdown import phase_changes, regime_changes, split
from gridkit.runtime.runs import journal_records, open_store, show_run, write_atomically

#: At most this many points a line (each bucket keeps its first, lowest, highest and last).
MAX_POINTS = 4000
#: Above this many distinct order prices the levels are not drawn (a moving grid's).
MAX_LEVELS = 120


def write_report(db: Path, run_id: int | None, out: Path) -> dict[str, Any]:
    """Write the report of run ``run_id`` (default: the last) of store ``db`` to ``out``;
    what it holds: ``{"run", "partial", "traces", "bytes"}``."""
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:
        raise ConfigError("gridkit report draws with plotly: pip install 'gridkit[report]'"
                          ) from None
    with open_store(db) as conn:
        info = show_run(conn, db, run_id)
        rid = info["run"]
        marks = conn.execute("SELECT ts, close, base, equity, symbol FROM equity WHERE "
                             "run_id = ? ORDER BY rowid", (rid,)).fetchall()
        fills = conn.execute("SELECT ts, side, price, qty, fee, symbol FROM fills WHERE "
                             "run_id = ? ORDER BY rowid", (rid,)).fetchall()
        levels = [p for (p,) in conn.execute(
            "SELECT DISTINCT price FROM orders WHERE run_id = ? AND status = 'requested' AND "
            "kind = 'limit' AND price IS NOT NULL ORDER BY price", (rid,))]
        funding = _funding(conn, rid)
        capital = float(conn.execute("SELECT capital FROM runs WHERE id = ?", (rid,)
                                     ).fetchone()[0] or 0.0)
        regimes, phases = regime_changes(conn, rid), phase_changes(conn, rid)
    summary = info.get("summary") or {}
    partial = not summary
    split_by = {"regime": split(marks, fills, regimes, capital) if regimes else [],
                "phase": split(marks, fills, {"": phases}, capital) if phases else []}
    figures = [_equity(go, marks), _price(go, marks, fills, levels), _position(go, marks),
               _costs(go, fills, funding)]
    figures += [_profit_by(go, what, rows) for what, rows in split_by.items() if rows]
    divs = []
    traces = 0
    for k, fig in enumerate(figures):
        traces += len(fig.data)
        divs.append(pio.to_html(fig, full_html=False, include_plotlyjs=(k == 0),
                                div_id=f"chart{k}", config={"displaylogo": False}))
    page = _page(info, summary, partial, divs, traces, split_by)
    write_atomically(out, lambda f: f.write(page.encode()))
    return {"run": rid, "partial": partial, "traces": traces, "bytes": len(page.encode())}


def _funding(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, float]]:
    out = []
    for ts, fields in journal_records(conn, run_id, "FundingPaid"):
        try:
            # (a FundingPaid amount is what the account received: paid is its negative)
            out.append((ts, -float(fields.get("amount", 0.0))))
        except (TypeError, ValueError):
            continue
    return out


def thin(xs: list[Any], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[Any], list[float]]:
    """At most about ``limit`` points of a line: each bucket's first, lowest, highest and last,
    in time order, so the drawn line keeps every peak and trough."""
    n = len(xs)
    if n <= limit:
        return xs, ys
    size = math.ceil(n / (limit / 4))
    ox: list[Any] = []
    oy: list[float] = []
    for start in range(0, n, size):
        idx = range(start, min(start + size, n))
        lo = min(idx, key=lambda i: ys[i])
        hi = max(idx, key=lambda i: ys[i])
        for i in sorted({idx[0], lo, hi, idx[-1]}):
            ox.append(xs[i])
            oy.append(ys[i])
    return ox, oy


def _times(ts: list[int]) -> list[str]:
    from datetime import datetime, timezone

    return [datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
            for t in ts]


def _layout(fig: Any, title: str, height: int = 360) -> Any:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      template="plotly_white", legend={"orientation": "h"})
    return fig


def _equity(go: Any, marks: list[tuple[Any, ...]]) -> Any:
    from plotly.subplots import make_subplots

    by_ts: dict[int, float] = {}
    for ts, _, _, equity, _ in marks:  # (one account: the last mark of each time)
        by_ts[ts] = equity
    ts = list(by_ts)
    eq = list(by_ts.values())
    peak, dd = -math.inf, []
    for e in eq:
        peak = max(peak, e)
        dd.append((e / peak - 1.0) * 100 if peak > 0 else 0.0)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.05)
    x, y = thin(ts, eq)
    fig.add_trace(go.Scatter(x=_times(x), y=y, name="equity", mode="lines"), row=1, col=1)
    x, y = thin(ts, dd)
    fig.add_trace(go.Scatter(x=_times(x), y=y, name="drawdown %", mode="lines",
                               fill="tozeroy", line={"color": "#c0392b"}), row=2, col=1)
    return _layout(fig, "Equity and drawdown", 460)


def _price(go: Any, marks: list[tuple[Any, ...]], fills: list[tuple[Any, ...]],
           levels: list[float]) -> Any:
    fig = go.Figure()
    symbols = sorted({m[4] or "" for m in marks})
    for sym in symbols:
        rows = [(m[0], m[1]) for m in marks if (m[4] or "") == sym]
        x, y = thin([r[0] for r in rows], [r[1] for r in rows])
        fig.add_trace(go.Scatter(x=_times(x), y=y, name=f"{sym} close", mode="lines",
                                   line={"color": "#7f8c8d", "width": 1}))
    for side, color in (("buy", "#27ae60"), ("sell", "#c0392b")):
        rows = [f for f in fills if f[1] == side]
        fig.add_trace(go.Scatter(
            x=_times([f[0] for f in rows]), y=[f[2] for f in rows], name=f"{side}s",
            mode="markers", marker={"color": color, "size": 6,
                                    "symbol": "triangle-up" if side == "buy" else
                                    "triangle-down"},
            text=[f"{f[3]:g} @ {f[2]:g}, fee {f[4]:g}" for f in rows]))
    if len(levels) <= MAX_LEVELS:
        for level in levels:
            fig.add_hline(y=level, line={"color": "#bdc3c7", "width": 0.6, "dash": "dot"})
    return _layout(fig, f"Price, grid levels ({len(levels)}) and fills ({len(fills)})", 460)


def _position(go: Any, marks: list[tuple[Any, ...]]) -> Any:
    fig = go.Figure()
    for sym in sorted({m[4] or "" for m in marks}):
        rows = [(m[0], m[2]) for m in marks if (m[4] or "") == sym]
        x, y = thin([r[0] for r in rows], [r[1] for r in rows])
        fig.add_trace(go.Scatter(x=_times(x), y=y, name=f"{sym} position", mode="lines",
                                   line={"shape": "hv"}))
    return _layout(fig, "Position (base held; negative: short)")


def _costs(go: Any, fills: list[tuple[Any, ...]], funding: list[tuple[int, float]]) -> Any:
    fig = go.Figure()
    total, xs, ys = 0.0, [], []
    for f in fills:
        total += f[4]
        xs.append(f[0])
        ys.append(total)
    x, y = thin(xs, ys)
    fig.add_trace(go.Scatter(x=_times(x), y=y, name="fees paid", mode="lines"))
    if funding:
        total, xs, ys = 0.0, [], []
        for ts, amount in funding:
            total += amount
            xs.append(ts)
            ys.append(total)
        fig.add_trace(go.Scatter(x=_times(xs), y=ys, name="funding paid", mode="lines"))
    return _layout(fig, "Fees and funding paid (cumulative, quote currency)")


def _profit_by(go: Any, what: str, rows: list[dict[str, Any]]) -> Any:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[r["label"] for r in rows], y=[r["profit"] for r in rows],
                         name=f"profit by {what}",
                         text=[f"{r['share'] * 100:.0f} % of bars" for r in rows]))
    return _layout(fig, f"Profit by {what} (equity change, quote currency)", 320)


def _split_table(rows: list[dict[str, Any]]) -> str:
    keys = ("label", "bars", "share", "profit", "return_pct", "fills", "fees")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for k in keys)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.2f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)


def _page(info: dict[str, Any], summary: dict[str, Any], partial: bool, divs: list[str],
          traces: int, split_by: dict[str, list[dict[str, Any]]]) -> str:
    name = html.escape(str(info.get("name") or f"run {info['run']}"))
    banner = ("<p class=partial>Partial report: the run has no summary yet (it is running, "
              "or was killed before it ended); the charts hold what the store holds.</p>"
              if partial else "")
    head = [("run", info["run"]), ("status", info.get("status")), ("mode", info.get("mode")),
            ("symbols", info.get("symbols")), ("from", info.get("from")),
            ("to", info.get("to")), ("return %", info.get("return_pct")),
            ("max drawdown", info.get("max_drawdown"))]
    keys = ("final_equity", "final_cash", "fees_paid", "funding_paid", "buy_fills",
            "sell_fills", "orders_placed", "orders_rejected", "realized_profit", "sharpe",
            "sortino", "profit_factor", "halted")
    body = [_table(head + [(k, summary.get(k)) for k in keys if k in summary])]
    grid = summary.get("grid")
    if isinstance(grid, dict):
        body.append("<h2>Grid</h2>" + _table(list(grid.items())))
    part = summary.get("symbols")
    if isinstance(part, dict) and part:
        body.append("<h2>By symbol</h2>" + _table(list(part.items())))
    for what, rows in split_by.items():
        if rows:
            body.append(f"<h2>By {what}</h2>" + _split_table(rows))
    config = json.dumps(info.get("config") or {}, indent=2, default=str)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gridkit report: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f6f6f6; }} pre {{ background: #f6f6f6; padding: 12px; font-size: 12px; }}
.partial {{ background: #fff3cd; padding: 8px 12px; border: 1px solid #e0c46c; }}
</style></head>
<body data-run="{info['run']}" data-partial="{str(partial).lower()}">
<h1>gridkit report: {name}</h1>
{banner}
{''.join(divs)}
<h2>Summary</h2>
{''.join(body)}
<h2>Configuration</h2>
<pre>{html.escape(config)}</pre>
<script>
// (a check for tests and viewers: the traces the charts drew)
window.addEventListener("load", function () {{
  var drawn = 0;
  document.querySelectorAll(".js-plotly-plot").forEach(function (el) {{
    drawn += (el.data || []).length;
  }});
  document.body.dataset.traces = drawn;
  document.body.dataset.expected = {traces};
}});
</script>
</body></html>
"""
