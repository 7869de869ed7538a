"""DELETE /v1/bids/{id}: a losing bid frees its lane at once; a released bid opened anyway is honoured."""

from __future__ import annotations

import pytest

from provider_kit import DEPOSIT, INPUT, KEYS, WORKLOAD, Harness, accept_msg, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.errors import LaneBusy
from mercato.provider.store import LANE_TAKEN, RELEASED, RELEASED_CLOSED

pytestmark = pytest.mark.anyio


def _open(requester: FakeMarket, bid: dict) -> None:
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))


async def _decline_code(h: Harness, requester: FakeMarket) -> str | None:
    from provider_kit import make_rfq

    r = await h.client.post("/v1/rfq", json=make_rfq(h.provider, requester.address).model_dump())
    decline = r.json()["decline"]
    return None if decline is None else str(decline["code"])


@pytest.fixture
def requester2(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester2"])
    m.deposit(DEPOSIT)
    return m


async def test_release_frees_the_lane_and_the_next_bid_takes_the_next_nonce(make_agent,
                                                                            requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1)
    first = await h.bid(requester)
    assert (first["terms"]["lane"], first["terms"]["nonce"]) == (0, 1)
    assert await _decline_code(h, requester) == "capacity"  # the one lane is held by the bid
    r = await h.client.delete(f"/v1/bids/{first['deal_id']}")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "expired" and r.json()["error"] == RELEASED
    assert h.agent.store.busy_lanes(1) == 0
    assert (await h.client.get("/v1/info")).json()["free_lanes"] == 1
    second = await h.bid(requester)
    assert (second["terms"]["lane"], second["terms"]["nonce"]) == (0, 2)  # nonce + 1: the old bid stays unusable
    assert second["deal_id"] != first["deal_id"]
    # releasing again changes nothing (idempotent) and leaves the new bid's lane alone
    assert (await h.client.delete(f"/v1/bids/{first['deal_id']}")).status_code == 200
    assert h.agent.store.busy_lanes(1) == 1
    assert h.agent.metrics.released._value.get() == 1
    # the released bid can no longer be accepted
    r = await h.client.post(f"/v1/deals/{first['deal_id']}/accept", json=accept_msg(requester, first).model_dump())
    assert r.status_code == 409 and "expired" in r.json()["detail"]


async def test_release_after_accept_or_open_is_refused(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=2)
    accepted = await h.bid(requester)
    r = await h.client.post(f"/v1/deals/{accepted['deal_id']}/accept", json=accept_msg(requester, accepted).model_dump())
    assert r.status_code == 200
    r = await h.client.delete(f"/v1/bids/{accepted['deal_id']}")
    assert r.status_code == 409 and "accepted" in r.json()["detail"]
    assert h.agent.store.get(accepted["deal_id"]).state == "accepted"
    opened = await h.bid(requester)
    _open(requester, opened)
    await until(lambda: h.agent.store.get(opened["deal_id"]).on_chain == 1)
    assert (await h.client.delete(f"/v1/bids/{opened['deal_id']}")).status_code == 409
    assert h.agent.store.busy_lanes(2) == 2
    assert (await h.client.delete("/v1/bids/0x" + "00" * 32)).status_code == 404


async def test_released_bid_opened_anyway_is_adopted_and_the_newer_bid_fails(
        make_agent, requester: FakeMarket, requester2: FakeMarket) -> None:
    h: Harness = await make_agent(lanes=1)
    old = await h.bid(requester)
    assert (await h.client.delete(f"/v1/bids/{old['deal_id']}")).status_code == 200
    new = await h.bid(requester2)  # same lane, next nonce; accepted, waiting for its blobs
    assert new["terms"]["lane"] == old["terms"]["lane"]
    r = await h.client_for(requester2).post(f"/v1/deals/{new['deal_id']}/accept",
                                           json=accept_msg(requester2, new).model_dump())
    assert r.status_code == 200
    _open(requester, old)  # the first requester opens the bid it had released: still valid until expiry
    await until(lambda: h.agent.store.get(old["deal_id"]).state == "accepted")  # adopted (watcher)
    st = (await h.client_for(requester2).get(f"/v1/deals/{new['deal_id']}")).json()
    assert st["state"] == "failed" and st["error"] == LANE_TAKEN and not st["on_chain"]
    assert "lane taken by an earlier bid the requester opened" in st["error"]
    assert h.agent.store.lanes(1)[0][2] == old["deal_id"]  # the lane belongs to the opened deal
    with pytest.raises(LaneBusy):
        requester2.open_deal(terms_of(new), bytes.fromhex(new["signature"][2:]))
    await h.upload(WORKLOAD, INPUT)  # the adopted deal runs and is committed; the newer one never runs
    await until(lambda: h.agent.store.get(old["deal_id"]).state == "committed")
    assert h.agent.store.get(old["deal_id"]).error is None
    assert h.agent.store.get(new["deal_id"]).state == "failed"
    assert h.agent.metrics.lane_taken._value.get() == 1
    assert await _decline_code(h, requester) == "capacity"  # the lane is busy with the opened deal


async def test_newer_bid_fails_at_commit_when_the_watcher_lags_and_the_release_is_adopted_at_expiry(
        make_agent, requester: FakeMarket, requester2: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1, poll_interval_s=60)  # the watcher never sees the open
    old = await h.bid(requester, accept_window_s=30)
    assert (await h.client.delete(f"/v1/bids/{old['deal_id']}")).status_code == 200
    new = await h.bid(requester2)
    _open(requester, old)
    r = await h.client_for(requester2).post(f"/v1/deals/{new['deal_id']}/accept",
                                           json=accept_msg(requester2, new).model_dump())
    assert r.status_code == 200
    await h.upload(WORKLOAD, INPUT, by=requester2)  # the newer deal runs, then finds its lane taken: no endless commit retries
    await until(lambda: h.agent.store.get(new["deal_id"]).state == "failed")
    assert h.agent.store.get(new["deal_id"]).error == LANE_TAKEN
    assert h.agent.store.lanes(1)[0][2] == "external"  # busy on-chain: not handed to another bid
    assert await _decline_code(h, requester) == "capacity"
    ledger.advance(31)  # past the released bid's expiry: the settler checks its lane and adopts it
    await until(lambda: h.agent.store.get(old["deal_id"]).state == "committed")
    assert h.agent.store.lanes(1)[0][2] == old["deal_id"]


async def test_released_bid_never_opened_is_closed_after_expiry(make_agent, requester: FakeMarket,
                                                                ledger: FakeLedger) -> None:
    h: Harness = await make_agent(lanes=1)
    old = await h.bid(requester, accept_window_s=5)
    assert (await h.client.delete(f"/v1/bids/{old['deal_id']}")).status_code == 200
    new = await h.bid(requester)
    ledger.advance(6)
    await until(lambda: h.agent.store.get(old["deal_id"]).error == RELEASED_CLOSED)
    assert h.agent.store.get(old["deal_id"]).state == "expired"
    assert h.agent.store.get(new["deal_id"]).state in ("bid", "expired")  # untouched by the release
