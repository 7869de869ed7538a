"""Jailing (SPEC §14.5), the bond rule (§14.6) and the audit parameters (§14.1)."""

import boa
import pytest

from mercato.verification.bond import code_price, price_code

from contracts_kit import (
    AUDIT_FEE, AUDIT_PARAMS, BOND_RULE_DEPLOYER, CHALLENGE_WINDOW, PRICE, STAKE, add_provider, bond_ok,
    clear, commit_as, deal_tuple, deploy_market, events, fund, min_bond, now, open_and_commit, open_deal,
    next_epoch, past_deadline, reveal_as, start_audit,
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


def test_jailed_provider_other_deals_settle_without_paying_it(market, requester, provider, auditors, make_terms):
    """Jail means stop: the deals a provider proven wrong still has open settle, but an unaudited one pays
    it nothing (price and fee back to the requester), and a missed one never reverts."""
    cleared = clear(market, open_and_commit(market, make_terms(lane=1), requester))
    late = make_terms(lane=2, deadline=now() + 100, expiry=now() + 50)
    open_deal(market, late, provider)
    assert market.in_flight(provider.address) == (2 * PRICE, 2, PRICE)
    _jail(market, requester, provider, make_terms)
    assert market.in_flight(provider.address) == (2 * PRICE, 2, PRICE)
    info = market.provider_info(provider.address)  # locked = stake - free does not underflow
    assert (info[4], info[5], market.free_stake(provider.address)) == (0, 0, 0)
    # the cleared deal finalizes, but unaudited work of a provider proven wrong is not paid: the price and
    # the fee go back to the requester, collateral stays forfeit
    balance = market.balance_of(requester.address)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([cleared])
    assert events(market, "DealFinalized")
    assert market.provider_info(provider.address)[8] == 0
    assert market.reputation(provider.address)[3] == 0  # no volume either
    assert market.free_stake(provider.address) == 0
    assert market.balance_of(requester.address) == balance + PRICE + AUDIT_FEE
    # the missed deal reclaims with no penalty and never reverts
    boa.env.time_travel(seconds=late["deadline"] - now() + 1)
    market.reclaim([deal_tuple(late)])
    (log,) = events(market, "DealReclaimed")
    assert (log.refund, log.penalty) == (PRICE + AUDIT_FEE, 0)
    assert events(market, "ProviderSlashed") == []
    assert market.balance_of(requester.address) == balance + PRICE + AUDIT_FEE + PRICE + AUDIT_FEE
    assert market.provider_info(provider.address)[4:6] == (0, 0)
    assert market.in_flight(provider.address) == (0, 0, 0)


def test_earnings_unclaimed_at_jailing_are_forfeited(token, market, requester, provider, auditors, make_terms):
    """A provider paid for earlier deals and then proven wrong claims nothing more: its unclaimed earnings
    join the forfeited pool (split like its stake), and the market's books still balance."""
    earlier = clear(market, open_and_commit(market, make_terms(lane=1), requester))
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([earlier])
    assert market.provider_info(provider.address)[8] == PRICE
    held = token.balanceOf(market.address)
    _jail(market, requester, provider, make_terms)
    pool = STAKE + PRICE  # its whole stake and its unclaimed earnings
    assert market.burned() == pool - pool // 2 - pool // 4
    assert market.provider_info(provider.address)[8] == 0
    with boa.env.prank(provider.address), boa.reverts("staking: no earnings"):
        market.claim_earnings()
    assert token.balanceOf(market.address) == held  # moved between accounts and burned, nothing left the market


def test_jailed_provider_cannot_stake_or_open(token, market, requester, provider, auditors, make_terms):
    _jail(market, requester, provider, make_terms)
    fund(token, market, provider.address, 10)
    with boa.env.prank(provider.address), boa.reverts("staking: jailed"):
        market.stake(10)
    with boa.reverts("deals: provider jailed"):
        open_and_commit(market, make_terms(lane=3, collateral=0), requester)
    next_epoch(market)
    assert market.sortition_weight(provider.address) == 0


def test_bond_rule_boundary(token, market, requester, make_terms):
    exact = min_bond(PRICE, 1)
    assert bond_ok(exact, PRICE, 1) and not bond_ok(exact - 1, PRICE, 1)
    rule = bond_rule()
    assert rule.bond_allows(exact, PRICE, 1) and not rule.bond_allows(exact - 1, PRICE, 1)
    at = add_provider(token, market, 0xB1, stake=exact)
    below = add_provider(token, market, 0xB2, stake=exact - 1)
    open_deal(market, make_terms(provider=at.address, collateral=0), at)
    assert market.in_flight(at.address) == (PRICE, 1, PRICE)
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
    assert market.in_flight(at.address) == (2 * PRICE, 2, PRICE)


def bond_rule():
    """The staking module's bond rule on its own (contracts/mocks/bond_rule.vy), with the market's parameters."""
    return BOND_RULE_DEPLOYER.deploy(*AUDIT_PARAMS[:3])


def test_bond_rule_matches_python():
    market = bond_rule()
    for stake, value, n in ((10**9, 10**7, 1), (10**9, 10**8, 40), (123_456_789, 987_654, 7), (1, 0, 0),
                            (2**95, 2**95, 2**32 - 1), (5 * 10**8, 10**7, 300)):
        assert market.bond_allows(stake, value, n) == bond_ok(stake, value, n)
    # at the boundary the contract and verification/bond.py agree to the unit (both round the power up)
    for value, n in ((1_500_000, 1), (10**7, 2), (10**7, 3), (123_457, 10), (10**9, 57), (10**6, 1000), (7, 99)):
        need = min_bond(value, n)
        assert market.bond_allows(need, value, n) and not market.bond_allows(need - 1, value, n)


def test_largest_price_code_matches_python():
    """The 32-bit code of the largest price in flight (attack class 4's m): the contract and
    verification/bond.py agree to the unit, and the code never stands for less than the price."""
    market = bond_rule()
    prices = [0, 1, 2 * 10**6, 2**24 - 1, 2**24, 2**24 + 1, 2**25 - 1, 2**25 + 3, 10**18, 123_456_789_012_345,
              2**95 + 12_345, 2**96 - 1]
    prices += [(0x9E3779B97F4A7C15 * i) % 2**96 for i in range(1, 60)]
    for price in prices:
        code = market.price_code(price)
        assert code == price_code(price)
        assert code < 2**32 and price <= code_price(code)
        assert (code_price(code) - price) * 2**23 <= price  # rounded up by less than 2**-23 of the price


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
        (7, 0, "audits: epoch out of range"),
        (7, 257, "audits: epoch out of range"),
    ],
)
def test_constructor_checks(token, index, value, reason):
    params = list(AUDIT_PARAMS)
    params[index] = value
    with boa.reverts(reason):
        deploy_market(token, tuple(params))


def test_parameters_are_public(market):
    assert (market.audit_floor_bps(), market.collusion_bps(), market.bond_lambda_bps(), market.beacon_delay(),
            market.draw_blocks(), market.audit_period(), market.committee_size(), market.epoch_blocks()) == AUDIT_PARAMS
    assert market.MAX_AUDIT_ROUNDS() == 3 and market.burned() == 0

