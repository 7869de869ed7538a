"""Disputes: committee draw, majority rule, forfeits and the pool split (SPEC §14.4-14.5)."""

import boa

from mercato.verification.lottery import UNAVAILABLE_CLAIM, UNAVAILABLE_ROOT

from contracts_kit import (
    AUDIT_FEE, CHALLENGE_WINDOW, COMMIT, COMMITTEE_SIZE, DEPOSIT, FAILED, FUEL, PASSED, PRICE, REVEAL, ROOT, SEED_HASH,
    STAKE, VOID, WRONG_ROOT, add_provider, commit_as, deploy_market, events, fund, make_party, past_deadline,
    claim_of, reveal_as, start_audit,
)


def _to_dispute(market, requester, provider, make_terms, provider_root, auditor_root, auditor_fuel=FUEL):
    deal, deal_id = start_audit(market, make_terms(), requester, root=provider_root)
    first = market.audit(deal_id).seats[0]
    commit_as(market, first, deal_id, auditor_root, auditor_fuel)
    reveal_as(market, first, deal_id, auditor_root, auditor_fuel)
    reveal_as(market, provider.address, deal_id, provider_root)
    drawn = events(market, "AuditorDrawn")
    view = market.audit(deal_id)
    assert view.dispute and view.phase == COMMIT
    assert [log.seat for log in drawn] == list(range(1, len(view.seats)))
    assert [log.auditor for log in drawn] == view.seats[1:]
    return deal, deal_id, first, view.seats[1:]


def test_committee_is_fresh_and_distinct(market, requester, provider, auditors, make_terms):
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, WRONG_ROOT, ROOT)
    assert len(committee) == COMMITTEE_SIZE
    everyone = [first, *committee]
    assert len(set(everyone)) == len(everyone)
    assert provider.address not in everyone and requester.address not in everyone
    # the first auditor is not a seat of the dispute's commit phase; a seat commits once
    with boa.reverts("audits: not a seat"):
        commit_as(market, first, deal_id)
    commit_as(market, committee[0], deal_id)
    with boa.reverts("audits: already committed"):
        commit_as(market, committee[0], deal_id)


def test_honest_majority_against_lying_provider(market, token, requester, provider, auditors, make_terms):
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, WRONG_ROOT, ROOT)
    for seat in committee:
        commit_as(market, seat, deal_id)
    assert market.audit(deal_id).phase == REVEAL
    for seat in committee:
        reveal_as(market, seat, deal_id)
    (resolved,) = events(market, "AuditResolved")
    burned = events(market, "Burned")
    assert (resolved.outcome, resolved.claim) == (FAILED, claim_of(ROOT, FUEL))
    pool = STAKE
    share = pool // 2 // 6  # the first auditor and five committee members hold the winning claim
    assert market.balance_of(first) == share + AUDIT_FEE
    for seat in committee:
        assert market.balance_of(seat) == share
    assert market.balance_of(requester.address) == DEPOSIT - AUDIT_FEE + pool // 4
    assert market.burned() == burned[0].amount == pool - 6 * share - pool // 4
    assert market.jailed(provider.address)
    assert market.audit_record(provider.address) == (0, 1, 1, 0, 0)
    assert market.audit_record(first) == (0, 0, 0, 1, 0)
    assert market.lane(provider.address, 0) == 1


def test_honest_majority_against_lying_auditor(market, requester, provider, auditors, make_terms):
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, ROOT, WRONG_ROOT)
    for seat in committee:
        commit_as(market, seat, deal_id)
    for seat in committee:
        reveal_as(market, seat, deal_id)
    (resolved,) = events(market, "AuditResolved")
    (forfeit,) = events(market, "StakeForfeited")
    assert resolved.outcome == PASSED and forfeit.provider == first
    pool = STAKE
    share = pool // 2 // 5
    for seat in committee:
        assert market.balance_of(seat) == share
    # the first auditor lied: the fee goes back to the requester with its quarter of the pool
    assert market.balance_of(requester.address) == DEPOSIT - PRICE + pool // 4
    assert market.balance_of(first) == 0
    assert market.burned() == pool - 5 * share - pool // 4
    assert market.jailed(first) and not market.jailed(provider.address)
    assert market.audit_record(first) == (0, 0, 1, 0, 0)
    assert market.audit_record(provider.address) == (1, 0, 0, 0, 0)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    assert market.provider_info(provider.address)[8] == PRICE


def test_committee_no_show_voids(market, requester, provider, auditors, make_terms):
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, ROOT, WRONG_ROOT)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    missed = events(market, "AuditorMissed")
    (flag,) = events(market, "WorkloadFlagged")
    (resolved,) = events(market, "AuditResolved")
    assert sorted(m.auditor for m in missed) == sorted(committee)
    assert resolved.outcome == VOID and flag.deal_id == deal_id
    assert market.is_flagged(make_terms()["jobs_root"])
    # price and fee back; the five no-show penalties are burned (none to the requester, who could cause them);
    # nobody forfeits for the mismatch
    assert market.balance_of(requester.address) == DEPOSIT
    assert not market.jailed(first) and not market.jailed(provider.address)
    assert market.free_stake(provider.address) == STAKE
    assert market.in_flight(provider.address) == (0, 0, 0)
    assert market.lane(provider.address, 0) == 1
    assert market.burned() == COMMITTEE_SIZE * AUDIT_FEE


def test_partial_committee_reveal(market, requester, provider, auditors, make_terms):
    """Two committee members reveal the provider's claim, one commits and stays silent, two never commit."""
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, ROOT, WRONG_ROOT)
    for seat in committee[:3]:
        commit_as(market, seat, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    assert len(events(market, "AuditorMissed")) == 2
    assert market.audit(deal_id).phase == REVEAL
    for seat in committee[:2]:
        reveal_as(market, seat, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    # provider + two committee = 3 of 4 revealed hold the provider's claim: a strict majority
    assert events(market, "AuditResolved")[0].outcome == PASSED
    assert market.jailed(first)
    assert market.audit_record(committee[2])[4] == 1
    # the member who committed and stayed silent loses what a liar loses (attack class 8)
    assert market.jailed(committee[2]) and market.free_stake(committee[2]) == 0
    assert not any(market.jailed(seat) for seat in committee[:2])


def test_split_vote_voids(token):
    market = deploy_market(token, committee_size=1)
    r = make_party(0x1111)
    fund(token, market, r.address, 10**9)
    with boa.env.prank(r.address):
        market.deposit(10**9)
    p = add_provider(token, market, 0x2222)
    others = [add_provider(token, market, 0x3333 + i) for i in range(2)]
    terms = dict(requester=r.address, provider=p.address, lane=0, nonce=1, jobs_root=b"\x44" * 32, jobs=1,
                 price=PRICE, collateral=0, deadline=boa.env.evm.patch.timestamp + 3600,
                 expiry=boa.env.evm.patch.timestamp + 600)
    terms.update(seed_hash=SEED_HASH, audit_bps=10_000, audit_fee=AUDIT_FEE)
    deal, deal_id = start_audit(market, terms, r)
    first = market.audit(deal_id).seats[0]
    commit_as(market, first, deal_id, WRONG_ROOT)
    reveal_as(market, first, deal_id, WRONG_ROOT)
    reveal_as(market, p.address, deal_id)
    (third,) = market.audit(deal_id).seats[1:]
    assert third in [o.address for o in others]
    third_root = b"\x55" * 32
    commit_as(market, third, deal_id, third_root)
    reveal_as(market, third, deal_id, third_root)
    assert events(market, "AuditResolved")[0].outcome == VOID
    assert market.is_flagged(b"\x44" * 32)
    assert market.balance_of(r.address) == 10**9


# a seat that cannot obtain the job reveals result_root = 0, fuel = 0 (SPEC §14.4, "job unavailable")
UNAVAILABLE = UNAVAILABLE_ROOT


def test_a_job_withheld_from_everyone_fails_its_provider_and_costs_no_auditor(market, requester, provider, auditors,
                                                                             make_terms):
    """The provider (alone, or with its requester) keeps the job from its auditors. Before, each drawn seat
    could only stay silent and pay its penalty; three rounds later the deal passed by default. Now a seat
    reports the job unavailable, which opens a dispute whose committee looks for the job itself: none finds
    it, and whoever withheld the job pays, the provider that ran it; every auditor keeps its stake."""
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, ROOT, UNAVAILABLE, 0)
    for seat in committee:
        commit_as(market, seat, deal_id, UNAVAILABLE, 0)
    for seat in committee:
        reveal_as(market, seat, deal_id, UNAVAILABLE, 0)
    (resolved,) = events(market, "AuditResolved")
    assert (resolved.outcome, resolved.claim) == (FAILED, claim_of(UNAVAILABLE, 0)) == (FAILED, UNAVAILABLE_CLAIM)
    assert market.jailed(provider.address)
    for seat in [first, *committee]:
        assert not market.jailed(seat) and market.provider_info(seat)[4] == STAKE
    share = STAKE // 2 // 6  # the reporters are the provers
    assert market.balance_of(first) == share + AUDIT_FEE
    assert market.balance_of(requester.address) == DEPOSIT - AUDIT_FEE + STAKE // 4


def test_a_job_withheld_from_one_seat_costs_that_seat_nothing(market, requester, provider, auditors, make_terms):
    """A provider may serve the committee and withhold the job from the first auditor alone, to make it look
    like a liar. The committee runs the job and the provider's claim wins, but the seat that reported the
    job unavailable lied about no result: it keeps its stake (and earns no fee)."""
    deal, deal_id, first, committee = _to_dispute(market, requester, provider, make_terms, ROOT, UNAVAILABLE, 0)
    for seat in committee:
        commit_as(market, seat, deal_id)
    for seat in committee:
        reveal_as(market, seat, deal_id)
    (resolved,) = events(market, "AuditResolved")
    assert (resolved.outcome, resolved.claim) == (PASSED, claim_of(ROOT, FUEL))
    assert events(market, "StakeForfeited") == []
    assert not market.jailed(first) and market.provider_info(first)[4] == STAKE
    assert market.balance_of(first) == 0  # the fee went back to the requester
    assert market.audit_record(first)[2] == 0  # no dispute lost


def test_the_provider_cannot_answer_unavailable(market, requester, provider, auditors, make_terms):
    """The provider ran the job, so "unavailable" is no answer from it: a provider that sealed (0, 0) could
    otherwise withhold the job from everyone and win on the majority of its auditors' reports."""
    deal, deal_id = start_audit(market, make_terms(), requester, root=UNAVAILABLE, fuel=0)
    first = market.audit(deal_id).seats[0]
    commit_as(market, first, deal_id, UNAVAILABLE, 0)
    with boa.reverts("audits: bad reveal"):
        reveal_as(market, provider.address, deal_id, UNAVAILABLE, 0)
