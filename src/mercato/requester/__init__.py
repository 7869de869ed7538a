"""mercato.requester: buy verified compute in one call.

    >>> async with Market.connect(settings) as m:                        # doctest: +SKIP
    ...     result = await m.run(JobRequest.from_files("examples/wasm/montecarlo.wasm",
    ...                                                args=["1000000", "7"], max_price=500_000))
    >>> result.stdout, result.price, result.verification                 # doctest: +SKIP
    (b'...', 120000, 'sealed')
    >>> (await m.verification(result)).state                              # doctest: +SKIP
    <Verification.AUDITED: 'audited'>

A result is *sealed* when ``run`` returns (it opens the provider's on-chain seal); whether anyone
else re-executed it is known after its lottery and audit (``requester.trust``).

``SyncMarket`` is the same without ``async``; ``load_job_toml`` reads a ``job.toml``.
``Market.map`` runs many tasks of one job over many providers and streams ``TaskResult``s:

    >>> run = m.map(job, [Path("in/1.bin"), Path("in/2.bin")], max_price_per_cu=20_000)  # doctest: +SKIP
    >>> async for task in run: ...                                                      # doctest: +SKIP
"""

from mercato.requester.events import (
    Accepted,
    AuditorsShort,
    Balance,
    BatchCancelled,
    BatchDispatched,
    BatchDone,
    BatchFailed,
    BidsCollected,
    BidsRetried,
    Committed,
    Event,
    EventCallback,
    JobResult,
    MapFinished,
    MapSummary,
    Paid,
    ProviderExcluded,
    ProviderTally,
    ProviderView,
    QuotesCollected,
    Running,
    Spend,
    TaskResult,
    TasksQueued,
    Verified,
    WinnerChosen,
)
from mercato.requester.history import JobHistory, JobRecord
from mercato.requester.mapper import MapRun, MapTask
from mercato.requester.market import Market
from mercato.requester.money import format_musd, parse_musd
from mercato.requester.request import JobRequest, load_job_toml, load_map_toml
from mercato.requester.redundancy import Verdict, run_redundant
from mercato.requester.sync import SyncMarket
from mercato.requester.trust import Verification, VerificationStatus

__all__ = [
    "Accepted",
    "AuditorsShort",
    "Balance",
    "BatchCancelled",
    "BatchDispatched",
    "BatchDone",
    "BatchFailed",
    "BidsCollected",
    "BidsRetried",
    "Committed",
    "Event",
    "EventCallback",
    "JobHistory",
    "JobRecord",
    "JobRequest",
    "JobResult",
    "MapFinished",
    "MapRun",
    "MapSummary",
    "MapTask",
    "Market",
    "Paid",
    "ProviderExcluded",
    "ProviderTally",
    "ProviderView",
    "QuotesCollected",
    "Running",
    "Spend",
    "SyncMarket",
    "TaskResult",
    "TasksQueued",
    "Verdict",
    "Verification",
    "VerificationStatus",
    "Verified",
    "WinnerChosen",
    "format_musd",
    "load_job_toml",
    "load_map_toml",
    "parse_musd",
    "run_redundant",
]
