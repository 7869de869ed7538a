"""The requester standing by a deal through its lottery and audit (docs/SPEC.md §14.8), on the
fake ledger: it draws when the provider does not, sends an undrawable deal to the default
audit, stops once the deal is cleared or settled, and pushes the job to every seat."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from chain_scenarios import KEYS, SEAL, SEED, terms

from mercato.chain import FakeLedger, FakeMarket
from mercato.chain.api import AUDIT_COMMIT, AuditState, ProviderInfo
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, ZERO32, Deal
from mercato.domain.wire import AuditJobMsg, TermsMsg
from mercato.requester._audits import SETTLED, AuditSupport, lottery_status


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


@pytest.fixture
def parties(ledger: FakeLedger, requester: FakeMarket, provider: FakeMarket) -> Any:
    from chain_scenarios import Parties
    return Parties(requester, provider, ledger.client(KEYS["requester3"]), ledger.client(KEYS["provider5"]),
                   ledger.advance)


def _committed(parties: Any, lane: int, **kw: Any) -> Deal:
    t = terms(parties, lane, **kw)
    return parties.provider.open_and_commit(t, parties.requester.sign_acceptance(t), SEAL).deal


def _job(deal: Deal) -> AuditJobMsg:
    return AuditJobMsg(deal_id="0x" + deal.deal_id.hex(), terms=TermsMsg.of(deal.terms), spec={"runtime": "wasm"})


def _support(ledger: FakeLedger, api: FakeMarket, client: Any = None) -> AuditSupport:
    async def next_block(_s: float) -> None:  # each poll, one block passes
        ledger.advance(1)
    return AuditSupport(api, _call, client or (lambda: None), sleep=next_block)


def test_status_follows_the_lane(ledger: FakeLedger, parties: Any) -> None:
    deal = _committed(parties, 3)
    r = parties.requester
    assert asyncio.run(lottery_status(r, _call, deal)) == UNDRAWN
    ledger.advance(0, blocks=ledger.beacon_delay)
    drawn = r.draw([deal], [SEED])[0].deal
    assert asyncio.run(lottery_status(r, _call, deal)) == drawn.status in (CLEARED, AUDITED)
    other = dataclasses.replace(deal, seal=b"\x01" * 32)  # not the deal the lane holds
    assert asyncio.run(lottery_status(r, _call, other)) == SETTLED


def test_draws_itself_when_the_provider_does_not(ledger: FakeLedger, parties: Any) -> None:
    deal = _committed(parties, 4)
    support = _support(ledger, parties.requester)
    assert asyncio.run(lottery_status(parties.requester, _call, deal)) == UNDRAWN
    outcome = asyncio.run(support.support(deal, SEED, _job(deal), {}))
    status = asyncio.run(lottery_status(parties.requester, _call, deal))  # nobody else drew it
    assert (outcome, status) in (("cleared", CLEARED), ("resolved", AUDITED))  # the fake's audits pass at once
    # it waited for the beacon and the provider's turn (grace) before drawing
    beacon = deal.committed_block + ledger.beacon_delay
    assert ledger.block > beacon + support.grace_blocks


def test_an_undrawable_deal_goes_to_the_default_audit(ledger: FakeLedger, parties: Any) -> None:
    deal = _committed(parties, 5)
    support = _support(ledger, parties.requester)
    outcome = asyncio.run(support.support(deal, b"\x00" * 32, _job(deal), {}))  # a seed that opens nothing
    assert outcome == "resolved"
    assert ledger.block > deal.committed_block + ledger.beacon_delay + ledger.draw_blocks
    assert asyncio.run(lottery_status(parties.requester, _call, deal.with_status(AUDITED))) == AUDITED


def test_a_settled_deal_ends_the_watch(ledger: FakeLedger, parties: Any) -> None:
    deal = _committed(parties, 6)
    ledger.advance(0, blocks=ledger.beacon_delay)
    drawn = parties.provider.draw([deal], [SEED])[0].deal
    assert drawn.status == CLEARED  # at the fake's 3 % floor with this seed and its stand-in beacon
    assert asyncio.run(_support(ledger, parties.requester).support(deal, SEED, _job(deal), {})) == "cleared"
    ledger.advance(ledger.challenge_window + 1)
    parties.provider.finalize([drawn])
    assert asyncio.run(_support(ledger, parties.requester).support(deal, SEED, _job(deal), {})) == "settled"


def test_the_job_is_pushed_to_every_seat_that_has_not_committed(ledger: FakeLedger, parties: Any) -> None:
    deal = _committed(parties, 7, audit_bps=10_000)
    ledger.advance(0, blocks=ledger.beacon_delay)
    parties.provider.draw([deal], [SEED])
    seats = ("0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20)
    seals = (b"\x09" * 32, ZERO32, ZERO32)  # the first has committed already: it needs nothing
    rounds = [AuditState(AUDIT_COMMIT, True, 1, 0, "", "", ZERO32, 0, ZERO32, ZERO32, ZERO32, seats, seals,
                         (ZERO32,) * 3)]
    api = parties.requester

    def audit(_deal_id: bytes) -> AuditState:
        return rounds[0]
    api.audit = audit  # type: ignore[method-assign]
    api.provider_info = lambda who: ProviderInfo(True, f"http://{who[2:6]}", b"", b"", 0, 0, 0, 0, 0)  # type: ignore
    seen: list[tuple[str, str, bytes]] = []
    blobs = {"sha256:" + "11" * 32: b"workload", "sha256:" + "22" * 32: b"input"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, f"{request.url.host}{request.url.path}", request.content))
        if request.method == "POST":
            assert json.loads(request.content)["deal_id"] == "0x" + deal.deal_id.hex()
            missing = list(blobs) if request.url.host == "b2b2" else list(blobs)[1:]
            return httpx.Response(200, json={"deal_id": "0x" + deal.deal_id.hex(), "missing": missing})
        return httpx.Response(200, json={"deal_id": "0x" + deal.deal_id.hex(), "missing": []})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    support = AuditSupport(api, _call, lambda: client, sleep=asyncio.sleep, poll_s=0)
    served: set[str] = set()
    asyncio.run(support._serve(rounds[0], _job(deal), blobs, served))
    base = f"/v1/audits/0x{deal.deal_id.hex()}"
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", f"b2b2{base}/job"), ("PUT", f"b2b2{base}/blobs/sha256:{'11' * 32}"),
        ("PUT", f"b2b2{base}/blobs/sha256:{'22' * 32}"),
        ("POST", f"c3c3{base}/job"), ("PUT", f"c3c3{base}/blobs/sha256:{'22' * 32}")]
    assert seen[1][2] == b"workload" and seen[2][2] == b"input"
    assert served == {seats[1], seats[2]}
    seen.clear()
    asyncio.run(support._serve(rounds[0], _job(deal), blobs, served))
    assert seen == []  # each seat is served once
