"""The provider API against hostile clients: signed requests (canonical text, verification,
replays, clock skew), the token bucket, body caps, and who may read or change which deal."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from provider_kit import INPUT, KEYS, SEED, WORKLOAD, Harness, accept_msg, make_rfq, until

from mercato.chain import FakeMarket
from mercato.domain.wire import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    TIMESTAMP_HEADER,
    request_auth_headers,
    request_auth_message,
)
from mercato.errors import RateLimited, RequestReplayed, Unauthenticated
from mercato.provider.guard import RateLimiter, ReplayCache, RequestGuard, TokenBucket, request_target
from mercato.runtimes import content_hash

A = Account.from_key(KEYS["requester1"])
B = Account.from_key(KEYS["requester2"])


def _sign_text(account: Any) -> Any:
    return lambda text: bytes(Account.sign_message(encode_defunct(text=text), account.key).signature)


def _headers(account: Any, method: str, target: str, body: bytes = b"", ts: float | None = None,
             nonce: str | None = None) -> dict[str, str]:
    return request_auth_headers(_sign_text(account), account.address, method, target, body,
                                int(time.time() if ts is None else ts), nonce)


# the canonical text and the guard, alone ------------------------------------------------------
def test_canonical_text_is_prefix_method_target_timestamp_nonce_and_body_hash() -> None:
    text = request_auth_message("post", "/v1/rfq?x=1", 1_700_000_000, "n0nce-123", b'{"a":1}')
    assert text.split("\n") == ["mercato request v1", "POST", "/v1/rfq?x=1", "1700000000", "n0nce-123",
                                hashlib.sha256(b'{"a":1}').hexdigest()]
    h = _headers(A, "GET", "/v1/info", ts=1_700_000_000, nonce="abcdefgh")
    assert set(h) == {SIGNER_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    assert h[SIGNER_HEADER] == A.address and h[TIMESTAMP_HEADER] == "1700000000"
    assert len(_headers(A, "GET", "/")[NONCE_HEADER]) >= 16  # fresh and random unless given
    assert _headers(A, "GET", "/")[NONCE_HEADER] != _headers(A, "GET", "/")[NONCE_HEADER]


def test_request_target_is_the_raw_path_and_query() -> None:
    assert request_target({"raw_path": b"/v1/deals/0xab/outputs/a%20b", "path": "/x", "query_string": b""}) \
        == "/v1/deals/0xab/outputs/a%20b"
    assert request_target({"raw_path": b"/v1/x?q=1", "query_string": b"q=1"}) == "/v1/x?q=1"
    assert request_target({"path": "/v1/info", "query_string": b"a=b"}) == "/v1/info?a=b"


def test_verify_recovers_the_signer_and_refuses_any_change() -> None:
    guard = RequestGuard()
    body = b'{"x": 1}'
    h = _headers(A, "POST", "/v1/rfq", body)
    assert guard.precheck("POST", h) is True
    assert guard.authenticate("POST", "/v1/rfq", h, body) == A.address
    for method, target, sent, headers in [
        ("POST", "/v1/rfq", b'{"x": 2}', _headers(A, "POST", "/v1/rfq", body)),  # another body
        ("POST", "/v1/rfq/bulk", body, _headers(A, "POST", "/v1/rfq", body)),  # another path
        ("PUT", "/v1/rfq", body, _headers(A, "POST", "/v1/rfq", body)),  # another method
        ("POST", "/v1/rfq", body, _headers(A, "POST", "/v1/rfq", body) | {SIGNER_HEADER: B.address}),  # claims B
        ("POST", "/v1/rfq", body, _headers(A, "POST", "/v1/rfq", body) | {SIGNATURE_HEADER: "0x1234"}),
        ("POST", "/v1/rfq", body, _headers(A, "POST", "/v1/rfq", body) | {SIGNATURE_HEADER: "0x" + "zz" * 65}),
        ("POST", "/v1/rfq", body, _headers(A, "POST", "/v1/rfq", body) | {SIGNATURE_HEADER: "0x" + "00" * 65}),
    ]:
        with pytest.raises(Unauthenticated, match="does not recover"):
            guard.authenticate(method, target, headers, sent)


def test_unsigned_reads_pass_unsigned_writes_and_partial_headers_do_not() -> None:
    guard = RequestGuard()
    assert guard.precheck("GET", {}) is False
    assert guard.precheck("HEAD", {}) is False
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        with pytest.raises(Unauthenticated, match="must be signed"):
            guard.precheck(method, {})
    partial = {k: v for k, v in _headers(A, "GET", "/").items() if k != NONCE_HEADER}
    with pytest.raises(Unauthenticated, match="not all four headers"):
        guard.precheck("GET", partial)
    with pytest.raises(Unauthenticated, match="X-Mercato-Nonce"):
        guard.precheck("GET", _headers(A, "GET", "/") | {NONCE_HEADER: "bad nonce!"})
    with pytest.raises(Unauthenticated, match="unix seconds"):
        guard.precheck("GET", _headers(A, "GET", "/") | {TIMESTAMP_HEADER: "yesterday"})


def test_clock_skew_beyond_the_window_is_refused() -> None:
    now = 1_700_000_000.0
    guard = RequestGuard(max_skew_s=120, clock=lambda: now)
    assert guard.precheck("GET", _headers(A, "GET", "/", ts=now - 120))
    assert guard.precheck("GET", _headers(A, "GET", "/", ts=now + 120))
    with pytest.raises(Unauthenticated, match="behind"):
        guard.precheck("GET", _headers(A, "GET", "/", ts=now - 121))
    with pytest.raises(Unauthenticated, match="ahead of"):
        guard.precheck("GET", _headers(A, "GET", "/", ts=now + 121))


def test_a_replayed_signature_is_refused_within_its_window() -> None:
    now = [1_700_000_000.0]
    guard = RequestGuard(max_skew_s=120, clock=lambda: now[0])
    h = _headers(A, "DELETE", "/v1/bids/0x01", ts=now[0])
    assert guard.authenticate("DELETE", "/v1/bids/0x01", h, b"") == A.address
    with pytest.raises(RequestReplayed, match="sent before"):
        guard.authenticate("DELETE", "/v1/bids/0x01", h, b"")
    again = _headers(A, "DELETE", "/v1/bids/0x01", ts=now[0])  # the same request signed afresh: a new nonce
    assert guard.authenticate("DELETE", "/v1/bids/0x01", again, b"") == A.address
    now[0] += 500  # the window is over: the cache forgets, the clock check refuses the old signature instead
    guard.authenticate("GET", "/", _headers(A, "GET", "/", ts=now[0]), b"")
    assert len(guard.replays) == 1


def test_a_replay_with_the_signature_re_encoded_is_still_refused() -> None:
    """One signature has several valid encodings (v as 27/28 or 0/1; s or n - s): a replay in
    another encoding is the same request, refused as such."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    guard = RequestGuard(max_skew_s=120)
    h = _headers(A, "DELETE", "/v1/bids/0x02")
    sig = bytes.fromhex(h[SIGNATURE_HEADER].removeprefix("0x"))
    r, s_, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    low_v = r + sig[32:64] + bytes([v - 27])
    flipped = r + (n - s_).to_bytes(32, "big") + bytes([((v - 27) ^ 1) + 27])
    assert guard.authenticate("DELETE", "/v1/bids/0x02", h, b"") == A.address
    for other in (low_v, flipped):
        forged = h | {SIGNATURE_HEADER: "0x" + other.hex()}
        with pytest.raises((RequestReplayed, Unauthenticated)) as err:
            guard.authenticate("DELETE", "/v1/bids/0x02", forged, b"")
        if other is low_v:  # recovery accepts this encoding: only the replay check stands in the way
            assert err.type is RequestReplayed


def test_replay_cache_forgets_expired_entries() -> None:
    cache = ReplayCache()
    assert cache.add(b"a", expires=10, now=0) and cache.add(b"b", expires=20, now=0)
    assert not cache.add(b"a", expires=10, now=5)
    assert cache.add(b"c", expires=30, now=15) and len(cache) == 2  # "a" expired
    assert cache.add(b"a", expires=40, now=15)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token in 0.5 s at 2/s
    assert bucket.take(0.5) == 0.0 and bucket.take(0.5) > 0
    assert not bucket.full(1.0) and bucket.full(10.0)  # refills up to the burst, no further
    assert [bucket.take(10.0) for _ in range(4)].count(0.0) == 3


def test_rate_limiter_keys_buckets_and_forgets_full_ones() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    assert limiter.take("a", 0.0) == 0.0 and limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0  # another key, another bucket
    assert limiter.take("c", 100.0) == 0.0 and len(limiter) == 1  # a and b had refilled: forgotten
    guard = RequestGuard(rate_per_s=1.0, burst=1, monotonic=lambda: 0.0)
    guard.throttle(A.address)
    with pytest.raises(RateLimited) as info:
        guard.throttle(A.address.lower())  # keys are case-insensitive addresses
    assert info.value.http_status == 429 and info.value.retry_after == pytest.approx(1.0)


# the app: who may do what ----------------------------------------------------------------------
async def _committed(h: Harness, requester: FakeMarket) -> str:
    bid = await h.bid(requester)
    await h.upload(WORKLOAD, INPUT)
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    await until(lambda: h.agent.store.get(bid["deal_id"]).state == "committed")
    return str(bid["deal_id"])


@pytest.mark.anyio
async def test_rfqs_must_be_signed_by_their_requester(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    await h.bid(requester)  # signed by requester1, who it names
    body = make_rfq(h.provider, requester.address).model_dump()
    unsigned = await h.client_as(None).post("/v1/rfq", json=body)
    assert unsigned.status_code == 401 and "must be signed" in unsigned.json()["detail"]
    forged = await h.client_as(KEYS["requester2"]).post("/v1/rfq", json=body)
    assert forged.status_code == 403 and "sign it with the requester's key" in forged.json()["detail"]
    bulk = await h.client_as(KEYS["requester2"]).post("/v1/rfq/bulk", json={
        "rfq_id": "r" * 16, "requester": requester.address, "chain_id": h.provider.chain_id,
        "market": h.provider.market, "spec": {}, "spec_hash": "", "tasks": 1, "max_price_per_cu": 1,
        "deadline_s": 60})
    assert bulk.status_code == 403


@pytest.mark.anyio
async def test_stale_replayed_and_badly_signed_requests_are_refused(make_agent) -> None:
    h: Harness = await make_agent()
    raw = h.client_as(None)
    stale = await raw.get("/v1/info", headers=_headers(A, "GET", "/v1/info", ts=time.time() - 3600))
    assert stale.status_code == 401 and "behind" in stale.json()["detail"]
    once = _headers(A, "GET", "/v1/info")
    assert (await raw.get("/v1/info", headers=once)).status_code == 200
    replay = await raw.get("/v1/info", headers=once)
    assert replay.status_code == 409 and "sign every request afresh" in replay.json()["detail"]
    wrong_path = await raw.get("/metrics", headers=_headers(A, "GET", "/v1/info"))
    assert wrong_path.status_code == 401 and "does not recover" in wrong_path.json()["detail"]


@pytest.mark.anyio
async def test_bodies_over_the_caps_are_refused_before_parsing(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_json_bytes=4096, max_blob_bytes=64)
    big = await h.client.post("/v1/rfq", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413 and "cap of 4096" in big.json()["detail"]
    await h.bid(requester)
    blob = await h.client.put(f"/v1/blobs/{content_hash(INPUT)}", content=b"x" * 65)
    assert blob.status_code == 413 and "cap of 64" in blob.json()["detail"]


@pytest.mark.anyio
async def test_malformed_bodies_and_ids_answer_422_with_advice(make_agent) -> None:
    h: Harness = await make_agent()
    for body in (b"{not json", b"[]", b'{"rfq_id": 5}', b"null"):
        r = await h.client.post("/v1/rfq", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        assert isinstance(r.json()["detail"], str) and "does not match the protocol" in r.json()["detail"]
    bad_id = await h.client.get("/v1/deals/not-a-deal")
    assert bad_id.status_code == 422 and "deal_id" in bad_id.json()["detail"]


@pytest.mark.anyio
async def test_a_flood_is_throttled_with_retry_after(make_agent) -> None:
    h: Harness = await make_agent(rate_limit_per_s=0.5, rate_limit_burst=3)
    raw = h.client_as(None)
    codes = [(await raw.get("/v1/info", headers=_headers(B, "GET", "/v1/info"))).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = await raw.get("/v1/info", headers=_headers(B, "GET", "/v1/info"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many requests" in r.json()["detail"]
    assert (await h.client.get("/v1/info")).status_code == 200  # another signer has its own bucket


@pytest.mark.anyio
async def test_another_requester_gets_nothing_of_a_deal(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    deal = await _committed(h, requester)
    b = h.client_as(KEYS["requester2"])
    for method, path in [("GET", f"/v1/deals/{deal}"), ("GET", f"/v1/deals/{deal}/stdout"),
                         ("GET", f"/v1/deals/{deal}/stderr"), ("GET", f"/v1/deals/{deal}/outputs/pi.txt"),
                         ("DELETE", f"/v1/bids/{deal}")]:
        r = await b.request(method, path)
        assert r.status_code == 403, (path, r.text)
        assert "requester" in r.json()["detail"]
    seed = await b.post(f"/v1/deals/{deal}/seed", json={"seed": "0x" + SEED.hex()})
    assert seed.status_code == 403
    # unsigned: the public view only, and no raw results
    anon = h.client_as(None)
    public = (await anon.get(f"/v1/deals/{deal}")).json()
    assert public["seal"] and public["salt"] and public["receipt"]["result_root"]
    assert set(public["receipt"]) <= {"fuel_used", "cu_used", "result_root", "deterministic", "resource_seconds"}
    assert (await anon.get(f"/v1/deals/{deal}/stdout")).status_code == 401
    # the requester gets everything
    mine = (await h.client.get(f"/v1/deals/{deal}")).json()
    assert mine["receipt"]["stdout"] and mine["receipt"]["outputs"]
    assert (await h.client.get(f"/v1/deals/{deal}/stdout")).content == b"pi=3.14\n\xff raw"
    assert (await h.client.get(f"/v1/deals/{deal}/outputs/pi.txt")).content == b"3.14\n"
    assert (await h.client.post(f"/v1/deals/{deal}/seed", json={"seed": "0x" + SEED.hex()})).status_code == 200


@pytest.mark.anyio
async def test_another_requester_cannot_release_or_feed_a_bid(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester)
    b = h.client_as(KEYS["requester2"])
    assert (await b.delete(f"/v1/bids/{bid['deal_id']}")).status_code == 403
    up = await b.put(f"/v1/blobs/{content_hash(WORKLOAD)}", content=WORKLOAD)
    assert up.status_code == 403 and "no open deal here that needs" in up.json()["detail"]
    acc = await b.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert acc.status_code == 403
    assert (await h.client_as(None).put(f"/v1/blobs/{content_hash(WORKLOAD)}", content=WORKLOAD)).status_code == 401
    assert h.agent.store.get(bid["deal_id"]).state == "bid"
    await h.upload(WORKLOAD)  # its requester may
    assert (await h.client.delete(f"/v1/bids/{bid['deal_id']}")).status_code == 200
    # stored now: re-sending the same bytes changes nothing, and is acknowledged to any signer
    assert (await b.put(f"/v1/blobs/{content_hash(WORKLOAD)}", content=WORKLOAD)).status_code == 200


@pytest.mark.anyio
async def test_output_paths_cannot_leave_the_output_folder(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent()
    deal = await _committed(h, requester)
    for path in ("..%2F..%2Fprovider.sqlite3", "..%2Fstdout", "%2Fetc%2Fpasswd", "pi.txt%2F..%2F..%2Fstdout"):
        r = await h.client.get(f"/v1/deals/{deal}/outputs/{path}")
        assert r.status_code == 404, (path, r.status_code)
    r = await h.client.get(httpx.URL(f"http://provider/v1/deals/{deal}/outputs/../../stdout"))
    assert r.status_code in (404, 422)
