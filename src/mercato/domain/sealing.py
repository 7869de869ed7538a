"""Sealed boxes for job data: inputs to the provider's registered key, outputs to the requester's.

Every party already holds an Ethereum key; its box key (X25519, for libsodium sealed boxes) is
derived from it, so there is no second secret to keep:

    >>> provider = BoxKey.derive(bytes.fromhex("11" * 32))
    >>> sealed = seal(b"my input", provider.public)          # anyone with the public key
    >>> provider.open(sealed)                                   # only the key holder
    b'my input'
    >>> len(sealed) - len(b"my input") == SEAL_OVERHEAD
    True

A sealed box is anonymous (an ephemeral sender key) and authenticated (Poly1305): a single
flipped bit makes ``open`` fail with ``SealError``. Authenticity of the *content* comes from
elsewhere: inputs and outputs are checked against content hashes and the result root, so a
box only has to keep the bytes secret in transit and at rest outside the two parties.
The provider's public box key is its registry entry's ``enc_key`` (32 bytes on-chain); the
requester's travels in its signed RFQ (``Rfq.box_key``). See docs/SPEC.md §19.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from mercato.errors import SealError

__all__ = ["BOX_PARAM", "BoxKey", "SEAL_OVERHEAD", "SEALED_HEADER", "box_query", "is_box_key", "open_answer",
           "open_sealed", "seal", "sealed_upload"]

SEAL_OVERHEAD = 48  # ephemeral public key (32) + Poly1305 tag (16)
SEALED_HEADER = "X-Mercato-Sealed"  # "1" on a request or response whose body is a sealed box
_DERIVE = b"mercato box key v1"


def _public(key: bytes | str) -> PublicKey:
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else bytes(key)
    if len(raw) != 32 or raw == bytes(32):
        raise SealError(f"a box public key is 32 non-zero bytes, got {len(raw)} bytes")
    return PublicKey(raw)


def is_box_key(key: bytes | str | None) -> bool:
    """True when ``key`` is a usable box public key (32 bytes, not all zero)."""
    if key is None:
        return False
    try:
        _public(key)
    except (SealError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class BoxKey:
    """An X25519 key pair for sealed boxes."""

    secret: bytes

    @classmethod
    def derive(cls, eth_private_key: bytes | str) -> BoxKey:
        """The box key of an Ethereum private key: ``sha256("mercato box key v1" ‖ key)`` as the X25519 seed."""
        raw = bytes.fromhex(eth_private_key.removeprefix("0x")) if isinstance(eth_private_key, str) \
            else bytes(eth_private_key)
        if len(raw) != 32:
            raise SealError(f"an Ethereum private key is 32 bytes, got {len(raw)}")
        return cls(hashlib.sha256(_DERIVE + raw).digest())

    @property
    def _private(self) -> PrivateKey:
        return PrivateKey.from_seed(self.secret)

    @property
    def public(self) -> bytes:
        """The 32-byte public key (what goes on-chain or into an RFQ)."""
        return bytes(self._private.public_key)

    def open(self, sealed: bytes) -> bytes:
        """The plaintext of a box sealed to this key."""
        return open_sealed(sealed, self)


def seal(data: bytes, public_key: bytes | str) -> bytes:
    """``data`` in a sealed box only the holder of ``public_key``'s secret can open."""
    return bytes(SealedBox(_public(public_key)).encrypt(bytes(data)))


def open_sealed(sealed: bytes, key: BoxKey) -> bytes:
    """Open a sealed box; a box for another key, cut short or altered raises ``SealError``."""
    if len(sealed) < SEAL_OVERHEAD:
        raise SealError(f"a sealed box is at least {SEAL_OVERHEAD} bytes, got {len(sealed)}: not a sealed box")
    try:
        return bytes(SealedBox(key._private).decrypt(bytes(sealed)))
    except CryptoError:
        raise SealError("the sealed box does not open with this key: it was sealed to another key, "
                        "or altered in transit") from None


BOX_PARAM = "box"  # query parameter of a GET: seal the answer to this public key (hex)


def sealed_upload(data: bytes, public_key: bytes | str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an upload: sealed to ``public_key`` when it is a usable box key
    (a provider registered without one gets the plain bytes)."""
    if not is_box_key(public_key):
        return data, {}
    assert public_key is not None
    return seal(data, public_key), {SEALED_HEADER: "1"}


def box_query(key: BoxKey | None) -> dict[str, str]:
    """The query parameters asking a provider to seal its answer to ``key``."""
    return {BOX_PARAM: key.public.hex()} if key is not None else {}


def open_answer(content: bytes, headers: object, key: BoxKey | None) -> bytes:
    """The plaintext of an answer: opened with ``key`` when the provider sealed it."""
    sealed = getattr(headers, "get", lambda _k, _d=None: None)(SEALED_HEADER)
    if sealed != "1":
        return content
    if key is None:
        raise SealError("the answer is sealed but no box key was asked for it")
    return key.open(content)
