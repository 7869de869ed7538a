"""Chaos: a devnet, five provider agents and a requester (all real processes) under a stream of
jobs, while a seeded random schedule SIGKILLs and restarts providers and the requester and cuts
everyone's RPC access (a TCP proxy in front of anvil). Then the injections stop, everything
settles, and the books must close: every deal opened is finalized, reclaimed or refunded exactly
once, no lane stays busy, no collateral stays locked, the token and the Market's holdings add up
to the unit, each requester's escrow and each provider's stake and earnings are what the events
say, and every job the requester journaled as verified has its result on disk.

    MERCATO_CHAOS_S     seconds of injections (default 40, the short form `make test` runs;
                        `make chaos` runs 300)
    MERCATO_CHAOS_SEED  the schedule's seed (default 4, so the short form in CI replays one
                        schedule; "random" draws one, as `make chaos` does; always printed)

It prints each injection as it happens and a JSON summary at the end (run with -s to see them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_kit import AgentProcess, agent_process, deployment_of, funded_client, mine, running_devnet
from chaos_kit import Books, Driver, RpcProxy, token_holders, wait_until

from mercato.chain import DevnetParams, MarketClient, connect, increase_time
from mercato.config import RetryPolicy
from mercato.requester import Market
from mercato.requester.journal import Journal

DURATION = float(os.environ.get("MERCATO_CHAOS_S", "40"))
_SEED = os.environ.get("MERCATO_CHAOS_SEED", "4")
SEED = random.SystemRandom().randrange(2**31) if _SEED == "random" else int(_SEED)
PROVIDERS = [f"provider{i}" for i in range(1, 6)]
LANES = 2
DEPOSIT = 10_000 * 10**6
SETTLE_S = 240.0


def say(**fields: Any) -> None:
    print("chaos " + json.dumps(fields, default=str), flush=True)


def _up(agent: AgentProcess) -> bool:
    try:
        return agent.proc is not None and agent.proc.poll() is None and agent.get("/v1/info").status_code == 200
    except httpx.HTTPError:
        return False


def _relaunch_dead(agents: list[AgentProcess]) -> None:
    for agent in agents:
        if agent.proc is None or agent.proc.poll() is not None:  # exited (say, started while the RPC was cut)
            agent.launch()


@pytest.mark.timeout(int(DURATION) + 900)
def test_chaos(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    say(seed=SEED, duration_s=DURATION, providers=len(PROVIDERS))
    devnet = running_devnet(tmp_path / "net", DevnetParams(audit_floor_bps=1))
    net = next(devnet)
    proxy = RpcProxy(net.settings.devnet_port)
    agents: list[AgentProcess] = []
    driver: Driver | None = None
    try:
        dep = deployment_of(net)
        via_proxy = tmp_path / "deployment-proxy.json"
        dataclasses.replace(dep, rpc_url=proxy.url).save(via_proxy)
        w3 = connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
        requester = funded_client(dep, DEPOSIT)
        for account in PROVIDERS:
            # the driver's jobs (5 CU) leave 25 s from expiry to deadline: under the default 30 s run margin
            agent = agent_process(tmp_path, net, account, lanes=LANES, min_run_margin_s=10)
            agent.env |= {"MERCATO_DEPLOYMENT": str(via_proxy), "MERCATO_RPC_URL": proxy.url}
            agents.append(agent.launch())
        for agent in agents:
            agent.wait_ready(180)
        home = tmp_path / "requester"
        driver = Driver(via_proxy, home, "requester1", tmp_path / "requester.log", tmp_path / "stop", SEED,
                        concurrency=3).start()

        injections = _inject(rng, agents, driver, proxy)

        # stop injecting: everyone up, the requester finishes what it has in flight and exits
        proxy.restore()
        _relaunch_dead(agents)
        for agent in agents:
            agent.wait_ready(120)
        driver.stop_file.write_text("stop")
        if not wait_until(lambda: not driver.alive(), 120):
            driver.kill()
            say(note="the requester did not stop in 120 s: killed, its journal recovers it")
        recovered = _settle(w3, dep, requester, agents, home)

        books = Books.read(requester)
        summary = _check(w3, dep, requester, books, agents, driver, home)
        summary |= {"seed": SEED, "duration_s": DURATION, "injections": _count(injections), "recover": recovered,
                    "rpc_connections_refused": proxy.refused}
        say(summary=summary)
    finally:
        if driver is not None:
            driver.kill()
        for agent in agents:
            agent.kill(signal.SIGKILL)
        proxy.close()
        next(devnet, None)


def _inject(rng: random.Random, agents: list[AgentProcess], driver: Driver, proxy: RpcProxy) -> list[dict[str, Any]]:
    """The seeded schedule: SIGKILL+restart a provider, SIGKILL+restart the requester, or cut the RPC."""
    t0 = time.monotonic()
    done: list[dict[str, Any]] = []
    while time.monotonic() - t0 < DURATION:
        time.sleep(rng.uniform(1.0, 4.0))
        _relaunch_dead(agents)
        if not driver.alive():
            driver.start()
        kind = rng.choices(["kill_provider", "kill_requester", "cut_rpc"], weights=[5, 3, 2])[0]
        step: dict[str, Any] = {"t": round(time.monotonic() - t0, 1), "inject": kind}
        if kind == "kill_provider":
            agent = rng.choice(agents)
            down = round(rng.uniform(0.0, 3.0), 1)
            step |= {"provider": agent.account, "down_s": down}
            say(**step)
            agent.kill(signal.SIGKILL)
            time.sleep(down)
            agent.launch()
        elif kind == "kill_requester":
            down = round(rng.uniform(0.0, 2.0), 1)
            step |= {"down_s": down}
            say(**step)
            driver.kill()
            time.sleep(down)
            driver.start()
        else:
            cut = round(rng.uniform(1.0, 5.0), 1)
            step |= {"cut_s": cut}
            say(**step)
            proxy.cut()
            time.sleep(cut)
            proxy.restore()
        done.append(step)
    return done


def _count(injections: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for step in injections:
        counts[step["inject"]] = counts.get(step["inject"], 0) + 1
    return {"total": len(injections), "by_kind": counts, "schedule": injections}


def _all_closed(requester: MarketClient) -> bool:
    books = Books.read(requester)
    return all(len(v) >= 1 for v in books.closing().values())


def _settle(w3: Any, dep: Any, requester: MarketClient, agents: list[AgentProcess], home: Path) -> dict[str, Any]:
    """Mine, pass deadlines, run the requester's recover until every deal and every journal row is closed."""
    journal = Journal.for_account(home, dep.chain_id, dep.market, requester.address)
    import asyncio

    async def recover_once() -> list[Any]:
        async with Market.connect(deployment=dep, key=dep.keys["requester1"], journal=journal,
                                  audit_wait_s=0) as m:
            return await m.recover()

    t0 = time.monotonic()
    jumped = False
    actions: dict[str, list[str]] = {}
    rounds = 0
    while time.monotonic() - t0 < SETTLE_S:
        rounds += 1
        mine(w3)
        for report in asyncio.run(recover_once()):
            if report.actions:
                actions.setdefault(report.deal_id, []).extend(report.actions)
        if _all_closed(requester) and all(e.done for e in journal.entries()):
            break
        if not jumped and time.monotonic() - t0 > 20:  # past every deadline: what is open uncommitted is reclaimable
            increase_time(w3, 120)
            jumped = True
        time.sleep(1.0)
    # a second walk must change nothing
    again = [r for r in asyncio.run(recover_once()) if r.actions]
    assert again == [], f"recover is not idempotent: {again}"
    return {"settle_s": round(time.monotonic() - t0, 1), "rounds": rounds, "actions": actions}


def _check(w3: Any, dep: Any, requester: MarketClient, books: Books, agents: list[AgentProcess], driver: Driver,
           home: Path) -> dict[str, Any]:
    m = requester
    closing = books.closing()
    opened = books.opened()
    # every deal opened has exactly one closing outcome
    bad = {"0x" + d.hex(): v for d, v in closing.items() if len(v) != 1}
    assert not bad, f"deals without exactly one closing outcome: {bad}"
    # nothing stays locked: no busy lane, no locked collateral
    providers = [m.as_account(dep.keys[a.account]).address for a in agents]
    for p in providers:
        info = m.provider_info(p)
        assert info.locked == 0, f"provider {p} still has {info.locked} locked"
        for lane in range(LANES):
            assert not m.lane(p, lane).busy, f"lane {lane} of {p} is still busy"
    # the token: total supply = the sum over all holders
    token, holders = token_holders(w3, dep)
    holders |= {w3.to_checksum_address(a) for a in dep.accounts.values()}
    supply = int(token.functions.totalSupply().call())
    assert supply == sum(int(token.functions.balanceOf(h).call()) for h in holders)
    # the Market holds exactly what it owes: escrow (available + pending) of every account, every
    # provider's stake, unbonding and unclaimed earnings, what is burned (no deal is open any more)
    accounts = holders | set(providers)
    owed = sum(m.balance_of(a) + m.pending_withdrawal(a).amount for a in accounts)
    for a in accounts:
        info = m.provider_info(a)
        owed += info.stake + info.unbonding + info.earnings
    burned = int(m.contract.functions.burned().call())
    held = int(token.functions.balanceOf(m.market).call())
    assert held == owed + burned, f"market holds {held}, owes {owed} + burned {burned}"
    # each requester's escrow and each provider's stake and earnings, rebuilt from the events
    for req in {a["requester"] for a in opened.values()} | {m.address}:
        have = m.balance_of(req) + m.pending_withdrawal(req).amount
        assert have == books.requester_expected(req), f"requester {req}: escrow {have}, events say " \
                                                      f"{books.requester_expected(req)}"
    for p in providers:
        info = m.provider_info(p)
        assert (info.stake + info.unbonding, info.earnings) == books.provider_expected(p), p
    # no deal and no result lost: every deal this requester opened is in its journal, every finalized
    # one and every job the driver saw verified has its verified result on disk
    journal = Journal.for_account(home, dep.chain_id, dep.market, m.address)
    entries = {e.deal_id: e for e in journal.entries()}
    mine_opened = {"0x" + d.hex() for d, a in opened.items() if a["requester"] == m.address}
    assert mine_opened <= set(entries), f"deals opened but not journaled: {sorted(mine_opened - set(entries))}"
    assert all(e.done for e in entries.values()), [e for e in entries.values() if not e.done]
    finalized = {"0x" + d.hex() for d, v in closing.items() if v == ["finalized"]} & mine_opened
    for deal_id in finalized:
        assert journal.has_result(entries[deal_id]), f"deal {deal_id} was paid for but its result is lost"
    verified_lines = [ln for ln in driver.lines() if ln["event"] == "verified"]
    for ln in verified_lines:
        e = entries[ln["deal_id"]]
        assert e.state == "verified" and journal.has_result(e)
        meta = json.loads((Path(e.result_dir) / "result.json").read_text())
        assert meta["result_root"] == ln["result_root"]
    outcomes: dict[str, int] = {}
    for v in closing.values():
        outcomes[v[0]] = outcomes.get(v[0], 0) + 1
    lines = driver.lines()
    return {"deals_opened": len(opened), "outcomes": outcomes, "journaled": len(entries),
            "journal_states": _tally(e.state for e in entries.values()),
            "results_on_disk": sum(journal.has_result(e) for e in entries.values()),
            "jobs_verified_live": len(verified_lines),
            "jobs_failed_live": _tally(ln["error"] for ln in lines if ln["event"] == "failed"),
            "requester_starts": driver.starts, "market_holds": held, "burned": burned,
            "requester_escrow": m.balance_of(m.address)}


def _tally(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
