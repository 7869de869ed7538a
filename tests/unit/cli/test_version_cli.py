"""`mercato --version` and the bare command."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from mercato.cli import app


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"mercato {version('mercato')}"


def test_the_bare_command_still_lists_the_commands() -> None:
    result = CliRunner().invoke(app, [])
    assert "run" in result.output and "provider" in result.output and "--version" in result.output
