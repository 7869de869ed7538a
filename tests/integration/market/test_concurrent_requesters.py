"""Two requesters at once against four agents, everything on default settings (the SDK's bid
window, the agents' config apart from account, port, data dir and stake): every job gets a bid
and a verified result.

Before bids stopped clogging lanes (issue 16), a bid that reached its requester after the 250 ms
bid window was dropped by the requester but held its lane at the provider for the whole accept
window (30 s by default), and nobody released it: with two requesters at once every lane was
soon held by bids no one would accept, and most runs failed with ``NoBids`` ("capacity")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent_kit import WASM, funded_client, live_deals, start_agents, wait_mining
from web3 import Web3

from mercato.chain import Deployment, Devnet, MarketClient
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import MercatoError
from mercato.requester import BidsCollected, JobRequest, Market

AGENTS = ("provider3", "provider4", "provider7", "provider10")
REQUESTERS = ("requester1", "requester2")
JOBS = 10  # per requester, back to back
CU = 5


def _job(i: int) -> JobRequest:
    # mixed sizes: 20,000 to 200,000 samples (the fuel cap, and so the price, is the same)
    return JobRequest.from_files(WASM, args=[str(20_000 * (1 + i % 10)), str(i)], limits=Limits(fuel=CU * FUEL_PER_CU),
                                 max_price=10_000 * CU, name=f"job{i}")


async def _requester(deployment: Deployment, who: str, rounds: list[BidsCollected]) -> list[str]:
    """Run JOBS jobs one after another; what became of each ("ok" or the error)."""
    def note(ev: object) -> None:
        if isinstance(ev, BidsCollected):
            rounds.append(ev)

    outcomes: list[str] = []
    async with Market.connect(deployment=deployment, key=deployment.keys[who], on_event=note) as market:
        for i in range(JOBS):
            try:
                result = await market.run(_job(i))
            except MercatoError as exc:
                outcomes.append(f"{who} job {i}: {type(exc).__name__}: {exc}")
                continue
            outcomes.append("ok" if result.verified and result.outcome == "ok" else f"{who} job {i}: {result.outcome}")
    return outcomes


def test_two_requesters_at_once_on_default_settings_all_succeed(tmp_path: Path, devnet: Devnet, w3: Web3,
                                                                 deployment: Deployment, requester: MarketClient) -> None:
    funded_client(deployment, 1_000 * 10**6, "requester2")  # requester1's deposit: the `requester` fixture
    agents = start_agents(tmp_path, devnet, {a: {"defaults": True} for a in AGENTS})
    try:
        rounds: list[BidsCollected] = []

        async def both() -> list[list[str]]:
            return await asyncio.gather(*(_requester(deployment, who, rounds) for who in REQUESTERS))

        outcomes = [o for per in asyncio.run(both()) for o in per]
        failed = [o for o in outcomes if o != "ok"]
        assert not failed, f"{len(failed)} of {len(outcomes)} runs failed:\n" + "\n".join(failed[:10])
        assert len(outcomes) == JOBS * len(REQUESTERS)
        # leave none of our deals open on-chain for the tests that reuse these accounts
        wait_mining(w3, lambda: live_deals(agents) == 0, "every deal settled", timeout=120)
    finally:
        for agent in agents:
            agent.kill()
