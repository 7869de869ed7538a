import boa
import pytest

from contracts_kit import (
    AUDIT_FEE, COLLATERAL, DEPOSIT, PRICE, SEED_HASH, STAKE, as_tuple, commit, deal_tuple, events, make_party, now,
    open_deal, settle, sign,
)
from contracts_kit import deal_hash


def test_open_escrows_price_and_locks_collateral(market, requester, provider, make_terms):
    terms = make_terms()
    deal_id = open_deal(market, terms, provider)
    (log,) = events(market, "DealOpened")
    assert log.deal_id == deal_id == market.deal_id(provider.address, 0, 1)
    assert (log.requester, log.provider, log.lane, log.nonce, log.jobs, log.price, log.collateral) == (
        requester.address, provider.address, 0, 1, 1, PRICE, COLLATERAL)
    assert (log.seed_hash, log.audit_bps, log.audit_fee) == (SEED_HASH, 300, AUDIT_FEE)
    assert log.seal == b"\0" * 32  # opened without a commit
    # price and audit fee are escrowed; the price counts as value in flight
    assert market.balance_of(requester.address) == DEPOSIT - PRICE - AUDIT_FEE
    assert market.free_stake(provider.address) == STAKE - COLLATERAL
    assert market.in_flight(provider.address) == (PRICE, 1, PRICE)
    stored = deal_hash(deal_tuple(terms))
    assert market.lane(provider.address, 0) == (int.from_bytes(stored, "big") & ~(2**64 - 1)) | 1


def test_not_requester_reverts(market, provider, make_terms):
    terms = make_terms()
    sig = sign(market, "Bid", terms, provider.key)
    with boa.reverts("deals: not requester"):
        market.open_deal(as_tuple(terms), sig)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"jobs": 0}, "deals: no jobs"),
        ({"expiry": 10**10, "deadline": 10**10 - 1}, "deals: expiry after deadline"),
        ({"nonce": 2**64}, "deals: nonce out of range"),
        ({"price": 2**96}, "deals: amount out of range"),
        ({"seed_hash": b"\0" * 32}, "deals: no seed"),
        ({"audit_bps": 299}, "deals: audit probability out of range"),
        ({"audit_bps": 10_001}, "deals: audit probability out of range"),
        ({"audit_fee": 2**96}, "deals: amount out of range"),
        ({"price": DEPOSIT + 1}, "deals: requester unfunded"),
        ({"price": DEPOSIT - AUDIT_FEE + 1}, "deals: requester unfunded"),
        ({"collateral": STAKE + 1}, "deals: insufficient free stake"),
    ],
)
def test_bad_terms_revert(market, provider, make_terms, overrides, reason):
    with boa.reverts(reason):
        open_deal(market, make_terms(**overrides), provider)


def test_expired_bid_reverts(market, provider, make_terms):
    terms = make_terms(expiry=now() + 10)
    boa.env.time_travel(seconds=11)
    with boa.reverts("deals: bid expired"):
        open_deal(market, terms, provider)


def test_wrong_signature_reverts(market, requester, provider, make_terms):
    terms = make_terms()
    stranger = make_party(0xBAD)
    with boa.env.prank(requester.address):
        for sig in (
            sign(market, "Bid", terms, stranger.key),  # someone else
            sign(market, "Acceptance", terms, provider.key),  # wrong type
            sign(market, "Bid", terms, provider.key)[:64],  # short
        ):
            with boa.reverts("deals: bad signature"):
                market.open_deal(as_tuple(terms), sig)


def test_high_s_and_bad_v_rejected(market, requester, provider, make_terms):
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    terms = make_terms()
    sig = sign(market, "Bid", terms, provider.key)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (n - s).to_bytes(32, "big") + bytes([55 - v])  # same signer, high s
    with boa.env.prank(requester.address):
        for bad in (twin, sig[:64] + bytes([v - 27])):
            with boa.reverts("deals: bad signature"):
                market.open_deal(as_tuple(terms), bad)


def test_lane_busy_and_replay(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    with boa.reverts("deals: lane busy"):
        open_deal(market, terms, provider)
    settle(market, commit(market, terms))
    with boa.reverts("deals: bid replayed"):
        open_deal(market, terms, provider)
    open_deal(market, make_terms(nonce=2), provider)


def test_unregistered_provider_reverts(token, market, requester, make_terms):
    ghost = make_party(0x6057)
    with boa.reverts("deals: provider not registered"):
        open_deal(market, make_terms(provider=ghost.address), ghost)


def test_unstaked_provider_reverts(market, requester, make_terms):
    lazy = make_party(0x1A2)
    with boa.env.prank(lazy.address):
        market.register("http://lazy", b"\0" * 32, b"\0" * 32)
    with boa.reverts("deals: insufficient free stake"):
        open_deal(market, make_terms(provider=lazy.address), lazy)
