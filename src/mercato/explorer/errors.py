"""The explorer's errors: each says what went wrong and what to do."""

from __future__ import annotations

from mercato.errors import ChainError, MercatoError, RpcUnavailable

__all__ = ["ExplorerError", "IndexerRpcError", "IndexMismatch", "IndexDbError"]


class ExplorerError(MercatoError):
    """Base of the explorer's errors."""


class IndexerRpcError(ExplorerError, RpcUnavailable):
    """The RPC node the indexer follows did not answer (or answered nonsense)."""


class IndexMismatch(ExplorerError, ChainError):
    """The index database belongs to another chain or Market than the one asked for."""


class IndexDbError(ExplorerError):
    """The index database cannot be opened or written."""
