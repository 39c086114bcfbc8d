"""``gridkit runs list | show | export``: the runs a store holds, read-only.

Declared in gridkit's ``gridkit.commands`` entry-point group: ``gridkit --help`` reads the short
help from this file without importing it. The reading and the exports are
:mod:`gridkit.runtime.runs`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

DB = click.option("--db", required=True, type=click.Path(dir_okay=False),
                  help="The store (SQLite file) the runs recorded into.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print as JSON.")


@click.group("runs")
def runs() -> None:
    """List the runs of a store, show one, export its orders, fills or equity."""


@runs.command("list")
@DB
@AS_JSON
def list_(db: str, as_json: bool) -> None:
    """Every run of the store: status, period, return and drawdown."""
    from gridkit.runtime.runs import list_runs, open_store

    with open_store(Path(db)) as conn:
        rows = list_runs(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    head = ("run", "name", "mode", "status", "from", "to", "return", "drawdown")
    table = [head] + [(str(r["run"]), r["name"] or "", r["mode"] or "", r["status"] or "",
                       r["from"] or "-", r["to"] or "-", _pct(r["return_pct"], 1.0, "+"),
                       _pct(r["max_drawdown"], 100.0)) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                   .rstrip())


@runs.command("show")
@DB
@click.argument("run_id", metavar="[RUN]", type=int, required=False)
@AS_JSON
def show(db: str, run_id: int | None, as_json: bool) -> None:
    """One run (default: the last): its figures, configuration and summary."""
    from gridkit.runtime.runs import open_store, show_run

    with open_store(Path(db)) as conn:
        info = show_run(conn, Path(db), run_id)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key in ("config", "summary"):
            continue
        if key == "return_pct":
            value = _pct(value, 1.0, "+")
        elif key == "max_drawdown":
            value = _pct(value, 100.0)
        click.echo(f"{key:<13} {value if value is not None else '-'}")
    summary: dict[str, Any] = info.get("summary") or {}
    for key in ("final_equity", "buy_fills", "sell_fills", "fees_paid", "halted"):
        if summary.get(key) is not None:
            click.echo(f"{key:<13} {summary[key]}")


@runs.command("export")
@DB
@click.argument("run_id", metavar="[RUN]", type=int, required=False)
@click.option("--table", type=click.Choice(["orders", "fills", "equity"]), required=True,
              help="What to export.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]),
              default=None, help="Default: from OUT's extension, else csv.")
@click.option("--out", required=True, type=click.Path(), help="The file to write.")
@AS_JSON
def export(db: str, run_id: int | None, table: str, fmt: str | None, out: str,
           as_json: bool) -> None:
    """Write one run's orders, fills or equity curve (default: the last run) to a file."""
    from gridkit.runtime.runs import export as write
    from gridkit.runtime.runs import open_store

    target = Path(out)
    fmt = fmt or {".json": "json", ".parquet": "parquet"}.get(target.suffix.lower(), "csv")
    with open_store(Path(db)) as conn:
        n = write(conn, Path(db), run_id, table, fmt, target)
    if as_json:
        click.echo(json.dumps({"table": table, "format": fmt, "rows": n, "out": str(target)}))
    else:
        click.echo(f"wrote {n:,} {table} rows to {target} ({fmt})")


@runs.command("metadata")
@DB
@click.option("--out", type=click.Path(), default=None,
              help="Write it here (default: print it).")
def metadata(db: str, out: str | None) -> None:
    """Datasette's metadata for the store: what its tables and columns hold."""
    from gridkit.runtime.runs import datasette_metadata, open_store, write_atomically

    with open_store(Path(db)) as conn:
        text = json.dumps(datasette_metadata(Path(db), conn), indent=2)
    if out is None:
        click.echo(text)
        return
    write_atomically(Path(out), lambda f: f.write(text.encode() + b"\n"))
    click.echo(f"wrote {out}: datasette {db} -m {out}")


def _pct(value: Any, scale: float, sign: str = "") -> str:
    return f"{value * scale:{sign}.2f}%" if isinstance(value, (int, float)) else "-"


@click.command("compare")
@click.argument("runs_", metavar="RUN RUN [RUN...]", nargs=-1, required=True)
@click.option("--db", type=click.Path(dir_okay=False),
              help="The store the runs given by number are in.")
@AS_JSON
def compare(runs_: tuple[str, ...], db: str | None, as_json: bool) -> None:
    """Runs side by side, and each one's gap from the first: fees, slippage, missed fills.

    A RUN is a run number in --db, a store file (its last run) or FILE:NUMBER.
    """
    from gridkit.core.errors import ConfigError
    from gridkit.runtime.compare import compare as side_by_side

    specs: list[tuple[Path, int | None]] = []
    for token in runs_:
        path, _, number = token.rpartition(":")
        if token.isdigit():
            if db is None:
                raise ConfigError(f"run {token}: give the store it is in with --db PATH")
            specs.append((Path(db), int(token)))
        elif path and number.isdigit():
            specs.append((Path(path), int(number)))
        else:
            specs.append((Path(token), None))
    if len(specs) < 2:
        raise ConfigError("compare needs at least two runs")
    out = side_by_side(specs)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    runs, gaps = out["runs"], out["gaps"]
    labels = [k for k in runs[0] if k not in ("store",)]
    cols = [[_cell(r[k]) for k in labels] for r in runs]
    width = max(len(k) for k in labels)
    widths = [max(len(c) for c in col) for col in cols]
    for i, label in enumerate(labels):
        click.echo(f"{label:<{width}}  " + "  ".join(
            col[i].rjust(w) for col, w in zip(cols, widths, strict=True)))
    for g in gaps:
        click.echo(f"\nrun {g['run']} against run {g['against']}: return "
                   f"{_cell(g['return_gap_pct'])} points, equity {_cell(g['equity_gap'])}")
        click.echo(f"  fees        {_cell(g['fees'])} more paid")
        click.echo(f"  slippage    {_cell(g['slippage'])} lost on {g['matched_fills']:,} "
                   f"matched fills")
        click.echo(f"  missed      {g['missed_fills']:,} fills ({_cell(g['missed_qty'])} base); "
                   f"extra {g['extra_fills']:,} ({_cell(g['extra_qty'])} base)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)


@click.command("report")
@DB
@click.argument("run_id", metavar="[RUN]", type=int, required=False)
@click.option("--out", type=click.Path(), default=None,
              help="The HTML file to write (default: report-RUN.html here).")
@AS_JSON
def report(db: str, run_id: int | None, out: str | None, as_json: bool) -> None:
    """One self-contained HTML report of a run (default: the last): charts, summary, config."""
    from gridkit.runtime.report import write_report
    from gridkit.runtime.runs import open_store, show_run

    if out is None:
        with open_store(Path(db)) as conn:
            rid = show_run(conn, Path(db), run_id)["run"]
        out = f"report-{rid}.html"
    info = write_report(Path(db), run_id, Path(out))
    if as_json:
        click.echo(json.dumps({**info, "out": out}))
        return
    what = "partial report (the run has no summary yet)" if info["partial"] else "report"
    click.echo(f"wrote the {what} of run {info['run']} to {out} ({info['bytes']:,} bytes, "
               f"{info['traces']} traces; opens offline)")
