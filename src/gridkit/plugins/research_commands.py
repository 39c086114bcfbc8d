"""``gridkit optimize SPACE.toml``: search a pipeline's options, keep every trial, write the
winner as a runnable pipeline.

Declared in gridkit's ``gridkit.commands`` entry-point group: ``gridkit --help`` reads the short
help from this file without importing it. The search file's format is in
:mod:`gridkit.research.search_file`; the trials run through :func:`gridkit.research.optimize`.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click


@click.command("optimize")
@click.argument("space_file", metavar="SPACE.toml", type=click.Path(dir_okay=False))
@click.option("--db", type=click.Path(dir_okay=False),
              help="Keep every trial in this SQLite file (a search store); needed to resume.")
@click.option("--resume", is_flag=True,
              help="Go on with the store's last search (the same search file, unchanged).")
@click.option("--write-best", "write_best", type=click.Path(dir_okay=False),
              help="Write the best trial's pipeline here, ready for gridkit run.")
@click.option("--budget", type=click.IntRange(min=1), help="The most trials (overrides the "
                                                          "search file's budget).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes to run trials on (default: every core).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the trials on a Dask cluster (tcp://host:8786); its workers read the "
                   "data files at the same paths.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress line per trial.")
def optimize(space_file: str, db: str | None, resume: bool, write_best: str | None,
             budget: int | None, workers: int | None, scheduler: str | None, as_json: bool,
             quiet: bool) -> None:
    """Search a pipeline's options with an optimizer; keep the trials, write the best."""
    from gridkit.core.errors import ConfigError
    from gridkit.research import best
    from gridkit.research import optimize as run_search
    from gridkit.research.search_file import identity_change, load_search
    from gridkit.research.search_store import SearchStore

    search = load_search(space_file)
    if resume and db is None:
        raise ConfigError("--resume needs --db, the store of the search to resume")
    if write_best is not None and not Path(write_best).resolve().parent.is_dir():
        raise ConfigError(f"--write-best: no such folder {Path(write_best).parent}")
    optimizer = _optimizer(search)
    if search.walk_forward is not None or search.scan is not None:
        if resume:
            raise ConfigError(f"--resume: a {'walk-forward' if search.scan is None else 'scan'}"
                              f" search runs whole; start it again without --resume")
        if search.scan is not None:
            _scan(search, db, write_best, budget, workers, scheduler, as_json, quiet)
        else:
            _walk(search, db, write_best, budget, workers, scheduler, as_json, quiet)
        return
    store = SearchStore(db) if db is not None else None
    replay: list[Any] = []
    search_id = None
    try:
        if store is not None:
            if resume:
                last = store.last_search()
                if last is None:
                    raise ConfigError(f"--resume: {db} holds no search to resume")
                search_id, status, identity, replay = last
                if status == "finished":
                    raise ConfigError(f"--resume: search {search_id} in {db} has finished; "
                                      f"drop --resume to start a new one")
                change = identity_change(identity, search.identity())
                if change is not None:
                    raise ConfigError(f"--resume: the search changed since search {search_id} "
                                      f"began ({change}); start a new one without --resume")
            else:
                search_id = store.open_search(str(Path(space_file).resolve()),
                                              search.identity())
        limit = budget if budget is not None else search.budget
        progress = _Progress(limit, quiet, search.max_drawdown)

        def kept(trial: Any) -> None:
            if store is not None and search_id is not None:
                store.add_trial(search_id, trial)
            progress(trial)

        # Each trial's pre-flight notes (a range away from the price...) are the search's
        # business, not a line per trial: the progress line says how each scored.
        preflight = logging.getLogger("gridkit.preflight")
        level = preflight.level
        preflight.setLevel(logging.ERROR)
        # SIGTERM stops the search as SIGINT does: the trials kept so far stay kept.
        old_term = signal.signal(signal.SIGTERM, _interrupt)
        try:
            trials = run_search(search.pipeline_data, search.space, optimizer,
                                objective=search.objective, max_drawdown=search.max_drawdown,
                                budget=limit, seed=search.seed,
                                base_dir=search.pipeline_path.parent, on_trial=kept,
                                replay=replay, source=str(search.pipeline_path),
                                workers=workers, scheduler=scheduler,
                                constraints=search.constraints)
        except KeyboardInterrupt:
            if store is not None and search_id is not None:
                store.finish(search_id, "stopped")
                click.echo(f"stopped; {db} keeps every finished trial: gridkit optimize "
                           f"{space_file} --db {db} --resume goes on", err=True)
            else:
                click.echo("stopped (no --db: nothing kept)", err=True)
            return
        except BaseException:
            if store is not None and search_id is not None:
                store.finish(search_id, "failed")
            raise
        finally:
            preflight.setLevel(level)
            signal.signal(signal.SIGTERM, old_term)
        if store is not None and search_id is not None:
            store.finish(search_id, "finished")
    finally:
        if store is not None:
            store.close()
    top = best(trials)
    written = None
    if top is not None and write_best is not None:
        _write_best(search, top, Path(write_best))
        written = write_best
    _report(search, trials, top, search_id, written, as_json)


def _walk(search: Any, db: str | None, write_best: str | None, budget: int | None,
          workers: int | None, scheduler: str | None, as_json: bool, quiet: bool) -> None:
    """A walk-forward search: each window's fit and its out-of-sample result, the results'
    summary and the parameters' stability; ``--write-best`` writes the last window's fit."""
    from gridkit.cli import _jsonable
    from gridkit.research.walk_forward import stability, walk_forward

    wf = search.walk_forward
    kept = _Kept(search, db)
    store, search_id = kept.store, kept.search_id

    def shown(w: Any) -> None:
        if store is not None and search_id is not None:
            store.add_window(search_id, w)
        if quiet or as_json:
            return
        res = w.result
        out = ("no in-sample trial scored" if res is None else
               f"out {search.objective_name} {_num(res.score)} (return {res.return_pct:+.2f}%, "
               f"drawdown {res.max_drawdown:.2%})" if res.error is None else
               f"out failed: {res.error}")
        click.echo(f"window {w.number + 1}/{wf['windows']}  in {_day(w.in_start)}.."
                   f"{_day(w.in_end)} score {_num(w.fit.score) if w.fit else '-'}  "
                   f"out {_day(w.out_start)}..{_day(w.out_end)}  {out}", err=True)

    with kept:
        done = walk_forward(search.pipeline_data, search.space, lambda: _optimizer(search),
                            count=wf["windows"], in_sample=float(wf["in_sample"]),
                            anchored=wf["mode"] == "anchored", objective=search.objective,
                            max_drawdown=search.max_drawdown,
                            budget=budget if budget is not None else search.budget,
                            seed=search.seed, base_dir=search.pipeline_path.parent,
                            source=str(search.pipeline_path), workers=workers,
                            scheduler=scheduler, constraints=search.constraints,
                            on_window=shown)
    if kept.stopped:
        return
    scored = [w.result for w in done if w.result is not None and not math.isnan(
        w.result.score)]
    last_fit = next((w.fit for w in reversed(done) if w.fit is not None), None)
    written = None
    if write_best is not None and last_fit is not None:
        _write_best(search, last_fit, Path(write_best))
        written = write_best
    summary = {
        "windows": [{"number": w.number, "in": [w.in_start, w.in_end],
                     "out": [w.out_start, w.out_end],
                     "params": w.fit.params if w.fit else None,
                     "in_score": w.fit.score if w.fit else None,
                     "out_score": w.result.score if w.result else None,
                     "out_return_pct": w.result.return_pct if w.result else None,
                     "out_max_drawdown": w.result.max_drawdown if w.result else None}
                    for w in done],
        "out_of_sample": {
            "windows_scored": len(scored),
            "mean_score": sum(r.score for r in scored) / len(scored) if scored else None,
            "mean_return_pct": (sum(r.return_pct for r in scored) / len(scored)
                                if scored else None),
            "worst_drawdown": max((r.max_drawdown for r in scored), default=None)},
        "stability": stability(done), "written": written}
    if as_json:
        click.echo(json.dumps(_jsonable(summary)))
        return
    oos = summary["out_of_sample"]
    click.echo(f"out of sample     {oos['windows_scored']} of {len(done)} windows scored; "
               f"mean {search.objective_name} {_num(oos['mean_score'])}, mean return "
               + (f"{oos['mean_return_pct']:+.2f}%" if oos["mean_return_pct"] is not None
                  else "-")
               + (f", worst drawdown {oos['worst_drawdown']:.2%}"
                  if oos["worst_drawdown"] is not None else ""))
    click.echo("stability")
    for path, st in summary["stability"].items():
        if "cv" in st:
            cv = "-" if st["cv"] is None else f"{st['cv']:.2f}"
            click.echo(f"  {path:<16}mean {st['mean']:.6g}, std {st['std']:.6g}, cv {cv}")
        else:
            click.echo(f"  {path:<16}{st['mode']!r} in {st['share']:.0%} of the windows")
    if written:
        click.echo(f"written           {written} (the last window's fit: gridkit run "
                   f"{written})")
    sys.stdout.flush()


def _scan(search: Any, db: str | None, write_best: str | None, budget: int | None,
          workers: int | None, scheduler: str | None, as_json: bool, quiet: bool) -> None:
    """A multi-symbol scan: each symbol searched, the symbols ranked by their best trials;
    ``--write-best`` writes the best symbol's best pipeline."""
    from gridkit.cli import _jsonable
    from gridkit.research.scan import as_stored, ranking, scan

    runs = _Kept(search, db)
    store, search_id = runs.store, runs.search_id
    offset = {"n": 0, "symbol": None, "base": 0}

    def kept(symbol: str, trial: Any) -> None:
        if offset["symbol"] != symbol:
            offset["symbol"], offset["base"] = symbol, offset["n"]
        offset["n"] += 1
        if store is not None and search_id is not None:
            store.add_trial(search_id, as_stored(symbol, search.scan[symbol], trial,
                                                 offset["base"]))
        if not quiet and not as_json:
            score = "none" if trial.error or math.isnan(trial.score) else f"{trial.score:.6g}"
            click.echo(f"{symbol:<12} trial {trial.number + 1}  score {score}", err=True)

    with runs:
        results = scan(search.pipeline_data, search.space, lambda: _optimizer(search),
                       search.scan, on_trial=kept, objective=search.objective,
                       max_drawdown=search.max_drawdown,
                       budget=budget if budget is not None else search.budget,
                       seed=search.seed, base_dir=search.pipeline_path.parent,
                       source=str(search.pipeline_path), workers=workers,
                       scheduler=scheduler, constraints=search.constraints)
    if runs.stopped:
        return
    ranked = ranking(results)
    written = None
    top_symbol, top = ranked[0]
    if write_best is not None and top is not None:
        _write_best(search, as_stored(top_symbol, search.scan[top_symbol], top, 0),
                    Path(write_best))
        written = write_best
    rows = [{"symbol": sym, "trials": len(results[sym]),
             "best": None if t is None else {"number": t.number, "params": t.params,
                                             "score": t.score, "return_pct": t.return_pct,
                                             "max_drawdown": t.max_drawdown}}
            for sym, t in ranked]
    if as_json:
        click.echo(json.dumps(_jsonable({"objective": search.objective_name, "symbols": rows,
                                         "written": written})))
        return
    click.echo(f"{'symbol':<12} {search.objective_name:>12} {'return':>9} {'drawdown':>9}  "
               f"best point")
    for sym, t in ranked:
        if t is None:
            click.echo(f"{sym:<12} {'-':>12}  no trial scored")
            continue
        click.echo(f"{sym:<12} {t.score:>12.6g} {t.return_pct:>+8.2f}% "
                   f"{t.max_drawdown:>8.2%}  "
                   + ", ".join(f"{k}={v!r}" for k, v in t.params.items()))
    if written:
        click.echo(f"written           {written} ({top_symbol}: gridkit run {written})")
    sys.stdout.flush()


class _Kept:
    """A walk-forward or scan search's run: its search-store row (with ``--db``) finished as
    ``finished``, ``stopped`` (SIGINT or SIGTERM, said in one line) or ``failed``; the
    pre-flight lines of every trial quieted while it runs."""

    def __init__(self, search: Any, db: str | None) -> None:
        from gridkit.research.search_store import SearchStore

        self.store = SearchStore(db) if db is not None else None
        self.search_id = (self.store.open_search(str(Path(search.path).resolve()),
                                                 search.identity())
                          if self.store is not None else None)
        self.stopped = False

    def __enter__(self) -> _Kept:
        self._preflight = logging.getLogger("gridkit.preflight")
        self._level = self._preflight.level
        self._preflight.setLevel(logging.ERROR)
        self._term = signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        self._preflight.setLevel(self._level)
        signal.signal(signal.SIGTERM, self._term)
        self.stopped = kind is KeyboardInterrupt
        if self.store is not None:
            if self.search_id is not None:
                self.store.finish(self.search_id, "stopped" if self.stopped else
                                  "failed" if kind is not None else "finished")
            self.store.close()
        if self.stopped:
            click.echo("stopped", err=True)
        return self.stopped  # a stop is the search's end, not an error


def _num(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.6g}"


def _day(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _optimizer(search: Any) -> Any:
    from gridkit.core.errors import ConfigError
    from gridkit.core.plugins import get_host
    from gridkit.core.registry import build_registry
    from gridkit.runtime.build import construct
    from gridkit.runtime.pipeline_file import ComponentSpec

    problems: list[str] = []
    built = construct(build_registry(get_host()), problems, "optimizer",
                      ComponentSpec(search.optimizer, search.optimizer_options, "optimizer"))
    if built is None:
        raise ConfigError(problems, str(search.path))
    return built[0]


class _Progress:
    """One line per trial on stderr: how far, how fast, this score and the best so far."""

    def __init__(self, limit: int | None, quiet: bool, cap: float | None) -> None:
        self.limit, self.quiet, self.cap = limit, quiet, cap
        self.t0 = time.perf_counter()
        self.ran = 0
        self.best: tuple[float, int] | None = None

    def __call__(self, trial: Any) -> None:
        self.ran += 1
        if not math.isnan(trial.score) and (self.best is None or trial.score > self.best[0]):
            self.best = (trial.score, trial.number)
        if self.quiet:
            return
        rate = self.ran / max(time.perf_counter() - self.t0, 1e-9)
        of = f"/{self.limit}" if self.limit else ""
        if trial.error:
            score = "failed"
        elif math.isnan(trial.score) and self.cap is not None and trial.max_drawdown is not None \
                and trial.max_drawdown > self.cap:
            score = f"none (drawdown {trial.max_drawdown:.1%} > {self.cap:.0%})"
        else:
            score = f"{trial.score:.4g}"
        top = f"best {self.best[0]:.4g} (trial {self.best[1]})" if self.best else "best -"
        click.echo(f"trial {trial.number + 1}{of}  {rate:.2f} trials/s  score {score}  {top}",
                   err=True)


def _write_best(search: Any, top: Any, out: Path) -> None:
    """The searched pipeline with the best point's options set, as TOML; relative paths are
    made absolute so the file runs from wherever it is written."""
    import tomli_w

    from gridkit.research.trials import with_point

    data = with_point(search.pipeline_data, top.params)
    _absolute_paths(data, search.pipeline_path.parent)
    head = (f"# Written by gridkit optimize {search.path.name}: trial {top.number}, "
            f"{search.objective_name} {top.score:.6g}\n# "
            + ", ".join(f"{k} = {v!r}" for k, v in top.params.items()) + "\n")
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(head + tomli_w.dumps(data), encoding="utf-8")
    tmp.replace(out)  # whole or not at all


#: The options that name a file, resolved against pipeline.toml's folder (RunInfo.resolve).
PATH_OPTIONS = frozenset({"path", "markets", "pre_close", "funding", "mark", "db",
                          "resume_from"})


def _absolute_paths(node: Any, base: Path) -> None:
    """Every file option (:data:`PATH_OPTIONS`), anchored as ``RunInfo.resolve`` does."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PATH_OPTIONS and isinstance(value, str) and value and value != ":memory:":
                node[key] = str((base / Path(value).expanduser()).resolve())
            else:
                _absolute_paths(value, base)
    elif isinstance(node, list):
        for item in node:
            _absolute_paths(item, base)


def _report(search: Any, trials: list[Any], top: Any, search_id: int | None,
            written: str | None, as_json: bool) -> None:
    from gridkit.cli import _jsonable

    ranked = sorted((t for t in trials if not math.isnan(t.score)), key=lambda t: -t.score)
    if as_json:
        click.echo(json.dumps(_jsonable({
            "search": search_id, "objective": search.objective_name, "trials": len(trials),
            "failed": sum(1 for t in trials if t.error), "best": None if top is None else {
                "number": top.number, "params": top.params, "score": top.score,
                "return_pct": top.return_pct, "max_drawdown": top.max_drawdown},
            "written": written})))
        return
    click.echo(f"trials            {len(trials)} ({sum(1 for t in trials if t.error)} failed, "
               f"{len(trials) - len(ranked)} without a score)")
    if top is None:
        click.echo("best              none: no trial scored (see the constraint and the errors)")
        return
    click.echo(f"best              trial {top.number}: {search.objective_name} {top.score:.6g} "
               f"(return {top.return_pct:+.2f}%, max drawdown {top.max_drawdown:.2%})")
    for k, v in top.params.items():
        click.echo(f"  {k:<16}{v!r}")
    click.echo("top 5")
    for t in ranked[:5]:
        click.echo(f"  {t.number:>4}  {t.score:>12.6g}  "
                   + ", ".join(f"{k}={v!r}" for k, v in t.params.items()))
    if written:
        click.echo(f"written           {written} (gridkit run {written})")
    sys.stdout.flush()


@click.command("stress")
@click.argument("pipeline_file", metavar="PIPELINE.toml", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=1), default=200, show_default=True,
              help="Paths per scenario.")
@click.option("--block", type=click.IntRange(min=1), default=60, show_default=True,
              help="Bars per block of the bootstrap.")
@click.option("--gap", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.1, show_default=True, help="Size of the gap down, as a fraction.")
@click.option("--crash", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.3, show_default=True,
              help="Depth of the flash crash's wick below its close, as a fraction.")
@click.option("--outage", type=click.IntRange(min=1), default=720, show_default=True,
              help="Bars the exchange is down for.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the paths.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def stress(pipeline_file: str, paths: int, block: int, gap: float, crash: float, outage: int,
           seed: int, as_json: bool) -> None:
    """Re-run a pipeline over resampled and shocked price paths; the distribution of its
    drawdown, final equity and inventory."""
    from gridkit.cli import _jsonable
    from gridkit.research.stress import Shocks
    from gridkit.research.stress import stress as run_stress
    from gridkit.runtime.pipeline_file import load_pipeline, tomllib

    path = Path(pipeline_file)
    load_pipeline(path)  # the file's own check first: one line per problem, as gridkit run
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    logging.getLogger("gridkit.preflight").setLevel(logging.ERROR)  # once per path otherwise
    result = run_stress(data, Shocks(paths, block, gap, crash, outage, seed),
                        base_dir=path.resolve().parent, source=str(path))
    if as_json:
        click.echo(json.dumps(_jsonable(result)))
        return
    real = result["real"]
    click.echo(f"bars              {result['bars']:,} accepted, {paths} paths per scenario, "
               f"seed {seed}")
    click.echo(f"real path         max drawdown {real['max_drawdown']:.2%}, final equity "
               f"{real['final_equity']:,.2f}, largest inventory {real['max_base']:g}")
    click.echo(f"{'scenario':<10} {'figure':<14} {'p5':>12} {'p50':>12} {'p95':>12} "
               f"{'worst':>12}")
    for name, dist in result["scenarios"].items():
        for key, fmt in (("max_drawdown", "{:.2%}"), ("final_equity", "{:,.2f}"),
                         ("max_base", "{:.6g}")):
            d = dist[key]
            cells = " ".join(f"{fmt.format(d[q]):>12}" for q in ("p5", "p50", "p95", "worst"))
            click.echo(f"{name:<10} {key:<14} {cells}")
            name = ""
    sys.stdout.flush()
