"""The ``alerts`` monitor (issue 12): thresholds on a run's figures, posted to a webhook — a
local HTTP server that records what it received — deduplicated, rate-limited and retried;
a webhook that fails or times out never stops the run."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gridkit import ConfigError
from gridkit.runtime.alerts import payload
from gridkit.runtime.engine import build_pipeline, run_pipeline
from gridkit.runtime.pipeline_file import pipeline_from_data, tomllib

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Receiver:
    """A webhook on localhost: records each POST's JSON body; answers ``codes`` in turn (then
    200), after ``delay`` seconds."""

    def __init__(self, codes: tuple[int, ...] = (), delay: float = 0.0) -> None:
        self.bodies: list[Any] = []
        self.hits = 0
        codes_left = list(codes)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.hits += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                code = codes_left.pop(0) if codes_left else 200
                if code == 200:
                    outer.bodies.append(json.loads(body))
                try:
                    self.send_response(code)
                    self.end_headers()
                except OSError:  # the client gave up (its timeout)
                    pass

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def built(alerts: dict[str, Any], tmp: Path, risk: list[dict[str, Any]] | None = None) -> Any:
    data = tomllib.loads((EXAMPLES / "pipeline.toml").read_text())
    data["source"]["path"] = str(EXAMPLES / "data" / "BTC_USDT-1m.json.gz")
    data["risk"] = risk or []
    data["monitors"] = [{"use": "alerts", **alerts}]
    return build_pipeline(pipeline_from_data(data, "<t>", tmp))


def run(alerts: dict[str, Any], tmp: Path, risk: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    return run_pipeline(built(alerts, tmp, risk))


def test_a_crossed_threshold_is_posted_once_and_again_after_it_clears(tmp_path: Path) -> None:
    hook = Receiver()
    try:
        # Sent each time the drawdown crosses 10 % (a run of the month takes well under the
        # hour after which one still true would be sent again)
        summary = run({"url": hook.url, "above": {"drawdown": 0.1, "rss_mb": 100_000},
                       "every": 50}, tmp_path)
    finally:
        hook.close()
    stats = summary["components"]["monitors[0]"]
    drawdowns = [b for b in hook.bodies if b["alert"] == "drawdown above"]
    assert stats["fired"] == len(hook.bodies) >= 1  # (delivered by the time the run closed)
    assert len(drawdowns) == stats["fired"]  # rss never crossed 100 GB
    first = drawdowns[0]
    assert first["threshold"] == 0.1 and first["value"] > 0.1
    assert first["message"].startswith("gridkit btc-static-grid: drawdown 0.1")
    assert isinstance(first["ts"], int) and first["run"] == "btc-static-grid"


def test_a_halt_is_posted_in_slacks_shape(tmp_path: Path) -> None:
    hook = Receiver()
    try:
        summary = run({"url": hook.url, "format": "slack"}, tmp_path,
                      risk=[{"use": "drawdown", "limit": 0.05}])
    finally:
        hook.close()
    assert summary["halted"].startswith("drawdown")
    assert hook.bodies == [{"text": f"gridkit btc-static-grid: trading halted: "
                                    f"{summary['halted']}"}]


def test_a_500_is_retried_and_a_timeout_never_stops_the_run(tmp_path: Path) -> None:
    flaky = Receiver(codes=(500, 503))
    try:
        summary = run({"url": flaky.url, "format": "discord", "above": {"drawdown": 0.1}},
                      tmp_path)
    finally:
        flaky.close()
    # the first alert answered 500 and 503, then delivered; every alert arrived once
    stats = summary["components"]["monitors[0]"]
    assert flaky.hits == len(flaky.bodies) + 2 and len(flaky.bodies) == stats["fired"]
    assert flaky.bodies[0]["content"].endswith("is above 0.1") and stats["failed"] == 0
    slow = Receiver(delay=2.0)
    try:
        pipeline = built({"url": slow.url, "above": {"drawdown": 0.1}, "timeout": 0.3,
                          "retries": 1}, tmp_path)
        t0 = time.monotonic()
        summary = run_pipeline(pipeline)
        assert summary["status"] == "finished" and summary["bars_accepted"] == 42_915
        assert time.monotonic() - t0 < 15
    finally:
        slow.close()
    sender = pipeline.monitors[0].sender  # (its counts are final once the run closed it)
    assert sender.failed >= 1 and sender.sent == 0


def test_payload_shapes() -> None:
    alert = {"alert": "drawdown above", "message": "m", "value": 0.2}
    assert payload("json", alert) == alert
    assert payload("slack", alert) == {"text": "m"}
    assert payload("discord", alert) == {"content": "m"}
    assert payload("telegram", alert, "42") == {"chat_id": "42", "text": "m"}


@pytest.mark.parametrize(("options", "message"), [
    ({"url": "ftp://x"}, "url: must be an http or https URL"),
    ({"url": "http://x", "above": {"drawdon": 0.1}}, "above: no figure 'drawdon'"),
    ({"url": "http://x", "format": "telegram"}, "chat_id: Telegram needs the chat"),
])
def test_bad_options_are_one_line(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        run(options, tmp_path)
    assert message in str(err.value)
