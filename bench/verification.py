"""Verification at market scale (docs/SPEC.md §14): overhead, catches, cheater economics, gas.

    .venv/bin/python bench/verification.py [--jobs 2000] [--cheaters 1] [--wave 96]

Starts its own anvil on a free port with a throw-away home (``Devnet``: a block per
transaction and one every second), deploys the Market, and drives in-process actors over
JSON-RPC against the real contract: 10 registered providers (``provider1``…``provider10``),
``--cheaters`` of them cheating (default 1, i.e. 10 %), and the requesters ``requester1``…3.

- Every job is its own single-job deal: the requester signs an ``Acceptance`` with a fresh
  lottery seed (``seed_hash``), ``audit_bps`` = the market's floor and ``audit_fee`` = price;
  the provider runs first and sends ``open_and_commit``. Jobs go round-robin to the providers
  that are not jailed. Honest providers really run ``examples/wasm/montecarlo.wasm`` (20,000
  samples, a different seed per job) in the wasm sandbox and commit
  ``seal_of(provider, deal_id, result_root, fuel, salt)``; a cheater skips the work and commits
  a seal over a made-up result root (which it reveals if audited).
- Jobs run in waves (``--wave`` deals, 32 per requester by default, so each requester's draw is one
  full batch). After a wave is opened, blocks are mined past each deal's beacon block and every
  requester reveals its seeds with ``draw`` (≤ 32 per call). The requester knows its seeds, so it
  computes the lottery off-chain first (``verification.lottery``) and draws the deals that will be
  audited in their own call: the gas of each path is then measured, not apportioned (the
  contract's ``DealDrawn`` must agree with the prediction, or the bench stops).
- Audited deals: the drawn auditor (any provider, the cheater included, drawn stake-weighted by
  the contract) really re-executes the job, commits its blind seal, then the provider and the
  auditor reveal; a mismatch draws a committee whose members re-execute, commit and reveal too.
  ``advance`` moves a phase whose deadline passed (nobody is silent here, so it should not run).
- Settlement: the clock moves past the challenge window (``evm_increaseTime``) and CLEARED and
  PASSED deals are finalized, ≤ 32 per call (cleared and passed in separate calls, for the gas).

Every provider stakes what its in-flight load needs: at most ``ceil(wave / honest providers)``
open deals, each locking the collateral the SDK asks by default (19 × price), and never less
than the bond rule's ``min_stake(N, N × price)`` (SPEC §14.6).

Figures: useful compute = fuel of the providers' honest executions of the jobs; verification
compute = fuel of every audit re-execution (first auditors and committees), so the overhead is
``100 × verification / useful`` (target ≤ 5 %). ``cheats_caught_pct`` = cheating deals that ended
FAILED / cheating deals committed × 100. Cheater net profit: see the ``cheater_economics`` line
(its formula is printed with it). Gas is every transaction's receipt ``gasUsed``.

Trust figures (issue 15): ``honest_stake_lost`` (slashes and forfeits of providers that never
cheated), ``wrong_results_called_verified`` (cheating deals whose audit passed: the SDK would say
"audited") and ``wrong_results_sealed_unflagged`` (cheating deals paid unaudited whose provider is
not jailed at the end).

Adversaries (issue 15's done-when; on by default, ``--no-adversaries`` drops them and deploys with
``epoch_blocks = 1`` as before). The market is deployed with ``epoch_blocks = 256`` (the production
setting: sortition weights fixed per epoch) and the bench mines past an epoch boundary after setup.
The cheaters, a sybil and a colluding requester are one adversary:

- a **grinding sybil** (anvil account 14): one more registered provider, staked to
  ``--sybil-share`` of the weight the cheater's deals are drawn over (at least sortition's member
  minimum). It gets no deals. Before every ``draw`` call it stakes or unbonds 1..50 base units at
  random, hoping to be seated on the cheater's audited deals (a stake move counts from the next
  epoch, whose beacon is unknown, so no computed move could do better). Seated on a cheater's deal
  it commits the cheater's made-up claim without running anything; seated elsewhere it audits
  honestly. ``sybil_seated_on_own_provider`` counts first-auditor draws on the cheater's audited
  deals that seated it, next to the expected count (draws x its weight share).
- a **colluding requester** (anvil account 15): every second deal the round-robin gives a cheater
  is its deal instead of a regular requester's. It draws its seeds (withholding them would get the
  deal audited by default), never pushes jobs and never challenges.
- a **withheld job**: the cheater does not serve the colluding requester's jobs to auditors and the
  requester does not push them, so the bench's honest auditors (seat 0 and the committee) do not
  have the job: each commits and reveals the *job unavailable* claim (result_root 0, fuel 0,
  SPEC §14.4) instead of re-executing; when they are the majority the provider fails.

``honest_stake_lost`` counts every slash, forfeit and no-show penalty of a provider that never
cheated (the sybil excluded); ``cheater_net_profit`` adds the sybil's and the colluding requester's
change in holdings to the cheating providers' (see ``ADVERSARY_FORMULA``);
``wrong_results_called_verified`` counts cheating deals whose audit PASSED with a non-zero claim.

Prints JSON lines: ``kind="setup"``, ``kind="progress"`` every ~50 jobs, one line per figure, and
a final summary object as the last line (``verification_overhead_pct``, ``cheats_caught_pct``,
``cheater_net_profit``, ``honest_stake_lost``, ``wrong_results_called_verified``,
``gas_per_job_unaudited``, ``gas_per_job_audited``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from mercato.chain import Devnet, DevnetParams, MarketClient, connect, increase_time
from mercato.chain.api import AUDIT_COMMIT, AUDIT_FAILED, AUDIT_PASSED, AUDIT_REVEAL, AUDIT_VOID, AuditState
from mercato.chain.deployment import ANVIL_MNEMONIC, fund
from mercato.chain.devnet import FUND_AMOUNT
from mercato.chain.market import MAX_BATCH, chunks
from mercato.config import RetryPolicy, Settings
from mercato.domain.deals import AUDITED, CLEARED, Deal, Terms, job_leaf
from mercato.domain.jobs import FUEL_PER_CU, JobSpec, Limits, Receipt
from mercato.matching import min_collateral_for
from mercato.runtimes import BlobStore, Runtime, Workspace, runtime_for
from mercato.verification.bond import BondParams, min_stake
from mercato.verification.lottery import (UNAVAILABLE_ROOT, is_audited, lottery_value, new_seed, seal_of,
                                          seed_hash)
from mercato.verification.params import catch_probability, cheater_profit

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "examples" / "wasm" / "montecarlo.wasm"
SAMPLES = 20_000
PRICE_PER_CU = 100_000  # 0.1 mUSD per CU
LIMITS = Limits(fuel=FUEL_PER_CU)  # a 1-CU cap: montecarlo with 20,000 samples uses ~1.34e6 fuel
TARGET_OVERHEAD_PCT = 5.0
PHASES = {AUDIT_PASSED: "passed", AUDIT_FAILED: "failed", AUDIT_VOID: "void"}
ZERO32 = bytes(32)
EPOCH_BLOCKS = 256  # the production setting (SPEC §14.4): stake moves count from the next epoch
# anvil's accounts 14 and 15 (DEV_ACCOUNT_COUNT = 16 have ether; the bench mints them tokens)
SYBIL_INDEX, COLLUDER_INDEX = 14, 15
SYBIL_MIN_STAKE = 10**7 + 10**5  # sortition's member minimum (10**7) and room for its 1..50-unit moves
CHEAT_FORMULA = ("net_profit = payments_received (prices of its finalized deals, all of them skipped work, "
                 "so their work cost is 0) + audit_income (audit fees and bounties credited to it as an "
                 "auditor) - audit_work_cost (each of its honest audit re-executions valued at the job "
                 "price) - stake_forfeited - no_show_penalties. An honest provider charging its cost "
                 "(price = cost of the work) earns 0 on the same deals, so this is also the profit of "
                 "cheating relative to working honestly.")
ADVERSARY_FORMULA = (" With --adversaries, cheater_net_profit also adds the sybil's net (the change in everything "
                     "it holds: tokens, escrow, stake, unbonding, earnings; minus its honest audit re-executions "
                     "valued at the job price) and the colluding requester's (the change in its tokens and escrow): "
                     "they are one adversary, so the prices the requester paid the cheater cancel out.")


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Job:
    """One job = one single-job deal, from its terms to its outcome."""

    index: int
    spec: JobSpec
    requester: Actor
    provider: Actor
    seed: bytes  # the requester's secret lottery seed
    deal: Deal | None = None
    result_root: bytes = b""  # what the provider committed to (made up by a cheater)
    fuel: int = 0
    salt: bytes = b""
    audited: bool = False
    outcome: str = ""  # cleared | passed | failed | void
    dispute: bool = False
    claim: bytes = b""  # the winning claim once its audit resolved (zero: passed unaudited)
    withheld: bool = False  # the colluding requester's deal: nobody gives its job to the auditors
    gas: dict[str, int] = field(default_factory=dict)  # open, draw, audit, finalize (shares for batches)

    @property
    def cheated(self) -> bool:
        return self.provider.cheater

    @property
    def deal_id(self) -> bytes:
        assert self.deal is not None
        return self.deal.deal_id


@dataclass(slots=True)
class Actor:
    """A dev account talking to the contract: a requester, or a provider that is also an auditor."""

    name: str
    client: MarketClient
    cheater: bool = False
    sybil: bool = False  # the cheater's extra staked provider: gets no deals, backs the cheater as auditor
    colluder: bool = False  # the requester working with the cheater: never pushes jobs, never challenges
    nonces: dict[int, int] = field(default_factory=dict)  # lane -> last nonce
    audit_runs: int = 0  # audits it re-executed (first auditor or committee seat)

    @property
    def address(self) -> str:
        return self.client.address


class Sandbox:
    """The wasm runtime every actor uses; counts fuel and wall time by purpose."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.blobs = BlobStore(tmp / "blobs")
        self.runtime: Runtime = runtime_for("wasm", self.blobs, cache_dir=tmp / "cache")
        self.workload = self.blobs.put(WORKLOAD.read_bytes())
        self.fuel = {"useful": 0, "verification": 0}
        self.wall_s = {"useful": 0.0, "verification": 0.0}
        self.runs = {"useful": 0, "verification": 0}

    def spec(self, index: int) -> JobSpec:
        seed = hashlib.sha256(f"mercato-bench-verification-{index}".encode()).digest()
        return JobSpec(runtime="wasm", workload=self.workload, args=(str(SAMPLES), str(index + 1)),
                       limits=LIMITS, seed=seed)

    def run(self, spec: JobSpec, purpose: str) -> Receipt:
        ws = Workspace.create(self.tmp)
        start = time.perf_counter()
        try:
            receipt = self.runtime.run(spec, ws)
        finally:
            ws.remove()
        self.wall_s[purpose] += time.perf_counter() - start
        if receipt.outcome.value != "ok":
            raise SystemExit(f"the sandbox run failed: {receipt.outcome.value} {receipt.stderr!r}")
        self.fuel[purpose] += receipt.fuel_used
        self.runs[purpose] += 1
        return receipt


class Bench:
    def __init__(self, args: argparse.Namespace, w3: Any, clients: dict[str, MarketClient], sandbox: Sandbox) -> None:
        self.args = args
        self.w3 = w3
        self.sandbox = sandbox
        self.requesters = [Actor(n, c) for n, c in clients.items() if n.startswith("requester")]
        names = [n for n in clients if n.startswith("provider")]
        cheaters = set(names[:args.cheaters])
        self.providers = [Actor(n, clients[n], cheater=n in cheaters) for n in names]
        # the adversaries of issue 15 (one adversary with the cheaters): its sybil and its requester
        self.sybil = Actor("sybil", clients["sybil"], sybil=True) if "sybil" in clients else None
        self.colluder = Actor("colluder", clients["colluder"], colluder=True) if "colluder" in clients else None
        self.by_address = {a.address.lower(): a for a in self.providers + ([self.sybil] if self.sybil else [])}
        self.cheater_turns = 0  # deals the round-robin gave a cheater (every second one is the colluder's)
        self.assets_start: dict[str, int] = {}
        self.sybil_stake = 0
        self.sybil_moves = {"stake": 0, "unbond": 0, "units": 0}
        self.seat0_draws: set[tuple[bytes, int]] = set()  # (deal, round) first-auditor draws
        self.seat0_sybil: set[tuple[bytes, int]] = set()
        self.unavailable_reports = 0
        self.sybil_jailed = False
        self.sybil_backed = 0  # seats in which the sybil committed the cheater's claim
        self.any = self.requesters[0].client
        self.params = self.any.parameters()
        self.price = PRICE_PER_CU * math.ceil(LIMITS.fuel / FUEL_PER_CU)
        self.collateral = math.floor(self.price * args.collateral_factor) if args.collateral_factor is not None \
            else min_collateral_for(self.price)
        self.jobs: list[Job] = []
        self.rr = 0  # round-robin position over the providers
        self.tx_count = 0
        self.extra_gas: dict[str, int] = {"advance": 0}
        self.cheater_stake: dict[str, int] = {}
        self.started = time.perf_counter()

    # setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        bond = BondParams(self.params["audit_floor_bps"], self.params["collusion_bps"], self.params["bond_lambda_bps"])
        honest = len(self.providers) - self.args.cheaters
        n_max = math.ceil(self.args.wave / max(honest, 1))  # open deals per provider, at most
        by_rule = min_stake(n_max, n_max * self.price, bond)
        by_collateral = n_max * self.collateral
        # free stake kept for audit duty: a drawn seat locks a bond of the audit fee (= price here) until it
        # commits, and a provider that cannot is passed over (SPEC §14.4); without it, fully loaded honest
        # providers leave their seats to whoever keeps free stake (the sybil took 14 of 76 at a 5 % share)
        reserve = self.args.audit_reserve * self.price
        self.stake = max(by_rule, by_collateral) + reserve
        for a in (self.sybil, self.colluder):
            if a is not None:
                self.assets_start[a.name] = self.assets(a)
        for p in self.providers:
            p.client.register(f"http://127.0.0.1:9/{p.name}", b"\x01" * 32, b"\x02" * 32)
            p.client.stake(self.stake)
            if p.cheater:
                self.cheater_stake[p.address] = self.stake
        if self.sybil is not None:  # share f of the weight other than the cheater's: s / (s + honest stakes)
            others = self.stake * honest
            f = self.args.sybil_share
            self.sybil_stake = max(SYBIL_MIN_STAKE, round(f / (1 - f) * others))
            self.sybil.client.register("http://127.0.0.1:9/sybil", b"\x01" * 32, b"\x02" * 32)
            self.sybil.client.stake(self.sybil_stake)
        per_requester = math.ceil(self.args.jobs / len(self.requesters)) + self.args.wave
        for r in self.all_requesters():
            r.client.deposit(per_requester * (self.price + self.price))
        if self.args.adversaries:  # mine past an epoch boundary: the stakes above count from the new epoch
            head = self.any.block_number()
            boundary = (head // EPOCH_BLOCKS + 1) * EPOCH_BLOCKS
            self.w3.provider.make_request("anvil_mine", [hex(boundary - head + 1)])
        emit(kind="setup", jobs=self.args.jobs, providers=len(self.providers), cheaters=self.args.cheaters,
             requesters=len(self.requesters), wave=self.args.wave, price=self.price, collateral=self.collateral,
             audit_bps=self.params["audit_floor_bps"], audit_fee=self.price, stake_per_provider=self.stake,
             stake_bond_rule=by_rule, stake_for_collateral=by_collateral, audit_reserve=reserve,
             open_deals_per_provider_max=n_max,
             workload=WORKLOAD.name, samples=SAMPLES, params=self.params,
             cheaters_addresses=[p.address for p in self.providers if p.cheater],
             adversaries=self.args.adversaries, epoch_blocks=EPOCH_BLOCKS if self.args.adversaries else 1,
             sybil=self.sybil.address if self.sybil else None, sybil_stake=self.sybil_stake,
             sybil_expected_share=round(self.sybil_share(), 4) if self.sybil else None,
             colluding_requester=self.colluder.address if self.colluder else None)

    def all_requesters(self) -> list[Actor]:
        return self.requesters + ([self.colluder] if self.colluder else [])

    def assets(self, a: Actor) -> int:
        """Everything ``a`` holds: tokens, escrow, and as a provider stake, unbonding and earnings."""
        total = a.client.token_balance(a.address) + a.client.balance_of(a.address)
        info = a.client.provider_info(a.address)
        return total + (info.stake + info.unbonding + info.earnings if info.registered else 0)

    def sybil_share(self) -> float:
        """The sybil's share of the sortition weight a cheater's deal is drawn over (its own cut out)."""
        honest = len(self.providers) - self.args.cheaters
        return self.sybil_stake / (self.sybil_stake + self.stake * (honest + self.args.cheaters - 1))

    def grind(self) -> None:
        """The sybil moves its stake by 1..50 base units before a draw, hoping to land on the cheater's
        audited deals. With weights fixed per epoch (epoch_blocks = 256) the move counts from the next
        epoch, whose beacon is unknown now, so no move can be chosen to steer a draw: random ones are as
        good as any a grinder could compute."""
        if self.sybil is None or self.sybil_jailed:
            return
        if self.sybil.client.jailed(self.sybil.address):  # it backed a cheat in a dispute and lost: it is done
            self.sybil_jailed = True
            return
        units = secrets.randbelow(50) + 1
        if secrets.randbelow(2):
            self.sybil.client.stake(units)
            self.sybil_moves["stake"] += 1
        else:
            self.sybil.client.unbond(units)
            self.sybil_moves["unbond"] += 1
        self.sybil_moves["units"] += units
        self.tx_count += 1

    # one wave ---------------------------------------------------------------------------
    def eligible(self) -> list[Actor]:
        return [p for p in self.providers if not p.client.jailed(p.address)]

    def open_wave(self, first: int, count: int) -> list[Job]:
        eligible = self.eligible()
        lanes: dict[str, int] = {}
        wave: list[Job] = []
        for i in range(first, first + count):
            provider = eligible[self.rr % len(eligible)]
            self.rr += 1
            requester = self.requesters[(i - first) * len(self.requesters) // count]
            if provider.cheater and self.colluder is not None:
                self.cheater_turns += 1
                if self.cheater_turns % 2 == 0:  # every second deal of a cheater is the colluding requester's
                    requester = self.colluder
            lane = lanes.get(provider.name, 0)
            lanes[provider.name] = lane + 1
            job = Job(i, self.sandbox.spec(i), requester, provider, new_seed(), withheld=requester.colluder)
            self.open(job, lane)
            wave.append(job)
            self.jobs.append(job)
            if (i + 1) % 50 == 0:
                self.progress(i + 1)
        return wave

    def open(self, job: Job, lane: int) -> None:
        p, r = job.provider, job.requester
        nonce = p.nonces[lane] = p.nonces.get(lane, 0) + 1
        spec_hash = bytes.fromhex(job.spec.spec_hash().removeprefix("sha256:"))
        now = r.client.now()
        terms = Terms(r.address, p.address, lane, nonce, job_leaf(spec_hash, self.price, self.collateral), 1,
                      self.price, self.collateral, now + 3600, now + 600, seed_hash(job.seed),
                      self.params["audit_floor_bps"], self.price)
        acceptance = r.client.sign_acceptance(terms)  # the requester accepts: the provider may start
        job.salt = secrets.token_bytes(32)
        if p.cheater:  # skips the work and makes up a result it can stand by (it reveals the same)
            job.result_root, job.fuel = secrets.token_bytes(32), 1_336_000
        else:
            receipt = self.sandbox.run(job.spec, "useful")
            job.result_root, job.fuel = bytes.fromhex(receipt.result_root), receipt.fuel_used
        seal = seal_of(p.address, terms.deal_id, job.result_root, job.fuel, job.salt)
        dt = p.client.open_and_commit(terms, acceptance, seal)
        self.tx_count += 1
        job.deal = dt.deal
        job.gas["open"] = dt.tx.gas_used
        job.gas["first_use_lane"] = int(nonce == 1)

    def draw_wave(self, wave: list[Job]) -> None:
        k = self.params["beacon_delay"]
        last = max(j.deal.committed_block for j in wave if j.deal is not None)
        head = self.any.block_number()
        if head <= last + k:
            self.w3.provider.make_request("anvil_mine", [hex(last + k + 1 - head)])
        beacons: dict[int, bytes] = {}
        for job in wave:
            assert job.deal is not None
            b = job.deal.committed_block + k
            if b not in beacons:
                beacons[b] = bytes(self.w3.eth.get_block(b)["hash"])
            job.audited = is_audited(lottery_value(job.seed, beacons[b], job.deal_id), job.deal.terms.audit_bps)
        for r in self.all_requesters():
            mine = [j for j in wave if j.requester is r]
            for group in ([j for j in mine if not j.audited], [j for j in mine if j.audited]):
                for batch in chunks(group, MAX_BATCH):
                    batch = list(batch)
                    self.grind()
                    drawn = r.client.draw([j.deal for j in batch], [j.seed for j in batch])  # type: ignore[misc]
                    self.tx_count += 1
                    gas = drawn[0].tx.gas_used
                    for job, d in zip(batch, drawn, strict=True):
                        if (d.deal.status == AUDITED) != job.audited:
                            raise SystemExit(f"the contract's lottery disagrees with verification.lottery for "
                                             f"deal 0x{job.deal_id.hex()}")
                        job.deal = d.deal
                        job.gas["draw"] = round(gas / len(batch))
                        job.gas["draw_batch"] = len(batch)

    def run_audits(self, wave: list[Job]) -> None:
        pending = {j.deal_id: j for j in wave if j.audited}
        done_exec: set[tuple[bytes, str, int]] = set()  # (deal, auditor, round) re-executions made
        # the seal material of each auditor: (deal, auditor) -> (root, fuel, salt)
        material: dict[tuple[bytes, str], tuple[bytes, int, bytes]] = {}
        deadline = time.monotonic() + 600
        while pending:
            txs = self.tx_count
            if time.monotonic() > deadline:
                raise SystemExit(f"audits still open after 600 s: {[f'0x{d.hex()}' for d in pending]}")
            for deal_id, job in list(pending.items()):
                job.gas.setdefault("audit", 0)
                a = self.any.audit(deal_id)
                if a.resolved:
                    job.outcome, job.dispute, job.claim = PHASES[a.phase], a.dispute, a.claim
                    del pending[deal_id]
                    continue
                if a.deadline and self.any.now() > a.deadline:  # a silent party: move on
                    tx = self.any.advance(deal_id)
                    job.gas["audit"] += tx.gas_used
                    self.extra_gas["advance"] += tx.gas_used
                    self.tx_count += 1
                    continue
                if a.phase == AUDIT_COMMIT:
                    self._commit_seats(job, a, done_exec, material)
                elif a.phase == AUDIT_REVEAL:
                    self._reveal_all(job, a, material)
            if pending and self.tx_count == txs:
                time.sleep(0.2)  # waiting on a phase deadline: the chain mines a block every second

    def _commit_seats(self, job: Job, a: AuditState, done: set[tuple[bytes, str, int]],
                      material: dict[tuple[bytes, str], tuple[bytes, int, bytes]]) -> None:
        for seat, addr in enumerate(a.seats):
            if not a.acts_now(seat) or a.committed(seat):
                continue
            auditor = self.by_address[addr.lower()]
            key = (job.deal_id, auditor.address, a.round if seat == 0 else 0)
            if key in done:
                continue
            done.add(key)
            if seat == 0:
                self.seat0_draws.add((job.deal_id, a.round))
                if auditor.sybil:
                    self.seat0_sybil.add((job.deal_id, a.round))
            salt = secrets.token_bytes(32)
            if auditor.sybil and job.cheated:  # the cheater's own: it backs the made-up claim, runs nothing
                root, fuel = job.result_root, job.fuel
                self.sybil_backed += 1
            elif job.withheld:  # nobody gives it the job: report it unavailable (SPEC §14.4), run nothing
                root, fuel = UNAVAILABLE_ROOT, 0
                self.unavailable_reports += 1
            else:
                receipt = self.sandbox.run(job.spec, "verification")  # a blind re-execution
                auditor.audit_runs += 1
                root, fuel = bytes.fromhex(receipt.result_root), receipt.fuel_used
            material[(job.deal_id, auditor.address)] = (root, fuel, salt)
            tx = auditor.client.commit_audit(job.deal_id, seal_of(auditor.address, job.deal_id, root, fuel, salt))
            job.gas["audit"] += tx.gas_used
            self.tx_count += 1

    def _reveal_all(self, job: Job, a: AuditState,
                    material: dict[tuple[bytes, str], tuple[bytes, int, bytes]]) -> None:
        if not a.dispute and not a.provider_revealed:
            tx = job.provider.client.reveal(job.deal_id, job.result_root, job.fuel, job.salt)
            job.gas["audit"] += tx.gas_used
            self.tx_count += 1
        for seat, addr in enumerate(a.seats):
            if a.acts_now(seat) and a.committed(seat) and not a.revealed(seat):
                auditor = self.by_address[addr.lower()]
                root, fuel, salt = material[(job.deal_id, auditor.address)]
                tx = auditor.client.reveal(job.deal_id, root, fuel, salt)
                job.gas["audit"] += tx.gas_used
                self.tx_count += 1

    def finalize_wave(self, wave: list[Job]) -> None:
        for job in wave:
            if not job.audited:
                job.outcome = "cleared"
        increase_time(self.w3, self.params["challenge_window"] + 1)
        for outcome in ("cleared", "passed"):
            group = [j for j in wave if j.outcome == outcome]
            for batch in chunks(group, MAX_BATCH):
                tx = self.any.finalize([j.deal for j in batch])  # type: ignore[misc]
                self.tx_count += 1
                for job in batch:
                    job.gas["finalize"] = round(tx.gas_used / len(batch))
                    job.gas["finalize_batch"] = len(batch)
        # jail means stop (SPEC §14.5): a cleared deal of a provider jailed by now refunds its price
        jailed = {p.address for p in self.providers if p.cheater and self.any.jailed(p.address)}
        for job in wave:
            if job.outcome == "cleared" and job.provider.address in jailed:
                job.outcome = "refunded"
        settled = {j.outcome for j in wave}
        if not settled <= {"cleared", "passed", "failed", "void", "refunded"}:
            raise SystemExit(f"unsettled deals in the wave: {settled}")

    def progress(self, opened: int) -> None:
        done = [j for j in self.jobs if j.outcome]
        audited = [j for j in self.jobs if j.audited]
        emit(kind="progress", jobs_opened=opened, jobs_settled=len(done), audited=len(audited),
             disputes=sum(j.dispute for j in done), failed=sum(j.outcome == "failed" for j in done),
             cheating_deals=sum(j.cheated for j in self.jobs),
             cheaters_jailed=sum(self.any.jailed(p.address) for p in self.providers if p.cheater),
             useful_fuel=self.sandbox.fuel["useful"], verification_fuel=self.sandbox.fuel["verification"],
             txs=self.tx_count, elapsed_s=round(time.perf_counter() - self.started, 1))

    def run(self) -> None:
        first = 0
        while first < self.args.jobs:
            count = min(self.args.wave, self.args.jobs - first)
            wave = self.open_wave(first, count)
            self.draw_wave(wave)
            self.run_audits(wave)
            self.finalize_wave(wave)
            first += count

    # figures ----------------------------------------------------------------------------
    def events(self, name: str, **filters: Any) -> list[dict[str, Any]]:
        logs = self.any.event_logs(name, argument_filters=filters or None)  # the Market's or the court's
        return [dict(log["args"]) for log in logs]

    def report(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        sb = self.sandbox
        overhead = 100 * sb.fuel["verification"] / sb.fuel["useful"]
        audited = [j for j in self.jobs if j.audited]
        disputes = [j for j in audited if j.dispute]
        emit(kind="verification_overhead", verification_overhead_pct=round(overhead, 3), target_pct=TARGET_OVERHEAD_PCT,
             useful_fuel=sb.fuel["useful"], verification_fuel=sb.fuel["verification"],
             useful_runs=sb.runs["useful"], verification_runs=sb.runs["verification"],
             useful_sandbox_s=round(sb.wall_s["useful"], 3), verification_sandbox_s=round(sb.wall_s["verification"], 3),
             verification_wall_pct=round(100 * sb.wall_s["verification"] / sb.wall_s["useful"], 3),
             audited_deals=len(audited), audited_pct=round(100 * len(audited) / len(self.jobs), 3),
             disputes=len(disputes), expected_pct_no_disputes=self.params["audit_floor_bps"] / 100,
             note="useful = the providers' honest executions of the jobs (the cheater's skipped jobs add none); "
                  "verification = every audit re-execution (first auditors and committee members)")

        cheats = [j for j in self.jobs if j.cheated]
        caught = [j for j in cheats if j.outcome == "failed"]
        cheats_caught_pct = 100 * len(caught) / len(cheats) if cheats else 0.0
        cheaters = [p for p in self.providers if p.cheater]
        jailed = {p.address: self.any.jailed(p.address) for p in cheaters}
        emit(kind="cheats", cheats_caught_pct=round(cheats_caught_pct, 3), cheating_deals=len(cheats),
             cheating_deals_failed=len(caught), cheating_deals_audited=sum(j.audited for j in cheats),
             cheating_deals_finalized=sum(j.outcome in ("cleared", "passed") for j in cheats),
             cheaters=len(cheaters), cheaters_jailed=sum(jailed.values()),
             first_catch_at_cheat=next((i + 1 for i, j in enumerate(cheats) if j.outcome == "failed"), None),
             honest_deals_failed=sum(j.outcome == "failed" for j in self.jobs if not j.cheated),
             void=sum(j.outcome == "void" for j in self.jobs),
             per_deal_catch_probability_pct=self.params["audit_floor_bps"] / 100,
             refunded_after_jail=sum(j.outcome == "refunded" for j in cheats),
             note="a deal is audited with p = audit_bps; the first catch forfeits the cheater's whole stake and "
                  "unclaimed earnings and jails it, so it stops getting deals; its other open deals settle "
                  "without paying it unless an auditor upheld them (refunded)")

        # what users were told, and what honest parties lost (issue 15's figures)
        honest = [p for p in self.providers if not p.cheater]  # the sybil is not among self.providers
        lost_by: dict[str, int] = {}
        for p in honest:
            lost = sum(int(e["amount"]) for e in self.events("ProviderSlashed", provider=p.address))
            lost += sum(int(e["amount"]) for e in self.events("StakeForfeited", provider=p.address))
            lost += sum(int(e["penalty"]) for e in self.events("AuditorMissed", auditor=p.address))
            if lost:
                lost_by[p.name] = lost
        honest_lost = sum(lost_by.values())
        # the SDK says "audited" only for PASSED with a winning (non-zero) claim: a cheat that passed an audit so
        # is a wrong result a user was told was verified; one that cleared is "sealed", flagged once its provider
        # is jailed; PASSED with a zero claim is "unaudited" (nobody could be seated)
        called_verified = sum(j.outcome == "passed" and j.claim not in (b"", ZERO32) for j in cheats)
        unflagged = sum(j.outcome == "cleared" and not jailed[j.provider.address] for j in cheats)
        emit(kind="trust", honest_stake_lost=honest_lost, honest_stake_lost_by=lost_by,
             wrong_results_called_verified=called_verified,
             wrong_results_passed_unaudited=sum(j.outcome == "passed" and j.claim in (b"", ZERO32) for j in cheats),
             wrong_results_sealed_unflagged=unflagged,
             note="honest_stake_lost: slashes, forfeits and no-show penalties of providers that never cheated "
                  "(as providers or auditors); wrong_results_called_verified: cheating deals whose audit PASSED "
                  "with a non-zero winning claim (reported 'audited'); wrong_results_sealed_unflagged: cheating "
                  "deals paid unaudited whose provider is not jailed at the end (reported 'sealed' with no flag)")

        adv = self.adversaries(cheaters)
        if adv:
            emit(kind="adversaries", **adv)
        econ = self.cheater_economics(cheaters)
        econ["cheater_provider_net_profit"] = econ["cheater_net_profit"]
        econ["cheater_net_profit"] += sum(adv.get(k, {}).get("net", 0) for k in ("sybil", "colluding_requester"))
        emit(kind="cheater_economics", formula=CHEAT_FORMULA + ADVERSARY_FORMULA, **econ)

        gas = self.gas_figures()
        emit(kind="gas", **gas)

        summary = {
            "verification_overhead_pct": round(overhead, 3),
            "cheats_caught_pct": round(cheats_caught_pct, 3),
            "cheater_net_profit": econ["cheater_net_profit"],
            "gas_per_job_unaudited": gas["gas_per_job_unaudited"],
            "gas_per_job_audited": gas["gas_per_job_audited"],
            "target_overhead_pct": TARGET_OVERHEAD_PCT,
            "honest_stake_lost": honest_lost,
            "wrong_results_called_verified": called_verified,
            "wrong_results_sealed_unflagged": unflagged,
            "cheater_provider_net_profit": econ["cheater_provider_net_profit"],
            "sybil_net": adv.get("sybil", {}).get("net"),
            "colluding_requester_net": adv.get("colluding_requester", {}).get("net"),
            "sybil_seated_on_own_provider": adv.get("sybil_seated_on_own_provider"),
            "sybil_seated_on_own_provider_expected": adv.get("sybil_seated_on_own_provider_expected"),
            "cheater_seat0_draws": adv.get("cheater_seat0_draws"),
            "sybil_seat0_all": adv.get("sybil_seat0_all"),
            "sybil_seat0_all_expected": adv.get("sybil_seat0_all_expected"),
            "withheld_deals": adv.get("withheld_deals"),
            "withheld_deals_audited": adv.get("withheld_deals_audited"),
            "withheld_deals_failed": adv.get("withheld_deals_failed"),
            "unavailable_reports": adv.get("unavailable_reports"),
            "meets_targets": (overhead <= TARGET_OVERHEAD_PCT and econ["cheater_net_profit"] < 0
                              and honest_lost == 0 and called_verified == 0),
            "jobs": len(self.jobs),
            "providers": len(self.providers),
            "cheaters": len(cheaters),
            "audited_deals": len(audited),
            "disputes": len(disputes),
            "cheating_deals": len(cheats),
            "cheating_deals_failed": len(caught),
            "cheaters_jailed": sum(jailed.values()),
            "cheater_net_profit_musd": econ["cheater_net_profit_musd"],
            "cheater_expected_profit_per_cheat": econ["expected_profit_per_cheat"],
            "useful_fuel": sb.fuel["useful"],
            "verification_fuel": sb.fuel["verification"],
            "transactions": self.tx_count,
            "wall_s": round(wall, 1),
        }
        return summary

    def adversaries(self, cheaters: Sequence[Actor]) -> dict[str, Any]:
        """What the sybil and the colluding requester did and what they made."""
        if not self.args.adversaries:
            return {}
        out: dict[str, Any] = {}
        cheater_deals = {j.deal_id for j in self.jobs if j.cheated and j.audited}
        on_cheater = {k for k in self.seat0_draws if k[0] in cheater_deals}
        share = self.sybil_share()
        # over all first-auditor draws the sybil's share varies with the deal's provider; this uses the
        # cheater-cut share for the cheater's deals and the honest-cut share (one honest stake out) otherwise
        honest_cut = self.sybil_stake / (self.sybil_stake + self.stake * (len(self.providers) - 1))
        expected_all = len(on_cheater) * share + (len(self.seat0_draws) - len(on_cheater)) * honest_cut
        if self.sybil is not None:
            s = self.sybil
            info = s.client.provider_info(s.address)
            gain = self.assets(s) - self.assets_start[s.name]
            out["sybil"] = {"address": s.address, "stake_start": self.sybil_stake, "stake_end": info.stake,
                            "unbonding": info.unbonding, "jailed": s.client.jailed(s.address),
                            "audit_runs": s.audit_runs, "backed_cheater_seats": self.sybil_backed,
                            "moves": self.sybil_moves, "assets_change": gain,
                            "audit_work_cost": s.audit_runs * self.price,
                            "net": gain - s.audit_runs * self.price}
        if self.colluder is not None:
            c = self.colluder
            gain = self.assets(c) - self.assets_start[c.name]
            out["colluding_requester"] = {"address": c.address, "deals": sum(j.requester is c for j in self.jobs),
                                          "assets_change": gain, "net": gain}
        withheld = [j for j in self.jobs if j.withheld]
        out.update(
            sybil_seated_on_own_provider=len(on_cheater & self.seat0_sybil),
            sybil_seated_on_own_provider_expected=round(len(on_cheater) * share, 3),
            sybil_share_of_cheater_draws=round(share, 4), cheater_seat0_draws=len(on_cheater),
            sybil_seat0_all=len(self.seat0_sybil), sybil_seat0_all_expected=round(expected_all, 3),
            seat0_draws_all=len(self.seat0_draws),
            withheld_deals=len(withheld), withheld_deals_audited=sum(j.audited for j in withheld),
            withheld_deals_failed=sum(j.outcome == "failed" for j in withheld),
            unavailable_reports=self.unavailable_reports,
            note="sybil_seated_on_own_provider: first-auditor draws (deal, round) on the cheater's audited deals "
                 "that seated the sybil; expected = those draws x the sybil's weight share (the cheater's own cut "
                 "out). The sybil grinds (random 1..50-unit stake moves before every draw call); with "
                 "epoch_blocks = 256 they cannot steer a draw, so the rate should match the share. "
                 "withheld: the colluding requester's deals (all with a cheater); their auditors report the job "
                 "unavailable (root 0, fuel 0) unless the seat is the sybil")
        return out

    def cheater_economics(self, cheaters: Sequence[Actor]) -> dict[str, Any]:
        payments = income = work = forfeited = penalties = 0
        per: list[dict[str, Any]] = []
        for c in cheaters:
            paid = sum(j.deal.terms.price for j in self.jobs  # type: ignore[union-attr]
                       if j.provider is c and j.outcome in ("cleared", "passed"))
            volume = c.client.reputation(c.address).volume
            if paid != volume:
                raise SystemExit(f"{c.name}: finalized prices {paid} != on-chain volume {volume}")
            got = sum(int(e["amount"]) for e in self.events("BountyPaid", to=c.address))
            lost = sum(int(e["amount"]) for e in self.events("StakeForfeited", provider=c.address))
            missed = sum(int(e["penalty"]) for e in self.events("AuditorMissed", auditor=c.address))
            cost = c.audit_runs * self.price
            payments, income, work, forfeited, penalties = (payments + paid, income + got, work + cost,
                                                             forfeited + lost, penalties + missed)
            info = c.client.provider_info(c.address)
            per.append({"name": c.name, "address": c.address, "deals": sum(j.provider is c for j in self.jobs),
                        "payments_received": paid, "audit_income": got, "audit_runs": c.audit_runs,
                        "stake_forfeited": lost, "stake_left": info.stake, "jailed": c.client.jailed(c.address),
                        "unclaimed_earnings": info.earnings})
        net = payments + income - work - forfeited - penalties
        n_max = math.ceil(self.args.wave / max(len(self.providers) - len(cheaters), 1))
        expected = cheater_profit(price=self.price, bond=self.stake, audit_bps=self.params["audit_floor_bps"],
                                  collusion_bps=self.params["collusion_bps"], cheats=n_max)
        return {
            "cheater_net_profit": net,
            "cheater_net_profit_musd": round(net / 10**6, 6),
            "payments_received": payments,
            "audit_income": income,
            "audit_work_cost": work,
            "stake_forfeited": forfeited,
            "no_show_penalties": penalties,
            "expected_profit_per_cheat": round(float(expected)),
            "expected_profit_per_cheat_note": (
                f"verification.params.cheater_profit(price, bond=stake, p=floor, d=collusion_bps, "
                f"cheats={n_max} in flight): C - p*d*R - (1-(1-p*d)^k)*B/k"),
            "catch_probability_per_wave_honest_auditors": round(float(catch_probability(
                self.params["audit_floor_bps"], 10_000, n_max)), 4),
            "cheaters": per,
        }

    def gas_figures(self) -> dict[str, Any]:
        def total(j: Job) -> int:
            return j.gas.get("open", 0) + j.gas.get("draw", 0) + j.gas.get("audit", 0) + j.gas.get("finalize", 0)

        unaudited = [j for j in self.jobs if not j.audited]
        audited = [j for j in self.jobs if j.audited]
        steady = [j for j in unaudited if not j.gas.get("first_use_lane")]
        passed = [j for j in audited if j.outcome == "passed" and not j.dispute]
        disputed = [j for j in audited if j.dispute]

        def mean(jobs: list[Job], key: str | None = None) -> int | None:
            if not jobs:
                return None
            return round(statistics.fmean(total(j) if key is None else j.gas.get(key, 0) for j in jobs))

        return {
            "gas_per_job_unaudited": mean(unaudited),
            "gas_per_job_audited": mean(audited),
            "gas_per_job_unaudited_steady_lane": mean(steady),
            "gas_per_job_audited_passed": mean(passed),
            "gas_per_job_audited_disputed": mean(disputed),
            "unaudited_parts": {k: mean(unaudited, k) for k in ("open", "draw", "finalize")},
            "audited_parts": {k: mean(audited, k) for k in ("open", "draw", "audit", "finalize")},
            "draw_batch_mean": {"unaudited": round(statistics.fmean(j.gas["draw_batch"] for j in unaudited), 2)
                                if unaudited else None,
                                "audited": round(statistics.fmean(j.gas["draw_batch"] for j in audited), 2)
                                if audited else None},
            "finalize_batch_mean_unaudited": round(statistics.fmean(j.gas["finalize_batch"] for j in unaudited), 2)
            if unaudited else None,
            "advance_gas_total": self.extra_gas["advance"],
            "note": "receipt gasUsed: open_and_commit + the deal's share of its draw call + its audit calls "
                    "(commit_audit, reveal, advance) + its share of its finalize call; the requester predicts "
                    "the lottery (it knows its seeds) and draws audited deals in their own calls, and cleared "
                    "and passed deals are finalized in separate calls, so each path's gas is measured",
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000, help="jobs (single-job deals) to run, >= 500 for the issue")
    ap.add_argument("--cheaters", type=int, default=1, help="cheating providers among the 10")
    ap.add_argument("--wave", type=int, default=96, help="deals opened before each draw/audit/finalize round")
    ap.add_argument("--audit-period", type=int, default=20, help="seconds per audit phase (the devnet default)")
    ap.add_argument("--audit-reserve", type=int, default=8,
                    help="audit fees' worth of free stake each provider keeps for seat bonds (default 8; 0: none)")
    ap.add_argument("--collateral-factor", type=float, default=None,
                    help="collateral = price x factor (default: the SDK's min_collateral_for(price), 19 x)")
    ap.add_argument("--adversaries", action=argparse.BooleanOptionalAction, default=True,
                    help="add issue 15's adversaries: a grinding sybil, a colluding requester and withheld jobs "
                         f"(and deploy with epoch_blocks = {EPOCH_BLOCKS})")
    ap.add_argument("--sybil-share", type=float, default=0.05,
                    help="the sybil's share of the sortition weight over the cheater's deals (default 0.05; "
                         "never below the member minimum stake, the setup line prints the share it got)")
    args = ap.parse_args()
    if not 0 < args.sybil_share < 0.5:
        raise SystemExit("--sybil-share must be in (0, 0.5)")
    if not 0 <= args.cheaters < 10:
        raise SystemExit("--cheaters must be 0..9")
    if args.wave < 1 or args.wave > 150:
        raise SystemExit("--wave must be 1..150 (the draw window is 200 blocks and every open mines one)")
    with tempfile.TemporaryDirectory(prefix="mercato-verify-") as tmp:
        home = Path(tmp)
        # transaction ledgers under this run's home, not ./.mercato: two runs (or a test run) never share one
        os.environ["MERCATO_HOME"] = str(home)
        params = DevnetParams(audit_period=args.audit_period, epoch_blocks=EPOCH_BLOCKS if args.adversaries else 1)
        net = Devnet(Settings(home=home, devnet_port=free_port(), rpc_url=""), params)
        try:
            dep = net.start().deployment
            assert dep is not None
            w3 = connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
            base = MarketClient.from_deployment(w3, dep, dep.keys["requester1"])
            names = [f"requester{i}" for i in (1, 2, 3)] + [f"provider{i}" for i in range(1, 11)]
            clients = {n: base if n == "requester1" else base.as_account(dep.keys[n]) for n in names}
            if args.adversaries:  # two more accounts of anvil's mnemonic (they have ether), given tokens here
                Account.enable_unaudited_hdwallet_features()
                extra = {n: Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
                         for n, i in (("sybil", SYBIL_INDEX), ("colluder", COLLUDER_INDEX))}
                fund(w3, dep, dep.keys["deployer"], {n: a.address for n, a in extra.items()}, FUND_AMOUNT)
                clients |= {n: base.as_account(a.key.to_0x_hex()) for n, a in extra.items()}
            bench = Bench(args, w3, clients, Sandbox(home))
            bench.setup()
            bench.run()
            summary = bench.report()
        finally:
            net.stop()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
