"""The feedback loop on the real BTC/USDT 5-minute selector example: bounded trials through the
kernel's tunables, kept only above the confidence threshold, journalled and reversible."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridkit import ConfigError
from gridkit.plugins.feedback import FeedbackLoop, improvement_confidence
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline
from gridkit.testing import build
from helpers import REPO

EXAMPLE = REPO / "examples" / "selector.toml"


def pipeline(feedback: str, tmp_path: Path, db: Path | None = None) -> Any:
    # Without the example's attention: a resumed run starts a new shadow book (documented),
    # which would make the resume test compare two different runs.
    text = re.sub(r'\[\[attention\]\]\nuse = "[a-z-]+"[^\n]*\n+', "", EXAMPLE.read_text())
    text += "\n[feedback]\nuse = \"feedback-loop\"\n" + feedback
    return build_pipeline(parse_pipeline(text, base_dir=EXAMPLE.parent),
                          store_path=str(db) if db else None)


def test_confidence_is_welchs_one_sided_test() -> None:
    assert improvement_confidence([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.5
    assert improvement_confidence([0.0, 0.1], [5.0, 5.1]) > 0.999
    assert improvement_confidence([5.0, 5.1], [0.0, 0.1]) < 0.001
    a, b = [0.01, -0.02, 0.005, 0.0], [0.02, 0.01, -0.004]
    mean_a, mean_b = sum(a) / 4, sum(b) / 3
    var_a = sum((x - mean_a) ** 2 for x in a) / 3
    var_b = sum((x - mean_b) ** 2 for x in b) / 2
    se = math.sqrt(var_a / 4 + var_b / 3)
    assert improvement_confidence(a, b) == pytest.approx(NormalDist().cdf((mean_b - mean_a) / se))


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=8),
       st.lists(st.floats(-1, 1), min_size=2, max_size=8))
def test_confidence_is_a_probability_and_antisymmetric(a: list[float], b: list[float]) -> None:
    p = improvement_confidence(a, b)
    assert 0.0 <= p <= 1.0
    assert p + improvement_confidence(b, a) == pytest.approx(1.0, abs=1e-9)


def journal_changes(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT data FROM journal WHERE kind = 'ParamChanged' "
                            "ORDER BY rowid").fetchall()
    return [json.loads(r[0]) for r in rows]


def test_trials_are_journalled_kept_above_the_threshold_or_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    p = pipeline("every = 400\nwindow = 3\n", tmp_path, db)
    summary = run_pipeline(p)
    stats = summary["components"]["feedback"]
    assert stats["trials"] >= 5 and stats["samples"] >= 30
    assert stats["kept"] + stats["rolled_back"] + (stats["testing"] is not None) \
        == stats["trials"]
    changes = journal_changes(db)
    # Each trial is one change, each roll-back one more that puts the old values back.
    assert len(changes) == stats["trials"] + stats["rolled_back"]
    for d in p.feedback.decisions:
        assert (d["confidence"] > 0.8) is d["kept"]
    # What stays tuned is the kept changes (and a trial still running): the store's last
    # value of each option is the component's value now.
    last: dict[tuple[str, str], Any] = {}
    for c in changes:
        for name, value in c["new"].items():
            last[(c["path"], name)] = value
    comps = {p.origin(c)[0].path: c for c in p.components()}
    for (path, name), value in last.items():
        assert getattr(comps[path].config, name) == pytest.approx(value), (path, name)


def test_each_trial_moves_one_option_by_at_most_step_of_its_range(tmp_path: Path) -> None:
    p = pipeline("every = 400\nwindow = 2\nstep = 0.05\n", tmp_path)
    run_pipeline(p)
    bounds = {f"{path}.{n}": (lo, hi) for path, opts in p.feedback._tuner.options().items()
              for n, (lo, hi, _) in opts.items()}
    assert p.feedback.decisions
    for d in p.feedback.decisions:
        lo, hi = bounds[d["option"]]
        assert abs(d["to"] - d["from"]) <= 0.05 * (hi - lo) + 1e-9, d


def test_options_narrow_what_it_tunes_and_a_wrong_one_is_one_line(tmp_path: Path) -> None:
    p = pipeline('every = 300\nwindow = 2\noptions = ["strategy.min_bars"]\n', tmp_path)
    run_pipeline(p)
    assert {d["option"] for d in p.feedback.decisions} == {"strategy.min_bars"}
    with pytest.raises(ConfigError, match=r"feedback.options: strategy.nope is not a tunable"):
        run_pipeline(pipeline('options = ["strategy.nope"]\n', tmp_path))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="step"):
        build(FeedbackLoop, {"step": 0})
    with pytest.raises(ConfigError, match="confidence"):
        build(FeedbackLoop, {"confidence": 1.0})
    with pytest.raises(ConfigError, match=r"path\.name"):
        build(FeedbackLoop, {"options": ["min_bars"]})


def test_a_resumed_run_keeps_its_tuned_values_and_ends_as_a_straight_one(tmp_path: Path
                                                                        ) -> None:
    straight = run_pipeline(pipeline("every = 400\nwindow = 2\n", tmp_path, tmp_path / "a.db"))
    db = tmp_path / "b.db"
    sent: list[int] = []

    def stop(done: int, total: int | None) -> None:
        if done >= 12_288 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    first = run_pipeline(pipeline("every = 400\nwindow = 2\n", tmp_path, db), stop)
    assert first["status"] == "stopped" and first["components"]["feedback"]["trials"] > 0
    again = run_pipeline(pipeline("every = 400\nwindow = 2\n", tmp_path, db), resume=True)
    assert again["components"]["feedback"] == straight["components"]["feedback"]
    assert again["final_equity"] == straight["final_equity"]
