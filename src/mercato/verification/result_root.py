"""The result root: one SHA-256 Merkle root over everything an execution produced (pure).

    >>> root = result_root(outputs=[("out.txt", sha256_hex(b"hi"))], stdout=b"", stderr=b"",
    ...                    outcome="ok", exit_code=0)
    >>> len(root)
    64

Leaves are ``(name, sha256 hex of the content)``. Output files use their relative path under
``/output``; three reserved names, which a path can never take because ``!`` is refused in
output paths, carry the rest of the result:

- ``!stdout`` and ``!stderr``: the captured (bounded) streams;
- ``!exit``: the UTF-8 text ``"<outcome>:<exit code or ->"``, e.g. ``"ok:0"`` or
  ``"fuel_exhausted:-"``.

Leaves are sorted by name (UTF-8 bytes), so the root does not depend on the order in which
files were listed. Hashing is domain-separated in the RFC 6962 style, so a leaf can never be
passed off as an inner node:

    leaf = sha256(0x00 || u32be(len(name)) || name || digest(32 bytes))
    node = sha256(0x01 || left || right)

An odd node at the end of a level is promoted unchanged. There is always at least the three
reserved leaves, so the tree is never empty. Fuel is *not* a leaf: it is committed next to the
root (and compared separately) so a price dispute can be told apart from a result dispute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = [
    "RESERVED_LEAVES",
    "leaf_hash",
    "node_hash",
    "merkle_root",
    "result_leaves",
    "result_root",
    "sha256_hex",
]

STDOUT_LEAF = "!stdout"
STDERR_LEAF = "!stderr"
EXIT_LEAF = "!exit"
RESERVED_LEAVES = (EXIT_LEAF, STDERR_LEAF, STDOUT_LEAF)
_LEAF_TAG = b"\x00"
_NODE_TAG = b"\x01"


def sha256_hex(data: bytes) -> str:
    """``sha256_hex(b"")`` is ``"e3b0c442…"``: the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def leaf_hash(name: str, digest_hex: str) -> bytes:
    """The domain-separated hash of one ``(name, content digest)`` leaf."""
    raw_name = name.encode("utf-8")
    digest = bytes.fromhex(digest_hex)
    if len(digest) != 32:
        raise ValueError(f"leaf {name!r}: digest must be 32 bytes of hex, got {len(digest)}")
    return hashlib.sha256(_LEAF_TAG + len(raw_name).to_bytes(4, "big") + raw_name + digest).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The domain-separated hash of two child nodes."""
    return hashlib.sha256(_NODE_TAG + left + right).digest()


def merkle_root(leaves: Iterable[tuple[str, str]]) -> str:
    """Hex Merkle root over ``(name, digest hex)`` leaves, sorted by name; names must be unique."""
    ordered = sorted(leaves, key=lambda leaf: leaf[0].encode("utf-8"))
    names = [name for name, _ in ordered]
    if not ordered:
        raise ValueError("a Merkle root needs at least one leaf")
    if len(set(names)) != len(names):
        raise ValueError("leaf names must be unique")
    level = [leaf_hash(name, digest) for name, digest in ordered]
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # odd one out is promoted, not duplicated
        level = paired
    return level[0].hex()


def exit_text(outcome: str, exit_code: int | None) -> bytes:
    """The ``!exit`` leaf's content: ``exit_text("ok", 0) == b"ok:0"``."""
    return f"{outcome}:{'-' if exit_code is None else exit_code}".encode()


def result_leaves(
    outputs: Iterable[tuple[str, str]], stdout: bytes, stderr: bytes, outcome: str, exit_code: int | None
) -> list[tuple[str, str]]:
    """Every leaf of a result: the output files plus the three reserved leaves."""
    leaves = []
    for path, digest in outputs:
        if not path or path.startswith("!"):
            raise ValueError(f"output path {path!r} is empty or collides with a reserved leaf")
        leaves.append((path, digest))
    leaves.append((STDOUT_LEAF, sha256_hex(stdout)))
    leaves.append((STDERR_LEAF, sha256_hex(stderr)))
    leaves.append((EXIT_LEAF, sha256_hex(exit_text(outcome, exit_code))))
    return leaves


def result_root(
    *, outputs: Iterable[tuple[str, str]], stdout: bytes, stderr: bytes, outcome: str, exit_code: int | None
) -> str:
    """The hex result root of one execution (see the module docstring for the exact encoding)."""
    return merkle_root(result_leaves(outputs, stdout, stderr, outcome, exit_code))
