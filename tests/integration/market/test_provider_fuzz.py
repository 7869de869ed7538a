"""Schemathesis fuzz of the provider's OpenAPI: every operation of ``create_app(agent)``, in
process (ASGI) against an agent on the fake chain, half the cases signed as a requester with a
live deal. No answer may be a 5xx, and the agent must still bid and serve afterwards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from mercato.chain import FakeLedger, dev_accounts
from mercato.domain.jobs import JobSpec, Limits
from mercato.domain.wire import Rfq, new_id, request_auth_headers
from mercato.provider import ProviderAgent, ProviderConfig, create_app
from mercato.runtimes import FakeRuntime, content_hash

KEYS = dev_accounts()
REQUESTER = Account.from_key(KEYS["requester1"])
WORKLOAD = b"\x00asm\x01\x00\x00\x00 fuzzed provider workload"


class _SignRequests(requests.auth.AuthBase):
    """Signs a ``requests`` request as the requester (docs/SPEC.md §13)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        body = body.encode() if isinstance(body, str) else bytes(body)  # type: ignore[arg-type]
        sign = lambda text: bytes(Account.sign_message(encode_defunct(text=text), REQUESTER.key).signature)  # noqa: E731
        r.headers.update(request_auth_headers(sign, REQUESTER.address, str(r.method), r.path_url, body, int(time.time())))
        return r


def _rfq(market: Any) -> Rfq:
    spec = JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=("1",), limits=Limits(fuel=2 * 10**9))
    return Rfq(rfq_id=new_id(), requester=REQUESTER.address, chain_id=market.chain_id, market=market.market,
               spec=spec.to_json(), spec_hash=spec.spec_hash(), max_price=10**9, min_collateral=0, deadline_s=600,
               accept_window_s=120, seed_hash="0x" + keccak(b"\x01" * 32).hex(), audit_bps=300, audit_fee=0)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ledger = FakeLedger()
    for key in KEYS.values():
        ledger.mint(ledger.client(key).address, 1_000_000 * 10**6)
    ledger.client(KEYS["requester1"]).deposit(1_000 * 10**6)
    provider = ledger.client(KEYS["provider1"])
    cfg = ProviderConfig(data_dir=Path(tmp_path_factory.mktemp("fuzz-agent")), lanes=4, stake=10_000 * 10**6,
                         poll_interval_s=0.05, housekeeping_interval_s=0.05, max_json_bytes=64 << 10,
                         max_blob_bytes=64 << 10, rate_limit_per_s=10_000, rate_limit_burst=10_000)
    fake = FakeRuntime(stdout=b"fuzz\n", outputs={"out.txt": b"1\n"})
    agent = ProviderAgent(cfg, provider, runtimes={"wasm": fake, "python": fake}, clock=lambda: ledger.time,
                          challenge_window=ledger.challenge_window)
    app = create_app(agent)  # schemathesis runs its lifespan: the agent starts in the test client's loop
    return app, agent, provider


@pytest.fixture(scope="module")
def provider_schema(fuzzed: Any) -> Any:
    app, _agent, _provider = fuzzed
    return schemathesis.openapi.from_asgi("/openapi.json", app)


_SIGNED = requests.Session()
_SIGNED.auth = _SignRequests()


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        for session in (None, _SIGNED):  # unsigned, then signed by a requester
            response = case.call(session=session) if session is not None else case.call()
            where = (case.method, case.formatted_path, response.status_code, response.text[:300])
            assert response.status_code < 500, where
            if response.status_code >= 400 and case.method != "HEAD":  # errors answer {"detail": "<advice>"}
                assert isinstance(response.json().get("detail"), str), where

    try:
        run()
    except Unsatisfiable:  # nothing to break in an operation without parameters or a body (GET /v1/info)
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_no_operation_answers_5xx_and_the_agent_still_serves(provider_schema: Any, fuzzed: Any) -> None:
    from schemathesis.python import asgi

    operations = [result.ok() for result in provider_schema.get_all_operations()]
    assert len(operations) >= 17  # every route of the API
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode)
    # afterwards it still answers, bids, and releases (the fuzz's lifespan still runs it)
    app, agent, provider = fuzzed
    with asgi.get_client(app) as client:
        assert client.get("/v1/info").status_code == 200
        client.auth = _SignRequests()
        answer = client.post("/v1/rfq", json=_rfq(provider).model_dump())
        assert answer.status_code == 200 and answer.json()["bid"] is not None, answer.text
        deal = answer.json()["bid"]["deal_id"]
        assert client.get(f"/v1/deals/{deal}").json()["state"] == "bid"
        assert client.delete(f"/v1/bids/{deal}").status_code == 200
    assert agent.started
