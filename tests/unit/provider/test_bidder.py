"""RFQ -> bid or decline: terms, signature, pricing, every decline code, lane reservation."""

from __future__ import annotations

import asyncio

import pytest

from eth_utils import keccak

from provider_kit import AUDIT_FEE, KEYS, SEED, STAKE, Harness, make_rfq, make_spec

from mercato.chain import FakeLedger, FakeMarket, recover_bid
from mercato.domain.deals import deal_id, job_leaf
from mercato.domain.wire import RfqAnswer, TermsMsg

pytestmark = pytest.mark.anyio


async def _answer(h: Harness, **kw: object) -> RfqAnswer:
    rfq = make_rfq(h.provider, kw.pop("requester_address", None) or h.extra["req"], **kw)  # type: ignore[arg-type]
    if rfq.requester == "not-an-address":  # no key signs for it, so the API refuses it (403): ask the bidder
        return await h.agent.answer(rfq)
    r = await h.client_of(rfq.requester).post("/v1/rfq", json=rfq.model_dump())
    assert r.status_code == 200, r.text
    return RfqAnswer.model_validate(r.json())


async def test_bid_terms_are_signed_and_priced(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    spec = make_spec(fuel=3 * 10**9 + 1)  # 4 CU after rounding up
    bid = await h.bid(requester, spec=spec, min_collateral=5, deadline_s=600, accept_window_s=30)
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    assert bid["price_per_cu"] == 1000  # idle: the floor
    assert (terms.price, terms.collateral) == (4000, 19 * 4000)
    assert (terms.lane, terms.nonce, terms.jobs) == (0, 1, 1)
    assert (terms.requester, terms.provider) == (requester.address, h.provider.address)
    assert (terms.deadline, terms.expiry) == (ledger.time + 600, ledger.time + 30)
    assert terms.jobs_root == job_leaf(bytes.fromhex(spec.spec_hash()[7:]), 4000, 76000)
    assert bid["deal_id"] == "0x" + deal_id(h.provider.address, 0, 1).hex()
    assert (terms.seed_hash, terms.audit_bps, terms.audit_fee) == (keccak(SEED), 300, AUDIT_FEE)  # the RFQ's
    sig = bytes.fromhex(bid["signature"][2:])
    assert recover_bid(terms, sig, chain_id=ledger.chain_id, market=ledger.market) == h.provider.address


async def test_verification_terms_are_copied_unchanged(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    seed_hash = "0x" + keccak(b"\x01" * 32).hex()
    bid = await h.bid(requester, seed_hash=seed_hash.upper().replace("0X", "0x"), audit_bps=10_000, audit_fee=0)
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    assert ("0x" + terms.seed_hash.hex(), terms.audit_bps, terms.audit_fee) == (seed_hash, 10_000, 0)


async def test_utilization_raises_the_price_and_lanes_differ(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=2)
    first = await h.bid(requester)
    second = await h.bid(requester)
    assert (first["terms"]["lane"], second["terms"]["lane"]) == (0, 1)
    assert second["price_per_cu"] == 1500  # floor × (1 + 1 × 1/2)


async def test_min_collateral_wins_when_higher(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester, min_collateral=10**8)  # within the default caps (test_forced_miss.py)
    assert bid["terms"]["collateral"] == 10**8


@pytest.mark.parametrize(("change", "code"), [
    ({"chain_id": 1}, "chain"),
    ({"market": "0x" + "11" * 20}, "chain"),
    ({"spec_hash": "sha256:" + "00" * 32}, "spec"),
    ({"spec": {"runtime": "wasm"}}, "spec"),
    ({"requester_address": "not-an-address"}, "spec"),
    ({"seed_hash": "0x" + "00" * 32}, "spec"),
    ({"seed_hash": "0x" + "ab" * 31}, "spec"),
    ({"seed_hash": "0x" + "zz" * 32}, "spec"),
    ({"seed_hash": ""}, "spec"),
    ({"spec": make_spec(fuel=10**15)}, "limits"),
    ({"spec": make_spec(memory_bytes=1 << 40)}, "limits"),
    ({"input_bytes": 1 << 40}, "inputs"),
    ({"max_price": 1}, "price"),
    ({"min_collateral": STAKE + 1}, "collateral"),
])
async def test_declines_say_why(make_agent, requester: FakeMarket, change: dict, code: str) -> None:
    h: Harness = await make_agent()
    h.extra["req"] = requester.address
    change = dict(change)
    answer = await _answer(h, **change)
    assert answer.bid is None and answer.decline is not None
    assert answer.decline.code == code
    assert len(answer.decline.reason) > 20
    assert h.agent.store.busy_lanes(2) == 0  # a decline never keeps a lane


async def test_runtime_not_offered(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(runtimes=("python",))
    h.extra["req"] = requester.address
    answer = await _answer(h)
    assert answer.decline is not None and answer.decline.code == "runtime"


async def test_collateral_counts_unopened_reservations(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=3, max_collateral=STAKE, collateral_ratio_floor=STAKE,  # caps off
                                  max_miss_exposure=STAKE)
    h.extra["req"] = requester.address
    half = STAKE // 2 + 1
    assert (await _answer(h, min_collateral=half)).bid is not None
    again = await _answer(h, min_collateral=half)  # on-chain free stake is untouched, but promised
    assert again.decline is not None and again.decline.code == "collateral"


async def test_a_requester_whose_escrow_cannot_pay_gets_no_lane(make_agent, requester: FakeMarket,
                                                                ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1)
    fresh = ledger.client(KEYS["requester3"])  # a key with tokens but nothing deposited
    h.extra["req"] = fresh.address
    answers = [await _answer(h) for _ in range(3)]
    assert all(a.decline is not None and a.decline.code == "escrow" for a in answers)
    assert "deposit at least" in answers[0].decline.reason  # type: ignore[union-attr]
    assert h.agent.store.busy_lanes(1) == 0  # its RFQs held nothing
    h.extra["req"] = requester.address
    bid = (await _answer(h)).bid
    assert bid is not None  # the one lane is free for a requester who can pay
    need = bid.terms.price + AUDIT_FEE
    fresh.deposit(need - 1)  # one unit short of this bid's price plus its audit fee
    h.extra["req"] = fresh.address
    short = await _answer(h)
    assert short.decline is not None and short.decline.code == "escrow", short


async def test_concurrent_rfqs_never_share_a_lane(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=3)
    h.extra["req"] = requester.address
    answers = await asyncio.gather(*(_answer(h) for _ in range(12)))
    bids = [a.bid for a in answers if a.bid]
    assert len(bids) == 3
    assert sorted(b.terms.lane for b in bids) == [0, 1, 2]
    assert {a.decline.code for a in answers if a.decline} == {"capacity"}


async def test_nonces_grow_per_lane_across_expiries(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1)
    first = await h.bid(requester, accept_window_s=5)
    ledger.advance(10)
    await _wait_state(h, first["deal_id"], "expired")
    second = await h.bid(requester)
    assert (second["terms"]["lane"], second["terms"]["nonce"]) == (0, 2)


async def test_info_reports_capacity(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=2)
    await h.bid(requester)
    info = (await h.client.get("/v1/info")).json()
    assert (info["lanes"], info["free_lanes"], info["provider"]) == (2, 1, h.provider.address)
    assert info["price_per_cu"] == 1500


async def _wait_state(h: Harness, deal: str, state: str) -> None:
    from provider_kit import until

    async def check() -> bool:
        return await h.state(deal) == state

    await until(check)


def test_keys_are_distinct() -> None:
    assert KEYS["provider1"] != KEYS["requester1"]
