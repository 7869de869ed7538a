"""Settings: defaults, TOML, environment precedence, and errors that read like advice."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from mercato.config import RetryPolicy, Settings
from mercato.errors import ConfigError


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    s = Settings.load(None, {"MERCATO_HOME": str(tmp_path)})
    assert s.rpc_url == "http://127.0.0.1:8545" and s.chain_id == 31337
    assert s.deployment_path == tmp_path / "deployments" / "31337.json"
    assert s.devnet_dir == tmp_path / "devnet" and s.retry == RetryPolicy()
    assert s.anvil_path.parts[-3:] == ("node_modules", ".bin", "anvil")


def test_toml_then_env_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "mercato.toml"
    cfg.write_text('[chain]\nrpc_url = "http://10.0.0.1:8545"\nchain_id = 8453\n'
                   '[devnet]\ndevnet_port = 9000\n[retry]\nattempts = 2\nbase_delay = 0.5\n')
    s = Settings.load(cfg, {"MERCATO_CHAIN_ID": "42161"})
    assert s.rpc_url == "http://10.0.0.1:8545" and s.devnet_port == 9000
    assert s.chain_id == 42161  # env wins over the file
    assert s.retry == RetryPolicy(attempts=2, base_delay=0.5)
    assert s.deployment_path.name == "42161.json"


def test_home_config_toml_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('account = "provider2"\n')
    assert Settings.load(None, {"MERCATO_HOME": str(tmp_path)}).account == "provider2"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(FrozenInstanceError):
        s.rpc_url = "x"  # type: ignore[misc]
    assert s.with_(devnet_port=1).devnet_port == 1 and s.devnet_port == 8545


@pytest.mark.parametrize(("env", "message"), [
    ({"MERCATO_CHAIN_ID": "mainnet"}, "MERCATO_CHAIN_ID='mainnet' is not a valid int"),
    ({"MERCATO_RPC_RETRIES": "0"}, "retry attempts must be at least 1"),
])
def test_bad_env_is_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(None, env)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("rpc_url = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(bad, {})
    typo = tmp_path / "typo.toml"
    typo.write_text('rpc_ulr = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(typo, {})


def test_retry_delays_back_off_and_cap() -> None:
    assert RetryPolicy(attempts=5, base_delay=0.2, max_delay=1.0).delays() == [0.2, 0.4, 0.8, 1.0]
    assert RetryPolicy(attempts=1).delays() == []
