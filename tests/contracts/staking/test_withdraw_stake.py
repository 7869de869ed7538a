import boa

from contracts_kit import STAKE, UNBOND_DELAY, events


def test_withdraw_after_delay(token, market, provider):
    with boa.env.prank(provider.address):
        market.unbond(100)
        boa.env.time_travel(seconds=UNBOND_DELAY)
        market.withdraw_stake()
        (log,) = events(market, "StakeWithdrawn")
    assert log.amount == 100
    assert token.balanceOf(provider.address) == 100
    assert market.provider_info(provider.address)[4] == STAKE - 100


def test_nothing_unbonding_reverts(market, provider):
    with boa.env.prank(provider.address), boa.reverts("staking: nothing unbonding"):
        market.withdraw_stake()


def test_not_ready_reverts(market, provider):
    with boa.env.prank(provider.address):
        market.unbond(100)
        boa.env.time_travel(seconds=UNBOND_DELAY - 1)
        with boa.reverts("staking: unbond not ready"):
            market.withdraw_stake()
