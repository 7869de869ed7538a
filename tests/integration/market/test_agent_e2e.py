"""RFQ -> bid -> accept -> upload -> run (wasmtime) -> commit on anvil -> seed -> draw -> finalize -> claim."""

from __future__ import annotations

import signal
import time

from eth_utils import keccak
from web3 import Web3

from agent_kit import WASM, AgentProcess, deal_events, mine

from mercato.chain import Deployment, MarketClient, increase_time
from mercato.domain.deals import Deal, Terms
from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits
from mercato.domain.wire import AcceptMsg, Rfq, SeedMsg, TermsMsg, new_id
from mercato.runtimes import content_hash
from mercato.verification.lottery import new_seed, seal_of
from mercato.verification.result_root import result_root, sha256_hex

WORKLOAD = WASM.read_bytes()
AUDIT_FEE = 12_345  # escrowed with the price at open, refunded when a CLEARED deal finalizes


def _rfq(requester: MarketClient, samples: int, seed: bytes, **kw: object) -> Rfq:
    spec = JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=(str(samples), "7"),
                   limits=Limits(fuel=50 * FUEL_PER_CU))
    values: dict = dict(rfq_id=new_id(), requester=requester.address, chain_id=requester.chain_id,
                        market=requester.market, spec=spec.to_json(), spec_hash=spec.spec_hash(),
                        max_price=10**9, min_collateral=0, deadline_s=600, accept_window_s=120,
                        input_bytes=len(WORKLOAD), seed_hash="0x" + keccak(seed).hex(),
                        audit_bps=requester.parameters()["audit_floor_bps"], audit_fee=AUDIT_FEE)
    return Rfq(**(values | kw))


def _bid(agent: AgentProcess, requester: MarketClient, samples: int, **kw: object) -> tuple[dict, Terms, bytes]:
    """A bid for a fresh RFQ, its terms and the requester's secret lottery seed."""
    seed = new_seed()
    rfq = _rfq(requester, samples, seed, **kw)
    answer = agent.post("/v1/rfq", rfq.model_dump()).json()
    assert answer["bid"], answer
    bid = answer["bid"]
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    # the verification terms are the RFQ's, unchanged
    assert (terms.seed_hash, terms.audit_bps, terms.audit_fee) == (keccak(seed), rfq.audit_bps, rfq.audit_fee)
    return bid, terms, seed


def _accept(agent: AgentProcess, requester: MarketClient, bid: dict, terms: object) -> None:
    msg = AcceptMsg(deal_id=bid["deal_id"], terms=TermsMsg.of(terms),  # type: ignore[arg-type]
                    acceptance_signature="0x" + requester.sign_acceptance(terms).hex())  # type: ignore[arg-type]
    assert agent.post(f"/v1/deals/{bid['deal_id']}/accept", msg.model_dump()).status_code == 200
    assert agent.put(f"/v1/blobs/{content_hash(WORKLOAD)}", WORKLOAD).status_code == 200


def test_happy_path_optimistic_start(spawn_agent, requester: MarketClient, w3: Web3,
                                     deployment: Deployment) -> None:
    agent = spawn_agent("provider1")
    provider = requester.as_account(deployment.keys["provider1"])
    assert provider.provider_info().endpoint == agent.url
    escrow_before = requester.balance_of()
    bid, terms, seed = _bid(agent, requester, 100_000)
    _accept(agent, requester, bid, terms)
    st = agent.wait_state(bid["deal_id"], "committed", "finalized")
    receipt = st["receipt"]
    assert receipt["outcome"] == "ok" and receipt["stdout"].startswith("samples=100000")
    deal_id = bytes.fromhex(bid["deal_id"][2:])
    assert st["seal"] == "0x" + seal_of(terms.provider, deal_id, bytes.fromhex(receipt["result_root"]),
                                        receipt["fuel_used"], bytes.fromhex(st["salt"][2:])).hex()
    # the provider opened the deal itself (open_and_commit): the price and the audit fee are escrowed
    assert requester.balance_of() == escrow_before - terms.price - AUDIT_FEE
    assert st["started_at"] and st["commit_tx"]
    # the requester recomputes the root from the raw bytes it downloads
    stdout = agent.get(f"/v1/deals/{bid['deal_id']}/stdout").content
    stderr = agent.get(f"/v1/deals/{bid['deal_id']}/stderr").content
    pi = agent.get(f"/v1/deals/{bid['deal_id']}/outputs/pi.txt").content
    assert result_root(outputs=[("pi.txt", sha256_hex(pi))], stdout=stdout, stderr=stderr,
                       outcome="ok", exit_code=0) == receipt["result_root"]
    earned_before = provider.token_balance()
    # a wrong seed is refused; the right one lets the provider draw once the beacon block is mined
    wrong = agent.post(f"/v1/deals/{bid['deal_id']}/seed", SeedMsg(seed="0x" + new_seed().hex()).model_dump())
    assert wrong.status_code == 422
    assert agent.post(f"/v1/deals/{bid['deal_id']}/seed",
                      SeedMsg(seed="0x" + seed.hex()).model_dump()).status_code == 200
    mine(w3, deployment.params.beacon_delay)
    increase_time(w3, deployment.params.challenge_window)
    agent.wait_state(bid["deal_id"], "finalized")
    assert [(d["audited"], d["reason"]) for d in deal_events(requester, "DealDrawn", deal_id)] == [(False, 0)]
    # CLEARED: the provider got the price, the requester its audit fee back
    assert requester.balance_of() == escrow_before - terms.price
    deadline = time.monotonic() + 30
    while provider.provider_info().earnings != 0 or provider.token_balance() < earned_before + terms.price:
        assert time.monotonic() < deadline, "earnings were not claimed"
        time.sleep(0.2)
    assert provider.reputation().completed == 1
    metrics = agent.get("/metrics").text
    assert "mercato_provider_finalized_total 1.0" in metrics


def test_never_commit_is_reclaimed_by_the_requester(spawn_agent, requester: MarketClient, w3: Web3,
                                                    deployment: Deployment) -> None:
    # a 60 s deadline 30 s after the expiry, for 50 CU: under the default terms caps (docs/SPEC.md §13)
    agent = spawn_agent("provider2", behaviour="never_commit", min_run_margin_s=0, cu_per_s=10.0)
    escrow_before, burned_before = requester.balance_of(), requester.burned()
    bid, terms, _seed = _bid(agent, requester, 100_000, deadline_s=60, accept_window_s=30)
    requester.open_deal(terms, bytes.fromhex(bid["signature"][2:]))
    assert requester.balance_of() == escrow_before - terms.price - AUDIT_FEE
    _accept(agent, requester, bid, terms)
    st = agent.wait_state(bid["deal_id"], "executed")
    assert st["seal"] is None
    increase_time(w3, 61)
    requester.reclaim([Deal(terms)])
    agent.wait_state(bid["deal_id"], "reclaimed")
    provider = requester.as_account(deployment.keys["provider2"])
    assert provider.reputation().missed == 1
    # price and audit fee back; the miss penalty on the collateral is burned, not paid to the requester
    penalty = terms.collateral * deployment.params.miss_penalty_bps // 10_000
    assert requester.balance_of() == escrow_before
    assert requester.burned() - burned_before == penalty > 0


def test_restart_mid_job_still_commits(spawn_agent, requester: MarketClient) -> None:
    agent = spawn_agent("provider3")
    bid, terms, _seed = _bid(agent, requester, 250_000_000)  # a few seconds in the sandbox
    requester.open_deal(terms, bytes.fromhex(bid["signature"][2:]))
    _accept(agent, requester, bid, terms)
    agent.wait_state(bid["deal_id"], "running")
    time.sleep(0.5)
    agent.kill(signal.SIGKILL)
    agent.start()
    st = agent.wait_state(bid["deal_id"], "committed", "finalized", timeout=90)
    assert st["receipt"]["outcome"] == "ok" and "samples=250000000" in st["receipt"]["stdout"]
    assert "mercato_provider_commits_total" in agent.get("/metrics").text
