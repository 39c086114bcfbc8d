"""``gridkit report`` (issue 12): one self-contained HTML file of a stored run, rendered in
headless Chromium (skipped, with the reason, where Chromium is not installed; ``.ci/run``
installs it): the charts drew, with no console error."""

from __future__ import annotations

import html
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def gridkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "run.db"
    assert gridkit("run", str(EXAMPLE), "--db", str(db), "-q").returncode == 0
    return db


def external_sources(text: str) -> list[str]:
    """What the page's tags load from elsewhere (scripts, styles, images)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v for k, v in attrs if k in ("src", "href") and v)

    Tags().feed(text)
    return found


def render(page: Path, tmp: Path) -> tuple[str, str, Path]:
    """The DOM Chromium leaves once the page's scripts ran, its console, and a screenshot."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no name resolves
            f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    shot = tmp / "report.png"
    subprocess.run([*args, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    return dom.stdout, dom.stderr, shot


def test_the_report_opens_offline_and_its_charts_draw(store: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    out = gridkit("report", "--db", str(store), "--out", str(page), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info == {"run": 1, "partial": False, "traces": 7, "bytes": page.stat().st_size,
                    "out": str(page)}
    text = page.read_text()
    assert external_sources(text) == []  # nothing fetched: plotly's JavaScript is inside
    assert "Price, grid levels (31) and fills (677)" in text
    assert '"use": "static"' in html.unescape(text)  # the configuration, shown
    dom, console, shot = render(page, tmp_path)
    assert 'data-traces="7"' in dom and 'data-expected="7"' in dom
    assert "CONSOLE" not in console, console  # no console message at all, errors included
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_a_run_without_a_summary_gives_a_partial_report(store: Path, tmp_path: Path) -> None:
    running = tmp_path / "running.db"
    shutil.copy(store, running)
    with sqlite3.connect(running) as conn:
        conn.execute("UPDATE runs SET status = 'running', summary = NULL")
    page = tmp_path / "partial.html"
    out = gridkit("report", "1", "--db", str(running), "--out", str(page))
    assert out.returncode == 0 and out.stdout.startswith("wrote the partial report (the run has no "
                                                         "summary yet) of run 1")
    text = page.read_text()
    assert 'data-partial="true"' in text and "Partial report: the run has no summary" in text


def test_bad_input_is_one_line(store: Path, tmp_path: Path) -> None:
    for args, message in ((["9"], "holds no run 9"),
                          (["--out", str(tmp_path / "no" / "r.html")], "no folder"),
                          (["--out", str(tmp_path)], "it is a folder")):
        out = gridkit("report", "--db", str(store), *args)
        assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1
    assert gridkit("report", "--db", str(tmp_path / "none.db")).returncode == 2
