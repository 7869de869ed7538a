import boa

from contracts_kit import PRICE, deal_tuple, make_party, open_and_commit, open_deal, settle


def test_reputation_counts_completed_jobs_and_volume(market, requester, provider, make_terms):
    assert market.reputation(provider.address) == (0, 0, 0, 0)
    settle(market, open_and_commit(market, make_terms(jobs=3), requester))
    assert market.reputation(provider.address) == (3, 0, 0, PRICE)


def test_reputation_counts_missed_and_slashed(market, provider, make_terms):
    terms = make_terms(jobs=2)
    open_deal(market, terms, provider)
    boa.env.time_travel(seconds=terms["deadline"] - boa.env.evm.patch.timestamp + 1)
    market.reclaim([deal_tuple(terms)])
    assert market.reputation(provider.address) == (0, 2, 1, 0)


def test_reputation_of_a_stranger_is_zero(market):
    assert market.reputation(make_party(44).address) == (0, 0, 0, 0)
