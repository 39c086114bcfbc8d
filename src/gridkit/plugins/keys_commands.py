"""``gridkit keys``: put exchange API keys where a live run reads them, and check them.

Declared in gridkit's ``gridkit.commands`` entry-point group (like ``gridkit data``):
``gridkit --help`` reads the short help from this file without importing it. Keys are read from
hidden prompts (or, with ``--from-env``, from the ``env`` source's variables) and never echoed;
:mod:`gridkit.credentials` does the work.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gridkit.credentials import Credentials


@click.group("keys")
def keys() -> None:
    """API keys: encrypt them to a file, store them in the keyring, check a source."""


_exchange = click.option("--exchange", required=True,
                         help="ccxt exchange id the keys are for, e.g. binance.")
_from_env = click.option("--from-env", is_flag=True,
                         help="Read the keys from GRIDKIT_<EXCHANGE>_API_KEY / _SECRET / "
                              "_PASSWORD instead of asking.")


def _ask_keys(exchange: str, from_env: bool) -> Credentials:
    """The keys to keep: from the environment, or typed at hidden prompts."""
    from gridkit.core.errors import ConfigError
    from gridkit.credentials import Credentials, load_credentials, register_secret

    if from_env:
        return load_credentials("env", exchange)
    try:
        key = click.prompt(f"{exchange} API key", hide_input=True, err=True).strip()
        secret = click.prompt(f"{exchange} secret", hide_input=True, err=True).strip()
        password = click.prompt(f"{exchange} password (empty if the exchange needs none)",
                                hide_input=True, default="", show_default=False,
                                err=True).strip()
    except click.exceptions.Abort:
        raise ConfigError("keys: no keys given") from None
    if not key or not secret:
        raise ConfigError("keys: the API key and the secret are both needed")
    for value in (key, secret, password):
        register_secret(value)
    return Credentials(key, secret, password or None)


@keys.command("encrypt")
@_exchange
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The key file to write (mode 0600), e.g. keys.enc.")
@_from_env
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def encrypt_cmd(exchange: str, out: str, from_env: bool, force: bool) -> None:
    """Encrypt an exchange's API keys into a file that keys = "file:PATH" reads.

    The passphrase is asked twice (or read from GRIDKIT_KEY_PASSPHRASE); scrypt derives the
    key from it, and the keys are encrypted with Fernet.
    """
    from gridkit.core.errors import ConfigError
    from gridkit.credentials import (
        PASSPHRASE_ENV,
        encrypt_credentials,
        register_secret,
        write_key_file,
    )

    if os.path.exists(out) and not force:
        raise ConfigError(f"{out}: exists; give --force to replace it")
    creds = _ask_keys(exchange, from_env)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        try:
            passphrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True,
                                      err=True)
        except click.exceptions.Abort:
            raise ConfigError("keys encrypt: no passphrase given") from None
    if len(passphrase) < 8:
        raise ConfigError("keys encrypt: the passphrase must have at least 8 characters")
    register_secret(passphrase)
    write_key_file(out, encrypt_credentials(creds, passphrase, exchange),
                   overwrite=force)
    click.echo(f"wrote {out} (keys ending {creds.hint}); use keys = \"file:{out}\"")


@keys.command("store")
@_exchange
@_from_env
def store_cmd(exchange: str, from_env: bool) -> None:
    """Store an exchange's API keys in the system keyring, where keys = "keyring" reads them."""
    from gridkit.credentials import KEYRING_SERVICE, store_in_keyring

    creds = _ask_keys(exchange, from_env)
    store_in_keyring(exchange, creds)
    click.echo(f"stored in the keyring (service '{KEYRING_SERVICE}', user '{exchange}'), keys "
               f"ending {creds.hint}")


@keys.command("check")
@click.argument("source")
@_exchange
def check_cmd(source: str, exchange: str) -> None:
    """Load the keys from SOURCE (env, keyring or file:PATH) and say only whether that worked.

    Nothing is sent to the exchange: this checks that the keys can be read, not that the
    exchange accepts them.
    """
    from gridkit.credentials import load_credentials

    creds = load_credentials(source, exchange)
    password = ", with a password" if creds.password else ""
    click.echo(f"ok: key ending {creds.hint}{password}")
