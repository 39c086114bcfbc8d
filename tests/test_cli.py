"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pipeline.toml"

#: Every built-in of issue 2's slice, by (kind, name).
BUILTINS = {
    ("source", "freqtrade-json"), ("source", "csv"),
    ("validator", "price"), ("validator", "volume"), ("validator", "timestamp"),
    ("validator", "ohlc"),
    ("feature", "rsi"), ("feature", "volatility"), ("feature", "volume-ratio"),
    ("attention", "progressive"),
    ("regime", "ranging"), ("regime", "trending"), ("regime", "volatile"), ("regime", "dormant"),
    ("regime", "garch-vol"), ("regime", "markov"),
    ("strategy", "static"), ("strategy", "symmetric"),
    ("risk", "position-size"), ("risk", "drawdown"),
    ("executor", "simulated"), ("store", "sqlite"),
}


def gridkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from gridkit.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


def one_line_error(out: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_help_lists_the_commands() -> None:
    out = gridkit("--help")
    assert out.returncode == 0
    for command in ("run", "validate", "plugins", "components"):
        assert command in out.stdout


def test_run_example_prints_the_summary() -> None:
    out = gridkit("run", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    for label in ("bars", "fills", "fees paid", "final equity", "realized profit",
                  "max drawdown", "latency (µs)"):
        assert label in out.stdout
    assert out.stderr == ""  # no progress bar when stderr is not a terminal


def test_run_json_is_one_object_with_the_design_fields() -> None:
    out = gridkit("run", str(EXAMPLE), "--json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["status"] == "finished"
    assert s["bars_seen"] == 42915 and s["bars_dropped"] == 0
    assert s["dropped_by"]["timestamp"] == {"gaps": 1, "missing_bars": 284}
    assert s["buy_fills"] > 100 and s["sell_fills"] > 100
    assert s["pipeline"]["strategy"] == {"use": "static", "plugin": "gridkit.grids",
                                         "distribution": "gridkit"}
    assert s["unreconciled_orders"] == []


def test_run_db_records_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    out = gridkit("run", str(EXAMPLE), "--db", str(db), "--quiet")
    assert out.returncode == 0, out.stderr
    assert f"in {db}" in out.stdout
    conn = sqlite3.connect(db)
    status, summary = conn.execute("SELECT status, summary FROM runs").fetchone()
    assert status == "finished"
    assert json.loads(summary)["bars_seen"] == 42915
    assert conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 42915
    n_fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert n_fills == json.loads(summary)["buy_fills"] + json.loads(summary)["sell_fills"]


def test_validate_says_ok_and_what_it_checked() -> None:
    out = gridkit("validate", str(EXAMPLE))
    assert out.returncode == 0
    assert "OK (backtest, BTC/USDT)" in out.stdout and "strategy static" in out.stdout


@pytest.mark.parametrize(("text", "expected"), [
    ("[pipeline\n", "TOML syntax error"),
    ('[pipeline]\nsymbol = "X/Y"\n[strategy]\nuse = "static"\n', "missing section [source]"),
    ('[pipeline]\nsymbol = "X/Y"\n[source]\nuse = "nope"\n[strategy]\nuse = "static"\n',
     "source: unknown source 'nope'"),
])
def test_bad_pipelines_are_one_line_with_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "p.toml"
    p.write_text(text)
    for command in ("run", "validate"):
        line = one_line_error(gridkit(command, str(p)))
        assert expected in line and str(p) in line


def test_missing_pipeline_file() -> None:
    assert "pipeline file not found" in one_line_error(gridkit("run", "no/such/file.toml"))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("[pipeline\n")
    out = gridkit("--debug", "run", str(p))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_components_json_lists_every_builtin_from_gridkit() -> None:
    out = gridkit("components", "--json")
    assert out.returncode == 0
    items = json.loads(out.stdout)
    found = {(c["kind"], c["name"]) for c in items}
    assert found >= BUILTINS
    for c in items:
        if (c["kind"], c["name"]) in BUILTINS:
            assert c["distribution"] == "gridkit" and c["plugin"].startswith("gridkit.")
            assert c["summary"]
    static = next(c for c in items if c["name"] == "static")
    fields = {f["name"]: f for f in static["config"]}
    assert fields["grids"]["type"] == "int" and fields["grids"]["required"]
    assert fields["mode"]["default"] == "arithmetic"


def test_components_kind_filter_and_unknown_kind() -> None:
    out = gridkit("components", "--kind", "strategy")
    assert out.returncode == 0
    assert "static" in out.stdout and "rsi" not in out.stdout
    assert "unknown kind 'strategi'" in one_line_error(gridkit("components", "--kind", "strategi"))


def test_components_all_shows_options() -> None:
    out = gridkit("components", "--all", "--kind", "strategy")
    assert "grids: int (required)" in out.stdout


def test_plugins_json() -> None:
    out = gridkit("plugins", "--json")
    data = json.loads(out.stdout)
    names = {p["name"]: p for p in data["plugins"]}
    assert names["gridkit.grids"]["hooks"] == ["gridkit_register_strategies"]
    assert names["gridkit.grids"]["distribution"] == "gridkit"


def test_db_option_is_relative_to_the_current_directory(tmp_path: Path) -> None:
    out = gridkit("run", str(EXAMPLE), "--db", "here.db", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "here.db").exists()
    assert not (EXAMPLE.parent / "here.db").exists()


# --- commands: listed without importing a plugin, imported when run ----------------------------

_HELP_PROBE = """
import contextlib, io, json, sys
from gridkit.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["--help"])
    except SystemExit:
        pass
print(json.dumps({"help": out.getvalue(),
                  "plugins": sorted(m for m in sys.modules if m.startswith("gridkit.plugins")),
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in ("numpy", "numba", "ccxt", "sqlite3"))}))
"""


def test_help_imports_no_plugin_module_and_lists_the_entry_point_commands() -> None:
    out = subprocess.run([sys.executable, "-c", _HELP_PROBE], capture_output=True, text=True,
                         check=True)
    probe = json.loads(out.stdout)
    assert probe["plugins"] == [] and probe["heavy"] == []
    listed = dict(line.split(None, 1) for line in probe["help"].split("Commands:\n")[1]
                  .splitlines() if line.strip())
    # ``data`` is gridkit's own gridkit.commands entry point (gridkit.plugins.ccxt_commands).
    assert listed["data"] == "Market data: download candles from exchanges."
    assert {"check", "components", "data", "keys", "plugins", "run", "status",
            "validate"} <= set(listed)


def test_static_help_of_data_is_the_loaded_commands_help() -> None:
    from gridkit.cli import cli, command_entry_points, static_help
    from gridkit.plugins.ccxt_commands import data

    ep = command_entry_points(set(cli.commands) - cli._loaded)[0]["data"]
    assert ep.value == "gridkit.plugins.ccxt_commands:data"
    info = static_help(ep)
    assert info == {"help": "Market data: download candles from exchanges."}
    assert click_stand_in(info).get_short_help_str(30) == data.get_short_help_str(30)


def click_stand_in(info: dict) -> Any:
    import click

    return click.Command("x", **info)


def command_dist(root: Path, dist: str, module: str, source: str, commands: dict[str, str]
                 ) -> None:
    """An installed distribution on ``root`` declaring ``gridkit.commands`` entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in commands.items())
    (info / "entry_points.txt").write_text(f"[gridkit.commands]\n{lines}")


HELLO = '''
import click

@click.command()
@click.option("--name", default="world")
def hello(name):
    """Greet NAME from a plugin, with a first sentence long enough for click to shorten it.

    More text that the listing never shows.
    """
    click.echo(f"hello {name}")

@click.command(short_help="quiet one", hidden=True)
def secret():
    """Not listed."""

not_a_command = 42
'''


@pytest.fixture
def root_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The root group, with a fake distribution folder on sys.path and its caches reset."""
    from gridkit.cli import cli

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GRIDKIT_LOAD_PLUGINS", "gridkit-hello,gridkit-other")
    commands = dict(cli.commands)
    cli._entries = None
    yield cli
    cli._entries = None
    cli.commands.clear()
    cli.commands.update(commands)
    for name in ("gridkit_hello_cmd", "gridkit_other_cmd", "gridkit_hello_computed"):
        sys.modules.pop(name, None)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from gridkit.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_entry_point_command_is_listed_from_its_source_and_imported_when_run(
        root_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command_dist(tmp_path, "gridkit-hello", "gridkit_hello_cmd", HELLO, {
        "hello": "gridkit_hello_cmd:hello", "computed": "gridkit_hello_computed:computed",
        "secret": "gridkit_hello_cmd:secret"})
    (tmp_path / "gridkit_hello_computed.py").write_text(
        'import click\n\nHELP = "help made at import time"\n\n\n'
        '@click.command(help=HELP)\ndef computed():\n    pass\n')
    code, out, err = run_main(capsys, "--help")
    assert code == 0 and err == ""
    assert "gridkit_hello_cmd" not in sys.modules, "hello is listed from its source"
    rows = dict(line.split(None, 1) for line in out.split("Commands:\n")[1].splitlines())
    assert "secret" not in rows  # hidden=True, read from the decorator
    # A help computed at import time cannot be read from the source: that module is imported
    # to list it, and the listing is right either way.
    assert rows["computed"] == "help made at import time"
    from gridkit_hello_cmd import hello  # type: ignore[import-not-found]

    assert rows["hello"] == hello.get_short_help_str(80 - 6 - max(map(len, rows)))
    assert rows["hello"].startswith("Greet NAME from a plugin")
    code, out, err = run_main(capsys, "hello", "--name", "grid")
    assert (code, out, err) == (0, "hello grid\n", "")


def test_a_broken_command_module_fails_alone_in_one_line(
        root_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command_dist(tmp_path, "gridkit-hello", "gridkit_hello_cmd",
                 '"""Broken."""\nimport click\n\n\n@click.command()\ndef boom():\n'
                 '    """Never runs."""\n\n\nraise ImportError("nope")\n',
                 {"boom": "gridkit_hello_cmd:boom", "nothing": "gridkit_hello_cmd:missing"})
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "Never runs." in out and "run " in out
    # ``nothing`` names no function in the source: listing imports it, and says it failed.
    # (the column is as wide as the longest command name: no fixed padding)
    assert re.search(r"nothing +\[cannot be loaded: command 'nothing'", out)
    code, out, err = run_main(capsys, "boom")
    assert code == 2 and out == ""
    assert err == ("Error: command 'boom' (gridkit_hello_cmd:boom, gridkit-hello): import "
                   "failed: ImportError: nope\n")
    code, out, _ = run_main(capsys, "validate", "--help")
    assert code == 0 and "Check the pipeline" in out  # the others still work


def test_command_names_clash_with_built_ins_and_each_other(
        root_cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    command_dist(tmp_path, "gridkit-hello", "gridkit_hello_cmd", HELLO,
                 {"run": "gridkit_hello_cmd:hello", "hello": "gridkit_hello_cmd:hello"})
    command_dist(tmp_path, "gridkit-other", "gridkit_other_cmd", HELLO.replace("hello ", "bye "),
                 {"hello": "gridkit_other_cmd:hello"})
    code, out, err = run_main(capsys, "--help")
    assert "hello " in out
    assert code == 0
    assert err.splitlines() == [
        "Warning: command 'run' of gridkit_hello_cmd:hello (gridkit-hello) not added: gridkit "
        "has a built-in command of that name",
        "Warning: command 'hello' is declared by both gridkit-hello and gridkit-other; "
        "gridkit-hello's is used"]
    assert run_main(capsys, "hello")[1] == "hello world\n"
    root_cli._entries = None
    monkeypatch.setenv("GRIDKIT_STRICT_PLUGINS", "1")
    code, _, err = run_main(capsys, "--help")
    assert code == 2 and err.startswith("Error: command 'run' of gridkit_hello_cmd:hello")


def test_third_party_commands_follow_the_plugin_switches(
        root_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridkit.cli import command_entry_points

    command_dist(tmp_path, "gridkit-hello", "gridkit_hello_cmd", HELLO,
                 {"hello": "gridkit_hello_cmd:hello"})
    names = {env: set(command_entry_points(env={"GRIDKIT_LOAD_PLUGINS": env} if env is not None
                                           else {})[0])
             for env in (None, "", "gridkit-hello")}
    own = names[""]  # gridkit's own commands stay whatever the switches say
    assert {"data", "keys"} <= own and "hello" not in own
    assert names == {None: own | {"hello"}, "": own, "gridkit-hello": own | {"hello"}}
    disabled = command_entry_points(env={"GRIDKIT_DISABLE_PLUGINS": "gridkit-hello"})[0]
    assert set(disabled) == own


def test_components_all_shows_one_of_groups_and_json_has_them() -> None:
    out = gridkit("components", "--all", "--kind", "risk")
    assert ("max_base: float | None (at least one of max_base, max_fraction is required; "
            "default None)") in out.stdout
    items = json.loads(gridkit("components", "--json", "--kind", "risk").stdout)
    size = next(c for c in items if c["name"] == "position-size")
    assert size["one_of"] == [["max_base", "max_fraction"]]
    assert [f["one_of"] for f in size["config"]] == [[["max_base", "max_fraction"]]] * 2
