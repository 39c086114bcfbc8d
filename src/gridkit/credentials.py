"""Exchange API keys: where a live run gets them, and how they are kept out of sight.

Keys never go in pipeline.toml (:func:`refuse_keys_in_config` refuses a file that holds any).
A live executor names a *source* instead — ``keys = "env"``, ``"keyring"`` or ``"file:PATH"`` —
and calls :func:`load_credentials`:

``env``
    ``GRIDKIT_<EXCHANGE>_API_KEY``, ``GRIDKIT_<EXCHANGE>_SECRET`` and, for exchanges that need
    one, ``GRIDKIT_<EXCHANGE>_PASSWORD`` (the exchange id upper-cased: ``GRIDKIT_BINANCE_...``);
    when neither of the first two is set, ``GRIDKIT_API_KEY``, ``GRIDKIT_API_SECRET`` and
    ``GRIDKIT_API_PASSWORD``.
``keyring``
    the operating system's keyring through the ``keyring`` library: service ``gridkit``, user
    name the exchange id, the value a JSON object ``{"api_key": ..., "secret": ...,
    "password": ...}`` (``gridkit keys store`` writes it).
``file:PATH``
    a file written by ``gridkit keys encrypt``: the same JSON object, encrypted with Fernet
    (AES-128-CBC and HMAC-SHA256) under a key derived from a passphrase with scrypt and a random
    salt kept in the file. The passphrase comes from ``GRIDKIT_KEY_PASSPHRASE``, else from a
    hidden prompt when stdin is a terminal.

Every value loaded is registered with :func:`register_secret`, and :func:`redact` — which the
log handlers of :mod:`gridkit.logs`, the CLI's error lines and the run's recorded error pass
text through — replaces it with ``***``. ``keyring`` and ``cryptography`` are the optional
extra ``gridkit[live]``, imported only when a source needs them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

from gridkit.core.errors import ConfigError

__all__ = ["KEYRING_SERVICE", "PASSPHRASE_ENV", "Credentials", "decrypt_credentials",
           "encrypt_credentials", "env_names", "load_credentials", "read_passphrase", "redact",
           "refuse_keys_in_config", "register_secret", "store_in_keyring", "write_key_file"]

#: The keyring service under which gridkit keeps keys (the user name is the exchange id).
KEYRING_SERVICE = "gridkit"
#: Environment variable with the passphrase of an encrypted key file.
PASSPHRASE_ENV = "GRIDKIT_KEY_PASSPHRASE"
#: What the ``format`` field of an encrypted key file says.
FILE_FORMAT = "gridkit-keys"
#: Secrets shorter than this are not redacted: replacing every "abc" in a log helps no one.
MIN_SECRET = 6
#: scrypt cost of new key files (n = 2**15, r = 8, p = 1: about 32 MiB and 0.1 s to derive).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
#: The most a key file may ask for (a hostile file must not make the derivation take minutes).
_MAX_N, _MAX_R, _MAX_P = 2**20, 16, 4
_HINT = 'use [executor] keys = "env" | "keyring" | "file:PATH"'


@frozen(repr=False)
class Credentials:
    """An exchange's API key and secret (and password, for exchanges that need one).

    ``repr()`` and ``str()`` show none of them: a Credentials in a traceback, a log line or a
    debugger is safe. :attr:`hint` is the most that may be shown: the key's last four
    characters.
    """

    api_key: str
    secret: str
    password: str | None = None

    @property
    def hint(self) -> str:
        """The last four characters of the API key, to tell keys apart (``…abcd``)."""
        return f"…{self.api_key[-4:]}" if len(self.api_key) >= 8 else "…"

    def as_ccxt(self) -> dict[str, str]:
        """The keys as ccxt's exchange options want them: ``apiKey``, ``secret``, ``password``."""
        out = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            out["password"] = self.password
        return out

    def to_json(self) -> str:
        """The JSON object the keyring and encrypted files hold."""
        data: dict[str, str] = {"api_key": self.api_key, "secret": self.secret}
        if self.password:
            data["password"] = self.password
        return json.dumps(data)

    def __repr__(self) -> str:
        password = ", password=<hidden>" if self.password else ""
        return f"Credentials(api_key=<hidden {self.hint}>, secret=<hidden>{password})"

    __str__ = __repr__


# --- redaction ---------------------------------------------------------------------------------

_lock = threading.Lock()
#: Registered secrets, longest first (so a secret containing another is replaced whole).
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Have :func:`redact` hide ``value`` from now on (values shorter than 6 characters are
    ignored: they would hide harmless text and protect nothing)."""
    global _secrets
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``: for log lines, error lines
    and anything else that leaves the process."""
    secrets = _secrets
    if not secrets or not isinstance(text, str):
        return text
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


def _forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    global _secrets
    with _lock:
        _secrets = ()


def _register(creds: Credentials) -> Credentials:
    for value in (creds.api_key, creds.secret, creds.password):
        register_secret(value)
    return creds


# --- pipeline.toml -----------------------------------------------------------------------------

#: Key names that are credentials, compared lower-cased without ``_`` and ``-``.
_SECRET_NAMES = frozenset({"apikey", "apisecret", "secret", "secretkey", "password", "passwd",
                           "passphrase", "privatekey", "twofa"})
_SECRET_SUFFIXES = ("apikey", "secret", "password", "passphrase", "privatekey")


def _is_secret_name(key: str) -> bool:
    k = key.lower().replace("_", "").replace("-", "")
    return k in _SECRET_NAMES or k.endswith(_SECRET_SUFFIXES)


def refuse_keys_in_config(raw: Mapping[str, Any], source: str | None = None) -> None:
    """Refuse a pipeline.toml document that holds API keys: any key named like ``apiKey``,
    ``api_key``, ``secret``, ``password`` or ``privateKey`` (case-insensitive, at any depth,
    in component options too) is a :class:`ConfigError` naming its TOML path, never its value.
    """
    problems: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _is_secret_name(key):
                    problems.append(f"{where}: API keys never go in pipeline.toml; {_HINT}")
                else:
                    walk(item, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(raw, "")
    if problems:
        raise ConfigError(problems, source)


# --- loading -----------------------------------------------------------------------------------


def load_credentials(source: str, exchange: str, *, env: Mapping[str, str] | None = None,
                     passphrase: str | None = None) -> Credentials:
    """Load ``exchange``'s API keys from ``source`` (``"env"``, ``"keyring"`` or
    ``"file:PATH"``) and register them for redaction.

    ``env`` replaces ``os.environ`` (for the ``env`` source and the passphrase); ``passphrase``
    opens a key file without asking. Any failure — keys missing, the keyring empty, a wrong
    passphrase, a corrupt file — is one :class:`ConfigError` line naming the source, never a
    secret.
    """
    env = os.environ if env is None else env
    exchange = exchange.strip()
    if not exchange:
        raise ConfigError(f"keys from {source}: no exchange id given")
    if source == "env":
        return _register(_from_env(exchange, env))
    if source == "keyring":
        return _register(_from_keyring(exchange))
    if source.startswith("file:") and source[5:].strip():
        path = Path(source[5:].strip()).expanduser()
        return _register(_from_file(path, exchange, env, passphrase))
    raise ConfigError(f"keys: unknown source {source!r}; {_HINT}")


def env_names(exchange: str) -> tuple[str, str, str]:
    """The environment variables of ``exchange``'s key, secret and password."""
    ex = "".join(c if c.isalnum() else "_" for c in exchange.upper())
    return f"GRIDKIT_{ex}_API_KEY", f"GRIDKIT_{ex}_SECRET", f"GRIDKIT_{ex}_PASSWORD"


_GENERIC = ("GRIDKIT_API_KEY", "GRIDKIT_API_SECRET", "GRIDKIT_API_PASSWORD")


def _from_env(exchange: str, env: Mapping[str, str]) -> Credentials:
    names = env_names(exchange)
    if not (env.get(names[0]) or env.get(names[1])) and (env.get(_GENERIC[0])
                                                          or env.get(_GENERIC[1])):
        names = _GENERIC
    missing = [n for n in names[:2] if not env.get(n)]
    if missing:
        also = "" if names == _GENERIC else f" (nor {_GENERIC[0]} / {_GENERIC[1]})"
        raise ConfigError(f"keys from env: {' and '.join(missing)} not set{also}")
    return Credentials(env[names[0]].strip(), env[names[1]].strip(),
                       (env.get(names[2]) or "").strip() or None)


def _from_keyring(exchange: str) -> Credentials:
    keyring = _import_keyring("keys from keyring")
    try:
        value = keyring.get_password(KEYRING_SERVICE, exchange)
    except Exception as err:  # no backend, locked, D-Bus down: the library's own errors
        raise ConfigError(f"keys from keyring: {type(err).__name__}: {err}") from None
    if value is None:
        raise ConfigError(f"keys from keyring: no entry for service '{KEYRING_SERVICE}', user "
                          f"'{exchange}' (store one with: gridkit keys store --exchange "
                          f"{exchange})")
    return _parse(value, f"keys from keyring (service '{KEYRING_SERVICE}', user '{exchange}')")


def _parse(text: str | bytes, where: str, exchange: str | None = None) -> Credentials:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not gridkit's JSON object of api_key and secret")
    if exchange is not None and data.get("exchange") not in (None, exchange):
        raise ConfigError(f"{where}: holds the keys of {data['exchange']!r}, not {exchange!r}")
    key, secret = data.get("api_key"), data.get("secret")
    password = data.get("password")
    if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
        raise ConfigError(f"{where}: api_key or secret missing")
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"{where}: password is not a string")
    return Credentials(key, secret, password or None)


def _import_keyring(where: str) -> Any:
    try:
        import keyring
    except ImportError:
        raise ConfigError(f"{where}: the keyring library is not installed "
                          f"(pip install 'gridkit[live]')") from None
    return keyring


def store_in_keyring(exchange: str, creds: Credentials) -> None:
    """Keep ``creds`` in the keyring (service ``gridkit``, user ``exchange``)."""
    keyring = _import_keyring("keyring")
    try:
        keyring.set_password(KEYRING_SERVICE, exchange, creds.to_json())
    except Exception as err:
        raise ConfigError(f"keyring: cannot store the keys: {type(err).__name__}: {err}"
                          ) from None


# --- encrypted files ---------------------------------------------------------------------------


def _crypto(where: str) -> tuple[Any, Any, Any]:
    try:
        from cryptography.fernet import Fernet, InvalidToken
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    except ImportError:
        raise ConfigError(f"{where}: the cryptography library is not installed "
                          f"(pip install 'gridkit[live]')") from None
    return Fernet, InvalidToken, Scrypt


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int, scrypt: Any) -> bytes:
    raw = scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return base64.urlsafe_b64encode(raw)


def encrypt_credentials(creds: Credentials, passphrase: str, exchange: str, *,
                        n: int = SCRYPT_N) -> bytes:
    """The bytes of an encrypted key file holding ``creds`` for ``exchange``.

    A JSON envelope: ``format``, ``version``, the scrypt parameters and its random 16-byte salt,
    and the Fernet token of the keys' JSON object.
    """
    fernet, _, scrypt = _crypto("keys encrypt")
    if not passphrase:
        raise ConfigError("keys encrypt: the passphrase is empty")
    salt = os.urandom(16)
    r, p = SCRYPT_R, SCRYPT_P
    payload = json.loads(creds.to_json())
    payload["exchange"] = exchange
    token = fernet(_derive(passphrase, salt, n, r, p, scrypt)).encrypt(
        json.dumps(payload).encode("utf-8"))
    envelope = {"format": FILE_FORMAT, "version": 1, "exchange": exchange,
                "kdf": {"name": "scrypt", "n": n, "r": r, "p": p,
                        "salt": base64.b64encode(salt).decode("ascii")},
                "token": token.decode("ascii")}
    return (json.dumps(envelope, indent=2) + "\n").encode("utf-8")


def decrypt_credentials(data: bytes, passphrase: str, where: str = "key file",
                        exchange: str | None = None) -> Credentials:
    """The credentials in the bytes of an encrypted key file; ``where`` names it in errors."""
    fernet, invalid_token, scrypt = _crypto(where)
    try:
        envelope = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("format") != FILE_FORMAT:
        if FILE_FORMAT.encode() in data[:200]:
            raise ConfigError(f"{where}: corrupt or truncated (not valid JSON any more)")
        raise ConfigError(f"{where}: not a gridkit key file (write one with gridkit keys "
                          f"encrypt)")
    if envelope.get("version") != 1:
        raise ConfigError(f"{where}: key file version {envelope.get('version')!r}; this gridkit "
                          f"reads version 1")
    kdf = envelope.get("kdf")
    try:
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise ValueError("kdf")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
            raise ValueError("kdf")
        salt = base64.b64decode(kdf["salt"], validate=True)
        token = envelope["token"].encode("ascii")
        if len(salt) < 16:
            raise ValueError("salt")
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeEncodeError):
        raise ConfigError(f"{where}: corrupt (bad key derivation parameters or token)") from None
    try:
        plain = fernet(_derive(passphrase, salt, n, r, p, scrypt)).decrypt(token)
    except invalid_token:
        raise ConfigError(f"{where}: wrong passphrase, or the file is corrupt") from None
    return _parse(plain, where, exchange)


def write_key_file(path: str | Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write an encrypted key file atomically (a temporary file renamed over it), mode 0600."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: exists; give --force to replace it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {err.strerror or err}") from None


def _from_file(path: Path, exchange: str, env: Mapping[str, str],
               passphrase: str | None) -> Credentials:
    where = f"keys from file:{path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{where}: cannot read: {err.strerror or err}") from None
    if passphrase is None:
        passphrase = read_passphrase(f"Passphrase for {path}: ", where, env)
    register_secret(passphrase)
    return decrypt_credentials(data, passphrase, where, exchange)


def read_passphrase(prompt: str, where: str, env: Mapping[str, str] | None = None) -> str:
    """The passphrase: ``GRIDKIT_KEY_PASSPHRASE``, else a hidden prompt on a terminal."""
    env = os.environ if env is None else env
    value = env.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ConfigError(f"{where}: no passphrase: set {PASSPHRASE_ENV} (stdin is not a "
                          f"terminal to ask on)")
    import getpass

    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        raise ConfigError(f"{where}: no passphrase given") from None
