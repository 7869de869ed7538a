"""Result roots: exact vectors, and properties that make them safe to commit to."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.verification.result_root import (
    exit_text,
    leaf_hash,
    merkle_root,
    node_hash,
    result_leaves,
    result_root,
    sha256_hex,
)

EMPTY = sha256_hex(b"")


def _leaf(name: str, digest: str) -> bytes:
    raw = name.encode()
    return hashlib.sha256(b"\x00" + len(raw).to_bytes(4, "big") + raw + bytes.fromhex(digest)).digest()


@pytest.mark.parametrize(
    ("leaves", "expected"),
    [
        ([("a", EMPTY)], lambda: _leaf("a", EMPTY).hex()),
        ([("a", EMPTY), ("b", EMPTY)], lambda: node_hash(_leaf("a", EMPTY), _leaf("b", EMPTY)).hex()),
        (
            [("c", EMPTY), ("a", EMPTY), ("b", EMPTY)],  # sorted; the odd leaf is promoted
            lambda: node_hash(node_hash(_leaf("a", EMPTY), _leaf("b", EMPTY)), _leaf("c", EMPTY)).hex(),
        ),
    ],
)
def test_merkle_root_table(leaves, expected):
    assert merkle_root(leaves) == expected()


def test_leaf_and_node_are_domain_separated():
    a, b = _leaf("a", EMPTY), _leaf("b", EMPTY)
    assert node_hash(a, b) != hashlib.sha256(a + b).digest()
    assert leaf_hash("a", EMPTY) == a


def test_reserved_leaves_and_exit_text():
    leaves = dict(result_leaves([("x.txt", EMPTY)], b"out", b"", "ok", 0))
    assert set(leaves) == {"x.txt", "!stdout", "!stderr", "!exit"}
    assert leaves["!exit"] == sha256_hex(b"ok:0")
    assert exit_text("fuel_exhausted", None) == b"fuel_exhausted:-"


@pytest.mark.parametrize("bad", ["", "!stdout", "!x"])
def test_output_paths_cannot_collide_with_reserved_leaves(bad):
    with pytest.raises(ValueError):
        result_leaves([(bad, EMPTY)], b"", b"", "ok", 0)


def test_empty_and_duplicate_leaves_are_refused():
    with pytest.raises(ValueError):
        merkle_root([])
    with pytest.raises(ValueError):
        merkle_root([("a", EMPTY), ("a", EMPTY)])


names = st.text(alphabet="abcdefghij/._-0123456789", min_size=1, max_size=12)
digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
outputs = st.dictionaries(names, digests, max_size=12)


def _root(files: dict[str, str], stdout=b"", stderr=b"", outcome="ok", code=0):
    return result_root(outputs=list(files.items()), stdout=stdout, stderr=stderr, outcome=outcome, exit_code=code)


@given(outputs, st.randoms(use_true_random=False))
def test_root_is_independent_of_listing_order(files, rnd):
    items = list(files.items())
    rnd.shuffle(items)
    assert _root(dict(items)) == _root(files)


@given(outputs, names, digests)
def test_any_change_to_a_file_changes_the_root(files, name, digest):
    changed = {**files, name: digest}
    if changed != files:
        assert _root(changed) != _root(files)


@given(outputs, st.binary(max_size=64), st.binary(max_size=64))
def test_streams_change_the_root(files, out1, out2):
    if out1 != out2:
        assert _root(files, stdout=out1) != _root(files, stdout=out2)
        assert _root(files, stderr=out1) != _root(files, stderr=out2)


@given(outputs, st.sampled_from(["ok", "exit_nonzero", "trap"]), st.integers(0, 255), st.integers(0, 255))
def test_outcome_and_exit_code_change_the_root(files, outcome, c1, c2):
    if c1 != c2:
        assert _root(files, outcome=outcome, code=c1) != _root(files, outcome=outcome, code=c2)
    assert _root(files, outcome="ok", code=c1) != _root(files, outcome="trap", code=None)
