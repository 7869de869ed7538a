"""Verification end to end (docs/SPEC.md §14): real anvil, real provider agents (who are also the
auditors), real wasmtime, the requester SDK. A cheating provider is caught and forfeits its
stake; a requester that withholds its seed gains nothing; balances are checked to the unit.

The module runs its own devnet so the registry holds only its own agents: auditors are drawn
from every registered provider, and agents of other modules are gone by the time these run.
Every deal here asks for ``audit_bps = 10000``, so the lottery always sends it to audit.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agent_kit import WASM, AgentProcess, deal_events, mine, running_devnet, start_agent
from web3 import Web3

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient, connect
from mercato.chain.api import AUDIT_FAILED, AUDIT_PASSED, AuditState
from mercato.config import RetryPolicy
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import ResultMismatch
from mercato.requester import JobRequest, Market
from mercato.verification.quorum import split_forfeit

CU = 5
HONEST_PRICE = 100  # per CU; the cheater bids 1 and wins every auction
STAKE = 50_000 * 10**6
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def vnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("verify-devnet"), DevnetParams(audit_period=15))


@pytest.fixture(scope="module")
def vdep(vnet: Devnet) -> Deployment:
    dep = vnet.status().deployment
    assert dep is not None
    return dep


@pytest.fixture(scope="module")
def chain(vdep: Deployment) -> MarketClient:
    w3: Web3 = connect(vdep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
    client = MarketClient.from_deployment(w3, vdep, vdep.keys["requester1"])
    client.deposit(5_000 * 10**6)
    return client


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory, vnet: Devnet) -> Iterator[Callable[..., AgentProcess]]:
    root = tmp_path_factory.mktemp("verify-agents")
    made: list[AgentProcess] = []

    def start(account: str, behaviour: str = "honest", price: int = HONEST_PRICE) -> AgentProcess:
        agent = start_agent(root, vnet, account, behaviour=behaviour, stake=STAKE,
                            pricing={"price_per_cu": price, "utilization_markup": 0})
        made.append(agent)
        return agent

    yield start
    for agent in made:
        agent.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def honest(spawn: Callable[..., AgentProcess]) -> list[AgentProcess]:
    """Seven honest agents: enough for a first auditor and a full committee of five."""
    return [spawn(f"provider{i}") for i in range(2, 9)]


def _job(**market: Any) -> JobRequest:
    opts: dict[str, Any] = dict(max_price=HONEST_PRICE * CU, deadline_s=300, accept_window_s=120,
                                audit_bps=10_000) | market
    return JobRequest.from_files(WASM, args=["50000", "7"], limits=Limits(fuel=CU * FUEL_PER_CU), **opts)


def _run(dep: Deployment, job: JobRequest, *, withhold_seed: bool = False) -> Any:
    async def go() -> Any:
        async with Market.connect(deployment=dep, key=dep.keys["requester1"], bid_window=0.5) as market:
            if withhold_seed:
                async def keep_it(*_a: Any, **_k: Any) -> None:
                    return None
                market._reveal_seed = keep_it  # type: ignore[method-assign]  # a requester that never reveals
            return await market.run(job)
    return asyncio.run(go())


def _wait_audit(chain: MarketClient, deal_id: bytes, timeout: float = 240.0) -> AuditState:
    end = time.monotonic() + timeout
    audit = chain.audit(deal_id)
    while time.monotonic() < end:
        audit = chain.audit(deal_id)
        if audit.resolved:
            return audit
        time.sleep(0.5)
    raise AssertionError(f"audit of 0x{deal_id.hex()} still in phase {audit.phase}: {audit}")


def _wait_finalized(chain: MarketClient, deal_id: bytes, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not deal_events(chain, "DealFinalized", deal_id):
        assert time.monotonic() < end, f"deal 0x{deal_id.hex()} was not finalized in {timeout} s"
        time.sleep(0.5)


def test_wrong_result_is_challenged_disputed_and_slashed(spawn, honest, chain: MarketClient,
                                                        vdep: Deployment) -> None:
    cheater_agent = spawn("provider1", behaviour="wrong_result", price=1)
    cheater = vdep.accounts["provider1"]
    stake = chain.provider_info(cheater).stake
    escrow0, burned0 = chain.balance_of(), chain.burned()
    others0 = {a.account: chain.balance_of(vdep.accounts[a.account]) for a in honest}

    with pytest.raises(ResultMismatch) as err:
        _run(vdep, _job())
    deal_id = bytes.fromhex(err.value.deal_id.removeprefix("0x"))
    audit = _wait_audit(chain, deal_id)

    assert audit.phase == AUDIT_FAILED
    assert audit.dispute, "the provider's reveal opened its own (wrong) seal: provider and auditor disagree"
    assert chain.jailed(cheater) and chain.provider_info(cheater).stake == 0
    assert chain.audit_record(cheater).audits_failed == 1
    # the whole stake was forfeited and split: half to the provers, a quarter to the requester, the rest burned
    provers = [a for a in audit.seats if a]  # honest seats hold the winning claim
    per_prover, to_requester, burned = split_forfeit(stake, len(provers))
    assert chain.burned() - burned0 == burned
    fee = _job().fee
    # the requester: its price came back, its audit fee paid the first auditor, plus its share of the stake
    first_auditor = audit.seats[0]
    assert chain.balance_of() == escrow0 - fee + to_requester
    for agent in honest:
        addr = vdep.accounts[agent.account]
        gained = chain.balance_of(addr) - others0[agent.account]
        expected = (per_prover if addr in provers else 0) + (fee if addr == first_auditor else 0)
        assert gained == expected, f"{agent.account}: gained {gained}, expected {expected}"
    cheater_agent.kill()


def test_requester_withholding_its_seed_is_audited_by_default(honest, chain: MarketClient,
                                                               vdep: Deployment) -> None:
    escrow0 = chain.balance_of()
    volumes0 = {vdep.accounts[a.account]: chain.reputation(vdep.accounts[a.account]).volume for a in honest}
    result = _run(vdep, _job(), withhold_seed=True)
    deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
    params = chain.parameters()
    mine(chain.w3, params["beacon_delay"] + params["draw_blocks"] + 2)  # the draw window passes unused
    audit = _wait_audit(chain, deal_id)
    drawn = deal_events(chain, "DealDrawn", deal_id)
    assert [(d["audited"], d["reason"]) for d in drawn] == [(True, 1)]  # audited by default
    assert audit.phase == AUDIT_PASSED
    provider = result.provider
    auditor = audit.seats[0]
    fee = _job().fee
    assert auditor.lower() != provider.lower()
    assert chain.audit_record(auditor).audits_done >= 1
    _wait_finalized(chain, deal_id)
    # the provider is paid; withholding cost the requester the audit fee (paid to the auditor), nothing else
    assert chain.reputation(provider).volume == volumes0[provider] + result.price
    assert chain.balance_of() == escrow0 - result.price - fee
    assert {e["to"]: e["amount"] for e in deal_events(chain, "BountyPaid", deal_id)} == {auditor: fee}


def test_honest_result_at_full_audit_passes_and_pays_everyone(honest, chain: MarketClient,
                                                              vdep: Deployment) -> None:
    escrow0 = chain.balance_of()
    result = _run(vdep, _job())
    assert result.verified
    deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
    audit = _wait_audit(chain, deal_id)
    assert audit.phase == AUDIT_PASSED and not audit.dispute
    assert [(d["audited"], d["reason"]) for d in deal_events(chain, "DealDrawn", deal_id)] == [(True, 0)]
    fee = _job().fee
    _wait_finalized(chain, deal_id)
    assert chain.balance_of() == escrow0 - result.price - fee
    paid = {e["to"]: e["amount"] for e in deal_events(chain, "BountyPaid", deal_id)}
    assert paid == {audit.seats[0]: fee}


def test_copied_seal_cannot_be_opened_and_forfeits(spawn, honest, chain: MarketClient, vdep: Deployment) -> None:
    copier_agent = spawn("provider9", behaviour="copied_seal", price=2)
    copier = vdep.accounts["provider9"]
    stake = chain.provider_info(copier).stake
    escrow0, burned0 = chain.balance_of(), chain.burned()
    others0 = {vdep.accounts[a.account]: chain.balance_of(vdep.accounts[a.account]) for a in honest}

    with pytest.raises(ResultMismatch) as err:  # the outputs are right, the seal is not the copier's
        _run(vdep, _job())
    assert err.value.what == "seal"
    deal_id = bytes.fromhex(err.value.deal_id.removeprefix("0x"))
    assert [(d["audited"], d["reason"]) for d in deal_events(chain, "DealDrawn", deal_id)] == [(True, 2)]  # challenged
    audit = _wait_audit(chain, deal_id)

    assert audit.phase == AUDIT_FAILED and not audit.dispute  # it never opened its seal: no reveal, no dispute
    assert not audit.provider_revealed
    assert chain.jailed(copier) and chain.provider_info(copier).stake == 0
    first_auditor, fee = audit.seats[0], _job().fee
    per_prover, to_requester, burned = split_forfeit(stake, 1)
    assert chain.balance_of() == escrow0 - fee + to_requester
    assert chain.burned() - burned0 == burned
    for addr, before in others0.items():
        assert chain.balance_of(addr) - before == (per_prover + fee if addr == first_auditor else 0)
    copier_agent.kill()


def test_silent_auditors_pay_the_requester_and_the_audit_passes_by_default(spawn, honest, chain: MarketClient,
                                                                           vdep: Deployment) -> None:
    winner_agent = spawn("provider10", price=3)
    winner = vdep.accounts["provider10"]
    escrow0 = chain.balance_of()
    for agent in honest:  # every possible auditor stops answering (SIGSTOP: alive, registered, silent)
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGSTOP)
    try:
        result = _run(vdep, _job())
        assert result.provider.lower() == winner.lower()
        deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
        audit = _wait_audit(chain, deal_id, timeout=300)
    finally:
        for agent in honest:
            agent.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    missed = deal_events(chain, "AuditorMissed", deal_id)
    fee = _job().fee
    assert audit.phase == AUDIT_PASSED and audit.claim == b"\x00" * 32  # passed by default
    assert len(missed) == chain.contract.functions.MAX_AUDIT_ROUNDS().call()
    assert len({m["auditor"] for m in missed}) == len(missed)  # never the same auditor twice
    assert all(m["penalty"] == fee for m in missed)  # min(free stake, fee): each no-show pays the requester
    for m in missed:
        assert chain.audit_record(m["auditor"]).no_shows >= 1
    _wait_finalized(chain, deal_id)
    # price paid, the fee back (nobody audited), plus one fee from each silent auditor
    assert chain.balance_of() == escrow0 - result.price + len(missed) * fee
    winner_agent.kill()
