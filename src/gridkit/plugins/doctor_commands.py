"""``gridkit doctor``: the installation, a store and a pipeline's exchanges, checked.

Declared in gridkit's ``gridkit.commands`` entry-point group: ``gridkit --help`` reads the short
help from this file without importing it. The checks are :mod:`gridkit.runtime.doctor`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("doctor")
@click.option("--db", type=click.Path(dir_okay=False),
              help="Also check this store: integrity, journal, saved states, audit chain.")
@click.option("--pipeline", "pipeline_file", type=click.Path(dir_okay=False),
              help="Also measure the clock's skew against the exchanges this pipeline uses.")
@click.option("--strict", is_flag=True, help="Exit 1 on a warning too.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def doctor(db: str | None, pipeline_file: str | None, strict: bool, as_json: bool) -> None:
    """Check what could stop a run: versions, numba's cache, plugins, a store, the clock."""
    from gridkit.runtime.doctor import exit_status, run_checks

    checks = run_checks(Path(db) if db else None,
                        Path(pipeline_file) if pipeline_file else None)
    if as_json:
        click.echo(json.dumps([c._asdict() for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
    status = exit_status(checks, strict)
    if status:
        raise SystemExit(status)
