"""``SyncMarket``: the same Market for scripts and the CLI, without ``async``.

    >>> m = SyncMarket.connect(settings)                                  # doctest: +SKIP
    >>> m.run(load_job_toml("job.toml")).stdout                            # doctest: +SKIP
    b'samples=1000000 inside=785398 pi=3.1415920000\\n'

Each call runs the async Market in a fresh event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mercato.chain import Deployment
from mercato.chain.api import PendingWithdrawal, Tx
from mercato.config import Settings
from mercato.domain.jobs import JobSpec
from mercato.requester.events import Balance, JobResult, ProviderView
from mercato.requester.market import Market
from mercato.requester.request import JobRequest
from mercato.requester.trust import VerificationStatus

__all__ = ["SyncMarket"]

T = TypeVar("T")


class SyncMarket:
    """Blocking twin of :class:`Market` (same options, same errors)."""

    def __init__(self, market: Market) -> None:
        self.market = market

    @classmethod
    def connect(cls, settings: Settings | None = None, *, deployment: Deployment | None = None,
                key: str | None = None, **options: Any) -> SyncMarket:
        """As :meth:`Market.connect`."""
        return cls(Market.connect(settings, deployment=deployment, key=key, **options))

    def _do(self, step: Callable[[Market], Awaitable[T]]) -> T:
        async def once() -> T:
            try:
                return await step(self.market)
            finally:
                await self.market.aclose()  # the HTTP client belongs to this loop

        return asyncio.run(once())

    def run(self, job: JobRequest | JobSpec, **options: Any) -> JobResult:
        """As :meth:`Market.run`."""
        return self._do(lambda m: m.run(job, **options))

    def verification(self, result: JobResult | str, provider: str | None = None) -> VerificationStatus:
        """As :meth:`Market.verification`: what the chain says now about a result."""
        return self._do(lambda m: m.verification(result, provider))

    def deposit(self, amount: int) -> Tx:
        """As :meth:`Market.deposit`."""
        return self._do(lambda m: m.deposit(amount))

    def balance(self) -> Balance:
        """As :meth:`Market.balance`."""
        return self._do(lambda m: m.balance())

    def request_withdrawal(self, amount: int) -> PendingWithdrawal:
        """As :meth:`Market.request_withdrawal`."""
        return self._do(lambda m: m.request_withdrawal(amount))

    def complete_withdrawal(self, *, attempts: int = 1) -> Tx:
        """As :meth:`Market.complete_withdrawal`."""
        return self._do(lambda m: m.complete_withdrawal(attempts=attempts))

    def withdraw(self, amount: int, *, wait: bool = True) -> Tx | PendingWithdrawal:
        """As :meth:`Market.withdraw`."""
        return self._do(lambda m: m.withdraw(amount, wait=wait))

    def providers(self) -> list[ProviderView]:
        """As :meth:`Market.providers`."""
        return self._do(lambda m: m.providers())
