"""The reputation score shared by the SDK's tie-breaks and the explorer: formula, decay, agreement."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercato.chain.api import AuditRecord
from mercato.chain.api import Reputation as ChainReputation
from mercato.matching import Reputation, score_reputation
from mercato.matching.reputation import (
    FAIL_WEIGHT,
    MISS_WEIGHT,
    Evidence,
    Outcome,
    decay_factor,
    decayed_evidence,
    reputation_score,
)

DAY = 24 * 3600


@pytest.mark.parametrize(("ev", "score"), [
    (Evidence(), Fraction(1, 2)),
    (Evidence(completed=10), Fraction(11, 12)),
    (Evidence(completed=10, missed=1), Fraction(11, 12 + MISS_WEIGHT)),
    (Evidence(completed=3, audits_passed=1), Fraction(5, 6)),
    (Evidence(completed=3, audits_failed=1, disputes_lost=1), Fraction(4, 5 + 2 * FAIL_WEIGHT)),
    (Evidence(completed=1, volume=10**30), Fraction(2, 3)),  # volume is shown, never scored
])
def test_formula(ev: Evidence, score: Fraction) -> None:
    assert reputation_score(ev) == score


def test_the_sdk_score_is_the_same_function_over_the_chain_counters() -> None:
    rep = ChainReputation(completed=7, missed=1, slashed=1, volume=123)
    audits = AuditRecord(audits_passed=2, audits_failed=0, disputes_lost=1, audits_done=4, no_shows=3)
    assert score_reputation(rep) == reputation_score(Evidence(completed=7, missed=1))
    assert score_reputation(rep, audits) == reputation_score(
        Evidence(completed=7, missed=1, audits_passed=2, disputes_lost=1))


def test_decay_halves_each_half_life() -> None:
    assert decay_factor(0, DAY) == 1
    assert decay_factor(DAY, DAY) == Fraction(1, 2)
    assert decay_factor(3 * DAY, DAY) == Fraction(1, 8)
    assert decay_factor(-DAY, DAY) == 1  # a timestamp ahead of now counts fully
    with pytest.raises(ValueError):
        decay_factor(1, 0)


def test_old_failures_fade_and_recent_ones_weigh() -> None:
    now = 100 * DAY
    old_miss = [Outcome("completed", now, 5), Outcome("missed", now - 60 * DAY)]
    new_miss = [Outcome("completed", now, 5), Outcome("missed", now)]
    assert reputation_score(decayed_evidence(old_miss, now, 10 * DAY)) > reputation_score(
        decayed_evidence(new_miss, now, 10 * DAY))
    # without decay the order of events does not matter
    assert reputation_score(decayed_evidence(old_miss, now, None)) == reputation_score(
        decayed_evidence(new_miss, now, None)) == score_reputation(Reputation(completed=5, missed=1))


def test_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError):
        decayed_evidence([Outcome("bribed", 0)], 0)  # type: ignore[arg-type]


counts = st.integers(0, 50)


@given(counts, counts, counts, counts, counts)
def test_score_is_in_the_open_unit_interval_and_monotone(c: int, m: int, p: int, f: int, d: int) -> None:
    base = Evidence(completed=c, missed=m, audits_passed=p, audits_failed=f, disputes_lost=d)
    s = reputation_score(base)
    assert 0 < s < 1
    assert reputation_score(Evidence(completed=c + 1, missed=m, audits_passed=p, audits_failed=f,
                                     disputes_lost=d)) > s
    assert reputation_score(Evidence(completed=c, missed=m + 1, audits_passed=p, audits_failed=f,
                                     disputes_lost=d)) < s
    assert reputation_score(Evidence(completed=c, missed=m, audits_passed=p, audits_failed=f + 1,
                                     disputes_lost=d)) < s


@given(st.lists(st.tuples(st.sampled_from(["completed", "missed", "audit_passed", "audit_failed", "dispute_lost"]),
                          st.integers(0, 1000), st.integers(1, 5)), max_size=20))
def test_no_decay_equals_plain_counts(raw: list[tuple[str, int, int]]) -> None:
    outcomes = [Outcome(k, at, n) for k, at, n in raw]  # type: ignore[arg-type]
    ev = decayed_evidence(outcomes, 1000, None)
    total = {k: sum(n for kk, _, n in raw if kk == k) for k in ("completed", "missed", "audit_passed",
                                                                 "audit_failed", "dispute_lost")}
    assert (ev.completed, ev.missed, ev.audits_passed, ev.audits_failed, ev.disputes_lost) == tuple(total.values())
