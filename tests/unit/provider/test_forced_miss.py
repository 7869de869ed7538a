"""Attack class 3, forced misses (docs/SPEC.md §13, "Terms a provider refuses" and "Withheld
inputs"): a requester that opens a bid on-chain at its expiry, asks for outsized collateral, or
never sends the inputs of a deal it opened, to reclaim the miss penalty from an honest provider."""

from __future__ import annotations

from typing import Any

import pytest

from provider_kit import DEPOSIT, INPUT, STAKE, WORKLOAD, Harness, accept_msg, make_rfq, make_spec, terms_of, until

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits
from mercato.domain.batch import Task
from mercato.domain.wire import BulkAnswer, BulkRfq, RfqAnswer, new_id
from mercato.errors import ConfigError
from mercato.provider import ProviderConfig
from mercato.provider.bidder import run_estimate_s
from mercato.requester import JobRequest
from mercato.runtimes import content_hash

pytestmark = pytest.mark.anyio


async def _answer(h: Harness, requester: FakeMarket, **kw: Any) -> RfqAnswer:
    rfq = make_rfq(h.provider, requester.address, **kw)
    r = await h.client_for(requester).post("/v1/rfq", json=rfq.model_dump())
    assert r.status_code == 200, r.text
    return RfqAnswer.model_validate(r.json())


async def _declined(h: Harness, requester: FakeMarket, code: str, **kw: Any) -> str:
    answer = await _answer(h, requester, **kw)
    assert answer.bid is None and answer.decline is not None, answer
    assert answer.decline.code == code, answer.decline
    assert h.agent.store.busy_lanes(h.agent.cfg.lanes) == 0  # a declined RFQ holds no lane
    return answer.decline.reason


async def _declined_keeping(h: Harness, requester: FakeMarket, code: str, **kw: Any) -> str:
    """The decline's reason, while other bids hold lanes."""
    busy = h.agent.store.busy_lanes(h.agent.cfg.lanes)
    answer = await _answer(h, requester, **kw)
    assert answer.bid is None and answer.decline is not None and answer.decline.code == code, answer
    assert h.agent.store.busy_lanes(h.agent.cfg.lanes) == busy
    return answer.decline.reason


# the timing of the terms -------------------------------------------------------------------------------
async def test_an_expiry_at_the_deadline_is_declined(make_agent, requester: FakeMarket) -> None:
    """The requester could open at the expiry, with no time left to run, and reclaim the penalty."""
    h: Harness = await make_agent()
    reason = await _declined(h, requester, "expiry", deadline_s=600, accept_window_s=600)
    assert "leaves 0 s before its deadline" in reason and "accept_window_s" in reason
    # an accept window past the deadline is cut to it (expiry = min(now + window, deadline)): the same
    await _declined(h, requester, "expiry", deadline_s=300, accept_window_s=400)


async def test_a_deadline_that_leaves_less_than_the_run_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(cu_per_s=2.0, min_run_margin_s=10)
    spec = make_spec(fuel=100 * FUEL_PER_CU)  # 100 CU at 2 CU/s: 50 s, plus the 10 s margin
    assert run_estimate_s(spec, 2.0) == 50
    reason = await _declined(h, requester, "expiry", spec=spec, deadline_s=100, accept_window_s=41)  # 59 s left
    assert "at least 60" in reason
    assert (await _answer(h, requester, spec=spec, deadline_s=100, accept_window_s=40)).bid is not None  # 60 s


async def test_the_wall_clock_bounds_the_run_estimate(make_agent, requester: FakeMarket) -> None:
    """The sandbox stops a job at its wall clock and commits that outcome: a large fuel cap with a
    short wall clock needs only the wall clock."""
    h: Harness = await make_agent(cu_per_s=1.0, min_run_margin_s=10)
    spec = make_spec(fuel=500 * FUEL_PER_CU, wall_clock_s=20.0)
    assert run_estimate_s(spec, 1.0) == 20
    await _declined(h, requester, "expiry", spec=spec, deadline_s=89, accept_window_s=60)
    assert (await _answer(h, requester, spec=spec, deadline_s=90, accept_window_s=60)).bid is not None


async def test_an_expiry_too_far_ahead_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_expiry_s=300)
    reason = await _declined(h, requester, "expiry", deadline_s=3600, accept_window_s=301)
    assert "300 s" in reason
    assert (await _answer(h, requester, deadline_s=3600, accept_window_s=300)).bid is not None


async def _quoted_batch(h: Harness, requester: FakeMarket, quote_id: str | None = None) -> RfqAnswer:
    """A batch as ``mercato map`` asks for it: priced by a live bulk quote, its expiry at its deadline."""
    spec = make_spec().with_tasks(Task(args=(f"task-{i}",)) for i in range(2))
    if quote_id is None:
        bulk = BulkRfq(rfq_id=new_id(), requester=requester.address, chain_id=h.provider.chain_id,
                       market=h.provider.market, spec=make_spec().to_json(), spec_hash=make_spec().spec_hash(),
                       tasks=2, max_price_per_cu=10**6, deadline_s=600)
        r = await h.client_for(requester).post("/v1/rfq/bulk", json=bulk.model_dump())
        quote = BulkAnswer.model_validate(r.json()).quote
        assert quote is not None, r.text
        quote_id = quote.quote_id
    return await _answer(h, requester, spec=spec, quote_id=quote_id, deadline_s=600, accept_window_s=600)


async def test_a_quoted_batch_at_its_deadline_is_taken_by_default_unless_the_operator_refuses_it(
        make_agent, requester: FakeMarket, tmp_path) -> None:
    """``mercato map``'s batches ask an expiry at the deadline (the provider runs them, then opens
    them with ``open_and_commit``): by default a batch priced by a live bulk quote of this agent's
    is exempt from the timing rules (so map works on a provider as shipped), never an RFQ naming a
    quote it did not give; an operator may refuse them all (``allow_batch_expiry_at_deadline = false``)."""
    h: Harness = await make_agent()
    assert (await _quoted_batch(h, requester)).bid is not None
    forged = await _quoted_batch(h, requester, quote_id="not-a-quote-of-ours")
    assert forged.decline is not None and forged.decline.code == "expiry", forged
    refusing: Harness = await make_agent(data_dir=tmp_path / "refusing", allow_batch_expiry_at_deadline=False)
    answer = await _quoted_batch(refusing, requester)
    assert answer.decline is not None and answer.decline.code == "expiry", answer


# the collateral ---------------------------------------------------------------------------------------
async def test_collateral_over_the_absolute_cap_is_declined(make_agent, requester: FakeMarket) -> None:
    """The reported loss: 5,000 USDC of a 10,000 USDC collateral on one deal."""
    h: Harness = await make_agent(max_collateral=10**9, collateral_ratio_floor=10**10, max_miss_exposure=10**10)
    reason = await _declined(h, requester, "collateral", min_collateral=10_000 * 10**6)
    assert "cap of 1000000000" in reason
    assert (await _answer(h, requester, min_collateral=10**9)).bid is not None


async def test_collateral_over_the_ratio_to_the_price_is_declined(make_agent, requester: FakeMarket) -> None:
    h: Harness = await make_agent(max_collateral_ratio=100, collateral_ratio_floor=10**6)
    spec = make_spec(fuel=10 * FUEL_PER_CU)  # 10 CU at 1,000 per CU: a price of 10,000
    reason = await _declined(h, requester, "collateral", spec=spec, min_collateral=10**6 + 1)
    assert "at most 1000000" in reason  # the floor: over 100 x 10,000
    assert (await _answer(h, requester, spec=spec, min_collateral=10**6)).bid is not None
    h2: Harness = await make_agent(data_dir=h.agent.cfg.data_dir.parent / "second", max_collateral_ratio=200,
                                   collateral_ratio_floor=0)
    await _declined(h2, requester, "collateral", spec=spec, min_collateral=2 * 10**6 + 1)
    assert (await _answer(h2, requester, spec=spec, min_collateral=2 * 10**6)).bid is not None  # 200 x the price


async def test_the_miss_penalty_exposure_is_capped(make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    """Deals that can still miss (signed, accepted, running, executed) count at the market's penalty
    (50 % on the fake ledger); a committed deal no longer can."""
    h: Harness = await make_agent(lanes=3, max_miss_exposure=50 * 10**6)
    assert (await _answer(h, requester, min_collateral=60 * 10**6)).bid is not None  # 30 at risk
    reason = await _declined_keeping(h, requester, "bond", min_collateral=41 * 10**6)  # 30 + 20.5 > 50
    assert "at risk of miss penalties" in reason
    assert (await _answer(h, requester, min_collateral=40 * 10**6)).bid is not None  # 30 + 20 = 50


# the SDK's defaults are accepted by the provider's -------------------------------------------------------
def _sdk_rfq_fields(req: JobRequest) -> dict[str, Any]:
    """What ``Market.run`` puts in the RFQ of a job request (requester/market.py)."""
    return dict(spec=req.spec, max_price=req.max_price, min_collateral=req.collateral_floor,
                deadline_s=req.deadline_s, accept_window_s=req.accept_window_s, audit_fee=req.fee)


@pytest.mark.parametrize("limits", [Limits(), Limits(fuel=ProviderConfig().max_fuel)])
async def test_the_sdks_default_rfq_is_accepted_by_the_default_config(make_agent, requester: FakeMarket,
                                                                       limits: Limits) -> None:
    """A plain ``JobRequest`` (deadline 600 s, accept window 30 s, max price 1 mUSD, collateral
    floor 19 x max price), with the default limits or this provider's largest fuel cap, meets every
    default cap; the harness changes only lanes, stake and intervals."""
    h: Harness = await make_agent()
    spec = JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=("1",),
                   inputs=(("data.bin", content_hash(INPUT)),), limits=limits)
    req = JobRequest(spec=spec, blobs={content_hash(WORKLOAD): WORKLOAD, content_hash(INPUT): INPUT})
    assert (req.deadline_s, req.accept_window_s, req.collateral_floor) == (600, 30, 19 * 10**6)
    assert req.max_price + req.fee <= DEPOSIT
    answer = await _answer(h, requester, **_sdk_rfq_fields(req))
    assert answer.bid is not None, answer.decline
    assert answer.bid.terms.collateral == 19 * 10**6


def test_the_default_caps() -> None:
    cfg = ProviderConfig()
    assert (cfg.min_run_margin_s, cfg.cu_per_s, cfg.max_expiry_s) == (30, 1.0, 600)
    assert (cfg.max_collateral, cfg.max_collateral_ratio, cfg.collateral_ratio_floor, cfg.max_miss_exposure) == (
        10**9, 100, 10**8, 10**9)


def test_the_caps_are_checked() -> None:
    for bad in ({"cu_per_s": 0}, {"min_run_margin_s": -1}, {"max_expiry_s": 0}, {"max_collateral": -1},
                {"max_collateral_ratio": float("inf")}, {"max_miss_exposure": 1.5}):
        with pytest.raises(ConfigError):
            ProviderConfig(**bad)
    cfg = ProviderConfig.from_dict({"terms": {"max_collateral": 5, "cu_per_s": 0.5}})
    assert (cfg.max_collateral, cfg.cu_per_s) == (5, 0.5)


# withheld inputs ------------------------------------------------------------------------------------
async def test_a_deal_opened_without_its_inputs_is_never_run_and_is_recorded_as_withheld(
        make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    """The requester opens the bid on-chain and never uploads the workload or inputs: the agent
    runs and commits nothing, and records at the deadline that the requester withheld them. The
    contract still lets the requester (or anyone) reclaim the miss penalty (the contract's half)."""
    h: Harness = await make_agent(reclaim_grace_s=10)
    bid = await h.bid(requester, deadline_s=200)
    deal = bid["deal_id"]
    requester.open_deal(terms_of(bid), bytes.fromhex(bid["signature"][2:]))
    await until(lambda: h.agent.store.get(deal).state == "accepted" and bool(h.agent.store.get(deal).on_chain))
    st = (await h.client.get(f"/v1/deals/{deal}")).json()
    assert sorted(st["missing_inputs"]) == sorted([content_hash(WORKLOAD), content_hash(INPUT)])
    ledger.advance(201)
    await until(lambda: h.agent.store.get(deal).state == "failed")
    rec = h.agent.store.get(deal)
    assert rec.error is not None and "requester withheld its inputs" in rec.error and rec.seal is None
    assert rec.started_at is None and h.runtime.calls == []  # never run
    assert h.agent.metrics.inputs_withheld._value.get() == 1
    assert "requester withheld its inputs" in (await h.client.get(f"/v1/deals/{deal}")).json()["error"]


async def test_inputs_never_sent_for_an_unopened_deal_cost_nothing(
        make_agent, requester: FakeMarket, ledger: FakeLedger) -> None:
    h: Harness = await make_agent()
    bid = await h.bid(requester, deadline_s=200)
    deal = bid["deal_id"]
    r = await h.client.post(f"/v1/deals/{deal}/accept", json=accept_msg(requester, bid).model_dump())
    assert r.status_code == 200, r.text
    ledger.advance(201)
    await until(lambda: h.agent.store.get(deal).state == "failed")
    assert "never opened on-chain" in (h.agent.store.get(deal).error or "")
    assert h.agent.metrics.inputs_withheld._value.get() == 0
    assert h.agent.store.busy_lanes(2) == 0 and h.provider.reputation().missed == 0


# free stake for audit duty -------------------------------------------------------------------------------
async def test_collateral_that_would_eat_the_audit_reserve_is_declined(make_agent, requester: FakeMarket) -> None:
    """A drawn auditor seat locks a bond of the audit fee, and a provider that cannot is passed over (SPEC
    §14.4): a provider whose stake is all locked as collateral leaves its audit seats to whoever keeps stake
    idle. The bidder keeps audit_reserve of free stake out of any collateral."""
    free, reserve = STAKE, 10 * 10**6
    h: Harness = await make_agent(audit_reserve=reserve, max_collateral=10**13, collateral_ratio_floor=10**13,
                                  max_miss_exposure=10**13)
    reason = await _declined(h, requester, "collateral", min_collateral=free - reserve + 1)
    assert "audit_reserve" in reason
    assert (await _answer(h, requester, min_collateral=free - reserve)).bid is not None
