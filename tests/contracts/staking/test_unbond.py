import boa

from contracts_kit import COLLATERAL, PRICE, STAKE, UNBOND_DELAY, events, min_bond, next_epoch, now, open_deal


def test_unbond_moves_free_stake(market, provider):
    with boa.env.prank(provider.address):
        market.unbond(100)
        (log,) = events(market, "Unbonded")
        assert (log.amount, log.unbonding, log.ready_at) == (100, 100, now() + UNBOND_DELAY)
        boa.env.time_travel(seconds=10)
        market.unbond(50)
    info = market.provider_info(provider.address)
    assert (info[4], info[6], info[7]) == (STAKE - 150, 150, now() + UNBOND_DELAY)
    assert market.sortition_weight(provider.address) == STAKE  # fixed for this epoch's draws
    next_epoch(market)
    assert market.sortition_weight(provider.address) == STAKE - 150


def test_zero_reverts(market, provider):
    with boa.env.prank(provider.address), boa.reverts("staking: zero amount"):
        market.unbond(0)


def test_locked_stake_cannot_unbond(market, provider, make_terms):
    open_deal(market, make_terms(), provider)
    with boa.env.prank(provider.address), boa.reverts("staking: insufficient free stake"):
        market.unbond(STAKE - COLLATERAL + 1)


def test_bond_rule_limits_unbond(market, provider, make_terms):
    # one deal in flight: the stake left must still carry it (boundary exact)
    open_deal(market, make_terms(), provider)
    keep = min_bond(PRICE, 1)
    assert COLLATERAL < keep < STAKE
    with boa.env.prank(provider.address):
        with boa.reverts("staking: bond in use"):
            market.unbond(STAKE - keep + 1)
        market.unbond(STAKE - keep)
    assert market.provider_info(provider.address)[4] == keep
