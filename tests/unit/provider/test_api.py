"""The HTTP surface: blobs (hash, size, format, need), acceptance checks, results gating, metrics."""

from __future__ import annotations

import pytest

from provider_kit import INPUT, KEYS, WORKLOAD, Harness, accept_msg, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.wire import AcceptMsg, TermsMsg
from mercato.runtimes import content_hash

pytestmark = pytest.mark.anyio


async def test_blob_checks(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_blob_bytes=64)
    ref = content_hash(WORKLOAD)
    assert (await h.client.put(f"/v1/blobs/{ref}", content=WORKLOAD)).status_code == 409  # no deal needs it yet
    await h.bid(requester)
    assert (await h.client.head(f"/v1/blobs/{ref}")).status_code == 404
    assert (await h.client.put(f"/v1/blobs/{ref}", content=b"other bytes")).status_code == 400
    assert (await h.client.put("/v1/blobs/md5:abc", content=WORKLOAD)).status_code == 400
    big = (await h.client.put(f"/v1/blobs/{content_hash(INPUT)}", content=b"x" * 65))
    assert big.status_code == 413 and "cap" in big.json()["detail"]
    ok = await h.client.put(f"/v1/blobs/{ref}", content=WORKLOAD)
    assert ok.status_code == 200 and ok.json() == {"content_hash": ref, "size": len(WORKLOAD)}
    assert (await h.client.head(f"/v1/blobs/{ref}")).status_code == 200
    # a blob already here is acknowledged even when no open deal needs it any more (its deal may
    # have started before the upload arrived); wrong bytes under its name are still refused
    h.agent.store.update(h.agent.store.in_states("bid")[0].deal_id, state="failed")
    again = await h.client.put(f"/v1/blobs/{ref}", content=WORKLOAD)
    assert again.status_code == 200 and again.json() == {"content_hash": ref, "size": len(WORKLOAD)}
    assert (await h.client.put(f"/v1/blobs/{ref}", content=b"other bytes")).status_code == 400


async def test_acceptance_must_be_signed_by_the_requester(make_agent, requester: FakeMarket,
                                                          ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    terms = terms_of(bid)
    forged = ledger.client(KEYS["requester2"]).sign_acceptance(terms)
    bad = AcceptMsg(deal_id=bid["deal_id"], terms=TermsMsg.of(terms), acceptance_signature="0x" + forged.hex())
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=bad.model_dump())
    assert r.status_code == 400 and "not signed by the requester" in r.json()["detail"]
    garbage = bad.model_copy(update={"acceptance_signature": "0x1234"})
    assert (await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=garbage.model_dump())).status_code == 400
    assert await h.state(bid["deal_id"]) == "bid"


async def test_acceptance_must_match_the_bid(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    msg = accept_msg(requester, bid)
    cheaper = TermsMsg.model_validate(msg.terms.model_dump() | {"price": 1})
    changed = AcceptMsg(deal_id=msg.deal_id, terms=cheaper,
                        acceptance_signature="0x" + requester.sign_acceptance(cheaper.to_terms()).hex())
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=changed.model_dump())
    assert r.status_code == 400 and "differ" in r.json()["detail"]


async def test_unknown_deal_is_404(make_agent) -> None:
    h: Harness = await make_agent()
    r = await h.client.get("/v1/deals/0x" + "00" * 32)
    assert r.status_code == 404 and "no deal" in r.json()["detail"]


async def test_accept_after_expiry_is_refused(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester, accept_window_s=5)
    ledger.advance(6)
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 409


async def test_results_only_after_the_commit(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(behaviour="never_commit")
    bid = await h.bid(requester)
    deal = bid["deal_id"]
    await h.client.post(f"/v1/deals/{deal}/accept", json=accept_msg(requester, bid).model_dump())
    status = (await h.client.get(f"/v1/deals/{deal}")).json()
    assert status["state"] == "accepted"
    assert sorted(status["missing_inputs"]) == sorted([content_hash(WORKLOAD), content_hash(INPUT)])
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(deal).state == "executed")
    status = (await h.client.get(f"/v1/deals/{deal}")).json()
    assert status["receipt"] is None and status["salt"] is None and status["started_at"] is not None
    assert (await h.client.get(f"/v1/deals/{deal}/stdout")).status_code == 409


async def test_metrics_and_openapi(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    await h.bid(requester)
    await h.client.post("/v1/rfq", json={"bad": 1})
    text = (await h.client.get("/metrics")).text
    assert "mercato_provider_bids_total 1.0" in text
    assert 'mercato_provider_deals{state="bid"} 1.0' in text
    paths = (await h.client.get("/openapi.json")).json()["paths"]
    assert {"/v1/rfq", "/v1/info", "/v1/deals/{deal_id}/accept", "/v1/blobs/{content_hash}"} <= set(paths)
