"""EIP-712 Bids (signed by providers) and Acceptances (signed by requesters).

    >>> sig = sign_bid(terms, provider_key, chain_id=31337, market=market)   # doctest: +SKIP
    >>> recover_bid(terms, sig, chain_id=31337, market=market) == terms.provider  # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any, Literal

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak

from mercato.domain.deals import Terms

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "typed_data",
    "digest",
    "sign",
    "recover",
    "sign_bid",
    "sign_acceptance",
    "recover_bid",
    "recover_acceptance",
]

DOMAIN_NAME = "Mercato"
DOMAIN_VERSION = "1"
Kind = Literal["Bid", "Acceptance"]

_FIELDS = [
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
    {"name": "seed_hash", "type": "bytes32"},
    {"name": "audit_bps", "type": "uint256"},
    {"name": "audit_fee", "type": "uint256"},
]
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def typed_data(kind: Kind, terms: Terms, chain_id: int, market: str) -> dict[str, Any]:
    """The full EIP-712 message for ``kind`` over ``terms``."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, kind: _FIELDS},
        "primaryType": kind,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": market},
        "message": terms.as_message(),
    }


def _encode(kind: Kind, terms: Terms, chain_id: int, market: str) -> SignableMessage:
    return encode_typed_data(full_message=typed_data(kind, terms, chain_id, market))


def digest(kind: Kind, terms: Terms, chain_id: int, market: str) -> bytes:
    """The 32-byte hash that is signed (what the market recovers the signer from when a deal opens)."""
    msg = _encode(kind, terms, chain_id, market)
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def sign(kind: Kind, terms: Terms, key: str | bytes, chain_id: int, market: str) -> bytes:
    """A 65-byte ``r || s || v`` signature (v = 27/28)."""
    return bytes(Account.sign_message(_encode(kind, terms, chain_id, market), key).signature)


def recover(kind: Kind, terms: Terms, signature: bytes, chain_id: int, market: str) -> str:
    """The checksummed address that signed ``signature``."""
    return str(Account.recover_message(_encode(kind, terms, chain_id, market), signature=signature))


def sign_bid(terms: Terms, key: str | bytes, *, chain_id: int, market: str) -> bytes:
    """The provider's signed Bid."""
    return sign("Bid", terms, key, chain_id, market)


def sign_acceptance(terms: Terms, key: str | bytes, *, chain_id: int, market: str) -> bytes:
    """The requester's signed Acceptance."""
    return sign("Acceptance", terms, key, chain_id, market)


def recover_bid(terms: Terms, signature: bytes, *, chain_id: int, market: str) -> str:
    """Who signed this Bid."""
    return recover("Bid", terms, signature, chain_id, market)


def recover_acceptance(terms: Terms, signature: bytes, *, chain_id: int, market: str) -> str:
    """Who signed this Acceptance."""
    return recover("Acceptance", terms, signature, chain_id, market)
