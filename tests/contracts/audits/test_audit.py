"""commit_audit, reveal, advance: the first round (SPEC §14.4) and its money (§14.5)."""

import boa

from contracts_kit import (
    AUDIT_FEE, AUDIT_PERIOD, AUDITED, CHALLENGE_WINDOW, COLLATERAL, COMMIT, DEPOSIT, FAILED, FUEL, MAX_AUDIT_ROUNDS,
    PASSED, PRICE, REVEAL, ROOT, STAKE, WRONG_ROOT, commit_as, events, make_party, past_deadline, reveal_as,
    claim_of, next_epoch, salt_of, seal_for, start_audit, with_status,
)

ZERO_ADDRESS = "0x" + "00" * 20


def _seat(market, deal_id):
    return market.audit(deal_id).seats[0]


def test_first_round_pass(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    commit_as(market, auditor, deal_id)
    (log,) = events(market, "AuditCommitted")
    assert (log.auditor, log.seal) == (auditor, seal_for(market, auditor, deal_id))
    view = market.audit(deal_id)
    assert view.phase == REVEAL and view.seals == [log.seal] and view.claims == [b"\0" * 32]
    reveal_as(market, auditor, deal_id)
    reveal_as(market, provider.address, deal_id)
    (resolved,) = events(market, "AuditResolved")
    (paid,) = events(market, "BountyPaid")
    claim = claim_of(ROOT, FUEL)
    assert (resolved.outcome, resolved.claim) == (PASSED, claim)
    assert (paid.to, paid.amount) == (auditor, AUDIT_FEE)
    assert market.balance_of(auditor) == AUDIT_FEE
    assert market.audit_record(provider.address) == (1, 0, 0, 0, 0)
    assert market.audit_record(auditor) == (0, 0, 0, 1, 0)
    view = market.audit(deal_id)
    assert (view.phase, view.provider_claim, view.claim, view.claims) == (PASSED, claim, claim, [claim])
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    assert market.provider_info(provider.address)[8] == PRICE
    assert market.free_stake(provider.address) == STAKE
    # the fee paid the auditor: the requester is not refunded it
    assert market.balance_of(requester.address) == DEPOSIT - PRICE - AUDIT_FEE


def test_commit_reverts(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    with boa.env.prank(provider.address), boa.reverts("audits: not a seat"):
        market.commit_audit(deal_id, b"\1" * 32)
    with boa.env.prank(auditor), boa.reverts("audits: empty seal"):
        market.commit_audit(deal_id, b"\0" * 32)
    with boa.reverts("audits: wrong phase"):
        market.commit_audit(b"\5" * 32, b"\1" * 32)
    past_deadline(market, deal_id)
    with boa.env.prank(auditor), boa.reverts("audits: phase over"):
        market.commit_audit(deal_id, b"\1" * 32)


def test_reveal_reverts(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    with boa.env.prank(provider.address), boa.reverts("audits: wrong phase"):
        market.reveal(deal_id, ROOT, FUEL, salt_of(provider.address))
    commit_as(market, auditor, deal_id)
    with boa.env.prank(auditor):
        with boa.reverts("audits: bad reveal"):
            market.reveal(deal_id, ROOT, FUEL + 1, salt_of(auditor))
        with boa.reverts("audits: bad reveal"):
            market.reveal(deal_id, ROOT, FUEL, b"\0" * 32)
    with boa.env.prank(make_party(0x5757).address), boa.reverts("audits: not a seat"):
        market.reveal(deal_id, ROOT, FUEL, b"\0" * 32)
    reveal_as(market, provider.address, deal_id)
    with boa.reverts("audits: already revealed"):
        reveal_as(market, provider.address, deal_id)
    past_deadline(market, deal_id)
    with boa.reverts("audits: phase over"):
        reveal_as(market, auditor, deal_id)


def test_copied_seal_cannot_be_revealed(market, requester, provider, auditors, make_terms):
    """A lazy auditor commits the provider's own seal: it names the provider, so no reveal of it works."""
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    with boa.env.prank(auditor):
        market.commit_audit(deal_id, deal[1])
        for salt in (salt_of(auditor), salt_of(provider.address)):
            with boa.reverts("audits: bad reveal"):
                market.reveal(deal_id, ROOT, FUEL, salt)
    reveal_as(market, provider.address, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    # the auditor counts as a no-show and a new one is drawn
    (missed,) = events(market, "AuditorMissed")
    assert missed.auditor == auditor
    view = market.audit(deal_id)
    assert (view.phase, view.round) == (COMMIT, 2) and view.seats[0] != auditor


def test_advance_reverts(market, requester, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    with boa.reverts("audits: phase not over"):
        market.advance(deal_id)
    with boa.reverts("audits: wrong phase"):
        market.advance(b"\5" * 32)


def test_auditor_no_show_and_redraw(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    first = _seat(market, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    (missed,) = events(market, "AuditorMissed")
    (slash,) = events(market, "ProviderSlashed")
    (drawn,) = events(market, "AuditorDrawn")
    assert (missed.auditor, missed.penalty) == (first, AUDIT_FEE)
    # the penalty is burned: the requester, who can cause a no-show by withholding the job, gets none of it
    assert (slash.provider, slash.to, slash.amount) == (first, ZERO_ADDRESS, AUDIT_FEE)
    assert events(market, "Burned")[0].amount == AUDIT_FEE and market.burned() == AUDIT_FEE
    assert drawn.auditor not in (first, provider.address, requester.address)
    assert drawn.deadline == boa.env.evm.patch.timestamp + AUDIT_PERIOD
    assert market.balance_of(requester.address) == DEPOSIT - PRICE - AUDIT_FEE
    assert market.provider_info(first)[4] == STAKE - AUDIT_FEE
    assert market.audit_record(first)[4] == 1
    # the new auditor answers: the audit passes in round 2
    second = drawn.auditor
    commit_as(market, second, deal_id)
    reveal_as(market, second, deal_id)
    reveal_as(market, provider.address, deal_id)
    assert market.audit(deal_id).phase == PASSED
    assert market.balance_of(second) == AUDIT_FEE


def test_max_rounds_pass_by_default(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    seen = []
    for round_ in range(1, MAX_AUDIT_ROUNDS + 1):
        view = market.audit(deal_id)
        assert view.round == round_ and view.seats[0] not in seen
        seen.append(view.seats[0])
        past_deadline(market, deal_id)
        market.advance(deal_id)
    (resolved,) = events(market, "AuditResolved")
    assert (resolved.outcome, resolved.claim) == (PASSED, b"\0" * 32)
    # the fee back to the requester; the three no-show penalties burned, none to the requester
    assert market.balance_of(requester.address) == DEPOSIT - PRICE
    assert market.burned() == 3 * AUDIT_FEE
    assert market.audit_record(provider.address) == (0, 0, 0, 0, 0)  # a default pass proves nothing
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    assert market.provider_info(provider.address)[8] == PRICE


def test_auditor_commits_but_does_not_reveal(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    first = _seat(market, deal_id)
    commit_as(market, first, deal_id)
    reveal_as(market, provider.address, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    # attack class 8: silence after committing is no free option; it costs what a lie costs (the whole stake)
    (missed,) = events(market, "AuditorMissed")
    (forfeit,) = events(market, "StakeForfeited")
    assert (missed.auditor, missed.penalty) == (first, STAKE) and (forfeit.provider, forfeit.amount) == (first, STAKE)
    assert market.jailed(first)
    next_epoch(market)
    assert market.sortition_weight(first) == 0
    assert market.burned() == STAKE and market.balance_of(requester.address) == DEPOSIT - PRICE - AUDIT_FEE
    view = market.audit(deal_id)
    assert (view.phase, view.round) == (COMMIT, 2)
    # the provider's claim stands; the next auditor only has to match it
    second = view.seats[0]
    commit_as(market, second, deal_id)
    reveal_as(market, second, deal_id)
    assert market.audit(deal_id).phase == PASSED


def test_provider_no_reveal_fails(market, token, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    commit_as(market, auditor, deal_id)
    reveal_as(market, auditor, deal_id)
    past_deadline(market, deal_id)
    market_before = token.balanceOf(market.address)
    market.advance(deal_id)
    (resolved,) = events(market, "AuditResolved")
    (forfeit,) = events(market, "StakeForfeited")
    assert (resolved.outcome, resolved.claim) == (FAILED, claim_of(ROOT, FUEL))
    pool = STAKE
    assert (forfeit.provider, forfeit.amount) == (provider.address, pool)
    # P/2 to the prover (the auditor), P/4 to the requester, the rest burned; fee to the auditor
    assert market.balance_of(auditor) == pool // 2 + AUDIT_FEE
    assert market.balance_of(requester.address) == DEPOSIT - AUDIT_FEE + pool // 4
    assert market.burned() == pool - pool // 2 - pool // 4
    assert token.balanceOf(market.address) == market_before
    assert market.jailed(provider.address)
    assert market.provider_info(provider.address)[4:7] == (0, 0, 0)
    assert market.lane(provider.address, 0) & ((1 << 64) - 1) == 1 and market.lane(provider.address, 0) >> 64 == 0
    assert market.in_flight(provider.address) == (0, 0, 0)
    assert market.audit_record(provider.address) == (0, 1, 0, 0, 0)
    assert market.audit_record(auditor) == (0, 0, 0, 1, 0)
    next_epoch(market)
    assert market.sortition_weight(provider.address) == 0
    with boa.reverts("deals: already settled"):
        market.finalize([deal])


def test_nobody_reveals_fails_without_prover(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    auditor = _seat(market, deal_id)
    commit_as(market, auditor, deal_id)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    assert events(market, "AuditResolved")[0].outcome == FAILED
    pool = STAKE
    # no prover: the provers' half goes to the requester too; fee back; the auditor, committed and silent,
    # forfeited its whole stake (burned)
    assert market.balance_of(requester.address) == DEPOSIT + pool // 2 + pool // 4
    assert market.burned() == pool - pool // 2 - pool // 4 + STAKE
    assert market.balance_of(auditor) == 0 and market.jailed(auditor)


def test_unbonding_is_forfeited_too(market, requester, provider, auditors, make_terms):
    deal, deal_id = start_audit(market, make_terms(), requester)
    with boa.env.prank(provider.address):
        market.unbond(1_000 * 10**6)
    auditor = _seat(market, deal_id)
    commit_as(market, auditor, deal_id, WRONG_ROOT)
    reveal_as(market, auditor, deal_id, WRONG_ROOT)
    past_deadline(market, deal_id)
    market.advance(deal_id)
    (forfeit,) = events(market, "StakeForfeited")
    assert forfeit.amount == STAKE
    assert market.provider_info(provider.address)[6] == 0
    with boa.env.prank(provider.address), boa.reverts("staking: nothing unbonding"):
        market.withdraw_stake()
    assert COLLATERAL and AUDITED
