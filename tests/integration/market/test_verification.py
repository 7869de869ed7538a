"""Verification end to end (docs/SPEC.md §14): real anvil, real provider agents (who are also the
auditors), real wasmtime, the requester SDK. A cheating provider is caught and forfeits its
stake, even with two colluders in its committee or with its job hidden from its auditors; a
lazy or silent auditor pays the requester and is replaced; a requester that withholds its seed
gains nothing; balances are checked to the unit.

The module runs its own devnet so the registry holds only its own agents: auditors are drawn
from every registered provider, and agents of other modules are gone by the time these run.
Every deal here asks for ``audit_bps = 10000``, so the lottery always sends it to audit.

Who sits in an audit seat is drawn stake-weighted; the tests make a role certain by staking:
an agent with no stake is never drawn, so staking an agent only after a seat was drawn (as
colluders buying into a committee would) decides who can fill the next seats.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agent_kit import (
    WASM,
    AgentProcess,
    deal_events,
    deployment_of,
    funded_client,
    mine,
    running_devnet,
    start_agent,
)
from eth_account import Account

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient, connect
from mercato.chain.api import AUDIT_FAILED, AUDIT_PASSED, AuditState
from mercato.chain.deployment import dev_accounts, fund
from mercato.config import RetryPolicy
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import ResultMismatch
from mercato.requester import JobRequest, Market
from mercato.verification.quorum import split_forfeit

CU = 5
HONEST_PRICE = 100  # per CU; the cheater bids 1 and wins every auction
BID_WINDOW = 2.0  # seconds
STAKE = 50_000 * 10**6  # a cheater's
HONEST_STAKE = 5_000 * 10**6
LAZY_STAKE = 1_000 * 10**6
# 20x an honest agent's: each colluder is in a 5-seat committee with probability > 99.6 %, while the
# honest stake stays large enough that no committee seat goes unfilled (SPEC §14.4: 64 tries a seat)
COLLUDER_STAKE = 100_000 * 10**6
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def vnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("verify-devnet"), DevnetParams(audit_period=15))


@pytest.fixture(scope="module")
def vdep(vnet: Devnet) -> Deployment:
    return deployment_of(vnet)


@pytest.fixture(scope="module")
def chain(vdep: Deployment) -> MarketClient:
    return funded_client(vdep, 5_000 * 10**6)


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory, vnet: Devnet) -> Iterator[Callable[..., AgentProcess]]:
    root = tmp_path_factory.mktemp("verify-agents")
    made: list[AgentProcess] = []

    def start(account: str, behaviour: str = "honest", price: int = HONEST_PRICE, stake: int = STAKE,
              name: str | None = None) -> AgentProcess:
        agent = start_agent(root, vnet, account, behaviour=behaviour, stake=stake, name=name,
                            pricing={"price_per_cu": price, "utilization_markup": 0})
        made.append(agent)
        key = account if account.startswith("0x") else dev_accounts()[account]
        _BY_ADDRESS[Account.from_key(key).address.lower()] = agent
        if behaviour != "honest":
            _MISBEHAVING.append((agent, key))
        return agent

    yield start
    for agent in made:
        agent.kill(signal.SIGTERM)


@pytest.fixture(autouse=True)
def _stop_misbehaving_agents(spawn: Callable[..., AgentProcess], vdep: Deployment) -> Iterator[None]:
    """Whatever a test's outcome, the agents it started to misbehave are gone after it and their
    free stake is unbonded, so a failed test cannot leave a cheater winning the next test's deals
    nor a dead agent drawn as its auditor."""
    before = len(_MISBEHAVING)
    yield
    for agent, key in _MISBEHAVING[before:]:
        agent.kill(signal.SIGTERM)
        client = _client(vdep, key)
        free = client.free_stake()
        if free > 0 and not client.jailed(client.address):
            client.unbond(free)


_MISBEHAVING: list[tuple[AgentProcess, str]] = []
_BY_ADDRESS: dict[str, AgentProcess] = {}  # every agent the module started, by its address (lower case)


@contextlib.contextmanager
def _paused(address: str) -> Iterator[None]:
    """SIGSTOP the agent of ``address`` for the block, then SIGCONT it: a stopped first auditor
    cannot reveal, so the dispute (drawn in the call of the last reveal) cannot start meanwhile."""
    agent = _BY_ADDRESS[address.lower()]
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        agent.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def honest_unstaked(spawn: Callable[..., AgentProcess]) -> list[AgentProcess]:
    """Seven honest agents, registered with no stake yet: never drawn until staked."""
    return [spawn(f"provider{i}", stake=0) for i in range(2, 9)]


@pytest.fixture(scope="module")
def honest(honest_unstaked: list[AgentProcess], vdep: Deployment) -> list[AgentProcess]:
    """The seven honest agents, staked: enough for a first auditor and a full committee of five."""
    for agent in honest_unstaked:
        _ensure_stake(vdep, vdep.keys[agent.account], HONEST_STAKE)
    return honest_unstaked


@pytest.fixture(scope="module")
def winner10(spawn: Callable[..., AgentProcess]) -> AgentProcess:
    """An honest agent bidding 3 per CU: it wins every auction no cheater enters."""
    return spawn("provider10", price=3, stake=HONEST_STAKE)


def _client(dep: Deployment, key: str) -> MarketClient:
    return MarketClient.from_deployment(connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1)), dep, key)


def _ensure_stake(dep: Deployment, key: str, amount: int) -> None:
    client = _client(dep, key)
    have = client.provider_info().stake
    if have < amount:
        client.stake(amount - have)


def _fresh_account(dep: Deployment, musd: int) -> tuple[str, str]:
    """A new key with ether and ``musd`` mock tokens: (key, address)."""
    acct = Account.create()
    w3 = connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
    w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**20)])  # type: ignore[arg-type]
    fund(w3, dep, dep.keys["deployer"], {"fresh": acct.address}, musd)
    return "0x" + bytes(acct.key).hex(), acct.address


class _Background:
    """Run a blocking call in a thread; ``result()`` joins it and returns or raises."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(fn,), daemon=True)
        self.thread.start()

    def _go(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def result(self, timeout: float = 400.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the job did not end in {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value


def _first_seat(chain: MarketClient, since: int, timeout: float = 120.0) -> tuple[bytes, str]:
    """The first ``AuditorDrawn`` logged since block ``since``: (deal_id, auditor)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        logs = chain.event_logs("AuditorDrawn", from_block=since)
        if logs:
            return bytes(logs[0]["args"]["deal_id"]), str(logs[0]["args"]["auditor"])
        time.sleep(0.05)
    raise AssertionError(f"no auditor was drawn in {timeout} s")


def _job(**market: Any) -> JobRequest:
    opts: dict[str, Any] = dict(max_price=HONEST_PRICE * CU, deadline_s=300, accept_window_s=120,
                                audit_bps=10_000) | market
    return JobRequest.from_files(WASM, args=["50000", "7"], limits=Limits(fuel=CU * FUEL_PER_CU), **opts)


def _run(dep: Deployment, job: JobRequest, *, withhold_seed: bool = False, key: str | None = None) -> Any:
    async def go() -> Any:
        # a wide bid window: the test's cheaters must be heard even on a loaded 2-core machine
        async with Market.connect(deployment=dep, key=key or dep.keys["requester1"], bid_window=BID_WINDOW) as market:
            if withhold_seed:  # a requester that never reveals its seed (nor draws with it)
                async def keep_it(*_a: Any, **_k: Any) -> None:
                    return None
                market._reveal_seed = keep_it  # type: ignore[method-assign]
                market._audits = None
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


def _known(chain: MarketClient, deal_id: str, provider: str) -> Any:
    """What the requester SDK says of a deal's result now (docs/SPEC.md §14.9)."""
    return asyncio.run(Market(chain, serve_audits=False).verification(deal_id, provider))


def _wait_finalized(chain: MarketClient, deal_id: bytes, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not deal_events(chain, "DealFinalized", deal_id):
        assert time.monotonic() < end, f"deal 0x{deal_id.hex()} was not finalized in {timeout} s"
        time.sleep(0.5)


def test_lazy_auditor_cannot_reveal_pays_and_is_replaced(spawn, honest_unstaked, winner10, chain: MarketClient,
                                                         vdep: Deployment) -> None:
    lazy_agent = spawn("requester2", behaviour="lazy_auditor", price=10 * HONEST_PRICE, stake=LAZY_STAKE)
    lazy, winner = vdep.accounts["requester2"], vdep.accounts["provider10"]
    escrow0, burned0, since = chain.balance_of(), chain.burned(), chain.block_number()
    job = _job()
    run = _Background(lambda: _run(vdep, job))
    # the lazy agent is the only staked candidate when the deal is drawn: it takes seat 0 ...
    deal_id, first = _first_seat(chain, since)
    assert first.lower() == lazy.lower()
    for agent in honest_unstaked:  # ... and honest agents stake in before the next round is drawn
        _ensure_stake(vdep, vdep.keys[agent.account], HONEST_STAKE)
    result = run.result()
    assert result.verified and result.provider.lower() == winner.lower()
    audit = _wait_audit(chain, deal_id)

    # it echoed the provider's seal, which names the provider: it could not reveal, so it missed
    committed = deal_events(chain, "AuditCommitted", deal_id)
    assert committed[0]["auditor"].lower() == lazy.lower() and committed[0]["seal"] == audit.provider_seal
    missed = deal_events(chain, "AuditorMissed", deal_id)
    fee = job.fee
    # committed and silent: it loses what a liar loses, its whole stake, burned (attack class 8)
    assert [(m["auditor"].lower(), m["penalty"]) for m in missed] == [(lazy.lower(), LAZY_STAKE)]
    assert chain.audit_record(lazy).no_shows == 1 and chain.jailed(lazy)
    assert chain.provider_info(lazy).stake == 0
    # an honest auditor replaced it in round 2 and the honest result passed
    assert audit.phase == AUDIT_PASSED and audit.round == 2 and not audit.dispute
    second = audit.seats[0]
    assert second.lower() in {vdep.accounts[a.account].lower() for a in honest_unstaked}
    _wait_finalized(chain, deal_id)
    assert {e["to"]: e["amount"] for e in deal_events(chain, "BountyPaid", deal_id)} == {second: fee}
    # the requester paid the price and the fee (to the second auditor); the lazy one's stake was burned,
    # none of it paid to the requester (who could cause a miss)
    assert chain.balance_of() == escrow0 - result.price - fee
    assert chain.burned() - burned0 == LAZY_STAKE
    lazy_agent.kill()  # jailed: out of later draws


def test_wrong_result_is_caught_despite_two_colluders_in_the_committee(spawn, honest, chain: MarketClient,
                                                                       vdep: Deployment) -> None:
    """The cheater's two accomplices stake in right after the first auditor is drawn, so they take
    seats in the committee of five (both of them in > 99.6 % of draws) and back its wrong claim:
    3 votes against 4 at most, it still loses, and every colluder who backed it forfeits too."""
    cheater_agent = spawn("provider1", behaviour="wrong_result", price=1)
    colluder_keys = [vdep.keys["requester3"], _fresh_account(vdep, 2 * COLLUDER_STAKE)[0]]
    colluders = [Account.from_key(k).address for k in colluder_keys]
    for i, key in enumerate(colluder_keys):
        spawn(key, behaviour="colluding_auditor", price=10 * HONEST_PRICE, stake=0, name=f"colluder{i}")
    cheater = vdep.accounts["provider1"]
    stake = chain.provider_info(cheater).stake
    escrow0, burned0, since = chain.balance_of(), chain.burned(), chain.block_number()
    others0 = {a: chain.balance_of(a) for a in chain.providers() if a != cheater}

    run = _Background(lambda: _run(vdep, _job()))
    deal_id, first = _first_seat(chain, since)
    assert first not in colluders  # they had no stake when it was drawn
    # the colluders buy in while the first auditor is held (it has not revealed yet: its seat was
    # drawn a moment ago), so they are staked before the committee is drawn, however fast it runs
    with _paused(first):
        assert not chain.audit(deal_id).dispute, "the dispute started before the colluders could stake"
        for key in colluder_keys:
            _ensure_stake(vdep, key, COLLUDER_STAKE)
    with pytest.raises(ResultMismatch) as err:
        run.result()
    assert err.value.deal_id == "0x" + deal_id.hex()
    audit = _wait_audit(chain, deal_id)

    assert audit.phase == AUDIT_FAILED and audit.dispute
    assert len(audit.seats) == 1 + chain.parameters()["committee_size"], "a committee seat went unfilled"
    seated = [a for a in audit.seats[1:] if a in colluders]
    assert seated, f"no colluder in the committee {audit.seats[1:]}"
    claims = dict(zip(audit.seats, audit.claims, strict=True))
    assert all(claims[c] == audit.provider_claim != audit.claim for c in seated)  # they backed the cheater
    provers = [a for a, c in zip(audit.seats, audit.claims, strict=True) if c == audit.claim]
    assert len(provers) == len(audit.seats) - len(seated) and first in provers
    # the cheater and every seated colluder forfeit their whole stakes, and are jailed
    for who in [cheater, *seated]:
        assert chain.jailed(who) and chain.provider_info(who).stake == 0, who
    for colluder in seated:
        assert chain.audit_record(colluder).disputes_lost == 1
    assert chain.audit_record(cheater).audits_failed == 1
    per_prover, to_requester, burned = split_forfeit(stake + len(seated) * COLLUDER_STAKE, len(provers))
    assert chain.burned() - burned0 == burned
    fee = _job().fee
    assert chain.balance_of() == escrow0 - fee + to_requester  # the price came back; the fee paid the first auditor
    for addr, before in others0.items():
        expected = (per_prover if addr in provers else 0) + (fee if addr == first else 0)
        assert chain.balance_of(addr) - before == expected, addr
    cheater_agent.kill()


def test_requester_withholding_its_seed_is_audited_by_default(honest, chain: MarketClient,
                                                               vdep: Deployment) -> None:
    escrow0 = chain.balance_of()
    volumes0 = {a: chain.reputation(a).volume for a in chain.providers()}
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
    assert result.verification == "sealed"  # all run knows when it returns: the audit resolves later
    known = _known(chain, result.deal_id, result.provider)
    assert (known.state, known.provider_flagged) == ("audited", False)  # an auditor re-ran it and agreed
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
    # challenged once the beacon block is mined (the challenge's seed), unless the lottery audited it first
    assert [(d["audited"], d["reason"]) for d in deal_events(chain, "DealDrawn", deal_id)] in ([(True, 2)], [(True, 0)])
    audit = _wait_audit(chain, deal_id)

    assert audit.phase == AUDIT_FAILED and not audit.dispute  # it never opened its seal: no reveal, no dispute
    assert not audit.provider_revealed
    assert chain.jailed(copier) and chain.provider_info(copier).stake == 0
    known = _known(chain, err.value.deal_id, copier)
    assert (known.state, known.provider_flagged) == ("proven_wrong", True)
    first_auditor, fee = audit.seats[0], _job().fee
    per_prover, to_requester, burned = split_forfeit(stake, 1)
    assert chain.balance_of() == escrow0 - fee + to_requester
    assert chain.burned() - burned0 == burned
    for addr, before in others0.items():
        assert chain.balance_of(addr) - before == (per_prover + fee if addr == first_auditor else 0)
    copier_agent.kill()


def test_silent_auditors_pay_a_burned_penalty_and_the_audit_passes_by_default(honest, winner10, chain: MarketClient,
                                                                           vdep: Deployment) -> None:
    winner = vdep.accounts["provider10"]
    escrow0, burned0 = chain.balance_of(), chain.burned()
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
    # nobody independent checked it: the SDK must not call it audited
    assert _known(chain, result.deal_id, winner).state == "unaudited"
    assert len(missed) == chain.court.functions.MAX_AUDIT_ROUNDS().call()
    assert len({m["auditor"] for m in missed}) == len(missed)  # never the same auditor twice
    assert all(m["penalty"] == fee for m in missed)  # min(free stake, fee), burned
    for m in missed:
        assert chain.audit_record(m["auditor"]).no_shows >= 1
    _wait_finalized(chain, deal_id)
    # price paid, the fee back (nobody audited), nothing from the silent auditors: their penalties are burned
    assert chain.balance_of() == escrow0 - result.price
    assert chain.burned() - burned0 == len(missed) * fee


def test_a_cleared_result_is_only_sealed(honest, chain: MarketClient, vdep: Deployment) -> None:
    """At the floor (3 %) the lottery almost always clears the deal: the result matched its seal and
    nobody re-executed it, so the SDK says ``sealed`` — never ``audited`` — after the stand-by.
    (Drawn for audit instead, 3 in 100, it must say what the audit found.)"""
    floor = chain.parameters()["audit_floor_bps"]
    result = _run(vdep, _job(audit_bps=floor))  # the Market's stand-by returns once the deal is drawn
    deal_id = bytes.fromhex(result.deal_id.removeprefix("0x"))
    ((audited, reason),) = [(d["audited"], d["reason"]) for d in deal_events(chain, "DealDrawn", deal_id)]
    assert result.verified and result.verification == "sealed" and not result.audited and reason == 0
    known = _known(chain, result.deal_id, result.provider)
    if audited:
        assert _wait_audit(chain, deal_id).phase == AUDIT_PASSED
        assert _known(chain, result.deal_id, result.provider).state == "audited"
    else:
        assert (known.state, known.provider_flagged, known.trusted) == ("sealed", False, False)


def test_job_hidden_from_auditors_is_pushed_by_the_requester(spawn, honest, chain: MarketClient,
                                                             vdep: Deployment) -> None:
    """A cheater that refuses to serve its job to its auditors (hoping they miss three rounds and
    it passes by default) is still caught: the requester pushes the job to every seat."""
    key, hider = _fresh_account(vdep, 2 * STAKE)
    hider_agent = spawn(key, behaviour="hidden_wrong_result", price=1, name="hider")
    stake = chain.provider_info(hider).stake
    # a requester of its own: requester1's deals of earlier tests may still settle (an audit by default
    # returning its fee) while this one runs, and would move the balance this test accounts for
    rkey, requester = _fresh_account(vdep, 1_000 * 10**6)
    chain.as_account(rkey).deposit(500 * 10**6)
    escrow0, burned0 = chain.balance_of(requester), chain.burned()
    others0 = {a: chain.balance_of(a) for a in chain.providers() if a != hider}
    assert httpx_status(hider_agent, "/v1/audits/0x" + "00" * 32 + "/job") == 503  # it serves no audit

    with pytest.raises(ResultMismatch) as err:
        _run(vdep, _job(), key=rkey)
    deal_id = bytes.fromhex(err.value.deal_id.removeprefix("0x"))
    audit = _wait_audit(chain, deal_id)

    assert audit.phase == AUDIT_FAILED and audit.dispute
    assert deal_events(chain, "AuditorMissed", deal_id) == []  # every seat got the job from the requester
    assert chain.jailed(hider) and chain.provider_info(hider).stake == 0
    provers = [a for a, c in zip(audit.seats, audit.claims, strict=True) if c == audit.claim]
    assert len(provers) == 1 + chain.parameters()["committee_size"]
    per_prover, to_requester, burned = split_forfeit(stake, len(provers))
    fee = _job().fee
    assert chain.burned() - burned0 == burned
    assert chain.balance_of(requester) == escrow0 - fee + to_requester
    for addr, before in others0.items():
        assert chain.balance_of(addr) - before == (per_prover if addr in provers else 0) + \
            (fee if addr == audit.seats[0] else 0)
    hider_agent.kill()


def httpx_status(agent: AgentProcess, path: str) -> int:
    return agent.get(path).status_code
