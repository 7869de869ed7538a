"""``Market.map`` end to end (docs/SPEC.md §17): real anvil, eleven real provider agents, real
wasmtime, the requester SDK. Tasks are bought in batch deals: the cheapest providers are filled
first, equal prices split by capacity, a provider killed mid-run or returning wrong results
loses its tasks to the others and is excluded, and a budget that runs out stops the run cleanly.
After each run every deal the requester opened is settled and its escrow moved by exactly the
prices of the deals plus the audit fees paid: nothing is lost.

The module runs its own devnet, so its agents are the only providers in the registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import signal
import tempfile
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agent_kit import (
    ROOT,
    WASM,
    AgentProcess,
    deployment_of,
    funded_client,
    running_devnet,
    start_agent,
    start_agents,
)
from typer.testing import CliRunner

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient
from mercato.cli import app as cli_app
from mercato.chain.api import AUDIT_PASSED
from mercato.domain.batch import task_seed
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import BudgetTooLow
from mercato.requester import JobRequest, Market
from mercato.requester.events import BatchDispatched, MapSummary, TaskResult
from mercato.runtimes import BlobStore, Workspace, runtime_for

CHEAP, EVEN = 2, 5  # prices per CU
# mercato map's batches ask an expiry at their deadline, which the default terms caps refuse (docs/SPEC.md §13)
BATCHES = {"allow_batch_expiry_at_deadline": True}
CHEAP_AGENTS = {f"provider{i}": {"lanes": 2, "pricing": {"price_per_cu": CHEAP, "utilization_markup": 0}} | BATCHES
                for i in range(1, 5)}
EVEN_LANES = {"provider5": 1, "provider6": 1, "provider7": 2, "provider8": 2, "provider9": 3, "provider10": 3}
EVEN_AGENTS = {a: {"lanes": n, "pricing": {"price_per_cu": EVEN, "utilization_markup": 0}} | BATCHES
               for a, n in EVEN_LANES.items()}
SAMPLES = "20000"
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def mnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("map-devnet"), DevnetParams(audit_period=10))


@pytest.fixture(scope="module")
def mdep(mnet: Devnet) -> Deployment:
    return deployment_of(mnet)


@pytest.fixture(scope="module")
def chain(mdep: Deployment) -> MarketClient:
    return funded_client(mdep, 2_000 * 10**6)


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory, mnet: Devnet) -> Iterator[dict[str, AgentProcess]]:
    """Ten honest agents: four cheap ones with two lanes each, six dearer ones with 1-3 lanes."""
    root = tmp_path_factory.mktemp("map-agents")
    started = start_agents(root, mnet, CHEAP_AGENTS | EVEN_AGENTS)
    by_name = {a.account: a for a in started}
    by_name["_root"] = root  # type: ignore[assignment]
    yield by_name
    for agent in started:
        agent.kill(signal.SIGTERM)


def _job(**market: Any) -> JobRequest:
    opts: dict[str, Any] = dict(max_price=EVEN * 2, deadline_s=60, accept_window_s=60, audit_fee=10) | market
    return JobRequest.from_files(WASM, args=[SAMPLES], limits=Limits(fuel=FUEL_PER_CU), **opts)


def _map(dep: Deployment, n: int, **options: Any) -> tuple[list[TaskResult], MapSummary, list[object]]:
    """Map ``n`` Monte Carlo tasks (task i's argument: its own PRNG seed i) and collect everything."""
    events: list[object] = []
    on_event: Callable[[object], None] | None = options.pop("on_event", None)

    def note(ev: object) -> None:
        events.append(ev)
        if on_event is not None:
            on_event(ev)

    async def go() -> tuple[list[TaskResult], MapSummary]:
        async with Market.connect(deployment=dep, key=dep.keys["requester1"], bid_window=1.0,
                                  on_event=note) as market:
            run = market.map(_job(), [[str(i)] for i in range(n)], **options)
            results = [r async for r in run]
            return results, run.summary

    results, summary = asyncio.run(go())
    return results, summary, events


def _address(dep: Deployment, name: str) -> str:
    return dep.accounts[name]


def _settled_cost(chain: MarketClient, since: int, timeout: float = 180.0) -> tuple[int, set[str]]:
    """Wait until every deal requester1 opened since block ``since`` is finalized or reclaimed;
    return what they cost it (prices of finalized deals + audit fees paid) and their providers."""
    me = chain.address
    end = time.monotonic() + timeout
    while True:
        opened = [dict(e["args"]) for e in chain.contract.events.DealOpened().get_logs(
            from_block=since, argument_filters={"requester": me})]
        ids = {bytes(o["deal_id"]) for o in opened}
        finalized = {bytes(e["args"]["deal_id"]) for e in chain.contract.events.DealFinalized().get_logs(from_block=since)}
        reclaimed = {bytes(e["args"]["deal_id"]): dict(e["args"]) for e in
                     chain.contract.events.DealReclaimed().get_logs(from_block=since)}
        # an audit that failed (or voided) ends its deal without a finalization: refund, forfeits
        ended = {bytes(e["args"]["deal_id"]) for e in chain.event_logs("AuditResolved", from_block=since)
                 if int(e["args"]["outcome"]) != AUDIT_PASSED}
        if ids <= finalized | set(reclaimed) | ended:
            break
        assert time.monotonic() < end, f"{len(ids - finalized - set(reclaimed) - ended)} deals still open"
        time.sleep(1.0)
    bounties = sum(int(e["args"]["amount"]) for e in chain.contract.events.BountyPaid().get_logs(from_block=since)
                   if bytes(e["args"]["deal_id"]) in ids)
    cost = sum(int(o["price"]) for o in opened if bytes(o["deal_id"]) in finalized) + bounties
    cost -= sum(int(r["penalty"]) for d, r in reclaimed.items() if d in ids)  # a missed deal's penalty comes to us
    return cost, {str(o["provider"]) for o in opened}


@functools.cache
def _expected(index: int) -> bytes:
    """What task ``index`` prints, run here in the same sandbox as a plain job."""
    with tempfile.TemporaryDirectory() as tmp:
        blobs = BlobStore(Path(tmp) / "blobs")
        base = _job().spec
        spec = dataclasses.replace(base, args=(*base.args, str(index)), seed=task_seed(base.seed, index))
        assert blobs.put(WASM.read_bytes()) == spec.workload
        return runtime_for("wasm", blobs).run(spec, Workspace.create(tmp)).stdout


def _check_results(results: list[TaskResult], n: int) -> None:
    """Every task came back once, and each printed what it prints when run here."""
    assert sorted(r.index for r in results) == list(range(n))
    for r in results:
        assert r.ok and r.stdout == _expected(r.index), r
        assert "pi.txt" in r.outputs and float(r.outputs["pi.txt"]) > 2.5


def test_cheapest_providers_are_filled_first_with_an_even_split(agents, chain: MarketClient, mdep: Deployment) -> None:
    """32 tasks fit the four cheap agents' room (2 lanes x 4 tasks a batch each): they take all
    of them, 8 each, in batches of 4; the results stream back in input order when asked."""
    since, before = chain.block_number(), chain.balance_of()
    results, summary, _ = _map(mdep, 32, max_price_per_cu=EVEN, tasks_per_deal=4, ordered=True)
    assert [r.index for r in results] == list(range(32))
    _check_results(results, 32)
    assert summary.complete and summary.failed == {} and summary.not_run == ()
    cheap = {_address(mdep, a) for a in CHEAP_AGENTS}
    assert {r.provider for r in results} == cheap
    assert {p: t.tasks for p, t in summary.providers.items() if t.tasks} == {p: 8 for p in cheap}
    assert all(t.tasks == 0 for p, t in summary.providers.items() if p not in cheap)
    assert summary.batches == 8
    seeds = {r.seed for r in results}
    assert len(seeds) == 32 and results[5].seed == task_seed(_job().spec.seed, 5).hex()
    cost, providers = _settled_cost(chain, since)
    assert providers == cheap
    assert before - chain.balance_of() == cost and cost >= summary.spent


def test_equal_prices_split_by_capacity(agents, chain: MarketClient, mdep: Deployment) -> None:
    """Without the cheap agents, six agents at one price with 1, 1, 2, 2, 3 and 3 lanes: 24 tasks
    in batches of 2 fill every lane once, so each gets 2 tasks a lane."""
    since, before = chain.block_number(), chain.balance_of()
    exclude = frozenset(_address(mdep, a).lower() for a in CHEAP_AGENTS)
    results, summary, events = _map(mdep, 24, max_price_per_cu=EVEN, tasks_per_deal=2, exclude_providers=exclude)
    _check_results(results, 24)
    assert summary.complete
    got = {p: t.tasks for p, t in summary.providers.items() if t.tasks}
    assert got == {_address(mdep, a): 2 * lanes for a, lanes in EVEN_LANES.items()}, "\n".join(map(str, events))
    cost, _ = _settled_cost(chain, since)
    assert before - chain.balance_of() == cost


def _cheater(agents: dict[str, Any], mnet: Devnet, account: str) -> AgentProcess:
    """An agent that seals wrong results and bids 1 per CU: it wins the first batches of a run."""
    return start_agent(agents["_root"], mnet, account, behaviour="wrong_result", lanes=1,
                       pricing={"price_per_cu": 1, "utilization_markup": 0}, **BATCHES)


def test_a_provider_returning_wrong_results_is_excluded_and_its_tasks_rerun(agents, mnet: Devnet,
                                                                            chain: MarketClient,
                                                                            mdep: Deployment) -> None:
    """A cheater at the lowest price wins the first batch; its result does not open its seal,
    so it is excluded, its deal challenged, and its tasks run again elsewhere."""
    cheater = _cheater(agents, mnet, "requester3")
    try:
        results, summary, _ = _map(mdep, 16, max_price_per_cu=EVEN, tasks_per_deal=4)
    finally:
        cheater.kill()
    addr = _address(mdep, "requester3")
    _check_results(results, 16)
    assert summary.complete and addr not in {r.provider for r in results}
    tally = summary.providers[addr]
    assert tally.excluded and tally.failures >= 1 and tally.tasks == 0


def test_a_budget_that_runs_out_stops_cleanly(agents, mnet: Devnet, chain: MarketClient, mdep: Deployment) -> None:
    """A budget below the run's cost at the cheapest quote is refused before any deal. One that
    covers the run only at the cheater's price runs out once the cheater's deal is challenged (its
    escrow stays held until the audit ends): the run stops, says why, keeps what finished, lists
    what did not run, and never holds more than the budget."""
    since, before = chain.block_number(), chain.balance_of()
    with pytest.raises(BudgetTooLow) as err:
        _map(mdep, 24, max_price_per_cu=EVEN, tasks_per_deal=4, budget=100)
    assert err.value.budget == 100 and err.value.needed > 100
    assert not chain.contract.events.DealOpened().get_logs(  # refused before any deal
        from_block=since, argument_filters={"requester": chain.address})

    cheater = _cheater(agents, mnet, "requester2")
    try:
        with pytest.raises(BudgetTooLow) as err:  # the cost of the run at the cheater's price of 1
            _map(mdep, 24, max_price_per_cu=EVEN, tasks_per_deal=4, budget=1)
        budget = err.value.needed
        results, summary, _ = _map(mdep, 24, max_price_per_cu=EVEN, tasks_per_deal=4, budget=budget)
    finally:
        cheater.kill()
    assert summary.stopped and "budget" in summary.stopped
    assert not summary.complete and summary.not_run
    assert sorted([*summary.done, *summary.not_run, *summary.failed]) == list(range(24))
    assert sorted(r.index for r in results) == sorted(summary.done)
    assert summary.committed <= budget and before - chain.balance_of() <= budget


def test_a_provider_killed_mid_run_loses_its_tasks_to_the_others(agents, chain: MarketClient,
                                                                 mdep: Deployment) -> None:
    """The agent the first batch goes to is SIGKILLed the moment it is sent: that batch fails, the
    agent is excluded, its tasks finish on the others, and the requester pays only for the deals
    that were verified (its escrow moves by exactly their prices and the audit fees paid)."""
    names = {_address(mdep, a).lower(): a for a in (*CHEAP_AGENTS, *EVEN_AGENTS)}
    killed: list[str] = []
    _settled_cost(chain, 0)  # the earlier tests' deals (and their audits) are over: the balance holds still
    since, before = chain.block_number(), chain.balance_of()

    def kill_first(ev: object) -> None:
        if isinstance(ev, BatchDispatched) and not killed:
            killed.append(ev.provider)
            agents[names[ev.provider.lower()]].kill()

    try:
        results, summary, _ = _map(mdep, 32, max_price_per_cu=EVEN, tasks_per_deal=4, on_event=kill_first)
        _check_results(results, 32)
        assert killed and summary.complete and killed[0] not in {r.provider for r in results}
        assert summary.providers[killed[0]].excluded and summary.providers[killed[0]].failures >= 1
        cost, _ = _settled_cost(chain, since)
        assert before - chain.balance_of() == cost
    finally:
        for addr in killed:
            agents[names[addr.lower()]].start()


def test_cli_map_runs_the_montecarlo_example(agents, mnet: Devnet, chain: MarketClient, tmp_path: Path) -> None:
    """``mercato map examples/montecarlo/job.toml --args-file … --json``: one JSON line per task in
    the order asked, a summary line, and each task's files under --out."""
    args = tmp_path / "tasks.txt"
    args.write_text("".join(f"{i}\n" for i in range(6)))
    env = {"MERCATO_HOME": str(mnet.settings.home), "MERCATO_DEPLOYMENT": str(mnet.settings.deployment_path),
           "MERCATO_ACCOUNT": "requester1"}
    out = tmp_path / "out"
    res = CliRunner().invoke(cli_app, ["map", str(EXAMPLES / "montecarlo" / "job.toml"), "--args-file", str(args),
                                       "--ordered", "--tasks-per-deal", "3", "--out", str(out), "--json"], env=env)
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.strip().splitlines() if line.startswith("{")]
    tasks, summary = lines[:-1], lines[-1]
    assert [t["index"] for t in tasks] == list(range(6)), lines
    assert all(t["outcome"] == "ok" and t["stdout"].startswith("samples=200000 ") for t in tasks)
    assert summary["summary"]["done"] == 6 and summary["summary"]["not_run"] == [], summary
    assert sorted(p.name for p in out.iterdir()) == [str(i) for i in range(6)]
