"""Bid holds: an unaccepted bid frees its lane ``bid_hold_s`` after it was signed (docs/SPEC.md §13).

    holds = Holds(store, metrics)
    holds.start("0xabc…", cfg.bid_hold_s)   # the bidder, once the bid is stored
    holds.resume(cfg.bid_hold_s)            # after a restart: what is left of each waiting bid's hold
    holds.stop()                            # the agent is stopping

A bid can win only while its requester's bid window is open, so holding its lane for the whole
accept window (up to an hour) would let bids nobody will accept clog the provider. When the hold
is over and the bid is still a plain ``bid`` (no acceptance, not seen open on-chain) it is
released as a requester's ``DELETE`` releases it, marked ``store.HELD_OUT``: its signed terms stay
valid on-chain until their expiry, so an open is still honoured (``Executor.adopt_opened``), and
a late acceptance still takes it while its lane is free and unused since (``Bidder.retake``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from mercato.provider.metrics import Metrics
from mercato.provider.store import HELD_OUT, Store

__all__ = ["Holds"]

log = logging.getLogger("mercato.provider.bidder")


class Holds:
    """The hold timers of one agent's bids (on the running event loop)."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._timers: dict[str, asyncio.TimerHandle] = {}  # deal_id -> the end of its bid's hold

    def start(self, deal_id: str, seconds: float) -> None:
        """Free bid ``deal_id``'s lane in ``seconds`` unless it is accepted or opened by then::

            holds.start("0xabc…", 5.0)
        """
        old = self._timers.pop(deal_id, None)
        if old is not None:
            old.cancel()
        self._timers[deal_id] = asyncio.get_running_loop().call_later(max(seconds, 0.0), self._over, deal_id)

    def _over(self, deal_id: str) -> None:
        self._timers.pop(deal_id, None)
        rec = self.store.release_bid(deal_id, HELD_OUT)
        if rec is not None:
            self.metrics.held_out.inc()
            log.info("bid hold over: lane freed", extra={"deal_id": deal_id, "lane": rec.lane, "nonce": rec.nonce})

    def resume(self, hold_s: float) -> None:
        """After a restart, every bid still waiting for its acceptance gets what is left of its hold::

            holds.resume(cfg.bid_hold_s)
        """
        for rec in self.store.in_states("bid"):
            self.start(rec.deal_id, rec.created_at + hold_s - time.time())

    def stop(self) -> None:
        """Cancel every pending timer (a restart re-arms them: ``resume``)::

            holds.stop()
        """
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
