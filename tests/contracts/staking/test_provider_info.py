from contracts_kit import COLLATERAL, STAKE, make_party, open_deal


def test_provider_info_and_free_stake(market, provider, make_terms):
    open_deal(market, make_terms(), provider)
    info = market.provider_info(provider.address)
    assert info[0] is True
    assert info[1] == "https://provider.example:7070"
    assert (info[4], info[5], info[6], info[7], info[8]) == (STAKE, COLLATERAL, 0, 0, 0)
    assert market.free_stake(provider.address) == STAKE - COLLATERAL


def test_unknown_provider(market):
    info = market.provider_info(make_party(77).address)
    assert info[0] is False and info[4] == 0
    assert market.reputation(make_party(77).address) == (0, 0, 0, 0)
