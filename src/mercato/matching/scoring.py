"""Reputation scores and the collateral rule (pure, exact: ``Fraction``s, integer money).

    >>> score_reputation(Reputation(completed=0, missed=0, slashed=0, volume=0))
    Fraction(1, 2)
    >>> min_collateral_for(1_000_000)  # p = 5 %: C = 19 P
    19000000
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from mercato.matching.reputation import MISS_WEIGHT, Evidence, reputation_score

__all__ = ["MISS_WEIGHT", "AuditCountsLike", "Reputation", "ReputationLike", "evidence_of", "score_reputation",
           "min_collateral_for"]


class ReputationLike(Protocol):
    """Anything with the on-chain counters (``chain.Reputation`` fits)."""

    @property
    def completed(self) -> int: ...
    @property
    def missed(self) -> int: ...
    @property
    def slashed(self) -> int: ...
    @property
    def volume(self) -> int: ...


class AuditCountsLike(Protocol):
    """The verification counters of ``audit_record()`` (``chain.AuditRecord`` fits)."""

    @property
    def audits_passed(self) -> int: ...
    @property
    def audits_failed(self) -> int: ...
    @property
    def disputes_lost(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Reputation:
    """The on-chain outcome counters, for callers without a chain (tests, the simulation)."""

    completed: int = 0
    missed: int = 0
    slashed: int = 0
    volume: int = 0


def evidence_of(rep: ReputationLike, audits: AuditCountsLike | None = None) -> Evidence:
    """The on-chain counters as undecayed :class:`~mercato.matching.reputation.Evidence`."""
    return Evidence(completed=int(rep.completed), missed=int(rep.missed), volume=int(rep.volume),
                    audits_passed=int(audits.audits_passed) if audits else 0,
                    audits_failed=int(audits.audits_failed) if audits else 0,
                    disputes_lost=int(audits.disputes_lost) if audits else 0)


def score_reputation(rep: ReputationLike, audits: AuditCountsLike | None = None) -> Fraction:
    """A provider's reliability in (0, 1): :func:`~mercato.matching.reputation.reputation_score`
    of its on-chain counters (``audits``, the ``audit_record()`` counters, when given).

    Without audit counters: ``score = (completed + 1) / (completed + MISS_WEIGHT * missed + 2)``,
    the mean of a Beta(1, 1) prior updated with the outcomes, each missed job counted
    ``MISS_WEIGHT`` times (a miss costs a requester a deadline; a completion is the norm).
    A newcomer scores 1/2; 10 completions and no miss 11/12; 10 completions and 1 miss 11/16.
    ``slashed`` counts the same misses (one per reclaim) and ``volume`` is money, not
    reliability, so neither enters the score. Exact, so ties are real ties. The explorer
    scores the same way, with each outcome decayed by its age.

    >>> score_reputation(Reputation(completed=10))
    Fraction(11, 12)
    >>> score_reputation(Reputation(completed=10, missed=1))
    Fraction(11, 16)
    """
    return reputation_score(evidence_of(rep, audits))


def min_collateral_for(price: int, audit_probability_bps: int = 500) -> int:
    """The smallest collateral that makes cheating unprofitable: ``C >= P (1 - p) / p``, rounded up.

    A cheat on a job of price P gains at most P and, audited with probability p, loses C + P;
    the expected loss ``p (C + P)`` covers the gain P exactly when ``C = P (1 - p) / p``
    (docs/SPEC.md, security rule). ``p`` is in basis points (500 = 5 %, so C = 19 P).

    >>> min_collateral_for(10, audit_probability_bps=1000)
    90
    """
    if not 0 < audit_probability_bps <= 10_000:
        raise ValueError(f"audit probability must be in (0, 10000] bps, got {audit_probability_bps}")
    if price < 0:
        raise ValueError(f"price must be non-negative, got {price}")
    return -(-price * (10_000 - audit_probability_bps) // audit_probability_bps)
