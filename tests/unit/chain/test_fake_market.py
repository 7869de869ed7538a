"""The in-memory fake runs the same scenarios as anvil (tests/integration/chain)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chain_scenarios import (
    AUDIT_FEE,
    KEYS,
    PRICE,
    SEAL,
    SEED,
    Parties,
    acceptance_batch,
    bid_lifecycle,
    escrow_and_stake,
    reclaim_missed,
    terms,
    typed_reverts,
)

from mercato import errors as e
from mercato.chain import MAX_BATCH, FakeLedger, FakeMarket, MarketApi
from mercato.chain.api import AUDIT_PASSED
from mercato.chain.market import chunks
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, ZERO32, Deal
from mercato.verification.lottery import is_audited, lottery_value


@pytest.fixture
def parties(ledger: FakeLedger, requester: MarketApi, provider: MarketApi) -> Parties:
    return Parties(requester, provider, ledger.client(KEYS["requester3"]), ledger.client(KEYS["provider5"]),
                   ledger.advance)


def test_fake_implements_the_protocol(requester: MarketApi) -> None:
    assert isinstance(requester, MarketApi)


def test_bid_lifecycle(parties: Parties) -> None:
    bid_lifecycle(parties, lane=0)


def test_acceptance_batch(parties: Parties) -> None:
    acceptance_batch(parties, lane=10)


def test_reclaim_missed(parties: Parties) -> None:
    reclaim_missed(parties, lane=20)


def test_typed_reverts(parties: Parties) -> None:
    typed_reverts(parties, lane=30)


def test_escrow_and_stake(parties: Parties) -> None:
    escrow_and_stake(parties)


def test_failed_batch_changes_nothing(ledger: FakeLedger, parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    t = terms(parties, 40)
    done = v.open_and_commit(t, r.sign_acceptance(t), SEAL).deal
    ledger.advance(6)
    snapshot = ledger.snapshot()
    with pytest.raises(Exception):
        v.finalize([done, done])  # the second is already settled: all or nothing
    assert ledger.snapshot() == snapshot


def test_batch_bound_matches_the_contract(parties: Parties) -> None:
    source = (Path(__file__).resolve().parents[3] / "contracts" / "modules" / "deals.vy").read_text()
    bound = re.search(r"_MAX_BATCH: constant\(uint256\) = (\d+)", source)
    assert bound and int(bound.group(1)) == MAX_BATCH
    with pytest.raises(ValueError, match="split the batch"):
        parties.requester.finalize([None] * (MAX_BATCH + 1))  # type: ignore[list-item]
    assert [len(c) for c in chunks(list(range(70)))] == [32, 32, 6]  # type: ignore[arg-type]


# the lottery (docs/SPEC.md §14.3) ------------------------------------------------------------

def _committed(parties: Parties, lane: int, **kw: object) -> Deal:
    r, v = parties.requester, parties.provider
    t = terms(parties, lane, **kw)  # type: ignore[arg-type]
    return v.open_and_commit(t, r.sign_acceptance(t), SEAL).deal


def _expected(ledger: FakeLedger, deal: Deal, seed: bytes = SEED) -> int:
    """The lottery's verdict, computed with the verification library, not the fake."""
    beacon = ledger.beacon(deal.committed_block + ledger.beacon_delay)
    return AUDITED if is_audited(lottery_value(seed, beacon, deal.deal_id), deal.terms.audit_bps) else CLEARED


def test_parameters_and_blocks(ledger: FakeLedger, requester: FakeMarket) -> None:
    assert requester.parameters() == {"challenge_window": 5, "unbond_delay": 60, "withdrawal_delay": 30,
                                      "miss_penalty_bps": 5000, "audit_floor_bps": 300, "beacon_delay": 2,
                                      "draw_blocks": 200}
    head, now = requester.block_number(), requester.now()
    ledger.advance(10, blocks=7)
    assert requester.block_number() == head + 7 and requester.now() == now + 10
    ledger.advance(0)
    assert requester.block_number() == head + 8  # one block by default
    tx = requester.deposit(1)
    assert tx.block_number == requester.block_number() == head + 9  # a write mines one block


def test_open_escrows_price_plus_fee_and_checks_the_verification_terms(ledger: FakeLedger,
                                                                       parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    t = terms(parties, 50, audit_fee=3 * 10**6)
    before = r.balance_of()
    r.open_deal(t, v.sign_bid(t))
    assert r.balance_of() == before - t.price - 3 * 10**6 == before - t.escrow
    poor = ledger.client(KEYS["requester2"])
    poor.deposit(PRICE)  # the price but not the fee
    short = terms(parties, 51, requester=poor)
    with pytest.raises(e.RequesterUnfunded):
        poor.open_deal(short, v.sign_bid(short))
    for bad, reason in (({"seed_hash": ZERO32}, "deals: no seed"),
                        ({"audit_bps": 299}, "deals: audit probability out of range"),
                        ({"audit_bps": 10_001}, "deals: audit probability out of range"),
                        ({"audit_fee": 2**96}, "deals: amount out of range")):
        bt = terms(parties, 52, **bad)  # type: ignore[arg-type]
        with pytest.raises(e.InvalidTerms, match=reason):
            r.open_deal(bt, v.sign_bid(bt))
        with pytest.raises(e.InvalidTerms, match=reason):
            v.open_and_commit(bt, r.sign_acceptance(bt), SEAL)
    edge = terms(parties, 53, audit_bps=10_000)  # the bounds themselves are fine
    assert r.open_deal(edge, v.sign_bid(edge)).deal.terms.audit_bps == 10_000


def test_commit_records_its_block(ledger: FakeLedger, parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    t = terms(parties, 54)
    opened = r.open_deal(t, v.sign_bid(t))
    ledger.advance(1, blocks=5)
    done = v.commit_result(opened.deal, SEAL)
    assert done.deal.committed_block == done.tx.block_number == ledger.block
    assert done.deal.committed_at == done.tx.timestamp and done.deal.status == UNDRAWN
    assert v.lane(v.address, 54).deal_hash_prefix == int.from_bytes(done.deal.hash, "big") >> 64


def test_draw_waits_for_the_beacon_and_follows_the_lottery(ledger: FakeLedger, parties: Parties) -> None:
    v = parties.provider
    deal = _committed(parties, 60)
    # the draw lands in the next block, which must come after block committed_block + k
    assert ledger.block == deal.committed_block
    ledger.advance(0, blocks=ledger.beacon_delay - 1)
    with pytest.raises(e.LotteryError, match="deals: beacon not ready"):
        v.draw([deal], [SEED])
    ledger.advance(0)
    (dt,) = v.draw([deal], [SEED])
    assert dt.tx.block_number == deal.committed_block + ledger.beacon_delay + 1
    assert dt.deal == deal.with_status(_expected(ledger, deal))
    assert dt.tx.events_named("DealDrawn")[0].args == {"deal_id": deal.deal_id,
                                                       "audited": dt.deal.status == AUDITED, "reason": 0}
    assert v.lane(v.address, 60).deal_hash_prefix == int.from_bytes(dt.deal.hash, "big") >> 64
    with pytest.raises(e.UnknownDeal):  # the lane stores the drawn record now
        v.draw([deal], [SEED])
    with pytest.raises(e.LotteryError, match="deals: already drawn"):
        v.draw([dt.deal], [SEED])


def test_draw_outcomes_follow_audit_bps(ledger: FakeLedger, parties: Parties) -> None:
    always = _committed(parties, 61, audit_bps=10_000)
    floor = [_committed(parties, 62 + i) for i in range(8)]
    ledger.advance(0, blocks=ledger.beacon_delay)
    done = [dt.deal for dt in parties.requester.draw([always, *floor], [SEED] * 9)]  # anyone may draw
    assert done[0].status == AUDITED
    assert [d.status for d in done[1:]] == [_expected(ledger, d) for d in floor]
    assert CLEARED in {d.status for d in done[1:]}


def test_draw_is_a_batch_all_or_nothing(ledger: FakeLedger, parties: Parties) -> None:
    v = parties.provider
    a, b = _committed(parties, 70), _committed(parties, 71)
    ledger.advance(0, blocks=ledger.beacon_delay)
    snapshot = ledger.snapshot()
    with pytest.raises(e.LotteryError, match="deals: bad seed"):
        v.draw([a, b], [SEED, b"\x01" * 32])
    with pytest.raises(e.LotteryError, match="deals: length mismatch"):
        v.draw([a, b], [SEED])
    assert ledger.snapshot() == snapshot  # the good first deal was not drawn either
    t = terms(parties, 72)
    uncommitted = parties.requester.open_deal(t, v.sign_bid(t)).deal
    with pytest.raises(e.NotCommitted):
        v.draw([a, uncommitted], [SEED, SEED])
    with pytest.raises(ValueError, match="split the batch"):
        v.draw([a] * (MAX_BATCH + 1), [SEED] * (MAX_BATCH + 1))
    assert len(v.draw([a, b], [SEED, SEED])) == 2


def test_draw_window_then_audit_by_default(ledger: FakeLedger, parties: Parties) -> None:
    v = parties.provider
    deal = _committed(parties, 80)
    last = deal.committed_block + ledger.beacon_delay + ledger.draw_blocks
    with pytest.raises(e.LotteryError, match="deals: draw window open"):
        parties.stranger.audit_by_default(deal)
    ledger.advance(0, blocks=last - 1 - ledger.block)  # the next block is the window's last
    with pytest.raises(e.LotteryError, match="deals: draw window open"):
        v.audit_by_default(deal)
    snapshot = ledger.snapshot()
    assert v.draw([deal], [SEED])[0].deal.status in (CLEARED, AUDITED)  # still in time
    ledger.restore(snapshot)
    ledger.advance(0)
    with pytest.raises(e.LotteryError, match="deals: draw window over"):
        v.draw([deal], [SEED])
    dt = parties.stranger.audit_by_default(deal)  # anyone
    assert dt.deal == deal.with_status(AUDITED)
    assert dt.tx.events_named("DealDrawn")[0].args == {"deal_id": deal.deal_id, "audited": True, "reason": 1}
    assert v.lane(v.address, 80).deal_hash_prefix == int.from_bytes(dt.deal.hash, "big") >> 64
    with pytest.raises(e.LotteryError, match="deals: already drawn"):
        v.audit_by_default(dt.deal)
    uncommitted_t = terms(parties, 81)
    uncommitted = parties.requester.open_deal(uncommitted_t, v.sign_bid(uncommitted_t)).deal
    with pytest.raises(e.NotCommitted):
        v.audit_by_default(uncommitted)


def test_challenge(ledger: FakeLedger, parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    deal = _committed(parties, 90)
    with pytest.raises(e.NotAuthorized):
        v.challenge(deal)  # only the requester
    dt = r.challenge(deal)  # an undrawn deal
    assert dt.deal == deal.with_status(AUDITED)
    assert dt.tx.events_named("DealDrawn")[0].args == {"deal_id": deal.deal_id, "audited": True, "reason": 2}
    with pytest.raises(e.LotteryError, match="deals: already audited"):
        r.challenge(dt.deal)
    with pytest.raises(e.LotteryError, match="deals: already drawn"):
        v.draw([dt.deal], [SEED])
    cleared = next(d for d in (_committed(parties, 91 + i) for i in range(8)) if _expected(ledger, d) == CLEARED)
    ledger.advance(0, blocks=ledger.beacon_delay)
    cleared = v.draw([cleared], [SEED])[0].deal
    assert r.challenge(cleared).deal == cleared.with_status(AUDITED)  # a cleared deal too, in the window
    late = _committed(parties, 99)
    ledger.advance(ledger.challenge_window)
    with pytest.raises(e.LotteryError, match="deals: challenge window over"):
        r.challenge(late)


def test_finalize_needs_the_lottery_and_refunds_the_fee(ledger: FakeLedger, parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    cleared = next(d for d in (_committed(parties, 100 + i) for i in range(8)) if _expected(ledger, d) == CLEARED)
    audited = _committed(parties, 110, audit_bps=10_000)
    undrawn = _committed(parties, 111)
    ledger.advance(ledger.challenge_window, blocks=ledger.beacon_delay)
    with pytest.raises(e.AuditPending, match="deals: not drawn"):
        v.finalize([undrawn])
    drawn = [dt.deal for dt in v.draw([cleared, audited], [SEED, SEED])]
    assert [d.status for d in drawn] == [CLEARED, AUDITED]
    assert v.audit(audited.deal_id).phase == AUDIT_PASSED  # the fake's audits pass at once
    balance, earnings = r.balance_of(), v.provider_info().earnings
    snapshot = ledger.snapshot()
    with pytest.raises(e.AuditPending):  # all or nothing
        v.finalize([*drawn, undrawn])
    assert ledger.snapshot() == snapshot
    tx = v.finalize(drawn)
    assert len(tx.events_named("DealFinalized")) == 2
    assert r.balance_of() == balance + 2 * AUDIT_FEE  # each fee goes back: cleared, or audited and passed
    assert v.provider_info().earnings == earnings + 2 * PRICE
