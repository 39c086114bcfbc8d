"""``gridkit audit verify``: check a store's hash-chained audit log.

Declared in gridkit's ``gridkit.commands`` entry-point group: ``gridkit --help`` reads the short
help from this file without importing it. The chain is :mod:`gridkit.runtime.audit`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("audit")
def audit() -> None:
    """The audit log of a store: verify its hash chain."""


@audit.command("verify")
@click.option("--db", required=True, type=click.Path(dir_okay=False),
              help="The store (SQLite file) the runs recorded into.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def verify(db: str, as_json: bool) -> None:
    """Walk the audit chain; name the first edited, deleted or reordered row (exit 1)."""
    from gridkit.core.errors import TamperedError
    from gridkit.runtime.audit import verify as walk
    from gridkit.runtime.runs import open_store

    with open_store(Path(db)) as conn:
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'audit'").fetchone()
        result = walk(conn) if has else {"entries": 0, "head": None, "broken": None}
    if as_json:
        click.echo(json.dumps(result))
    if result["broken"] is not None:
        raise TamperedError(f"{db}: {result['broken']}")
    if not as_json:
        click.echo(f"audit chain intact: {result['entries']:,} entries, head {result['head']}"
                   if result["entries"] else f"{db} holds no audit entries")
