"""An executor error that is not the job's fault: logged, retried once, then the deal fails and
its lane is freed (never left ``running`` until a restart)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from provider_kit import INPUT, WORKLOAD, Harness, accept_msg, until

from mercato.chain import FakeMarket
from mercato.runtimes import FakeRuntime

pytestmark = pytest.mark.anyio


@dataclass
class Flaky(FakeRuntime):
    """Raises a non-Mercato error on its first ``failures`` runs (as wasmtime-py's unguarded
    callback table once did under parallel lanes)."""

    failures: int = 1
    raised: list[int] = field(default_factory=list)

    def run(self, spec, workspace):  # type: ignore[no-untyped-def]
        if len(self.raised) < self.failures:
            self.raised.append(1)
            raise TypeError("list indices must be integers or slices, not tuple")
        return super().run(spec, workspace)


async def _accepted(h: Harness, requester: FakeMarket) -> str:
    bid = await h.bid(requester)
    await h.upload(WORKLOAD, INPUT)
    r = await h.client.post(f"/v1/deals/{bid['deal_id']}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    return bid["deal_id"]


async def test_one_unexpected_error_is_retried_and_the_deal_commits(make_agent, requester, caplog) -> None:
    rt = Flaky(failures=1)
    h: Harness = await make_agent(runtime=rt)
    deal = await _accepted(h, requester)
    await until(lambda: h.agent.store.get(deal).state == "committed")
    assert len(rt.raised) == 1 and len(rt.calls) == 1
    assert h.agent.metrics.executor_errors._value.get() == 1
    assert any(r.getMessage() == "executor error" and r.exc_info for r in caplog.records)


async def test_a_persistent_error_fails_the_deal_and_frees_its_lane(make_agent, requester) -> None:
    rt = Flaky(failures=10**6)
    h: Harness = await make_agent(runtime=rt)
    deal = await _accepted(h, requester)
    await until(lambda: h.agent.store.get(deal).state == "failed")
    rec = h.agent.store.get(deal)
    assert "internal error" in (rec.error or "") and "TypeError" in (rec.error or "")
    assert len(rt.raised) == 2
    await until(lambda: h.agent.store.busy_lanes(2) == 0)  # never opened on-chain: its lane is free again
    again = await _accepted(h, requester)  # and the agent keeps serving
    await until(lambda: h.agent.store.get(again).state == "failed")
