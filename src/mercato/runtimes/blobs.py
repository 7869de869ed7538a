"""A content-addressed blob store on disk: ``put`` bytes, get them back by ``"sha256:<hex>"``.

    store = BlobStore(Path("blobs"))
    ref = store.put(b"hello")            # "sha256:2cf24dba…"
    store.get(ref) == b"hello"

Every read is checked against its hash, so a corrupted or swapped file is an ``InputError``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from mercato.domain.jobs import is_content_hash
from mercato.errors import InputError

__all__ = ["BlobStore", "content_hash"]

DEFAULT_MAX_BLOB = 1 << 30


def content_hash(data: bytes) -> str:
    """``content_hash(b"") == "sha256:e3b0c442…"``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs under ``root/sha256/<2 hex>/<62 hex>``; at most ``max_blob_bytes`` each."""

    def __init__(self, root: Path | str, *, max_blob_bytes: int = DEFAULT_MAX_BLOB) -> None:
        self.root = Path(root)
        self.max_blob_bytes = max_blob_bytes

    def _path(self, ref: str) -> Path:
        if not is_content_hash(ref):
            raise InputError(f"{ref!r} is not a content hash; expected 'sha256:<64 lowercase hex>'")
        hexpart = ref.removeprefix("sha256:")
        return self.root / "sha256" / hexpart[:2] / hexpart[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its content hash."""
        if len(data) > self.max_blob_bytes:
            raise InputError(
                f"blob of {len(data)} bytes is over the store's cap of {self.max_blob_bytes}; split it or raise the cap"
            )
        ref = content_hash(data)
        path = self._path(ref)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blob-", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return ref

    def put_file(self, path: Path | str) -> str:
        """Store a file's bytes and return their content hash."""
        p = Path(path)
        try:
            size = p.stat().st_size
        except OSError as e:
            raise InputError(f"cannot read {p}: {e.strerror}") from None
        if size > self.max_blob_bytes:
            raise InputError(f"{p} is {size} bytes, over the store's cap of {self.max_blob_bytes}")
        return self.put(p.read_bytes())

    def has(self, ref: str) -> bool:
        """Whether a blob with this hash is stored (its content is not checked here)."""
        return self._path(ref).is_file()

    def size(self, ref: str) -> int:
        """The stored blob's size in bytes; ``InputError`` if missing."""
        try:
            return self._path(ref).stat().st_size
        except FileNotFoundError:
            raise InputError(f"blob {ref} is not in the store; upload it first") from None

    def get(self, ref: str, *, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, checked against ``ref``; ``InputError`` if missing, too big or corrupt."""
        path = self._path(ref)
        cap = self.max_blob_bytes if max_bytes is None else max_bytes
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise InputError(f"blob {ref} is not in the store; upload it first") from None
        if size > cap:
            raise InputError(f"blob {ref} is {size} bytes, over the cap of {cap}")
        data = path.read_bytes()
        if content_hash(data) != ref:
            raise InputError(f"blob {ref} failed its hash check (corrupt or replaced); fetch it again")
        return data
