"""The ``metrics`` and ``prometheus`` monitors (issue 12): the run's figures while it runs,
scraped by a real HTTP client from the running server."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(monitors: list[dict[str, Any]], path: str | None = None) -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["source"]["path"] = path or str(EXAMPLES / "data" / "BTC_USDT-1m.json.gz")
    data["monitors"] = monitors
    return data


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's real month of 1m bars laid end to end six times (257,490 bars): a
    backtest long enough to be scraped while it runs."""
    with gzip.open(EXAMPLES / "data" / "BTC_USDT-1m.json.gz", "rt") as f:
        month = json.load(f)
    span = month[-1][0] - month[0][0] + 60_000
    rows = [[r[0] + k * span, *r[1:]] for k in range(6) for r in month]
    path = tmp_path_factory.mktemp("long") / "long.json"
    path.write_text(json.dumps(rows))
    return path


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in the scrape")


def test_a_scrape_during_a_run_returns_current_figures(long_file: Path, tmp_path: Path) -> None:
    built = build_pipeline(pipeline_from_data(example(
        [{"use": "prometheus", "port": 0}, {"use": "metrics"}], str(long_file)), "<t>",
        tmp_path))
    prom = built.monitors[0]
    done: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: done.update(run_pipeline(built)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while prom.port is None and time.monotonic() < deadline:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{prom.port}"
    scrapes = []
    while runner.is_alive() and len(scrapes) < 2 and time.monotonic() < deadline:
        status, text = get(base + "/metrics")
        assert status == 200
        if "gridkit_equity " in text:
            scrapes.append(text)
            time.sleep(0.3)
    assert len(scrapes) == 2, "scraped twice while the run ran"
    first, second = (gauge(t, "gridkit_events_total") for t in scrapes)
    assert 0 < first < second < 257_490, "the figures move as the run goes"
    assert "# TYPE gridkit_equity gauge" in scrapes[0] and gauge(scrapes[0], "gridkit_healthy") == 1
    status, health = get(base + "/healthz")
    dash_status, dash = get(base + "/api/v1/dashboard")
    assert status == 200 and json.loads(health) == {"status": "healthy", "reasons": []}
    figures = json.loads(dash)["figures"]
    assert dash_status == 200 and figures["equity"] > 0 and figures["events"] >= second
    assert get(base + "/nothing")[0] == 404
    runner.join(60)
    summary = done
    assert summary["status"] == "finished" and summary["bars_accepted"] == 257_490
    final = summary["components"]["monitors[1]"]
    assert final["events"] == 257_490 and final["equity"] == summary["final_equity"]
    assert (final["sharpe"], final["profit_factor"]) == (summary["sharpe"],
                                                         summary["profit_factor"])
    assert summary["components"]["monitors[0]"]["scrapes"] >= 5
    with pytest.raises(OSError):  # the server closed with the run
        urllib.request.urlopen(base + "/metrics", timeout=2)


def test_a_halted_run_is_unhealthy(tmp_path: Path) -> None:
    data = example([{"use": "prometheus", "port": 0}])
    data["risk"] = [{"use": "drawdown", "limit": 0.05}]
    built = build_pipeline(pipeline_from_data(data, "<t>", tmp_path))
    summary = run_pipeline(built)
    assert summary["halted"].startswith("drawdown")
    assert built.monitors[0].health() == ("unhealthy", [f"halted: {summary['halted']}"])


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        built = build_pipeline(pipeline_from_data(example(
            [{"use": "prometheus", "port": port}]), "<t>", tmp_path))
        with pytest.raises(ConfigError) as err:
            run_pipeline(built)
    assert str(err.value) == (f"monitors: prometheus cannot listen on 127.0.0.1:{port}: the "
                              f"port is in use (set port to another, or 0 for a free one)")
