"""Housekeeping: expire untaken bids, give up on missed deadlines, finalize, claim earnings.

    await settler.run_once()       # the agent calls this every housekeeping_interval_s

- A bid past its expiry releases its lane — unless the lane on-chain shows the deal was
  opened after all (the watcher may lag), in which case the deal is accepted.
- A bid the requester released (its lane went to new bids at once) is checked on-chain once
  past its expiry: if the requester opened it after all (and the watcher missed it), it is
  adopted like any opened deal.
- A deal past its deadline without a seal is failed (one opened on-chain whose workload or
  inputs never arrived is logged as withheld by its requester, and counted); if it was opened on-chain its lane
  stays busy until it is reclaimed, which this agent does itself ``reclaim_grace_s`` after
  the deadline (the refund goes to the requester and the penalty is burned either way; this frees the lane).
- Committed deals go through the audit lottery (docs/SPEC.md §14.3): once the requester has
  revealed its seed (``POST /v1/deals/{id}/seed``) and the beacon block is mined, ``draw``
  runs in batches; a deal whose seed never came is sent to ``audit_by_default`` when its draw
  window is over (the requester's fee pays the audit, so withholding gains it nothing).
- Audited deals: the provider reveals its result when the audit reaches its reveal phase
  (and ``advance``s an audit whose phase deadline passed); a failed or void audit ends the deal.
- Cleared deals, and audited ones that passed, are finalized once the challenge window has
  passed, in batches of at most ``finalize_batch``; a deal someone else settled already is
  filtered out first, because a batch is all-or-nothing.
- Earnings are claimed once they reach ``claim_threshold``.
"""

from __future__ import annotations

import logging

from mercato.chain.api import AUDIT_FAILED, AUDIT_PASSED, AUDIT_REVEAL, AUDIT_VOID, AuditState
from mercato.chain.market import chunks
from mercato.domain.deals import AUDITED, CLEARED, UNDRAWN, ZERO32, Deal, hash_prefix
from mercato.errors import ChainError, DealsError
from mercato.provider.chainio import ChainIO
from mercato.provider.config import WRONG_RESULT, ProviderConfig
from mercato.provider.executor import Executor
from mercato.provider.metrics import Metrics
from mercato.provider.store import EXTERNAL, RELEASED_CLOSED, DealRecord, Store

__all__ = ["Settler", "committed_deal"]

log = logging.getLogger("mercato.provider.settle")


def committed_deal(rec: DealRecord) -> Deal:
    """The on-chain ``Deal`` record of a committed deal."""
    seal = bytes.fromhex(rec.seal.removeprefix("0x")) if rec.seal else ZERO32
    return Deal(rec.terms_obj, seal, rec.committed_at or 0, rec.committed_block or 0, rec.status)


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class Settler:
    """The periodic bookkeeping of one agent."""

    def __init__(self, cfg: ProviderConfig, store: Store, chain: ChainIO, executor: Executor, metrics: Metrics,
                 challenge_window: int, *, beacon_delay: int = 2, draw_blocks: int = 200) -> None:
        self.cfg = cfg
        self.store = store
        self.chain = chain
        self.executor = executor
        self.metrics = metrics
        self.challenge_window = challenge_window
        self.beacon_delay = beacon_delay
        self.draw_blocks = draw_blocks
        self._claim_due = True

    async def run_once(self) -> None:
        """One round; a chain error in one step is logged and retried next round."""
        now = await self.chain.now()
        for step in (self._expire_bids, self._close_released, self._retry_commits, self._miss_deadlines,
                     self._reclaim_missed, self._free_external_lanes, self._draw, self._audits, self._finalize,
                     self._claim):
            try:
                await step(now)
            except ChainError as exc:
                self.metrics.chain_errors.labels(op=step.__name__.strip("_")).inc()
                log.warning("housekeeping step failed", extra={"step": step.__name__, "error": str(exc)})

    async def _lane(self, rec: DealRecord) -> tuple[bool, int, int]:
        lane = await self.chain.read(self.chain.market.lane, self.chain.address, rec.lane)
        return lane.busy, lane.last_nonce, lane.deal_hash_prefix

    async def _expire_bids(self, now: int) -> None:
        for rec in self.store.in_states("bid"):
            if now <= rec.terms_obj.expiry:
                continue
            busy, nonce, _ = await self._lane(rec)
            if busy and nonce == rec.nonce:  # opened in time; the watcher has not told us yet
                self.store.update(rec.deal_id, expect=("bid",), state="accepted", on_chain=1)
                self.executor.kick(rec.deal_id)
            elif self.store.update(rec.deal_id, expect=("bid",), state="expired") is not None:
                self.store.release_lane(rec.lane, rec.deal_id)

    async def _close_released(self, now: int) -> None:
        for rec in self.store.released_open():
            if now <= rec.terms_obj.expiry:
                continue
            busy, nonce, _ = await self._lane(rec)
            if busy and nonce == rec.nonce:  # opened before its expiry; the watcher has not told us
                self.executor.adopt_opened(rec)
            else:
                self.store.update(rec.deal_id, expect=("expired",), error=RELEASED_CLOSED)

    async def _retry_commits(self, now: int) -> None:
        for rec in self.store.in_states("executed"):
            await self.executor.commit(rec.deal_id)

    async def _miss_deadlines(self, now: int) -> None:
        for rec in self.store.in_states("accepted", "executed"):
            if now > rec.terms_obj.deadline:
                reason = (self._never_started(rec) if rec.state == "accepted"
                          else "the seal was not committed in time")
                self.executor._fail(rec.deal_id, f"deadline passed: {reason}")

    def _never_started(self, rec: DealRecord) -> str:
        """Why an accepted deal never ran; a deal opened on-chain whose workload or inputs never came
        is logged and counted as withheld by its requester (docs/SPEC.md §13, "Withheld inputs")."""
        missing = self.executor.missing(rec)
        if not missing:
            return "the job never started"
        if not rec.on_chain:
            return (f"the workload or inputs never arrived ({len(missing)} blob(s) missing); the deal was never "
                    "opened on-chain: nothing was at stake")
        self.metrics.inputs_withheld.inc()
        terms = rec.terms_obj
        log.warning("requester withheld inputs", extra={
            "deal_id": rec.deal_id, "requester": terms.requester, "missing": missing, "collateral": terms.collateral,
            "deadline": terms.deadline})
        return (f"the requester withheld its inputs: it opened the deal on-chain but {len(missing)} blob(s) never "
                f"arrived ({', '.join(missing)}), so nothing was run or committed; the reclaim burns the miss "
                "penalty (the requester gains nothing from it)")

    async def _reclaim_missed(self, now: int) -> None:
        due = [r for r in self.store.in_states("failed")
               if r.on_chain and now > r.terms_obj.deadline + self.cfg.reclaim_grace_s]
        for rec in due:
            busy, nonce, prefix = await self._lane(rec)
            deal = Deal(rec.terms_obj)
            if busy and nonce == rec.nonce and prefix == hash_prefix(deal):
                await self.chain.write(self.chain.market.reclaim, [deal])
            self.store.update(rec.deal_id, expect=("failed",), state="reclaimed")
            self.store.release_lane(rec.lane, rec.deal_id)
            log.info("reclaimed missed deal", extra={"deal_id": rec.deal_id})

    async def _free_external_lanes(self, now: int) -> None:
        for idx, _nonce, holder in self.store.lanes(self.cfg.lanes):
            if holder == EXTERNAL:
                lane = await self.chain.read(self.chain.market.lane, self.chain.address, idx)
                self.store.sync_lane(idx, lane.last_nonce, lane.busy)

    async def _draw(self, now: int) -> None:
        undrawn = [r for r in self.store.in_states("committed")
                   if r.status == UNDRAWN and r.committed_block is not None]
        if not undrawn:
            return
        block = await self.chain.read(self.chain.market.block_number)
        beacon = self.beacon_delay
        # the draw lands in block + 1 at the earliest: it must be after the beacon block, within the window
        ready = [r for r in undrawn if r.seed and r.committed_block + beacon < block + 1  # type: ignore[operator]
                 and block + 1 <= r.committed_block + beacon + self.draw_blocks]  # type: ignore[operator]
        for batch in chunks(ready, self.cfg.finalize_batch):
            try:
                done = await self.chain.write(self.chain.market.draw, [committed_deal(r) for r in batch],
                                              [_hex(r.seed) for r in batch])  # type: ignore[arg-type]
            except DealsError as exc:  # someone drew or settled one of them: the watcher will tell
                log.warning("draw failed", extra={"deals": [r.deal_id for r in batch], "error": str(exc)})
                continue
            for rec, drawn in zip(batch, done, strict=True):
                self.store.update(rec.deal_id, status=drawn.deal.status)
            log.info("drawn", extra={"deals": [r.deal_id for r in batch],
                                     "audited": [d.deal.status == AUDITED for d in done]})
        for rec in undrawn:
            if block + 1 > rec.committed_block + beacon + self.draw_blocks:  # type: ignore[operator]
                try:  # the requester never revealed its seed: the audit is the default
                    await self.chain.write(self.chain.market.audit_by_default, committed_deal(rec))
                    self.store.update(rec.deal_id, status=AUDITED)
                except DealsError as exc:
                    log.warning("audit_by_default failed", extra={"deal_id": rec.deal_id, "error": str(exc)})

    async def _audit_state(self, rec: DealRecord) -> AuditState:
        return await self.chain.read(self.chain.market.audit, _hex(rec.deal_id))  # type: ignore[attr-defined]

    async def _audits(self, now: int) -> None:
        for rec in self.store.in_states("committed"):
            if rec.status != AUDITED:
                continue
            audit = await self._audit_state(rec)
            if audit.phase in (AUDIT_FAILED, AUDIT_VOID):
                outcome = "failed" if audit.phase == AUDIT_FAILED else "void (no majority: refunded)"
                if self.store.update(rec.deal_id, expect=("committed",), state="failed",
                                     error=f"audit {outcome}") is not None:
                    self.store.release_lane(rec.lane, rec.deal_id)
                log.warning("audit ended against the deal", extra={"deal_id": rec.deal_id, "outcome": outcome})
            elif audit.phase == AUDIT_REVEAL and not audit.provider_revealed and rec.receipt and rec.salt:
                await self._reveal(rec)
            elif not audit.resolved and audit.deadline and now > audit.deadline:
                await self.chain.write(self.chain.market.advance, _hex(rec.deal_id))  # type: ignore[attr-defined]

    async def _reveal(self, rec: DealRecord) -> None:
        receipt = rec.receipt_json or {}
        root = str(receipt["result_root"])
        if self.cfg.behaviour in WRONG_RESULT:  # TEST ONLY: open the seal over the root it was made of
            root = self.executor.wrong_root(root)
        await self.chain.write(self.chain.market.reveal, _hex(rec.deal_id),  # type: ignore[attr-defined]
                               bytes.fromhex(root), int(receipt["fuel_used"]), _hex(rec.salt))  # type: ignore[arg-type]
        log.info("revealed for audit", extra={"deal_id": rec.deal_id})

    async def _payable(self, rec: DealRecord) -> bool:
        if rec.status == CLEARED:
            return True
        return rec.status == AUDITED and (await self._audit_state(rec)).phase == AUDIT_PASSED

    async def _finalize(self, now: int) -> None:
        ready = [r for r in self.store.in_states("committed")
                 if r.committed_at is not None and now >= r.committed_at + self.challenge_window
                 and await self._payable(r)]
        live: list[DealRecord] = []
        for rec in ready:
            busy, nonce, prefix = await self._lane(rec)
            if busy and nonce == rec.nonce and prefix == hash_prefix(committed_deal(rec)):
                live.append(rec)
            elif not (busy and nonce == rec.nonce):  # settled by someone else (anyone may finalize)
                self._finalized(rec)
        for batch in chunks(live, self.cfg.finalize_batch):
            await self.chain.write(self.chain.market.finalize, [committed_deal(r) for r in batch])
            for rec in batch:
                self._finalized(rec)
            self.metrics.finalized.inc(len(batch))
            log.info("finalized", extra={"deals": [r.deal_id for r in batch]})

    def _finalized(self, rec: DealRecord) -> None:
        if self.store.update(rec.deal_id, expect=("committed",), state="finalized") is not None:
            self.store.release_lane(rec.lane, rec.deal_id)
            self._claim_due = True

    async def _claim(self, now: int) -> None:
        if not self._claim_due:
            return
        info = await self.chain.read(self.chain.market.provider_info)
        if info.earnings >= max(self.cfg.claim_threshold, 1):
            await self.chain.write(self.chain.market.claim_earnings)
            self.metrics.claimed.inc(info.earnings)
            log.info("claimed earnings", extra={"amount": info.earnings})
        self._claim_due = False
