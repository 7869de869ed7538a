"""Attack class 3, forced misses, against a real agent (its default terms caps) over HTTP on the
devnet: a requester that asks for an expiry at the deadline or outsized collateral gets a
decline, and one that opens a deal on-chain and withholds its inputs finds the agent running and
committing nothing, and recording the withheld inputs (docs/SPEC.md §13). The unit tests
(tests/unit/provider/test_forced_miss.py) cover every cap; this one only that the agent applies
them as shipped."""

from __future__ import annotations

from typing import Any

from agent_kit import WASM
from eth_utils import keccak

from mercato.chain import MarketClient, increase_time
from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits
from mercato.domain.wire import Rfq, TermsMsg, new_id
from mercato.runtimes import content_hash
from mercato.verification.lottery import new_seed

WORKLOAD = WASM.read_bytes()


def _rfq(requester: MarketClient, **kw: Any) -> Rfq:
    spec = JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=("1000", "7"),
                   limits=Limits(fuel=5 * FUEL_PER_CU))  # run estimate 5 s at the default 1 CU/s
    values: dict[str, Any] = dict(
        rfq_id=new_id(), requester=requester.address, chain_id=requester.chain_id, market=requester.market,
        spec=spec.to_json(), spec_hash=spec.spec_hash(), max_price=10**9, min_collateral=0, deadline_s=600,
        accept_window_s=30, input_bytes=len(WORKLOAD), seed_hash="0x" + keccak(new_seed()).hex(),
        audit_bps=requester.parameters()["audit_floor_bps"], audit_fee=0)
    return Rfq(**(values | kw))


def test_the_default_agent_refuses_forcing_terms_and_records_withheld_inputs(
        spawn_agent, requester: MarketClient, w3: Any) -> None:
    agent = spawn_agent("provider6", defaults=True)  # the shipped config, but for account, port, data, stake

    def answer(**kw: Any) -> dict[str, Any]:
        r = agent.post("/v1/rfq", _rfq(requester, **kw).model_dump())
        assert r.status_code == 200, r.text
        return dict(r.json())

    at_deadline = answer(deadline_s=600, accept_window_s=600)["decline"]
    assert at_deadline["code"] == "expiry", at_deadline
    short = answer(deadline_s=60, accept_window_s=30)["decline"]  # 30 s left < 5 s run + 30 s margin
    assert short["code"] == "expiry" and "at least 35" in short["reason"], short
    rich = answer(min_collateral=10_000 * 10**6)["decline"]  # the reported 5,000 USDC penalty
    assert rich["code"] == "collateral", rich

    # the terms it does sign leave the run its time; the requester opens and never uploads
    got = answer(deadline_s=60, accept_window_s=25)  # 35 s left: exactly the run plus the margin
    assert got["bid"] is not None, got
    bid = got["bid"]
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    assert terms.deadline - terms.expiry >= 35
    requester.open_deal(terms, bytes.fromhex(bid["signature"][2:]))
    opened = agent.wait_state(bid["deal_id"], "accepted")
    assert opened["missing_inputs"] == [content_hash(WORKLOAD)]
    increase_time(w3, 61)
    st = agent.wait_state(bid["deal_id"], "failed")
    assert "requester withheld its inputs" in st["error"], st
    assert st["seal"] is None and st["started_at"] is None
    assert "mercato_provider_inputs_withheld_total 1.0" in agent.get("/metrics").text
