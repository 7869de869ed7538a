"""The deployment file every command reads, and deploying the Market (+ mock token).

    >>> dep = deploy(w3, artifacts, deployer_key, DevnetParams(), rpc_url=url)   # doctest: +SKIP
    >>> dep.save(path); Deployment.load(path).market == dep.market               # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from mercato.chain.artifacts import Artifact
from mercato.chain.keys import Unlocker, resolve_account
from mercato.chain.rpc import TxSender
from mercato.errors import ChainError, DeploymentNotFound

__all__ = [
    "ANVIL_MNEMONIC",
    "DEV_ACCOUNT_COUNT",
    "DEV_ACCOUNT_NAMES",
    "DevnetParams",
    "Deployment",
    "dev_accounts",
    "deploy",
    "fund",
]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_NAMES = ("deployer", "requester1", "requester2", "requester3",
                     "provider1", "provider2", "provider3", "provider4", "provider5",
                     "provider6", "provider7", "provider8", "provider9", "provider10")
DEV_ACCOUNT_COUNT = 16  # anvil --accounts: every named dev account gets ether


@dataclass(frozen=True, slots=True)
class DevnetParams:
    """Constructor parameters of the Market (devnet defaults, docs/SPEC.md §2 and §14.1)."""

    challenge_window: int = 5
    unbond_delay: int = 60
    withdrawal_delay: int = 30
    miss_penalty_bps: int = 5000
    audit_floor_bps: int = 300
    collusion_bps: int = 9000
    bond_lambda_bps: int = 15000
    beacon_delay: int = 2
    draw_blocks: int = 200
    audit_period: int = 20
    committee_size: int = 5

    def audit_tuple(self) -> tuple[int, ...]:
        """The constructor's ``AuditParams`` struct, in field order."""
        return (self.audit_floor_bps, self.collusion_bps, self.bond_lambda_bps, self.beacon_delay,
                self.draw_blocks, self.audit_period, self.committee_size)


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the Market lives and how to talk to it (JSON on disk)."""

    chain_id: int
    rpc_url: str
    token: str
    market: str
    block: int
    params: DevnetParams
    accounts: dict[str, str] = field(default_factory=dict)  # name -> address
    keys: dict[str, str] = field(default_factory=dict)  # name -> private key (devnet only)
    abi: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def key_of(self, name_or_key: str, *, unlock: Unlocker | None = None, origin: Path | str | None = None) -> str:
        """A private key: a named dev account's, ``keystore:<name>`` decrypted by ``unlock``, or
        ``name_or_key`` itself when it is a key (refused off the devnet if read from ``origin``,
        a config file). See :func:`mercato.chain.keys.resolve_account`."""
        return resolve_account(name_or_key, chain_id=self.chain_id, dev_keys=self.keys, unlock=unlock, origin=origin)

    def save(self, path: Path) -> None:
        """Write atomically (readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment file; a missing one says how to make it."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DeploymentNotFound(f"no deployment at {path}: run `mercato devnet start` "
                                     "(or point MERCATO_DEPLOYMENT at one)") from None
        except json.JSONDecodeError as exc:
            raise DeploymentNotFound(f"deployment file {path} is corrupt ({exc}): run `mercato devnet reset`") from None
        data["params"] = DevnetParams(**data["params"])
        return cls(**data)


def dev_accounts(mnemonic: str = ANVIL_MNEMONIC) -> dict[str, str]:
    """Name -> private key for :data:`DEV_ACCOUNT_NAMES`, anvil's accounts 0..13."""
    Account.enable_unaudited_hdwallet_features()
    return {name: Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
            for i, name in enumerate(DEV_ACCOUNT_NAMES)}


def _deploy_one(sender: TxSender, artifact: Artifact, *args: Any) -> str:
    factory = sender.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = sender.send(factory.constructor(*args))
    assert not isinstance(receipt, bytes)
    address = receipt["contractAddress"]
    if not address:
        raise ChainError(f"deploying {artifact.name} produced no contract")
    return str(address)


def deploy(w3: Web3, artifacts: dict[str, Artifact], deployer_key: str, params: DevnetParams, *,
           rpc_url: str, token: str | None = None) -> Deployment:
    """Deploy the mock token (unless ``token`` is given) and the Market."""
    sender = TxSender(w3, deployer_key)
    start = w3.eth.block_number
    token_address = token or _deploy_one(sender, artifacts["token"])
    market = _deploy_one(sender, artifacts["market"], token_address, params.challenge_window,
                         params.unbond_delay, params.withdrawal_delay, params.miss_penalty_bps,
                         params.audit_tuple())
    return Deployment(w3.eth.chain_id, rpc_url, token_address, market, start + 1, params,
                      abi={"market": artifacts["market"].abi, "token": artifacts["token"].abi})


def fund(w3: Web3, deployment: Deployment, minter_key: str, accounts: dict[str, str], amount: int) -> None:
    """Mint ``amount`` mock tokens to each address (pipelined: one wait at the end)."""
    sender = TxSender(w3, minter_key)
    token = w3.eth.contract(address=deployment.token, abi=deployment.abi["token"])
    hashes = [sender.send(token.functions.mint(addr, amount), gas=100_000, wait=False)
              for addr in accounts.values()]
    for tx_hash in hashes:
        assert isinstance(tx_hash, bytes)
        sender.wait(tx_hash)
