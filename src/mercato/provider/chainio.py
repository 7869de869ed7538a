"""The agent's one door to the chain: web3 calls off the event loop, writes one at a time.

    chain = ChainIO(market)
    free = await chain.read(chain.market.free_stake)
    tx = await chain.write(chain.market.claim_earnings)

web3 is synchronous, so every call runs in a worker thread. Writes additionally pass one
asyncio lock: the key has one ``TxSender`` and one nonce sequence, and interleaved sends
from the same key are what stalls providers elsewhere (see docs on Akash "account sequence
mismatch").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mercato.chain.api import MarketApi

__all__ = ["ChainIO", "wall_clock_floor"]

T = TypeVar("T")


def wall_clock_floor(market: MarketApi) -> Callable[[], int]:
    """A clock for a real node: the next block's time is at least the latest block's and the
    host's (anvil stamps a new block with the wall clock plus any ``evm_increaseTime``)."""
    return lambda: max(market.now(), int(time.time()))


class ChainIO:
    """``MarketApi`` calls made safe for asyncio; ``clock()`` is the chain's notion of now."""

    def __init__(self, market: MarketApi, clock: Callable[[], int] | None = None) -> None:
        self.market = market
        self.clock = clock or market.now
        self._write_lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return self.market.address

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a view (or any blocking call) in a worker thread."""
        return await asyncio.to_thread(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Send a transaction: one at a time for this key, in a worker thread."""
        async with self._write_lock:
            return await asyncio.to_thread(fn, *args)

    async def now(self) -> int:
        """Unix time as the chain will see it in the next block."""
        return await asyncio.to_thread(self.clock)
