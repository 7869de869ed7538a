"""Progress events of ``Market.run`` and its result (frozen dataclasses; money in base units).

    >>> async with Market.connect(settings, on_event=print) as m:   # doctest: +SKIP
    ...     result = await m.run(request)
    BidsCollected(asked=3, bids=2, ...)
    WinnerChosen(provider='0x…', price=120000, ...)
    ...

Order on the happy path: BidsCollected → WinnerChosen → Accepted → Running → Committed →
Verified → Paid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BidsCollected",
    "WinnerChosen",
    "Accepted",
    "Running",
    "Committed",
    "Verified",
    "Paid",
    "Event",
    "EventCallback",
    "JobResult",
    "Balance",
    "ProviderView",
]


@dataclass(frozen=True, slots=True)
class BidsCollected:
    """The bid window closed: ``asked`` providers, ``compliant`` usable bids; ``causes`` says
    why every other provider gave none (address -> reason)."""

    asked: int
    bids: int
    compliant: int
    causes: dict[str, str] = field(default_factory=dict)
    window_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class WinnerChosen:
    """The winning bid by the matching rule (lowest price; ties by reputation, stake, address)."""

    provider: str
    endpoint: str
    price: int
    collateral: int
    deal_id: str
    runner_up_price: int | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The signed acceptance reached the provider, and the workload and inputs are uploaded."""

    deal_id: str
    uploaded_bytes: int


@dataclass(frozen=True, slots=True)
class Running:
    """The provider started the workload at ``started_at`` (unix time, the provider's clock)."""

    deal_id: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Committed:
    """The provider's result seal is on-chain."""

    deal_id: str
    seal: str
    commit_tx: str | None


@dataclass(frozen=True, slots=True)
class Verified:
    """Every output, stdout, stderr and the exit matched the on-chain seal."""

    deal_id: str
    result_root: str
    outputs: int


@dataclass(frozen=True, slots=True)
class Paid:
    """The price is out of your escrow balance and into the open deal (the provider collects it
    when the deal finalizes after the challenge window)."""

    deal_id: str
    price: int
    open_tx: str | None
    opened_by: str  # "requester" (open_deal) or "provider" (open_and_commit)


Event = BidsCollected | WinnerChosen | Accepted | Running | Committed | Verified | Paid
EventCallback = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class JobResult:
    """A verified job: who ran it, for how much, what came out, and how long each step took.

    ``outputs`` maps each path under /output to its bytes (also written under ``out_dir``
    when one was given). Timings are milliseconds from the call of ``run``; ``ttfb_ms`` is to
    the provider's ``started_at``.
    """

    deal_id: str
    provider: str
    endpoint: str
    price: int
    collateral: int
    outcome: str
    exit_code: int | None
    fuel_used: int
    result_root: str
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]
    verified: bool
    seal: str
    open_tx: str | None
    commit_tx: str | None
    opened_by: str
    out_dir: Path | None = None
    started_at: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ttfb_ms(self) -> float | None:
        """Milliseconds from ``run`` to the provider's start of the workload."""
        return self.timings.get("ttfb_ms")


@dataclass(frozen=True, slots=True)
class Balance:
    """Your money: ``available`` escrow, a ``pending`` withdrawal (ready at ``ready_at``), and
    the tokens in your ``wallet`` (all base units)."""

    available: int
    pending: int
    ready_at: int
    wallet: int


@dataclass(frozen=True, slots=True)
class ProviderView:
    """One registry row as ``mercato providers`` shows it."""

    address: str
    endpoint: str
    stake: int
    free_stake: int
    completed: int
    missed: int
    score: float  # score_reputation as a float, for display only
