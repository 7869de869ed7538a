import boa

from contracts_kit import SEAL, block_number, commit, deal_tuple, events, now, open_deal
from contracts_kit import deal_hash


def test_commit_stores_seal(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    deal = commit(market, terms)
    (log,) = events(market, "ResultCommitted")
    assert (log.seal, log.committed_at) == (SEAL, now())
    assert deal[3] == block_number() and deal[4] == 0  # committed_block, UNDRAWN
    assert market.lane(provider.address, 0) >> 64 == int.from_bytes(deal_hash(deal), "big") >> 64


def test_not_provider_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    with boa.reverts("deals: not provider"):
        market.commit_result(deal_tuple(terms), SEAL)


def test_twice_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    deal = commit(market, terms)
    with boa.env.prank(provider.address):
        with boa.reverts("deals: already committed"):
            market.commit_result(deal, SEAL)
        with boa.reverts("deals: unknown deal"):
            market.commit_result(deal_tuple(terms), SEAL)


def test_after_deadline_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    boa.env.time_travel(seconds=terms["deadline"] - now() + 1)
    with boa.reverts("deals: deadline passed"):
        commit(market, terms)


def test_empty_seal_reverts(market, provider, make_terms):
    terms = make_terms()
    open_deal(market, terms, provider)
    with boa.reverts("deals: empty seal"):
        commit(market, terms, seal=b"\0" * 32)


def test_unknown_deal_reverts(market, provider, make_terms):
    with boa.reverts("deals: unknown deal"):
        commit(market, make_terms())
