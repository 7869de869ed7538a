"""The reputation score: one pure function for the SDK's tie-breaks and the explorer's tables.

    >>> reputation_score(Evidence(completed=10))
    Fraction(11, 12)
    >>> reputation_score(Evidence(completed=10, audits_passed=2, audits_failed=1))
    Fraction(13, 30)

The score is the mean of a Beta(1, 1) prior updated with a provider's on-chain outcomes
(the counters of ``reputation()`` and ``audit_record()``): successes are completed jobs plus
audits passed; failures are missed jobs (each weighing ``MISS_WEIGHT``) plus failed audits
and lost disputes (each weighing ``FAIL_WEIGHT``; both cost the whole stake):

    score = (S + 1) / (S + F + 2),   S = completed + audits_passed,
                                     F = MISS_WEIGHT * missed + FAIL_WEIGHT * (audits_failed + disputes_lost)

A provider caught in a dispute counts one failed audit and one lost dispute, as the contract
counts it. The ``slashed`` counter is not scored: it counts the same misses (one per reclaim)
and the same forfeits again.

With decay (:func:`decayed_evidence`) each outcome counts ``2 ** (-age / half_life)``, so old
history fades towards the newcomer's 1/2. Volume is carried along for display but never
enters the score: a requester and a provider can trade with each other to inflate volume at
no cost beyond gas. Everything is exact (``Fraction``), so equal evidence gives a real tie.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "DEFAULT_HALF_LIFE_S",
    "FAIL_WEIGHT",
    "MISS_WEIGHT",
    "Evidence",
    "Outcome",
    "OutcomeKind",
    "decay_factor",
    "decayed_evidence",
    "reputation_score",
]

MISS_WEIGHT = 4  # one missed job outweighs four completed ones
FAIL_WEIGHT = 16  # a proven wrong result (the whole stake forfeited) outweighs sixteen completed jobs
DEFAULT_HALF_LIFE_S = 30 * 24 * 3600  # the explorer's default: an outcome counts half after 30 days

Number = int | Fraction
OutcomeKind = Literal["completed", "missed", "audit_passed", "audit_failed", "dispute_lost"]
_FIELD = {"completed": "completed", "missed": "missed", "audit_passed": "audits_passed",
          "audit_failed": "audits_failed", "dispute_lost": "disputes_lost"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """A provider's outcomes, plain counts or decayed weights (``Fraction``)."""

    completed: Number = 0  # jobs in finalized deals
    missed: Number = 0  # jobs in reclaimed (missed) deals
    audits_passed: Number = 0  # its deals whose audit passed on a matching claim
    audits_failed: Number = 0  # its deals whose audit failed (stake forfeited)
    disputes_lost: Number = 0  # minority claims it revealed in a dispute (stake forfeited)
    volume: Number = 0  # money paid to it (base units); informational, not scored


@dataclass(frozen=True, slots=True)
class Outcome:
    """One on-chain outcome at unix time ``at``; ``count`` is jobs (completed/missed) or 1."""

    kind: OutcomeKind
    at: int
    count: int = 1
    volume: int = 0


def reputation_score(ev: Evidence) -> Fraction:
    """The score in (0, 1) of ``ev`` (see the module docstring); negatives count as zero.

    >>> reputation_score(Evidence())
    Fraction(1, 2)
    >>> reputation_score(Evidence(completed=10, missed=1))
    Fraction(11, 16)
    """
    s = max(Fraction(0), Fraction(ev.completed)) + max(Fraction(0), Fraction(ev.audits_passed))
    bad = max(Fraction(0), Fraction(ev.audits_failed)) + max(Fraction(0), Fraction(ev.disputes_lost))
    f = MISS_WEIGHT * max(Fraction(0), Fraction(ev.missed)) + FAIL_WEIGHT * bad
    return (s + 1) / (s + f + 2)


def decay_factor(age_s: int, half_life_s: int | None) -> Fraction:
    """``2 ** (-age / half_life)`` as an exact Fraction (of the float); 1 without decay or for
    an outcome not in the past.

    >>> decay_factor(3600, 3600), decay_factor(-5, 3600), decay_factor(10**9, None)
    (Fraction(1, 2), Fraction(1, 1), Fraction(1, 1))
    """
    if half_life_s is None or age_s <= 0:
        return Fraction(1)
    if half_life_s <= 0:
        raise ValueError(f"half-life must be positive seconds, got {half_life_s}")
    return Fraction(2.0 ** (-age_s / half_life_s))


def decayed_evidence(outcomes: Iterable[Outcome], now: int, half_life_s: int | None = DEFAULT_HALF_LIFE_S) -> Evidence:
    """Sum ``outcomes`` into :class:`Evidence`, each weighted by its :func:`decay_factor` at ``now``.

    >>> ev = decayed_evidence([Outcome("completed", at=0, count=2), Outcome("missed", at=3600)], now=3600,
    ...                       half_life_s=3600)
    >>> ev.completed, ev.missed
    (Fraction(1, 1), Fraction(1, 1))
    """
    sums: dict[str, Fraction] = {name: Fraction(0) for name in _FIELD.values()}
    volume = Fraction(0)
    for o in outcomes:
        if o.kind not in _FIELD:
            raise ValueError(f"unknown outcome kind {o.kind!r}")
        w = decay_factor(now - o.at, half_life_s)
        sums[_FIELD[o.kind]] += w * o.count
        volume += w * o.volume
    return Evidence(volume=volume, **sums)
