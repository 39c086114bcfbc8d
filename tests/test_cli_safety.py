"""The command line's safety rails: gridkit keys, the --live confirmation, keys refused in
pipeline.toml, log options, exit codes, and error lines without secrets."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from click.testing import CliRunner

import gridkit
from gridkit import hookimpl
from gridkit.cli import cli, main
from gridkit.core.plugins import PluginHost
from gridkit.credentials import _forget_secrets, register_secret
from gridkit.plugins.keys_commands import keys
from helpers import live_replay, with_sources
from test_credentials import MemoryKeyring

REPO = Path(__file__).resolve().parent.parent
KEY = "k3yAAAAbbbbCCCCdddd9876"
SECRET = "s3cretZZZZyyyyXXXXwwww"
PASSPHRASE = "correct horse battery staple"

#: ``gridkit`` with the keys command added as its entry point will add it once installed.
GRIDKIT = ("from gridkit.cli import cli, main; from gridkit.plugins.keys_commands import keys; "
           "cli.add_command(keys); main()")


def gridkit_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
                stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", GRIDKIT, *args], capture_output=True,
                          text=True, cwd=cwd, stdin=stdin,
                          env={**os.environ, **(env or {})})


def one_line_error(out: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    """No secret and no gridkit log handler left behind for the next test."""
    yield
    _forget_secrets()
    logger = logging.getLogger("gridkit")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(old)


# --- gridkit keys ----------------------------------------------------------------------------


def test_keys_encrypt_then_check(tmp_path: Path) -> None:
    out = tmp_path / "keys.enc"
    runner = CliRunner()
    result = runner.invoke(keys, ["encrypt", "--exchange", "binance", "--out", str(out)],
                           input=f"{KEY}\n{SECRET}\n\n{PASSPHRASE}\n{PASSPHRASE}\n",
                           env={"GRIDKIT_KEY_PASSPHRASE": ""})
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for text in (result.output, out.read_text()):
        assert KEY not in text and SECRET not in text and PASSPHRASE not in text
    assert "keys ending …9876" in result.stdout
    result = runner.invoke(keys, ["check", f"file:{out}", "--exchange", "binance"],
                           env={"GRIDKIT_KEY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: key ending …9876\n"


def test_keys_encrypt_passphrases_must_match(tmp_path: Path) -> None:
    out = tmp_path / "keys.enc"
    result = CliRunner().invoke(
        keys, ["encrypt", "--exchange", "binance", "--out", str(out)],
        input=f"{KEY}\n{SECRET}\n\n{PASSPHRASE}\nsomething else\n{PASSPHRASE}\n{PASSPHRASE}\n",
        env={"GRIDKIT_KEY_PASSPHRASE": ""})
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert out.exists()


def test_keys_encrypt_from_env_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "keys.enc"
    env = {"GRIDKIT_OKX_API_KEY": KEY, "GRIDKIT_OKX_SECRET": SECRET,
           "GRIDKIT_OKX_PASSWORD": "okx-trading-pw", "GRIDKIT_KEY_PASSPHRASE": PASSPHRASE}
    args = ["keys", "encrypt", "--exchange", "okx", "--out", str(out), "--from-env"]
    assert gridkit_cli(*args, env=env).returncode == 0
    line = one_line_error(gridkit_cli(*args, env=env))
    assert line == f"Error: {out}: exists; give --force to replace it"
    assert gridkit_cli(*args, "--force", env=env).returncode == 0
    check = gridkit_cli("keys", "check", f"file:{out}", "--exchange", "okx", env=env)
    assert check.stdout == "ok: key ending …9876, with a password\n"


def test_keys_check_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "keys.enc"
    env = {"GRIDKIT_BINANCE_API_KEY": KEY, "GRIDKIT_BINANCE_SECRET": SECRET,
           "GRIDKIT_KEY_PASSPHRASE": PASSPHRASE}
    assert gridkit_cli("keys", "encrypt", "--exchange", "binance", "--out", str(out),
                       "--from-env", env=env).returncode == 0
    result = gridkit_cli("keys", "check", f"file:{out}", "--exchange", "binance",
                         env={"GRIDKIT_KEY_PASSPHRASE": "wrong wrong wrong"})
    line = one_line_error(result)
    assert line == f"Error: keys from file:{out}: wrong passphrase, or the file is corrupt"
    missing = one_line_error(gridkit_cli("keys", "check", "env", "--exchange", "kraken",
                                         env={"GRIDKIT_API_KEY": "", "GRIDKIT_API_SECRET": ""}))
    assert missing.startswith("Error: keys from env: GRIDKIT_KRAKEN_API_KEY")


def test_keys_store_then_check(memory_keyring: MemoryKeyring) -> None:
    runner = CliRunner()
    result = runner.invoke(keys, ["store", "--exchange", "binance"],
                           input=f"{KEY}\n{SECRET}\nmy-password\n")
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and SECRET not in result.output
    assert json.loads(memory_keyring.items[("gridkit", "binance")]) == {
        "api_key": KEY, "secret": SECRET, "password": "my-password"}
    result = runner.invoke(keys, ["check", "keyring", "--exchange", "binance"])
    assert result.stdout == "ok: key ending …9876, with a password\n"


def test_keys_command_help_is_read_without_import() -> None:
    from gridkit.cli import static_help

    class EP:
        module, attr = "gridkit.plugins.keys_commands", "keys"

    info = static_help(EP())
    assert info is not None and info["help"].startswith("API keys:")


def test_keys_entry_point_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'keys = "gridkit.plugins.keys_commands:keys"' in text


# --- keys in pipeline.toml -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "check", "validate"])
def test_keys_in_the_pipeline_are_refused(tmp_path: Path, command: str) -> None:
    text = (REPO / "examples" / "pipeline.toml").read_text().replace(
        'path = "data/', f'path = "{(REPO / "examples" / "data").as_posix()}/')
    assert '[executor]\nuse = "simulated"\n' in text
    text = text.replace('[executor]\nuse = "simulated"\n',
                        f'[executor]\nuse = "simulated"\noptions = {{ apiKey = "{KEY}" }}\n')
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    line = one_line_error(gridkit_cli(command, str(path)))
    assert line == (f'Error: {path}: executor.options.apiKey: API keys never go in '
                    f'pipeline.toml; use [executor] keys = "env" | "keyring" | "file:PATH"')
    assert KEY not in line


# --- the --live confirmation -----------------------------------------------------------------

LIVE = """
[pipeline]
mode = "live"
symbols = ["BTC/USDT", "ETH/USDT"]
[source]
use = "ccxt-stream"
exchange = "binance"
max_events = 10
[strategy]
use = "static"
lower = 50000
upper = 60000
grids = 10
qty = 0.001
"""


@pytest.fixture
def live_toml(tmp_path: Path) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(LIVE)
    return path


def test_live_without_confirmation_and_no_tty_exits_2(live_toml: Path) -> None:
    line = one_line_error(gridkit_cli("run", str(live_toml)))
    assert line == (f'Error: {live_toml}: mode = "live" sends real orders to binance for '
                    f"BTC/USDT, ETH/USDT: give --live to confirm (stdin is not a terminal to "
                    f"ask on)")


def test_live_flag_gets_past_the_confirmation(live_toml: Path) -> None:
    # No live executor is installed yet: the run is refused after the confirmation, by the
    # pipeline's own checks.
    line = one_line_error(gridkit_cli("run", "--live", str(live_toml)))
    assert "live mode needs an executor that sends real orders" in line
    assert "--live" not in line and "not confirmed" not in line


def _on_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run gridkit with stdin on a pseudo-terminal, answer the prompt; (status, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", GRIDKIT, *args], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    os.close(slave)
    deadline = time.monotonic() + 60
    prompt = b""
    try:
        while b"Type yes to go on" not in prompt and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
                if not chunk:
                    break
                prompt += chunk
        os.write(master, answer)
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, (prompt + err).decode()


def test_live_prompt_on_a_terminal(live_toml: Path) -> None:
    status, err = _on_a_terminal(["run", str(live_toml)], b"yes\n")
    assert ("This run sends real orders to binance for BTC/USDT, ETH/USDT. Type yes to go on: "
            in err)
    assert status == 2 and "live mode needs an executor that sends real orders" in err
    status, err = _on_a_terminal(["run", str(live_toml)], b"no\n")
    assert status == 2
    # (stderr is a pipe here: the answer's newline is echoed on the terminal, not in it)
    assert err.endswith(f"Type yes to go on: Error: {live_toml}: live run not confirmed "
                        f"(answered 'no'; type yes, or give --live)\n")


# --- logging options -------------------------------------------------------------------------


ReplayLive = live_replay("replay-live-cli", 300)


@pytest.fixture
def host(gridkit_host: PluginHost) -> PluginHost:
    return with_sources(gridkit_host, "replay-cli-test", ReplayLive)


PAPER = """
[pipeline]
mode = "paper"
symbol = "BTC/USDT"
[source]
use = "replay-live-cli"
[strategy]
use = "static"
lower = 55000
upper = 57000
grids = 10
qty = 0.01
"""


def test_run_logs_json_lines(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "paper.toml"
    path.write_text(PAPER)
    result = CliRunner().invoke(cli, ["run", "--json", str(path)],
                                env={"GRIDKIT_LOG_FORMAT": "json"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    fills = [r for r in records if r["event"] == "fill"]
    assert len(fills) == summary["buy_fills"] + summary["sell_fills"] > 0
    assert {"ts", "level", "logger", "msg", "symbol", "order_id", "side", "qty",
            "price"} <= set(fills[0])


def test_run_quiet_logs_only_warnings(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "paper.toml"
    path.write_text(PAPER)
    result = CliRunner().invoke(cli, ["run", "--quiet", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    result = CliRunner().invoke(cli, ["run", "--quiet", "--log-level", "info", str(path)])
    assert " INFO    gridkit.orders: order requested: BTC/USDT " in result.stderr


def test_a_backtest_writes_nothing_to_stderr() -> None:
    out = gridkit_cli("run", "--log-format", "json", str(REPO / "examples" / "pipeline.toml"))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


# --- error lines -----------------------------------------------------------------------------


def test_error_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret(SECRET)
    with pytest.raises(SystemExit) as exit_:
        main(["validate", f"/nowhere/{SECRET}.toml"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err == "Error: pipeline file not found: /nowhere/***.toml\n"


def test_exchange_unreachable_exits_3(host: PluginHost, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from gridkit.plugins.executors import SimulatedExecutor

    class Unreachable(SimulatedExecutor):
        """The simulated executor, with an exchange that cannot be reached at start."""

        name = "unreachable"

        def setup(self, run: Any) -> None:
            raise gridkit.ExchangeUnreachable(f"binance: cannot connect (key {SECRET})")

    class Plugin:
        @staticmethod
        @hookimpl
        def gridkit_register_executors(register: Any) -> None:
            register(Unreachable)

    host.register(Plugin, "unreachable-test")
    register_secret(SECRET)
    path = tmp_path / "paper.toml"
    path.write_text(PAPER + '[executor]\nuse = "unreachable"\n')
    result = CliRunner().invoke(cli, ["run", str(path)], standalone_mode=False)
    assert isinstance(result.exception, gridkit.ExchangeUnreachable)
    assert result.exception.exit_code == 3
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(path)])
    assert exit_.value.code == 3
    assert capsys.readouterr().err == "Error: binance: cannot connect (key ***)\n"


def test_run_help_lists_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    for line in ("0  finished, or stopped by SIGINT / SIGTERM",
                 "1  a component failed", "2  bad input", "3  the exchange could not be reached"):
        assert line in result.output
    assert "--live" in result.output and "GRIDKIT_LOG_FORMAT" in result.output
