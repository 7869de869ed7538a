"""`mercato keys new|list|import|address`: encrypted keys (Web3 Secret Storage v3, scrypt).

    mercato keys new prod-provider                      # random key, passphrase asked twice
    mercato keys import ops --key-file ./ops.key        # an existing key, read from a file
    mercato keys list                                   # name, address, file
    mercato keys address prod-provider
    mercato keys check prod-provider --password-file ~/.mercato/pw   # does the passphrase open it?

Keys live in ~/.mercato/keys (or --keystore DIR, MERCATO_KEYSTORE, `keystore = "…"` in the
settings). The passphrase is the first line of --password-file PATH (or MERCATO_PASSWORD_FILE),
else it is asked for without echo. Use a key as `account = "keystore:prod-provider"`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mercato.chain.keys import Keystore, PassphraseSource, parse_private_key
from mercato.cli._errors import clean_errors
from mercato.config import Settings
from mercato.errors import ConfigError

app = typer.Typer(
    help="Encrypted account keys (Web3 Secret Storage). Use one as account = \"keystore:NAME\"; "
         "plain 0x keys in config files work on the local devnet only.",
    no_args_is_help=True,
)
console = Console()

NameArg = Annotated[str, typer.Argument(help="The key's name: letters, digits, '-' and '_'.", show_default=False)]
KeystoreOption = Annotated[Path | None, typer.Option(
    "--keystore", help="Keystore folder (default: MERCATO_KEYSTORE, else ~/.mercato/keys).", show_default=False)]
PasswordOption = Annotated[Path | None, typer.Option(
    "--password-file", help="Read the passphrase from the first line of this file (default: "
    "MERCATO_PASSWORD_FILE, else ask without echo).", show_default=False)]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.")]


def _prompt(text: str) -> str:
    return str(typer.prompt(text, hide_input=True, prompt_suffix=""))


def _setup(keystore: Path | None, password_file: Path | None, config: Path | None) -> tuple[Keystore, PassphraseSource]:
    """The keystore and passphrase source: options, then MERCATO_KEYSTORE / MERCATO_PASSWORD_FILE or the
    settings file, then ~/.mercato/keys and a hidden prompt."""
    settings = Settings.load(config, os.environ)
    file = password_file or settings.password_file
    return Keystore(keystore or settings.keystore), PassphraseSource(file=file, prompt=None if file else _prompt)


@app.command()
@clean_errors()
def new(name: NameArg, keystore: KeystoreOption = None, password_file: PasswordOption = None,
        config: ConfigOption = None) -> None:
    """Create a random key and store it encrypted under NAME; prints its address."""
    ks, source = _setup(keystore, password_file, config)
    path = ks.ensure_free(name)  # a bad or taken name fails before the passphrase is asked for
    address = ks.new(name, source.get(f"new key {name!r}", confirm=True, new=True))
    console.print(f"[green]created[/green] {escape(name)} {address} in {escape(str(path))}", soft_wrap=True)
    console.print(f"use it as account = \"keystore:{escape(name)}\"; back up the file and the passphrase: "
                  "neither can be recovered", soft_wrap=True)


@app.command("import")
@clean_errors()
def import_(name: NameArg,
            key_file: Annotated[Path | None, typer.Option(
                "--key-file", help="Read the private key (64 hex digits, 0x optional) from this file's "
                "first line; without it the key is asked for without echo. Never pass a key as an argument.",
                show_default=False)] = None,
            keystore: KeystoreOption = None, password_file: PasswordOption = None,
            config: ConfigOption = None) -> None:
    """Store an existing private key encrypted under NAME; prints its address."""
    ks, source = _setup(keystore, password_file, config)
    path = ks.ensure_free(name)
    raw = _first_line(key_file) if key_file is not None else _prompt("Private key (64 hex digits): ")
    key = parse_private_key(raw)  # a typo fails before the passphrase is asked for
    address = ks.import_(name, key, source.get(f"key {name!r}", confirm=True, new=True))
    console.print(f"[green]imported[/green] {escape(name)} {address} into {escape(str(path))}", soft_wrap=True)
    if key_file is not None:
        console.print(f"the plain key is still in {escape(str(key_file))}: delete it once "
                      f"`mercato keys address {escape(name)}` shows the address you expect", soft_wrap=True)


@app.command("list")
@clean_errors()
def list_(keystore: KeystoreOption = None, config: ConfigOption = None) -> None:
    """Show every stored key: name, address, file (no passphrase needed)."""
    ks, _ = _setup(keystore, None, config)
    keys = ks.entries()
    if not keys:
        console.print(f"no keys in {escape(str(ks.directory))}: create one with `mercato keys new NAME`",
                      soft_wrap=True)
        return
    table = Table(title=f"keys in {escape(str(ks.directory))}")
    table.add_column("name", no_wrap=True)
    table.add_column("address", no_wrap=True, min_width=42)  # never cut an address
    table.add_column("file", overflow="fold")
    for info in keys:
        table.add_row(escape(info.name), info.address, escape(str(info.path)))
    console.print(table)


@app.command()
@clean_errors()
def address(name: Annotated[str, typer.Argument(help="A key name, or the path of a keystore file.",
                                                show_default=False)],
            keystore: KeystoreOption = None, config: ConfigOption = None) -> None:
    """Print the address of a stored key (no passphrase needed)."""
    print(_setup(keystore, None, config)[0].address(name))


@app.command()
@clean_errors()
def check(name: Annotated[str, typer.Argument(help="A key name, or the path of a keystore file.",
                                              show_default=False)],
          keystore: KeystoreOption = None, password_file: PasswordOption = None, config: ConfigOption = None) -> None:
    """Decrypt a stored key to prove its passphrase (or password file) works, e.g. before starting an agent."""
    ks, source = _setup(keystore, password_file, config)
    ks.resolve(name)  # a missing key fails before the passphrase is asked for
    address = Account.from_key(ks.load(name, source.get(f"key {name!r}"))).address
    console.print(f"[green]ok[/green]: the passphrase opens {escape(name)} ({address})", soft_wrap=True)


def _first_line(path: Path) -> str:
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist: check --key-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key file {path}: {exc}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"key file {path} is empty: its first line must be the private key")
    return lines[0]
