from contracts_kit import COLLATERAL, STAKE, make_party, open_deal


def test_free_stake_falls_by_locked_collateral(market, provider, make_terms):
    assert market.free_stake(provider.address) == STAKE
    open_deal(market, make_terms(), provider)
    assert market.free_stake(provider.address) == STAKE - COLLATERAL
    open_deal(market, make_terms(lane=1), provider)
    assert market.free_stake(provider.address) == STAKE - 2 * COLLATERAL


def test_free_stake_of_an_unregistered_account_is_zero(market):
    assert market.free_stake(make_party(43).address) == 0
