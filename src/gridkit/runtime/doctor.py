"""``gridkit doctor``: what could stop a run, checked before it starts.

Each check gives one :class:`Check` — ``ok``, ``warn`` or ``fail`` — with a line saying what
was found: Python and the packages gridkit runs on (and the optional ones, with the extra that
brings each), whether numba can cache the compiled kernels, plugins that failed to load, a
store's integrity (SQLite's own check, its journal's consistency, saved states against their
checksums, the audit chain) and the clock's skew against every exchange a pipeline talks to.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

#: Packages gridkit needs, then the optional ones with the extra that installs each.
REQUIRED = ("numpy", "numba", "llvmlite", "pluggy", "attrs", "cattrs", "click", "sqlite-utils")
OPTIONAL = {"ccxt": "ccxt", "pyarrow": "parquet", "optuna": "research",
            "distributed": "distributed", "keyring": "live", "cryptography": "live"}
#: Clock skew (ms) beyond which exchanges start refusing signed requests (Binance's default
#: ``recvWindow``), and beyond which a warning is worth it.
SKEW_FAIL_MS, SKEW_WARN_MS = 5_000, 1_000


class Check(NamedTuple):
    """One finding: ``status`` is ``ok``, ``warn`` or ``fail``."""

    status: str
    name: str
    detail: str


def run_checks(db: Path | None = None, pipeline: Path | None = None) -> list[Check]:
    """Every check: the installation's, then ``db``'s and ``pipeline``'s exchanges' if given."""
    out = [_python(), *_packages(), _numba_cache(), *_plugins()]
    if db is not None:
        out += store_checks(db)
    if pipeline is not None:
        out += clock_checks(pipeline)
    return out


def _python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    return Check("ok" if v >= (3, 10) else "fail", "python", text)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _packages() -> list[Check]:
    out = [Check("ok", "gridkit", _version("gridkit") or "not installed as a package")]
    for name in REQUIRED:
        v = _version(name)
        out.append(Check("ok" if v else "fail", name, v or "not installed (gridkit needs it)"))
    for name, extra in OPTIONAL.items():
        v = _version(name)
        out.append(Check("ok", name, v or f"not installed (optional: gridkit[{extra}])"))
    return out


def _numba_cache() -> Check:
    try:
        from gridkit.fused.grid import _grid_kernel

        folder = Path(_grid_kernel._cache._cache_path)
    except Exception as err:  # numba's internals moved, or it does not import
        return Check("warn", "numba cache", f"cannot locate it: {type(err).__name__}: {err}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".gridkit-doctor-"):
            pass
    except OSError as err:
        return Check("warn", "numba cache", f"{folder} is not writable ({err.strerror or err}): "
                                            f"every fused run compiles its kernels again "
                                            f"(about 20 s); set NUMBA_CACHE_DIR to a writable "
                                            f"folder")
    return Check("ok", "numba cache", f"{folder} (writable)")


def _plugins() -> list[Check]:
    from gridkit.core.plugins import get_host
    from gridkit.core.registry import build_registry

    host = get_host()
    build_registry(host)
    failures = list(dict.fromkeys(host.failures))
    if not failures:
        n = len(host.pm.list_name_plugin())
        return [Check("ok", "plugins", f"{n} loaded, none failed")]
    return [Check("warn", "plugins", f"{f.plugin} ({f.distribution or '-'}) failed: {f.error}")
            for f in failures]


def store_checks(path: Path) -> list[Check]:
    """The store at ``path``: SQLite's integrity check, its journal's consistency, its saved
    states against their checksums and its audit chain."""
    from gridkit.runtime.audit import verify
    from gridkit.runtime.runs import open_store

    with open_store(path) as conn:
        out = [_integrity(conn)]
        if out[0].status == "fail":
            return out
        out += _journal(conn)
        out.append(_states(conn))
        has_audit = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                 "name = 'audit'").fetchone()
        if has_audit:
            chain = verify(conn)
            out.append(Check("fail", "audit chain", chain["broken"]) if chain["broken"] else
                       Check("ok", "audit chain", f"{chain['entries']:,} entries intact"))
    return out


def _integrity(conn: sqlite3.Connection) -> Check:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if rows == ["ok"]:
        return Check("ok", "store integrity", "SQLite's integrity check passed")
    return Check("fail", "store integrity", "; ".join(rows[:3]))


def _journal(conn: sqlite3.Connection) -> list[Check]:
    out = []
    orphans = conn.execute(
        "SELECT f.run_id, COUNT(*) FROM fills f WHERE NOT EXISTS (SELECT 1 FROM orders o "
        "WHERE o.run_id = f.run_id AND o.order_id = f.order_id AND o.status = 'requested') "
        "GROUP BY f.run_id").fetchall()
    for run_id, n in orphans:
        out.append(Check("fail", "journal", f"run {run_id}: {n} fill(s) of orders it never "
                                            f"journalled as requested"))
    if not orphans:
        out.append(Check("ok", "journal", "every fill belongs to an order requested first"))
    for run_id, name in conn.execute("SELECT id, name FROM runs WHERE status = 'running'"):
        out.append(Check("warn", "runs", f"run {run_id} ('{name}') is marked running: it is "
                                         f"running, or was killed (gridkit run --resume "
                                         f"continues it)"))
    return out


def _states(conn: sqlite3.Connection) -> Check:
    bad = [run_id for run_id, digest, data in conn.execute(
        "SELECT run_id, digest, data FROM state")
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != digest]
    if bad:
        return Check("fail", "saved states", f"run(s) {', '.join(map(str, bad))}: the saved "
                                             f"state does not match its checksum")
    return Check("ok", "saved states", "every saved state matches its checksum")


def clock_checks(pipeline: Path) -> list[Check]:
    """The clock's skew against each exchange the pipeline's components talk to."""
    from gridkit.runtime.pipeline_file import load_pipeline

    config = load_pipeline(pipeline)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for specs in config.components.values():
        for spec in specs:
            exchange = spec.options.get("exchange")
            if isinstance(exchange, str) and exchange:
                seen.setdefault((exchange, str(spec.options.get("url") or "")), spec.options)
    if not seen:
        return [Check("ok", "clock", "the pipeline talks to no exchange")]
    symbol = config.pipeline.symbol
    return [_skew(exchange, url, options, symbol) for (exchange, url), options in seen.items()]


def _skew(exchange: str, url: str, options: dict[str, Any], symbol: str) -> Check:
    name = f"clock vs {exchange}"
    try:
        import ccxt

        from gridkit.plugins.ccxt_sources import make_exchange

        ex = make_exchange(ccxt, exchange, str(options.get("symbol") or symbol), url=url or None,
                           urls=options.get("urls") or {}, options={}, timeout_ms=5_000)
        if not ex.has.get("fetchTime"):
            return Check("ok", name, "the exchange does not tell its time")
        t0 = time.time() * 1000
        server = float(ex.fetch_time())
        t1 = time.time() * 1000
    except Exception as err:
        return Check("warn", name, f"could not ask its time: {type(err).__name__}: "
                                   f"{str(err)[:200]}")
    skew = (t0 + t1) / 2 - server
    text = (f"this machine is {abs(skew):,.0f} ms {'ahead of' if skew > 0 else 'behind'} "
            f"{exchange} (round trip {t1 - t0:,.0f} ms)")
    if abs(skew) > SKEW_FAIL_MS:
        return Check("fail", name, text + ": signed requests will be refused; sync the clock "
                                          "(NTP)")
    return Check("warn" if abs(skew) > SKEW_WARN_MS else "ok", name, text)


def exit_status(checks: list[Check], strict: bool) -> int:
    """1 if a check failed (or, ``strict``, warned), else 0."""
    worst = {c.status for c in checks}
    return 1 if "fail" in worst or (strict and "warn" in worst) else 0
