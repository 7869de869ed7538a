import boa

from contracts_kit import (
    AUDIT_FEE, CHALLENGE_WINDOW, DEPOSIT, PRICE, SEED, STAKE, as_tuple, clear, deal_tuple, events, open_and_commit,
    open_deal, settle,
)


def test_finalize_pays_and_frees_lane(market, requester, provider, make_terms):
    deal = clear(market, open_and_commit(market, make_terms(), requester))
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize([deal])
    (log,) = events(market, "DealFinalized")
    assert log.deal_id == market.deal_id(provider.address, 0, 1)
    assert market.lane(provider.address, 0) == 1
    assert market.free_stake(provider.address) == STAKE
    assert market.provider_info(provider.address)[8] == PRICE
    assert market.reputation(provider.address) == (1, 0, 0, PRICE)
    # a CLEARED deal gives the audit fee back; nothing is left in flight
    assert market.balance_of(requester.address) == DEPOSIT - PRICE
    assert market.in_flight(provider.address) == (0, 0, 0)


def test_batch_of_lanes(market, requester, provider, make_terms):
    deals = [open_and_commit(market, make_terms(lane=i, jobs=100), requester) for i in range(5)]
    drawn = [clear(market, d) for d in deals]
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    market.finalize(drawn)
    assert market.reputation(provider.address) == (500, 0, 0, 5 * PRICE)
    assert market.balance_of(requester.address) == DEPOSIT - 5 * PRICE


def test_double_finalize_reverts(market, requester, make_terms):
    deal = settle(market, open_and_commit(market, make_terms(), requester))
    with boa.reverts("deals: already settled"):
        market.finalize([deal])
    open_and_commit(market, make_terms(nonce=5), requester)
    with boa.reverts("deals: already settled"):
        market.finalize([deal])


def test_forged_deal_reverts(market, requester, make_terms):
    deal = clear(market, open_and_commit(market, make_terms(), requester))
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    terms = dict(make_terms(), price=PRICE * 10)
    with boa.reverts("deals: unknown deal"):
        market.finalize([(as_tuple(terms), *deal[1:])])


def test_not_committed_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    with boa.reverts("deals: not committed"):
        market.finalize([deal_tuple(terms)])


def test_not_drawn_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    with boa.reverts("deals: not drawn"):
        market.finalize([deal])


def test_window_open_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    # the draw itself takes beacon_delay + 1 blocks (one second each here)
    deal = clear(market, deal, SEED)
    with boa.reverts("deals: challenge window open"):
        market.finalize([deal])


def test_audit_fee_zero_is_fine(market, requester, make_terms):
    settle(market, open_and_commit(market, make_terms(audit_fee=0), requester))
    assert market.balance_of(requester.address) == DEPOSIT - PRICE
    assert AUDIT_FEE != 0
