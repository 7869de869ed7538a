"""Who wins an audit, who forfeits, and how a forfeited pool is split (SPEC §14.4–14.5).

    >>> A, B = b"A" * 32, b"B" * 32
    >>> [first_round(*pair).value for pair in [(A, A), (A, B), (None, A), (A, None)]]
    ['passed', 'dispute', 'failed', 'redraw']
    >>> r = resolve_dispute(B, A, [A, A, A, B, None])
    >>> r.outcome, sorted(r.forfeit), sorted(r.provers)
    (<Outcome.FAILED: 'failed'>, [0, 5], [1, 2, 3, 4])
    >>> split_forfeit(1_000, provers=3)
    (166, 250, 252)

A claim is ``claim_of(result_root, fuel)``; ``None`` stands for an executor that did not
reveal. Executors are named by **seat**: 0 the provider, 1 the first auditor, ``2 + i`` the
``i``-th committee member (:func:`committee_seat`); the caller maps seats to addresses.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FIRST_AUDITOR",
    "MAX_AUDIT_ROUNDS",
    "MIN_QUORUM",
    "PROVIDER",
    "FirstRound",
    "Outcome",
    "Resolution",
    "committee_seat",
    "first_round",
    "resolve_dispute",
    "split_forfeit",
]

PROVIDER = 0
FIRST_AUDITOR = 1
MIN_QUORUM = 3  # a majority of fewer than 3 revealed executions proves nothing
MAX_AUDIT_ROUNDS = 3  # first-auditor draws before an unanswered audit passes by default

Claim = bytes | None


class FirstRound(enum.Enum):
    """What the provider and the first auditor's reveals decide on their own."""

    PASSED = "passed"  # same claim: the deal is paid, the auditor earns the fee
    FAILED = "failed"  # the provider did not reveal: its fault
    REDRAW = "redraw"  # the auditor did not reveal: it pays the no-show penalty, a new one is drawn
    DISPUTE = "dispute"  # different claims: a committee is drawn


class Outcome(enum.Enum):
    """How an audit ends."""

    PASSED = "passed"
    FAILED = "failed"
    VOID = "void"  # no strict majority: refund, nobody slashed, the jobs root flagged


@dataclass(frozen=True, slots=True)
class Resolution:
    """A dispute's result: ``forfeit`` lose their whole stake; ``provers`` share the bounty."""

    outcome: Outcome
    winning_claim: bytes | None
    forfeit: frozenset[int]
    provers: frozenset[int]


def committee_seat(i: int) -> int:
    """``committee_seat(0) == 2``: the seat number of the ``i``-th committee member."""
    if i < 0:
        raise ValueError(f"committee index must be >= 0, got {i}")
    return FIRST_AUDITOR + 1 + i


def first_round(provider: Claim, auditor: Claim) -> FirstRound:
    """``first_round(A, A) is FirstRound.PASSED``: the outcome of a first-round reveal phase.

    A silent provider is checked first: once the reveal phase is open it is at fault
    whatever the auditor did. (An auditor that never *commits* is a redraw before any
    reveal; that case never reaches this function.)
    """
    if provider is None:
        return FirstRound.FAILED
    if auditor is None:
        return FirstRound.REDRAW
    return FirstRound.PASSED if provider == auditor else FirstRound.DISPUTE


def _majority(claims: list[bytes]) -> bytes | None:
    """The claim held by a strict majority of ``claims``, if there are at least 3 of them."""
    if len(claims) < MIN_QUORUM:
        return None
    claim, count = Counter(claims).most_common(1)[0]
    return claim if 2 * count > len(claims) else None


def resolve_dispute(provider: Claim, auditor: Claim, committee: Sequence[Claim]) -> Resolution:
    """``resolve_dispute(A, B, [A, A, B, A, A]).outcome is Outcome.PASSED``: the dispute rule.

    Among all *revealed* executions (provider, first auditor, committee) a claim held by a
    strict majority, with at least 3 revealed, wins. The provider's claim wins → PASSED;
    another claim wins → FAILED and the provider forfeits too (even if it did not reveal);
    no majority → VOID and nobody forfeits. Otherwise every revealed executor whose claim
    differs from the winner forfeits; the provers are the auditors holding the winning claim.
    Silent seats only pay the no-show penalty (not modelled here).
    """
    seats: dict[int, bytes] = {
        seat: claim
        for seat, claim in enumerate([provider, auditor, *committee])
        if claim is not None
    }
    winner = _majority(list(seats.values()))
    if winner is None:
        return Resolution(Outcome.VOID, None, frozenset(), frozenset())
    losers = {seat for seat, claim in seats.items() if claim != winner}
    provers = frozenset(seat for seat, claim in seats.items() if claim == winner and seat != PROVIDER)
    if provider == winner:
        return Resolution(Outcome.PASSED, winner, frozenset(losers), provers)
    return Resolution(Outcome.FAILED, winner, frozenset(losers | {PROVIDER}), provers)


def split_forfeit(pool: int, provers: int) -> tuple[int, int, int]:
    """``split_forfeit(1_000, provers=3) == (166, 250, 252)``: ``(per_prover, to_requester, burned)``.

    ⌊P/2⌋ is shared equally among the provers (the division's dust is burned), ⌊P/4⌋ goes
    to the requester, the rest is burned. With no prover the provers' half goes to the
    requester too. Always ``per_prover * provers + to_requester + burned == pool``.
    """
    if pool < 0:
        raise ValueError(f"pool must not be negative, got {pool}")
    if provers < 0:
        raise ValueError(f"provers must not be negative, got {provers}")
    half, quarter = pool // 2, pool // 4
    if provers == 0:
        return 0, half + quarter, pool - half - quarter
    per_prover = half // provers
    return per_prover, quarter, pool - per_prover * provers - quarter
