"""draw, audit_by_default and challenge (SPEC §14.3)."""

import boa
from eth_utils import keccak

from contracts_kit import (
    AUDITED, BEACON_DELAY, CHALLENGE_WINDOW, CLEARED, COMMIT, DRAW_BLOCKS, SEED, UNDRAWN, block_number, clear,
    deal_id_of, deal_tuple, draw, events, lottery_roll, mine_to_beacon, open_and_commit, open_committed, open_deal,
    with_status,
)
from contracts_kit import deal_hash


def test_draw_clears(market, requester, provider, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    drawn = clear(market, deal)
    (log,) = events(market, "DealDrawn")
    assert (log.deal_id, log.audited, log.reason) == (deal_id_of(make_terms()), False, 0)
    assert market.lane(provider.address, 0) >> 64 == int.from_bytes(deal_hash(drawn), "big") >> 64
    assert market.audit(log.deal_id).phase == 0


def test_draw_audits_at_full_probability(market, requester, provider, auditors, make_terms):
    terms = make_terms(audit_bps=10_000)
    deal = open_and_commit(market, terms, requester)
    drawn = draw(market, deal)
    assert drawn[4] == AUDITED
    (log,) = events(market, "DealDrawn")
    assert (log.audited, log.reason) == (True, 0)
    (seat,) = events(market, "AuditorDrawn")
    view = market.audit(deal_id_of(terms))
    assert (view.phase, view.round, view.dispute, view.seats) == (COMMIT, 1, False, [seat.auditor])
    assert seat.auditor in [a.address for a in auditors]
    assert market.lane(provider.address, 0) >> 64 == int.from_bytes(deal_hash(drawn), "big") >> 64


def test_outcomes_match_the_offchain_roll(market, requester, provider, auditors, make_terms):
    """16 deals committed in one block with their own seeds: every outcome is r mod 10000 < audit_bps."""
    seeds = [keccak(b"seed-%d" % i) for i in range(16)]
    deals = [open_and_commit(market, make_terms(lane=i, audit_bps=5_000, seed_hash=keccak(s)), requester)
             for i, s in enumerate(seeds)]
    mine_to_beacon(deals[0])
    expected = [lottery_roll(d, s) < 5_000 for d, s in zip(deals, seeds)]
    assert any(expected) and not all(expected)  # both outcomes occur
    market.draw(deals, seeds)
    logs = events(market, "DealDrawn")
    assert [log.audited for log in logs] == expected
    for deal, audited in zip(deals, expected):
        stored = with_status(deal, AUDITED if audited else CLEARED)
        assert market.lane(provider.address, deal[0][2]) >> 64 == int.from_bytes(deal_hash(stored), "big") >> 64


def test_floor_probability_roll(market, requester, make_terms):
    """At the 3 % floor, the roll of the default seed on lane 0 clears; r is exactly as SPEC §14.3 defines it."""
    deal = open_and_commit(market, make_terms(), requester)
    mine_to_beacon(deal)
    assert lottery_roll(deal) >= 300
    market.draw([deal], [SEED])
    assert events(market, "DealDrawn")[0].audited is False


def test_draw_reverts(market, requester, provider, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    with boa.reverts("deals: length mismatch"):
        market.draw([deal], [])
    with boa.reverts("deals: beacon not ready"):
        market.draw([deal], [SEED])
    mine_to_beacon(deal)
    with boa.reverts("deals: bad seed"):
        market.draw([deal], [b"\1" * 32])
    with boa.reverts("deals: unknown deal"):
        market.draw([with_status(deal, CLEARED)], [SEED])
    market.draw([deal], [SEED])
    with boa.reverts("deals: already drawn"):
        market.draw([with_status(deal, CLEARED)], [SEED])
    uncommitted = make_terms(lane=1)
    open_deal(market, uncommitted, provider)
    with boa.reverts("deals: not committed"):
        market.draw([deal_tuple(uncommitted)], [SEED])


def test_draw_window_over(market, requester, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    last = deal[3] + BEACON_DELAY + DRAW_BLOCKS
    boa.env.time_travel(blocks=last - block_number(), block_delta=1)
    market.draw([deal], [SEED])  # the last accepted block
    deal2 = open_and_commit(market, make_terms(lane=1), requester)
    boa.env.time_travel(blocks=BEACON_DELAY + DRAW_BLOCKS + 1, block_delta=1)
    with boa.reverts("deals: draw window over"):
        market.draw([deal2], [SEED])


def test_audit_by_default(market, requester, auditors, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    mine_to_beacon(deal)
    with boa.reverts("deals: draw window open"):
        market.audit_by_default(deal)
    boa.env.time_travel(blocks=DRAW_BLOCKS, block_delta=1)
    market.audit_by_default(deal)
    (log,) = events(market, "DealDrawn")
    assert (log.audited, log.reason) == (True, 1)
    assert market.audit(log.deal_id).phase == COMMIT
    with boa.reverts("deals: already drawn"):
        market.audit_by_default(with_status(deal, AUDITED))


def test_audit_by_default_long_after(market, requester, auditors, make_terms):
    """Once the last draw block left the 256-block window the previous block's hash is used."""
    deal = open_and_commit(market, make_terms(), requester)
    boa.env.time_travel(blocks=1000, block_delta=1)
    market.audit_by_default(deal)
    assert events(market, "DealDrawn")[0].reason == 1


def test_audit_by_default_of_a_cleared_deal_reverts(market, requester, make_terms):
    deal = clear(market, open_and_commit(market, make_terms(), requester))
    boa.env.time_travel(blocks=DRAW_BLOCKS, block_delta=1)
    with boa.reverts("deals: already drawn"):
        market.audit_by_default(deal)


def test_challenge_a_cleared_deal(market, requester, auditors, make_terms):
    deal = clear(market, open_and_commit(market, make_terms(), requester))
    with boa.reverts("deals: not requester"):
        market.challenge(deal)
    with boa.env.prank(requester.address):
        market.challenge(deal)
        (log,) = events(market, "DealDrawn")
        assert (log.audited, log.reason) == (True, 2)
        with boa.reverts("deals: already audited"):
            market.challenge(with_status(deal, AUDITED))
    with boa.reverts("deals: audit pending"):
        boa.env.time_travel(seconds=CHALLENGE_WINDOW)
        market.finalize([with_status(deal, AUDITED)])


def test_challenge_an_undrawn_deal(market, requester, auditors, make_terms):
    deal = open_and_commit(market, make_terms(), requester)
    # the audit's randomness is the beacon block's hash: not before it exists
    with boa.env.prank(requester.address), boa.reverts("deals: beacon not ready"):
        market.challenge(deal)
    mine_to_beacon(deal)
    with boa.env.prank(requester.address):
        market.challenge(deal)
    assert market.audit(deal_id_of(make_terms())).phase == COMMIT
    assert deal[4] == UNDRAWN


def test_challenge_window_over(market, requester, make_terms):
    deal = open_committed(market, make_terms(), requester)
    boa.env.time_travel(seconds=CHALLENGE_WINDOW)
    with boa.env.prank(requester.address), boa.reverts("deals: challenge window over"):
        market.challenge(deal)
    uncommitted = make_terms(lane=1)
    sig_deal = deal_tuple(uncommitted)
    with boa.env.prank(requester.address), boa.reverts("deals: unknown deal"):
        market.challenge(sig_deal)
