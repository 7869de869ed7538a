"""The explorer's web app: a read-only JSON API (OpenAPI at ``/openapi.json``) and the dashboard.

    >>> app = create_app(Views(Store(db_path)), status=lambda: {...})    # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8600)                   # doctest: +SKIP

Amounts are integers in token base units (the mock stable has 6 decimals); prices per unit
are floats rounded to 6 places for display, with the exact VWAP as a fraction string.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from mercato.explorer.views import Views

__all__ = ["advertised", "create_app", "static_dir"]


class Status(BaseModel):
    chain_id: int
    market: str
    rpc_url: str
    head: int | None
    indexed_block: int
    confirmations: int
    last_error: str | None
    last_sync: float | None


class Overview(BaseModel):
    chain_time: int
    indexed_block: int
    providers: int
    active_providers: int
    total_stake: int
    deals: int
    open_deals: int
    deals_by_status: dict[str, int]
    volume: int
    volume_24h: int
    slashes: int
    slashed_amount: int
    vwap_1h: float | None
    vwap_24h: float | None
    last_price: float | None


class Provider(BaseModel):
    address: str
    endpoint: str
    resources: str
    registered: bool
    registered_block: int
    stake: int
    unbonding: int
    jailed: bool
    completed: int
    missed: int
    slashed: int
    volume: int
    earnings_claimed: int
    audits_passed: int
    audits_failed: int
    disputes_lost: int
    audits_done: int
    no_shows: int
    active_deals: int
    score: float  # reputation_score over outcomes decayed by age
    chain_score: float  # reputation_score over the plain on-chain counters (the SDK's view)
    chain_score_exact: str
    last_price_per_cu: float | None
    price_per_cu: int | None = None  # what its agent asks now (GET /v1/info), when it answers
    gpus: list[dict[str, Any]] | None = None  # the GPUs its agent offers ({"model", "memory_mb"} each)
    resources_verified: bool | None = None  # the agent's advertised capacity hashes to the registry entry


class Deal(BaseModel):
    deal_id: str
    requester: str
    provider: str
    lane: int
    nonce: int
    jobs_root: str
    jobs: int
    price: int
    collateral: int
    deadline: int
    expiry: int
    audit_bps: int
    audit_fee: int
    seal: str | None
    status: str
    opened_by: str
    opened_block: int
    opened_at: int
    opened_tx: str
    committed_block: int | None
    committed_at: int | None
    commit_tx: str | None
    drawn_block: int | None
    audited: bool | None
    draw_reason: int | None
    audit_outcome: int | None
    resolved_tx: str | None
    finalized_block: int | None
    finalized_at: int | None
    finalized_tx: str | None
    reclaimed_block: int | None
    reclaimed_tx: str | None
    refund: int | None
    penalty: int | None
    flagged: bool
    fuel: int | None
    units: int | None
    unit: str | None
    units_source: str | None
    per_unit: float | None


class Step(BaseModel):
    step: str
    block: int
    at: int
    tx: str | None
    note: str


class AuditEvent(BaseModel):
    block: int
    log_index: int
    kind: str
    party: str | None
    amount: int | None
    detail: Any
    tx_hash: str
    at: int


class Result(BaseModel):
    executor: str
    result_root: str
    fuel: int
    block: int
    tx_hash: str


class Slash(BaseModel):
    block: int
    log_index: int
    provider: str
    kind: str  # miss_penalty | no_show | forfeit | slash
    amount: int
    to_addr: str | None
    deal_id: str | None
    tx_hash: str
    at: int


class DealDetail(Deal):
    timeline: list[Step]
    audit: list[AuditEvent]
    results: list[Result]
    slashes: list[Slash]


class TxEvent(BaseModel):
    log_index: int
    name: str
    args: dict[str, Any]  # addresses checksummed, bytes as 0x-hex, amounts as integers


class TxOut(BaseModel):
    tx_hash: str
    block: int
    at: int
    events: list[TxEvent]


class PricePointOut(BaseModel):
    at: int
    deal_id: str
    price: int
    units: int
    per_unit: float | None


class CandleOut(BaseModel):
    start: int
    deals: int
    volume: int
    units: int
    vwap: float | None
    low: float | None
    high: float | None


class Prices(BaseModel):
    unit: str
    now: int
    vwap: dict[str, float | None]
    vwap_exact: dict[str, str | None]
    last: float | None
    points: list[PricePointOut]
    candles: list[CandleOut]
    windows: dict[str, int]


def advertised(info: dict[str, Any], registry_resources: str) -> dict[str, Any]:
    """What a provider's ``/v1/info`` adds to its row: its asking price per CU and its GPUs, the
    GPUs only when its advertised capacity (``resources``) hashes to the registry entry
    (SHA-256 of the sorted-key JSON, as the agent registers it) or it publishes no such JSON."""
    out: dict[str, Any] = {"price_per_cu": info.get("price_per_cu")}
    res = info.get("resources")
    if isinstance(res, dict):
        digest = "0x" + hashlib.sha256(json.dumps(res, sort_keys=True).encode()).hexdigest()
        out["resources_verified"] = digest == registry_resources.lower()
        gpus = res.get("gpus") if out["resources_verified"] else None
    else:
        gpus = info.get("gpus")
    out["gpus"] = [g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else None
    return out


def static_dir() -> str:
    """The packaged front end (``mercato/explorer/static``)."""
    return str(resources.files("mercato.explorer") / "static")


def create_app(views: Views, *, status: Callable[[], dict[str, Any]],
               provider_info: Callable[[str], dict[str, Any] | None] | None = None) -> FastAPI:
    """The explorer app over ``views``; ``status`` reports the indexer, ``provider_info`` (optional)
    returns a provider agent's ``/v1/info`` (cached by the caller)."""
    app = FastAPI(title="Mercato explorer", version="1",
                  description="Read-only view of a Mercato market, indexed from the Market contract's events.")

    @app.get("/api/status", response_model=Status)
    def get_status() -> dict[str, Any]:
        """The indexer: chain, head, indexed block, last error."""
        return status()

    @app.get("/api/overview", response_model=Overview)
    def overview() -> dict[str, Any]:
        """Market at a glance: providers, open deals, volume, VWAP."""
        return views.overview()

    @app.get("/api/providers", response_model=list[Provider])
    def providers() -> list[dict[str, Any]]:
        """Every provider seen on-chain with stake, outcomes and reputation."""
        rows = views.providers()
        if provider_info is not None:
            for p in rows:
                info = provider_info(p["endpoint"]) if p["endpoint"] else None
                if info:
                    p |= advertised(info, p["resources"])
        return rows

    @app.get("/api/deals", response_model=list[Deal])
    def deals(status: str | None = Query(None, description="a deal state, or 'active'"),
              provider: str | None = None, limit: int = Query(50, ge=1, le=500),
              offset: int = Query(0, ge=0)) -> list[dict[str, Any]]:
        """Deals, newest first."""
        return views.deals(status=status, provider=provider, limit=limit, offset=offset)

    @app.get("/api/deals/{deal_id}", response_model=DealDetail)
    def deal(deal_id: str) -> dict[str, Any]:
        """One deal: terms, lifecycle timeline, audit events, revealed claims, slashes."""
        found = views.deal(deal_id)
        if found is None:
            raise HTTPException(404, f"no deal {deal_id} in the index")
        return found

    @app.get("/api/tx/{tx_hash}", response_model=TxOut)
    def tx(tx_hash: str) -> dict[str, Any]:
        """The Market events a transaction logged, decoded."""
        found = views.tx(tx_hash)
        if found is None:
            raise HTTPException(404, f"no indexed Market event in transaction {tx_hash}")
        return found

    @app.get("/api/slashes", response_model=list[Slash])
    def slashes(limit: int = Query(200, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Slashing history: miss penalties, auditor no-shows, whole-stake forfeits (newest first)."""
        return views.slashes(limit)

    @app.get("/api/prices", response_model=Prices)
    def prices(unit: str = Query("cu", pattern="^(cu|vcpu_s)$"), bucket_s: int = Query(60, ge=1),
               since_s: int = Query(24 * 3600, ge=1)) -> dict[str, Any]:
        """The price index: clearing price per unit of each finalized deal, candles, VWAP 1 h / 24 h."""
        return views.prices(unit, bucket_s, since_s)

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(f"{static_dir()}/index.html")

    @app.get("/index.html", include_in_schema=False)
    def index_html() -> RedirectResponse:
        return RedirectResponse("/")

    return app
