"""A scripted market history on a real devnet, for the explorer's integration and browser tests.

Reuses the market kit (``tests/integration/market/agent_kit.py``): real anvil, real provider
agents, the requester SDK. Helpers here only script what happens and read the chain back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from pathlib import Path
from typing import Any

_MARKET = str(Path(__file__).resolve().parents[1] / "market")
if _MARKET not in sys.path:
    sys.path.append(_MARKET)

from agent_kit import WASM, deployment_of, free_port, funded_client, mine, running_devnet, start_agent  # noqa: E402

from mercato.chain import Deployment, MarketClient, increase_time  # noqa: E402
from mercato.domain.deals import Deal, Terms, job_leaf  # noqa: E402
from mercato.domain.jobs import FUEL_PER_CU, Limits  # noqa: E402
from mercato.requester import JobRequest, Market  # noqa: E402

__all__ = ["CU", "HONEST_PRICE", "STAKE", "WASM", "free_port", "job", "logs", "mine", "missed_deal", "run_job",
           "running_devnet", "start_agent", "wait_for", "deployment_of", "funded_client"]

CU = 5
HONEST_PRICE = 100  # base units per CU
STAKE = 50_000 * 10**6


def job(**market: Any) -> JobRequest:
    opts: dict[str, Any] = dict(max_price=HONEST_PRICE * CU, deadline_s=300, accept_window_s=120) | market
    return JobRequest.from_files(WASM, args=["50000", "7"], limits=Limits(fuel=CU * FUEL_PER_CU), **opts)


def run_job(dep: Deployment, request: JobRequest, key: str = "requester1") -> Any:
    """One job through the SDK, on a worker thread (the caller may be inside an event loop:
    Playwright's sync API keeps one running on the test's thread)."""
    async def go() -> Any:
        async with Market.connect(deployment=dep, key=dep.keys[key], bid_window=0.5) as market:
            return await market.run(request)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def missed_deal(chain: MarketClient, dep: Deployment, provider_name: str, *, price: int = 1_000,
                collateral: int = 10_000_000) -> Deal:
    """A deal the provider never commits, reclaimed after its deadline: a miss and a slash.
    The provider is registered and staked here, with no agent behind it."""
    prov = chain.as_account(dep.keys[provider_name])
    if not prov.provider_info().registered:
        prov.register("http://127.0.0.1:9", b"\x01" * 32, b"\x02" * 32)
        prov.stake(5_000 * 10**6)
    now = chain.now()
    lane = 0
    nonce = prov.lane(prov.address, lane).last_nonce + 1
    terms = Terms(chain.address, prov.address, lane, nonce, job_leaf(b"\x42" * 32, price, collateral), 1, price,
                  collateral, now + 30, now + 20, b"\x5d" * 32, 300, 0)
    chain.open_deal(terms, prov.sign_bid(terms))
    increase_time(chain.w3, 31)
    chain.reclaim([Deal(terms)])
    return Deal(terms)


def wait_for(predicate: Any, what: str, timeout: float = 120.0, w3: Any = None) -> None:
    end = time.monotonic() + timeout
    next_mine = time.monotonic() + 1
    while time.monotonic() < end:
        if predicate():
            return
        if w3 is not None and time.monotonic() >= next_mine:
            mine(w3)
            next_mine = time.monotonic() + 1
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout} s")


def logs(chain: MarketClient, name: str) -> list[Any]:
    """Every ``name`` event of the Market or its court since the deployment block."""
    return list(chain.event_logs(name))


