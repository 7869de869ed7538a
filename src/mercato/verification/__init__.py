"""mercato.verification: pure checks of results (result roots; audits and disputes later)."""

from mercato.verification.result_root import merkle_root, result_root, sha256_hex

__all__ = ["merkle_root", "result_root", "sha256_hex"]
