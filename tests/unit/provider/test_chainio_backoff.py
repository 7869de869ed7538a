"""ChainIO during an RPC outage: fail fast while backing off, one log line per outage, a slow
node never blocks the event loop; the watcher rewinds a cursor above the chain head."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest

from mercato.errors import RpcUnavailable
from mercato.provider.chainio import ChainIO
from mercato.provider.watcher import LogEventSource


class Node:
    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.delay = 0.0

    def view(self) -> int:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise RpcUnavailable("RPC node at http://node did not answer after 3 tries")
        return 42


def chain(node: Node, **kw: Any) -> ChainIO:
    market = SimpleNamespace(address="0x" + "11" * 20, now=lambda: 0)
    return ChainIO(market, **kw)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_an_outage_fails_fast_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    node = Node()
    io = chain(node, backoff_s=0.2, max_backoff_s=0.4)
    caplog.set_level(logging.INFO, logger="mercato.provider")
    assert await io.read(node.view) == 42
    node.down = True
    with pytest.raises(RpcUnavailable, match="did not answer"):
        await io.read(node.view)
    assert node.calls == 2 and not io.available
    for _ in range(5):  # within the back-off: the node is not asked
        with pytest.raises(RpcUnavailable, match="backing off"):
            await io.write(node.view)
    assert node.calls == 2
    await asyncio.sleep(0.25)
    with pytest.raises(RpcUnavailable, match="did not answer"):  # tried again, failed: 0.4 s now
        await io.read(node.view)
    assert node.calls == 3
    await asyncio.sleep(0.25)
    with pytest.raises(RpcUnavailable, match="backing off"):
        await io.read(node.view)
    assert node.calls == 3
    await asyncio.sleep(0.2)
    node.down = False
    assert await io.read(node.view) == 42 and io.available
    messages = [r.getMessage() for r in caplog.records if r.name == "mercato.provider.chain"]
    assert messages == ["RPC unavailable, backing off", "RPC back"]


@pytest.mark.anyio
async def test_the_back_off_is_capped(caplog: pytest.LogCaptureFixture) -> None:
    node = Node()
    node.down = True
    io = chain(node, backoff_s=0.01, max_backoff_s=0.04)
    for _ in range(6):
        with pytest.raises(RpcUnavailable):
            await io.read(node.view)
        await asyncio.sleep(0.05)
    assert node.calls == 6 and io._delay == 0.04


def test_a_loop_round_failing_on_an_outage_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    node = Node()
    node.down = True
    io = chain(node)
    agent_log = logging.getLogger("mercato.provider")
    caplog.set_level(logging.INFO)

    async def round_() -> None:
        try:
            await io.read(node.view)
        except Exception:
            agent_log.exception("background step failed")  # what the agent's loops do
        try:
            raise RpcUnavailable("not through ChainIO")
        except Exception:
            agent_log.exception("background step failed")

    asyncio.run(round_())
    asyncio.run(round_())
    failed = [r for r in caplog.records if r.getMessage() == "background step failed"]
    assert len(failed) == 2 and all("not through" in str(r.exc_info[1]) for r in failed)  # type: ignore[index]
    assert [r.getMessage() for r in caplog.records if r.name == "mercato.provider.chain"] == [
        "RPC unavailable, backing off"]


@pytest.mark.anyio
async def test_a_slow_node_does_not_block_the_event_loop() -> None:
    node = Node()
    node.delay = 0.5
    io = chain(node)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    assert await io.read(node.view) == 42
    task.cancel()
    assert ticks >= 20  # the loop kept running while the call waited on the node


class _Eth:
    def __init__(self, head: int) -> None:
        self.block_number = head
        self.asked: list[dict[str, Any]] = []

    def get_logs(self, query: dict[str, Any]) -> list[Any]:
        self.asked.append(query)
        return []


def _client(eth: _Eth) -> SimpleNamespace:
    """What the watcher uses of a MarketClient: the node, both log addresses, the topic table."""
    return SimpleNamespace(w3=SimpleNamespace(eth=eth), log_addresses=["0xM", "0xC"],
                           event_topics=lambda names: {}, decode_log=lambda log: None)


def test_the_watcher_catches_up_from_its_cursor_and_rewinds_above_the_head() -> None:
    eth = _Eth(head=50)
    client = _client(eth)
    source = LogEventSource(client, start_block=1, chunk=20)  # type: ignore[arg-type]
    assert source.poll(10)[1] == 30  # missed blocks 11..50 come a chunk at a time
    assert source.poll(30)[1] == 50
    assert [(q["fromBlock"], q["toBlock"]) for q in eth.asked] == [(11, 30), (31, 50)]
    assert all(q["address"] == ["0xM", "0xC"] for q in eth.asked)  # the Market's and the court's logs
    eth.block_number = 40  # the node came back from an older state
    assert source.poll(50) == ([], 40)
    eth.block_number = 42
    assert source.poll(40)[1] == 42 and eth.asked[-1]["fromBlock"] == 41


def test_a_fresh_watcher_starts_its_lookback_below_the_head_not_at_the_deployment() -> None:
    eth = _Eth(head=5_000)
    client = _client(eth)
    assert LogEventSource(client, start_block=7, lookback_blocks=256).poll(None)[1] == 5_000  # type: ignore[arg-type]
    assert (eth.asked[-1]["fromBlock"], eth.asked[-1]["toBlock"]) == (4_745, 5_000)
    # a market younger than the lookback is read from its deployment; no lookback reads it all
    eth.block_number = 100
    assert LogEventSource(client, start_block=7, lookback_blocks=256).poll(None)[1] == 100  # type: ignore[arg-type]
    assert eth.asked[-1]["fromBlock"] == 7
    eth.block_number = 5_000
    LogEventSource(client, start_block=7, chunk=10_000).poll(None)  # type: ignore[arg-type]
    assert eth.asked[-1]["fromBlock"] == 7
    # with a cursor the lookback plays no part: a restart misses nothing
    LogEventSource(client, start_block=7, lookback_blocks=256).poll(1_000)  # type: ignore[arg-type]
    assert eth.asked[-1]["fromBlock"] == 1_001
