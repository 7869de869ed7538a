"""Sealed inputs and outputs at the provider API (docs/SPEC.md §21): uploads sealed to the
registered enc_key are opened and hash-checked; results are sealed to the key a signed GET names."""

from __future__ import annotations

import pytest

from provider_kit import INPUT, WORKLOAD, Harness, accept_msg, until

from mercato.chain import FakeMarket
from mercato.domain.sealing import SEALED_HEADER, BoxKey, seal
from mercato.runtimes import content_hash

pytestmark = pytest.mark.anyio


async def _upload_sealed(h: Harness, blob: bytes, to: bytes) -> int:
    r = await h.client.put(f"/v1/blobs/{content_hash(blob)}", content=seal(blob, to), headers={SEALED_HEADER: "1"})
    return r.status_code


async def test_the_registry_names_the_box_key_and_it_survives_a_restart(make_agent, tmp_path) -> None:
    h: Harness = await make_agent(data_dir=tmp_path / "p")
    entry = h.provider.provider_info()
    assert entry.enc_key == h.agent.box.public and entry.enc_key != bytes(32)
    await h.agent.stop()
    again: Harness = await make_agent(data_dir=tmp_path / "p")
    assert again.agent.box == h.agent.box  # kept in the data dir (a client without a key file to derive from)


async def test_sealed_uploads_are_opened_checked_and_stored_plain(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    # sealed to another key: refused with the key to use, nothing stored
    wrong = await h.client.put(f"/v1/blobs/{content_hash(WORKLOAD)}", content=seal(WORKLOAD, BoxKey(b"\7" * 32).public),
                               headers={SEALED_HEADER: "1"})
    assert wrong.status_code == 422 and h.agent.box.public.hex() in wrong.json()["detail"]
    assert not h.agent.blobs.has(content_hash(WORKLOAD))
    # sealed to the registered key, but not the bytes its name promises: the hash check still holds
    forged = await h.client.put(f"/v1/blobs/{content_hash(WORKLOAD)}", content=seal(b"other bytes", h.agent.box.public),
                                headers={SEALED_HEADER: "1"})
    assert forged.status_code == 400 and "hash to" in forged.json()["detail"]
    for blob in (WORKLOAD, INPUT):
        assert await _upload_sealed(h, blob, h.agent.box.public) == 200
        assert h.agent.blobs.get(content_hash(blob)) == blob
    await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")


async def test_results_are_sealed_to_the_key_the_request_names(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    deal = bid["deal_id"]
    await h.client.post(f"/v1/deals/{deal}/accept", json=accept_msg(requester, bid).model_dump())
    await h.upload(WORKLOAD, INPUT)
    await until(lambda: h.agent.store.get(deal).state == "committed")
    mine = BoxKey(b"\3" * 32)
    for path, plain in ((f"/v1/deals/{deal}/stdout", b"pi=3.14\n\xff raw"), (f"/v1/deals/{deal}/outputs/pi.txt", b"3.14\n")):
        sealed = await h.client.get(path, params={"box": mine.public.hex()})
        assert sealed.status_code == 200 and sealed.headers[SEALED_HEADER] == "1"
        assert plain not in sealed.content and mine.open(sealed.content) == plain
        open_ = await h.client.get(path)  # no box asked for: the bytes as they are
        assert open_.content == plain and SEALED_HEADER.lower() not in open_.headers
    bad = await h.client.get(f"/v1/deals/{deal}/stdout", params={"box": "00" * 32})
    assert bad.status_code == 422 and "box" in bad.json()["detail"]
