"""Accept -> upload -> run -> commit -> finalize -> claim on the fake ledger, and the faults."""

from __future__ import annotations

import pytest

from provider_kit import AUDIT_FEE, DEPOSIT, INPUT, SEED, WORKLOAD, Harness, accept_msg, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, Deal
from mercato.errors import DealNotFound
from mercato.provider.executor import Executor
from mercato.verification.lottery import seal_of

pytestmark = pytest.mark.anyio


async def _run_to(h: Harness, requester: FakeMarket, state: str, **kw: object) -> dict:
    bid = await h.bid(requester, **kw)
    await h.upload(WORKLOAD, INPUT)  # before the acceptance: order does not matter
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == state)
    return bid


async def test_optimistic_start_open_and_commit_then_finalize_and_claim(
        make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    bid = await _run_to(h, requester, "committed")
    deal = bid["deal_id"]
    st = (await h.client.get(f"/v1/deals/{deal}")).json()
    assert st["on_chain"] and st["commit_tx"] and st["started_at"]
    root, salt = st["receipt"]["result_root"], bytes.fromhex(st["salt"][2:])
    assert st["seal"] == "0x" + seal_of(h.provider.address, bytes.fromhex(deal[2:]), bytes.fromhex(root),
                                        st["receipt"]["fuel_used"], salt).hex()
    assert (await h.client.get(f"/v1/deals/{deal}/stdout")).content == b"pi=3.14\n\xff raw"  # exact bytes
    assert (await h.client.get(f"/v1/deals/{deal}/outputs/pi.txt")).content == b"3.14\n"
    assert (await h.client.get(f"/v1/deals/{deal}/outputs/nope.txt")).status_code == 404
    with pytest.raises(DealNotFound):  # only listed outputs, never a path outside the output folder
        h.agent.result_file(deal, "outputs/../stdout")
    assert h.provider.lane(h.provider.address, 0).busy
    tokens = h.provider.token_balance()
    price = terms_of(bid).price
    assert requester.balance_of() == DEPOSIT - price - AUDIT_FEE
    ledger.advance(ledger.challenge_window)  # the window is over, but the lottery has not run
    assert (await h.reveal(deal)).status_code == 200
    h.past_beacon(deal)
    await until(lambda: h.agent.store.get(deal).state == "finalized")
    assert h.agent.store.get(deal).status in (CLEARED, AUDITED)
    await until(lambda: h.provider.token_balance() == tokens + price)
    assert h.provider.reputation().completed == 1
    assert h.agent.store.busy_lanes(2) == 0
    assert requester.balance_of() == DEPOSIT - price  # the audit fee came back


async def test_requester_opens_first_then_commit_result(make_agent, requester: FakeMarket,
                                                        ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "accepted")  # seen by the watcher
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")
    assert h.agent.metrics.commits.labels(method="commit_result")._value.get() == 1


async def test_requester_open_lands_first_after_acceptance(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(poll_interval_s=60)  # the watcher does not see the open
    bid = await h.bid(requester)
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))
    await _accept_and_upload(h, requester, bid)
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")


async def _accept_and_upload(h: Harness, requester: FakeMarket, bid: dict) -> None:
    await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    await h.upload(WORKLOAD, INPUT)


async def test_every_outcome_is_committed(make_agent, requester: FakeMarket) -> None:
    from mercato.domain.jobs import Outcome
    from mercato.runtimes import FakeRuntime

    h: Harness = await make_agent(runtime=FakeRuntime(outcome=Outcome.FUEL_EXHAUSTED, exit_code=None))
    bid = await _run_to(h, requester, "committed")
    assert (await h.client.get(f"/v1/deals/{bid['deal_id']}")).json()["receipt"]["outcome"] == "fuel_exhausted"


async def test_never_commit_fails_then_is_reclaimed(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(behaviour="never_commit", reclaim_grace_s=10)
    bid = await h.bid(requester, deadline_s=100)
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))
    await _accept_and_upload(h, requester, bid)
    deal = bid["deal_id"]
    await until(lambda: h.agent.store.get(deal).state == "executed")
    ledger.advance(101)
    await until(lambda: h.agent.store.get(deal).state == "failed")
    assert h.agent.store.busy_lanes(2) == 1  # the lane is busy on-chain until reclaimed
    ledger.advance(11)
    await until(lambda: h.agent.store.get(deal).state == "reclaimed")
    assert h.provider.reputation().missed == 1 and h.agent.store.busy_lanes(2) == 0


async def test_wrong_result_seals_another_root(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(behaviour="wrong_result")
    bid = await _run_to(h, requester, "committed")
    st = (await h.client.get(f"/v1/deals/{bid['deal_id']}")).json()
    root, fuel, salt = st["receipt"]["result_root"], st["receipt"]["fuel_used"], bytes.fromhex(st["salt"][2:])
    deal_id = bytes.fromhex(bid["deal_id"][2:])
    assert st["seal"] != "0x" + seal_of(h.provider.address, deal_id, bytes.fromhex(root), fuel, salt).hex()
    wrong = bytes.fromhex(Executor.wrong_root(root))
    assert st["seal"] == "0x" + seal_of(h.provider.address, deal_id, wrong, fuel, salt).hex()


async def test_expired_bid_releases_its_lane(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1)
    bid = await h.bid(requester, accept_window_s=5)
    ledger.advance(6)
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "expired")
    assert h.agent.store.busy_lanes(1) == 0


async def test_someone_else_finalizing_is_fine(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(housekeeping_interval_s=60)  # our own finalizer stays idle
    bid = await _run_to(h, requester, "committed")
    rec = h.agent.store.get(bid["deal_id"])
    ledger.advance(ledger.challenge_window, blocks=ledger.beacon_delay)
    stored = Deal(terms_of(bid), bytes.fromhex(rec.seal[2:]), rec.committed_at, rec.committed_block)
    (drawn,) = requester.draw([stored], [SEED])  # the requester draws itself
    await until(lambda: h.agent.store.get(bid["deal_id"]).status == drawn.deal.status)  # via DealDrawn
    assert h.agent.store.get(bid["deal_id"]).status != UNDRAWN
    requester.finalize([drawn.deal])
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "finalized")  # via DealFinalized
