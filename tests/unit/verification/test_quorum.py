"""Audit outcomes: the first round, the dispute majority rule, and the forfeit split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.verification.quorum import (
    FIRST_AUDITOR,
    PROVIDER,
    FirstRound,
    Outcome,
    committee_seat,
    first_round,
    resolve_dispute,
    split_forfeit,
)

A, B, C = b"A" * 32, b"B" * 32, b"C" * 32
_ = None  # did not reveal


@pytest.mark.parametrize(("provider", "auditor", "expected"), [
    (A, A, FirstRound.PASSED),
    (A, B, FirstRound.DISPUTE),
    (_, A, FirstRound.FAILED),
    (A, _, FirstRound.REDRAW),
    (_, _, FirstRound.FAILED),  # once reveals are open a silent provider is at fault
])
def test_first_round(provider: bytes | None, auditor: bytes | None, expected: FirstRound) -> None:
    assert first_round(provider, auditor) is expected


# (provider, first auditor, committee) -> (outcome, winner, forfeit seats, prover seats)
# seats: 0 provider, 1 first auditor, 2..6 committee members
DISPUTES = [
    # honest provider, lying first auditor, honest committee: 6 of 7
    (A, B, [A, A, A, A, A], Outcome.PASSED, A, {1}, {2, 3, 4, 5, 6}),
    # cheating provider caught by the first auditor, honest committee
    (B, A, [A, A, A, A, A], Outcome.FAILED, A, {0}, {1, 2, 3, 4, 5, 6}),
    # cheating provider with 2 colluders among the 5: 4 of 7 still win
    (B, A, [A, B, A, B, A], Outcome.FAILED, A, {0, 3, 5}, {1, 2, 4, 6}),
    # honest provider, lying auditor plus 2 colluders: 4 of 7 still win
    (A, B, [B, A, B, A, A], Outcome.PASSED, A, {1, 2, 4}, {3, 5, 6}),
    # 3 colluders tip it: the provider (honest or not) loses 3 to 4
    (A, B, [B, B, B, A, A], Outcome.FAILED, B, {0, 5, 6}, {1, 2, 3, 4}),
    # no-shows shrink the electorate: 3 of 5 revealed
    (A, B, [A, A, _, _, B], Outcome.PASSED, A, {1, 6}, {2, 3}),
    # a tie among the revealed: 3 vs 3 → void
    (A, B, [A, A, B, B, _], Outcome.VOID, None, set(), set()),
    # three-way split, 7 revealed: A 3, B 2, C 2 is no strict majority → void
    (A, B, [A, A, B, C, C], Outcome.VOID, None, set(), set()),
    # everyone in the committee silent: 2 revealed < 3 → void
    (A, B, [_, _, _, _, _], Outcome.VOID, None, set(), set()),
    # 2 of 3 revealed agree: a strict majority of at least 3 revealed
    (A, B, [B, _, _, _, _], Outcome.FAILED, B, {0}, {1, 2}),
    # all disagree
    (A, B, [C, b"D" * 32, b"E" * 32, b"F" * 32, b"G" * 32], Outcome.VOID, None, set(), set()),
    # silent provider, the others agree: the provider forfeits though it revealed nothing
    (_, A, [A, A, B, _, _], Outcome.FAILED, A, {0, 4}, {1, 2, 3}),
    # silent provider and no majority: void, nobody forfeits
    (_, A, [A, B, B, _, _], Outcome.VOID, None, set(), set()),
    # the first auditor silent but the committee decides
    (A, _, [A, A, B, A, A], Outcome.PASSED, A, {4}, {2, 3, 5, 6}),
    # a committee of one (committee_size = 1): 2 vs 1
    (A, B, [A], Outcome.PASSED, A, {1}, {2}),
]


@pytest.mark.parametrize(("provider", "auditor", "committee", "outcome", "winner", "forfeit", "provers"), DISPUTES)
def test_dispute_table(provider: bytes | None, auditor: bytes | None, committee: list[bytes | None],
                       outcome: Outcome, winner: bytes | None, forfeit: set[int], provers: set[int]) -> None:
    r = resolve_dispute(provider, auditor, committee)
    assert (r.outcome, r.winning_claim, set(r.forfeit), set(r.provers)) == (outcome, winner, forfeit, provers)


claims = st.one_of(st.none(), st.sampled_from([A, B, C]))


@given(claims, claims, st.lists(claims, min_size=0, max_size=5))
def test_dispute_invariants(provider: bytes | None, auditor: bytes | None, committee: list[bytes | None]) -> None:
    r = resolve_dispute(provider, auditor, committee)
    execs = [provider, auditor, *committee]
    revealed = [c for c in execs if c is not None]
    assert PROVIDER not in r.provers and not (r.forfeit & r.provers)
    if r.outcome is Outcome.VOID:
        assert r.winning_claim is None and not r.forfeit and not r.provers
        return
    assert len(revealed) >= 3 and 2 * revealed.count(r.winning_claim) > len(revealed)  # type: ignore[arg-type]
    assert (r.outcome is Outcome.PASSED) == (provider == r.winning_claim)
    for seat, claim in enumerate(execs):
        if claim is not None and claim != r.winning_claim:
            assert seat in r.forfeit
        if claim is None and seat != PROVIDER:
            assert seat not in r.forfeit and seat not in r.provers  # silence is a no-show, not a forfeit
    assert (PROVIDER in r.forfeit) == (r.outcome is Outcome.FAILED)


def test_seats() -> None:
    assert (PROVIDER, FIRST_AUDITOR, committee_seat(0), committee_seat(4)) == (0, 1, 2, 6)
    with pytest.raises(ValueError):
        committee_seat(-1)


@pytest.mark.parametrize(("pool", "provers", "expected"), [
    (0, 0, (0, 0, 0)),
    (0, 3, (0, 0, 0)),
    (1, 1, (0, 0, 1)),
    (3, 1, (1, 0, 2)),
    (4, 1, (2, 1, 1)),
    (100, 0, (0, 75, 25)),
    (101, 0, (0, 75, 26)),
    (1_000, 3, (166, 250, 252)),
    (1_000, 4, (125, 250, 250)),
    (7, 5, (0, 1, 6)),  # the provers' half is all dust
])
def test_split_forfeit_table(pool: int, provers: int, expected: tuple[int, int, int]) -> None:
    assert split_forfeit(pool, provers) == expected


@given(st.integers(min_value=0, max_value=2**128), st.integers(min_value=0, max_value=1_100))
def test_split_forfeit_conserves(pool: int, provers: int) -> None:
    per_prover, to_requester, burned = split_forfeit(pool, provers)
    assert min(per_prover, to_requester, burned) >= 0
    assert per_prover * provers + to_requester + burned == pool
    if provers:
        assert per_prover == pool // 2 // provers and to_requester == pool // 4
        assert burned >= pool - pool // 2 - pool // 4  # the burn never gets less than its quarter
    else:
        assert per_prover == 0 and to_requester == pool // 2 + pool // 4


def test_split_forfeit_exhaustive_small() -> None:
    for pool in range(200):
        for provers in range(8):
            per, req, burn = split_forfeit(pool, provers)
            assert per * provers + req + burn == pool and burn >= 0


@pytest.mark.parametrize(("pool", "provers"), [(-1, 1), (1, -1)])
def test_split_forfeit_rejects_negatives(pool: int, provers: int) -> None:
    with pytest.raises(ValueError):
        split_forfeit(pool, provers)
