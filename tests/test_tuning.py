"""Tunable options: validated, clamped, journalled, reconfigured, and rolled back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen

import gridkit
from gridkit import ConfigError, hookimpl, option, positive
from gridkit.core.plugins import PluginHost
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.runtime.tuning import rollback, tune
from gridkit.testing import sample_path


class Stepper(gridkit.Strategy):
    """Buys ``qty`` below the close; tunes its qty on bar 100 and rolls it back on bar 200."""

    name = "stepper"
    runs: list[Any] = []

    @frozen
    class Config:
        qty: float = option(0.01, doc="Base per order.", validator=positive(),
                            tunable=(0.001, 0.05))

    def start(self, ctx: gridkit.Context) -> list[gridkit.Order]:
        return [ctx.order("buy", self.config.qty, ctx.bar.close * 0.9)]

    def on_bar(self, ctx: gridkit.Context) -> None:
        run = Stepper.runs[-1]
        if ctx.index == 100:
            with pytest.raises(ConfigError, match="not a tunable option"):
                tune(run, "strategy", {"nope": 1})
            with pytest.raises(ConfigError, match="must be a finite number > 0"):
                tune(run, "strategy", {"qty": float("nan")})
            assert tune(run, "strategy", {"qty": 1.0}) == {"qty": 0.05}  # clamped to the bound
        elif ctx.index == 200:
            assert rollback(run) == {"qty": 0.01}
            assert rollback(run) is None

    def reconfigure(self, old: Any, new: Any, ctx: gridkit.Context) -> list[gridkit.Order]:
        return [ctx.order("buy", new.qty, ctx.bar.close * 0.8)]


def test_tune_validates_clamps_journals_and_rolls_back(gridkit_host: PluginHost,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_strategies(register: Any) -> None:
            register(Stepper)

    gridkit_host.register(Plugin, "stepper")
    config = parse_pipeline(f"""
[pipeline]
symbol = "BTC/USDT"
[source]
use = "freqtrade-json"
path = "{sample_path().as_posix()}"
[strategy]
use = "stepper"
""")
    pipeline = build_pipeline(config, gridkit_host, store_path=str(tmp_path / "t.db"))
    import gridkit.runtime.engine as engine

    real = engine._new_run

    def capture(p: Any) -> Any:
        run = real(p)
        Stepper.runs.append(run)
        return run

    monkeypatch.setattr(engine, "_new_run", capture)
    summary = run_pipeline(pipeline)
    assert summary["status"] == "finished"
    assert pipeline.strategy.config.qty == 0.01  # rolled back
    conn = sqlite3.connect(tmp_path / "t.db")
    rows = conn.execute("SELECT data FROM journal WHERE kind = 'ParamChanged' ORDER BY rowid"
                        ).fetchall()
    assert [r[0] for r in rows] == [
        '{"path": "strategy", "old": {"qty": 0.01}, "new": {"qty": 0.05}}',
        '{"path": "strategy", "old": {"qty": 0.05}, "new": {"qty": 0.01}}']
    # The change's orders went out: the reconfigure buys, at 0.05 and back at 0.01.
    qtys = [r[0] for r in conn.execute("SELECT qty FROM orders WHERE status = 'requested' "
                                       "ORDER BY rowid")]
    assert qtys == [0.01, 0.05, 0.01]
