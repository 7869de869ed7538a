import boa

from contracts_kit import STAKE, events, fund, make_party


def test_stake_adds_and_pulls(token, market, provider):
    fund(token, market, provider.address, 5)
    with boa.env.prank(provider.address):
        market.stake(5)
    (log,) = events(market, "Staked")
    assert (log.amount, log.stake) == (5, STAKE + 5)
    assert market.free_stake(provider.address) == STAKE + 5


def test_zero_reverts(market):
    with boa.reverts("staking: zero amount"):
        market.stake(0)


def test_above_uint96_reverts(token, market):
    whale = make_party(12)
    fund(token, market, whale.address, 2**96)
    with boa.env.prank(whale.address), boa.reverts("staking: amount too large"):
        market.stake(2**96)
