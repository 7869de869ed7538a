"""A provider agent rides out an RPC outage: the node is stopped (its state kept) while the agent
runs, started again on the same port, and a job then runs through the market. The agent logs the
outage once, not a traceback per loop round. Its own devnet: restarting it must not touch the
session's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_kit import WASM, funded_client, running_devnet, start_agent

from mercato.chain import Devnet, DevnetParams
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.requester import JobRequest, Market


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("outage-devnet"), DevnetParams(audit_floor_bps=1))


def _log_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _wait_log(path: Path, msg: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("msg") == msg for r in _log_lines(path)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {msg!r} in the agent's log:\n{path.read_text()[-3000:]}")


def test_agent_survives_an_rpc_outage(net: Devnet, tmp_path: Path) -> None:
    dep = net.status().deployment
    assert dep is not None
    funded_client(dep, 10_000 * 10**6)
    agent = start_agent(tmp_path, net, "provider9")
    try:
        assert net.stop()
        _wait_log(agent.log, "RPC unavailable, backing off", timeout=30)
        time.sleep(5)  # the loops (0.2 s) go round many times while the node is down
        net.start()
        _wait_log(agent.log, "RPC back", timeout=60)

        async def run() -> object:
            async with Market.connect(deployment=dep, key=dep.keys["requester1"], bid_window=0.5) as market:
                return await market.run(job)

        job = JobRequest.from_files(WASM, args=["1000", "7"], limits=Limits(fuel=5 * FUEL_PER_CU),
                                    max_price=50_000, deadline_s=120, accept_window_s=60)
        result = asyncio.run(run())
        assert result.verified and result.outcome == "ok"  # type: ignore[attr-defined]
        assert result.provider.lower() == dep.accounts["provider9"].lower()  # type: ignore[attr-defined]
    finally:
        agent.kill()
    records = _log_lines(agent.log)
    msgs = [r.get("msg") for r in records]
    assert msgs.count("RPC unavailable, backing off") == 1, msgs
    assert msgs.count("RPC back") == 1
    outage_tracebacks = [r for r in records if "RpcUnavailable" in str(r.get("exc", ""))]
    assert outage_tracebacks == [], outage_tracebacks[:2]
