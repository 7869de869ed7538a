import boa

from contracts_kit import AUDIT_FEE, COLLATERAL, DEPOSIT, MISS_PENALTY_BPS, PRICE, STAKE, deal_tuple, events, now, open_and_commit, open_deal


def test_reclaim_refunds_and_penalizes(market, requester, provider, make_terms):
    terms = make_terms(jobs=3)
    open_deal(market, terms, provider)
    boa.env.time_travel(seconds=terms["deadline"] - now() + 1)
    market.reclaim([deal_tuple(terms)])
    penalty = COLLATERAL * MISS_PENALTY_BPS // 10_000
    (log,) = events(market, "DealReclaimed")
    (slash,) = events(market, "ProviderSlashed")
    # the refund is price + audit fee; the penalty is burned, not paid to the requester (attack class 3: a
    # requester that opens at the expiry or withholds the inputs forces the miss, and must not profit from it)
    zero = "0x" + "00" * 20
    assert (log.refund, log.penalty, slash.amount, slash.to) == (PRICE + AUDIT_FEE, penalty, penalty, zero)
    assert market.in_flight(provider.address) == (0, 0, 0)
    assert market.balance_of(requester.address) == DEPOSIT
    assert market.burned() == penalty
    assert market.provider_info(provider.address)[4] == STAKE - penalty
    assert market.free_stake(provider.address) == STAKE - penalty
    assert market.reputation(provider.address) == (0, 3, 1, 0)
    assert market.lane(provider.address, 0) == 1
    with boa.reverts("deals: already settled"):
        market.reclaim([deal_tuple(terms)])


def test_before_deadline_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    boa.env.time_travel(seconds=terms["deadline"] - now())
    with boa.reverts("deals: deadline not passed"):
        market.reclaim([deal_tuple(terms)])


def test_committed_reverts(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    with boa.reverts("deals: already committed"):
        market.reclaim([deal])


def test_unknown_reverts(market, make_terms):
    with boa.reverts("deals: unknown deal"):
        market.reclaim([deal_tuple(make_terms())])


def test_missed_counter_saturates_without_touching_registration(market, provider, make_terms):
    # missed is 30 bits, just below the jailed and registered bits in the provider's work word
    terms = make_terms(jobs=2**40)
    open_deal(market, terms, provider)
    boa.env.time_travel(seconds=terms["deadline"] - now() + 1)
    market.reclaim([deal_tuple(terms)])
    assert market.reputation(provider.address)[1] == 2**30 - 1
    assert market.provider_info(provider.address)[0] is True
    assert market.jailed(provider.address) is False
    penalty = COLLATERAL * MISS_PENALTY_BPS // 10_000
    assert market.free_stake(provider.address) == STAKE - penalty
    open_deal(market, make_terms(nonce=2), provider)  # still registered, still lockable
