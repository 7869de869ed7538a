"""Jailing (SPEC §14.5), the bond rule (§14.6) and the audit parameters (§14.1)."""

import boa
import pytest

from contracts_kit import (
    AUDIT_FEE, AUDIT_PARAMS, CHALLENGE_WINDOW, PRICE, add_provider, bond_ok,
    clear, commit_as, deal_tuple, deploy_market, events, fund, min_bond, now, open_and_commit, open_deal,
    past_deadline, reveal_as, start_audit,
)


def _jail(market, requester, provider, make_terms):
    """Fail an audited deal on lane 0 (the provider reveals a wrong result against the auditor's)."""
    deal, deal_id = start_audit(market, make_terms(lane=0), requester)
    auditor = market.audit(deal_id).seats[0]
    commit_as(market, auditor, deal_id)
    reveal_as(market, auditor, deal_id)
    past_deadline(market, deal_id)  # the provider stays silent
    market.advance(deal_id)
    assert market.jailed(provider.address)


def test_jailed_provider_other_deals_still_settle(market, requester, provider, auditors, make_terms):
    cleared = clear(market, open_and_commit(market, make_terms(lane=1), requester))
    late = make_terms(lane=2, deadline=now() + 100, expiry=now() + 50)
    open_deal(market, late, provider)
    assert market.in_flight(provider.address) == (2 * PRICE, 2)
    _jail(market, requester, provider, make_terms)
    assert market.in_flight(provider.address) == (2 * PRICE, 2)
    info = market.provider_info(provider.address)  # locked = stake - free does not underflow
    assert (info[4], info[5], market.free_stake(provider.address)) == (0, 0, 0)
    # the cleared deal finalizes: price to earnings, collateral stays forfeit, fee back to the requester
    balance = market.balance_of(requester.address)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([cleared])
    assert market.provider_info(provider.address)[8] == PRICE
    assert market.free_stake(provider.address) == 0
    assert market.balance_of(requester.address) == balance + AUDIT_FEE
    # the missed deal reclaims with no penalty and never reverts
    boa.env.time_travel(seconds=late["deadline"] - now() + 1)
    market.reclaim([deal_tuple(late)])
    (log,) = events(market, "DealReclaimed")
    assert (log.refund, log.penalty) == (PRICE + AUDIT_FEE, 0)
    assert events(market, "ProviderSlashed") == []
    assert market.balance_of(requester.address) == balance + AUDIT_FEE + PRICE + AUDIT_FEE
    assert market.provider_info(provider.address)[4:6] == (0, 0)
    assert market.in_flight(provider.address) == (0, 0)


def test_jailed_provider_cannot_stake_or_open(token, market, requester, provider, auditors, make_terms):
    _jail(market, requester, provider, make_terms)
    fund(token, market, provider.address, 10)
    with boa.env.prank(provider.address), boa.reverts("staking: jailed"):
        market.stake(10)
    with boa.reverts("deals: provider jailed"):
        open_and_commit(market, make_terms(lane=3, collateral=0), requester)
    assert market.sortition_weight(provider.address) == 0


def test_bond_rule_boundary(token, market, requester, make_terms):
    exact = min_bond(PRICE, 1)
    assert bond_ok(exact, PRICE, 1) and not bond_ok(exact - 1, PRICE, 1)
    assert market.bond_allows(exact, PRICE, 1) and not market.bond_allows(exact - 1, PRICE, 1)
    at = add_provider(token, market, 0xB1, stake=exact)
    below = add_provider(token, market, 0xB2, stake=exact - 1)
    open_deal(market, make_terms(provider=at.address, collateral=0), at)
    assert market.in_flight(at.address) == (PRICE, 1)
    with boa.reverts("deals: bond too small"):
        open_deal(market, make_terms(provider=below.address, collateral=0), below)
    # a second deal needs the bound for N = 2 and 2 * PRICE
    need = min_bond(2 * PRICE, 2)
    assert need > exact
    with boa.reverts("deals: bond too small"):
        open_deal(market, make_terms(provider=at.address, lane=1, collateral=0), at)
    fund(token, market, at.address, need - exact)
    with boa.env.prank(at.address):
        market.stake(need - exact)
    open_deal(market, make_terms(provider=at.address, lane=1, collateral=0), at)
    assert market.in_flight(at.address) == (2 * PRICE, 2)


def test_bond_rule_matches_python(market):
    for stake, value, n in ((10**9, 10**7, 1), (10**9, 10**8, 40), (123_456_789, 987_654, 7), (1, 0, 0),
                            (2**95, 2**95, 2**32 - 1), (5 * 10**8, 10**7, 300)):
        assert market.bond_allows(stake, value, n) == bond_ok(stake, value, n)
    # at the boundary the contract and verification/bond.py agree to the unit (both round the power up)
    for value, n in ((1_500_000, 1), (10**7, 2), (10**7, 3), (123_457, 10), (10**9, 57), (10**6, 1000), (7, 99)):
        need = min_bond(value, n)
        assert market.bond_allows(need, value, n) and not market.bond_allows(need - 1, value, n)


@pytest.mark.parametrize(
    "index, value, reason",
    [
        (0, 0, "staking: audit floor out of range"),
        (0, 10_001, "staking: audit floor out of range"),
        (1, 10_001, "staking: collusion out of range"),
        (2, 9_999, "staking: lambda out of range"),
        (2, 1_000_001, "staking: lambda out of range"),
        (4, 0, "audits: draw window out of range"),
        (4, 241, "audits: draw window out of range"),
        (5, 365 * 86400 + 1, "audits: period too long"),
        (6, 0, "audits: committee out of range"),
        (6, 6, "audits: committee out of range"),
    ],
)
def test_constructor_checks(token, index, value, reason):
    params = list(AUDIT_PARAMS)
    params[index] = value
    with boa.reverts(reason):
        deploy_market(token, tuple(params))


def test_parameters_are_public(market):
    assert (market.audit_floor_bps(), market.collusion_bps(), market.bond_lambda_bps(), market.beacon_delay(),
            market.draw_blocks(), market.audit_period(), market.committee_size()) == AUDIT_PARAMS
    assert market.MAX_AUDIT_ROUNDS() == 3 and market.burned() == 0

