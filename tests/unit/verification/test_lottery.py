"""The lottery, seals and claims: pinned vectors, recomputed independently of the module."""

from __future__ import annotations

import pytest
from Crypto.Hash import keccak as _keccak
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from mercato.verification.lottery import claim_of, is_audited, lottery_value, new_seed, seal_of, seed_hash

SEED, BEACON, DEAL = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
ROOT, SALT = b"\x44" * 32, b"\x55" * 32
EXECUTOR = "0x" + "ab" * 20
words = st.binary(min_size=32, max_size=32)


def k256(data: bytes) -> bytes:
    """Keccak-256 from pycryptodome: a second implementation to check against."""
    return _keccak.new(digest_bits=256, data=data).digest()


def test_lottery_vector() -> None:
    r = lottery_value(SEED, BEACON, DEAL)
    assert r.to_bytes(32, "big").hex() == "41524791bda53e6da2158f10c15e3672835515d6135111d11c7e9880cfcbe573"
    assert r == int.from_bytes(k256(encode(["bytes32", "bytes32", "bytes32"], [SEED, BEACON, DEAL])), "big")
    assert r % 10_000 == 9475
    assert not is_audited(r, 9475) and is_audited(r, 9476)


def test_seed_hash_vector() -> None:
    assert seed_hash(SEED).hex() == "b569321de72d0af89c2fb48a484de3fc9343f31600ae1f3e13d633cb48cbf816"
    assert seed_hash(bytes(32)) == k256(bytes(32))


def test_seal_vector_is_abi_encoded() -> None:
    seal = seal_of(EXECUTOR, DEAL, ROOT, 12345, SALT)
    manual = bytes(12) + bytes.fromhex("ab" * 20) + DEAL + ROOT + (12345).to_bytes(32, "big") + SALT
    assert seal == k256(manual)
    assert seal.hex() == "09df9ffdd7e2df3706edb7a780090b99467d4b5a5848e72b907d3dc8cc036a70"
    assert seal_of(EXECUTOR.upper().replace("0X", "0x"), DEAL, ROOT, 12345, SALT) == seal  # any address case


def test_claim_vector() -> None:
    claim = claim_of(ROOT, 12345)
    assert claim == k256(ROOT + (12345).to_bytes(32, "big"))
    assert claim.hex() == "d56b17d9c2ee1cad7584cbc364f800b1749b33fdd1c6b70d81e694ac44c26ebe"


def test_seal_binds_everything() -> None:
    base = seal_of(EXECUTOR, DEAL, ROOT, 1, SALT)
    others = [
        seal_of("0x" + "cd" * 20, DEAL, ROOT, 1, SALT),
        seal_of(EXECUTOR, b"\x34" * 32, ROOT, 1, SALT),
        seal_of(EXECUTOR, DEAL, b"\x45" * 32, 1, SALT),
        seal_of(EXECUTOR, DEAL, ROOT, 2, SALT),
        seal_of(EXECUTOR, DEAL, ROOT, 1, b"\x56" * 32),
    ]
    assert base not in others and len(set(others)) == len(others)
    assert claim_of(ROOT, 1) != claim_of(ROOT, 2)  # a fuel disagreement is a disagreement


@given(words, words, words)
def test_lottery_is_deterministic_and_in_range(seed: bytes, beacon: bytes, deal: bytes) -> None:
    r = lottery_value(seed, beacon, deal)
    assert r == lottery_value(seed, beacon, deal)
    assert 0 <= r < 2**256
    assert r == int.from_bytes(k256(seed + beacon + deal), "big")


@pytest.mark.parametrize(("r", "bps", "audited"), [
    (0, 0, False), (0, 1, True), (299, 300, True), (300, 300, False), (10_299, 300, True),
    (2**256 - 1, 10_000, True), (9_999, 9_999, False), (9_999, 10_000, True),
])
def test_is_audited_threshold(r: int, bps: int, audited: bool) -> None:
    assert is_audited(r, bps) is audited


def test_audit_rate_is_the_share_of_residues() -> None:
    assert sum(is_audited(r, 300) for r in range(10_000)) == 300


def test_new_seed_is_fresh() -> None:
    a, b = new_seed(), new_seed()
    assert len(a) == 32 and a != b
    assert len(seed_hash(a)) == 32


@pytest.mark.parametrize("call", [
    lambda: lottery_value(b"\x00" * 31, BEACON, DEAL),
    lambda: lottery_value(SEED, BEACON, b""),
    lambda: seed_hash(b"short"),
    lambda: is_audited(-1, 300),
    lambda: is_audited(2**256, 300),
    lambda: is_audited(0, 10_001),
    lambda: seal_of(EXECUTOR, DEAL, ROOT, 1, b"salt"),
    lambda: claim_of(b"\x00" * 33, 1),
])
def test_bad_inputs_raise(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()
