"""Frozen settings, loaded once at the edge (the CLI) and passed down.

Precedence: environment (``MERCATO_*``) over the TOML file over defaults. Library code
never reads the environment; the CLI hands ``os.environ`` to :meth:`Settings.load`.

    >>> s = Settings.load(None, {"MERCATO_RPC_URL": "http://127.0.0.1:9545"})
    >>> s.rpc_url, s.devnet_port
    ('http://127.0.0.1:9545', 8545)
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mercato.errors import ConfigError

__all__ = ["RetryPolicy", "Settings", "DEVNET_CHAIN_ID", "DEFAULT_KEYSTORE", "default_anvil_path"]

DEVNET_CHAIN_ID = 31337
DEFAULT_KEYSTORE = Path("~/.mercato/keys")  # encrypted keys (mercato.chain.keys); expanded where used
_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # src/mercato/config.py -> repo root


def default_anvil_path() -> Path:
    """The project's npm-installed anvil (``npm install`` puts it in node_modules/.bin)."""
    return _PROJECT_ROOT / "node_modules" / ".bin" / "anvil"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off for RPC calls: ``base_delay * 2**i`` capped at ``max_delay``."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delays(self) -> list[float]:
        """The sleeps between attempts (one fewer than ``attempts``)."""
        return [min(self.max_delay, self.base_delay * 2**i) for i in range(max(0, self.attempts - 1))]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable about how Mercato reaches the chain and runs the devnet."""

    home: Path = Path(".mercato")
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = DEVNET_CHAIN_ID
    deployment_file: Path | None = None  # None: <home>/deployments/<chain_id>.json
    anvil_path: Path = field(default_factory=default_anvil_path)
    devnet_host: str = "127.0.0.1"
    devnet_port: int = 8545
    account: str = "requester1"  # a named dev account, keystore:NAME, or 0x… private key (devnet only in a file)
    rpc_timeout: float = 10.0
    tx_timeout: float = 60.0
    gas_margin: float = 1.2
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    keystore: Path | None = None  # None: DEFAULT_KEYSTORE
    password_file: Path | None = None  # first line = passphrase of keystore: accounts; None: prompt
    account_origin: Path | None = None  # the config file `account` was read from (not settable)

    @property
    def deployment_path(self) -> Path:
        """Where the deployment JSON of ``chain_id`` lives."""
        return self.deployment_file or self.home / "deployments" / f"{self.chain_id}.json"

    @property
    def devnet_dir(self) -> Path:
        """State, pid and log files of the local anvil."""
        return self.home / "devnet"

    @property
    def artifacts_dir(self) -> Path:
        """The compiled-contracts cache."""
        return self.home / "artifacts"

    @classmethod
    def load(cls, toml_path: Path | None, env: Mapping[str, str]) -> Settings:
        """Defaults, then ``toml_path`` (or ``<home>/config.toml`` if present), then ``env``."""
        home = Path(env.get("MERCATO_HOME", ".mercato"))
        path = toml_path or (Path(env["MERCATO_CONFIG"]) if "MERCATO_CONFIG" in env else home / "config.toml")
        values: dict[str, Any] = {"home": home}
        if toml_path is not None or path.exists():
            values |= _read_toml(path)
            if "account" in values:
                values["account_origin"] = path  # a plain key there is refused off the devnet
        env_values = _from_env(env)
        if "account" in env_values:
            values.pop("account_origin", None)
        values |= env_values
        return _build(values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (e.g. from CLI options)."""
        if "account" in changes:
            changes.setdefault("account_origin", None)  # no longer the config file's value
        return replace(self, **changes)


_ENV: dict[str, tuple[str, type]] = {
    "MERCATO_HOME": ("home", Path),
    "MERCATO_RPC_URL": ("rpc_url", str),
    "MERCATO_CHAIN_ID": ("chain_id", int),
    "MERCATO_DEPLOYMENT": ("deployment_file", Path),
    "MERCATO_ANVIL": ("anvil_path", Path),
    "MERCATO_DEVNET_PORT": ("devnet_port", int),
    "MERCATO_ACCOUNT": ("account", str),
    "MERCATO_RPC_TIMEOUT": ("rpc_timeout", float),
    "MERCATO_TX_TIMEOUT": ("tx_timeout", float),
    "MERCATO_RPC_RETRIES": ("retry_attempts", int),
    "MERCATO_KEYSTORE": ("keystore", Path),
    "MERCATO_PASSWORD_FILE": ("password_file", Path),
}
_FIELDS = ({f for f in Settings.__dataclass_fields__} | {"retry_attempts", "retry_base_delay", "retry_max_delay"}) - {
    "account_origin"}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, (name, kind) in _ENV.items():
        if var in env:
            try:
                out[name] = kind(env[var])
            except ValueError:
                raise ConfigError(f"{var}={env[var]!r} is not a valid {kind.__name__}: fix or unset it") from None
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: create it or drop --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for section in ("chain", "devnet", "retry"):  # sections are for humans; keys are unique
        for key, value in data.pop(section, {}).items():
            flat[f"retry_{key}" if section == "retry" else key] = value
    flat |= data
    unknown = set(flat) - _FIELDS
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} in {path}: check the spelling")
    return flat


def _build(values: dict[str, Any]) -> Settings:
    default = RetryPolicy()
    retry = RetryPolicy(
        attempts=int(values.pop("retry_attempts", default.attempts)),
        base_delay=float(values.pop("retry_base_delay", default.base_delay)),
        max_delay=float(values.pop("retry_max_delay", default.max_delay)),
    )
    for key in ("home", "deployment_file", "anvil_path", "keystore", "password_file"):
        if values.get(key) is not None:
            values[key] = Path(values[key]).expanduser()
    if retry.attempts < 1:
        raise ConfigError("retry attempts must be at least 1")
    try:
        return Settings(retry=retry, **values)
    except TypeError as exc:
        raise ConfigError(f"bad settings: {exc}") from None
