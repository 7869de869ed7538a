"""The requester ↔ provider HTTP protocol: one pydantic model per message (pure, no I/O).

Both the provider's FastAPI app (which publishes them in its OpenAPI) and the requester SDK
use these models, so the two sides cannot drift apart.

    rfq = Rfq(rfq_id=new_id(), requester=addr, chain_id=31337, market=market_addr,
              spec=spec.to_json(), spec_hash=spec.spec_hash(), max_price=500_000,
              min_collateral=9_500_000, deadline_s=600, accept_window_s=30)

Endpoints (all under the provider's registered endpoint; see docs/SPEC.md §13). "signed" means
the request carries the headers of ``request_auth_headers`` (below); "requester" that the signer
must be the requester the message or deal names, "auditor" an auditor seated for the deal on-chain:

    GET  /v1/info                         ProviderInfoMsg                                     public
    POST /v1/rfq                          Rfq -> RfqAnswer (a signed bid, or a reasoned decline)  signed: rfq.requester
    POST /v1/rfq/bulk                     BulkRfq -> BulkAnswer                               signed: rfq.requester
    POST /v1/deals/{deal_id}/accept       AcceptMsg -> DealStatusMsg  (the EIP-712 acceptance authorizes;
                                          and the request itself must be signed by terms.requester)
    DELETE /v1/bids/{deal_id}             release a losing bid -> DealStatusMsg ("expired", lane freed);
                                          409 if accepted, running or on-chain; 404 if unknown   signed: requester
    PUT  /v1/blobs/{content_hash}         raw bytes (hash-checked, size-capped) -> BlobMsg    signed: the requester
                                          of a live deal that needs the blob (any signer once it is stored)
    HEAD /v1/blobs/{content_hash}         200 if present, 404 if not                          public
    GET  /v1/deals/{deal_id}              DealStatusMsg: in full to its requester or auditors (signed);
                                          unsigned, the public view (``public_status``: no stdout, stderr
                                          or output list); signed by anyone else, 403
    GET  /v1/deals/{deal_id}/stdout | /stderr | /outputs/{path}   the exact bytes   signed: requester or auditor
    POST /v1/deals/{deal_id}/seed         SeedMsg -> DealStatusMsg (the requester reveals its lottery
                                          seed so the provider can run the draw; checked against seed_hash)
                                                                                              signed: requester
    GET  /v1/audits/{deal_id}/job         AuditJobMsg                                         signed: auditor
    GET  /v1/audits/{deal_id}/blobs/{content_hash}   the job's workload or an input            signed: auditor
    POST /v1/audits/{deal_id}/job         AuditJobMsg -> AuditJobAck (a job pushed to a drawn auditor)
                                                                                              signed: job.terms.requester
    PUT  /v1/audits/{deal_id}/blobs/{content_hash}   a pushed job's blob -> AuditJobAck        signed (hash-checked)
    GET  /metrics                         Prometheus text format                              public

Signed requests: ``X-Mercato-Signer`` (the address), ``X-Mercato-Timestamp`` (unix seconds),
``X-Mercato-Nonce`` (fresh, random) and ``X-Mercato-Signature`` (EIP-191 personal_sign of
``request_auth_message(method, target, timestamp, nonce, body)``, where ``target`` is the path
and query exactly as sent). The provider refuses
a timestamp outside its clock window (401), a signature seen before within it (409), and answers
401 to a bad or missing signature, 403 to a valid signer who may not do it, 413 to an oversized
body, 422 to a malformed one and 429 (with ``Retry-After``) past its rate limit.

Amounts are integers in token base units; byte strings are 0x-prefixed hex; deal ids are the
on-chain ``keccak256(abi.encode(provider, lane, nonce))``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mercato.domain.deals import Terms

__all__ = [
    "DEAL_STATES",
    "NONCE_HEADER",
    "REQUEST_AUTH_HEADERS",
    "SIGNATURE_HEADER",
    "SIGNER_HEADER",
    "TIMESTAMP_HEADER",
    "AcceptMsg",
    "AuditJobAck",
    "AuditJobMsg",
    "BidMsg",
    "BulkAnswer",
    "BulkQuote",
    "BulkRfq",
    "bulk_quote_message",
    "BlobMsg",
    "DealState",
    "DealStatusMsg",
    "DeclineMsg",
    "ProviderInfoMsg",
    "Rfq",
    "RfqAnswer",
    "SeedMsg",
    "TermsMsg",
    "new_id",
    "public_receipt",
    "request_auth_headers",
    "request_auth_message",
]

PROTOCOL_VERSION = 1


def new_id() -> str:
    """A fresh random RFQ id (128 bits, hex)."""
    return secrets.token_hex(16)


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TermsMsg(_Msg):
    """``domain.deals.Terms`` on the wire (``jobs_root`` as 0x-hex)."""

    requester: str
    provider: str
    lane: int = Field(ge=0)
    nonce: int = Field(ge=1, lt=2**64)
    jobs_root: str
    jobs: int = Field(ge=1)
    price: int = Field(ge=0, lt=2**96)
    collateral: int = Field(ge=0, lt=2**96)
    deadline: int = Field(ge=0)
    expiry: int = Field(ge=0)
    seed_hash: str
    audit_bps: int = Field(ge=0, le=10_000)
    audit_fee: int = Field(ge=0, lt=2**96)

    @classmethod
    def of(cls, terms: Terms) -> TermsMsg:
        """The wire form of ``terms``."""
        return cls(requester=terms.requester, provider=terms.provider, lane=terms.lane, nonce=terms.nonce,
                   jobs_root="0x" + terms.jobs_root.hex(), jobs=terms.jobs, price=terms.price,
                   collateral=terms.collateral, deadline=terms.deadline, expiry=terms.expiry,
                   seed_hash="0x" + terms.seed_hash.hex(), audit_bps=terms.audit_bps, audit_fee=terms.audit_fee)

    def to_terms(self) -> Terms:
        """Back to the domain dataclass (validates addresses and sizes)."""
        return Terms(requester=self.requester, provider=self.provider, lane=self.lane, nonce=self.nonce,
                     jobs_root=bytes.fromhex(self.jobs_root.removeprefix("0x")), jobs=self.jobs,
                     price=self.price, collateral=self.collateral, deadline=self.deadline, expiry=self.expiry,
                     seed_hash=bytes.fromhex(self.seed_hash.removeprefix("0x")), audit_bps=self.audit_bps,
                     audit_fee=self.audit_fee)


class ProviderInfoMsg(_Msg):
    """What a provider says about itself (its on-chain entry is the authority)."""

    protocol: int = PROTOCOL_VERSION
    provider: str
    chain_id: int
    market: str
    runtimes: list[str]
    lanes: int
    free_lanes: int
    price_per_cu: int
    max_fuel: int
    max_memory_bytes: int
    max_input_bytes: int
    # container providers only: the GPUs offered ({"model", "memory_mb"} each) and the JSON whose
    # SHA-256 is the registry entry's ``resources`` (so a requester can check this against the chain)
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    resources: dict[str, Any] | None = None


class Rfq(_Msg):
    """A request for quote: the full job spec plus the requester's limits.

    ``spec`` is ``JobSpec.to_json()``; ``spec_hash`` must equal ``JobSpec.spec_hash()``.
    The bid's ``deadline`` is ``now + deadline_s`` and its ``expiry`` ``now + accept_window_s``.
    """

    protocol: int = PROTOCOL_VERSION
    rfq_id: str = Field(min_length=8, max_length=64)
    requester: str
    chain_id: int
    market: str
    spec: dict[str, Any]
    spec_hash: str
    max_price: int = Field(ge=0, lt=2**96)
    min_collateral: int = Field(ge=0, lt=2**96)
    deadline_s: int = Field(ge=1, le=30 * 86400)
    accept_window_s: int = Field(ge=1, le=3600)
    input_bytes: int = Field(default=0, ge=0)  # total size of the inputs and workload to upload
    # verification terms (docs/SPEC.md §14), copied into the bid's terms unchanged
    seed_hash: str  # 0x-hex keccak256 of the requester's secret lottery seed
    audit_bps: int = Field(ge=1, le=10_000)  # audit probability in basis points (>= the market's floor)
    audit_fee: int = Field(ge=0, lt=2**96)  # what one audit pays its auditor, escrowed with the price
    quote_id: str | None = None  # a live BulkQuote of this provider's: the bid is priced by it


class BidMsg(_Msg):
    """A sealed bid: ``terms`` signed by the provider as an EIP-712 ``Bid``."""

    rfq_id: str
    terms: TermsMsg
    signature: str  # 0x-hex, 65 bytes
    price_per_cu: int
    deal_id: str


class DeclineMsg(_Msg):
    """A reasoned refusal to bid; ``code`` is machine-readable, ``reason`` reads like advice."""

    rfq_id: str
    code: Literal["capacity", "runtime", "limits", "price", "collateral", "bond", "spec", "chain", "inputs",
                  "image", "no_gpu", "escrow", "expiry"]  # image: a container image this provider cannot obtain;
    # no_gpu: GPUs unmet; bond: the stake cannot carry this deal on top of those in flight (docs/SPEC.md §14.6),
    # or its miss-penalty exposure cap is full; escrow: the requester's escrow cannot pay this bid (price plus
    # audit fee); expiry: the bid's expiry leaves too little time before the deadline to run the job, or is
    # too far ahead (a requester opening at the expiry could force a miss: docs/SPEC.md §13)
    reason: str


class RfqAnswer(_Msg):
    """Exactly one of ``bid`` and ``decline``."""

    bid: BidMsg | None = None
    decline: DeclineMsg | None = None


class BulkRfq(_Msg):
    """A bulk request for quote (``POST /v1/rfq/bulk``; docs/SPEC.md §17): a run of ``tasks``
    tasks of one workload. ``spec`` is the base ``JobSpec.to_json()`` (no ``tasks``): its
    runtime, workload and per-task limits, so a provider can judge one task. The answer is a
    unit price and a capacity, not a deal: the run's batches are then asked for one by one
    with an ordinary ``Rfq`` naming the quote (``quote_id``)."""

    protocol: int = PROTOCOL_VERSION
    rfq_id: str = Field(min_length=8, max_length=64)
    requester: str
    chain_id: int
    market: str
    spec: dict[str, Any]
    spec_hash: str
    tasks: int = Field(ge=1, le=10_000_000)
    max_price_per_cu: int = Field(ge=0, lt=2**96)
    deadline_s: int = Field(ge=1, le=30 * 86400)  # each batch's deadline, counted from its own bid


class BulkQuote(_Msg):
    """A provider's answer to a ``BulkRfq``: it runs up to ``capacity`` tasks at once (one per
    lane; a batch holds at most ``max_tasks_per_deal``) at ``price_per_cu`` until ``expiry``
    (unix time). ``signature`` is the provider's EIP-191 signature over
    ``bulk_quote_message(quote)``. An ``Rfq`` with this ``quote_id`` from the same requester is
    priced at ``price_per_cu`` (or less) until ``expiry``."""

    rfq_id: str
    quote_id: str
    provider: str
    price_per_cu: int = Field(ge=0, lt=2**96)
    capacity: int = Field(ge=1)
    max_tasks_per_deal: int = Field(ge=1)
    expiry: int = Field(ge=0)
    signature: str = ""


def bulk_quote_message(quote: BulkQuote) -> str:
    """The text a provider signs (EIP-191) for a bulk quote: every field but the signature."""
    return (f"mercato bulk quote {quote.quote_id} for rfq {quote.rfq_id}: provider {quote.provider.lower()} "
            f"price_per_cu {quote.price_per_cu} capacity {quote.capacity} max_tasks_per_deal "
            f"{quote.max_tasks_per_deal} expiry {quote.expiry}")


class BulkAnswer(_Msg):
    """Exactly one of ``quote`` and ``decline``."""

    quote: BulkQuote | None = None
    decline: DeclineMsg | None = None


class AcceptMsg(_Msg):
    """The requester's signed ``Acceptance`` of a bid: the provider may start at once
    (optimistic start) and may open the deal itself with it."""

    deal_id: str
    terms: TermsMsg
    acceptance_signature: str  # 0x-hex, 65 bytes, EIP-712 Acceptance signed by terms.requester


class SeedMsg(_Msg):
    """The requester's lottery seed for a deal (0x-hex, 32 bytes): revealed once it has the
    result, so the provider can run ``draw`` as soon as the beacon block is mined."""

    seed: str


SIGNER_HEADER = "X-Mercato-Signer"
TIMESTAMP_HEADER = "X-Mercato-Timestamp"
NONCE_HEADER = "X-Mercato-Nonce"
SIGNATURE_HEADER = "X-Mercato-Signature"
REQUEST_AUTH_HEADERS = (SIGNER_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
REQUEST_AUTH_PREFIX = "mercato request v1"
NONCE_PATTERN = r"^[0-9A-Za-z_-]{8,64}$"


def request_auth_message(method: str, target: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The text a caller signs (EIP-191 personal_sign) for one request, one item per line: a
    fixed prefix, the method, the target (path and query exactly as sent, percent-encoding
    included), the unix timestamp, a fresh random nonce (so two identical requests in one second
    differ) and the hex SHA-256 of the body."""
    return "\n".join((REQUEST_AUTH_PREFIX, method.upper(), target, str(int(timestamp)), nonce,
                      hashlib.sha256(body).hexdigest()))


def request_auth_headers(sign_text: Callable[[str], bytes], signer: str, method: str, target: str,
                         body: bytes, timestamp: int, nonce: str | None = None) -> dict[str, str]:
    """The four headers of a signed request; ``sign_text`` signs a text with ``signer``'s key."""
    nonce = nonce or secrets.token_hex(16)
    signature = sign_text(request_auth_message(method, target, timestamp, nonce, body))
    return {SIGNER_HEADER: signer, TIMESTAMP_HEADER: str(int(timestamp)), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: "0x" + bytes(signature).hex()}


class AuditJobMsg(_Msg):
    """What an auditor needs to re-execute a deal blind: its terms and the job spec (whose
    hash, price and collateral must give ``terms.jobs_root``)."""

    deal_id: str
    terms: TermsMsg
    spec: dict[str, Any]


class AuditJobAck(_Msg):
    """A drawn auditor's answer to a job pushed to it (``POST /v1/audits/{id}/job``): which of the
    job's blobs it still lacks (send each with ``PUT /v1/audits/{id}/blobs/{hash}``)."""

    deal_id: str
    missing: list[str] = Field(default_factory=list)


class BlobMsg(_Msg):
    """A stored blob."""

    content_hash: str
    size: int


DealState = Literal[
    "bid",  # bid sent, lane reserved, waiting for acceptance or the on-chain open
    "accepted",  # acceptance or DealOpened seen; waiting for inputs
    "running",  # in the sandbox
    "executed",  # receipt ready, seal not yet on-chain
    "committed",  # seal on-chain; lottery, then the challenge window (and an audit, if drawn)
    "finalized",  # paid
    "failed",  # could not run or commit; ``error`` says why
    "expired",  # bid never accepted, or released by the requester (DELETE /v1/bids/{id}); lane released
    "reclaimed",  # requester reclaimed after a missed deadline
]
DEAL_STATES: tuple[str, ...] = DealState.__args__  # type: ignore[attr-defined]


class DealStatusMsg(_Msg):
    """Where a deal stands at the provider. ``salt`` is revealed once the seal is on-chain, so
    the requester can check ``keccak256(abi.encode(provider, deal_id, result_root, fuel, salt)) == seal``
    (``fuel`` is the receipt's)."""

    deal_id: str
    state: DealState
    terms: TermsMsg
    on_chain: bool = False  # DealOpened seen (or opened by the provider itself)
    missing_inputs: list[str] = []
    started_at: float | None = None  # unix time the sandbox started the workload
    receipt: dict[str, Any] | None = None  # Receipt.to_json()
    seal: str | None = None
    salt: str | None = None
    commit_tx: str | None = None
    error: str | None = None


# what anyone may see of a receipt: enough to open the seal (with the salt) and to bill by,
# none of the job's output (stdout, stderr, the output files' names and hashes)
_PUBLIC_RECEIPT_KEYS = ("fuel_used", "cu_used", "result_root", "deterministic", "resource_seconds")


def public_receipt(receipt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The public part of ``Receipt.to_json()``, as ``GET /v1/deals/{id}`` shows it unsigned."""
    if receipt is None:
        return None
    return {k: receipt[k] for k in _PUBLIC_RECEIPT_KEYS if k in receipt}
