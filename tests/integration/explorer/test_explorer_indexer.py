"""The indexer against a scripted history on a real anvil with real agents: every table is
checked against the chain; a restart resumes from the cursor without duplicates; a reorg
(``evm_revert``) is undone.

History: two honest agents and a cheater (``behaviour = wrong_result``, the cheapest bid).
An honest job clears and is finalized; the cheater's job is challenged, goes to a dispute
(committee of one: provider, first auditor and committee member make three executions) and
the cheater forfeits its whole stake; a provider without an agent misses a deal and is
slashed; stake is unbonded and withdrawn; escrow is withdrawn.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from explorer_kit import (
    STAKE,
    deployment_of,
    free_port,
    funded_client,
    job,
    logs,
    missed_deal,
    run_job,
    running_devnet,
    start_agent,
    wait_for,
)
from typer.testing import CliRunner

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient, increase_time
from mercato.chain.api import AUDIT_FAILED
from mercato.cli import app as cli_app
from mercato.domain.jobs import cu_from_fuel
from mercato.errors import ResultMismatch
from mercato.explorer.indexer import Indexer
from mercato.explorer.store import Store
from mercato.explorer.views import Views
from mercato.matching import score_reputation

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def xnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    params = DevnetParams(audit_floor_bps=1, audit_period=10, committee_size=1, unbond_delay=10, withdrawal_delay=5)
    yield from running_devnet(tmp_path_factory.mktemp("explorer-devnet"), params)


@pytest.fixture(scope="module")
def xdep(xnet: Devnet) -> Deployment:
    return deployment_of(xnet)


@pytest.fixture(scope="module")
def chain(xdep: Deployment) -> MarketClient:
    return funded_client(xdep, 5_000 * 10**6)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, xnet: Devnet, xdep: Deployment,
            chain: MarketClient) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("explorer-agents")
    pricing = {"price_per_cu": 100, "utilization_markup": 0}
    agents = [start_agent(root, xnet, name, stake=STAKE, pricing=pricing) for name in ("provider2", "provider3")]
    try:
        honest = run_job(xdep, job())
        honest_id = bytes.fromhex(honest.deal_id[2:])
        wait_for(lambda: bool(logs(chain, "DealFinalized")), "the honest deal finalized", w3=chain.w3)

        cheater = start_agent(root, xnet, "provider1", behaviour="wrong_result", stake=STAKE,
                              pricing={"price_per_cu": 1, "utilization_markup": 0})
        agents.append(cheater)
        with pytest.raises(ResultMismatch) as err:
            run_job(xdep, job(audit_bps=10_000))
        cheat_id = bytes.fromhex(err.value.deal_id.removeprefix("0x"))
        wait_for(lambda: chain.audit(cheat_id).resolved, "the dispute resolved", timeout=180)
        assert chain.audit(cheat_id).phase == AUDIT_FAILED and chain.audit(cheat_id).dispute
        cheater.kill()

        missed = missed_deal(chain, xdep, "provider5")
        lazy = chain.as_account(xdep.keys["provider5"])
        lazy.unbond(10**6)
        increase_time(chain.w3, 11)
        lazy.withdraw_stake()
        chain.request_withdrawal(10**6)
        increase_time(chain.w3, 6)
        chain.withdraw()
        yield {"honest": honest, "honest_id": honest_id, "cheat_id": cheat_id, "missed": missed,
               "cheater": xdep.accounts["provider1"]}
    finally:
        for a in agents:
            a.kill(signal.SIGTERM)


def _index(path: Path, dep: Deployment, chunk: int = 50) -> Indexer:
    return Indexer.from_deployment(dep, Store(path), chunk=chunk)


def test_every_table_matches_the_chain(history: dict[str, Any], chain: MarketClient, xdep: Deployment,
                                       tmp_path: Path) -> None:
    ix = _index(tmp_path / "x.sqlite", xdep)
    report = ix.sync()
    assert report.to_block == report.head and report.events > 0
    store, views = ix.store, Views(ix.store)

    # events: one row per log of the Market and its court, nothing else
    every = chain.w3.eth.get_logs({"address": chain.log_addresses, "fromBlock": xdep.block,
                                   "toBlock": report.to_block})
    assert store.count("events") == len(every) == report.events

    # providers: registry, stake and every outcome counter equal the contract's views
    registered = chain.providers()
    rows = {p["address"]: p for p in views.providers()}
    assert set(registered) <= set(rows)
    for address in registered:
        info, rep, rec = chain.provider_info(address), chain.reputation(address), chain.audit_record(address)
        row = rows[address]
        assert (row["endpoint"], row["stake"], row["unbonding"]) == (info.endpoint, info.stake, info.unbonding), address
        assert (row["completed"], row["missed"], row["slashed"], row["volume"]) == \
               (rep.completed, rep.missed, rep.slashed, rep.volume), address
        assert (row["audits_passed"], row["audits_failed"], row["disputes_lost"], row["audits_done"],
                row["no_shows"]) == (rec.audits_passed, rec.audits_failed, rec.disputes_lost, rec.audits_done,
                                     rec.no_shows), address
        assert row["jailed"] == chain.jailed(address)
        exact = score_reputation(rep, rec)
        assert row["chain_score_exact"] == f"{exact.numerator}/{exact.denominator}"
    cheater = rows[history["cheater"]]
    assert cheater["jailed"] and cheater["stake"] == 0 and cheater["audits_failed"] == 1
    assert cheater["score"] < 0.1 < rows[xdep.accounts["provider2"]]["score"]

    # deals: every DealOpened, with its terms and where it ended
    opened = logs(chain, "DealOpened")
    assert store.count("deals") == len(opened)
    ended = {("finalized", bytes(e["args"]["deal_id"])) for e in logs(chain, "DealFinalized")} | \
            {("reclaimed", bytes(e["args"]["deal_id"])) for e in logs(chain, "DealReclaimed")} | \
            {("failed", bytes(e["args"]["deal_id"])) for e in logs(chain, "AuditResolved") if e["args"]["outcome"] == 4}
    for e in opened:
        a = e["args"]
        d = views.deal("0x" + bytes(a["deal_id"]).hex())
        assert d is not None
        assert (d["provider"], d["requester"], d["price"], d["collateral"], d["jobs"], d["nonce"]) == \
               (a["provider"], a["requester"], a["price"], a["collateral"], a["jobs"], a["nonce"])
        assert d["opened_tx"] == "0x" + bytes(e["transactionHash"]).hex()
        assert (d["status"], bytes(a["deal_id"])) in ended
    honest = views.deal(history["honest"].deal_id)
    assert honest is not None and honest["status"] == "finalized" and honest["audited"] is False
    assert [s["step"] for s in honest["timeline"]][:1] == ["opened"] and honest["timeline"][-1]["step"] == "finalized"
    cheat = views.deal("0x" + history["cheat_id"].hex())
    assert cheat is not None and cheat["status"] == "failed" and cheat["audit_outcome"] == 4

    # results and audits: every revealed claim and every verification event
    assert store.count("results") == len(logs(chain, "ClaimRevealed")) >= 3  # a dispute: three executions
    audit_events = ("DealDrawn", "AuditorDrawn", "AuditCommitted", "ClaimRevealed", "AuditorMissed", "AuditResolved",
                    "BountyPaid", "Burned", "WorkloadFlagged")
    assert store.count("audits") == sum(len(logs(chain, n)) for n in audit_events)

    # slashes: the miss penalty and the whole-stake forfeit, each tied to its deal
    slashes = views.slashes()
    assert len(slashes) == len(logs(chain, "ProviderSlashed")) + len(logs(chain, "StakeForfeited"))
    kinds = {(s["kind"], s["deal_id"]) for s in slashes}
    assert ("miss_penalty", "0x" + history["missed"].deal_id.hex()) in kinds
    assert ("forfeit", "0x" + history["cheat_id"].hex()) in kinds
    forfeit = next(s for s in slashes if s["kind"] == "forfeit")
    assert forfeit["amount"] == STAKE and forfeit["provider"] == history["cheater"]

    # stakes, withdrawals, deposits
    assert store.count("stakes") == sum(len(logs(chain, n)) for n in ("Staked", "Unbonded", "StakeWithdrawn"))
    assert store.count("withdrawals") == sum(len(logs(chain, n)) for n in (
        "StakeWithdrawn", "EarningsClaimed", "WithdrawalRequested", "WithdrawalCancelled", "Withdrawn"))
    assert store.count("deposits") == len(logs(chain, "Deposited"))

    # the price index: the honest deal's work units come from its receipt, checked against its seal
    ix.enrich()
    honest = views.deal(history["honest"].deal_id)
    assert honest is not None
    assert (honest["units"], honest["unit"], honest["units_source"]) == \
           (cu_from_fuel(history["honest"].fuel_used), "cu", "receipt")
    prices = views.prices(since_s=10**9)
    assert [p["deal_id"] for p in prices["points"]] == [history["honest"].deal_id]
    assert prices["vwap"]["24h"] == round(history["honest"].price / honest["units"], 6)
    overview = views.overview()
    assert overview["volume"] == sum(chain.reputation(a).volume for a in registered)
    assert overview["open_deals"] == 0


def test_restart_resumes_from_the_cursor_without_duplicates(history: dict[str, Any], chain: MarketClient,
                                                             xdep: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "restart.sqlite"
    first = _index(path, xdep, chunk=10)
    first.sync(max_chunks=2)  # stop part way, as a killed process would
    stopped_at = first.store.cursor()
    assert stopped_at == xdep.block - 1 + 2 * 10 < chain.block_number()
    first.store.close()

    again = _index(path, xdep)
    report = again.sync()
    assert report.from_block == stopped_at  # resumed from the cursor, not from the start
    tables = ("events", "providers", "deals", "results", "audits", "slashes", "stakes", "withdrawals", "deposits")
    counts = {t: again.store.count(t) for t in tables}
    assert counts["events"] == len(chain.w3.eth.get_logs({"address": chain.log_addresses,
                                                          "fromBlock": xdep.block, "toBlock": report.to_block}))
    # reading blocks already indexed again writes nothing twice
    with again.store.transaction() as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(xdep.block),))
    assert again.sync().events == 0
    assert {t: again.store.count(t) for t in tables} == counts
    again.store.close()

    third = _index(path, xdep)
    assert third.sync().events == 0
    assert {t: third.store.count(t) for t in tables} == counts
    chain.deposit(7)
    assert third.sync().events == 1
    assert third.store.count("deposits") == counts["deposits"] + 1
    third.store.close()


def test_a_reorganisation_is_undone(history: dict[str, Any], chain: MarketClient, xdep: Deployment,
                                    tmp_path: Path) -> None:
    ix = _index(tmp_path / "reorg.sqlite", xdep)
    ix.sync()
    before = ix.store.count("deposits")
    snap = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    chain.deposit(11)
    ix.sync()
    assert ix.store.count("deposits") == before + 1
    assert chain.w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]
    fresh = chain.as_account(xdep.keys["requester1"])  # a new sender: the reverted nonce is free again
    fresh.deposit(13)
    increase_time(chain.w3, 1)
    report = ix.sync()
    assert report.rewound_to is not None
    amounts = [r["amount"] for r in ix.store.rows("SELECT amount FROM deposits ORDER BY block, log_index")]
    assert amounts[-1] == 13 and 11 not in amounts[before:]
    assert ix.store.count("deposits") == before + 1
    assert ix.store.count("events") == len(chain.w3.eth.get_logs(
        {"address": chain.log_addresses, "fromBlock": xdep.block, "toBlock": report.to_block}))


def test_market_price_cli_prints_the_index(history: dict[str, Any], xnet: Devnet, tmp_path: Path) -> None:
    env = {"MERCATO_HOME": str(tmp_path), "MERCATO_DEPLOYMENT": str(xnet.settings.deployment_path)}
    out = CliRunner().invoke(cli_app, ["market", "price", "--json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    honest = history["honest"]
    units = cu_from_fuel(honest.fuel_used)
    exact = Fraction(honest.price, units)
    assert data["vwap_exact"]["24h"] == f"{exact.numerator}/{exact.denominator}"
    assert [p["deal_id"] for p in data["points"]] == [honest.deal_id]
    table = CliRunner().invoke(cli_app, ["market", "price"], env=env)
    assert table.exit_code == 0 and "VWAP 24h" in table.output and honest.deal_id[:18] in table.output


def test_mercato_explorer_serves_the_api(history: dict[str, Any], xnet: Devnet, chain: MarketClient,
                                         tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, MERCATO_HOME=str(tmp_path), MERCATO_DEPLOYMENT=str(xnet.settings.deployment_path))
    env.pop("MERCATO_RPC_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "mercato", "explorer", "--port", str(port), "--db",
                             str(tmp_path / "served.sqlite")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        status: dict[str, Any] = {}
        while time.monotonic() < end:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=1).json()
                if status["indexed_block"] >= chain.block_number() - 1:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert status.get("market") == chain.market, status
        providers = httpx.get(f"http://127.0.0.1:{port}/api/providers", timeout=5).json()
        assert {p["address"] for p in providers} >= set(chain.providers())
        assert "/api/deals/{deal_id}" in httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()["paths"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
