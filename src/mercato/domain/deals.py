"""Deal terms, deal records, deal ids and the jobs Merkle tree (docs/SPEC.md §3–4).

Pure computation: the structs mirror the contract's ``Terms`` and ``Deal`` field by
field, in the same order, so ``to_tuple()`` is exactly what the ABI encoder wants.

    >>> leaf = job_leaf(b"\\x11" * 32, price=10, collateral=190)
    >>> jobs_root([leaf]) == leaf
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NewType

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

__all__ = [
    "ZERO32",
    "DealId",
    "Terms",
    "Deal",
    "deal_id",
    "deal_hash",
    "hash_prefix",
    "job_leaf",
    "jobs_root",
    "merkle_proof",
    "verify_proof",
    "lane_word",
    "MAX_NONCE",
    "UNDRAWN",
    "CLEARED",
    "AUDITED",
]

DealId = NewType("DealId", bytes)
ZERO32 = b"\x00" * 32
MAX_NONCE = 2**64 - 1

# Deal.status (docs/SPEC.md §14.2): the lottery has not run / ran and passed / sent it to audit
UNDRAWN, CLEARED, AUDITED = 0, 1, 2

_TERMS_TYPES = ("(address,address,uint256,uint256,bytes32,uint256,uint256,uint256,uint256,uint256,"
                "bytes32,uint256,uint256)")
_DEAL_TYPES = f"({_TERMS_TYPES},bytes32,uint256,uint256,uint256)"


@dataclass(frozen=True, slots=True)
class Terms:
    """What requester and provider agreed off-chain; signed as a Bid or an Acceptance.

    Example: ``Terms(req, prov, lane=0, nonce=1, jobs_root=leaf, jobs=1, price=10,
    collateral=190, deadline=now + 600, expiry=now + 60, seed_hash=keccak(seed),
    audit_bps=300, audit_fee=10)``. The last three are the verification terms (§14.2):
    the requester's committed lottery seed, the audit probability in basis points and
    the fee one audit pays; the contract rejects a zero ``seed_hash`` and an
    ``audit_bps`` below its floor, so the defaults only suit unit tests of other fields.
    """

    requester: str
    provider: str
    lane: int
    nonce: int
    jobs_root: bytes
    jobs: int
    price: int
    collateral: int
    deadline: int
    expiry: int
    seed_hash: bytes = ZERO32
    audit_bps: int = 0
    audit_fee: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "requester", to_checksum_address(self.requester))
        object.__setattr__(self, "provider", to_checksum_address(self.provider))
        object.__setattr__(self, "jobs_root", bytes(self.jobs_root))
        object.__setattr__(self, "seed_hash", bytes(self.seed_hash))
        if len(self.jobs_root) != 32:
            raise ValueError("jobs_root must be 32 bytes")
        if len(self.seed_hash) != 32:
            raise ValueError("seed_hash must be 32 bytes")

    def to_tuple(self) -> tuple[object, ...]:
        """The ABI tuple, field order identical to the contract struct."""
        return (
            self.requester,
            self.provider,
            self.lane,
            self.nonce,
            self.jobs_root,
            self.jobs,
            self.price,
            self.collateral,
            self.deadline,
            self.expiry,
            self.seed_hash,
            self.audit_bps,
            self.audit_fee,
        )

    @classmethod
    def from_tuple(cls, values: tuple[object, ...] | list[object]) -> Terms:
        """Inverse of :meth:`to_tuple` (accepts what web3 decodes)."""
        r, p, lane, nonce, root, jobs, price, coll, deadline, expiry, seed_hash, bps, fee = values
        return cls(str(r), str(p), int(lane), int(nonce), bytes(root), int(jobs),  # type: ignore[call-overload, arg-type]
                   int(price), int(coll), int(deadline), int(expiry),  # type: ignore[call-overload]
                   bytes(seed_hash), int(bps), int(fee))  # type: ignore[arg-type, call-overload]

    @property
    def escrow(self) -> int:
        """What opening the deal takes from the requester: price plus the audit fee."""
        return self.price + self.audit_fee

    def as_message(self) -> dict[str, object]:
        """The EIP-712 message (same field names as the struct)."""
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]

    @property
    def deal_id(self) -> DealId:
        """``keccak256(abi.encode(provider, lane, nonce))``."""
        return deal_id(self.provider, self.lane, self.nonce)


@dataclass(frozen=True, slots=True)
class Deal:
    """A deal as stored (by hash) on-chain: terms, the result seal, the commit's time and
    block, and the lottery status (``UNDRAWN``, ``CLEARED`` or ``AUDITED``)."""

    terms: Terms
    seal: bytes = ZERO32
    committed_at: int = 0
    committed_block: int = 0
    status: int = UNDRAWN

    def to_tuple(self) -> tuple[object, ...]:
        """The ABI tuple ``(terms, seal, committed_at, committed_block, status)``."""
        return (self.terms.to_tuple(), bytes(self.seal), self.committed_at, self.committed_block, self.status)

    @classmethod
    def from_tuple(cls, values: tuple[object, ...] | list[object]) -> Deal:
        """Inverse of :meth:`to_tuple`."""
        terms, seal, committed_at, committed_block, status = values
        return cls(Terms.from_tuple(terms), bytes(seal), int(committed_at),  # type: ignore[arg-type, call-overload]
                   int(committed_block), int(status))  # type: ignore[call-overload]

    @property
    def deal_id(self) -> DealId:
        """The id of the deal, from provider, lane and nonce."""
        return self.terms.deal_id

    @property
    def committed(self) -> bool:
        """Whether a result seal was committed."""
        return self.committed_at != 0

    def with_commit(self, seal: bytes, committed_at: int, committed_block: int) -> Deal:
        """The same deal after ``commit_result``."""
        return replace(self, seal=bytes(seal), committed_at=committed_at, committed_block=committed_block)

    def with_status(self, status: int) -> Deal:
        """The same deal after the lottery (``CLEARED`` or ``AUDITED``)."""
        return replace(self, status=status)

    @property
    def hash(self) -> bytes:
        """``keccak256(abi.encode(deal))``."""
        return deal_hash(self)


def deal_id(provider: str, lane: int, nonce: int) -> DealId:
    """``keccak256(abi.encode(provider, lane, nonce))``.

    >>> deal_id("0x" + "00" * 20, 0, 1).hex()[:8]
    'cbfe4baa'
    """
    return DealId(keccak(encode(["address", "uint256", "uint256"], [provider, lane, nonce])))


def deal_hash(deal: Deal) -> bytes:
    """``keccak256(abi.encode(deal))``, the value the lane stores (truncated)."""
    return keccak(encode([_DEAL_TYPES], [deal.to_tuple()]))


def hash_prefix(deal: Deal) -> int:
    """The top 192 bits of ``deal_hash(deal)``: what a lane holding the deal stores."""
    return int.from_bytes(deal_hash(deal), "big") >> 64


def lane_word(deal: Deal | None, nonce: int) -> int:
    """The 256-bit lane slot: top 192 bits of the open deal's hash, low 64 bits the nonce."""
    top = 0 if deal is None else hash_prefix(deal)
    return (top << 64) | (nonce & MAX_NONCE)


def job_leaf(spec_hash: bytes, price: int, collateral: int) -> bytes:
    """``keccak256(keccak256(abi.encode(spec_hash, price, collateral)))`` (double hash, as OZ)."""
    return keccak(keccak(encode(["bytes32", "uint256", "uint256"], [spec_hash, price, collateral])))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def _layers(leaves: list[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise ValueError("a jobs tree needs at least one leaf")
    layers = [list(leaves)]
    while len(layers[-1]) > 1:
        prev = layers[-1]
        # an odd last node is promoted unchanged: proofs stay valid with sorted-pair hashing
        layers.append([_pair(prev[i], prev[i + 1]) if i + 1 < len(prev) else prev[i]
                       for i in range(0, len(prev), 2)])
    return layers


def jobs_root(leaves: list[bytes]) -> bytes:
    """Sorted-pair keccak Merkle root (OpenZeppelin ``MerkleProof`` compatible).

    >>> a, b = b"\\x01" * 32, b"\\x02" * 32
    >>> jobs_root([a, b]) == keccak(a + b)
    True
    """
    return _layers(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} out of range 0..{len(leaves) - 1}")
    proof: list[bytes] = []
    for layer in _layers(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(layer):
            proof.append(layer[sibling])
        index //= 2
    return proof


def verify_proof(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin ``MerkleProof.verify``."""
    node = leaf
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
