"""Runs accepted deals in the sandbox and commits their result seals on-chain.

    executor.kick(deal_id)        # starts the job once it is accepted and every blob is here
    await executor.commit(deal_id)

A deal runs when it is accepted (a valid acceptance, or DealOpened seen) *and* its workload
and inputs are all stored. Up to ``lanes`` sandboxes run at once, each in a daemon thread
(a wasm job cannot be interrupted from Python; a daemon thread lets the agent exit at once
and the job is simply re-run after a restart — the sandbox is deterministic).

Every outcome is committed (ok, exit_nonzero, fuel_exhausted, …): they are deterministic
results. ``wall_clock_exceeded`` is committed too, although it depends on the host's speed.
A batch deal (``JobSpec.tasks``) runs its tasks one after another in the deal's lane
(``runtimes.run_spec``) and commits one seal over all their results (docs/SPEC.md §17).

Commit: ``seal = keccak256(abi.encode(provider, deal_id, result_root, fuel_used, salt))``
(docs/SPEC.md §14.2); the salt is stored before the seal is sent. Deal open on-chain → ``commit_result``; otherwise, before expiry → ``open_and_commit``
with the requester's acceptance (``LaneBusy`` after which the lane holds this deal's nonce means
the requester's open landed first → ``commit_result``).

A lane busy on-chain with an *earlier* nonce holds a bid the requester released and then opened
anyway (``adopt_opened`` runs that one): a newer deal on the lane can never open while it stands,
so it fails with ``store.LANE_TAKEN`` instead of retrying its commit forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mercato.chain.api import DealTx
from mercato.domain.deals import Deal, Terms, hash_prefix
from mercato.domain.jobs import CONTAINER_RUNTIME, JobSpec, Receipt
from mercato.errors import (
    AlreadyCommitted,
    BidReplayed,
    ChainError,
    DeadlinePassed,
    LaneBusy,
    MercatoError,
)
from mercato.provider.chainio import ChainIO
from mercato.provider.config import WRONG_RESULT, ProviderConfig
from mercato.provider.metrics import Metrics
from mercato.provider.store import EXTERNAL, LANE_TAKEN, DealRecord, Store
from mercato.runtimes import BlobStore, Runtime, Workspace, run_spec, runtime_for
from mercato.verification.lottery import seal_of

__all__ = ["Executor", "fresh_workspace", "in_daemon_thread", "needed_blobs"]

log = logging.getLogger("mercato.provider.executor")
COPIED_FROM = "0x" + "c0" * 20  # TEST ONLY: whose seal a ``copied_seal`` provider passes off as its own
T = TypeVar("T")
UNEXPECTED_TRIES = 2  # runs of a deal whose sandbox raised something other than a MercatoError


def fresh_workspace(root: Path) -> Workspace:
    """An empty workspace at ``root`` (whatever a previous run left there is removed first)."""
    if root.exists():
        Workspace(root).remove()  # a re-run after a restart starts clean
    for sub in ("input", "output", "tmp", "job"):
        (root / sub).mkdir(parents=True)
    return Workspace(root)


def needed_blobs(spec: JobSpec) -> list[str]:
    """The workload (for a container job: its image archive, if any) and every input, by content hash."""
    return list(spec.blob_refs())


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a daemon thread and await it (the process may exit while it runs)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def target() -> None:
        try:
            result: Any = (True, fn(*args))
        except BaseException as exc:  # handed to the awaiting task
            result = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *result)
        except RuntimeError:  # the loop is gone: the agent shut down mid-job
            pass

    threading.Thread(target=target, name="mercato-sandbox", daemon=True).start()
    return await fut


class Executor:
    """Runs and commits the deals of one agent."""

    def __init__(self, cfg: ProviderConfig, store: Store, chain: ChainIO, blobs: BlobStore, metrics: Metrics,
                 runtimes: Mapping[str, Runtime] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.chain = chain
        self.blobs = blobs
        self.metrics = metrics
        self._runtimes: dict[str, Runtime] = dict(runtimes or {})
        self._sem = asyncio.Semaphore(cfg.lanes)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._committing: set[str] = set()

    # starting -------------------------------------------------------------------------------
    def deal_dir(self, deal_id: str) -> Path:
        return self.cfg.data_dir / "deals" / deal_id.lower()

    def missing(self, rec: DealRecord) -> list[str]:
        """Blobs the deal still waits for."""
        return [ref for ref in needed_blobs(JobSpec.from_json(rec.spec_json)) if not self.blobs.has(ref)]

    def kick(self, deal_id: str) -> bool:
        """Start the deal if it is accepted, all its blobs are here, and it is not running yet."""
        rec = self.store.get(deal_id)
        if rec is None or rec.state != "accepted" or deal_id in self._tasks or self.missing(rec):
            return False
        task = asyncio.get_running_loop().create_task(self._run(rec.deal_id), name=f"run-{rec.deal_id[:10]}")
        self._tasks[rec.deal_id] = task
        task.add_done_callback(lambda t, d=rec.deal_id: self._done(d, t))
        return True

    def _done(self, deal_id: str, task: asyncio.Task[None]) -> None:
        """A run task ended: forget it, and log (in the agent's log, not asyncio's) what it raised;
        the deal is left in its state for the next kick or restart to pick up."""
        self._tasks.pop(deal_id, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("deal run stopped by an error", exc_info=exc,
                      extra={"deal_id": deal_id, "error": f"{type(exc).__name__}: {exc}"})

    def adopt_opened(self, rec: DealRecord) -> bool:
        """``rec`` was seen open on-chain with no seal (the requester's ``open_deal``): the requester
        paid, so it holds its lane and runs once its blobs are here — even a bid the requester had
        released, or one failed only because its lane was taken. A newer deal on the same lane
        that is not on-chain can never open now: it fails with ``LANE_TAKEN``. Whether ``rec`` is
        (now) to run."""
        if not rec.on_chain and rec.state in ("bid", "expired", "accepted", "running", "executed", "failed"):
            for other in self.store.take_lane(rec.deal_id):
                self.metrics.lane_taken.inc()
                log.warning("deal failed: its lane was taken on-chain by an earlier bid",
                            extra={"deal_id": other.deal_id, "by": rec.deal_id, "lane": rec.lane})
        self.store.update(rec.deal_id, on_chain=1)
        adoptable = rec.state in ("bid", "expired") or (rec.state == "failed" and rec.error == LANE_TAKEN)
        if adoptable and self.store.update(rec.deal_id, expect=(rec.state,), state="accepted", error=None,
                                           receipt=None, salt=None, seal=None, started_at=None) is not None:
            if rec.state != "bid":
                log.warning("adopted a deal the requester opened after it was released",
                            extra={"deal_id": rec.deal_id, "was": rec.state, "lane": rec.lane})
        self.kick(rec.deal_id)
        return (self.store.get(rec.deal_id) or rec).state == "accepted"

    def on_blob(self, ref: str) -> None:
        """A blob arrived: start every accepted deal it completes."""
        for rec in self.store.in_states("accepted"):
            if ref in needed_blobs(JobSpec.from_json(rec.spec_json)):
                self.kick(rec.deal_id)

    async def shutdown(self) -> None:
        """Stop waiting for sandboxes (their deals are re-run after a restart)."""
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # running --------------------------------------------------------------------------------
    def runtime(self, name: str) -> Runtime:
        if name not in self._runtimes:
            if name == CONTAINER_RUNTIME:
                self._runtimes[name] = self._container_runtime()
            else:
                self._runtimes[name] = runtime_for(name, self.blobs, cache_dir=self.cfg.data_dir / "cache")
        return self._runtimes[name]

    def _container_runtime(self) -> Runtime:
        """The container runtime under the ``[container]`` policy (GPUs detected on first use
        unless ``gpus = "off"``); its state lives under the data dir."""
        from mercato.runtimes.container import ContainerRuntime

        cc = self.cfg.container
        return ContainerRuntime(self.blobs, state_dir=self.cfg.data_dir / "containers",
                                settings=cc.settings(self.chain.address), gpus=[] if cc.gpus == "off" else None)

    async def _run(self, deal_id: str) -> None:
        async with self._sem:
            rec = self.store.get(deal_id)
            if rec is None or rec.state != "accepted":
                return
            if await self.chain.now() > rec.terms_obj.deadline:
                self._fail(deal_id, "the deadline passed before the job could start")
                return
            self.store.update(deal_id, expect=("accepted",), state="running")
            spec = JobSpec.from_json(rec.spec_json)
            receipt = await self._execute(deal_id, spec)
            if receipt is None:
                return
            self._record(deal_id, receipt)
        await self.commit(deal_id)

    async def _execute(self, deal_id: str, spec: JobSpec) -> Receipt | None:
        """The deal's receipt, or None once it failed. A ``MercatoError`` is the job's own fault
        (a bad workload); anything else is ours: logged with its traceback and tried once more
        (the sandbox is deterministic, so a second run is the same job), then the deal fails and
        its lane is freed rather than left ``running`` until a restart."""
        for attempt in range(1, UNEXPECTED_TRIES + 1):
            try:
                return await in_daemon_thread(self._sandbox, deal_id, spec)
            except MercatoError as exc:
                self._fail(deal_id, f"the sandbox could not run the job: {exc}")
                return None
            except Exception as exc:  # noqa: BLE001 - a bug in the executor must not strand a lane
                self.metrics.executor_errors.inc()
                log.error("executor error", exc_info=True,
                          extra={"deal_id": deal_id, "attempt": attempt, "error": f"{type(exc).__name__}: {exc}"})
                last = exc
        self._fail(deal_id, f"internal error in the provider's executor: {type(last).__name__}: {last}")
        return None

    def _sandbox(self, deal_id: str, spec: JobSpec) -> Receipt:
        runtime = self.runtime(spec.runtime)
        ws = self._fresh_workspace(deal_id)
        started = time.time()  # reported as started_at: time-to-first-byte is measured from it
        self.store.update(deal_id, started_at=started)
        from mercato.runtimes.container import ContainerRuntime

        # the deal id labels the container (mercato.job); a batch runs task by task (runtimes.batch)
        labels = {"job_id": deal_id.removeprefix("0x")[:16]} if isinstance(runtime, ContainerRuntime) else {}
        receipt = run_spec(runtime, spec, ws, **labels)
        self.metrics.sandbox_seconds.observe(time.time() - started)
        return receipt

    def _fresh_workspace(self, deal_id: str) -> Workspace:
        return fresh_workspace(self.deal_dir(deal_id) / "ws")

    def _record(self, deal_id: str, receipt: Receipt) -> None:
        d = self.deal_dir(deal_id)
        (d / "stdout").write_bytes(receipt.stdout)
        (d / "stderr").write_bytes(receipt.stderr)
        self.metrics.fuel.inc(receipt.fuel_used)
        self.store.update(deal_id, expect=("running",), state="executed", receipt=json.dumps(receipt.to_json()))
        log.info("executed", extra={"deal_id": deal_id, "outcome": receipt.outcome.value,
                                    "fuel_used": receipt.fuel_used, "result_root": receipt.result_root})

    def _lane_taken(self, rec: DealRecord) -> None:
        """An earlier deal holds ``rec``'s lane on-chain: ``rec`` can never open while it stands."""
        if self.store.update(rec.deal_id, state="failed", error=LANE_TAKEN, on_chain=0) is not None:
            self.metrics.lane_taken.inc()
            log.warning("deal failed", extra={"deal_id": rec.deal_id, "error": LANE_TAKEN})
        # busy on-chain: not free for a new bid until the watcher binds it to the opener, or it frees
        self.store.rebind_lane(rec.lane, EXTERNAL, only_from=rec.deal_id)

    def reject(self, deal_id: str, error: str) -> None:
        """Fail a deal that has not started (a bad upload): never run, its lane freed if unopened."""
        rec = self.store.get(deal_id)
        if rec is not None and rec.state in ("bid", "accepted"):
            self._fail(deal_id, error)

    def _fail(self, deal_id: str, error: str) -> None:
        rec = self.store.update(deal_id, state="failed", error=error)
        log.warning("deal failed", extra={"deal_id": deal_id, "error": error})
        if rec is not None and not rec.on_chain:  # an unopened deal holds no lane on-chain
            self.store.release_lane(rec.lane, rec.deal_id)

    # committing -----------------------------------------------------------------------------
    async def commit(self, deal_id: str) -> None:
        """Commit an executed deal's seal (idempotent; chain errors leave it for the next retry)."""
        rec = self.store.get(deal_id)
        if rec is None or rec.state != "executed" or deal_id in self._committing:
            return
        if self.cfg.behaviour == "never_commit":  # TEST ONLY fault injection
            return
        self._committing.add(deal_id)
        try:
            await self._commit(self._sealed(rec))
        except ChainError as exc:
            self.metrics.chain_errors.labels(op="commit").inc()
            log.warning("commit failed; will retry", extra={"deal_id": deal_id, "error": str(exc)})
        finally:
            self._committing.discard(deal_id)

    def _sealed(self, rec: DealRecord) -> DealRecord:
        if rec.salt and rec.seal:
            return rec
        receipt = rec.receipt_json or {}
        root = str(receipt["result_root"])
        if self.cfg.behaviour in WRONG_RESULT:  # TEST ONLY: a seal over a root we did not compute
            root = self.wrong_root(root)
        salt = secrets.token_bytes(32)
        # TEST ONLY (copied_seal): a seal another executor made for this result, which we can never open
        executor = COPIED_FROM if self.cfg.behaviour == "copied_seal" else self.chain.address
        seal = seal_of(executor, bytes.fromhex(rec.deal_id.removeprefix("0x")), bytes.fromhex(root),
                       int(receipt["fuel_used"]), salt)
        out = self.store.update(rec.deal_id, salt="0x" + salt.hex(), seal="0x" + seal.hex())
        assert out is not None
        return out

    @staticmethod
    def wrong_root(root: str) -> str:
        """TEST ONLY (``behaviour = "wrong_result"``): the root a cheating provider claims."""
        return hashlib.sha256(b"wrong" + bytes.fromhex(root)).hexdigest()

    async def _commit(self, rec: DealRecord) -> None:
        terms, seal = rec.terms_obj, bytes.fromhex(rec.seal.removeprefix("0x"))  # type: ignore[union-attr]
        now = await self.chain.now()
        if now > terms.deadline:
            self._fail(rec.deal_id, "the deadline passed before the seal could be committed")
            return
        lane = await self.chain.read(self.chain.market.lane, terms.provider, terms.lane)
        opened = lane.last_nonce == terms.nonce and lane.busy
        if opened and lane.deal_hash_prefix != hash_prefix(Deal(terms)):
            self._committed_elsewhere(rec)  # our own earlier commit landed before a crash
            return
        if lane.last_nonce > terms.nonce or (lane.last_nonce == terms.nonce and not lane.busy):
            self._fail(rec.deal_id, "the deal was settled on-chain before this agent committed")
            return
        if lane.busy and lane.last_nonce < terms.nonce:  # an earlier (released) bid was opened there
            self._lane_taken(rec)
            return
        if opened or rec.on_chain:
            done, method = await self._commit_result(rec, terms, seal), "commit_result"
        elif now <= terms.expiry and rec.acceptance_sig:
            done, method = await self._open_and_commit(rec, terms, seal)
        else:
            self._fail(rec.deal_id, "the bid expired and the requester never opened the deal")
            return
        if done is None:
            return
        self.store.update(rec.deal_id, expect=("executed",), state="committed", on_chain=1,
                          commit_tx="0x" + done.tx.tx_hash.hex(), committed_at=done.deal.committed_at,
                          committed_block=done.deal.committed_block)
        self.metrics.commits.labels(method=method).inc()
        log.info("committed", extra={"deal_id": rec.deal_id, "method": method, "tx": done.tx.tx_hash.hex()})

    async def _commit_result(self, rec: DealRecord, terms: Terms, seal: bytes) -> DealTx | None:
        try:
            return await self.chain.write(self.chain.market.commit_result, Deal(terms), seal)
        except AlreadyCommitted:
            self._committed_elsewhere(rec)
        except DeadlinePassed:
            self._fail(rec.deal_id, "the deadline passed before the seal could be committed")
        return None

    async def _open_and_commit(self, rec: DealRecord, terms: Terms, seal: bytes) -> tuple[DealTx | None, str]:
        sig = bytes.fromhex(rec.acceptance_sig.removeprefix("0x"))  # type: ignore[union-attr]
        try:
            return await self.chain.write(self.chain.market.open_and_commit, terms, sig, seal), "open_and_commit"
        except (LaneBusy, BidReplayed):  # an open landed first: ours (the requester's) or an earlier bid's?
            lane = await self._lane_after_pending_open(terms)
            if lane.last_nonce == terms.nonce and lane.busy:  # the requester opened this very deal
                self.store.update(rec.deal_id, on_chain=1)
                return await self._commit_result(rec, terms, seal), "commit_result"
            if lane.busy and lane.last_nonce < terms.nonce:
                self._lane_taken(rec)
            else:
                self._fail(rec.deal_id, "the deal was settled on-chain before this agent committed")
            return None, "open_and_commit"

    async def _lane_after_pending_open(self, terms: Terms, attempts: int = 40, pause: float = 0.5) -> Any:
        """The lane once the open that beat ours is mined. Gas is estimated against the pending
        block, so an open still in the mempool makes ours revert while the latest block shows
        the lane free at an older nonce: wait (up to ``attempts × pause`` s) for it to land."""
        lane = await self.chain.read(self.chain.market.lane, terms.provider, terms.lane)
        for _ in range(attempts):
            if lane.busy or lane.last_nonce >= terms.nonce:
                return lane
            await asyncio.sleep(pause)
            lane = await self.chain.read(self.chain.market.lane, terms.provider, terms.lane)
        return lane

    def _committed_elsewhere(self, rec: DealRecord) -> None:
        """The seal is on-chain already (sent before a restart): the watcher supplies committed_at."""
        self.store.update(rec.deal_id, expect=("executed",), state="committed", on_chain=1)
        log.info("seal already on-chain", extra={"deal_id": rec.deal_id})
