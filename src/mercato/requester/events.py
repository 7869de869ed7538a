"""Progress events of ``Market.run`` and its result (frozen dataclasses; money in base units).

    >>> async with Market.connect(settings, on_event=print) as m:   # doctest: +SKIP
    ...     result = await m.run(request)
    BidsCollected(asked=3, bids=2, ...)
    WinnerChosen(provider='0x…', price=120000, ...)
    ...

Order on the happy path: BidsCollected → WinnerChosen → Accepted → Running → Committed →
Verified → Paid. ``Verified`` means the result opens the provider's on-chain seal, not that anyone
else re-executed it (``JobResult.verification``, docs/SPEC.md §14.9). AuditorsShort comes at most
once per Market, after the first ``run``'s Paid, when too few providers could audit a deal. A round without a compliant bid for a cause time may cure (a provider too slow
for the window, every lane busy) is asked again with a wider window: BidsCollected → BidsRetried
→ BidsCollected … (``Market(bid_retries=…)`` rounds more at most).

``Market.map`` reports the run, not each deal (its batches' own deal events are not emitted):
QuotesCollected, then TasksQueued (all tasks), then for each batch BatchDispatched → BatchDone
(or BatchFailed, whose tasks are queued again: TasksQueued with ``requeued=True``; or
BatchCancelled, a duplicate that lost), ProviderExcluded when a provider is dropped for a
failure, Spend whenever the money held against the budget changes, and MapFinished last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "BidsCollected",
    "BidsRetried",
    "WinnerChosen",
    "Accepted",
    "Running",
    "Committed",
    "Verified",
    "Paid",
    "AuditorsShort",
    "QuotesCollected",
    "TasksQueued",
    "BatchDispatched",
    "BatchDone",
    "BatchFailed",
    "BatchCancelled",
    "ProviderExcluded",
    "Spend",
    "MapFinished",
    "Event",
    "EventCallback",
    "JobResult",
    "TaskResult",
    "ProviderTally",
    "MapSummary",
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
class BidsRetried:
    """The round brought no compliant bid, for a cause time may cure (``reason``: "3 busy, 1
    silent"; ``causes``: address -> reason): after ``pause_s`` seconds the busy providers are asked
    again and the slow ones' answers awaited, for a ``next_window_ms`` window. ``attempt`` of at
    most ``retries``."""

    attempt: int
    retries: int
    window_ms: float
    next_window_ms: float
    pause_s: float
    reason: str
    causes: dict[str, str] = field(default_factory=dict)


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
    """Every output, stdout, stderr and the exit matched the provider's on-chain seal (the result
    is *sealed*: the provider stands behind it; nobody else has re-executed it yet)."""

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


@dataclass(frozen=True, slots=True)
class AuditorsShort:
    """Fewer providers could audit this market's deals than a dispute needs: ``available`` staked,
    unjailed providers besides the deal's ``provider`` and you, against ``needed``
    (``committee_size`` + 1: the first auditor and the committee). An audit may then pass by
    default (nobody checks) or a dispute end void. Emitted (and logged) once per Market."""

    available: int
    needed: int
    committee_size: int
    provider: str


# Market.map ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuotesCollected:
    """The bulk RFQ's window closed: ``asked`` providers, ``quotes`` usable bulk quotes; ``causes``
    says why every other provider gave none (address -> reason)."""

    asked: int
    quotes: int
    causes: dict[str, str] = field(default_factory=dict)
    window_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TasksQueued:
    """Tasks (indices into the inputs) waiting for a batch: all of them at the start, or a
    failed batch's tasks going back to the queue (``requeued``)."""

    tasks: tuple[int, ...]
    requeued: bool = False


@dataclass(frozen=True, slots=True)
class BatchDispatched:
    """Batch ``batch`` (its ``tasks``) was sent to ``provider`` at its quote; ``max_cost`` (its
    max price plus its audit fee) is reserved against the budget. A ``speculative`` one
    duplicates a straggling batch: the first verified result wins."""

    batch: int
    provider: str
    tasks: tuple[int, ...]
    price_per_cu: int
    max_cost: int
    speculative: bool = False


@dataclass(frozen=True, slots=True)
class BatchDone:
    """A batch's result was verified against its seal: its tasks are done."""

    batch: int
    provider: str
    tasks: tuple[int, ...]
    deal_id: str
    price: int
    seconds: float


@dataclass(frozen=True, slots=True)
class BatchFailed:
    """A batch came back without a verified result. ``kind``: "declined" (a mere refusal),
    "failed" (the provider gave up, vanished or misbehaved), "missed" (deadline missed: reclaimed
    and refunded), "mismatch" (the result did not verify: challenged), "error" (no one's fault,
    e.g. the RPC node), or "fatal" (the run cannot go on, e.g. the escrow balance is too low)."""

    batch: int
    provider: str
    tasks: tuple[int, ...]
    kind: str
    error: str


@dataclass(frozen=True, slots=True)
class BatchCancelled:
    """A duplicate of a batch stopped being watched: the other copy was verified first (or the
    run was stopped). Its provider may still open and commit the deal with the acceptance."""

    batch: int
    provider: str
    tasks: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ProviderExcluded:
    """``provider`` gets no more batches in this run (a failure, or declines in a row)."""

    provider: str
    reason: str


@dataclass(frozen=True, slots=True)
class Spend:
    """Money of the run, in base units: ``spent`` (prices of verified batches), ``committed``
    (held for good: spent plus audit fees, challenged and abandoned deals), ``reserved`` (the
    max cost of the batches in flight) against ``budget``."""

    spent: int
    committed: int
    reserved: int
    budget: int


@dataclass(frozen=True, slots=True)
class MapFinished:
    """The run is over: how many tasks are ``done``, ``failed`` (given up) and ``not_run``;
    ``stopped`` says why it ended early (None when every task was tried)."""

    done: int
    failed: int
    not_run: int
    spent: int
    stopped: str | None = None


Event = (BidsCollected | BidsRetried | WinnerChosen | Accepted | Running | Committed | Verified | Paid | AuditorsShort
         | QuotesCollected
         | TasksQueued | BatchDispatched | BatchDone | BatchFailed | BatchCancelled | ProviderExcluded | Spend
         | MapFinished)
EventCallback = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class JobResult:
    """A finished job: who ran it, for how much, what came out, and how long each step took.

    ``outputs`` maps each path under /output to its bytes (also written under ``out_dir``
    when one was given). Timings are milliseconds from the call of ``run``; ``ttfb_ms`` is to
    the provider's ``started_at``.

    What is known about the result (docs/SPEC.md §14.9):

    - ``verified`` (kept for compatibility) is True when every byte opened the provider's
      on-chain seal: the result is the one the provider committed to. It does **not** mean an
      independent party re-executed the job.
    - ``verification`` says how far it was checked: ``"sealed"`` when ``run`` returns (the
      lottery has not decided yet, or cleared the deal), later ``"audited"`` (an auditor
      re-executed it and agreed), ``"unaudited"`` (drawn for audit, but passed by default:
      nobody answered), ``"proven_wrong"`` (the audit failed; refunded) or ``"void"``.
    - ``provider_flagged``: the provider has been jailed (proven to cheat) since.

    ``await market.verification(result)`` reads the chain again; ``result.with_status(s)`` is a
    copy carrying what it found.
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
    verification: str = "sealed"  # a trust.Verification value
    provider_flagged: bool = False

    @property
    def ttfb_ms(self) -> float | None:
        """Milliseconds from ``run`` to the provider's start of the workload."""
        return self.timings.get("ttfb_ms")

    @property
    def audited(self) -> bool:
        """An independent re-execution agreed with the provider and the provider is not jailed."""
        return self.verification == "audited" and not self.provider_flagged

    def with_status(self, status: Any) -> JobResult:
        """A copy with the ``verification`` and ``provider_flagged`` of ``status`` (a
        ``trust.VerificationStatus`` for this deal)."""
        if status.deal_id.lower() != self.deal_id.lower():
            raise ValueError(f"status of deal {status.deal_id} given for deal {self.deal_id}")
        return replace(self, verification=str(status.state), provider_flagged=bool(status.provider_flagged))


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task of ``Market.map``, verified as part of its batch: task ``index`` of the inputs
    (``name``: its input file's stem or its index), what it printed and left under /output,
    the batch deal that ran it, and ``seed`` (hex), the seed it ran with (to replay it with
    ``mercato exec --seed``)."""

    index: int
    name: str
    outcome: str
    exit_code: int | None
    fuel_used: int
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]
    provider: str
    deal_id: str
    batch: int
    seed: str = ""

    @property
    def ok(self) -> bool:
        """The task ran to the end and exited 0 (a non-zero exit is a result too, and verified)."""
        return self.outcome == "ok" and self.exit_code == 0


@dataclass(frozen=True, slots=True)
class ProviderTally:
    """What one provider did in a map run: ``tasks`` and ``batches`` verified, ``spent`` on them,
    ``failures`` (declines counted apart), and why it was ``excluded`` (None if it was not)."""

    provider: str
    tasks: int = 0
    batches: int = 0
    spent: int = 0
    failures: int = 0
    declines: int = 0
    excluded: str | None = None


@dataclass(frozen=True, slots=True)
class MapSummary:
    """How a map run ended. ``done`` tasks were verified (and streamed); ``failed`` maps each
    task given up after too many failed batches to the last error; ``not_run`` were never
    verified because the run stopped (``stopped`` says why: the budget, no provider left, …).
    Money in base units: ``spent`` is the verified batches' prices; ``committed`` what stays
    held against the ``budget`` (spent, audit fees until the deals settle, challenged deals and
    abandoned duplicates)."""

    tasks: int
    done: tuple[int, ...]
    failed: dict[int, str]
    not_run: tuple[int, ...]
    stopped: str | None
    budget: int
    spent: int
    committed: int
    batches: int
    providers: dict[str, ProviderTally] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every task was verified."""
        return len(self.done) == self.tasks


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
