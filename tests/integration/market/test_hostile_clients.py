"""A real agent process (provider9, on the session devnet) against hostile clients: every hostile
request is refused with the right status and advice, and its requester still gets its result."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from agent_kit import DEV_KEYS, WASM, AgentProcess, start_agent

from mercato.chain import Devnet, MarketClient
from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits
from mercato.domain.sealing import SEALED_HEADER, BoxKey, seal
from mercato.domain.wire import AcceptMsg, Rfq, SeedMsg, TermsMsg, new_id, request_auth_headers
from mercato.runtimes import content_hash
from mercato.verification.lottery import new_seed

WORKLOAD = WASM.read_bytes()
JSON_CAP = 64 << 10
BLOB_CAP = 4 * len(WORKLOAD)


def _headers(who: str, method: str, target: str, body: bytes = b"", ts: float | None = None) -> dict[str, str]:
    """Signed headers made by hand (no retries on 429), as ``who`` (a dev account's name)."""
    account = Account.from_key(DEV_KEYS[who])
    sign = lambda text: bytes(Account.sign_message(encode_defunct(text=text), account.key).signature)  # noqa: E731
    return request_auth_headers(sign, account.address, method, target, body, int(time.time() if ts is None else ts))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, devnet: Devnet) -> Any:
    a = start_agent(Path(tmp_path_factory.mktemp("hostile")), devnet, "provider9", max_json_bytes=JSON_CAP,
                    max_blob_bytes=BLOB_CAP, rate_limit_per_s=20.0, rate_limit_burst=40)
    yield a
    a.kill()


def _rfq(requester: MarketClient, seed: bytes) -> Rfq:
    spec = JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=("20000", "7"),
                   limits=Limits(fuel=50 * FUEL_PER_CU))
    return Rfq(rfq_id=new_id(), requester=requester.address, chain_id=requester.chain_id, market=requester.market,
               spec=spec.to_json(), spec_hash=spec.spec_hash(), max_price=10**9, min_collateral=0, deadline_s=600,
               accept_window_s=120, input_bytes=len(WORKLOAD), seed_hash="0x" + keccak(seed).hex(),
               audit_bps=requester.parameters()["audit_floor_bps"], audit_fee=0)


def _bid(agent: AgentProcess, requester: MarketClient) -> tuple[dict[str, Any], bytes]:
    seed = new_seed()
    answer = agent.post("/v1/rfq", _rfq(requester, seed).model_dump())
    assert answer.status_code == 200 and answer.json()["bid"], answer.text
    return answer.json()["bid"], seed


@pytest.fixture(scope="module")
def deal(agent: AgentProcess, requester: MarketClient) -> tuple[str, bytes]:
    """Requester A's (requester1's) deal, run and committed; and its lottery seed."""
    bid, seed = _bid(agent, requester)
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    msg = AcceptMsg(deal_id=bid["deal_id"], terms=TermsMsg.of(terms),
                    acceptance_signature="0x" + requester.sign_acceptance(terms).hex())
    assert agent.post(f"/v1/deals/{bid['deal_id']}/accept", msg.model_dump()).status_code == 200
    assert agent.put(f"/v1/blobs/{content_hash(WORKLOAD)}", WORKLOAD).status_code == 200
    agent.wait_state(bid["deal_id"], "committed", "finalized", timeout=90)
    return str(bid["deal_id"]), seed


def _detail(r: httpx.Response) -> str:
    return str(r.json()["detail"])


def test_unsigned_rfq_is_401(agent: AgentProcess, requester: MarketClient) -> None:
    r = agent.post("/v1/rfq", _rfq(requester, new_seed()).model_dump(), as_=None)
    assert r.status_code == 401 and "must be signed" in _detail(r)


def test_rfq_signed_by_another_address_is_403(agent: AgentProcess, requester: MarketClient) -> None:
    r = agent.post("/v1/rfq", _rfq(requester, new_seed()).model_dump(), as_="requester2")
    assert r.status_code == 403 and "sign it with the requester's key" in _detail(r)


def test_stale_timestamp_is_401(agent: AgentProcess, requester: MarketClient) -> None:
    body = _rfq(requester, new_seed()).model_dump_json().encode()
    for skew in (-600, +600):
        r = httpx.post(agent.url + "/v1/rfq", content=body, timeout=10,
                       headers=_headers("requester1", "POST", "/v1/rfq", body, ts=time.time() + skew)
                       | {"content-type": "application/json"})
        assert r.status_code == 401 and "this provider's clock" in _detail(r)


def test_replayed_signature_is_409(agent: AgentProcess, deal: tuple[str, bytes]) -> None:
    path = f"/v1/deals/{deal[0]}"
    once = _headers("requester1", "GET", path)
    assert httpx.get(agent.url + path, headers=once, timeout=10).status_code == 200
    again = httpx.get(agent.url + path, headers=once, timeout=10)
    assert again.status_code == 409 and "sign every request afresh" in _detail(again)


def test_oversized_json_is_413(agent: AgentProcess, requester: MarketClient) -> None:
    fat = _rfq(requester, new_seed()).model_dump() | {"spec": {"padding": "x" * (JSON_CAP + 1)}}
    r = agent.post("/v1/rfq", fat)
    assert r.status_code == 413 and f"cap of {JSON_CAP}" in _detail(r)


def test_oversized_blob_is_413(agent: AgentProcess) -> None:
    r = agent.put(f"/v1/blobs/sha256:{'ab' * 32}", b"x" * (BLOB_CAP + 1))
    assert r.status_code == 413 and f"cap of {BLOB_CAP}" in _detail(r)


def test_malformed_body_is_422(agent: AgentProcess, requester: MarketClient) -> None:
    for body in (b"{not json", b'{"rfq_id": 12}', b"[1, 2]"):
        r = httpx.post(agent.url + "/v1/rfq", content=body, timeout=10,
                       headers=_headers("requester1", "POST", "/v1/rfq", body) | {"content-type": "application/json"})
        assert r.status_code == 422 and "does not match the protocol" in _detail(r), r.text
    wrong_type = _rfq(requester, new_seed()).model_dump() | {"max_price": "a lot"}
    r = agent.post("/v1/rfq", wrong_type)
    assert r.status_code == 422 and "max_price" in _detail(r)


def test_another_requester_gets_403_on_a_deal_it_does_not_own(agent: AgentProcess, deal: tuple[str, bytes]) -> None:
    deal_id, seed = deal
    for path in (f"/v1/deals/{deal_id}", f"/v1/deals/{deal_id}/stdout", f"/v1/deals/{deal_id}/stderr",
                 f"/v1/deals/{deal_id}/outputs/pi.txt"):
        r = agent.get(path, as_="requester2")
        assert r.status_code == 403 and "neither the requester" in _detail(r), (path, r.text)
    r = agent.post(f"/v1/deals/{deal_id}/seed", SeedMsg(seed="0x" + seed.hex()).model_dump(), as_="requester2")
    assert r.status_code == 403 and "only its requester may" in _detail(r)
    assert agent.delete(f"/v1/bids/{deal_id}", as_="requester2").status_code == 403
    # without a signature: the public view (what opens the seal), never the job's output
    public = agent.get(f"/v1/deals/{deal_id}", as_=None).json()
    assert public["seal"] and public["receipt"]["result_root"] and "stdout" not in public["receipt"]
    assert "outputs" not in public["receipt"]
    assert agent.get(f"/v1/deals/{deal_id}/stdout", as_=None).status_code == 401


def test_another_requester_cannot_release_or_feed_a_live_bid(agent: AgentProcess, requester: MarketClient) -> None:
    bid, _seed = _bid(agent, requester)
    r = agent.delete(f"/v1/bids/{bid['deal_id']}", as_="requester2")
    assert r.status_code == 403 and "release its bid" in _detail(r)
    other = b"\x00asm\x01\x00\x00\x00 not A's workload"
    assert agent.put(f"/v1/blobs/{content_hash(other)}", other, as_="requester2").status_code == 409  # no deal needs it
    assert agent.wait_state(bid["deal_id"], "bid")["state"] == "bid"
    assert agent.delete(f"/v1/bids/{bid['deal_id']}").status_code == 200  # its requester may


def test_path_traversal_is_refused(agent: AgentProcess, deal: tuple[str, bytes]) -> None:
    deal_id = deal[0]
    for path in ("..%2F..%2Fprovider.sqlite3", "..%2Fstdout", "%2Fetc%2Fpasswd", "pi.txt%2F..%2F..%2F..%2Fhostile.toml"):
        r = agent.get(f"/v1/deals/{deal_id}/outputs/{path}")
        assert r.status_code == 404 and "no output" in _detail(r), (path, r.text)


def test_the_requester_still_gets_its_result(agent: AgentProcess, deal: tuple[str, bytes]) -> None:
    deal_id, seed = deal
    st = agent.get(f"/v1/deals/{deal_id}").json()
    assert st["receipt"]["outcome"] == "ok" and st["receipt"]["stdout"].startswith("samples=20000")
    assert agent.get(f"/v1/deals/{deal_id}/stdout").content.startswith(b"samples=20000")
    assert agent.get(f"/v1/deals/{deal_id}/outputs/pi.txt").status_code == 200
    assert agent.post(f"/v1/deals/{deal_id}/seed", SeedMsg(seed="0x" + seed.hex()).model_dump()).status_code == 200


def test_inputs_and_results_travel_sealed(agent: AgentProcess, deal: tuple[str, bytes], requester: MarketClient) -> None:
    """The registry's enc_key is the agent's box key (derived from its account key); a result
    asked for with ?box=KEY comes back sealed to KEY and opens to the plain bytes; an upload
    sealed to any key but the registered one is refused (docs/SPEC.md §21)."""
    deal_id, _seed = deal
    box = BoxKey.derive(DEV_KEYS["provider9"])
    assert requester.provider_info(requester.as_account(DEV_KEYS["provider9"]).address).enc_key == box.public
    mine = BoxKey(b"\x05" * 32)
    r = agent.get(f"/v1/deals/{deal_id}/stdout?box={mine.public.hex()}")
    assert r.status_code == 200 and r.headers[SEALED_HEADER] == "1" and b"samples=20000" not in r.content
    assert mine.open(r.content) == agent.get(f"/v1/deals/{deal_id}/stdout").content
    body, ref = seal(WORKLOAD, mine.public), content_hash(WORKLOAD)
    wrong = httpx.put(f"{agent.url}/v1/blobs/{ref}", content=body, timeout=10,
                      headers={SEALED_HEADER: "1", **_headers("requester1", "PUT", f"/v1/blobs/{ref}", body)})
    assert wrong.status_code == 422 and box.public.hex() in _detail(wrong)


def test_a_flood_is_throttled_with_retry_after(agent: AgentProcess) -> None:
    """Last: requester3 floods; its bucket (40, then 20 a second) empties, no one else's does."""
    batch = [_headers("requester3", "GET", "/v1/info") for _ in range(120)]  # signed first: the flood is fast
    with httpx.Client(timeout=10) as http:
        answers = [http.get(agent.url + "/v1/info", headers=h) for h in batch]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and all(r.status_code in (200, 429) for r in answers)
    assert int(limited[0].headers["retry-after"]) >= 1 and "too many requests" in _detail(limited[0])
    assert agent.get("/v1/info").status_code == 200  # requester1's own bucket is untouched
