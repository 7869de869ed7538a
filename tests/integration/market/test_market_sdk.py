"""The market end to end through the requester SDK: real anvil, real agents over loopback HTTP,
real wasmtime. Each test starts its own agents; earlier tests' agents are stopped (their
registry entries stay on-chain, and the SDK must cope with their silence)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_kit import WASM, deal_events, funded_client, wait_mining
from web3 import Web3

from mercato.chain import Deployment, MarketClient
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import NoBids, ProviderMissedDeadline, ResultMismatch, SpecError
from mercato.requester import JobRequest, Market, load_job_toml

CU = 5  # the fuel cap of the test jobs, in compute units


def _job(samples: int = 200_000, **market: object) -> JobRequest:
    # audit_bps 1: the test devnet's floor, so the lottery clears these deals all but 1 time in 10,000
    # (the SDK's default, 5 %, would send one in twenty to an audit the tests here do not expect)
    opts: dict = dict(max_price=10_000 * CU, deadline_s=120, accept_window_s=60, audit_bps=1) | market
    return JobRequest.from_files(WASM, args=[str(samples), "7"], limits=Limits(fuel=CU * FUEL_PER_CU), **opts)


def _run(deployment: Deployment, job: JobRequest, as_: str = "requester1", **options: object):
    async def go():
        async with Market.connect(deployment=deployment, key=deployment.keys[as_],
                                  bid_window=2.0, **options) as market:
            return await market.run(job)
    return asyncio.run(go())


def _wait(predicate, timeout: float = 30.0) -> None:
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_cheapest_bid_wins_and_result_is_verified(spawn_agent, requester: MarketClient, w3: Web3,
                                                 deployment: Deployment) -> None:
    prices = {"provider1": 3_000, "provider2": 1_000, "provider3": 2_000}
    for account, price in prices.items():
        spawn_agent(account, pricing={"price_per_cu": price, "utilization_markup": 0})
    cheapest = deployment.accounts["provider2"]
    before_escrow = requester.balance_of()
    before_rep = requester.reputation(cheapest)

    job = _job()
    result = _run(deployment, job)

    assert result.provider.lower() == cheapest.lower()
    assert result.price == 1_000 * CU
    assert result.verified and result.outcome == "ok"
    assert result.stdout.startswith(b"samples=200000 ")
    assert result.outputs["pi.txt"].startswith(b"3.1")
    # the audit fee (by default max_price) stays escrowed until the deal is finalized
    assert requester.balance_of() == before_escrow - result.price - job.fee
    # the provider draws (the SDK revealed its seed), finalizes after the challenge window and is
    # credited on-chain
    wait_mining(w3, lambda: requester.reputation(cheapest).completed == before_rep.completed + 1, "finalization")
    assert requester.reputation(cheapest).volume == before_rep.volume + result.price
    assert requester.balance_of() == before_escrow - result.price


def test_verified_deal_is_drawn_cleared_and_finalized_with_the_fee_refunded(
        spawn_agent, requester: MarketClient, w3: Web3, deployment: Deployment) -> None:
    agent = spawn_agent("provider3", pricing={"price_per_cu": 1_000, "utilization_markup": 0})
    before = requester.balance_of()
    job = _job(audit_fee=7_777)

    result = _run(deployment, job)

    assert result.verified and result.provider.lower() == deployment.accounts["provider3"].lower()
    assert requester.balance_of() == before - result.price - 7_777
    deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
    # the SDK gave the provider its seed; the provider ran the lottery once the beacon block was mined
    wait_mining(w3, lambda: bool(deal_events(requester, "DealFinalized", deal_id)), "DealFinalized")
    assert [(d["audited"], d["reason"]) for d in deal_events(requester, "DealDrawn", deal_id)] == [(False, 0)]
    agent.wait_state(result.deal_id, "finalized", timeout=10)
    # CLEARED: the provider was paid the price and the audit fee came back to the requester
    assert requester.balance_of() == before - result.price


def test_no_bids_names_the_cause(spawn_agent, deployment: Deployment) -> None:
    spawn_agent("provider1", pricing={"price_per_cu": 1_000, "utilization_markup": 0})
    with pytest.raises(NoBids) as err:
        _run(deployment, _job(max_price=10))
    message = str(err.value)
    assert "price" in message and "max_price" in message
    assert deployment.accounts["provider1"] in err.value.causes


def test_provider_that_never_commits_is_reclaimed_and_slashed(spawn_agent, requester: MarketClient,
                                                              deployment: Deployment) -> None:
    # an 8 s deadline, 4 s after the expiry: under the default terms caps (docs/SPEC.md §13), so let it sign
    spawn_agent("provider4", behaviour="never_commit", pricing={"price_per_cu": 10, "utilization_markup": 0},
                min_run_margin_s=0, cu_per_s=100.0)
    lazy = deployment.accounts["provider4"]
    rep, escrow, burned = requester.reputation(lazy), requester.balance_of(), requester.burned()
    job = _job(deadline_s=8, accept_window_s=4)
    with pytest.raises(ProviderMissedDeadline) as err:
        _run(deployment, job)
    assert err.value.refund == 10 * CU + job.fee  # the price and the audit fee
    assert err.value.penalty > 0
    after = requester.reputation(lazy)
    assert (after.missed, after.slashed) == (rep.missed + 1, rep.slashed + 1)
    # the price and the audit fee came back; half the collateral (devnet miss penalty 50 %) was burned,
    # not paid to the requester (who could otherwise profit from forcing a miss)
    assert requester.balance_of() == escrow and requester.burned() - burned == err.value.penalty


def test_wrong_result_is_detected(spawn_agent, deployment: Deployment) -> None:
    """The SDK refuses the result and challenges the deal. The dispute that follows is
    tests/integration/market/test_verification.py's subject: this requester (its own account, so
    that no other test's balance moves when the dispute settles) does not stand by for it."""
    funded_client(deployment, 1_000 * 10**6, "requester2")
    spawn_agent("provider5", behaviour="wrong_result", pricing={"price_per_cu": 5, "utilization_markup": 0})
    with pytest.raises(ResultMismatch) as err:
        _run(deployment, _job(), as_="requester2", audit_wait_s=0)
    assert "seal" in str(err.value) and "challenged" in str(err.value)


def test_malformed_spec_is_rejected_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "job.toml"
    bad.write_text(f'[job]\nworkload = "{WASM}"\n[limits]\nfuel = "lots"\n')
    with pytest.raises(SpecError) as err:
        load_job_toml(bad)
    assert "fuel" in str(err.value)


def test_oversized_input_is_rejected_before_upload(spawn_agent, deployment: Deployment, tmp_path: Path) -> None:
    agent = spawn_agent("provider1", pricing={"price_per_cu": 1_000, "utilization_markup": 0})
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 300_000)
    job = JobRequest.from_files(WASM, inputs={"big.bin": big}, limits=Limits(fuel=CU * FUEL_PER_CU),
                                max_price=10_000 * CU)
    with pytest.raises(SpecError) as err:
        _run(deployment, job, max_input_bytes=100_000)
    assert err.value.field == "inputs"
    # and the provider itself refuses an upload no bid asked for, or one that lies about its hash
    assert agent.put("/v1/blobs/sha256:" + "00" * 32, b"hello").status_code in (400, 409)
