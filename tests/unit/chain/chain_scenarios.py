"""Scenarios run against both MarketApi implementations: the fake (unit) and anvil (integration).

Each takes a :class:`Parties`; lanes are given per scenario so a shared chain is fine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from eth_utils import keccak

from mercato import errors as e
from mercato.chain.api import MarketApi
from mercato.chain.deployment import dev_accounts
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, Deal, Terms, job_leaf, jobs_root

KEYS = dev_accounts()
PRICE = 2 * 10**6
COLLATERAL = 38 * 10**6
AUDIT_FEE = 10**6
SEED = b"\x5d" * 32  # the requester's lottery seed in every scenario
SEAL = b"\x5e" * 32
BEACON_DELAY = 2  # the devnet's k: the beacon is block committed_block + k


@dataclass
class Parties:
    """A funded requester, a staked provider, an unfunded requester, an unregistered provider."""

    requester: MarketApi
    provider: MarketApi
    broke: MarketApi  # never deposits
    stranger: MarketApi  # never registers
    advance: Callable[[int], None]


def terms(p: Parties, lane: int, nonce: int = 1, *, jobs: int = 1, price: int = PRICE,
          collateral: int = COLLATERAL, deadline: int = 600, expiry: int = 60,
          requester: MarketApi | None = None, provider: MarketApi | None = None, seed_hash: bytes = keccak(SEED),
          audit_bps: int | None = None, audit_fee: int = AUDIT_FEE) -> Terms:
    """Terms between the parties; deadline/expiry relative to the chain's now; the audit
    probability is the market's floor unless given (the fake's is 3 %, with seeds and stand-in
    beacons that clear; the anvil kit deploys a floor of 0.01 % so a real draw clears too)."""
    now = p.requester.now()
    if audit_bps is None:
        audit_bps = p.requester.parameters()["audit_floor_bps"]
    leaves = [job_leaf(bytes([i % 256]) * 32, price // jobs, collateral // jobs) for i in range(jobs)]
    return Terms((requester or p.requester).address, (provider or p.provider).address, lane, nonce,
                 jobs_root(leaves), jobs, price, collateral, now + deadline, now + expiry, seed_hash, audit_bps,
                 audit_fee)


def mine(p: Parties, blocks: int) -> None:
    """Mine ``blocks`` blocks without moving the clock."""
    for _ in range(blocks):
        p.advance(0)


def draw(p: Parties, deals: Sequence[Deal]) -> list[Deal]:
    """Mine past the deals' beacon block, then run their lottery with the scenarios' seed (as the
    provider would once the requester revealed it); the deals as now stored."""
    head = p.requester.block_number()
    mine(p, max(0, max(d.committed_block for d in deals) + BEACON_DELAY - head))
    drawn = [dt.deal for dt in p.provider.draw(list(deals), [SEED] * len(deals))]
    assert all(d.status in (CLEARED, AUDITED) for d in drawn)
    return drawn


def bid_lifecycle(p: Parties, lane: int) -> None:
    """open_deal -> commit_result -> draw -> finalize -> claim_earnings, with the window enforced."""
    r, v = p.requester, p.provider
    balance, free, rep = r.balance_of(), v.free_stake(), v.reputation()
    earned = v.provider_info().earnings
    t = terms(p, lane)
    opened = r.open_deal(t, v.sign_bid(t))
    assert opened.tx.events_named("DealOpened")[0].args["deal_id"] == t.deal_id
    assert r.balance_of() == balance - PRICE - AUDIT_FEE  # the audit fee is escrowed with the price
    assert v.free_stake() == free - COLLATERAL
    assert v.lane(v.address, lane).busy
    committed = v.commit_result(opened.deal, SEAL)
    assert committed.deal.seal == SEAL and committed.deal.committed_at > 0
    assert committed.deal.committed_block == committed.tx.block_number and committed.deal.status == UNDRAWN
    with pytest.raises(e.AlreadyCommitted):
        v.commit_result(committed.deal, SEAL)
    with pytest.raises(e.UnknownDeal):
        v.commit_result(opened.deal, SEAL)  # the lane now stores the committed record
    with pytest.raises(e.AuditPending):  # the lottery has not run
        r.finalize([committed.deal])
    (drawn,) = draw(p, [committed.deal])
    assert drawn.status == CLEARED, "the lottery audits 1 deal in 10,000 at the kit's floor"
    with pytest.raises(e.UnknownDeal):
        r.finalize([committed.deal])  # the lane now stores the drawn record
    with pytest.raises(e.ChallengeWindowOpen):
        r.finalize([drawn])
    p.advance(6)
    fin = r.finalize([drawn])  # anyone may finalize
    assert [ev.name for ev in fin.events] == ["DealFinalized"]
    lane_state = v.lane(v.address, lane)
    assert not lane_state.busy and lane_state.last_nonce == 1
    assert v.free_stake() == free
    assert v.reputation().completed == rep.completed + 1
    assert v.reputation().volume == rep.volume + PRICE
    assert v.provider_info().earnings == earned + PRICE
    assert r.balance_of() == balance - PRICE  # a cleared deal's audit fee came back
    with pytest.raises(e.AlreadySettled):
        r.finalize([drawn])
    before = v.token_balance()
    v.claim_earnings()
    assert v.token_balance() == before + earned + PRICE
    with pytest.raises(e.NothingToClaim):
        v.claim_earnings()


def acceptance_batch(p: Parties, lane: int) -> None:
    """open_and_commit on a batch of jobs, then a lane reuse, finalized together."""
    r, v = p.requester, p.provider
    t1 = terms(p, lane, 1, jobs=10, price=10 * PRICE, collateral=10 * COLLATERAL)
    d1 = v.open_and_commit(t1, r.sign_acceptance(t1), SEAL)
    assert [ev.name for ev in d1.tx.events] == ["DealOpened"]
    assert d1.tx.events[0].args["seal"] == SEAL and d1.deal.committed_at == d1.tx.timestamp
    with pytest.raises(e.LaneBusy):
        t_busy = terms(p, lane, 2)
        v.open_and_commit(t_busy, r.sign_acceptance(t_busy), SEAL)
    assert d1.deal.committed_block == d1.tx.block_number
    t2 = terms(p, lane + 1, 5)
    d2 = v.open_and_commit(t2, r.sign_acceptance(t2), SEAL)
    drawn = draw(p, [d1.deal, d2.deal])  # one batch
    p.advance(6)
    completed = v.reputation().completed
    tx = v.finalize(drawn)
    assert len(tx.events_named("DealFinalized")) == 2
    assert v.reputation().completed == completed + 11
    with pytest.raises(e.BidReplayed):  # the lane remembers nonce 1
        v.open_and_commit(t1, r.sign_acceptance(t1), SEAL)


def reclaim_missed(p: Parties, lane: int) -> None:
    """A missed deadline: early reclaim refused, then the price comes back to the requester and the
    penalty is burned (never the requester's: it could force the miss)."""
    r, v = p.requester, p.provider
    t = terms(p, lane, deadline=20, expiry=10)
    deal = r.open_deal(t, v.sign_bid(t)).deal
    with pytest.raises(e.DeadlineNotPassed):
        r.reclaim([deal])
    balance, stake, missed = r.balance_of(), v.provider_info().stake, v.reputation().missed
    p.advance(30)
    with pytest.raises(e.DeadlinePassed):
        v.commit_result(deal, SEAL)
    tx = v.reclaim([deal])  # anyone may reclaim; the refund goes to the requester
    penalty = COLLATERAL // 2
    assert tx.events_named("DealReclaimed")[0].args["penalty"] == penalty
    assert tx.events_named("DealReclaimed")[0].args["refund"] == PRICE + AUDIT_FEE
    assert r.balance_of() == balance + PRICE + AUDIT_FEE  # the whole escrow comes back, no penalty
    assert tx.events_named("ProviderSlashed")[0].args["to"] == "0x" + "00" * 20  # burned
    assert v.provider_info().stake == stake - penalty
    assert v.reputation().missed == missed + 1
    with pytest.raises(e.AlreadySettled):
        r.reclaim([deal])


def typed_reverts(p: Parties, lane: int) -> None:
    """Each refusal surfaces as its typed exception."""
    r, v = p.requester, p.provider
    t = terms(p, lane)
    with pytest.raises(e.BadSignature):
        r.open_deal(t, r.sign_bid(t))  # signed by the wrong party
    with pytest.raises(e.BadSignature):
        r.open_deal(t, v.sign_acceptance(t))  # right key, wrong type
    with pytest.raises(e.NotAuthorized):
        v.open_deal(t, v.sign_bid(t))  # only the requester opens with a bid
    expired = terms(p, lane, expiry=-1)
    with pytest.raises(e.BidExpired):
        r.open_deal(expired, v.sign_bid(expired))
    with pytest.raises(e.InvalidTerms):
        bad = terms(p, lane, jobs=1, expiry=700)
        r.open_deal(bad, v.sign_bid(bad))
    unfunded = terms(p, lane, requester=p.broke)
    with pytest.raises(e.RequesterUnfunded):
        p.broke.open_deal(unfunded, v.sign_bid(unfunded))
    unstaked = terms(p, lane, provider=p.stranger)
    with pytest.raises(e.ProviderNotRegistered):
        r.open_deal(unstaked, p.stranger.sign_bid(unstaked))
    greedy = terms(p, lane, collateral=10**15)
    with pytest.raises(e.InsufficientFreeStake):
        r.open_deal(greedy, v.sign_bid(greedy))
    unseeded = terms(p, lane, seed_hash=b"\x00" * 32)
    with pytest.raises(e.InvalidTerms, match="deals: no seed"):
        r.open_deal(unseeded, v.sign_bid(unseeded))
    for bps in (p.requester.parameters()["audit_floor_bps"] - 1, 10_001):
        unsafe = terms(p, lane, audit_bps=bps)
        with pytest.raises(e.InvalidTerms, match="deals: audit probability out of range"):
            r.open_deal(unsafe, v.sign_bid(unsafe))
    deal = r.open_deal(t, v.sign_bid(t)).deal
    with pytest.raises(e.LaneBusy):
        r.open_deal(t, v.sign_bid(t))
    with pytest.raises(e.NotCommitted):
        r.finalize([deal])
    with pytest.raises(e.InvalidSeal):
        v.commit_result(deal, b"\x00" * 32)
    with pytest.raises(e.UnknownDeal):
        v.commit_result(deal.with_commit(SEAL, 1, 1), SEAL)
    done = v.commit_result(deal, SEAL).deal
    with pytest.raises(e.LotteryError, match="deals: beacon not ready"):
        v.draw([done], [SEED])
    mine(p, BEACON_DELAY)
    with pytest.raises(e.LotteryError, match="deals: bad seed"):
        v.draw([done], [b"\x00" * 32])
    (drawn,) = draw(p, [done])
    with pytest.raises(e.LotteryError, match="deals: already drawn"):
        v.draw([drawn], [SEED])
    p.advance(6)
    v.finalize([drawn])
    with pytest.raises(e.BidReplayed):
        r.open_deal(t, v.sign_bid(t))


def escrow_and_stake(p: Parties) -> None:
    """Withdrawals and unbonding go through their delays."""
    r, v = p.requester, p.provider
    with pytest.raises(e.InvalidAmount):
        r.deposit(0)
    with pytest.raises(e.InsufficientBalance):
        r.request_withdrawal(r.balance_of() + 1)
    with pytest.raises(e.WithdrawalNotReady):
        r.withdraw()
    tokens = r.token_balance()
    r.request_withdrawal(1_000)
    assert r.pending_withdrawal().amount == 1_000
    with pytest.raises(e.WithdrawalNotReady):
        r.withdraw()
    r.cancel_withdrawal()
    assert r.pending_withdrawal().amount == 0
    r.request_withdrawal(1_000)
    p.advance(31)
    r.withdraw()
    assert r.token_balance() == tokens + 1_000
    with pytest.raises(e.InsufficientFreeStake):
        v.unbond(v.free_stake() + 1)
    v.unbond(500)
    with pytest.raises(e.UnbondNotReady):
        v.withdraw_stake()
    p.advance(61)
    before = v.token_balance()
    v.withdraw_stake()
    assert v.token_balance() == before + 500
