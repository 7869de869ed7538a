"""What verification costs: the audit fee, its expected cost per deal, the extra compute.

    >>> audit_fee(1_500_000, margin_bps=2_000)
    1800000
    >>> expected_verification_cost(1_500_000, audit_bps=300)
    Fraction(45000, 1)
    >>> float(expected_overhead_pct(300, committee_size=5, dispute_rate="0.001"))
    3.015

Amounts are integer base units. An audit is one blind re-execution of the deal, so a fair
fee is the deal's price plus a margin for the auditor. The requester escrows the fee with
the price but pays it only when the deal is audited (it comes back when the lottery clears
the deal), so the expected cost is ``p · fee``.
"""

from __future__ import annotations

from fractions import Fraction

from mercato.verification.bond import Number, exact

__all__ = ["MAX_AUDIT_FEE", "audit_fee", "expected_overhead_pct", "expected_verification_cost"]

MAX_AUDIT_FEE = 2**96 - 1  # Terms.audit_fee is packed into 96 bits (SPEC §14.2)
_BPS = 10_000


def _check_bps(name: str, bps: int) -> None:
    if not 0 <= bps <= _BPS:
        raise ValueError(f"{name} must be within 0..{_BPS} basis points, got {bps}")


def audit_fee(price: int, margin_bps: int = 0) -> int:
    """``audit_fee(1_500_000, 2_000) == 1_800_000``: ``⌈price · (1 + margin)⌉``, one re-execution plus margin.

    Rounded up so the auditor is never paid less than the deal's own price.
    """
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    if margin_bps < 0:
        raise ValueError(f"margin_bps must not be negative, got {margin_bps}")
    fee = -(-price * (_BPS + margin_bps) // _BPS)
    if fee > MAX_AUDIT_FEE:
        raise ValueError(f"an audit fee of {fee} base units does not fit in 96 bits")
    return fee


def expected_verification_cost(price: int, audit_bps: int, fee: int | None = None) -> Fraction:
    """``expected_verification_cost(price, 300)``: ``p · fee`` base units per deal (fee defaults to the price).

    The expectation over the lottery of the audit fee the requester ends up paying.
    """
    _check_bps("audit_bps", audit_bps)
    fee = audit_fee(price) if fee is None else fee
    if fee < 0:
        raise ValueError(f"fee must not be negative, got {fee}")
    return Fraction(audit_bps * fee, _BPS)


def expected_overhead_pct(audit_bps: int, committee_size: int = 5, dispute_rate: Number = 0) -> Fraction:
    """``expected_overhead_pct(300) == 3``: extra compute as a % of useful compute, ``100 · p · (1 + r·m)``.

    Each audited deal runs once more (the first auditor); a share ``r`` of audits turns
    into a dispute, which adds ``m`` committee re-executions.
    """
    _check_bps("audit_bps", audit_bps)
    rate = exact(dispute_rate)
    if not 0 <= rate <= 1:
        raise ValueError(f"dispute_rate must be within 0..1, got {dispute_rate}")
    if committee_size < 0:
        raise ValueError(f"committee_size must not be negative, got {committee_size}")
    return 100 * Fraction(audit_bps, _BPS) * (1 + rate * committee_size)
