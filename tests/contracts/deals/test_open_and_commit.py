import boa

from contracts_kit import AUDIT_FEE, DEPOSIT, PRICE, SEAL, as_tuple, block_number, deal_tuple, events, make_party, now, open_and_commit, sign
from contracts_kit import deal_hash


def test_opens_and_commits(market, requester, provider, make_terms):
    terms = make_terms()
    sig = sign(market, "Acceptance", terms, requester.key)
    with boa.env.prank(provider.address):
        deal_id = market.open_and_commit(as_tuple(terms), sig, SEAL)
    # one transition, one event: DealOpened carries the seal; committed_at is the block time
    (opened,) = events(market, "DealOpened")
    assert events(market, "ResultCommitted") == []
    assert opened.deal_id == deal_id == market.deal_id(provider.address, 0, 1)
    assert (opened.requester, opened.provider, opened.lane, opened.nonce, opened.jobs_root, opened.jobs,
            opened.price, opened.collateral, opened.deadline, opened.expiry, opened.seed_hash, opened.audit_bps,
            opened.audit_fee, opened.seal) == (
        *as_tuple(terms)[:4], terms["jobs_root"], *as_tuple(terms)[5:], SEAL)
    assert market.balance_of(requester.address) == DEPOSIT - PRICE - AUDIT_FEE
    # committed at this block: the lottery's beacon is committed_block + beacon_delay
    full = deal_hash(deal_tuple(terms, SEAL, now(), block_number()))
    assert market.lane(provider.address, 0) >> 64 == int.from_bytes(full, "big") >> 64


def test_not_provider_reverts(market, requester, make_terms):
    terms = make_terms()
    sig = sign(market, "Acceptance", terms, requester.key)
    with boa.env.prank(requester.address), boa.reverts("deals: not provider"):
        market.open_and_commit(as_tuple(terms), sig, SEAL)


def test_expired_acceptance_reverts(market, requester, make_terms):
    terms = make_terms(expiry=now() + 5)
    boa.env.time_travel(seconds=6)
    with boa.reverts("deals: acceptance expired"):
        open_and_commit(market, terms, requester)


def test_empty_seal_reverts(market, requester, make_terms):
    with boa.reverts("deals: empty seal"):
        open_and_commit(market, make_terms(), requester, seal=b"\0" * 32)


def test_wrong_signature_reverts(market, provider, make_terms):
    terms = make_terms()
    sig = sign(market, "Acceptance", terms, make_party(0xBAD).key)
    with boa.env.prank(provider.address), boa.reverts("deals: bad signature"):
        market.open_and_commit(as_tuple(terms), sig, SEAL)


def test_unfunded_requester_reverts(market, requester, make_terms):
    with boa.reverts("deals: requester unfunded"):
        open_and_commit(market, make_terms(price=DEPOSIT + 1), requester)


def test_lane_busy_reverts(market, requester, make_terms):
    open_and_commit(market, make_terms(), requester)
    with boa.reverts("deals: lane busy"):
        open_and_commit(market, make_terms(nonce=2), requester)
