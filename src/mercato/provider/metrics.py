"""Prometheus metrics of one agent, in its own registry (several agents can share a process).

    m = Metrics()
    m.bids.inc()
    text = m.render(store.counts())       # the /metrics body
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mercato.domain.wire import DEAL_STATES

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters and histograms the agent updates; deal-state gauges are read from the store."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.bids = Counter("mercato_provider_bids", "Signed bids sent", registry=r)
        self.declines = Counter("mercato_provider_declines", "RFQs declined, by code", ["code"], registry=r)
        self.bulk_quotes = Counter("mercato_provider_bulk_quotes", "Signed bulk quotes sent", registry=r)
        self.deals = Gauge("mercato_provider_deals", "Deals by state", ["state"], registry=r)
        self.free_lanes = Gauge("mercato_provider_free_lanes", "Lanes free to bid on", registry=r)
        self.sandbox_seconds = Histogram("mercato_provider_sandbox_seconds", "Sandbox wall time per job",
                                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300), registry=r)
        self.fuel = Counter("mercato_provider_fuel", "Fuel used by executed jobs", registry=r)
        self.commits = Counter("mercato_provider_commits", "Seals committed on-chain, by method",
                               ["method"], registry=r)
        self.finalized = Counter("mercato_provider_finalized", "Deals finalized by this agent", registry=r)
        self.claimed = Counter("mercato_provider_claimed", "Earnings claimed (token base units)", registry=r)
        self.released = Counter("mercato_provider_released", "Losing bids released by their requester",
                                registry=r)
        self.held_out = Counter("mercato_provider_held_out", "Bids released unaccepted at the end of their "
                                "hold (bid_hold_s)", registry=r)
        self.unsent = Counter("mercato_provider_unsent", "Bids released because their requester had hung up "
                              "before the bid could be sent", registry=r)
        self.lane_taken = Counter("mercato_provider_lane_taken", "Deals failed because an earlier (released) "
                                  "bid was opened on their lane", registry=r)
        self.inputs_withheld = Counter("mercato_provider_inputs_withheld", "Deals opened on-chain whose "
                                       "requester never sent the workload or inputs (missed, not run)", registry=r)
        self.chain_errors = Counter("mercato_provider_chain_errors", "Failed chain calls, by operation",
                                    ["op"], registry=r)
        self.executor_errors = Counter("mercato_provider_executor_errors", "Sandbox runs that raised an "
                                       "unexpected (non-job) error", registry=r)

    def render(self, counts: dict[str, int], free_lanes: int) -> bytes:
        """The Prometheus text body, with the deal gauges refreshed from ``counts``."""
        for state in DEAL_STATES:
            self.deals.labels(state=state).set(counts.get(state, 0))
        self.free_lanes.set(free_lanes)
        return generate_latest(self.registry)
