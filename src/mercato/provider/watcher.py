"""The chain watcher: deal events that concern this provider, polled from the node.

    source = LogEventSource(client, start_block=deployment.block)
    for ev in source.poll(cursor):          # DealOpened, ResultCommitted, DealFinalized, DealReclaimed
        ...

``MarketClient`` has no event query, so ``LogEventSource`` reads ``eth_getLogs`` over the
market's two addresses (the Market's deal events and the court's ``AuditorDrawn``) with web3
directly, in ranges of at most ``chunk`` blocks, and stamps each event
with its block's timestamp (an ``open_and_commit``'s committed_at). The cursor (the last
block handled) lives in the agent's store, so a restart replays nothing it has applied and
misses nothing; a node that was down is caught up from the cursor, a chunk per poll. A head
below the cursor (a node restarted from an older state dump, a devnet reset) rewinds the
cursor to the head, so the blocks mined again above it are read. Reorgs are not otherwise
handled (anvil and L2s with instant finality).

A watcher with no cursor yet (a fresh store) starts ``lookback_blocks`` below the head rather
than at the deployment: an event older than that cannot name a deal this store ever bid on,
and reading a long-lived market's whole history would keep a new provider busy for minutes.
The lookback still covers the agent's own registration and any audit seat drawn for it since.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mercato.chain.market import MarketClient

__all__ = ["ChainEvent", "EventSource", "LogEventSource", "WATCHED"]

log = logging.getLogger("mercato.provider.watcher")

FRESH_LOOKBACK_BLOCKS = 256  # how far below the head a watcher with an empty store starts

WATCHED = ("DealOpened", "ResultCommitted", "DealDrawn", "DealFinalized", "DealReclaimed", "AuditorDrawn")


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """A decoded deal event with where it was mined."""

    name: str
    args: dict[str, Any]
    block: int
    timestamp: int


class EventSource(Protocol):
    """New deal events after block ``cursor``, and the block they run up to."""

    def poll(self, cursor: int | None) -> tuple[Sequence[ChainEvent], int]: ...


class LogEventSource:
    """Deal events of one market over JSON-RPC logs."""

    def __init__(self, client: MarketClient, *, start_block: int = 0, chunk: int = 2_000,
                 lookback_blocks: int | None = None) -> None:
        self.client = client
        self.start_block = start_block
        self.chunk = chunk
        self.lookback_blocks = lookback_blocks  # None: a first poll reads from start_block
        self._topics = client.event_topics(WATCHED)
        self._times: dict[int, int] = {}

    def poll(self, cursor: int | None) -> tuple[list[ChainEvent], int]:
        """Events in ``(cursor, latest]``, at most one chunk; the first call (no cursor) reads from
        ``start_block``, or from ``lookback_blocks`` below the head when that is later."""
        w3 = self.client.w3
        latest = int(w3.eth.block_number)
        if cursor is not None and cursor > latest:
            log.warning("the chain head is below the watcher's cursor: reading from the head on",
                        extra={"cursor": cursor, "head": latest})
            self._times.clear()
            return [], latest
        if cursor is None:
            back = self.start_block if self.lookback_blocks is None else latest - self.lookback_blocks + 1
            first = max(self.start_block, back)
        else:
            first = cursor + 1
        if first > latest:
            return [], latest if cursor is None else cursor
        last = min(latest, first + self.chunk - 1)
        logs = w3.eth.get_logs({"address": list(self.client.log_addresses),  # type: ignore[typeddict-item]
                                "fromBlock": first, "toBlock": last,
                                "topics": [["0x" + t.hex() for t in self._topics]]})
        ordered = sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
        return [ev for ev in (self._decode(log) for log in ordered) if ev is not None], last

    def _decode(self, log: Any) -> ChainEvent | None:
        event = self.client.decode_log(log)
        if event is None:
            return None
        block = int(log["blockNumber"])
        if block not in self._times:
            self._times[block] = int(self.client.w3.eth.get_block(block)["timestamp"])
        return ChainEvent(event.name, dict(event.args), block, self._times[block])
