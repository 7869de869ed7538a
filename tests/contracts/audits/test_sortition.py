"""Stake-weighted sortition over the Fenwick tree, weights fixed per epoch (SPEC §14.4)."""

import boa
from eth_utils import keccak

from contracts_kit import (
    DEPOSIT, PRICE, SEED_HASH, add_provider, deal_id_of, events, fund, make_party, mine_to_beacon, next_epoch,
    open_and_commit,
)


def test_weights_follow_stake_from_the_next_epoch(token, market, provider, auditors):
    before = [market.sortition_weight(p.address) for p in [provider, *auditors]]
    assert before == [market.provider_info(p.address)[4] for p in [provider, *auditors]]
    with boa.env.prank(auditors[0].address):
        market.unbond(100)
    assert market.sortition_weight(auditors[0].address) == before[1]  # this epoch's draws are fixed
    next_epoch(market)
    assert market.sortition_weight(auditors[0].address) == before[1] - 100
    assert market.sortition_weight(make_party(0x999).address) == 0


MIN_MEMBER_STAKE = 10**7  # sortition._MIN_MEMBER_STAKE


def test_stake_before_register_counts(token, market):
    late = make_party(0x4242)
    fund(token, market, late.address, MIN_MEMBER_STAKE)
    with boa.env.prank(late.address):
        market.stake(MIN_MEMBER_STAKE)
    next_epoch(market)
    assert market.sortition_weight(late.address) == 0
    with boa.env.prank(late.address):
        market.register("http://late", b"\0" * 32, b"\0" * 32)
    next_epoch(market)
    assert market.sortition_weight(late.address) == MIN_MEMBER_STAKE


def test_class6_a_slot_needs_the_member_minimum_and_registrations_alone_take_none(token, market):
    """Attack class 6: registering was free and took a sortition slot for good, so 1,024 empty
    registrations locked every later provider out of auditing. Now a registration holds no slot: a
    provider takes one when its stake reaches the member minimum."""
    for i in range(40):  # empty registrations: no stake, no slot
        with boa.env.prank(make_party(0x6000 + i).address):
            market.register("http://squatter", b"\0" * 32, b"\0" * 32)
    small = make_party(0x6100)
    fund(token, market, small.address, MIN_MEMBER_STAKE)
    with boa.env.prank(small.address):
        market.register("http://small", b"\0" * 32, b"\0" * 32)
        market.stake(MIN_MEMBER_STAKE - 1)
    next_epoch(market)
    assert market.sortition_weight(small.address) == 0  # below the minimum: not drawn
    with boa.env.prank(small.address):
        market.stake(1)
    next_epoch(market)
    assert market.sortition_weight(small.address) == MIN_MEMBER_STAKE
    honest = add_provider(token, market, 0x6200, stake=10**10)
    assert market.sortition_weight(honest.address) == 10**10


def test_class6_a_member_leaving_frees_its_slot_and_the_others_keep_their_weight(token, market, make_terms):
    """A member whose stake goes to zero gives its slot back (reused once its last epoch is over); the
    weights of everyone else are unchanged, and it can come back."""
    members = [add_provider(token, market, 0x7000 + i, stake=(i + 1) * 10**9) for i in range(4)]
    with boa.env.prank(members[0].address):
        market.unbond((1) * 10**9)  # all of it
    assert market.sortition_weight(members[0].address) == 10**9  # still its interval for this epoch
    next_epoch(market)
    assert market.sortition_weight(members[0].address) == 0
    assert [market.sortition_weight(m.address) for m in members[1:]] == [2 * 10**9, 3 * 10**9, 4 * 10**9]
    # a newcomer takes the freed slot; the old member comes back on another
    newcomer = add_provider(token, market, 0x7100, stake=5 * 10**9)
    with boa.env.prank(members[0].address):
        boa.env.time_travel(seconds=60)
        market.withdraw_stake()
    fund(token, market, members[0].address, 10**9)
    with boa.env.prank(members[0].address):
        market.stake(10**9)
    next_epoch(market)
    assert market.sortition_weight(members[0].address) == 10**9
    assert market.sortition_weight(newcomer.address) == 5 * 10**9
    assert [market.sortition_weight(m.address) for m in members[1:]] == [2 * 10**9, 3 * 10**9, 4 * 10**9]


def test_draws_are_stake_weighted_and_exclude_parties(token, market):
    """64 audits, two candidate auditors staked 1:3 (the provider and a staked requester are excluded)."""
    requester = make_party(0xA11CE)
    fund(token, market, requester.address, DEPOSIT + 10**11)
    with boa.env.prank(requester.address):
        market.deposit(DEPOSIT)
        market.register("http://requester-also-provides", b"\0" * 32, b"\0" * 32)
        market.stake(10**11)  # the largest stakes: they would win most draws if not excluded
    provider = add_provider(token, market, 0xB0B, stake=10**11)
    small = add_provider(token, market, 0x5A, stake=10**10)
    large = add_provider(token, market, 0x1A, stake=3 * 10**10)
    seeds = [keccak(b"sortition-%d" % i) for i in range(32)]
    picks = []
    for batch in range(2):
        deals = []
        for i in range(32):
            t = boa.env.evm.patch.timestamp
            terms = dict(requester=requester.address, provider=provider.address, lane=batch * 32 + i, nonce=1,
                         jobs_root=b"\x33" * 32, jobs=1, price=PRICE, collateral=0, deadline=t + 3600,
                         expiry=t + 600, seed_hash=keccak(seeds[i]), audit_bps=10_000, audit_fee=0)
            deals.append(open_and_commit(market, terms, requester))
        mine_to_beacon(deals[0])
        market.draw(deals, seeds)
        drawn = events(market, "AuditorDrawn")
        assert [log.deal_id for log in drawn] == [deal_id_of(dict(provider=provider.address, lane=batch * 32 + i,
                                                                  nonce=1)) for i in range(32)]
        picks += [log.auditor for log in drawn]
    assert set(picks) <= {small.address, large.address}
    share = picks.count(small.address) / len(picks)
    assert 0.08 <= share <= 0.45, share  # expected 0.25
    assert SEED_HASH
