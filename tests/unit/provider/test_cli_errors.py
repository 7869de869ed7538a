"""`mercato provider …` and `mercato devnet …` print errors verbatim: "[limits]" is text, not Rich markup."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mercato.cli import app


def _run(args: list[str], tmp_path: Path) -> str:
    res = CliRunner().invoke(app, args, env={"MERCATO_HOME": str(tmp_path / "home")})
    assert res.exit_code == 1 and "Traceback" not in res.output
    return "".join(res.output.split())  # soft-wrapped lines joined


def test_provider_error_keeps_brackets(tmp_path: Path) -> None:
    odd = tmp_path / "[limits]"
    odd.mkdir()
    out = _run(["provider", "start", "--config", str(odd / "p.toml")], tmp_path)
    assert "[limits]/p.tomldoesnotexist" in out


def test_devnet_error_keeps_brackets(tmp_path: Path) -> None:
    odd = tmp_path / "[limits]"
    odd.mkdir()
    (odd / "s.toml").write_text("bogus = 1\n")
    out = _run(["devnet", "status", "--config", str(odd / "s.toml")], tmp_path)
    assert "unknownsetting(s)['bogus']in" in out and "[limits]/s.toml" in out
