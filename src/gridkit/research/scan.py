"""Multi-symbol scans: the same search on each of several symbols, ranked by their best trials.

Seed 004's research step: which pair to trade, with which options. A search file's ``[scan]``
table names each symbol and the options that differ for it — at least its data file, often its
quantity (a cell of BTC is not a cell of DOGE)::

    [scan."BTC/USDT"]
    "source.path" = "data/BTC_USDT-5m.json.gz"
    "strategy.qty" = 0.002

    [scan."DOGE/USDT"]
    "source.path" = "data/DOGE_USDT-5m.json.gz"
    "strategy.qty" = 250

Each symbol's search is a plain search (:func:`~gridkit.research.optimize`) of the pipeline with
``pipeline.symbol`` and those options set, by a fresh optimizer with the same seed; the space
should speak in relative terms (spacing, levels) for the ranking to compare like with like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from gridkit.core.components import Optimizer
from gridkit.core.errors import ConfigError
from gridkit.research.space import Space, with_point
from gridkit.research.trials import Trial, best, optimize


def symbol_pipeline(pipeline: Mapping[str, Any], symbol: str,
                    overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline as one symbol of a scan runs it: ``pipeline.symbol`` and its options set
    (a ``symbols`` list is dropped: a scanned pipeline trades one symbol)."""
    data = with_point(pipeline, {"pipeline.symbol": symbol, **overrides})
    data["pipeline"].pop("symbols", None)
    return data


def scan(pipeline: Mapping[str, Any], space: Space, make_optimizer: Callable[[], Optimizer],
         symbols: Mapping[str, Mapping[str, Any]], *,
         on_trial: Callable[[str, Trial], None] | None = None,
         **search: Any) -> dict[str, list[Trial]]:
    """Search each symbol in turn (``search``: :func:`~gridkit.research.optimize`'s keyword
    arguments); every symbol's trials, in the order the symbols are given."""
    if not symbols:
        raise ConfigError("scan: no symbol to scan")
    out: dict[str, list[Trial]] = {}
    for symbol, overrides in symbols.items():
        def kept(trial: Trial, symbol: str = symbol) -> None:
            if on_trial is not None:
                on_trial(symbol, trial)

        out[symbol] = optimize(symbol_pipeline(pipeline, symbol, overrides), space,
                               make_optimizer(), on_trial=kept, **search)
    return out


def ranking(results: Mapping[str, list[Trial]]) -> list[tuple[str, Trial | None]]:
    """Each symbol with its best trial, the best first (symbols with no score last)."""
    rows = [(symbol, best(trials)) for symbol, trials in results.items()]
    return sorted(rows, key=lambda r: -r[1].score if r[1] is not None
                  and not math.isnan(r[1].score) else math.inf)


def as_stored(symbol: str, overrides: Mapping[str, Any], trial: Trial, offset: int) -> Trial:
    """A scan's trial as a search store keeps it: numbered after the symbols before it, its
    point with the symbol and its options, so ``--write-best`` and a reader see them."""
    return attrs.evolve(trial, number=offset + trial.number,
                        params={"pipeline.symbol": symbol, **overrides, **trial.params})


__all__ = ["as_stored", "ranking", "scan", "symbol_pipeline"]
