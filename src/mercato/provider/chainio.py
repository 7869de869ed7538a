"""The agent's one door to the chain: web3 calls off the event loop, writes one at a time.

    chain = ChainIO(market)
    free = await chain.read(chain.market.free_stake)
    tx = await chain.write(chain.market.claim_earnings)

web3 is synchronous, so every call runs in a worker thread: a slow node (each request is
bounded by the RPC timeout) holds a thread, never the event loop. Writes additionally pass one
asyncio lock: the key has one ``TxSender`` and one nonce sequence, and interleaved sends
from the same key are what stalls providers elsewhere (see docs on Akash "account sequence
mismatch").

Outages: after a call fails with ``RpcUnavailable`` every call fails fast with
``RpcUnavailable`` for a back-off period (0.5 s, doubling per failed try, at most 30 s) instead
of hammering the node; the first call after it tries the node again. One warning per outage
("RPC unavailable, backing off") and one line when it ends ("RPC back") are logged; the
agent's loops skip a round on these errors without a traceback of their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mercato.chain.api import MarketApi
from mercato.errors import RpcUnavailable

__all__ = ["ChainIO", "wall_clock_floor", "OutageFilter"]

T = TypeVar("T")

log = logging.getLogger("mercato.provider.chain")


def wall_clock_floor(market: MarketApi) -> Callable[[], int]:
    """A clock for a real node: the next block's time is at least the latest block's and the
    host's (anvil stamps a new block with the wall clock plus any ``evm_increaseTime``)."""
    return lambda: max(market.now(), int(time.time()))


class OutageFilter(logging.Filter):
    """Drops records whose exception is an ``RpcUnavailable`` that ``ChainIO`` has already
    reported as part of an outage: one warning per outage, not one traceback per loop round."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, RpcUnavailable) and getattr(exc, "outage_logged", False))


_FILTER = OutageFilter()


class ChainIO:
    """``MarketApi`` calls made safe for asyncio; ``clock()`` is the chain's notion of now."""

    def __init__(self, market: MarketApi, clock: Callable[[], int] | None = None, *,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 quiet_loggers: tuple[str, ...] = ("mercato.provider",)) -> None:
        self.market = market
        self.clock = clock or market.now
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._write_lock = asyncio.Lock()
        self._delay = 0.0  # the current back-off; 0 while the node answers
        self._retry_at = 0.0  # monotonic time before which calls fail fast
        self._failed_at = 0.0  # monotonic time of the last failure that set the back-off
        self._down_since: float | None = None
        self._last_error = ""
        for name in quiet_loggers:  # the loops that log what a round throws
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)

    @property
    def address(self) -> str:
        return self.market.address

    @property
    def available(self) -> bool:
        """False while an outage is being backed off from."""
        return self._down_since is None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a view (or any blocking call) in a worker thread."""
        return await self._call(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Send a transaction: one at a time for this key, in a worker thread."""
        async with self._write_lock:
            return await self._call(fn, *args)

    async def now(self) -> int:
        """Unix time as the chain will see it in the next block."""
        return await self._call(self.clock)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        if started < self._retry_at:
            exc = RpcUnavailable(f"the RPC node is unavailable ({self._last_error}); backing off "
                                 f"{self._retry_at - started:.1f} s more before trying it again")
            exc.outage_logged = True  # type: ignore[attr-defined]
            raise exc
        try:
            result = await asyncio.to_thread(fn, *args)
        except RpcUnavailable as exc:
            self._failed(exc, started)
            raise
        if self._down_since is not None:
            log.info("RPC back", extra={"down_s": round(time.monotonic() - self._down_since, 1)})
            self._down_since, self._delay, self._retry_at = None, 0.0, 0.0
        return result

    def _failed(self, exc: RpcUnavailable, started: float) -> None:
        now = time.monotonic()
        if started >= self._failed_at:  # calls that were in flight together count as one try
            self._delay = min(self.max_backoff_s, self._delay * 2 if self._delay else self.backoff_s)
            self._failed_at = now
            self._retry_at = now + self._delay
        self._last_error = str(exc)
        if self._down_since is None:
            self._down_since = now
            log.warning("RPC unavailable, backing off", extra={"error": str(exc), "backoff_s": self._delay})
        exc.outage_logged = True  # type: ignore[attr-defined]
