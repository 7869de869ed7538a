"""The audit lottery, seals and claims, bit for bit as the contract computes them (SPEC §14.2–14.3).

    >>> seed = bytes(32)
    >>> seed_hash(seed).hex()[:8]
    '290decd9'
    >>> is_audited(lottery_value(seed, b"\\x01" * 32, b"\\x02" * 32), 10_000)
    True

Every value is ``keccak256(abi.encode(...))`` of fixed-size words, so Python and Vyper agree:

- ``seed_hash = keccak256(seed)``, the requester's commitment, signed into the terms;
- ``r = keccak256(abi.encode(bytes32 seed, bytes32 beacon, bytes32 deal_id))``, read as a
  ``uint256``; the deal is audited iff ``r mod 10000 < audit_bps``;
- ``seal = keccak256(abi.encode(address executor, bytes32 deal_id, bytes32 result_root,
  uint256 fuel, bytes32 salt))``, what a provider or auditor commits blind;
- ``claim = keccak256(abi.encode(bytes32 result_root, uint256 fuel))``, what reveals compare.
"""

from __future__ import annotations

import secrets

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

__all__ = [
    "BPS",
    "SEED_BYTES",
    "UNAVAILABLE_CLAIM",
    "UNAVAILABLE_ROOT",
    "claim_of",
    "is_audited",
    "lottery_value",
    "new_seed",
    "seal_of",
    "seed_hash",
]

BPS = 10_000
SEED_BYTES = 32
_UINT256_MAX = 2**256 - 1


def _word(name: str, value: bytes) -> bytes:
    raw = bytes(value)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(raw)}")
    return raw


def new_seed() -> bytes:
    """``len(new_seed()) == 32``: a fresh secret lottery seed for one deal (``secrets``)."""
    return secrets.token_bytes(SEED_BYTES)


def seed_hash(seed: bytes) -> bytes:
    """``seed_hash(bytes(32)).hex()[:8] == "290decd9"``: ``keccak256(seed)`` of a 32-byte seed."""
    return keccak(_word("seed", seed))


def lottery_value(seed: bytes, beacon: bytes, deal_id: bytes) -> int:
    """``lottery_value(seed, blockhash(committed_block + k), deal_id)``: the lottery's ``r``.

    ``uint256(keccak256(abi.encode(bytes32 seed, bytes32 beacon, bytes32 deal_id)))``.
    """
    words = [_word("seed", seed), _word("beacon", beacon), _word("deal_id", deal_id)]
    return int.from_bytes(keccak(encode(["bytes32", "bytes32", "bytes32"], words)), "big")


def is_audited(r: int, audit_bps: int) -> bool:
    """``is_audited(10_299, 300) is True``: the deal is audited iff ``r mod 10000 < audit_bps``."""
    if not 0 <= r <= _UINT256_MAX:
        raise ValueError(f"r must be a uint256, got {r}")
    if not 0 <= audit_bps <= BPS:
        raise ValueError(f"audit_bps must be within 0..{BPS}, got {audit_bps}")
    return r % BPS < audit_bps


def seal_of(executor: str, deal_id: bytes, result_root: bytes, fuel: int, salt: bytes) -> bytes:
    """``seal_of(provider, deal_id, root, fuel, salt)``: the blind commitment of one execution.

    It names its executor and its deal, so a copied seal can never be revealed by anyone
    else; the 32-byte salt keeps a small result space from being guessed out of it.
    """
    values = [to_checksum_address(executor), _word("deal_id", deal_id), _word("result_root", result_root),
              fuel, _word("salt", salt)]
    return keccak(encode(["address", "bytes32", "bytes32", "uint256", "bytes32"], values))


def claim_of(result_root: bytes, fuel: int) -> bytes:
    """``claim_of(root, fuel)``: what two reveals must share to agree (result *and* fuel)."""
    return keccak(encode(["bytes32", "uint256"], [_word("result_root", result_root), fuel]))


# A seat that cannot obtain the job reveals (UNAVAILABLE_ROOT, 0): its claim differs from any provider's,
# so it opens a dispute whose committee looks for the job itself (docs/SPEC.md §14.4). The provider may not
# answer it; an outvoted "unavailable" seat loses nothing.
UNAVAILABLE_ROOT = bytes(32)
UNAVAILABLE_CLAIM = claim_of(UNAVAILABLE_ROOT, 0)
