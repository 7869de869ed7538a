"""domain.deals: tuples, ids, hashes and the OpenZeppelin-compatible jobs tree."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from mercato.domain.deals import (
    AUDITED,
    CLEARED,
    UNDRAWN,
    ZERO32,
    Deal,
    Terms,
    deal_hash,
    deal_id,
    job_leaf,
    jobs_root,
    lane_word,
    merkle_proof,
    verify_proof,
)

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20


def _terms(**kw: object) -> Terms:
    base = dict(requester=A, provider=B, lane=3, nonce=7, jobs_root=b"\x01" * 32, jobs=1, price=10,
                collateral=190, deadline=2000, expiry=1000, seed_hash=keccak(b"\x33" * 32), audit_bps=300,
                audit_fee=25)
    return Terms(**(base | kw))  # type: ignore[arg-type]


def test_terms_tuple_round_trip_and_field_order() -> None:
    t = _terms()
    assert t.to_tuple()[:4] == (t.requester, t.provider, 3, 7)
    assert t.to_tuple()[10:] == (keccak(b"\x33" * 32), 300, 25)  # the verification terms come last
    assert Terms.from_tuple(t.to_tuple()) == t
    assert list(t.as_message()) == ["requester", "provider", "lane", "nonce", "jobs_root", "jobs",
                                    "price", "collateral", "deadline", "expiry", "seed_hash", "audit_bps",
                                    "audit_fee"]


def test_escrow_is_price_plus_audit_fee() -> None:
    assert _terms().escrow == 10 + 25
    assert _terms(audit_fee=0).escrow == 10


def test_addresses_are_checksummed_and_root_checked() -> None:
    assert _terms(requester=A.lower()).requester == "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa"
    with pytest.raises(ValueError):
        _terms(jobs_root=b"\x01" * 31)
    with pytest.raises(ValueError, match="seed_hash"):
        _terms(seed_hash=b"\x01" * 31)
    assert _terms(seed_hash=bytearray(b"\x07" * 32)).seed_hash == b"\x07" * 32  # stored as bytes


def test_deal_id_is_abi_encoded_keccak() -> None:
    assert deal_id(B, 3, 7) == keccak(encode(["address", "uint256", "uint256"], [B, 3, 7]))
    assert _terms().deal_id == deal_id(B, 3, 7)


def test_deal_hash_encodes_nested_struct_flat() -> None:
    d = Deal(_terms(), b"\x09" * 32, 55, 77, CLEARED)
    terms_types = ["address", "address"] + ["uint256"] * 2 + ["bytes32"] + ["uint256"] * 5 + ["bytes32", "uint256",
                                                                                              "uint256"]
    flat = encode(terms_types + ["bytes32", "uint256", "uint256", "uint256"],
                  [*d.terms.to_tuple(), d.seal, d.committed_at, d.committed_block, d.status])
    assert deal_hash(d) == keccak(flat) == d.hash
    assert Deal.from_tuple(d.to_tuple()) == d
    # every stored field is in the hash: the block and the lottery status too
    assert Deal(_terms(), b"\x09" * 32, 55, 78, CLEARED).hash != d.hash
    assert d.with_status(AUDITED).hash != d.hash


def test_with_commit_and_lane_word() -> None:
    d = Deal(_terms())
    assert not d.committed and d.seal == ZERO32 and d.committed_block == 0 and d.status == UNDRAWN
    c = d.with_commit(b"\x05" * 32, 99, 12)
    assert c.committed and c.committed_at == 99 and c.committed_block == 12 and c.status == UNDRAWN
    word = lane_word(c, 7)
    assert word & (2**64 - 1) == 7 and word >> 64 == int.from_bytes(c.hash, "big") >> 64
    assert lane_word(None, 7) == 7


def test_with_status_keeps_everything_else() -> None:
    c = Deal(_terms()).with_commit(b"\x05" * 32, 99, 12)
    for status in (CLEARED, AUDITED):
        s = c.with_status(status)
        assert s.status == status and (s.terms, s.seal, s.committed_at, s.committed_block) == (
            c.terms, c.seal, c.committed_at, c.committed_block)
    assert (UNDRAWN, CLEARED, AUDITED) == (0, 1, 2)  # the contract's numbering


def test_job_leaf_is_double_keccak() -> None:
    inner = keccak(encode(["bytes32", "uint256", "uint256"], [b"\x11" * 32, 5, 95]))
    assert job_leaf(b"\x11" * 32, 5, 95) == keccak(inner)


def test_single_leaf_root_is_the_leaf_and_proof_empty() -> None:
    leaf = job_leaf(b"\x11" * 32, 5, 95)
    assert jobs_root([leaf]) == leaf
    assert merkle_proof([leaf], 0) == []
    assert verify_proof([], leaf, leaf)


def test_known_three_leaf_tree() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    ab = keccak(a + b)
    expected = keccak(ab + c) if ab < c else keccak(c + ab)
    assert jobs_root([a, b, c]) == expected
    assert merkle_proof([a, b, c], 2) == [ab]


def test_empty_tree_and_bad_index_raise() -> None:
    with pytest.raises(ValueError):
        jobs_root([])
    with pytest.raises(IndexError):
        merkle_proof([b"\x01" * 32], 1)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
def test_every_proof_verifies_and_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    root = jobs_root(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, i)
    assert verify_proof(proof, root, leaves[i])
    if leaves[i] not in leaves[:i] + leaves[i + 1:]:
        assert not verify_proof(proof, root, keccak(leaves[i]))
