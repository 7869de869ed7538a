"""``ProviderAgent``: the bid engine, executor, chain watcher and store of one provider.

    agent = ProviderAgent(cfg, market, events=LogEventSource(market, start_block=dep.block))
    app = create_app(agent)              # FastAPI; its lifespan calls agent.start() / stop()

``start()`` is idempotent across restarts: it registers (or re-registers when the endpoint
or capacity changed), tops the stake up to ``cfg.stake``, resyncs each lane's nonce from the
chain, then resumes every deal where it stood — accepted or running deals are (re-)run
(the sandbox is deterministic), executed ones committed, committed ones finalized later.

With "container" in ``runtimes`` it first removes the containers a crash left behind
(``ContainerRuntime.cleanup_stale``, logged) and detects the GPUs it offers (unless
``[container] gpus = "off"``): they go into the registry entry's resources and ``/v1/info``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import keccak

from mercato.chain.api import MarketApi
from mercato.chain.eip712 import recover_acceptance
from mercato.domain.deals import AUDITED, CLEARED, ZERO32
from mercato.domain.jobs import CONTAINER_RUNTIME, JobSpec, is_content_hash
from mercato.domain.sealing import BoxKey
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
    public_receipt,
)
from mercato.errors import (
    AcceptanceRejected,
    BlobRejected,
    DealNotFound,
    ImageRejected,
    MercatoError,
    NotAllowed,
    NotReady,
    ProviderError,
    RpcUnavailable,
    SealError,
    Unauthenticated,
)
from mercato.provider.auditor import Auditor
from mercato.provider.bidder import Bidder
from mercato.provider.chainio import ChainIO
from mercato.provider.config import ProviderConfig
from mercato.provider.executor import Executor, needed_blobs
from mercato.provider.metrics import Metrics
from mercato.provider.pricing import PricingStrategy, strategy_for
from mercato.provider.settle import Settler
from mercato.provider.store import HELD_OUT, UNSENT, DealRecord, Store
from mercato.provider.watcher import WATCHED, ChainEvent, EventSource
from mercato.runtimes import BlobStore, Runtime
from mercato.runtimes.blobs import content_hash

__all__ = ["ProviderAgent", "box_key_of", "resources_json", "resources_of"]

log = logging.getLogger("mercato.provider")
T = TypeVar("T")
_REVEALED = ("committed", "finalized")


def _gone(rec: DealRecord) -> str:
    why = f" ({rec.error})" if rec.error else ""
    return f"the deal is {rec.state}{why}: send a new RFQ"


def resources_json(cfg: ProviderConfig, gpus: Sequence[Any] = ()) -> dict[str, Any]:
    """The advertised capacity. A container provider adds its container caps and its GPUs
    (model and memory each; their count is the list's length)."""
    out: dict[str, Any] = {"lanes": cfg.lanes, "runtimes": list(cfg.runtimes), "max_fuel": cfg.max_fuel,
                           "max_memory_bytes": cfg.max_memory_bytes}
    if CONTAINER_RUNTIME in cfg.runtimes:
        cc = cfg.container
        out["container"] = {"max_cpu_millis": cc.max_cpu_millis, "max_pids": cc.max_pids,
                            "max_wall_clock_s": cc.max_wall_clock_s, "network": cc.allow_network}
        out["gpus"] = [{"model": g.name, "memory_mb": g.memory_mb} for g in gpus]
    return out


def resources_of(cfg: ProviderConfig, gpus: Sequence[Any] = ()) -> bytes:
    """The registry's 32-byte ``resources``: a hash of the advertised capacity (changes re-register)."""
    blob = json.dumps(resources_json(cfg, gpus), sort_keys=True)
    return hashlib.sha256(blob.encode()).digest()


async def _until_chain(step: Callable[[], Awaitable[T]], what: str) -> T:
    """``step()``, retried while the RPC node is unavailable (back-off 1 s → 30 s, logged): an agent
    started during an outage waits for the node instead of exiting."""
    delay = 1.0
    while True:
        try:
            return await step()
        except RpcUnavailable as exc:
            log.warning("RPC unavailable during start-up; retrying", extra={"step": what, "retry_in_s": delay,
                                                                            "error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def box_key_of(data_dir: Path) -> BoxKey:
    """A box key kept in ``<data_dir>/box.key`` (created once, mode 0600), for an agent given
    none (``mercato provider start`` derives one from the account key: ``BoxKey.derive``)."""
    path = data_dir / "box.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    return BoxKey(path.read_bytes())


class ProviderAgent:
    """One provider: answers RFQs, runs deals, commits, finalizes and claims."""

    def __init__(self, cfg: ProviderConfig, market: MarketApi, *, events: EventSource | None = None,
                 runtimes: Mapping[str, Runtime] | None = None, clock: object = None,
                 challenge_window: int | None = None, strategy: PricingStrategy | None = None,
                 box_key: BoxKey | None = None) -> None:
        self.cfg = cfg
        # inputs arrive sealed to this key (its public half is the registry entry's enc_key)
        self.box = box_key or box_key_of(cfg.data_dir)
        self.chain = ChainIO(market, clock)  # type: ignore[arg-type]
        self.store = Store(cfg.data_dir / "provider.sqlite3")
        self.blobs = BlobStore(cfg.data_dir / "blobs", max_blob_bytes=cfg.max_blob_bytes)
        self.metrics = Metrics()
        self.strategy = strategy or strategy_for(cfg.pricing)
        self.bidder = Bidder(cfg, self.store, self.chain, self.strategy, self.metrics)
        self.executor = Executor(cfg, self.store, self.chain, self.blobs, self.metrics, runtimes)
        self.auditor = Auditor(cfg, self.chain, self.executor, self.blobs)
        self.auditor.box = self.box
        self.events = events
        self.gpus: tuple[Any, ...] = ()  # the GPUs offered (detected at start for container providers)
        if CONTAINER_RUNTIME in cfg.runtimes:
            self.bidder.admit_container = self._admit_container
        self._challenge_window = challenge_window
        self.settler: Settler | None = None
        self._loops: list[asyncio.Task[None]] = []
        self.started = False

    @property
    def address(self) -> str:
        return self.chain.address

    # lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Register and stake as configured, resync lanes, resume deals, start the loops."""
        if CONTAINER_RUNTIME in self.cfg.runtimes:
            await asyncio.to_thread(self._prepare_containers)
        await _until_chain(self.ensure_registered, "register")
        read_params = getattr(self.chain.market, "parameters", None)
        params = dict(await _until_chain(lambda: self.chain.read(read_params), "parameters")) if read_params else {}
        if params:
            self.bidder.know_parameters(params)
        self.auditor.audit_period = int(params.get("audit_period", 0))
        window = self._challenge_window if self._challenge_window is not None else params.get("challenge_window", 0)
        self.settler = Settler(self.cfg, self.store, self.chain, self.executor, self.metrics, int(window),
                               beacon_delay=int(params.get("beacon_delay", 2)),
                               draw_blocks=int(params.get("draw_blocks", 200)))
        await _until_chain(self._resync_lanes, "resync lanes")
        self._resume()
        self.bidder.holds.resume(self.cfg.bid_hold_s)
        await _until_chain(self._catch_up, "read chain events")
        self._loops = [asyncio.create_task(self._loop(self.poll_events, self.cfg.poll_interval_s), name="watcher"),
                       asyncio.create_task(self._loop(self.settler.run_once, self.cfg.housekeeping_interval_s),
                                           name="housekeeping"),
                       asyncio.create_task(self._loop(self.auditor.run_once, self.cfg.housekeeping_interval_s),
                                           name="audits")]
        self.started = True
        log.info("provider started", extra={"provider": self.address, "endpoint": self.cfg.public_endpoint,
                                            "lanes": self.cfg.lanes})

    async def stop(self) -> None:
        """Stop the loops and stop waiting for sandboxes; everything is already on disk."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self.bidder.holds.stop()
        await self.executor.shutdown()
        self.store.close()
        self.started = False
        log.info("provider stopped", extra={"provider": self.address})

    async def ensure_registered(self) -> None:
        """Register if unregistered or the endpoint/capacity changed; stake up to ``cfg.stake``."""
        m = self.chain.market
        info = await self.chain.read(m.provider_info)
        resources = resources_of(self.cfg, self.gpus)
        enc_key = self.box.public
        if (not info.registered or info.endpoint != self.cfg.public_endpoint or info.resources != resources
                or bytes(info.enc_key) != enc_key):
            await self.chain.write(m.register, self.cfg.public_endpoint, resources, enc_key)
            log.info("registered", extra={"endpoint": self.cfg.public_endpoint})
        if info.stake < self.cfg.stake:
            await self.chain.write(m.stake, self.cfg.stake - info.stake)
            log.info("staked", extra={"amount": self.cfg.stake - info.stake})

    def _prepare_containers(self) -> None:
        """Remove what a crash left (logged), then detect the GPUs to offer. A missing engine is
        logged, not fatal: container RFQs are then declined with code ``runtime``."""
        from mercato.runtimes.container import ContainerRuntime

        runtime = self.executor.runtime(CONTAINER_RUNTIME)
        if not isinstance(runtime, ContainerRuntime):  # a stand-in (unit tests): nothing to clean or detect
            return
        try:
            cleaned = runtime.cleanup_stale()
        except MercatoError as exc:
            log.error("container engine unavailable; container jobs will be declined", extra={"error": str(exc)})
            return
        if cleaned:
            log.warning("removed containers left by an earlier run", extra={"containers": cleaned})
        self.gpus = runtime.gpus.gpus
        log.info("container runtime ready", extra={"engine": runtime.engine.kind, "namespace": runtime.settings.namespace,
                                                   "gpus": [f"{g.name} ({g.memory_mb} MiB)" for g in self.gpus]})

    def _admit_container(self, spec: JobSpec) -> object:
        """The bid-time check of a container spec (runs in a worker thread)."""
        runtime = self.executor.runtime(CONTAINER_RUNTIME)
        admit = getattr(runtime, "admit_bid", None)
        return admit(spec) if admit is not None else None

    async def _resync_lanes(self) -> None:
        self.store.ensure_lanes(self.cfg.lanes)
        self.store.reconcile_lanes()
        for idx, _nonce, holder in self.store.lanes(self.cfg.lanes):
            lane = await self.chain.read(self.chain.market.lane, self.address, idx)
            ours = holder is not None and holder != "external"
            self.store.sync_lane(idx, lane.last_nonce, lane.busy and not ours)

    def _resume(self) -> None:
        for rec in self.store.in_states("running"):  # killed mid-run: the sandbox is deterministic
            self.store.update(rec.deal_id, expect=("running",), state="accepted", started_at=None)
        for rec in self.store.in_states("accepted"):
            self.executor.kick(rec.deal_id)
        # executed deals are committed, committed ones finalized, by the housekeeping loop

    async def _loop(self, step: object, interval: float) -> None:
        while True:
            try:
                await step()  # type: ignore[operator]
            except asyncio.CancelledError:
                raise
            except RpcUnavailable:  # ChainIO logged the outage once and backs off: try next round
                pass
            except Exception:  # a loop must survive anything one round throws
                log.exception("background step failed", extra={"step": getattr(step, "__name__", "?")})
            await asyncio.sleep(interval)

    # chain events ---------------------------------------------------------------------------
    async def _catch_up(self, rounds: int = 100) -> None:
        """Apply chain events up to the head before the API answers, so that the first RFQs do
        not share the process with the watcher's catch-up (a poll reads one chunk at most)."""
        for _ in range(rounds):
            before = self.store.get_meta("cursor")
            await self.poll_events()
            if self.store.get_meta("cursor") == before:
                return

    async def poll_events(self) -> None:
        """Apply new deal events (the watcher loop calls this)."""
        if self.events is None:
            return
        raw = self.store.get_meta("cursor")
        events, cursor = await self.chain.read(self.events.poll, None if raw is None else int(raw))
        for ev in events:
            self.apply_event(ev)
        self.store.set_meta("cursor", str(cursor))

    def apply_event(self, ev: ChainEvent) -> None:
        """Update a known deal from one chain event (idempotent)."""
        if ev.name not in WATCHED or "deal_id" not in ev.args:
            return
        deal_id = "0x" + bytes(ev.args["deal_id"]).hex()
        if ev.name == "AuditorDrawn":
            if str(ev.args["auditor"]).lower() == self.address.lower():
                self.auditor.assign(deal_id)
            return
        rec = self.store.get(deal_id)
        if rec is None:
            return
        if ev.name == "DealOpened":
            self._on_opened(rec, ev)
        elif ev.name == "ResultCommitted":
            self.store.update(deal_id, expect=("executed", "committed"), state="committed", on_chain=1,
                              committed_at=int(ev.args["committed_at"]), committed_block=ev.block)
        elif ev.name == "DealDrawn":
            self.store.update(deal_id, status=AUDITED if ev.args["audited"] else CLEARED)
        elif ev.name in ("DealFinalized", "DealReclaimed"):
            state = "finalized" if ev.name == "DealFinalized" else "reclaimed"
            if self.store.update(deal_id, state=state, on_chain=1) is not None:
                self.store.release_lane(rec.lane, deal_id)
        log.info("chain event", extra={"event": ev.name, "deal_id": deal_id, "block": ev.block})

    def _on_opened(self, rec: DealRecord, ev: ChainEvent) -> None:
        if bytes(ev.args.get("seal", ZERO32)) != ZERO32:  # our own open_and_commit
            self.store.update(rec.deal_id, expect=("executed", "committed"), state="committed", on_chain=1,
                              committed_at=ev.timestamp, committed_block=ev.block)
            return
        self.executor.adopt_opened(rec)  # the requester opened it: even a released bid is honoured

    # the HTTP API's operations --------------------------------------------------------------
    async def info(self) -> ProviderInfoMsg:
        """What ``GET /v1/info`` answers (the current quote per CU, at the current utilization)."""
        cfg, m = self.cfg, self.chain.market
        try:
            per_cu = await asyncio.to_thread(self.strategy, None, self.bidder.utilization())
        except Exception:  # a failing price script must not take /v1/info down
            per_cu = cfg.pricing.price_per_cu
        busy = self.store.busy_lanes(cfg.lanes)
        return ProviderInfoMsg(provider=self.address, chain_id=m.chain_id, market=m.market,
                               runtimes=list(cfg.runtimes), lanes=cfg.lanes, free_lanes=cfg.lanes - busy,
                               price_per_cu=per_cu, max_fuel=cfg.max_fuel, max_memory_bytes=cfg.max_memory_bytes,
                               max_input_bytes=cfg.max_input_bytes,
                               gpus=[{"model": g.name, "memory_mb": g.memory_mb} for g in self.gpus],
                               resources=resources_json(cfg, self.gpus) if CONTAINER_RUNTIME in cfg.runtimes else None)

    async def answer(self, rfq: Rfq) -> RfqAnswer:
        """``POST /v1/rfq``."""
        return await self.bidder.answer(rfq)

    async def quote_bulk(self, rfq: BulkRfq) -> BulkAnswer:
        """``POST /v1/rfq/bulk``: a signed price per CU and capacity for a run of batches."""
        return await self.bidder.quote_bulk(rfq)

    def _deal(self, deal_id: str) -> DealRecord:
        rec = self.store.get(deal_id)
        if rec is None:
            raise DealNotFound(f"no deal {deal_id} at this provider: check the deal_id from its bid")
        return rec

    async def accept(self, deal_id: str, msg: AcceptMsg) -> DealStatusMsg:
        """``POST /v1/deals/{id}/accept``: check the acceptance, then start once the blobs are here."""
        rec = self._deal(deal_id)
        if msg.deal_id.lower() != rec.deal_id or msg.terms != rec.terms_msg:
            raise AcceptanceRejected("the accepted terms differ from the bid: accept the bid's terms unchanged")
        terms = rec.terms_obj
        try:
            signer = recover_acceptance(terms, bytes.fromhex(msg.acceptance_signature.removeprefix("0x")),
                                        chain_id=self.chain.market.chain_id, market=self.chain.market.market)
        except Exception:
            signer = None
        if signer != terms.requester:
            raise AcceptanceRejected(f"the acceptance is not signed by the requester {terms.requester}: "
                                     "sign the EIP-712 Acceptance of these terms with that key")
        if rec.state == "bid":
            if await self.chain.now() > terms.expiry:
                raise AcceptanceRejected("the bid expired before it was accepted: send a new RFQ", http_status=409)
            if self.store.update(deal_id, expect=("bid",), state="accepted",
                                 acceptance_sig=msg.acceptance_signature) is None:
                rec = self._deal(deal_id)  # released (or opened on-chain) meanwhile
                if rec.state != "accepted":
                    raise AcceptanceRejected(_gone(rec), http_status=409)
        elif rec.state == "expired" and rec.error == HELD_OUT and not rec.on_chain:
            await self._accept_late(rec, msg.acceptance_signature)
        elif rec.state in ("expired", "failed", "reclaimed"):
            raise AcceptanceRejected(_gone(rec), http_status=409)
        elif rec.acceptance_sig is None:
            self.store.update(deal_id, acceptance_sig=msg.acceptance_signature)
        self.executor.kick(deal_id)
        log.info("accepted", extra={"deal_id": deal_id})
        return self.status(deal_id)

    async def _accept_late(self, rec: DealRecord, signature: str) -> None:
        """An acceptance of a bid whose hold was over: taken if its lane is still free and unused since."""
        if await self.chain.now() > rec.terms_obj.expiry:
            raise AcceptanceRejected("the bid expired before it was accepted: send a new RFQ", http_status=409)
        if await self.bidder.retake(rec, signature) is None:
            raise AcceptanceRejected(f"this provider held the bid {self.cfg.bid_hold_s:g} s, then gave its lane to "
                                     "other bids: nothing was charged; send a new RFQ and accept its bid sooner "
                                     "(a shorter bid window)", http_status=409)
        log.info("accepted after the bid's hold", extra={"deal_id": rec.deal_id, "lane": rec.lane})

    def release_unsent(self, deal_id: str) -> None:
        """The requester hung up before its bid could be sent (a late answer): free the lane at once."""
        if self.store.release_bid(deal_id, UNSENT) is not None:
            self.metrics.unsent.inc()
            log.info("bid not sent: its requester had hung up; lane freed", extra={"deal_id": deal_id})

    def release(self, deal_id: str) -> DealStatusMsg:
        """``DELETE /v1/bids/{id}``: the requester took another bid. A deal still in ``bid`` (no
        acceptance, not seen open on-chain) becomes ``expired`` and frees its lane at once; the
        lane's next bid takes the next nonce, so this signed bid can still open the lane on-chain
        only while it is free — and if the requester does open it, it is honoured (see
        ``Executor.adopt_opened``). Releasing a released or expired bid again changes nothing.
        409 once accepted, running or on-chain; 404 unknown."""
        rec = self._deal(deal_id)
        if rec.state == "bid":
            released = self.store.release_bid(rec.deal_id)
            if released is not None:
                self.metrics.released.inc()
                log.info("bid released", extra={"deal_id": rec.deal_id, "lane": rec.lane, "nonce": rec.nonce})
                return self.status(rec.deal_id)
            rec = self._deal(deal_id)  # accepted or opened meanwhile
        if rec.state == "expired" and not rec.on_chain:
            return self.status(rec.deal_id)
        raise ProviderError(f"the deal is {rec.state}{' and open on-chain' if rec.on_chain else ''}: "
                            "only a bid not yet accepted can be released", http_status=409)

    def reveal_seed(self, deal_id: str, msg: SeedMsg) -> DealStatusMsg:
        """``POST /v1/deals/{id}/seed``: keep the requester's lottery seed if it opens the deal's
        ``seed_hash``; the settler runs ``draw`` with it once the beacon block is mined."""
        rec = self._deal(deal_id)
        try:
            seed = bytes.fromhex(msg.seed.removeprefix("0x"))
        except ValueError:
            seed = b""
        if len(seed) != 32 or keccak(seed) != rec.terms_obj.seed_hash:
            raise ProviderError("the seed does not hash to the deal's seed_hash: send the 32-byte seed "
                                "whose keccak256 you put in the RFQ", http_status=422)
        self.store.update(deal_id, seed="0x" + seed.hex())
        return self.status(deal_id)

    async def _audit_caller(self, deal_id: str, signer: str | None) -> DealRecord:
        """The deal, if the request was signed by an auditor holding one of its audit seats
        on-chain; else 401 unsigned, 403 anyone else (no one else gets a requester's job)."""
        if self.cfg.behaviour == "hidden_wrong_result":  # TEST ONLY: hide the job from its auditors
            raise ProviderError("audits are not served here", http_status=503)
        rec = self._deal(deal_id)
        if signer is None:
            raise Unauthenticated("an audit request must be signed by the auditor: sign it with the key of the "
                                  "address seated for the deal (X-Mercato-Signer, -Timestamp, -Nonce, -Signature)")
        if not await self._seated(rec, signer):
            raise NotAllowed(f"{signer} holds no audit seat for deal {rec.deal_id}: only its drawn auditors get its job")
        return rec

    async def _seated(self, rec: DealRecord, signer: str) -> bool:
        audit = await self.chain.read(self.chain.market.audit, bytes.fromhex(rec.deal_id[2:]))  # type: ignore[attr-defined]
        return audit.seat_of(signer) is not None

    async def audit_job(self, deal_id: str, signer: str | None) -> AuditJobMsg:
        """``GET /v1/audits/{id}/job``: the terms and spec, for a drawn auditor only."""
        rec = await self._audit_caller(deal_id, signer)
        return AuditJobMsg(deal_id=rec.deal_id, terms=rec.terms_msg, spec=rec.spec_json)

    async def audit_blob(self, deal_id: str, ref: str, signer: str | None) -> bytes:
        """``GET /v1/audits/{id}/blobs/{hash}``: the deal's workload or an input, for a drawn auditor."""
        rec = await self._audit_caller(deal_id, signer)
        if ref not in needed_blobs(JobSpec.from_json(rec.spec_json)) or not self.blobs.has(ref):
            raise BlobRejected(f"deal {rec.deal_id} has no blob {ref} here", http_status=404)
        return self.blobs.get(ref)

    async def push_audit_job(self, deal_id: str, job: AuditJobMsg) -> AuditJobAck:
        """``POST /v1/audits/{id}/job``: a job pushed to us as a drawn auditor (see ``Auditor``)."""
        return await self.auditor.accept_job(deal_id, job)

    def push_audit_blob(self, deal_id: str, ref: str, data: bytes, *, sealed: bool = False) -> AuditJobAck:
        """``PUT /v1/audits/{id}/blobs/{hash}``: a blob of a job pushed to us as an auditor
        (``sealed``: in a box sealed to our registered key)."""
        return self.auditor.accept_blob(deal_id, ref, self.unseal(data) if sealed else data)

    def unseal(self, data: bytes) -> bytes:
        """An upload sealed to this provider's box key, opened (422 when it does not open)."""
        try:
            return self.box.open(data)
        except SealError as exc:
            raise BlobRejected(f"{exc}: seal uploads to this provider's enc_key from the registry "
                               f"(0x{self.box.public.hex()})", http_status=422) from None

    def status(self, deal_id: str, *, public: bool = False) -> DealStatusMsg:
        """``GET /v1/deals/{id}``; receipt, seal and salt only once the seal is on-chain. The
        ``public`` view (for unsigned callers) keeps of the receipt only what opens the seal and
        bills (``wire.public_receipt``): no stdout, stderr or list of outputs."""
        rec = self._deal(deal_id)
        shown = rec.state in _REVEALED
        missing = self.executor.missing(rec) if rec.state in ("bid", "accepted") and not public else []
        receipt = rec.receipt_json if shown else None
        return DealStatusMsg(deal_id=rec.deal_id, state=rec.state, terms=rec.terms_msg, on_chain=bool(rec.on_chain),
                             missing_inputs=missing, started_at=rec.started_at,
                             receipt=public_receipt(receipt) if public else receipt, seal=rec.seal if shown else None,
                             salt=rec.salt if shown else None, commit_tx=rec.commit_tx, error=rec.error)

    # authorization of the HTTP API (the signer is verified by provider.guard first) ----------
    @staticmethod
    def require_signer(signer: str | None, what: str) -> str:
        """``signer``, or 401 when the request came unsigned."""
        if signer is None:
            raise Unauthenticated(f"{what} must be signed: send X-Mercato-Signer, X-Mercato-Timestamp, X-Mercato-Nonce "
                                  "and X-Mercato-Signature (EIP-191 over domain.wire.request_auth_message)")
        return signer

    def authorize_rfq(self, requester: str, signer: str | None) -> None:
        """An RFQ (or bulk RFQ) is signed by the requester it names."""
        signer = self.require_signer(signer, "an RFQ")
        if signer.lower() != requester.lower():
            raise NotAllowed(f"the RFQ names requester {requester[:42]} but is signed by {signer}: sign it "
                             "with the requester's key")

    def authorize_requester(self, deal_id: str, signer: str | None, what: str) -> DealRecord:
        """The deal, if ``signer`` is its requester (404 unknown, 401 unsigned, 403 anyone else)."""
        rec = self._deal(deal_id)
        signer = self.require_signer(signer, what)
        if signer.lower() != rec.terms_obj.requester.lower():
            raise NotAllowed(f"{signer} is not the requester of deal {rec.deal_id}: only its requester may {what}")
        return rec

    async def authorize_reader(self, deal_id: str, signer: str | None, what: str) -> DealRecord:
        """The deal, if ``signer`` may read its private data: its requester, or an auditor seated
        for it on-chain (an auditor of a container deal reads the result it attests)."""
        rec = self._deal(deal_id)
        signer = self.require_signer(signer, what)
        if signer.lower() != rec.terms_obj.requester.lower() and not await self._seated(rec, signer):
            raise NotAllowed(f"{signer} is neither the requester of deal {rec.deal_id} nor one of its auditors: "
                             f"only they may read {what} (unsigned, GET /v1/deals/{{id}} shows the public view)")
        return rec

    def authorize_blob(self, ref: str, signer: str | None) -> None:
        """``PUT /v1/blobs/{hash}``: a blob not stored yet only from the requester of a live deal
        that needs it (400 bad name, 409 no deal needs it, 403 only others' deals do); a blob
        stored already is acknowledged to any signer (the upload changes nothing)."""
        signer = self.require_signer(signer, "a blob upload")
        self.check_blob_ref(ref)
        if self.blobs.has(ref):
            return
        owners = {rec.terms_obj.requester.lower() for rec in self.store.in_states("bid", "accepted")
                  if ref in needed_blobs(JobSpec.from_json(rec.spec_json))}
        if signer.lower() not in owners:
            raise NotAllowed(f"{signer} has no open deal here that needs {ref}: upload a deal's blobs with the "
                             "key of its requester")

    def authorize_audit_push(self, job: AuditJobMsg, signer: str | None) -> None:
        """``POST /v1/audits/{id}/job``: pushed by the deal's requester (the terms name it)."""
        signer = self.require_signer(signer, "an audit job push")
        if signer.lower() != job.terms.requester.lower():
            raise NotAllowed(f"the job is deal {job.deal_id}'s, whose requester is {job.terms.requester[:42]}, "
                             f"but {signer} signed the push: push it with the requester's key")

    def put_blob(self, ref: str, data: bytes, *, sealed: bool = False) -> BlobMsg:
        """``PUT /v1/blobs/{hash}``: only blobs a live deal needs (or already stored), hash-checked;
        ``sealed``: the body is a box sealed to our registered key, opened first."""
        self.check_blob_ref(ref)
        if sealed:
            data = self.unseal(data)
        if len(data) > self.cfg.max_blob_bytes:
            raise BlobRejected(f"blob is {len(data)} bytes, over this provider's cap of {self.cfg.max_blob_bytes}",
                               http_status=413)
        if content_hash(data) != ref:
            raise BlobRejected(f"the bytes hash to {content_hash(data)}, not {ref}: upload the right file")
        self._check_image_archive(ref, data)
        self.blobs.put(data)
        self.executor.on_blob(ref)
        return BlobMsg(content_hash=ref, size=len(data))

    def _check_image_archive(self, ref: str, data: bytes) -> None:
        """An image archive must hold the image its deals name: otherwise 422, and the deals
        fail at once with the reason (nothing is loaded or run)."""
        from mercato.runtimes.container import archive_image_id

        for rec in self.store.in_states("bid", "accepted"):
            spec = JobSpec.from_json(rec.spec_json)
            if spec.container is None or spec.container.image_archive != ref:
                continue
            try:
                found = archive_image_id(data)
            except ImageRejected as exc:
                found, why = "", str(exc)
            else:
                why = f"the image archive holds image {found}, not the declared {spec.workload}"
            if found != spec.workload:
                self.executor.reject(rec.deal_id, f"image rejected: {why}")
                raise BlobRejected(f"{why}: ship the archive of the image the spec names", http_status=422)

    def check_blob_ref(self, ref: str) -> None:
        if not is_content_hash(ref):
            raise BlobRejected(f"{ref!r} is not a content hash: use 'sha256:<64 lowercase hex>'")
        if self.blobs.has(ref):  # stored already: the deal that needed it may have started before the
            return               # upload arrived (its acceptance found it here from an earlier deal)
        for rec in self.store.in_states("bid", "accepted"):
            if ref in needed_blobs(JobSpec.from_json(rec.spec_json)):
                return
        raise BlobRejected(f"no open deal here needs {ref}: upload a deal's workload and inputs after its bid",
                           http_status=409)

    def has_blob(self, ref: str) -> bool:
        return is_content_hash(ref) and self.blobs.has(ref)

    def result_file(self, deal_id: str, name: str) -> Path:
        """The raw ``stdout``/``stderr`` or an ``outputs/<path>`` file, once the seal is on-chain."""
        rec = self._deal(deal_id)
        if rec.state not in _REVEALED:
            raise NotReady(f"the deal is {rec.state}; results are served once its seal is on-chain")
        base = self.executor.deal_dir(rec.deal_id)
        if name in ("stdout", "stderr"):
            return base / name
        rel = name.removeprefix("outputs/")
        listed = {o["path"] for o in (rec.receipt_json or {}).get("outputs", [])}
        out_dir = (base / "ws" / "output").resolve()
        path = (out_dir / rel).resolve()
        if rel not in listed or not path.is_relative_to(out_dir) or not path.is_file():
            raise DealNotFound(f"the deal has no output {rel!r}: see receipt.outputs for the list", http_status=404)
        return path

    def metrics_text(self) -> bytes:
        return self.metrics.render(self.store.counts(), self.cfg.lanes - self.store.busy_lanes(self.cfg.lanes))
