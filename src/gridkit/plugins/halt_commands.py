"""``gridkit halt`` and ``gridkit resume-trading``: an operator's kill switch, through the run's
store.

Declared in gridkit's ``gridkit.commands`` entry-point group: ``gridkit --help`` reads the short
help from this file without importing it. Each command writes one row into the store's
``halt_requests`` table (made in the same transaction if new); a ``circuit-breaker`` risk check
in the running — or the next resumed — run reads it on its schedule
(:class:`gridkit.plugins.risk.breaker.CircuitBreaker`).
"""

from __future__ import annotations

from pathlib import Path

import click


def _request(db: str, action: str, reason: str) -> None:
    from gridkit.plugins.risk.breaker import write_request

    request, run_id, obeyed = write_request(Path(db), action, reason)
    what = "halt" if action == "halt" else "resume"
    run = f"run {run_id}" if run_id is not None else "the next run"
    click.echo(f"{what} requested (request {request}) for {run} in {db}; a circuit-breaker "
               f"check acts on it at its next poll")
    if run_id is not None and not obeyed:
        click.echo(f"Warning: run {run_id}'s pipeline has no circuit-breaker risk check: "
                   f"nothing reads this request until a pipeline with one runs on {db}",
                   err=True)


@click.command("halt")
@click.option("--db", required=True, type=click.Path(dir_okay=False),
              help="The store (SQLite file) the run records into.")
@click.option("--reason", default="", help="Why, in one line (journalled with the halt).")
def halt(db: str, reason: str) -> None:
    """Halt trading of the run recording into a store: cancel its orders, place none."""
    _request(db, "halt", " ".join(reason.split()))


@click.command("resume-trading")
@click.option("--db", required=True, type=click.Path(dir_okay=False),
              help="The store (SQLite file) the run records into.")
@click.option("--reason", default="", help="Why, in one line (journalled with the lift).")
def resume_trading(db: str, reason: str) -> None:
    """Lift the halt of the run recording into a store: trading resumes."""
    _request(db, "resume", " ".join(reason.split()))
