"""Standing by a deal until its lottery and audit are over (docs/SPEC.md §14.8).

    support = AuditSupport(api, call, client)
    support.start(deal, seed, job, blobs)      # after the result was verified (or challenged)
    left = await support.wait(timeout=300)     # at Market.aclose(): deals still unresolved

An audit is only as good as the auditors' access to the job. The provider serves it, but a
provider that cheats may refuse; the requester holds the same spec and inputs and wants the
audit to happen, so it stands by each deal:

1. **the draw**: if the provider has not drawn the deal a few blocks after the beacon block
   (it has the seed), the requester draws it itself — ``draw`` is open to anyone holding the
   seed — and once the draw window is over it sends the deal to ``audit_by_default``;
2. **the audit**: while the deal is audited and unresolved, every auditor seated for it (the
   first auditor of each round and every committee member) gets the job pushed to it
   (``POST /v1/audits/{id}/job``, then ``PUT /v1/audits/{id}/blobs/{hash}`` for each blob it
   lacks). The auditor checks the spec against the deal's ``jobs_root`` and each blob
   against its hash, so this adds availability without adding trust.

It stops when the deal is cleared, the audit resolved, or the deal settled (finalized,
reclaimed or failed). The deal's state comes from its lane word, whose hash prefix names the
deal together with its lottery status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from mercato.chain.api import AuditState, MarketApi
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, Deal, hash_prefix
from mercato.domain.sealing import sealed_upload
from mercato.domain.wire import AuditJobAck, AuditJobMsg
from mercato.errors import MercatoError

__all__ = ["AuditSupport", "lottery_status"]

log = logging.getLogger("mercato.requester.audits")

Call = Callable[..., Awaitable[Any]]
SETTLED = -1  # the lane no longer holds the deal: finalized, reclaimed or ended by its audit


async def lottery_status(api: MarketApi, call: Call, deal: Deal) -> int:
    """``UNDRAWN``, ``CLEARED`` or ``AUDITED`` while the deal is open, else ``SETTLED``."""
    lane = await call(api.lane, deal.terms.provider, deal.terms.lane)
    if not lane.busy or lane.last_nonce != deal.terms.nonce:
        return SETTLED
    for status in (UNDRAWN, CLEARED, AUDITED):
        if hash_prefix(dataclasses.replace(deal, status=status)) == lane.deal_hash_prefix:
            return status
    return SETTLED


class AuditSupport:
    """The background tasks standing by one requester's deals."""

    def __init__(self, api: MarketApi, call: Call, client: Callable[[], httpx.AsyncClient], *,
                 poll_s: float = 1.0, grace_blocks: int = 2, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 ) -> None:
        self.api, self.call, self.client = api, call, client
        self.poll_s, self.grace_blocks, self.sleep = poll_s, grace_blocks, sleep
        self._tasks: dict[str, asyncio.Task[str]] = {}
        self._params: dict[str, int] | None = None

    def start(self, deal: Deal, seed: bytes, job: AuditJobMsg, blobs: Mapping[str, bytes]) -> None:
        """Stand by ``deal`` in the background (once per deal)."""
        deal_id = "0x" + deal.deal_id.hex()
        if deal_id not in self._tasks:
            self._tasks[deal_id] = asyncio.ensure_future(self._guarded(deal, seed, job, dict(blobs)))

    @property
    def pending(self) -> list[str]:
        """Deals still stood by."""
        return [d for d, t in self._tasks.items() if not t.done()]

    async def wait(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for every deal; cancel the rest and return their ids."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks and timeout > 0:
            log.info("standing by deals until their lottery and audits end",
                     extra={"deals": self.pending, "timeout_s": timeout})
            await asyncio.wait(tasks, timeout=timeout)
        left = self.pending
        for deal_id in left:
            self._tasks[deal_id].cancel()
        if left:
            log.warning("left before the lottery or audit of these deals ended: their auditors now depend on "
                        "the provider serving the job", extra={"deals": left})
        return left

    async def _guarded(self, deal: Deal, seed: bytes, job: AuditJobMsg, blobs: dict[str, bytes]) -> str:
        try:
            return await self.support(deal, seed, job, blobs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background task: nothing here may reach the caller
            log.warning("stopped standing by a deal", extra={"deal_id": "0x" + deal.deal_id.hex(), "error": str(exc)})
            return "error"

    async def _parameters(self) -> dict[str, int]:
        if self._params is None:
            self._params = await self.call(self.api.parameters)  # type: ignore[attr-defined]
        return self._params

    async def support(self, deal: Deal, seed: bytes, job: AuditJobMsg, blobs: dict[str, bytes]) -> str:
        """Stand by ``deal`` until it is cleared, its audit resolved, or it is settled; returns which."""
        served: set[str] = set()
        while True:
            try:
                status = await lottery_status(self.api, self.call, deal)
                if status == SETTLED:
                    return "settled"
                if status == CLEARED:
                    return "cleared"
                if status == UNDRAWN:
                    await self._draw(deal, seed)
                else:
                    audit: AuditState = await self.call(self.api.audit, deal.deal_id)  # type: ignore[attr-defined]
                    if audit.resolved:
                        return "resolved"
                    await self._serve(audit, job, blobs, served)
            except MercatoError as exc:  # a node hiccup: try again next round
                log.info("standing by a deal: will retry", extra={"deal_id": job.deal_id, "error": str(exc)})
            await self.sleep(self.poll_s)

    async def _draw(self, deal: Deal, seed: bytes) -> None:
        params = await self._parameters()
        beacon = deal.committed_block + int(params["beacon_delay"])
        last = beacon + int(params["draw_blocks"])
        nxt = await self.call(self.api.block_number) + 1  # the block our transaction would land in
        try:
            if nxt > last:
                await self.call(self.api.audit_by_default, deal)
            elif nxt > beacon + self.grace_blocks:  # the provider has had its chance to draw
                await self.call(self.api.draw, [deal], [seed])
                log.info("drew the deal ourselves", extra={"deal_id": "0x" + deal.deal_id.hex()})
        except MercatoError as exc:  # drawn meanwhile (by the provider): the next round sees it
            log.info("draw not sent", extra={"deal_id": "0x" + deal.deal_id.hex(), "error": str(exc)})

    async def _serve(self, audit: AuditState, job: AuditJobMsg, blobs: dict[str, bytes], served: set[str]) -> None:
        for i, seat in enumerate(audit.seats):
            if int(seat, 16) == 0 or seat.lower() in served or audit.committed(i):
                continue
            try:
                await self._push(seat, job, blobs)
                served.add(seat.lower())
                log.info("job pushed to its auditor", extra={"deal_id": job.deal_id, "auditor": seat})
            except (httpx.HTTPError, MercatoError, ValueError) as exc:
                log.info("could not push the job to an auditor yet",
                         extra={"deal_id": job.deal_id, "auditor": seat, "error": str(exc)})

    async def _push(self, auditor: str, job: AuditJobMsg, blobs: dict[str, bytes]) -> None:
        info = await self.call(self.api.provider_info, auditor)
        base = f"{info.endpoint.rstrip('/')}/v1/audits/{job.deal_id}"
        http = self.client()
        resp = await http.post(f"{base}/job", json=job.model_dump(mode="json"))
        resp.raise_for_status()
        ack = AuditJobAck.model_validate_json(resp.content)
        for ref in ack.missing:
            if ref not in blobs:
                raise ValueError(f"the auditor asks for {ref}, which is not part of this job")
            body, headers = sealed_upload(blobs[ref], bytes(info.enc_key))  # for the auditor's eyes only
            got = await http.put(f"{base}/blobs/{ref}", content=body, headers=headers)
            got.raise_for_status()
