"""Housekeeping: expire untaken bids, give up on missed deadlines, finalize, claim earnings.

    await settler.run_once()       # the agent calls this every housekeeping_interval_s

- A bid past its expiry releases its lane — unless the lane on-chain shows the deal was
  opened after all (the watcher may lag), in which case the deal is accepted.
- A bid the requester released (its lane went to new bids at once) is checked on-chain once
  past its expiry: if the requester opened it after all (and the watcher missed it), it is
  adopted like any opened deal.
- A deal past its deadline without a seal is failed; if it was opened on-chain its lane
  stays busy until it is reclaimed, which this agent does itself ``reclaim_grace_s`` after
  the deadline (the refund and penalty go to the requester either way; this frees the lane).
- Committed deals whose challenge window has passed are finalized in batches of at most
  ``finalize_batch``; a deal someone else settled already is filtered out first, because a
  batch is all-or-nothing.
- Earnings are claimed once they reach ``claim_threshold``.
"""

from __future__ import annotations

import logging

from mercato.chain.market import chunks
from mercato.domain.deals import ZERO32, Deal, deal_hash
from mercato.errors import ChainError
from mercato.provider.chainio import ChainIO
from mercato.provider.config import ProviderConfig
from mercato.provider.executor import Executor
from mercato.provider.metrics import Metrics
from mercato.provider.store import EXTERNAL, RELEASED_CLOSED, DealRecord, Store

__all__ = ["Settler", "committed_deal"]

log = logging.getLogger("mercato.provider.settle")


def committed_deal(rec: DealRecord) -> Deal:
    """The on-chain ``Deal`` record of a committed deal."""
    seal = bytes.fromhex(rec.seal.removeprefix("0x")) if rec.seal else ZERO32
    return Deal(rec.terms_obj, seal, rec.committed_at or 0)


class Settler:
    """The periodic bookkeeping of one agent."""

    def __init__(self, cfg: ProviderConfig, store: Store, chain: ChainIO, executor: Executor, metrics: Metrics,
                 challenge_window: int) -> None:
        self.cfg = cfg
        self.store = store
        self.chain = chain
        self.executor = executor
        self.metrics = metrics
        self.challenge_window = challenge_window
        self._claim_due = True

    async def run_once(self) -> None:
        """One round; a chain error in one step is logged and retried next round."""
        now = await self.chain.now()
        for step in (self._expire_bids, self._close_released, self._retry_commits, self._miss_deadlines,
                     self._reclaim_missed, self._free_external_lanes, self._finalize, self._claim):
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
                reason = ("the workload or inputs never arrived" if rec.state == "accepted"
                          else "the seal was not committed in time")
                self.executor._fail(rec.deal_id, f"deadline passed: {reason}")

    async def _reclaim_missed(self, now: int) -> None:
        due = [r for r in self.store.in_states("failed")
               if r.on_chain and now > r.terms_obj.deadline + self.cfg.reclaim_grace_s]
        for rec in due:
            busy, nonce, prefix = await self._lane(rec)
            deal = Deal(rec.terms_obj)
            if busy and nonce == rec.nonce and prefix == int.from_bytes(deal_hash(deal), "big") >> 64:
                await self.chain.write(self.chain.market.reclaim, [deal])
            self.store.update(rec.deal_id, expect=("failed",), state="reclaimed")
            self.store.release_lane(rec.lane, rec.deal_id)
            log.info("reclaimed missed deal", extra={"deal_id": rec.deal_id})

    async def _free_external_lanes(self, now: int) -> None:
        for idx, _nonce, holder in self.store.lanes(self.cfg.lanes):
            if holder == EXTERNAL:
                lane = await self.chain.read(self.chain.market.lane, self.chain.address, idx)
                self.store.sync_lane(idx, lane.last_nonce, lane.busy)

    async def _finalize(self, now: int) -> None:
        ready = [r for r in self.store.in_states("committed")
                 if r.committed_at is not None and now >= r.committed_at + self.challenge_window]
        live: list[DealRecord] = []
        for rec in ready:
            busy, nonce, prefix = await self._lane(rec)
            if busy and nonce == rec.nonce and prefix == int.from_bytes(deal_hash(committed_deal(rec)), "big") >> 64:
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
