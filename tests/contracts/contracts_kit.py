"""Contract fixtures: each contract compiled once per session, a fresh chain per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boa
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"

CHALLENGE_WINDOW = 5
UNBOND_DELAY = 60
WITHDRAWAL_DELAY = 30
MISS_PENALTY_BPS = 5000

DEPOSIT = 1_000 * 10**6
STAKE = 10_000 * 10**6
PRICE = 2 * 10**6
COLLATERAL = 38 * 10**6

TERMS_FIELDS = (
    "requester",
    "provider",
    "lane",
    "nonce",
    "jobs_root",
    "jobs",
    "price",
    "collateral",
    "deadline",
    "expiry",
)
_TERMS_TYPE = [
    {"name": "requester", "type": "address"},
    {"name": "provider", "type": "address"},
    {"name": "lane", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "jobs_root", "type": "bytes32"},
    {"name": "jobs", "type": "uint256"},
    {"name": "price", "type": "uint256"},
    {"name": "collateral", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
    {"name": "expiry", "type": "uint256"},
]

_TOKEN_DEPLOYER = boa.load_partial(str(CONTRACTS / "mocks" / "stable_token.vy"))
_MARKET_DEPLOYER = boa.load_partial(str(CONTRACTS / "market.vy"))


@pytest.fixture(scope="session")
def token_deployer():
    return _TOKEN_DEPLOYER


@pytest.fixture(scope="session")
def market_deployer():
    return _MARKET_DEPLOYER


@pytest.fixture(autouse=True)
def _isolate():
    """Every test starts from the same chain state and leaves nothing behind."""
    with boa.env.anchor():
        yield


@pytest.fixture
def token():
    return _TOKEN_DEPLOYER.deploy()


@pytest.fixture
def market(token):
    return _MARKET_DEPLOYER.deploy(
        token.address, CHALLENGE_WINDOW, UNBOND_DELAY, WITHDRAWAL_DELAY, MISS_PENALTY_BPS
    )


@dataclass(frozen=True)
class Party:
    """An account with a key, so it can both send transactions and sign."""

    address: str
    key: bytes


def make_party(seed: int) -> Party:
    acct = Account.from_key(seed.to_bytes(32, "big"))
    return Party(address=acct.address, key=acct.key)


def fund(token, market, who: str, amount: int) -> None:
    """Mint `amount` to `who` and approve the market for it."""
    token.mint(who, amount)
    with boa.env.prank(who):
        token.approve(market.address, amount)


def sign(market, kind: str, terms: dict, key: bytes) -> bytes:
    """EIP-712-sign `terms` as a Bid or an Acceptance (full_message form)."""
    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            kind: _TERMS_TYPE,
        },
        "primaryType": kind,
        "domain": {
            "name": "Mercato",
            "version": "1",
            "chainId": boa.env.evm.patch.chain_id,
            "verifyingContract": market.address,
        },
        "message": terms,
    }
    signed = Account.sign_message(encode_typed_data(full_message=message), key)
    return signed.signature


def as_tuple(terms: dict) -> tuple:
    return tuple(terms[f] for f in TERMS_FIELDS)


def deal_tuple(terms: dict, seal: bytes = b"\0" * 32, committed_at: int = 0) -> tuple:
    return (as_tuple(terms), seal, committed_at)


def now() -> int:
    return boa.env.evm.patch.timestamp


@pytest.fixture
def requester(token, market) -> Party:
    party = make_party(0xA11CE)
    fund(token, market, party.address, DEPOSIT)
    with boa.env.prank(party.address):
        market.deposit(DEPOSIT)
    return party


@pytest.fixture
def provider(token, market) -> Party:
    party = make_party(0xB0B)
    fund(token, market, party.address, STAKE)
    with boa.env.prank(party.address):
        market.register("https://provider.example:7070", b"\x01" * 32, b"\x02" * 32)
        market.stake(STAKE)
    return party


@pytest.fixture
def make_terms(requester, provider):
    """Terms between the funded requester and provider; override any field."""

    def _make(**overrides) -> dict:
        t = now()
        terms = {
            "requester": requester.address,
            "provider": provider.address,
            "lane": 0,
            "nonce": 1,
            "jobs_root": b"\x33" * 32,
            "jobs": 1,
            "price": PRICE,
            "collateral": COLLATERAL,
            "deadline": t + 3600,
            "expiry": t + 600,
        }
        terms.update(overrides)
        return terms

    return _make


SEAL = b"\x5e" * 32


def events(contract, name: str) -> list:
    """Decoded logs of `contract`'s last call whose event is called `name`."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def open_deal(market, terms: dict, provider: Party) -> bytes:
    """The requester opens `terms` with the provider's signed Bid; returns the deal id."""
    sig = sign(market, "Bid", terms, provider.key)
    with boa.env.prank(terms["requester"]):
        return market.open_deal(as_tuple(terms), sig)


def open_and_commit(market, terms: dict, requester: Party, seal: bytes = SEAL) -> tuple:
    """The provider opens and commits with the requester's Acceptance; returns the stored Deal."""
    sig = sign(market, "Acceptance", terms, requester.key)
    with boa.env.prank(terms["provider"]):
        market.open_and_commit(as_tuple(terms), sig, seal)
    return deal_tuple(terms, seal, now())


def commit(market, terms: dict, seal: bytes = SEAL) -> tuple:
    """The provider commits `seal` for an open deal; returns the stored Deal."""
    with boa.env.prank(terms["provider"]):
        market.commit_result(deal_tuple(terms), seal)
    return deal_tuple(terms, seal, now())
