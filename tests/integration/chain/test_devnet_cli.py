"""`mercato devnet …` end to end through Typer (env passed explicitly, as a shell would)."""

from __future__ import annotations

from pathlib import Path

from chain_kit import free_port
from typer.testing import CliRunner

from mercato.cli import app


def test_start_status_stop_and_clean_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MERCATO_HOME": str(tmp_path), "MERCATO_DEVNET_PORT": str(free_port()), "COLUMNS": "200"}
    try:
        started = runner.invoke(app, ["devnet", "start"], env=env)
        assert started.exit_code == 0, started.output
        assert "devnet started" in started.output and "requester1" in started.output
        again = runner.invoke(app, ["devnet", "start"], env=env)
        assert "already running" in again.output
        status = runner.invoke(app, ["devnet", "status"], env=env)
        assert status.exit_code == 0 and "31337" in status.output and "1,000,000" in status.output
    finally:
        stopped = runner.invoke(app, ["devnet", "stop"], env=env)
    assert "devnet stopped" in stopped.output
    down = runner.invoke(app, ["devnet", "status"], env=env)
    assert down.exit_code == 1 and "not running" in down.output
    bad = runner.invoke(app, ["devnet", "start"], env=env | {"MERCATO_CHAIN_ID": "x"})
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "MERCATO_CHAIN_ID='x' is not a valid int" in bad.output
