"""The deployment file every command reads, and deploying the Market (+ court, + mock token).

    >>> dep = deploy(w3, artifacts, deployer_key, DevnetParams(), rpc_url=url)   # doctest: +SKIP
    >>> dep.save(path); Deployment.load(path).market == dep.market               # doctest: +SKIP
    True
    >>> dep.court == dep.court_address(w3)                                       # doctest: +SKIP
    True

Two contracts make the market: the Market (accounts, stake, deals, lottery, settlement) and
the court (the audit game), which the Market's constructor creates from an EIP-5202 blueprint
of it; the court's address is read back from ``Market.court()``. Every reader of the chain's
logs reads both addresses (:meth:`Deployment.log_addresses`).
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
    "court_of",
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
    # blocks during which sortition weights stay fixed (SPEC §14.4): 1 on the devnet, so a new stake is
    # drawable from the next block; deploy 256 where draws must not be re-rolled by waiting a block
    epoch_blocks: int = 1

    def audit_tuple(self) -> tuple[int, ...]:
        """The constructor's ``AuditParams`` struct, in field order."""
        return (self.audit_floor_bps, self.collusion_bps, self.bond_lambda_bps, self.beacon_delay,
                self.draw_blocks, self.audit_period, self.committee_size, self.epoch_blocks)


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
    abi: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "market", "court", "token"
    court: str = ""  # created by the Market's constructor; "" in a file written before the court existed

    def court_address(self, w3: Web3) -> str:
        """The court's address: the recorded one, else read from the Market's ``court()``."""
        if self.court:
            return str(Web3.to_checksum_address(self.court))
        return court_of(w3, self.market, self.abi.get("market", []))

    def log_addresses(self, w3: Web3 | None = None) -> list[str]:
        """The addresses whose logs make the market's history: the Market and its court (the
        court's is read from the chain when missing and ``w3`` is given)."""
        court = self.court or (self.court_address(w3) if w3 is not None else "")
        return [str(Web3.to_checksum_address(a)) for a in (self.market, court) if a]

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


def court_of(w3: Web3, market: str, market_abi: list[dict[str, Any]]) -> str:
    """The address of the court the Market at ``market`` created (its ``court()`` view)."""
    abi = market_abi if any(f.get("name") == "court" for f in market_abi) else [_COURT_VIEW]
    contract = w3.eth.contract(address=Web3.to_checksum_address(market), abi=abi)
    try:
        address = str(contract.functions.court().call())
    except Exception as exc:  # noqa: BLE001 - a Market from before the court has no court()
        raise ChainError(f"the Market at {market} did not name its court ({type(exc).__name__}: {exc}): "
                         "it predates the court contract; redeploy (`mercato devnet reset` on the devnet)") from exc
    if int(address, 16) == 0:
        raise ChainError(f"the Market at {market} has no court")
    return str(Web3.to_checksum_address(address))


_COURT_VIEW: dict[str, Any] = {"type": "function", "name": "court", "stateMutability": "view", "inputs": [],
                               "outputs": [{"name": "", "type": "address"}]}


def _deploy_one(sender: TxSender, artifact: Artifact, *args: Any) -> str:
    factory = sender.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = sender.send(factory.constructor(*args))
    assert not isinstance(receipt, bytes)
    address = receipt["contractAddress"]
    if not address:
        raise ChainError(f"deploying {artifact.name} produced no contract")
    return str(address)


def _deploy_blueprint(sender: TxSender, artifact: Artifact) -> str:
    """Deploy ``artifact``'s EIP-5202 blueprint: a plain creation transaction of its initcode."""
    if not artifact.blueprint:
        raise ChainError(f"{artifact.name} was not compiled as a blueprint")
    return _deploy_one(sender, Artifact(artifact.name, [], artifact.bytecode, True))


def deploy(w3: Web3, artifacts: dict[str, Artifact], deployer_key: str, params: DevnetParams, *,
           rpc_url: str, token: str | None = None) -> Deployment:
    """Deploy the mock token (unless ``token`` is given), the court's blueprint and the Market,
    whose constructor creates the court from the blueprint; the court's address is read back."""
    sender = TxSender(w3, deployer_key)
    start = w3.eth.block_number
    token_address = token or _deploy_one(sender, artifacts["token"])
    blueprint = _deploy_blueprint(sender, artifacts["court"])
    market = _deploy_one(sender, artifacts["market"], token_address, params.challenge_window,
                         params.unbond_delay, params.withdrawal_delay, params.miss_penalty_bps,
                         params.audit_tuple(), blueprint)
    court = court_of(w3, market, artifacts["market"].abi)
    return Deployment(w3.eth.chain_id, rpc_url, token_address, market, start + 1, params,
                      abi={"market": artifacts["market"].abi, "court": artifacts["court"].abi,
                           "token": artifacts["token"].abi},
                      court=court)


def fund(w3: Web3, deployment: Deployment, minter_key: str, accounts: dict[str, str], amount: int) -> None:
    """Mint ``amount`` mock tokens to each address (pipelined: one wait at the end)."""
    sender = TxSender(w3, minter_key)
    token = w3.eth.contract(address=deployment.token, abi=deployment.abi["token"])
    hashes = [sender.send(token.functions.mint(addr, amount), gas=100_000, wait=False)
              for addr in accounts.values()]
    for tx_hash in hashes:
        assert isinstance(tx_hash, bytes)
        sender.wait(tx_hash)
