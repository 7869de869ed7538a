import boa

from contracts_kit import (
    CHALLENGE_WINDOW, COLLATERAL, PRICE, STAKE, as_tuple, deal_tuple, events, open_and_commit, open_deal,
)


def test_finalize_pays_and_frees_lane(market, requester, provider, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    (log,) = events(market, "DealFinalized")
    assert log.deal_id == market.deal_id(provider.address, 0, 1)
    assert market.lane(provider.address, 0) == 1
    assert market.free_stake(provider.address) == STAKE
    assert market.provider_info(provider.address)[8] == PRICE
    assert market.reputation(provider.address) == (1, 0, 0, PRICE)


def test_batch_of_lanes(market, requester, provider, make_terms):
    deals = [open_and_commit(market, make_terms(lane=i, jobs=100), requester) for i in range(5)]
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize(deals)
    assert market.reputation(provider.address) == (500, 0, 0, 5 * PRICE)


def test_double_finalize_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    with boa.reverts("deals: already settled"):
        market.finalize([deal])
    open_and_commit(market, make_terms(nonce=5), requester)
    with boa.reverts("deals: already settled"):
        market.finalize([deal])


def test_forged_deal_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    terms = dict(make_terms(), price=PRICE * 10)
    with boa.reverts("deals: unknown deal"):
        market.finalize([(as_tuple(terms), deal[1], deal[2])])


def test_not_committed_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    with boa.reverts("deals: not committed"):
        market.finalize([deal_tuple(terms)])


def test_window_open_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW - 1)
    with boa.reverts("deals: challenge window open"):
        market.finalize([deal])
