"""CLI unit fixtures: an isolated home and keystore, and a cheap scrypt (these keys are throw-away)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mercato.chain.keys


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only: keys written by the CLI here use scrypt n=2 instead of 2**18."""
    monkeypatch.setattr(mercato.chain.keys, "DEFAULT_SCRYPT_N", 2)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str | None]:
    """The environment a command sees: a fresh MERCATO_HOME, no keystore/password settings inherited."""
    return {"MERCATO_HOME": str(tmp_path / "home"), "HOME": str(tmp_path / "user"),
            "MERCATO_KEYSTORE": None, "MERCATO_PASSWORD_FILE": None, "MERCATO_CONFIG": None}
