"""Back-to-back jobs through the SDK against providers with few lanes: every losing bid is released
(DELETE /v1/bids/{id}), so its lane is free for the next RFQ at once instead of at its expiry.

A deal the requester won holds its lane until it is finalized: after its lottery (the SDK reveals
its seed, the provider draws once the beacon block is mined; the test mines blocks while it waits,
as the devnet mines only per transaction) and the challenge window (5 s on the devnet), so 4 lanes
carry at most 4 deals at a time: the jobs run back to back, pausing only
while every lane holds a real deal. Before the release, losing bids held the other lanes for the
whole accept window (60 s here) and the third job got NoBids ("capacity")."""

from __future__ import annotations

import asyncio

from agent_kit import WASM, live_deals, metrics_of, wait_mining
from web3 import Web3

from mercato.chain import Deployment, MarketClient
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.requester import BidsCollected, JobRequest, JobResult, Market

CU = 5
JOBS = 6
LANES = 2


def test_back_to_back_jobs_never_run_out_of_lanes(spawn_agent, requester: MarketClient, w3: Web3,
                                                  deployment: Deployment) -> None:
    agents = [spawn_agent("provider1", lanes=LANES, pricing={"price_per_cu": 1_000, "utilization_markup": 0}),
              spawn_agent("provider2", lanes=LANES, pricing={"price_per_cu": 2_000, "utilization_markup": 0})]
    ours = {deployment.accounts[a.account].lower() for a in agents}
    job = JobRequest.from_files(WASM, args=["20000", "7"], limits=Limits(fuel=CU * FUEL_PER_CU),
                                max_price=10_000 * CU, deadline_s=120, accept_window_s=60)
    rounds: list[BidsCollected] = []

    def on_event(ev: object) -> None:
        if isinstance(ev, BidsCollected):
            rounds.append(ev)

    async def go() -> list[JobResult]:
        results: list[JobResult] = []
        async with Market.connect(deployment=deployment, key=deployment.keys["requester1"], bid_window=0.5,
                                  on_event=on_event) as market:
            for _ in range(JOBS):
                # pause only while every lane holds a real deal (committed: in its lottery or challenge window)
                await asyncio.to_thread(wait_mining, w3, lambda: live_deals(agents) < LANES * len(agents), "a free lane")
                results.append(await market.run(job))  # NoBids here was the bug
        return results

    results = asyncio.run(go())

    assert len(results) == JOBS and all(r.verified and r.outcome == "ok" for r in results)
    assert {r.provider.lower() for r in results} <= ours
    assert len({r.provider for r in results}) == 2  # the dearer agent won while the cheaper one was full
    assert len(rounds) == JOBS and all(ev.compliant >= 1 for ev in rounds)
    # each bid that lost was released at its provider (the SDK waits for its releases on close)
    stats = [metrics_of(a) for a in agents]
    bids = sum(s.get("mercato_provider_bids_total", 0) for s in stats)
    released = sum(s.get("mercato_provider_released_total", 0) for s in stats)
    assert released == bids - JOBS and released >= 1
    # leave no lane busy on-chain for the tests that reuse these accounts
    wait_mining(w3, lambda: all(a.get("/v1/info").json()["free_lanes"] == LANES for a in agents), "every lane free")
