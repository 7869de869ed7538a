"""The provider's HTTP API (FastAPI): the wire protocol of ``domain.wire``, plus raw results.

    app = create_app(agent)             # the lifespan starts and stops the agent
    uvicorn.run(app, host="127.0.0.1", port=7001)

Endpoints (the OpenAPI is at ``/openapi.json``). "signed": the request carries the headers
``X-Mercato-Signer``/``-Timestamp``/``-Nonce``/``-Signature`` (``provider.guard``); "requester": signed by
the requester the message or deal names; "auditor": by an auditor seated for the deal on-chain:

    GET  /v1/info                               ProviderInfoMsg                                  public
    POST /v1/rfq                                Rfq -> RfqAnswer                                 requester
    POST /v1/rfq/bulk                           BulkRfq -> BulkAnswer (a signed unit price and   requester
                                                capacity for a run of batch deals, or a decline)
    POST /v1/deals/{deal_id}/accept             AcceptMsg -> DealStatusMsg (and the EIP-712       requester
                                                acceptance of the bid's terms)
    DELETE /v1/bids/{deal_id}                   release a losing bid's lane -> DealStatusMsg     requester
                                                (409 taken, 404 unknown)
    POST /v1/deals/{deal_id}/seed               SeedMsg -> DealStatusMsg (422 if it does not     requester
                                                open seed_hash)
    GET  /v1/audits/{deal_id}/job               AuditJobMsg                                      auditor
    GET  /v1/audits/{deal_id}/blobs/{hash}      the job's workload or an input                   auditor
    POST /v1/audits/{deal_id}/job               AuditJobMsg -> AuditJobAck: a job pushed to us   requester
                                                as a drawn auditor (422 if it does not hash to
                                                jobs_root, 409 no seat)
    PUT  /v1/audits/{deal_id}/blobs/{hash}      a pushed job's blob -> AuditJobAck (409 no job,  signed
                                                404 unneeded)
    GET  /v1/deals/{deal_id}                    DealStatusMsg: in full to the requester or an    requester or
                                                auditor; unsigned, the public view (no stdout,   auditor; or
                                                stderr or outputs); 403 to any other signer      unsigned
    GET  /v1/deals/{deal_id}/stdout | /stderr   the exact raw bytes (the receipt's text is       requester or
                                                lossy UTF-8)                                     auditor
    GET  /v1/deals/{deal_id}/outputs/{path}     an output file's bytes (nested paths too, e.g. a requester or
                                                batch's tasks/00003/out/result.txt)              auditor
    PUT  /v1/blobs/{content_hash}               raw body -> BlobMsg (400 bad hash, 413 too big,  requester of a
                                                409 unneeded unless stored)                      deal needing it
    HEAD /v1/blobs/{content_hash}               200 present / 404 absent                         public
    GET  /metrics                               Prometheus text                                  public

Before any route, ``provider.guard`` answers 401 (a write unsigned, a bad signature, a stale
timestamp), 409 (a replayed signature), 413 (a body over ``max_json_bytes``, or
``max_blob_bytes`` for a blob) and 429 with ``Retry-After`` (over the signer's rate limit).
Errors answer ``{"detail": "<advice>"}`` with the status the ``ProviderError`` carries; a body
that does not parse or validate answers 422 the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from mercato.domain.sealing import BOX_PARAM, SEAL_OVERHEAD, SEALED_HEADER, seal
from mercato.domain.wire import (
    AcceptMsg,
    AuditJobAck,
    AuditJobMsg,
    BlobMsg,
    BulkAnswer,
    BulkRfq,
    DealStatusMsg,
    ProviderInfoMsg,
    Rfq,
    RfqAnswer,
    SeedMsg,
)
from mercato.errors import BlobRejected, ProviderError, SealError
from mercato.provider.agent import ProviderAgent
from mercato.provider.guard import GuardMiddleware, RequestGuard, signer_of
from mercato.provider.metrics import CONTENT_TYPE

__all__ = ["create_app"]

DealId = Annotated[str, PathParam(pattern=r"^0x[0-9a-fA-F]{64}$",
                                  description="the on-chain deal id: 0x and 64 hex digits")]


def create_app(agent: ProviderAgent, *, manage_lifecycle: bool = True, guard: RequestGuard | None = None) -> FastAPI:
    """The API of ``agent``; with ``manage_lifecycle`` its lifespan runs ``start()``/``stop()``.
    ``guard`` (default: one from the agent's config) checks signatures, replays and rates."""
    cfg = agent.cfg
    guard = guard or RequestGuard(max_skew_s=cfg.auth_max_skew_s, rate_per_s=cfg.rate_limit_per_s,
                                  burst=cfg.rate_limit_burst)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await agent.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await agent.stop()

    app = FastAPI(title="Mercato provider", version="1", lifespan=lifespan)
    app.state.agent = agent
    app.state.guard = guard
    app.add_middleware(GuardMiddleware, guard=guard, json_cap=cfg.max_json_bytes, blob_cap=cfg.max_blob_bytes)

    @app.exception_handler(ProviderError)
    async def _provider_error(_request: Request, exc: ProviderError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _advice(exc)}, status_code=422)

    @app.get("/v1/info")
    async def info() -> ProviderInfoMsg:
        return await agent.info()

    @app.post("/v1/rfq")
    async def rfq(msg: Rfq, request: Request) -> RfqAnswer:
        agent.authorize_rfq(msg.requester, signer_of(request))
        answer = await agent.answer(msg)
        if answer.bid is not None and await request.is_disconnected():  # a late answer holds nothing
            agent.release_unsent(answer.bid.deal_id)
        return answer

    @app.post("/v1/rfq/bulk")
    async def rfq_bulk(msg: BulkRfq, request: Request) -> BulkAnswer:
        agent.authorize_rfq(msg.requester, signer_of(request))
        return await agent.quote_bulk(msg)

    @app.post("/v1/deals/{deal_id}/accept")
    async def accept(deal_id: DealId, msg: AcceptMsg, request: Request) -> DealStatusMsg:
        agent.authorize_requester(deal_id, signer_of(request), "accept its bid")
        return await agent.accept(deal_id, msg)

    @app.delete("/v1/bids/{deal_id}")
    async def release(deal_id: DealId, request: Request) -> DealStatusMsg:
        agent.authorize_requester(deal_id, signer_of(request), "release its bid")
        return agent.release(deal_id)

    @app.post("/v1/deals/{deal_id}/seed")
    async def seed(deal_id: DealId, msg: SeedMsg, request: Request) -> DealStatusMsg:
        agent.authorize_requester(deal_id, signer_of(request), "reveal its lottery seed")
        return agent.reveal_seed(deal_id, msg)

    @app.get("/v1/audits/{deal_id}/job")
    async def audit_job(deal_id: DealId, request: Request) -> AuditJobMsg:
        return await agent.audit_job(deal_id, signer_of(request))

    @app.get("/v1/audits/{deal_id}/blobs/{content_hash}", response_class=Response)
    async def audit_blob(deal_id: DealId, content_hash: str, request: Request) -> Response:
        data = await agent.audit_blob(deal_id, content_hash, signer_of(request))
        return _answer(data, request)

    @app.post("/v1/audits/{deal_id}/job")
    async def push_audit_job(deal_id: DealId, job: AuditJobMsg, request: Request) -> AuditJobAck:
        agent.authorize_audit_push(job, signer_of(request))
        return await agent.push_audit_job(deal_id, job)

    @app.put("/v1/audits/{deal_id}/blobs/{content_hash}")
    async def push_audit_blob(deal_id: DealId, content_hash: str, request: Request) -> AuditJobAck:
        agent.require_signer(signer_of(request), "an audit blob upload")
        data, sealed = await _read_upload(request, cfg.max_blob_bytes)
        return agent.push_audit_blob(deal_id, content_hash, data, sealed=sealed)

    @app.get("/v1/deals/{deal_id}")
    async def status(deal_id: DealId, request: Request) -> DealStatusMsg:
        signer = signer_of(request)
        if signer is None:
            return agent.status(deal_id, public=True)
        await agent.authorize_reader(deal_id, signer, "its status in full")
        return agent.status(deal_id)

    @app.get("/v1/deals/{deal_id}/stdout", response_class=Response)
    async def stdout(deal_id: DealId, request: Request) -> Response:
        await agent.authorize_reader(deal_id, signer_of(request), "its stdout")
        return _answer_file(agent.result_file(deal_id, "stdout"), request)

    @app.get("/v1/deals/{deal_id}/stderr", response_class=Response)
    async def stderr(deal_id: DealId, request: Request) -> Response:
        await agent.authorize_reader(deal_id, signer_of(request), "its stderr")
        return _answer_file(agent.result_file(deal_id, "stderr"), request)

    @app.get("/v1/deals/{deal_id}/outputs/{path:path}", response_class=Response)
    async def output(deal_id: DealId, path: str, request: Request) -> Response:
        await agent.authorize_reader(deal_id, signer_of(request), "its outputs")
        return _answer_file(agent.result_file(deal_id, "outputs/" + path), request)

    @app.put("/v1/blobs/{content_hash}")
    async def put_blob(content_hash: str, request: Request) -> BlobMsg:
        agent.authorize_blob(content_hash, signer_of(request))
        data, sealed = await _read_upload(request, cfg.max_blob_bytes)
        return agent.put_blob(content_hash, data, sealed=sealed)

    @app.head("/v1/blobs/{content_hash}")
    async def head_blob(content_hash: str) -> Response:
        return Response(status_code=200 if agent.has_blob(content_hash) else 404)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(agent.metrics_text(), media_type=CONTENT_TYPE)

    return app


async def _read_upload(request: Request, cap: int) -> tuple[bytes, bool]:
    """A blob upload's body, capped, and whether it is a box sealed to this provider's registered
    key (``X-Mercato-Sealed: 1``; such a body may be the cap plus a box's overhead)."""
    sealed = request.headers.get(SEALED_HEADER) == "1"
    return await _read_capped(request, cap + (SEAL_OVERHEAD if sealed else 0)), sealed


def _answer(data: bytes, request: Request) -> Response:
    """Raw bytes, sealed to the box key the (signed) query names in ``?box=<hex>``, if any."""
    box = request.query_params.get(BOX_PARAM)
    if box is None:
        return Response(content=data, media_type="application/octet-stream")
    try:
        sealed = seal(data, box)
    except (SealError, ValueError):
        raise BlobRejected("box must be a 32-byte X25519 public key in hex: the key to seal the answer to",
                           http_status=422) from None
    return Response(content=sealed, media_type="application/octet-stream", headers={SEALED_HEADER: "1"})


def _answer_file(path: Path, request: Request) -> Response:
    """A result file as ``_answer`` sends bytes (streamed as is when no box is asked for)."""
    if BOX_PARAM not in request.query_params:
        return FileResponse(path, media_type="application/octet-stream")
    return _answer(path.read_bytes(), request)


async def _read_capped(request: Request, cap: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``cap``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise BlobRejected(f"blob is {declared} bytes, over this provider's cap of {cap}", http_status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BlobRejected(f"blob is over this provider's cap of {cap} bytes", http_status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _advice(exc: RequestValidationError) -> str:
    """One line per problem of a body or parameter that does not validate, as advice."""
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return ("the request does not match the protocol: " + "; ".join(problems) + more
            + ": send the message of domain.wire this route takes (see /openapi.json)")
