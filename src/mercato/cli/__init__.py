"""`mercato …` — the command line. The only layer that reads the environment."""

from __future__ import annotations

import typer

from mercato.cli import devnet as _devnet
from mercato.cli import exec as _exec
from mercato.cli import explorer as _explorer
from mercato.cli import keys as _keys
from mercato.cli import map as _map
from mercato.cli import provider as _provider
from mercato.cli import requester as _requester
from mercato.cli import verify as _verify

app = typer.Typer(
    name="mercato",
    help="Mercato: a decentralized compute marketplace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("mercato")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "unknown (not installed)"
    typer.echo(f"mercato {installed}")
    raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print mercato's version and exit.")) -> None:
    """Mercato: a decentralized compute marketplace."""


app.add_typer(_devnet.app, name="devnet")
app.add_typer(_provider.app, name="provider")
app.add_typer(_keys.app, name="keys")
_exec.register(app)
_requester.register(app)
_map.register(app)
_verify.register(app)
_explorer.register(app)


def main() -> None:
    """Entry point of the `mercato` console script."""
    app()
