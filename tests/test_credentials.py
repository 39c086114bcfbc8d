"""API keys: loaded from the environment, the keyring or an encrypted file; refused in
pipeline.toml; never shown (repr, error lines, redaction)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest

from gridkit import ConfigError
from gridkit.credentials import (
    Credentials,
    _forget_secrets,
    decrypt_credentials,
    encrypt_credentials,
    load_credentials,
    redact,
    refuse_keys_in_config,
    register_secret,
    store_in_keyring,
    write_key_file,
)

KEY = "k3yAAAAbbbbCCCCdddd1234"
SECRET = "s3cretZZZZyyyyXXXXwwww"
PASSPHRASE = "correct horse battery staple"
#: A cheap scrypt cost for the tests (the files say which they used).
N = 2**10


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    _forget_secrets()
    yield
    _forget_secrets()


def _one_line(err: pytest.ExceptionInfo[ConfigError]) -> str:
    line = str(err.value)
    assert "\n" not in line
    for secret in (KEY, SECRET, PASSPHRASE):
        assert secret not in line
    return line


# --- the value -----------------------------------------------------------------------------


def test_credentials_never_show_their_values() -> None:
    c = Credentials(KEY, SECRET, "hunter2hunter2")
    for text in (repr(c), str(c), f"{c}", repr([c]), repr({"c": c})):
        assert KEY not in text and SECRET not in text and "hunter2" not in text
    assert c.hint == "…1234"
    assert c.as_ccxt() == {"apiKey": KEY, "secret": SECRET, "password": "hunter2hunter2"}
    with pytest.raises(AttributeError):
        c.secret = "x"  # type: ignore[misc]


# --- env -------------------------------------------------------------------------------------


def test_env_per_exchange() -> None:
    env = {"GRIDKIT_BINANCE_API_KEY": KEY, "GRIDKIT_BINANCE_SECRET": SECRET,
           "GRIDKIT_API_KEY": "other-key-xxxx", "GRIDKIT_API_SECRET": "other-secret-xxxx"}
    c = load_credentials("env", "binance", env=env)
    assert (c.api_key, c.secret, c.password) == (KEY, SECRET, None)
    env["GRIDKIT_OKX_API_KEY"], env["GRIDKIT_OKX_SECRET"] = "okx-key-xxxx", "okx-secret-xx"
    env["GRIDKIT_OKX_PASSWORD"] = "okx-pass-xx"
    assert load_credentials("env", "okx", env=env).password == "okx-pass-xx"


def test_env_falls_back_to_the_generic_names() -> None:
    c = load_credentials("env", "kraken", env={"GRIDKIT_API_KEY": KEY,
                                               "GRIDKIT_API_SECRET": SECRET})
    assert (c.api_key, c.secret) == (KEY, SECRET)


def test_env_missing_names_what_is_missing() -> None:
    with pytest.raises(ConfigError) as err:
        load_credentials("env", "binance", env={})
    line = _one_line(err)
    assert line.startswith("keys from env: ")
    assert "GRIDKIT_BINANCE_API_KEY" in line and "GRIDKIT_API_KEY" in line
    # Half a pair is not completed from the generic names: that would mix two accounts.
    with pytest.raises(ConfigError) as err:
        load_credentials("env", "binance", env={"GRIDKIT_BINANCE_API_KEY": KEY,
                                                "GRIDKIT_API_SECRET": SECRET})
    assert "GRIDKIT_BINANCE_SECRET not set" in _one_line(err)


def test_unknown_source() -> None:
    with pytest.raises(ConfigError) as err:
        load_credentials("vault", "binance")
    assert "unknown source 'vault'" in _one_line(err)
    with pytest.raises(ConfigError):
        load_credentials("file:", "binance")


# --- keyring ---------------------------------------------------------------------------------


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring in a dict: the test double of the operating system's keyring service."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(old)


def test_keyring_round_trip(memory_keyring: MemoryKeyring) -> None:
    store_in_keyring("binance", Credentials(KEY, SECRET))
    assert json.loads(memory_keyring.items[("gridkit", "binance")]) == {
        "api_key": KEY, "secret": SECRET}
    c = load_credentials("keyring", "binance")
    assert (c.api_key, c.secret, c.password) == (KEY, SECRET, None)


def test_keyring_missing_and_bad_entries(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigError) as err:
        load_credentials("keyring", "binance")
    assert "no entry for service 'gridkit', user 'binance'" in _one_line(err)
    memory_keyring.items[("gridkit", "binance")] = SECRET  # a bare secret, not gridkit's JSON
    with pytest.raises(ConfigError) as err:
        load_credentials("keyring", "binance")
    assert "not gridkit's JSON" in _one_line(err)
    memory_keyring.items[("gridkit", "binance")] = json.dumps({"api_key": KEY})
    with pytest.raises(ConfigError) as err:
        load_credentials("keyring", "binance")
    assert "api_key or secret missing" in _one_line(err)


# --- encrypted file --------------------------------------------------------------------------


def _key_file(tmp_path: Path, creds: Credentials | None = None) -> Path:
    path = tmp_path / "keys.enc"
    data = encrypt_credentials(creds or Credentials(KEY, SECRET, "pass-phrase-x"), PASSPHRASE,
                               "binance", n=N)
    write_key_file(path, data)
    return path


def test_file_round_trip(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for secret in (KEY, SECRET, PASSPHRASE, "pass-phrase-x"):
        assert secret not in text
    c = load_credentials(f"file:{path}", "binance", env={"GRIDKIT_KEY_PASSPHRASE": PASSPHRASE})
    assert (c.api_key, c.secret, c.password) == (KEY, SECRET, "pass-phrase-x")
    assert load_credentials(f"file:{path}", "binance", env={}, passphrase=PASSPHRASE) == c
    # Two files of the same keys differ: a fresh salt (and IV) each time.
    assert encrypt_credentials(c, PASSPHRASE, "binance", n=N) != path.read_bytes()


def test_file_is_not_overwritten_unless_asked(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    with pytest.raises(ConfigError, match="exists"):
        write_key_file(path, b"x")
    write_key_file(path, encrypt_credentials(Credentials("other-key-0000", SECRET), PASSPHRASE,
                                             "binance", n=N), overwrite=True)
    assert load_credentials(f"file:{path}", "binance", passphrase=PASSPHRASE).api_key \
        == "other-key-0000"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.enc"]  # no temporary file left


def test_file_wrong_passphrase(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", passphrase="not the passphrase")
    line = _one_line(err)
    assert line == f"keys from file:{path}: wrong passphrase, or the file is corrupt"


def test_file_of_another_exchange(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "kraken", passphrase=PASSPHRASE)
    assert "holds the keys of 'binance', not 'kraken'" in _one_line(err)


def test_file_truncated_or_corrupt(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", passphrase=PASSPHRASE)
    assert "corrupt or truncated" in _one_line(err)
    envelope = json.loads(data)
    token = envelope["token"]
    envelope["token"] = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    path.write_text(json.dumps(envelope))
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", passphrase=PASSPHRASE)
    assert "wrong passphrase, or the file is corrupt" in _one_line(err)
    envelope = json.loads(data)
    envelope["kdf"]["n"] = 2**30  # a hostile cost: refused before deriving anything
    path.write_text(json.dumps(envelope))
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", passphrase=PASSPHRASE)
    assert "bad key derivation parameters" in _one_line(err)


@pytest.mark.parametrize("content", [
    b"",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    json.dumps({"apiKey": KEY, "secret": SECRET}).encode(),  # plain JSON of another tool
    b"gAAAAABl" + b"x" * 100,  # a bare Fernet token, no envelope
])
def test_file_of_another_program(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.enc"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", passphrase=PASSPHRASE)
    assert "not a gridkit key file" in _one_line(err)


def test_file_missing_and_no_passphrase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{tmp_path / 'nope.enc'}", "binance", passphrase=PASSPHRASE)
    assert _one_line(err).endswith("nope.enc: file not found")
    path = _key_file(tmp_path)
    # No GRIDKIT_KEY_PASSPHRASE and stdin is not a terminal (pytest's): nothing to ask on.
    with pytest.raises(ConfigError) as err:
        load_credentials(f"file:{path}", "binance", env={})
    assert "no passphrase: set GRIDKIT_KEY_PASSPHRASE" in _one_line(err)


def test_decrypt_names_where(tmp_path: Path) -> None:
    data = encrypt_credentials(Credentials(KEY, SECRET), PASSPHRASE, "binance", n=N)
    with pytest.raises(ConfigError, match=r"^somewhere: wrong passphrase"):
        decrypt_credentials(data, "nope-nope", "somewhere")


# --- redaction -------------------------------------------------------------------------------


def test_loaded_secrets_are_redacted() -> None:
    text = f"auth failed for {KEY} with {SECRET}"
    assert redact(text) == text
    load_credentials("env", "binance", env={"GRIDKIT_BINANCE_API_KEY": KEY,
                                            "GRIDKIT_BINANCE_SECRET": SECRET})
    assert redact(text) == "auth failed for *** with ***"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret("")
    register_secret(None)
    assert redact("abc abc") == "abc abc"
    register_secret("abcdef")
    register_secret("abcdefgh")  # the longer one first: no "***gh" left over
    assert redact("x abcdefgh y abcdef") == "x *** y ***"


# --- pipeline.toml ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "path"), [
    ({"executor": {"use": "ccxt", "apiKey": KEY}}, "executor.apiKey"),
    ({"executor": {"use": "ccxt", "options": {"API_KEY": KEY}}}, "executor.options.API_KEY"),
    ({"source": {"use": "ccxt-stream", "options": {"nested": {"Secret": SECRET}}}},
     "source.options.nested.Secret"),
    ({"features": [{"use": "rsi"}, {"use": "x", "password": "p"}]}, "features[1].password"),
    ({"lanes": {"BTC/USDT": {"source": {"privateKey": "0xabc"}}}},
     "lanes.BTC/USDT.source.privateKey"),
    ({"executor": {"binance_secret": SECRET}}, "executor.binance_secret"),
    ({"api-key": KEY}, "api-key"),
])
def test_keys_in_pipeline_toml_are_refused(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        refuse_keys_in_config(raw, "pipeline.toml")
    line = _one_line(err)
    assert line == (f"pipeline.toml: {path}: API keys never go in pipeline.toml; use "
                    f'[executor] keys = "env" | "keyring" | "file:PATH"')


def test_key_sources_and_plain_options_pass() -> None:
    refuse_keys_in_config({"pipeline": {"symbol": "BTC/USDT", "mode": "live"},
                           "executor": {"use": "ccxt", "keys": "file:keys.enc",
                                        "exchange": "binance", "options": {"timeout": 5}},
                           "features": [{"use": "rsi", "key": "rsi14"}],
                           "strategy": {"use": "static", "secretive": False}})


def test_every_key_in_a_file_is_listed() -> None:
    with pytest.raises(ConfigError) as err:
        refuse_keys_in_config({"executor": {"apiKey": KEY, "secret": SECRET}})
    assert err.value.problems[0].startswith("executor.apiKey: ")
    assert err.value.problems[1].startswith("executor.secret: ")
    assert KEY not in str(err.value) and SECRET not in str(err.value)


def test_environment_is_not_touched() -> None:
    before = dict(os.environ)
    with pytest.raises(ConfigError):
        load_credentials("env", "nosuchexchange", env={})
    assert dict(os.environ) == before
