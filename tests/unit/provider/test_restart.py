"""A restart loses nothing: registration is idempotent, deals resume from SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from provider_kit import INPUT, WORKLOAD, Harness, accept_msg, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.provider import resources_of

pytestmark = pytest.mark.anyio


async def test_start_registers_and_stakes_once(make_agent, ledger: FakeLedger, events, tmp_path: Path) -> None:
    h: Harness = await make_agent(data_dir=tmp_path / "a")
    info = h.provider.provider_info()
    assert info.registered and info.endpoint == "http://127.0.0.1:7001" and info.stake == 10_000 * 10**6
    # the watcher read up to the head before start() returned (before the API answers anyone)
    assert h.agent.store.get_meta("cursor") == str(ledger.block)
    assert info.resources == resources_of(h.agent.cfg)
    await h.agent.stop()
    count = len(events.log)
    again: Harness = await make_agent(data_dir=tmp_path / "a")
    assert len(events.log) == count  # nothing to send
    await again.agent.stop()
    moved: Harness = await make_agent(data_dir=tmp_path / "a", port=7009, stake=20_000 * 10**6)
    names = [ev.name for ev in events.log[count:]]
    assert names == ["ProviderUpdated", "Staked"]
    assert moved.provider.provider_info().stake == 20_000 * 10**6


async def test_accepted_deal_survives_a_restart(make_agent, requester: FakeMarket, tmp_path: Path) -> None:
    first: Harness = await make_agent(data_dir=tmp_path / "a")
    bid = await first.bid(requester)
    await first.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    await first.agent.stop()
    second: Harness = await make_agent(data_dir=tmp_path / "a")
    assert await second.state(bid["deal_id"]) == "accepted"
    await second.upload(WORKLOAD, INPUT)
    await until(lambda: second.agent.store.get(bid["deal_id"]).state == "committed")
    again = await second.bid(requester)
    assert again["terms"]["lane"] == 1  # lane 0 still holds the committed deal


async def test_running_deal_is_rerun_and_executed_one_committed(make_agent, requester: FakeMarket,
                                                                tmp_path: Path) -> None:
    first: Harness = await make_agent(data_dir=tmp_path / "a", behaviour="never_commit")
    bids = [await first.bid(requester) for _ in range(2)]
    await first.upload(WORKLOAD, INPUT)
    for bid in bids:
        await first.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    await until(lambda: all(first.agent.store.get(b["deal_id"]).state == "executed" for b in bids))
    first.agent.store.update(bids[0]["deal_id"], state="running")  # as if killed mid-run
    await first.agent.stop()
    second: Harness = await make_agent(data_dir=tmp_path / "a")
    await until(lambda: all(second.agent.store.get(b["deal_id"]).state == "committed" for b in bids))
    assert len(second.runtime.calls) == 1  # only the interrupted one ran again


async def test_lane_nonces_resync_from_chain(make_agent, requester: FakeMarket, ledger: FakeLedger,
                                             tmp_path: Path) -> None:
    first: Harness = await make_agent(data_dir=tmp_path / "a")
    bid = await first.bid(requester)
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))
    await first.agent.stop()
    # the SQLite file is lost: the chain still knows lane 0 is busy at nonce 1
    fresh: Harness = await make_agent(data_dir=tmp_path / "b")
    again = await fresh.bid(requester)
    assert (again["terms"]["lane"], again["terms"]["nonce"]) == (1, 1)
    assert fresh.agent.store.lanes(2)[0] == (0, 1, "external")
