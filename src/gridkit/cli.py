"""The ``gridkit`` command line: a thin click front over the kernel.

Every user-caused failure is a :class:`gridkit.GridkitError` and ends as one line on stderr with
its exit status (2 for bad input, 1 for a failed run); ``--debug`` shows the traceback instead.
Plugins are loaded only by commands that need them, so ``gridkit --help`` stays fast.
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from gridkit.core.errors import GridkitError

#: Entry-point group of commands: ``name = "module:attr"``, ``attr`` a click command or group.
COMMAND_GROUP = "gridkit.commands"


class _Group(click.Group):
    """The root group: built-in commands, the commands of the ``gridkit.commands`` entry points,
    and, last, those that ``gridkit_register_commands`` plugins add.

    Listing the commands (``gridkit --help``) imports no plugin: entry-point commands are listed
    with the short help read from their source (:func:`static_help`), and a command's module is
    imported when that command is run. The hook needs every plugin loaded, so it is called only
    for a command name that is neither built in nor an entry point.
    """

    _entries: dict[str, Any] | None = None
    _plugins_added = False
    #: Names of entry-point commands imported so far: not built-ins, though in ``commands``.
    _loaded: frozenset[str] = frozenset()

    def entries(self) -> dict[str, Any]:
        """Command name -> entry point, read once (see :func:`command_entry_points`)."""
        if self._entries is None:
            builtin = set(self.commands) - self._loaded
            self._entries, problems = command_entry_points(builtin)
            for line in problems:
                click.echo(f"Warning: {line}", err=True)
        return self._entries

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from gridkit.core.plugins import get_host

        try:
            get_host().call_each("gridkit_register_commands", cli=self)
        except GridkitError as err:
            click.echo(f"Warning: {err}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.entries()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = self.commands.get(cmd_name)
        if cmd is not None:
            return cmd
        ep = self.entries().get(cmd_name)
        if ep is not None:
            cmd = load_command(cmd_name, ep)
            self.add_command(cmd, cmd_name)
            self._loaded = self._loaded | {cmd_name}
            return cmd
        self._add_plugin_commands()
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, except that an entry-point command not yet imported is shown from
        its source: ``gridkit --help`` imports none of them."""
        commands = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None:
                cmd = self._listed(name)
            if cmd is not None and not cmd.hidden:
                commands.append((name, cmd))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit))
                                    for name, cmd in commands])

    def _listed(self, name: str) -> click.Command | None:
        ep = self.entries().get(name)
        if ep is None:
            return None
        info = static_help(ep)
        if info is not None:  # a stand-in that only carries the help texts
            return click.Command(name, **info)
        try:  # help computed at import time: import the command to show it
            return self.get_command(click.Context(self), name)
        except GridkitError as err:
            return click.Command(name, short_help=f"[cannot be loaded: {err}]")


def command_entry_points(builtin: set[str] | frozenset[str] = frozenset(),
                         env: Mapping[str, str] | None = None
                         ) -> tuple[dict[str, Any], list[str]]:
    """The ``gridkit.commands`` entry points to offer, by command name, and the problems found.

    gridkit's own are always offered; a third-party distribution's follow the plugin switches:
    ``GRIDKIT_LOAD_PLUGINS`` (when set) must name the distribution and
    ``GRIDKIT_DISABLE_PLUGINS`` must not. A name that is built in, or that two distributions
    declare, keeps the built-in or the first found (in ``sys.path`` order) and is reported;
    with ``GRIDKIT_STRICT_PLUGINS=1`` that is an error. Nothing is imported.
    """
    from importlib import metadata

    from gridkit.core.errors import PluginError
    from gridkit.core.plugins import DISTRIBUTION, _names, strict_plugins

    env = os.environ if env is None else env
    allow = _names(env.get("GRIDKIT_LOAD_PLUGINS"))
    deny = _names(env.get("GRIDKIT_DISABLE_PLUGINS")) or set()
    found: dict[str, Any] = {}
    owner: dict[str, str | None] = {}
    problems: list[str] = []
    for ep in metadata.entry_points(group=COMMAND_GROUP):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else None
        if dist != DISTRIBUTION and (dist in deny or (allow is not None and dist not in allow)):
            continue
        where = f"{ep.value} ({dist or 'unknown distribution'})"
        if ep.name in builtin:
            problems.append(f"command '{ep.name}' of {where} not added: gridkit has a "
                            f"built-in command of that name")
        elif ep.name in found:
            if (found[ep.name].value, owner[ep.name]) == (ep.value, dist):
                continue  # one distribution found twice on sys.path
            problems.append(f"command '{ep.name}' is declared by both {owner[ep.name]} and "
                            f"{dist}; {owner[ep.name]}'s is used")
        else:
            found[ep.name], owner[ep.name] = ep, dist
    if problems and strict_plugins(env):
        raise PluginError("; ".join(problems))
    return found, problems


def load_command(name: str, ep: Any) -> click.Command:
    """Import the click command an entry point names; a failure is a :class:`PluginError`."""
    from gridkit.core.errors import PluginError

    dist = ep.dist.metadata["Name"] if ep.dist is not None else None
    where = f"command '{name}' ({ep.value}{f', {dist}' if dist else ''})"
    try:
        obj = ep.load()
    except Exception as err:  # any import-time error is that command's
        raise PluginError(f"{where}: import failed: {type(err).__name__}: {err}") from err
    if not isinstance(obj, click.Command):
        raise PluginError(f"{where}: not a click command but {type(obj).__name__}")
    return obj


#: Keyword arguments of a click command decorator that :func:`static_help` reads.
_HELP_KEYWORDS = ("help", "short_help", "hidden", "deprecated")


def static_help(ep: Any) -> dict[str, Any] | None:
    """The help texts of the command an entry point names, read from its source, not imported.

    The object must be a function or class defined at the top level of its module, under a
    decorator whose name ends in ``command`` or ``group`` (``@click.command(...)``,
    ``@click.group(...)``): its ``help=``, ``short_help=``, ``hidden=`` and ``deprecated=`` when
    given as literals, else its docstring as the help. None when the source cannot be found or
    the texts are not literals there; the caller then imports the command.
    """
    module, attr = ep.module, ep.attr
    if not attr or "." in attr:
        return None
    path = _source_file(module)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                or node.name != attr:
            continue
        info: dict[str, Any] | None = None
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            func = call.func if call is not None else deco
            tail = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if not tail.endswith(("command", "group")):
                continue
            info = {}
            for kw in call.keywords if call is not None else ():
                if kw.arg in _HELP_KEYWORDS:
                    if not isinstance(kw.value, ast.Constant):
                        return None
                    info[kw.arg] = kw.value.value
        if info is None:
            return None
        if info.get("help") is None:
            info["help"] = ast.get_docstring(node)
        return info
    return None


def _source_file(module: str) -> str | None:
    """The ``.py`` file of a module, found without importing it or its parent packages."""
    import importlib.util

    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is executed
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        origin = spec.origin or ""
        return origin if origin.endswith(".py") else None
    for root in spec.submodule_search_locations or ():
        base = os.path.join(root, *parts[1:])
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


@click.group(cls=_Group)
@click.version_option(package_name="gridkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gridkit: grid-trading bots built from plugins.

    Run a pipeline with `gridkit run pipeline.toml`; see what is installed with
    `gridkit plugins` and `gridkit components`.
    """
    ctx.obj = {"debug": debug}


def _load(path: str, db: str | None = None) -> Any:
    from gridkit.runtime.engine import build_pipeline

    return build_pipeline(_config(path), store_path=db)


def _config(path: str) -> Any:
    """The parsed pipeline file, refused first if it holds API keys (any key named like
    ``apiKey``, ``secret``, ``password``): keys come from ``[executor] keys`` sources only."""
    from gridkit.credentials import refuse_keys_in_config
    from gridkit.runtime.pipeline_file import load_pipeline

    raw = _raw_toml(path)
    if raw is not None:  # else load_pipeline says what is wrong with the file
        refuse_keys_in_config(raw, str(Path(path)))
    return load_pipeline(path)


def _raw_toml(path: str) -> dict[str, Any] | None:
    from gridkit.runtime.pipeline_file import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):
        return None


def _confirm_live(config: Any, confirmed: bool) -> None:
    """A live pipeline runs only with ``--live``, or after ``yes`` typed on a terminal."""
    from gridkit.core.errors import ConfigError

    if confirmed:
        return
    exchange = _exchange_of(config)
    symbols = ", ".join(config.pipeline.all_symbols)
    if not sys.stdin.isatty():
        raise ConfigError(f'mode = "live" sends real orders to {exchange} for {symbols}: give '
                          f"--live to confirm (stdin is not a terminal to ask on)",
                          config.source)
    click.echo(f"This run sends real orders to {exchange} for {symbols}. Type yes to go on: ",
               nl=False, err=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() != "yes":
        raise ConfigError(f"live run not confirmed (answered {answer.strip()[:20]!r}; type yes, "
                          f"or give --live)", config.source)


def _exchange_of(config: Any) -> str:
    """The exchange a pipeline trades on, as its executor or source names it."""
    for key in ("executor", "source"):
        for spec in config.components.get(key, ()):
            exchange = spec.options.get("exchange")
            if isinstance(exchange, str) and exchange:
                return exchange
    return "the exchange"


@cli.command()
@click.argument("pipeline_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--db", type=click.Path(dir_okay=False),
              help="SQLite file to record the run in, relative to the current directory "
                   "(overrides [store] path).")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar, and only warnings and errors logged.")
@click.option("--resume", is_flag=True,
              help="Continue the last run recorded in the store (--db) where it stopped.")
@click.option("--live", "live", is_flag=True,
              help='Confirm that a mode = "live" pipeline sends real orders (without it, '
                   "gridkit asks on a terminal and refuses otherwise).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="GRIDKIT_LOG_FORMAT", show_default=True, show_envvar=True,
              help="Log lines on stderr: text, or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"],
                                               case_sensitive=False),
              envvar="GRIDKIT_LOG_LEVEL", show_envvar=True,
              help="Least level logged (default: info; warning with --quiet).")
def run(pipeline_file: str, as_json: bool, db: str | None, quiet: bool, resume: bool,
        live: bool, log_format: str, log_level: str | None) -> None:
    """Run the pipeline in FILE and print its summary.

    SIGINT and SIGTERM stop the run after the current event: what it did is committed, the
    summary printed, and the run marked stopped (exit status 0); --resume continues it.
    A pipeline with mode = "live" needs --live, or yes typed at the prompt on a terminal.

    \b
    Exit status:
      0  finished, or stopped by SIGINT / SIGTERM
      1  a component failed while the pipeline ran
      2  bad input: the pipeline file, data files, plugins, keys, a live
         run not confirmed
      3  the exchange could not be reached (or refused the keys) at the
         start of a paper or live run; nothing was sent
      130  interrupted at once (a second Ctrl-C while stopping)
    """
    from gridkit.logs import setup_logging
    from gridkit.runtime.engine import build_pipeline, run_pipeline

    setup_logging(log_format, (log_level or ("warning" if quiet else "info")).lower())
    config = _config(pipeline_file)
    if config.pipeline.mode == "live":
        _confirm_live(config, live)
    # An option on the command line is relative to where the user stands, unlike [store]
    # path, which is relative to the pipeline file.
    pipeline = build_pipeline(config, store_path=str(Path(db).resolve()) if db else None)
    if resume and not pipeline.store.durable:
        from gridkit.core.errors import ConfigError

        raise ConfigError("--resume needs a store file: give --db PATH (or [store] path)")
    if quiet or not sys.stderr.isatty():
        summary = run_pipeline(pipeline, resume=resume)
    else:
        with _Progress() as progress:
            summary = run_pipeline(pipeline, progress, resume=resume)
    if as_json:
        click.echo(json.dumps(_jsonable(summary)))
    else:
        click.echo(format_summary(summary))


class _Progress:
    """A progress bar on stderr, made on the first report: the source's length is known only
    once it is set up. Sources of unknown length (live data) get no bar."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not total:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="events", file=sys.stderr,
                                         show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _jsonable(value: Any) -> Any:
    """NaN and inf are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def format_summary(s: dict[str, Any]) -> str:
    """The run summary as aligned text."""
    rows = [
        ("pipeline", f"{s['name']} ({s['mode']}, {', '.join(s['symbols'])})"),
        ("status", s["status"] + (f", halted: {s['halted']}" if s["halted"] else "")
                   + (" (resumed)" if s.get("resumed") else "")),
        ("bars", f"{s['bars_seen']} seen, {s['bars_accepted']} accepted, "
                 f"{s['bars_dropped']} dropped"),
    ]
    for name, counts in s["dropped_by"].items():
        rows.append(("  " + name, ", ".join(f"{k} {v}" for k, v in counts.items())))
    rows += [
        ("orders", f"{s['orders_placed']} placed, {s['orders_cancelled']} cancelled, "
                   f"{s['orders_rejected']} rejected, {s['open_orders']} open"),
    ]
    for reason, n in s["rejected_by"].items():
        rows.append(("  rejected", f"{n} x {reason}"))
    rows += [
        ("fills", f"{s['buy_fills']} buys, {s['sell_fills']} sells"),
        ("fees paid", f"{s['fees_paid']:.4f}"),
    ]
    if s.get("funding_paid"):
        rows.append(("funding paid", f"{s['funding_paid']:.4f}"))
    rows.append(("final cash", f"{s['final_cash']:.4f}"))
    if len(s["symbols"]) == 1:
        rows.append(("final base", f"{s['final_base']:.8g}"))
    else:
        for sym, lane in s["symbols"].items():
            rows.append((f"  {sym}", f"position {lane['position']:.8g} at {lane['price']:.8g}, "
                                     f"{lane.get('round_trips', 0)} round trips"))
    rows += [
        ("final equity", f"{s['final_equity']:.4f} ({s['return_pct']:+.2f}%)"),
        ("realized profit", f"{s['realized_profit']:.4f}"),
        ("max drawdown", f"{s['max_drawdown']:.2%}"),
    ]
    lanes = [lane for lane in s["symbols"].values() if "round_trips" in lane]
    if lanes:
        rows.append(("grid round trips",
                     f"{sum(ln['round_trips'] for ln in lanes)} "
                     f"(profit {sum(ln['grid_profit'] for ln in lanes):.4f})"))
    rows += _grid_rows(s)
    for sym, lane in s["symbols"].items():
        liq = lane.get("liquidation_price")
        if liq is not None and liq == liq:
            rows.append(("liquidation", f"{sym} at {liq:.8g}"))
    if s.get("regime"):
        rows.append(("last regime", s["regime"]))
    store = s["components"].get("store", {})
    if store.get("path") and store["path"] != ":memory:":
        rows.append(("stored", f"run {store.get('run_id')} in {store['path']}"))
    rate = s.get("events_per_s")
    rows.append(("speed", f"{s['elapsed_s']:.3f} s" + (f", {rate:,.0f} bars/s" if rate else "")))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lat = s.get("latency_us") or {}
    if lat:
        lines.append("")
        lines.append(f"{'latency (µs)'.ljust(width)}  {'p50':>8} {'p99':>8}")
        for stage, q in lat.items():
            lines.append(f"{('  ' + stage).ljust(width)}  {q['p50']:8.2f} {q['p99']:8.2f}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def _grid_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's ``grid`` group: what exchange grid bots report (FIFO lots)."""
    g = s.get("grid")
    if not g:
        return []
    avg = g["avg_round_trip_profit"]
    rows = [
        ("grid", f"FIFO lots over {g['duration_days']:.2f} days"),
        ("  grid profit", f"{g['grid_profit']:.4f} ({g['round_trips']} round trips"
                          + (f", {avg:.4f} each)" if avg is not None else ")")),
        ("  floating pnl", f"{g['floating_pnl']:.4f}"),
    ]
    if g["funding"]:
        rows.append(("  funding", f"{g['funding']:+.4f}"))
    rows.append(("  fees", f"{g['fees']:.4f} (inside grid profit and floating)"))
    if g["other_fees"]:
        rows.append(("  other fees", f"{g['other_fees']:.4f}"))
    rows += [
        ("  total pnl", f"{g['total_pnl']:.4f} ({_pct(g['total_return'])})"),
        ("  apr", f"grid {_pct(g['grid_apr'])}, total {_pct(g['total_apr'])}"),
        ("  buy and hold", f"{_pct(g['buy_hold_return'])} "
                           f"(excess return {_pct(g['excess_return'])})"),
    ]
    if g.get("strategy_grid_profit") is not None:
        rows.append(("  cells' profit", f"{g['strategy_grid_profit']:.4f} (the strategy's "
                                        f"matched buy/sell pairs)"))
    if len(s["symbols"]) > 1:
        for sym, lane in s["symbols"].items():
            lg = lane["grid"]
            rows.append((f"  {sym}", f"grid {lg['grid_profit']:.4f}, floating "
                                     f"{lg['floating_pnl']:.4f}, {lg['round_trips']} round "
                                     f"trips, buy and hold {_pct(lg['buy_hold_return'])}"))
    return rows


@cli.command()
@click.option("--db", required=True, type=click.Path(dir_okay=False),
              help="The store (SQLite file) a run records into.")
@click.option("--run", "run_id", type=int, help="Which run (default: the last one).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(db: str, run_id: int | None, as_json: bool) -> None:
    """Show a running or stopped run from its store: status, equity, fills, open orders."""
    from gridkit.runtime.status import read_status

    info = read_status(Path(db), run_id)
    if as_json:
        click.echo(json.dumps(_jsonable(info), indent=2))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, float):
            value = f"{value:,.4f}"
        click.echo(f"{key.ljust(width)}  {value}")


@cli.command()
@click.argument("pipeline_file", metavar="FILE", type=click.Path(dir_okay=False))
def check(pipeline_file: str) -> None:
    """Say, before any order, whether the pipeline's grids can work: fees, balance, filters.

    Exit status 2 if any finding is an error (a paper or live run would stop on it).
    """
    from gridkit.core.errors import ConfigError
    from gridkit.runtime.preflight import check as preflight

    findings = preflight(_load(pipeline_file))
    for symbol, level, line in findings:
        click.echo(f"{level:<8} {symbol}: {line}")
    errors = [f for f in findings if f[1] == "error"]
    if errors:
        raise ConfigError(f"{len(errors)} pre-flight error(s); the first: {errors[0][0]}: "
                          f"{errors[0][2]}", pipeline_file)


@cli.command()
@click.argument("pipeline_file", metavar="FILE", type=click.Path(dir_okay=False))
def validate(pipeline_file: str) -> None:
    """Check the pipeline in FILE without running it."""
    p = _load(pipeline_file)
    parts = [f"source {_used(p, p.source)}"]
    for label, items in (("validators", p.validators), ("features", [f for _, f in p.features]),
                         ("attention", p.attention), ("regimes", p.regimes),
                         ("risk", p.risk), ("monitors", p.monitors)):
        if items:
            parts.append(f"{label} {', '.join(_used(p, c) for c in items)}")
    parts.append(f"strategy {_used(p, p.strategy)}")
    parts.append(f"executor {_used(p, p.executor)}")
    click.echo(f"{pipeline_file}: OK ({p.run.mode}, {', '.join(p.run.symbols)}): "
               + "; ".join(parts))


def _used(p: Any, component: Any) -> str:
    _, reg = p.origin(component)
    return reg.name if reg.distribution == "gridkit" else f"{reg.name} [{reg.origin}]"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins(as_json: bool) -> None:
    """List the installed plugins, the hooks they implement, and load failures."""
    from gridkit.core.plugins import get_host
    from gridkit.core.registry import build_registry

    host = get_host()
    build_registry(host)  # registration problems show up as failures too
    rows = [{
        "name": name,
        "distribution": host.distributions.get(name),
        "version": host.versions.get(name),
        "hooks": host.hooks_of(name),
    } for name, _ in sorted(host.pm.list_name_plugin())]
    failures = [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                for f in dict.fromkeys(host.failures)]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    for r in rows:
        dist = f"{r['distribution']} {r['version'] or ''}".strip() if r["distribution"] else "-"
        click.echo(f"{r['name']}  ({dist})")
        click.echo(f"    hooks: {', '.join(r['hooks'])}")
    for f in failures:
        click.echo(f"FAILED {f['plugin']} ({f['distribution'] or '-'}): {f['error']}")


@cli.command()
@click.option("--kind", help="Only components of this kind (source, feature, strategy, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Show every option of every component.")
def components(kind: str | None, as_json: bool, show_all: bool) -> None:
    """List the registered components: kind, name, summary, plugin and options."""
    from gridkit.core.errors import ConfigError
    from gridkit.core.hookspecs import KIND_HOOKS
    from gridkit.core.plugins import get_host
    from gridkit.core.registry import build_registry, describe

    if kind is not None and kind not in KIND_HOOKS:
        raise ConfigError(f"unknown kind '{kind}'; kinds are: {', '.join(KIND_HOOKS)}")
    registry = build_registry(get_host())
    items = [describe(r) for r in registry.all(kind)]
    if as_json:
        click.echo(json.dumps(items, indent=2, default=str))
        return
    click.echo(render_components(items, show_all))


def render_components(items: list[dict[str, Any]], show_all: bool = False) -> str:
    """Components as text: one line each, and with ``show_all`` their options."""
    lines = []
    for c in items:
        origin = c["plugin"] + (f" ({c['distribution']})" if c["distribution"] else "")
        if c.get("replaces"):
            origin += f", replaces the built-in {c['replaces']!r}"
        lines.append(f"{c['kind']:<10} {c['name']:<16} {c['summary']}  [{origin}]")
        if show_all:
            for f in c["config"]:
                notes = [f"at least one of {', '.join(g)} is required"
                         for g in f.get("one_of") or ()]
                notes.append("required" if f["required"] else f"default {f['default']!r}")
                if f.get("tunable"):
                    low, high = f["tunable"]
                    notes.append(f"tunable in [{low!r}, {high!r}]")
                doc = f"  {f['doc']}" if f["doc"] else ""
                lines.append(f"{'':<28}{f['name']}: {f['type']} ({'; '.join(notes)}){doc}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning gridkit errors into one line and a status.

    Exit status: 0 done (a run finished or was stopped by SIGINT / SIGTERM), 1 a component
    failed or gridkit has a bug, 2 bad input, 3 the exchange could not be reached at the start
    of a paper or live run (:class:`gridkit.ExchangeUnreachable`), 130 interrupted. Error lines
    pass through :func:`gridkit.credentials.redact`.
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="gridkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except GridkitError as err:
        if debug:
            raise
        click.echo(f"Error: {_redact(str(err))}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as err:  # a bug in gridkit itself: still one line unless --debug
        if debug:
            raise
        click.echo(_redact(f"Error: internal error: {type(err).__name__}: {err} "
                          f"(run with --debug for the traceback)"), err=True)
        sys.exit(1)


def _redact(text: str) -> str:
    """Error lines without registered secrets (imported only when an error is shown)."""
    from gridkit.credentials import redact

    return redact(text)


if __name__ == "__main__":  # pragma: no cover
    main()
