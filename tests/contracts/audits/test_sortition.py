"""Stake-weighted sortition over the Fenwick tree (SPEC §14.4)."""

import boa
from eth_utils import keccak

from contracts_kit import (
    DEPOSIT, PRICE, SEED_HASH, add_provider, deal_id_of, events, fund, make_party, mine_to_beacon, open_and_commit,
)


def test_weights_follow_stake(token, market, provider, auditors):
    total = market.sortition_total()
    assert total == sum(market.sortition_weight(p.address) for p in [provider, *auditors])
    with boa.env.prank(auditors[0].address):
        market.unbond(100)
    assert market.sortition_total() == total - 100
    assert market.sortition_weight(make_party(0x999).address) == 0


def test_stake_before_register_counts(token, market):
    late = make_party(0x4242)
    fund(token, market, late.address, 500)
    with boa.env.prank(late.address):
        market.stake(500)
        assert market.sortition_weight(late.address) == 0
        market.register("http://late", b"\0" * 32, b"\0" * 32)
    assert market.sortition_weight(late.address) == 500


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
