"""Scripted providers speaking the wire protocol over ``httpx.MockTransport``, on a FakeLedger.

Each ``FakeProvider`` is registered and staked on the ledger, answers RFQs with signed bids
(or declines), takes acceptances and blobs, "runs" a canned workload on the first status poll
after everything arrived, and commits the seal on-chain. Knobs make it misbehave.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from eth_utils import keccak

from mercato.chain import FakeLedger, FakeMarket
from mercato.chain.deployment import dev_accounts
from mercato.domain.deals import Deal, Terms, job_leaf
from mercato.domain.jobs import JobSpec, cu_from_fuel
from mercato.domain.sealing import BOX_PARAM, SEALED_HEADER, BoxKey, seal
from mercato.domain.wire import (
    AcceptMsg,
    BidMsg,
    DealStatusMsg,
    DeclineMsg,
    Rfq,
    RfqAnswer,
    SeedMsg,
    TermsMsg,
)
from mercato.errors import ChainError
from mercato.provider.store import LANE_TAKEN
from mercato.requester import Market
from mercato.runtimes.blobs import content_hash
from mercato.verification.lottery import seal_of
from mercato.verification.result_root import result_root, sha256_hex

KEYS = dev_accounts()
STAKE = 10_000 * 10**6
DEPOSIT = 1_000 * 10**6  # the requester fixture's escrow
STDOUT = b"samples=1000 pi=3.14\n"
MakeMarket = Callable[..., Market]
OUTPUTS = {"pi.txt": b"3.14\n", "sub/more.txt": b"more\n"}


@dataclass
class FakeProvider:
    name: str  # a dev account name, e.g. "provider1"
    ledger: FakeLedger
    price_per_cu: int = 10_000
    stake: int = STAKE
    decline: tuple[str, str] | None = None  # (code, reason)
    delay: float = 0.0  # seconds before answering an RFQ
    bad_signature: bool = False
    tamper_output: bool = False
    wrong_seal: bool = False  # commit a seal over another root: the served result does not open it
    seed_status: int | None = None  # answer POST /v1/deals/{id}/seed with this status instead
    never_commit: bool = False
    fail_run: str | None = None  # report "failed" with this error
    open_itself: bool = False  # open_and_commit with the acceptance instead of commit_result
    lane_taken_by: FakeMarket | None = None  # this requester opens an earlier bid on the lane before ours
    lane_taken_says: bool = True  # with lane_taken_by: report the deal failed (else stay "accepted", mute)
    release_status: int = 200  # answer to DELETE /v1/bids/{id}
    release_hang: float = 0.0  # seconds before answering DELETE /v1/bids/{id}
    accept_status: int = 200  # answer POST /v1/deals/{id}/accept with this status instead (no effect)
    put_refusals: int = 0  # refuse this many blob uploads first (403: no deal here needs it, yet)
    host: str = ""
    lane: int = 0
    deals: dict[str, dict] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    rfqs: int = 0
    puts: int = 0
    sealed_puts: int = 0  # uploads that came sealed to our box key
    released: list[str] = field(default_factory=list)  # deal ids of DELETE /v1/bids/{id} received

    def __post_init__(self) -> None:
        self.api: FakeMarket = self.ledger.client(KEYS[self.name])
        self.host = self.host or f"{self.name}.test"
        self.ledger.mint(self.api.address, 10 * self.stake)
        self.box = BoxKey.derive(KEYS[self.name])  # uploads arrive sealed to its registered key
        self.api.register(f"http://{self.host}", b"\x01" * 32, self.box.public)
        if self.stake:
            self.api.stake(self.stake)

    @property
    def address(self) -> str:
        return self.api.address

    # handlers -----------------------------------------------------------------------------
    async def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/v1/rfq":
            return await self._rfq(Rfq.model_validate_json(request.content))
        if method == "PUT" and path.startswith("/v1/blobs/"):
            self.puts += 1
            if self.put_refusals:
                self.put_refusals -= 1
                return httpx.Response(403, json={"detail": "no open deal here needs it"})
            ref = path.removeprefix("/v1/blobs/")
            data = self.box.open(request.content) if request.headers.get(SEALED_HEADER) == "1" else request.content
            self.sealed_puts += request.headers.get(SEALED_HEADER) == "1"
            if content_hash(data) != ref:
                return httpx.Response(400, json={"detail": "hash mismatch"})
            self.blobs[ref] = data
            return httpx.Response(200, json={"content_hash": ref, "size": len(data)})
        if method == "DELETE" and path.startswith("/v1/bids/"):
            return await self._release(path.removeprefix("/v1/bids/"))
        parts = path.split("/")  # ['', 'v1', 'deals', id, ...]
        if len(parts) >= 4 and parts[2] == "deals":
            deal = self.deals.get(parts[3])
            if deal is None:
                return httpx.Response(404, json={"detail": "unknown deal"})
            if method == "POST" and parts[4:] == ["accept"]:
                return self._accept(deal, AcceptMsg.model_validate_json(request.content))
            if method == "POST" and parts[4:] == ["seed"]:
                return self._seed(deal, SeedMsg.model_validate_json(request.content))
            if method == "GET" and len(parts) == 4:
                return self._status(deal)
            if method == "GET":
                answer = self._file(deal, "/".join(parts[4:]))
                box = request.url.params.get(BOX_PARAM)
                if box is None or answer.status_code != 200:
                    return answer
                return httpx.Response(200, content=seal(answer.content, box), headers={SEALED_HEADER: "1"})
        return httpx.Response(404)

    async def _rfq(self, rfq: Rfq) -> httpx.Response:
        self.rfqs += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.decline is not None:
            answer = RfqAnswer(decline=DeclineMsg(rfq_id=rfq.rfq_id, code=self.decline[0], reason=self.decline[1]))
            return httpx.Response(200, content=answer.model_dump_json())
        spec = JobSpec.from_json(rfq.spec)
        price = self.price_per_cu * cu_from_fuel(spec.limits.fuel)
        if price > rfq.max_price:
            answer = RfqAnswer(decline=DeclineMsg(
                rfq_id=rfq.rfq_id, code="price",
                reason=f"your max_price {rfq.max_price} is below my price {price}"))
            return httpx.Response(200, content=answer.model_dump_json())
        now = self.ledger.time
        self.lane += 1
        leaf = job_leaf(bytes.fromhex(rfq.spec_hash.removeprefix("sha256:")), price, rfq.min_collateral)
        nonce = 1
        verification = (bytes.fromhex(rfq.seed_hash.removeprefix("0x")), rfq.audit_bps, rfq.audit_fee)
        if self.lane_taken_by is not None:  # an earlier bid on this lane (released, say) is opened first
            earlier = Terms(self.lane_taken_by.address, self.address, self.lane, 1, leaf, 1, price,
                            rfq.min_collateral, now + rfq.deadline_s, now + rfq.accept_window_s, *verification)
            self.lane_taken_by.open_deal(earlier, self.api.sign_bid(earlier))
            nonce = 2
        terms = Terms(rfq.requester, self.address, self.lane, nonce, leaf, 1, price, rfq.min_collateral,
                      now + rfq.deadline_s, now + rfq.accept_window_s, *verification)
        signature = self.api.sign_bid(terms)
        if self.bad_signature:
            signature = self.ledger.client(KEYS["requester3"]).sign_bid(terms)
        deal_id = "0x" + terms.deal_id.hex()
        self.deals[deal_id] = {"terms": terms, "spec": spec, "state": "bid"}
        bid = BidMsg(rfq_id=rfq.rfq_id, terms=TermsMsg.of(terms), signature="0x" + signature.hex(),
                     price_per_cu=self.price_per_cu, deal_id=deal_id)
        return httpx.Response(200, content=RfqAnswer(bid=bid).model_dump_json())

    def _accept(self, deal: dict, msg: AcceptMsg) -> httpx.Response:
        if self.accept_status != 200:
            return httpx.Response(self.accept_status, json={"detail": "this provider no longer holds the bid"})
        deal["acceptance"] = bytes.fromhex(msg.acceptance_signature.removeprefix("0x"))
        deal["state"] = "accepted"
        return self._status(deal, run=False)  # the SDK opens the deal once it has this answer: run on the next poll

    def _seed(self, deal: dict, msg: SeedMsg) -> httpx.Response:
        if self.seed_status is not None:
            return httpx.Response(self.seed_status, json={"detail": "no"})
        seed = bytes.fromhex(msg.seed.removeprefix("0x"))
        if keccak(seed) != deal["terms"].seed_hash:
            return httpx.Response(422, json={"detail": "the seed does not hash to the deal's seed_hash"})
        deal["seed"] = seed
        return self._status(deal)

    async def _release(self, deal_id: str) -> httpx.Response:
        if self.release_hang:
            await asyncio.sleep(self.release_hang)
        self.released.append(deal_id)
        deal = self.deals.get(deal_id)
        if deal is None:
            return httpx.Response(404, json={"detail": "unknown deal"})
        if self.release_status != 200:
            return httpx.Response(self.release_status, json={"detail": "no"})
        if deal["state"] != "bid":
            return httpx.Response(409, json={"detail": f"the deal is {deal['state']}"})
        deal["state"] = "expired"
        return self._status(deal)

    def _run(self, deal: dict) -> None:
        spec: JobSpec = deal["spec"]
        needed = {spec.workload, *(h for _, h in spec.inputs)}
        if deal["state"] != "accepted" or not needed <= set(self.blobs):
            return
        if self.lane_taken_by is not None:
            if self.lane_taken_says:
                deal["state"], deal["error"] = "failed", LANE_TAKEN
            return
        deal["started_at"] = time.time()
        if self.fail_run is not None:
            deal["state"], deal["error"] = "failed", self.fail_run
            return
        if self.never_commit:
            deal["state"] = "running"
            return
        root = result_root(outputs=[(p, sha256_hex(b)) for p, b in OUTPUTS.items()], stdout=STDOUT, stderr=b"",
                           outcome="ok", exit_code=0)
        salt = secrets.token_bytes(32)
        sealed = keccak(b"another result") if self.wrong_seal else bytes.fromhex(root)
        seal = seal_of(self.address, deal["terms"].deal_id, sealed, 123, salt)
        deal["receipt"] = {"outcome": "ok", "exit_code": 0, "fuel_used": 123, "cu_used": 1, "result_root": root,
                           "stdout": STDOUT.decode(), "stderr": "", "message": "",
                           "outputs": [{"path": p, "sha256": sha256_hex(b), "size": len(b)} for p, b in OUTPUTS.items()],
                           "timings": {"compile_ms": 0, "run_ms": 1, "wall_ms": 1}}
        deal["salt"], deal["seal"] = salt, seal
        deal["tx"] = self._commit(deal, seal)
        deal["state"] = "committed"

    def _commit(self, deal: dict, seal: bytes) -> str:
        terms: Terms = deal["terms"]
        if self.open_itself:
            try:
                done = self.api.open_and_commit(terms, deal["acceptance"], seal)
                deal["onchain"] = done.deal
                return "0x" + done.tx.tx_hash.hex()
            except ChainError:  # the requester opened it first
                pass
        done = self.api.commit_result(Deal(terms), seal)
        deal["onchain"] = done.deal  # the deal as stored, to check what the requester did with it
        return "0x" + done.tx.tx_hash.hex()

    def _status(self, deal: dict, *, run: bool = True) -> httpx.Response:
        if run:
            self._run(deal)
        if self.never_commit and deal["state"] == "running":
            self.ledger.advance(120)  # time flies while we do nothing
        msg = DealStatusMsg(deal_id="0x" + deal["terms"].deal_id.hex(), state=deal["state"],
                            terms=TermsMsg.of(deal["terms"]), started_at=deal.get("started_at"),
                            receipt=deal.get("receipt"), seal="0x" + deal["seal"].hex() if "seal" in deal else None,
                            salt="0x" + deal["salt"].hex() if "salt" in deal else None, commit_tx=deal.get("tx"),
                            error=deal.get("error"))
        return httpx.Response(200, content=msg.model_dump_json())

    def _file(self, deal: dict, rest: str) -> httpx.Response:
        if rest == "stdout":
            return httpx.Response(200, content=STDOUT)
        if rest == "stderr":
            return httpx.Response(200, content=b"")
        if rest.startswith("outputs/") and rest.removeprefix("outputs/") in OUTPUTS:
            data = OUTPUTS[rest.removeprefix("outputs/")]
            return httpx.Response(200, content=b"tampered" if self.tamper_output else data)
        return httpx.Response(404)


def transport(providers: list[FakeProvider]) -> httpx.MockTransport:
    """One transport routing each host to its fake provider; unknown hosts refuse to connect."""
    by_host = {p.host: p for p in providers}

    async def handler(request: httpx.Request) -> httpx.Response:
        provider = by_host.get(request.url.host)
        if provider is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await provider.handle(request)

    return httpx.MockTransport(handler)
