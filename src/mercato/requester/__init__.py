"""mercato.requester: buy verified compute in one call.

    >>> async with Market.connect(settings) as m:                        # doctest: +SKIP
    ...     result = await m.run(JobRequest.from_files("examples/wasm/montecarlo.wasm",
    ...                                                args=["1000000", "7"], max_price=500_000))
    >>> result.stdout, result.price, result.verified                     # doctest: +SKIP

``SyncMarket`` is the same without ``async``; ``load_job_toml`` reads a ``job.toml``.
"""

from mercato.requester.events import (
    Accepted,
    Balance,
    BidsCollected,
    Committed,
    Event,
    EventCallback,
    JobResult,
    Paid,
    ProviderView,
    Running,
    Verified,
    WinnerChosen,
)
from mercato.requester.history import JobHistory, JobRecord
from mercato.requester.market import Market
from mercato.requester.money import format_musd, parse_musd
from mercato.requester.request import JobRequest, load_job_toml
from mercato.requester.redundancy import Verdict, run_redundant
from mercato.requester.sync import SyncMarket

__all__ = [
    "Accepted",
    "Balance",
    "BidsCollected",
    "Committed",
    "Event",
    "EventCallback",
    "JobHistory",
    "JobRecord",
    "JobRequest",
    "JobResult",
    "Market",
    "Paid",
    "ProviderView",
    "Running",
    "SyncMarket",
    "Verdict",
    "Verified",
    "WinnerChosen",
    "format_musd",
    "load_job_toml",
    "parse_musd",
    "run_redundant",
]
