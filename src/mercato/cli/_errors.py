"""How every `mercato` command ends on an error a user can meet: one red line, exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mercato.errors import MercatoError

__all__ = ["clean_errors", "err_console"]

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)


def clean_errors(*extra: type[Exception]) -> Callable[[F], F]:
    """Decorator: ``MercatoError`` (and any of ``extra``) -> one escaped red line, exit 1, no traceback.

    ``@clean_errors()`` on a Typer command; ``@clean_errors(ValueError)`` where bad amounts raise.
    """
    caught = (MercatoError, *extra)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except caught as exc:
                err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None

        return wrapper  # type: ignore[return-value]

    return decorate
