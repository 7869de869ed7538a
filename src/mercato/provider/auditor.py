"""The auditor role: re-execute a deal blind when the chain draws this provider for it.

    auditor.assign(deal_id)        # the watcher saw AuditorDrawn(deal_id, us)
    await auditor.run_once()       # the housekeeping loop: fetch, run, commit, reveal, advance

Every registered provider with stake can be drawn (docs/SPEC.md §14.4), stake-weighted and
never for its own deals. Once drawn, this agent:

1. gets the job: the requester pushes it (``POST /v1/audits/{id}/job`` and
   ``PUT /v1/audits/{id}/blobs/{hash}``), or this agent fetches it from the audited provider
   (``GET /v1/audits/{id}/job`` and the blobs, requests signed as this provider — see
   ``provider.guard`` — that the audited provider checks against the on-chain seats). Either
   way the spec must hash to the deal's ``jobs_root`` and every blob to its name, so whoever
   serves it cannot change the job;
2. runs it in the same deterministic sandbox, off the event loop (a batch task by task, as
   its provider did: ``runtimes.run_spec``) — except a container job,
   which no re-run reproduces (docs/SPEC.md §15.4): for one of those it fetches the provider's
   own result (receipt and bytes, served to its seated auditors once the seal is on-chain) and
   claims the root those bytes give, with fuel 0, so an honest provider's audit passes whatever
   a re-run would print and one that cannot serve bytes opening its seal loses;
3. commits ``seal_of(self, deal_id, result_root, fuel, salt)`` blind — it never sees the
   provider's result. When the job cannot be obtained (not pushed, not served) and the commit
   deadline is within max(3 s, audit_period / 4), it commits the *job unavailable* claim
   instead, ``result_root = 0, fuel = 0`` (docs/SPEC.md §14.4), rather than miss the commit;
4. reveals once the audit reaches its reveal phase, and moves an audit whose phase deadline
   passed (``advance``) so that nobody's money waits on a silent party.

Each audit's progress is one small JSON file under ``data_dir/audits`` written atomically,
so a restart resumes it: a re-run of the sandbox gives the same result (it is deterministic)
but the salt is kept from the first run, so a seal already committed can still be opened.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from mercato.chain.api import AUDIT_COMMIT, AUDIT_REVEAL, AuditState
from mercato.domain.deals import job_leaf
from mercato.domain.jobs import CONTAINER_RUNTIME, JobSpec, Receipt
from mercato.domain.sealing import BoxKey, box_query, open_answer
from mercato.domain.wire import AuditJobAck, AuditJobMsg
from mercato.errors import BlobRejected, ChainError, DealsError, MercatoError, ProviderError
from mercato.provider.chainio import ChainIO
from mercato.provider.config import ProviderConfig
from mercato.provider.executor import Executor, fresh_workspace, in_daemon_thread, needed_blobs
from mercato.provider.guard import RequestSigner
from mercato.runtimes import BlobStore, run_spec
from mercato.runtimes.blobs import content_hash
from mercato.verification.lottery import UNAVAILABLE_ROOT, seal_of
from mercato.verification.result_root import result_root

__all__ = ["Auditor", "AuditTask", "checked_spec"]

log = logging.getLogger("mercato.provider.auditor")

# a job still unobtainable this close to the commit deadline is reported unavailable (at least)
UNAVAILABLE_MARGIN_S = 3


@dataclass(slots=True)
class AuditTask:
    """One audit this agent was drawn for, as persisted."""

    deal_id: str
    state: str = "assigned"  # assigned | committed | revealed | done | failed
    result_root: str | None = None
    fuel: int | None = None
    salt: str | None = None
    seal: str | None = None
    error: str | None = None
    spec: dict[str, object] | None = None  # the job as pushed by the requester, checked against jobs_root


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def checked_spec(deal_id: str, job: AuditJobMsg) -> JobSpec:
    """The job's spec, once its terms name ``deal_id`` and the spec with the terms' price and
    collateral hashes to their ``jobs_root``; ``ValueError`` otherwise."""
    spec = JobSpec.from_json(job.spec)
    terms = job.terms.to_terms()
    if terms.deal_id.hex() != deal_id.removeprefix("0x").lower():
        raise ValueError("the terms are those of another deal")
    leaf = job_leaf(bytes.fromhex(spec.spec_hash().removeprefix("sha256:")), terms.price, terms.collateral)
    if leaf != terms.jobs_root:
        raise ValueError("the spec does not hash to the deal's jobs_root")
    return spec


class Auditor:
    """Audits of one provider agent."""

    def __init__(self, cfg: ProviderConfig, chain: ChainIO, executor: Executor, blobs: BlobStore, *,
                 transport: httpx.AsyncBaseTransport | None = None, http_timeout: float = 30.0) -> None:
        self.cfg = cfg
        self.box: BoxKey | None = None  # the agent's: providers seal what they serve us to it
        self.chain = chain
        self.executor = executor
        self.blobs = blobs
        self.dir = cfg.data_dir / "audits"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._transport = transport
        self._timeout = http_timeout
        self._running: dict[str, asyncio.Task[None]] = {}
        self.audit_period = 0  # the court's commit/reveal phase length (s); the agent sets it at start

    # persistence ----------------------------------------------------------------------------
    def _path(self, deal_id: str) -> Path:
        return self.dir / f"{deal_id.lower()}.json"

    def get(self, deal_id: str) -> AuditTask | None:
        """The persisted task, or None."""
        path = self._path(deal_id)
        return AuditTask(**json.loads(path.read_text())) if path.exists() else None

    def _save(self, task: AuditTask) -> None:
        tmp = self._path(task.deal_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(task)))
        tmp.replace(self._path(task.deal_id))

    def tasks(self) -> list[AuditTask]:
        """Every audit not yet done, oldest file first."""
        out = [AuditTask(**json.loads(p.read_text())) for p in sorted(self.dir.glob("*.json"))]
        return [t for t in out if t.state not in ("done", "failed")]

    def assign(self, deal_id: str) -> None:
        """Remember that the chain drew us for ``deal_id`` (idempotent)."""
        if self.get(deal_id) is None:
            self._save(AuditTask(deal_id.lower()))
            log.info("drawn as auditor", extra={"deal_id": deal_id})

    # jobs pushed by the requester -------------------------------------------------------------
    async def accept_job(self, deal_id: str, job: AuditJobMsg) -> AuditJobAck:
        """``POST /v1/audits/{id}/job``: keep a job pushed to us for an audit we hold a seat in.
        Anyone may push (the requester does, so a provider cannot hide its job from its auditors):
        the spec is checked against the deal's ``jobs_root``, so a pusher cannot change the job."""
        deal_id = deal_id.lower()
        try:
            spec = checked_spec(deal_id, job)
        except (ValueError, MercatoError) as exc:
            raise ProviderError(f"the pushed job for deal {deal_id} was refused: {exc}", http_status=422) from None
        audit: AuditState = await self.chain.read(self.chain.market.audit, _hex(deal_id))  # type: ignore[attr-defined]
        if audit.resolved or audit.seat_of(self.chain.address) is None:
            raise ProviderError(f"this provider holds no open audit seat for deal {deal_id}", http_status=409)
        task = self.get(deal_id) or AuditTask(deal_id)
        if task.spec is None:
            task.spec = job.spec
            self._save(task)
            log.info("audit job pushed to us", extra={"deal_id": deal_id})
        return AuditJobAck(deal_id=deal_id, missing=self._missing(spec))

    def accept_blob(self, deal_id: str, ref: str, data: bytes) -> AuditJobAck:
        """``PUT /v1/audits/{id}/blobs/{hash}``: a blob of a pushed job, checked against its hash."""
        task = self.get(deal_id.lower())
        if task is None or task.spec is None:
            raise BlobRejected(f"no job was pushed for deal {deal_id}: POST /v1/audits/{deal_id}/job first",
                               http_status=409)
        spec = JobSpec.from_json(task.spec)
        if ref not in needed_blobs(spec):
            raise BlobRejected(f"the job of deal {deal_id} needs no blob {ref}", http_status=404)
        if content_hash(data) != ref:
            raise BlobRejected(f"the bytes sent do not hash to {ref}", http_status=422)
        self.blobs.put(data)
        return AuditJobAck(deal_id=task.deal_id, missing=self._missing(spec))

    def _missing(self, spec: JobSpec) -> list[str]:
        return [ref for ref in needed_blobs(spec) if not self.blobs.has(ref)]

    # the loop -------------------------------------------------------------------------------
    async def run_once(self) -> None:
        """Advance every audit one step; chain errors are logged and retried next round."""
        for task in self.tasks():
            try:
                await self._step(task)
            except (ChainError, httpx.HTTPError) as exc:
                log.warning("audit step failed", extra={"deal_id": task.deal_id, "error": str(exc)})

    async def _step(self, task: AuditTask) -> None:
        audit: AuditState = await self.chain.read(self.chain.market.audit, _hex(task.deal_id))  # type: ignore[attr-defined]
        # the file, not the list run_once read: a commit may have finished since (never commit twice)
        task = self.get(task.deal_id) or task
        seat = audit.seat_of(self.chain.address)
        if audit.resolved or seat is None:
            task.state = "done"
            self._save(task)
            return
        if task.state == "assigned" and audit.phase == AUDIT_COMMIT and audit.acts_now(seat) \
                and not audit.committed(seat):
            if self.cfg.behaviour == "silent_auditor":  # TEST ONLY: never answers
                return
            if task.deal_id not in self._running:
                run = asyncio.get_running_loop().create_task(self._execute_and_commit(task, audit))
                self._running[task.deal_id] = run
                run.add_done_callback(lambda _t, d=task.deal_id: self._running.pop(d, None))
            return
        if audit.phase == AUDIT_REVEAL and audit.committed(seat) and not audit.revealed(seat):
            await self._reveal(task)
            return
        now = await self.chain.now()
        if audit.deadline and now > audit.deadline:
            await self.chain.write(self.chain.market.advance, _hex(task.deal_id))  # type: ignore[attr-defined]

    async def _execute_and_commit(self, task: AuditTask, audit: AuditState) -> None:
        saved = self.get(task.deal_id)
        if saved is not None and saved.state != "assigned":  # another round of the loop got here first
            return
        try:
            if task.seal is None:
                if self.cfg.behaviour == "lazy_auditor":  # TEST ONLY: echo the provider's seal
                    task.seal = "0x" + (await self._providers_seal(task.deal_id, audit.provider)).hex()
                    task.salt, task.result_root, task.fuel = "0x" + bytes(32).hex(), "00" * 32, 0
                else:
                    spec = await self._job_or_unavailable(task, audit)
                    if spec is None:  # job unavailable (SPEC §14.4): report (0, 0) rather than miss the commit
                        root, fuel = UNAVAILABLE_ROOT.hex(), 0
                    elif spec.runtime == CONTAINER_RUNTIME:
                        root, fuel = await self._attest(task.deal_id, audit.provider, spec)
                    else:
                        receipt = await in_daemon_thread(self._sandbox, task.deal_id, spec)
                        root, fuel = receipt.result_root, receipt.fuel_used
                    if spec is not None and self.cfg.behaviour == "colluding_auditor":  # TEST ONLY
                        root = Executor.wrong_root(root)  # back a wrong_result provider
                    salt = _hex(task.salt) if task.salt else secrets.token_bytes(32)
                    seal = seal_of(self.chain.address, _hex(task.deal_id), bytes.fromhex(root), fuel, salt)
                    task.result_root, task.fuel = root, fuel
                    task.salt, task.seal = "0x" + salt.hex(), "0x" + seal.hex()
                self._save(task)  # the salt is on disk before the seal goes out
            await self.chain.write(self.chain.market.commit_audit, _hex(task.deal_id), _hex(task.seal))  # type: ignore[attr-defined]
            task.state = "committed"
            self._save(task)
            log.info("audit committed", extra={"deal_id": task.deal_id})
        except DealsError as exc:
            if await self._our_seal_stands(task):  # our own commit landed (a retried send): go on to reveal
                task.state = "committed"
                self._save(task)
                log.info("audit committed", extra={"deal_id": task.deal_id})
                return
            task.state, task.error = "failed", str(exc)
            self._save(task)
            log.warning("audit commit refused", extra={"deal_id": task.deal_id, "error": str(exc)})
        except (MercatoError, httpx.HTTPError, ValueError) as exc:
            log.warning("audit could not run yet", extra={"deal_id": task.deal_id, "error": str(exc)})

    def unavailable_margin(self) -> int:
        """Seconds before the commit deadline at which a job still unobtainable is reported
        unavailable: max(3 s, a quarter of ``audit_period``)."""
        return max(UNAVAILABLE_MARGIN_S, self.audit_period // 4)

    async def _job_or_unavailable(self, task: AuditTask, audit: AuditState) -> JobSpec | None:
        """The job, or None when it cannot be obtained (not pushed, and the provider does not
        serve it) and the commit phase ends within ``unavailable_margin()``: the seat then reports
        the job unavailable (docs/SPEC.md §14.4) instead of missing its commit and losing its bond.
        Only a failure to obtain the job counts; earlier, the error propagates and the loop retries."""
        try:
            return await self._job(task, audit.provider)
        except ChainError:
            raise  # our chain connection, not the job: retry
        except (MercatoError, httpx.HTTPError, ValueError) as exc:
            now = await self.chain.now()
            if not audit.deadline or audit.deadline - now > self.unavailable_margin():
                raise
            log.warning("job unavailable: reporting it", extra={"deal_id": task.deal_id, "error": str(exc),
                                                                 "seconds_left": audit.deadline - now})
            return None

    async def _our_seal_stands(self, task: AuditTask) -> bool:
        """Whether the chain holds ``task.seal`` in our seat (after a refused commit)."""
        audit: AuditState = await self.chain.read(self.chain.market.audit, _hex(task.deal_id))  # type: ignore[attr-defined]
        seat = audit.seat_of(self.chain.address)
        return seat is not None and task.seal is not None and audit.committed(seat) and audit.seals[seat] == _hex(task.seal)

    async def _reveal(self, task: AuditTask) -> None:
        if task.result_root is None or task.fuel is None or task.salt is None:
            return
        try:
            await self.chain.write(self.chain.market.reveal, _hex(task.deal_id),  # type: ignore[attr-defined]
                                   bytes.fromhex(task.result_root), task.fuel, _hex(task.salt))
        except DealsError as exc:  # e.g. a lazy seal that opens to nothing
            task.state, task.error = "failed", str(exc)
            self._save(task)
            log.warning("audit reveal refused", extra={"deal_id": task.deal_id, "error": str(exc)})
            return
        task.state = "revealed"
        self._save(task)
        log.info("audit revealed", extra={"deal_id": task.deal_id})

    # fetching and running -------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """Every request signed as this provider (the audited provider serves only seated auditors)."""
        auth = RequestSigner(self.chain.address, self.chain.market.sign_text)  # type: ignore[attr-defined]
        return httpx.AsyncClient(transport=self._transport, timeout=self._timeout, auth=auth)

    async def _endpoint(self, provider: str) -> str:
        info = await self.chain.read(self.chain.market.provider_info, provider)
        return info.endpoint.rstrip("/")

    async def _job(self, task: AuditTask, provider: str) -> JobSpec:
        """The pushed job once all its blobs are here, else the provider's."""
        if task.spec is not None:
            spec = JobSpec.from_json(task.spec)
            if not self._missing(spec):
                return spec
        return await self._fetch_job(task.deal_id, provider)

    async def _fetch_job(self, deal_id: str, provider: str) -> JobSpec:
        base = await self._endpoint(provider)
        async with self._client() as http:
            resp = await http.get(f"{base}/v1/audits/{deal_id}/job")
            resp.raise_for_status()
            spec = checked_spec(deal_id, AuditJobMsg.model_validate_json(resp.content))
            for ref in needed_blobs(spec):
                if self.blobs.has(ref):
                    continue
                got = await http.get(f"{base}/v1/audits/{deal_id}/blobs/{ref}", params=box_query(self.box))
                got.raise_for_status()
                data = open_answer(got.content, got.headers, self.box)
                if content_hash(data) != ref:
                    raise ValueError(f"blob {ref} served with the wrong bytes")
                self.blobs.put(data)
        return spec

    async def _providers_seal(self, deal_id: str, provider: str) -> bytes:
        base = await self._endpoint(provider)
        async with self._client() as http:
            resp = await http.get(f"{base}/v1/deals/{deal_id}")
            resp.raise_for_status()
            return _hex(str(resp.json()["seal"]))

    async def _attest(self, deal_id: str, provider: str, spec: JobSpec) -> tuple[str, int]:
        """A container deal (docs/SPEC.md §15.4): the root of the bytes the provider serves as
        its result, and fuel 0 — not a re-run, which a non-deterministic job would not reproduce."""
        base = f"{await self._endpoint(provider)}/v1/deals/{deal_id}"
        limits = spec.limits

        async def fetch(http: httpx.AsyncClient, path: str, cap: int) -> bytes:
            resp = await http.get(base + path, params=box_query(self.box))
            resp.raise_for_status()
            data = open_answer(resp.content, resp.headers, self.box)
            if len(data) > cap:
                raise ValueError(f"{path} is over the job's cap of {cap} bytes")
            return data

        async with self._client() as http:
            status = await http.get(base)
            status.raise_for_status()
            receipt = status.json().get("receipt") or {}
            stdout = await fetch(http, "/stdout", limits.stdout_bytes)
            stderr = await fetch(http, "/stderr", limits.stdout_bytes)
            outputs = [(str(o["path"]), hashlib.sha256(await fetch(http, f"/outputs/{o['path']}",
                                                                    limits.output_bytes)).hexdigest())
                       for o in receipt.get("outputs", [])]
        root = result_root(outputs=outputs, stdout=stdout, stderr=stderr, outcome=str(receipt.get("outcome", "")),
                           exit_code=receipt.get("exit_code"))
        return root, 0

    def _sandbox(self, deal_id: str, spec: JobSpec) -> Receipt:
        ws = fresh_workspace(self.dir / deal_id.lower())
        try:
            return run_spec(self.executor.runtime(spec.runtime), spec, ws)
        finally:
            ws.remove()

