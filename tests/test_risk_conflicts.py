"""Risk limits that contradict each other, or a window the data cannot fill: refused before
the run, one line per problem, naming the ``[[risk]]`` entry (issue 10's bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridkit import ConfigError
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import parse_pipeline

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def portfolio(**swap: str) -> str:
    """The four-coin example with text replaced (``old=new`` pairs, first match each)."""
    text = (EXAMPLES / "portfolio-risk.toml").read_text()
    for old, new in swap.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def refused(text: str, *, run: bool = False) -> str:
    with pytest.raises(ConfigError) as err:
        pipeline = build_pipeline(parse_pipeline(text, base_dir=EXAMPLES))
        if run:
            run_pipeline(pipeline)
    line = str(err.value)
    assert "\n" not in line and line.startswith("<string>: ")  # (the file, when read from one)
    return line.removeprefix("<string>: ")


def test_the_example_has_no_conflict() -> None:
    build_pipeline(parse_pipeline(portfolio(), base_dir=EXAMPLES))


def test_a_daily_loss_limit_at_or_above_the_drawdown_limit_never_binds() -> None:
    text = portfolio(**{'use = "drawdown"\nlimit = 0.4': 'use = "drawdown"\nlimit = 0.02'})
    assert refused(text) == ("risk[3]: daily-loss limit 2.00% is not below the drawdown limit "
                             "2.00%: drawdown halts first, so daily-loss never binds")
    build_pipeline(parse_pipeline(  # just below: both can act
        text.replace('use = "drawdown"\nlimit = 0.02', 'use = "drawdown"\nlimit = 0.021'),
        base_dir=EXAMPLES))


def test_a_breaker_drop_at_or_above_the_drawdown_limit_never_fires() -> None:
    text = portfolio(**{"[executor]": '[[risk]]\nuse = "circuit-breaker"\nmax_drop = 0.5\n'
                                      'operator = false\n\n[executor]'})
    assert refused(text) == ("risk[5]: circuit-breaker max_drop 50.00% is not below the "
                             "drawdown limit 40.00%: drawdown halts first, so the equity-drop "
                             "trigger never fires")


def test_portfolio_checks_with_different_windows_are_refused() -> None:
    text = portfolio(**{"window = 288                           # one day of 5m bars":
                        "window = 100"})
    assert refused(text) == ("risk[0]: correlation window 100 differs from var's 288: the "
                             "portfolio checks share one risk book with one window (the "
                             "largest); give them the same window")


def test_a_window_longer_than_the_backtest_data_is_refused_before_the_run(
        tmp_path: Path) -> None:
    text = portfolio(**{"window = 288                           # one day of 5m bars":
                        "window = 9000", "window = 288\nevery = 12": "window = 9000\nevery = 12"})
    line = refused(text, run=True)
    assert line == ("2 problems: risk[0]: correlation needs 9,001 bars before it vets an order, "
                    "and the data holds 5,719: it would pass every order unvetted (shorten its "
                    "window); risk[2]: var needs 9,001 bars before it vets an order, and the "
                    "data holds 5,719: it would pass every order unvetted (shorten its window)")
