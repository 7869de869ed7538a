"""The provider's HTTP API (FastAPI): the wire protocol of ``domain.wire``, plus raw results.

    app = create_app(agent)             # the lifespan starts and stops the agent
    uvicorn.run(app, host="127.0.0.1", port=7001)

Endpoints (the OpenAPI is at ``/openapi.json``):

    GET  /v1/info                               ProviderInfoMsg
    POST /v1/rfq                                Rfq -> RfqAnswer
    POST /v1/rfq/bulk                           BulkRfq -> BulkAnswer (a signed unit price and capacity
                                                for a run of batch deals, or a decline)
    POST /v1/deals/{deal_id}/accept             AcceptMsg -> DealStatusMsg
    DELETE /v1/bids/{deal_id}                   release a losing bid's lane -> DealStatusMsg (409 taken, 404 unknown)
    POST /v1/deals/{deal_id}/seed               SeedMsg -> DealStatusMsg (422 if it does not open seed_hash)
    GET  /v1/audits/{deal_id}/job               AuditJobMsg (403 unless a drawn auditor signed the request)
    GET  /v1/audits/{deal_id}/blobs/{hash}      the job's workload or an input, same condition
    POST /v1/audits/{deal_id}/job               AuditJobMsg -> AuditJobAck: a job pushed to us as a drawn
                                                auditor (422 if it does not hash to jobs_root, 409 no seat)
    PUT  /v1/audits/{deal_id}/blobs/{hash}      a pushed job's blob -> AuditJobAck (409 no job, 404 unneeded)
    GET  /v1/deals/{deal_id}                    DealStatusMsg
    GET  /v1/deals/{deal_id}/stdout | /stderr   the exact raw bytes (the receipt's text is lossy UTF-8)
    GET  /v1/deals/{deal_id}/outputs/{path}     an output file's bytes (nested paths too, e.g. a
                                                batch's tasks/00003/out/result.txt)
    PUT  /v1/blobs/{content_hash}               raw body -> BlobMsg (400 bad hash, 413 too big, 409 unneeded unless stored)
    HEAD /v1/blobs/{content_hash}               200 present / 404 absent
    GET  /metrics                               Prometheus text

Errors answer ``{"detail": "<advice>"}`` with the status the ``ProviderError`` carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from mercato.domain.wire import (
    AUDIT_AUTH_HEADERS,
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
from mercato.errors import BlobRejected, ProviderError
from mercato.provider.agent import ProviderAgent
from mercato.provider.metrics import CONTENT_TYPE

__all__ = ["create_app"]


def create_app(agent: ProviderAgent, *, manage_lifecycle: bool = True) -> FastAPI:
    """The API of ``agent``; with ``manage_lifecycle`` its lifespan runs ``start()``/``stop()``."""

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

    @app.exception_handler(ProviderError)
    async def _provider_error(_request: Request, exc: ProviderError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.get("/v1/info")
    async def info() -> ProviderInfoMsg:
        return await agent.info()

    @app.post("/v1/rfq")
    async def rfq(msg: Rfq) -> RfqAnswer:
        return await agent.answer(msg)

    @app.post("/v1/rfq/bulk")
    async def rfq_bulk(msg: BulkRfq) -> BulkAnswer:
        return await agent.quote_bulk(msg)

    @app.post("/v1/deals/{deal_id}/accept")
    async def accept(deal_id: str, msg: AcceptMsg) -> DealStatusMsg:
        return await agent.accept(deal_id, msg)

    @app.delete("/v1/bids/{deal_id}")
    async def release(deal_id: str) -> DealStatusMsg:
        return agent.release(deal_id)

    @app.post("/v1/deals/{deal_id}/seed")
    async def seed(deal_id: str, msg: SeedMsg) -> DealStatusMsg:
        return agent.reveal_seed(deal_id, msg)

    @app.get("/v1/audits/{deal_id}/job")
    async def audit_job(deal_id: str, request: Request) -> AuditJobMsg:
        auditor, signature = (request.headers.get(h, "") for h in AUDIT_AUTH_HEADERS)
        return await agent.audit_job(deal_id, auditor, signature)

    @app.get("/v1/audits/{deal_id}/blobs/{content_hash}", response_class=Response)
    async def audit_blob(deal_id: str, content_hash: str, request: Request) -> Response:
        auditor, signature = (request.headers.get(h, "") for h in AUDIT_AUTH_HEADERS)
        data = await agent.audit_blob(deal_id, content_hash, auditor, signature)
        return Response(content=data, media_type="application/octet-stream")

    @app.post("/v1/audits/{deal_id}/job")
    async def push_audit_job(deal_id: str, job: AuditJobMsg) -> AuditJobAck:
        return await agent.push_audit_job(deal_id, job)

    @app.put("/v1/audits/{deal_id}/blobs/{content_hash}")
    async def push_audit_blob(deal_id: str, content_hash: str, request: Request) -> AuditJobAck:
        data = await _read_capped(request, agent.cfg.max_blob_bytes)
        return agent.push_audit_blob(deal_id, content_hash, data)

    @app.get("/v1/deals/{deal_id}")
    async def status(deal_id: str) -> DealStatusMsg:
        return agent.status(deal_id)

    @app.get("/v1/deals/{deal_id}/stdout", response_class=Response)
    async def stdout(deal_id: str) -> FileResponse:
        return FileResponse(agent.result_file(deal_id, "stdout"), media_type="application/octet-stream")

    @app.get("/v1/deals/{deal_id}/stderr", response_class=Response)
    async def stderr(deal_id: str) -> FileResponse:
        return FileResponse(agent.result_file(deal_id, "stderr"), media_type="application/octet-stream")

    @app.get("/v1/deals/{deal_id}/outputs/{path:path}", response_class=Response)
    async def output(deal_id: str, path: str) -> FileResponse:
        return FileResponse(agent.result_file(deal_id, "outputs/" + path), media_type="application/octet-stream")

    @app.put("/v1/blobs/{content_hash}")
    async def put_blob(content_hash: str, request: Request) -> BlobMsg:
        agent.check_blob_ref(content_hash)
        data = await _read_capped(request, agent.cfg.max_blob_bytes)
        return agent.put_blob(content_hash, data)

    @app.head("/v1/blobs/{content_hash}")
    async def head_blob(content_hash: str) -> Response:
        return Response(status_code=200 if agent.has_blob(content_hash) else 404)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(agent.metrics_text(), media_type=CONTENT_TYPE)

    return app


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
