"""Jobs pushed to a drawn auditor (docs/SPEC.md §14.8): ``POST /v1/audits/{id}/job`` and
``PUT /v1/audits/{id}/blobs/{hash}`` accept only a job that hashes to the deal's ``jobs_root``,
only for a seat the agent holds, and only the blobs that job needs, each checked by hash."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from provider_kit import INPUT, KEYS, WORKLOAD, Harness, accept_msg, make_spec, terms_of, until

from mercato.chain import FakeMarket
from mercato.chain.api import AUDIT_COMMIT, AuditState
from mercato.domain.deals import ZERO32
from mercato.domain.wire import AuditJobMsg, TermsMsg
from mercato.provider import create_app
from mercato.runtimes import content_hash

pytestmark = pytest.mark.anyio


def _seated(h: Harness, seats: tuple[str, ...]) -> None:
    """Make the fake chain report an open audit with ``seats`` for every deal."""
    state = AuditState(AUDIT_COMMIT, False, 1, 0, "", "", ZERO32, 0, ZERO32, ZERO32, ZERO32, seats,
                       tuple(ZERO32 for _ in seats), tuple(ZERO32 for _ in seats))
    h.agent.chain.market.audit = lambda _deal_id: state  # type: ignore[method-assign]


async def _job(make_agent: Any, requester: FakeMarket) -> tuple[Harness, AuditJobMsg]:
    provider = await make_agent()
    bid = await provider.bid(requester)
    job = AuditJobMsg(deal_id=bid["deal_id"], terms=TermsMsg.of(terms_of(bid)), spec=make_spec().to_json())
    # not started: its audit loop would run the job and commit, which the fake chain has no call for
    auditor = await make_agent(key=KEYS["provider2"], data_dir=provider.agent.cfg.data_dir.parent / "auditor",
                               start=False)
    return auditor, job


async def test_a_pushed_job_is_kept_and_its_blobs_checked(make_agent, requester: FakeMarket) -> None:
    h, job = await _job(make_agent, requester)
    base = f"/v1/audits/{job.deal_id}"
    # a blob before any job, and a job for a seat we do not hold, are refused
    assert (await h.client.put(f"{base}/blobs/{content_hash(INPUT)}", content=INPUT)).status_code == 409
    _seated(h, ("0x" + "11" * 20,))
    r = await h.client.post(f"{base}/job", json=job.model_dump(mode="json"))
    assert r.status_code == 409 and "no open audit seat" in r.json()["detail"]
    _seated(h, (h.agent.address,))
    # a spec that is not the deal's (another argument) and terms of another deal are refused
    bad_spec = job.model_copy(update={"spec": dataclasses.replace(make_spec(), args=("2",)).to_json()})
    r = await h.client.post(f"{base}/job", json=bad_spec.model_dump(mode="json"))
    assert r.status_code == 422 and "jobs_root" in r.json()["detail"]
    r = await h.client.post(f"/v1/audits/0x{'ab' * 32}/job", json=job.model_dump(mode="json"))
    assert r.status_code == 422 and "another deal" in r.json()["detail"]
    assert h.agent.auditor.get(job.deal_id) is None  # nothing kept from the refused ones

    r = await h.client.post(f"{base}/job", json=job.model_dump(mode="json"))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["missing"]) == sorted([content_hash(WORKLOAD), content_hash(INPUT)])
    task = h.agent.auditor.get(job.deal_id)
    assert task is not None and task.spec == job.spec and task.state == "assigned"
    # blobs: wrong bytes, a blob the job does not need, then the right ones
    r = await h.client.put(f"{base}/blobs/{content_hash(INPUT)}", content=b"not the input")
    assert r.status_code == 422
    r = await h.client.put(f"{base}/blobs/{content_hash(b'other')}", content=b"other")
    assert r.status_code == 404
    r = await h.client.put(f"{base}/blobs/{content_hash(INPUT)}", content=INPUT)
    assert r.status_code == 200 and r.json()["missing"] == [content_hash(WORKLOAD)]
    r = await h.client.put(f"{base}/blobs/{content_hash(WORKLOAD)}", content=WORKLOAD)
    assert r.status_code == 200 and r.json()["missing"] == []
    # with every blob here the auditor runs the pushed job without asking the provider
    spec = await h.agent.auditor._job(h.agent.auditor.get(job.deal_id), "0x" + "22" * 20)
    assert spec.to_json() == job.spec
    paths = (await h.client.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/v1/audits/{deal_id}/job"] and "put" in paths["/v1/audits/{deal_id}/blobs/{content_hash}"]


async def test_a_malformed_push_is_a_422_not_a_crash(make_agent, requester: FakeMarket) -> None:
    h, job = await _job(make_agent, requester)
    _seated(h, (h.agent.address,))
    for body in ({}, {"deal_id": job.deal_id}, job.model_dump(mode="json") | {"spec": {"runtime": 7}}):
        r = await h.client.post(f"/v1/audits/{job.deal_id}/job", json=body)
        assert r.status_code == 422, body


async def test_a_container_deal_is_attested_from_the_providers_bytes_not_rerun(make_agent,
                                                                                requester: FakeMarket) -> None:
    """SPEC §15.4: the auditor's claim for a container deal is the root of the bytes the provider
    serves (fuel 0); a provider serving bytes other than those its receipt was made of is exposed."""
    provider = await make_agent()
    bid = await provider.bid(requester)
    await provider.upload(WORKLOAD, INPUT)
    r = await provider.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    deal_id = str(bid["deal_id"])
    await until(lambda: provider.agent.store.get(deal_id).state == "committed")
    receipt = provider.agent.store.get(deal_id).receipt_json
    assert receipt is not None and receipt["outputs"]

    auditor = await make_agent(key=KEYS["provider2"], data_dir=provider.agent.cfg.data_dir.parent / "auditor",
                               start=False)
    aud = auditor.agent.auditor
    aud._transport = httpx.ASGITransport(app=create_app(provider.agent, manage_lifecycle=False))

    async def endpoint(_who: str) -> str:
        return "http://provider"
    aud._endpoint = endpoint  # type: ignore[method-assign]
    _seated(provider, (auditor.agent.address,))  # the provider serves a deal's result to its seated auditors only
    root, fuel = await aud._attest(deal_id, provider.agent.address, make_spec())
    assert (root, fuel) == (receipt["result_root"], 0)
    assert auditor.runtime.calls == [] and len(provider.runtime.calls) == 1  # the auditor ran nothing
    (provider.agent.executor.deal_dir(deal_id) / "stdout").write_bytes(b"other bytes")
    tampered, _ = await aud._attest(deal_id, provider.agent.address, make_spec())
    assert tampered != receipt["result_root"]


async def test_a_stale_loop_round_never_commits_twice(make_agent, requester: FakeMarket) -> None:
    """A round of the audit loop holding a task read before its commit finished must not commit
    again: a second commit is refused on-chain, and the seat would then never reveal."""
    h, job = await _job(make_agent, requester)
    auditor, seal = h.agent.auditor, "0x" + "aa" * 32
    auditor.assign(job.deal_id)
    stale = auditor.get(job.deal_id)
    assert stale is not None and stale.state == "assigned"
    auditor._save(dataclasses.replace(stale, state="committed", seal=seal, salt="0x" + "01" * 32,
                                      result_root="00" * 32, fuel=1))
    sent: list[object] = []
    h.agent.chain.market.commit_audit = lambda *a: sent.append(a)  # type: ignore[attr-defined]
    _seated(h, (h.agent.address,))
    await auditor._execute_and_commit(stale, h.agent.chain.market.audit(job.deal_id))  # type: ignore[attr-defined]
    assert sent == [] and auditor.get(job.deal_id).state == "committed"  # type: ignore[union-attr]


async def test_a_refused_commit_of_our_own_seal_goes_on_to_reveal(make_agent, requester: FakeMarket) -> None:
    """``audits: already committed`` when the chain already holds *our* seal (an earlier send
    landed) is not a failure: the task moves to committed and reveals; any other seal is."""
    from mercato.errors import AuditError

    h, job = await _job(make_agent, requester)
    auditor, seal = h.agent.auditor, "0x" + "aa" * 32
    auditor.assign(job.deal_id)
    task = dataclasses.replace(auditor.get(job.deal_id), seal=seal, salt="0x" + "01" * 32,  # type: ignore[type-var]
                               result_root="00" * 32, fuel=1)
    auditor._save(task)

    def refuse(*_a: object) -> None:
        raise AuditError("audits: already committed")

    h.agent.chain.market.commit_audit = refuse  # type: ignore[attr-defined]
    for on_chain, expected in ((bytes.fromhex("bb" * 32), "failed"), (bytes.fromhex("aa" * 32), "committed")):
        state = AuditState(AUDIT_COMMIT, False, 1, 0, "", "", ZERO32, 0, ZERO32, ZERO32, ZERO32, (h.agent.address,),
                           (on_chain,), (ZERO32,))
        h.agent.chain.market.audit = lambda _d, s=state: s  # type: ignore[method-assign]
        auditor._save(dataclasses.replace(task, state="assigned"))
        await auditor._execute_and_commit(dataclasses.replace(task, state="assigned"), state)
        assert auditor.get(job.deal_id).state == expected  # type: ignore[union-attr]
