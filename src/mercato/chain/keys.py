"""Encrypted keystores: Web3 Secret Storage v3 files (scrypt), one per named key.

    >>> ks = Keystore(Path("~/.mercato/keys"))                          # doctest: +SKIP
    >>> ks.new("prod-provider", "correct horse")                        # doctest: +SKIP
    '0x5f3e…'
    >>> ks.load("prod-provider", "correct horse")                       # doctest: +SKIP
    b'…32 bytes…'

A key lives in ``<keystore>/<name>.json`` (mode 0600, folder 0700), written atomically and never
overwritten. Config and CLI ``account`` values name one as ``keystore:<name>`` (or
``keystore:<path to a keystore file>``); :func:`resolve_account` turns every kind of account
value into a private key and refuses a plain ``0x…`` key read from a config file off the
devnet. The passphrase comes from a :class:`PassphraseSource`: the first line of a password
file, or a hidden prompt (confirmed when a key is created).

The scrypt cost is geth's standard (n = 2**18). Only tests and throw-away devnet keys may pass a
smaller ``scrypt_n``: a file written that way is cheap to brute-force.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from eth_account import Account
from eth_utils import to_checksum_address

from mercato.config import DEFAULT_KEYSTORE, DEVNET_CHAIN_ID, Settings
from mercato.errors import (
    ChainError,
    ConfigError,
    KeyExists,
    KeyNotFound,
    KeystoreError,
    PlainKeyRefused,
    WrongPassphrase,
)

__all__ = [
    "DEFAULT_SCRYPT_N",
    "KEYSTORE_PREFIX",
    "KeyInfo",
    "Keystore",
    "PassphraseSource",
    "Unlocker",
    "import_key",
    "list_keys",
    "load_key",
    "new_key",
    "parse_private_key",
    "read_password_file",
    "resolve_account",
    "validate_name",
]

KEYSTORE_PREFIX = "keystore:"
DEFAULT_SCRYPT_N = 2**18  # geth's "standard" scrypt cost: ~0.7 s and 256 MiB per unlock
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RAW_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class KeyInfo(NamedTuple):
    """One keystore entry: its name, its checksummed address ("?" if unreadable), its file."""

    name: str
    address: str
    path: Path


def validate_name(name: str) -> str:
    """``name`` itself if it can name a key file: letters, digits, ``-`` and ``_``, 64 at most."""
    if not _NAME.fullmatch(name):
        raise KeystoreError(f"bad key name {name!r}: use 1-64 letters, digits, '-' or '_' "
                            "(no path separators, dots or spaces), starting with a letter or digit")
    return name


def parse_private_key(value: bytes | str) -> bytes:
    """The 32 bytes of a private key given as bytes or 64 hex digits (0x optional); never echoes it."""
    if isinstance(value, str):
        text = value.strip()
        if not _RAW_KEY.fullmatch(text):
            raise KeystoreError("that is not a private key: expected 64 hex digits (0x prefix optional)")
        value = bytes.fromhex(text.removeprefix("0x"))
    try:
        return bytes(Account.from_key(value).key)
    except (ValueError, TypeError):
        raise KeystoreError("that is not a usable private key: expected 32 bytes, not zero, "
                            "below the secp256k1 order") from None


def read_password_file(path: Path) -> str:
    """The passphrase in ``path``: its first line, without the line ending."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"password file {path} does not exist: create it (its first line is the "
                          "passphrase) or drop --password-file / MERCATO_PASSWORD_FILE") from None
    except IsADirectoryError:
        raise ConfigError(f"password file {path} is a folder: point --password-file at a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read password file {path}: {exc}") from None
    return text.split("\n", 1)[0].removesuffix("\r")  # only the line ending goes: spaces may be meant


@dataclass(frozen=True, slots=True)
class PassphraseSource:
    """Where a passphrase comes from: ``file`` (first line) if set, else ``prompt`` (hidden input).

    ``prompt`` takes the prompt text and returns what was typed (e.g. :func:`getpass.getpass`);
    with neither, asking for a passphrase is an error that says how to give one.
    """

    file: Path | None = None
    prompt: Callable[[str], str] | None = None

    @classmethod
    def interactive(cls, file: Path | None = None) -> PassphraseSource:
        """``file`` if given, else a hidden prompt when stdin is a terminal (never hangs a pipe)."""
        try:
            tty = sys.stdin is not None and sys.stdin.isatty()
        except ValueError:  # a closed stdin
            tty = False
        return cls(file=file, prompt=getpass.getpass if tty else None)

    def get(self, label: str, *, confirm: bool = False, new: bool = False) -> str:
        """The passphrase for ``label`` (a key name); ``confirm`` asks twice, ``new`` refuses ''."""
        if self.file is not None:
            secret = read_password_file(self.file)
        elif self.prompt is not None:
            secret = self.prompt(f"Passphrase for {label}: ")
            if confirm and self.prompt(f"Repeat the passphrase for {label}: ") != secret:
                raise KeystoreError("the two passphrases differ: nothing was written, try again")
        else:
            raise ConfigError(f"{label} is encrypted and no passphrase was given: pass --password-file PATH "
                              "or set MERCATO_PASSWORD_FILE (its first line is the passphrase)")
        if new and not secret:
            raise KeystoreError(f"an empty passphrase does not protect {label}: choose a real one")
        return secret


class Keystore:
    """A folder of Web3 Secret Storage v3 files named ``<name>.json``."""

    def __init__(self, directory: Path | None = None, *, scrypt_n: int | None = None) -> None:
        self.directory = Path(directory or DEFAULT_KEYSTORE).expanduser()
        n = DEFAULT_SCRYPT_N if scrypt_n is None else scrypt_n
        if n < 2 or n & (n - 1):
            raise KeystoreError(f"scrypt_n must be a power of two >= 2, got {n}")
        self.scrypt_n = n  # below DEFAULT_SCRYPT_N only for tests and throw-away devnet keys

    def path_of(self, name: str) -> Path:
        """Where the key ``name`` lives (whether or not it exists)."""
        return self.directory / f"{validate_name(name)}.json"

    def ensure_free(self, name: str) -> Path:
        """Where ``name`` would be stored; :class:`KeyExists` if a key has that name already."""
        path = self.path_of(name)
        if path.exists():
            raise KeyExists(f"a key named {name!r} exists already ({path}): keys are never overwritten; "
                            "pick another name or move that file away yourself")
        return path

    def new(self, name: str, passphrase: str) -> str:
        """Create a random key, store it encrypted as ``name``; its checksummed address."""
        return self.import_(name, Account.create().key, passphrase)

    def import_(self, name: str, private_key: bytes | str, passphrase: str) -> str:
        """Store ``private_key`` (32 bytes or 0x-hex) encrypted as ``name``; its checksummed address."""
        path = self.ensure_free(name)
        key = parse_private_key(private_key)
        data = Account.encrypt(key, passphrase, kdf="scrypt", iterations=self.scrypt_n)
        self._ensure_dir()
        _write_new(path, json.dumps(data, indent=2).encode())
        return str(Account.from_key(key).address)

    def entries(self) -> list[KeyInfo]:
        """Every ``*.json`` in the folder, by name; no passphrase needed (the address is public)."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            out.append(KeyInfo(path.stem, _address_of(path), path))
        return out

    def address(self, name_or_path: str) -> str:
        """The checksummed address of a stored key, without decrypting it."""
        path = self.resolve(name_or_path)
        address = _address_of(path)
        if address == "?":
            raise KeystoreError(f"{path} is not a readable keystore file (Web3 Secret Storage v3 JSON)")
        return address

    def resolve(self, name_or_path: str) -> Path:
        """The file of a key name, or the path itself when it is one (contains a separator or ``~``)."""
        if "/" in name_or_path or os.sep in name_or_path or name_or_path.startswith("~"):
            path = Path(name_or_path).expanduser()
        else:
            path = self.path_of(name_or_path)
        if not path.is_file():
            have = ", ".join(k.name for k in self.entries()) or "none"
            raise KeyNotFound(f"no key {name_or_path!r} in {self.directory} (keys there: {have}): "
                              "create one with `mercato keys new NAME` or `mercato keys import NAME`")
        return path

    def load(self, name_or_path: str, passphrase: str) -> bytes:
        """The 32-byte private key of a stored key, decrypted with ``passphrase``."""
        path = self.resolve(name_or_path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeystoreError(f"cannot read keystore file {path}: {exc}") from None
        try:
            return bytes(Account.decrypt(data, passphrase))
        except ValueError as exc:  # eth_keyfile's "MAC mismatch" is a ValueError subclass
            if "MAC mismatch" in str(exc):
                raise WrongPassphrase(f"wrong passphrase for key {name_or_path!r} ({path}): "
                                      "check the password file or retype it") from None
            raise KeystoreError(f"{path} is not a usable keystore file: {exc}") from None
        except (KeyError, TypeError, NotImplementedError) as exc:
            raise KeystoreError(f"{path} is not a Web3 Secret Storage v3 file ({exc!r})") from None

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            os.chmod(self.directory, 0o700)  # group/others must not even list key names


def _address_of(path: Path) -> str:
    try:
        data: Any = json.loads(path.read_text())
        return str(to_checksum_address("0x" + str(data["address"]).removeprefix("0x")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return "?"


def _write_new(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` (0600) atomically; fail if ``path`` appears meanwhile."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and unlike rename it never replaces an existing file
        except FileExistsError:
            raise KeyExists(f"a key file {path} appeared meanwhile: keys are never overwritten") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the new directory entry durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# the brief's module-level API: the default keystore unless ``keystore`` says otherwise -----------
def new_key(name: str, passphrase: str, *, keystore: Path | None = None, scrypt_n: int | None = None) -> str:
    """Create and store a random key; its address."""
    return Keystore(keystore, scrypt_n=scrypt_n).new(name, passphrase)


def import_key(name: str, private_key: bytes | str, passphrase: str, *, keystore: Path | None = None,
               scrypt_n: int | None = None) -> str:
    """Store an existing private key encrypted; its address."""
    return Keystore(keystore, scrypt_n=scrypt_n).import_(name, private_key, passphrase)


def list_keys(*, keystore: Path | None = None) -> list[KeyInfo]:
    """``(name, address, path)`` of every stored key."""
    return Keystore(keystore).entries()


def load_key(name_or_path: str, passphrase: str, *, keystore: Path | None = None) -> bytes:
    """Decrypt a stored key (by name, or a keystore file's path); the 32 private-key bytes."""
    return Keystore(keystore).load(name_or_path, passphrase)


# account resolution -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Unlocker:
    """What ``keystore:`` account values need: the keystore folder and a passphrase source."""

    keystore: Path | None = None
    passphrase: PassphraseSource = PassphraseSource()

    @classmethod
    def from_settings(cls, settings: Settings) -> Unlocker:
        """The settings' keystore and password file; a hidden prompt when there is no file and a tty."""
        return cls(settings.keystore, PassphraseSource.interactive(settings.password_file))

    def key(self, ref: str) -> str:
        """The 0x private key of ``ref`` (a key name or a keystore file path), decrypted."""
        ks = Keystore(self.keystore)
        ks.resolve(ref)  # a missing key fails before anyone is asked for a passphrase
        return "0x" + ks.load(ref, self.passphrase.get(f"key {ref!r}")).hex()


def resolve_account(account: str, *, chain_id: int, dev_keys: Mapping[str, str], unlock: Unlocker | None = None,
                    origin: Path | str | None = None) -> str:
    """The 0x private key an ``account`` value stands for.

    ``keystore:<name or path>`` is decrypted through ``unlock``; a name in ``dev_keys`` is that dev
    account; a ``0x…`` private key is itself. ``origin`` names the config file the value was
    read from: a plain key there is refused unless ``chain_id`` is the local devnet's.
    """
    if account.startswith(KEYSTORE_PREFIX):
        ref = account.removeprefix(KEYSTORE_PREFIX).strip()
        if not ref:
            raise ConfigError("account 'keystore:' names no key: write keystore:NAME (see `mercato keys list`)")
        return (unlock or Unlocker()).key(ref)
    if account in dev_keys:
        return dev_keys[account]
    if account.startswith("0x") and len(account) == 66:
        if origin is not None and chain_id != DEVNET_CHAIN_ID:
            raise PlainKeyRefused(
                f"{origin} holds a plain private key as its account, refused on chain {chain_id} (only the "
                f"local devnet, chain {DEVNET_CHAIN_ID}, allows that): store it encrypted with "
                "`mercato keys import NAME` and write account = \"keystore:NAME\" instead")
        return account
    shown = "<a private key>" if _RAW_KEY.fullmatch(account) else repr(account)  # never echo a secret
    raise ChainError(f"no key for account {shown}: use one of {sorted(dev_keys)}, keystore:NAME "
                     "(see `mercato keys list`) or a 0x-prefixed private key")
