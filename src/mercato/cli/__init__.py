"""`mercato …` — the command line. The only layer that reads the environment."""

from __future__ import annotations

import typer

from mercato.cli import devnet as _devnet
from mercato.cli import exec as _exec

app = typer.Typer(
    name="mercato",
    help="Mercato: a decentralized compute marketplace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_devnet.app, name="devnet")
_exec.register(app)


def main() -> None:
    """Entry point of the `mercato` console script."""
    app()
