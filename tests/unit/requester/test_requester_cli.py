"""The requester commands that need no chain: clean one-line errors, the local job list."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mercato.cli import app
from mercato.requester import JobHistory, JobRecord


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MERCATO_HOME": str(tmp_path / "home")}


def test_bad_amount_is_one_clean_line(env: dict[str, str]) -> None:
    res = CliRunner().invoke(app, ["deposit", "12.5000001"], env=env)
    assert res.exit_code == 1 and "more than 6 decimals" in res.output and "Traceback" not in res.output


def test_bad_job_file_names_the_field(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "job.toml").write_text('[job]\nworkload = "x.wasm"\n[limits]\nfuel = "lots"\n')
    res = CliRunner().invoke(app, ["run", str(tmp_path / "job.toml")], env=env)
    assert res.exit_code == 1
    assert "job.toml: [limits].fuel must be a positive integer, got 'lots'" in " ".join(res.output.split())


def test_no_deployment_says_what_to_do(env: dict[str, str]) -> None:
    res = CliRunner().invoke(app, ["balance"], env=env)
    assert res.exit_code == 1 and "mercato devnet start" in res.output


def test_jobs_lists_the_history(env: dict[str, str], tmp_path: Path) -> None:
    assert "no jobs yet" in CliRunner().invoke(app, ["jobs"], env=env).output
    JobHistory(tmp_path / "home" / "requester.sqlite").record(
        JobRecord(1_700_000_000.0, "pi", "sha256:00", "verified", "0xabcdef0123456789", "0x" + "12" * 20,
                  50_000, ttfb_ms=120.0))
    res = CliRunner().invoke(app, ["jobs", "--offline"], env=env)
    # a row of an older version says "verified", which meant sealed: shown as what it was
    assert res.exit_code == 0 and "sealed" in res.output and "0.05" in res.output and "120" in res.output
    assert "verified" not in res.output
    res = CliRunner().invoke(app, ["jobs"], env=env)  # no deployment: the local states, and why
    assert res.exit_code == 0 and "sealed" in res.output and "could not read the chain" in res.output
