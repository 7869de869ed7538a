import boa

from contracts_kit import PRICE, events, open_and_commit, settle


def test_claim_pays_earnings_once(token, market, requester, provider, make_terms):
    settle(market, open_and_commit(market, make_terms(), requester))
    assert market.provider_info(provider.address)[8] == PRICE
    with boa.env.prank(provider.address):
        market.claim_earnings()
        (log,) = events(market, "EarningsClaimed")
        assert log.amount == PRICE
        assert token.balanceOf(provider.address) == PRICE
        with boa.reverts("staking: no earnings"):
            market.claim_earnings()
    assert market.reputation(provider.address)[3] == PRICE


def test_nothing_earned_reverts(market, provider):
    with boa.env.prank(provider.address), boa.reverts("staking: no earnings"):
        market.claim_earnings()
