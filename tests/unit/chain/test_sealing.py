"""Sealed boxes: key derivation, round trips, and every way a box can fail to open."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercato.domain.sealing import SEAL_OVERHEAD, BoxKey, is_box_key, open_sealed, seal
from mercato.errors import SealError

pytestmark = pytest.mark.unit

A = BoxKey.derive("0x" + "11" * 32)
B = BoxKey.derive(bytes.fromhex("22" * 32))


def test_derivation_is_deterministic_and_separates_keys() -> None:
    assert BoxKey.derive("11" * 32) == A and A.public == BoxKey.derive(bytes.fromhex("11" * 32)).public
    assert A.public != B.public and len(A.public) == 32
    # the box secret is not the Ethereum key itself
    assert A.secret != bytes.fromhex("11" * 32)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
def test_round_trip_and_fixed_overhead(data: bytes) -> None:
    sealed = seal(data, A.public)
    assert len(sealed) == len(data) + SEAL_OVERHEAD
    assert A.open(sealed) == data
    # sealed boxes are randomized: the same plaintext never gives the same bytes twice
    assert seal(data, A.public) != sealed


def test_a_box_for_another_key_does_not_open() -> None:
    with pytest.raises(SealError, match="another key"):
        B.open(seal(b"secret", A.public))


def test_an_altered_or_short_box_does_not_open() -> None:
    sealed = bytearray(seal(b"secret input", "0x" + A.public.hex()))
    sealed[-1] ^= 1
    with pytest.raises(SealError, match="altered"):
        open_sealed(bytes(sealed), A)
    with pytest.raises(SealError, match="not a sealed box"):
        A.open(b"short")


def test_bad_keys_are_refused() -> None:
    assert is_box_key(A.public) and is_box_key(A.public.hex())
    assert not is_box_key(None) and not is_box_key(bytes(32)) and not is_box_key(b"\x01" * 31)
    assert not is_box_key("zz")
    with pytest.raises(SealError, match="32 non-zero bytes"):
        seal(b"x", bytes(32))
    with pytest.raises(SealError, match="32 bytes"):
        BoxKey.derive(b"\x01" * 20)
