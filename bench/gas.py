"""Gas of every Market operation, measured from receipts (gasUsed: intrinsic + calldata + execution).

Starts its own anvil on a free port with a throw-away state dir, deploys, and prints one JSON
object per measurement; the last line is a summary object. Run: ``python bench/gas.py``.

Every committed deal now goes through the audit lottery (docs/SPEC.md §14), so a lifecycle is
open_and_commit + draw + finalize. Deals ask for the market's floor (3 %). The unaudited figures
are measured on unaudited deals only: once a deal's beacon block is mined the bench computes its
lottery (it knows the seed), draws and finalizes the deals the lottery clears in the measured
transactions, and audits the others for real (a second registered provider re-executes, both
reveal) in separate, unmeasured ones; a single-deal path the lottery audits is measured again on
the next deal. ``audited_*`` figures force an audit (audit_bps = 10000).

Targets: a batch of 100 jobs <= 30,000 per job. (The single-deal 90,000 target of the first
milestone predates the lottery's draw transaction; the figure is reported against it.)
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from eth_utils import keccak

from mercato.chain import MAX_BATCH, Devnet, MarketClient, connect, increase_time
from mercato.chain.market import chunks
from mercato.config import RetryPolicy, Settings
from mercato.domain.deals import AUDITED, CLEARED, Deal, Terms, job_leaf, jobs_root
from mercato.verification.lottery import is_audited, lottery_value, seal_of

PRICE = 2 * 10**6
COLLATERAL = 38 * 10**6
FEE = 2 * 10**5
SEED = b"\x5d" * 32
ROOT, FUEL, SALT = b"\x11" * 32, 123_456, b"\x22" * 32
FLOOR_BPS = 300
TARGET_SINGLE = 90_000
TARGET_BATCH_100 = 30_000


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


class Bench:
    """A requester and a provider on a fresh devnet, with lane/nonce bookkeeping."""

    def __init__(self, requester: MarketClient, provider: MarketClient, auditor: MarketClient,
                 advance: Callable[[int], None], blockhash: Callable[[int], bytes]) -> None:
        self.r, self.p, self.a, self.advance, self.blockhash = requester, provider, auditor, advance, blockhash
        self.nonces: dict[int, int] = {}
        self.audits: list[dict[str, int]] = []  # gas of each audit that happened
        self.beacon_delay = requester.parameters()["beacon_delay"]

    def terms(self, lane: int, jobs: int = 1, deadline: int = 3600, audit_bps: int = FLOOR_BPS) -> Terms:
        nonce = self.nonces[lane] = self.nonces.get(lane, 0) + 1
        leaves = [job_leaf((lane * 1000 + i).to_bytes(32, "big"), PRICE, COLLATERAL) for i in range(jobs)]
        now = self.r.now()
        return Terms(self.r.address, self.p.address, lane, nonce, jobs_root(leaves), jobs,
                     PRICE * jobs, COLLATERAL * jobs, now + deadline, now + min(deadline, 600),
                     keccak(SEED), audit_bps, FEE)

    def seal(self, t: Terms) -> bytes:
        return seal_of(self.p.address, t.deal_id, ROOT, FUEL, SALT)

    def accept(self, lane: int, jobs: int = 1, audit_bps: int = FLOOR_BPS) -> tuple[Deal, int]:
        """open_and_commit by the provider with the requester's acceptance: (deal, gas)."""
        t = self.terms(lane, jobs, audit_bps=audit_bps)
        dt = self.p.open_and_commit(t, self.r.sign_acceptance(t), self.seal(t))
        return dt.deal, dt.tx.gas_used

    def audited(self, deal: Deal) -> bool:
        """What the lottery will say of ``deal``, once its beacon block is mined (we hold the seed)."""
        beacon = self.blockhash(deal.committed_block + self.beacon_delay)
        return is_audited(lottery_value(SEED, beacon, deal.deal_id), deal.terms.audit_bps)

    def draw(self, deals: list[Deal]) -> tuple[list[Deal], int]:
        """Mine past the beacon, run the lottery in contract-sized calls: (deals as drawn, gas). The
        gas is of the calls drawing deals the lottery clears (or, when every deal is audited, of
        those); deals it audits are drawn in calls of their own, not counted."""
        self.advance(0)
        self.advance(0)
        self.advance(0)
        predicted = {d.deal_id: self.audited(d) for d in deals}  # one block read per deal
        audited = [d for d in deals if predicted[d.deal_id]]
        measured = [d for d in deals if not predicted[d.deal_id]] or audited
        drawn, gas = [], 0
        for group in (measured, [d for d in audited if d not in measured]):
            for batch in chunks(group):
                done = self.p.draw(batch, [SEED] * len(batch))
                drawn += [d.deal for d in done]
                if group is measured:
                    gas += done[0].tx.gas_used
        for d in drawn:
            assert (d.status == AUDITED) == predicted[d.deal_id], "the bench's lottery agrees with the chain's"
        return drawn, gas

    def audit(self, deal: Deal) -> dict[str, int]:
        """An audit the lottery asked for: the only other registered provider re-executes,
        commits, both reveal (same claim: it passes). Gas per step."""
        did = deal.deal_id
        gas = {"commit_audit": self.a.commit_audit(did, seal_of(self.a.address, did, ROOT, FUEL, SALT)).gas_used,
               "reveal_auditor": self.a.reveal(did, ROOT, FUEL, SALT).gas_used,
               "reveal_provider": self.p.reveal(did, ROOT, FUEL, SALT).gas_used}
        assert self.p.audit(did).phase == 3, "the audit passed"
        self.audits.append(gas)
        return gas

    def finalize(self, deals: list[Deal]) -> int:
        """Draw, audit what the lottery audits, then finalize in contract-sized calls; the gas of
        draw + finalize of the deals the lottery cleared (audit steps are recorded in ``audits``,
        audited deals finalized in calls of their own)."""
        drawn, gas = self.draw(deals)
        for d in drawn:
            if d.status == AUDITED:
                self.audit(d)
        self.advance(6)
        cleared = [d for d in drawn if d.status == CLEARED]
        rest = [d for d in drawn if d.status != CLEARED]
        gas += sum(self.p.finalize(batch).gas_used for batch in chunks(cleared))
        for batch in chunks(rest):
            self.p.finalize(batch)
        return gas

    def cleared_single(self, open_one: Callable[[], tuple[Deal, dict[str, int]]]) -> dict[str, int]:
        """Run a single-deal path until the lottery clears its deal (at the floor, 3 % are audited:
        those are audited, finalized and measured again on the next deal); its figures."""
        for _ in range(20):
            deal, gas = open_one()
            drawn, gas["draw"] = self.draw([deal])
            if drawn[0].status == AUDITED:
                self.audit(drawn[0])
            self.advance(6)
            fin = self.p.finalize(drawn).gas_used
            if drawn[0].status == CLEARED:
                gas["finalize"] = fin
                return gas
        raise SystemExit("the lottery audited 20 deals in a row at the floor: something is wrong")

    def warm(self, lanes: range) -> None:
        """Use each lane once so later deals there pay the steady-state price."""
        deals = [self.accept(lane)[0] for lane in lanes]
        self.finalize(deals)


def lifecycle(b: Bench) -> dict[str, int]:
    r, p = b.r, b.p
    gas: dict[str, int] = {}
    gas["deposit_first"] = r.deposit(50_000 * 10**6).gas_used
    gas["deposit"] = r.deposit(50_000 * 10**6).gas_used
    gas["register"] = p.register("http://127.0.0.1:7001", b"\x01" * 32, b"\x02" * 32).gas_used
    gas["stake_first"] = p.stake(500_000 * 10**6).gas_used
    gas["stake"] = p.stake(100_000 * 10**6).gas_used
    b.a.register("http://127.0.0.1:7002", b"\x01" * 32, b"\x02" * 32)
    b.a.stake(100_000 * 10**6)
    lanes = iter(range(500, 600))  # a fresh lane for each try of a fresh-lane path

    def requester_opened(lane: int) -> tuple[Deal, dict[str, int]]:
        t = b.terms(lane)
        opened = r.open_deal(t, p.sign_bid(t))
        committed = p.commit_result(opened.deal, b.seal(t))
        return committed.deal, {"open_deal": opened.tx.gas_used, "commit_result": committed.tx.gas_used}

    def provider_opened(lane: int) -> tuple[Deal, dict[str, int]]:
        deal, oc = b.accept(lane)
        return deal, {"open_and_commit": oc}

    b.warm(range(2))  # the steady-state paths run on lanes 0 and 1, used once before
    for label, lane in (("fresh_lane", None), ("steady", 0)):  # requester-opened path
        got = b.cleared_single(lambda lane=lane: requester_opened(next(lanes) if lane is None else lane))
        gas[f"open_deal_{label}"], gas[f"commit_result_{label}"] = got["open_deal"], got["commit_result"]
        gas[f"finalize_{label}"] = got["draw"] + got["finalize"]
    for label, lane in (("fresh_lane", None), ("steady", 1)):  # provider-opened happy path
        got = b.cleared_single(lambda lane=lane: provider_opened(next(lanes) if lane is None else lane))
        gas[f"open_and_commit_{label}"], gas[f"draw_{label}"] = got["open_and_commit"], got["draw"]
        gas[f"finalize_after_accept_{label}"] = got["finalize"]
    # the audited path: the lottery is forced (audit_bps = 10000)
    deal, gas["audited_open_and_commit"] = b.accept(1, audit_bps=10_000)
    drawn, gas["audited_draw"] = b.draw([deal])
    gas.update({f"audited_{k}": v for k, v in b.audit(drawn[0]).items()})
    b.advance(6)
    gas["audited_finalize"] = p.finalize(drawn).gas_used
    t = b.terms(0, deadline=10)
    deal = r.open_deal(t, p.sign_bid(t)).deal
    b.advance(20)
    gas["reclaim"] = r.reclaim([deal]).gas_used
    gas["request_withdrawal"] = r.request_withdrawal(10**6).gas_used
    b.advance(31)
    gas["withdraw"] = r.withdraw().gas_used
    gas["claim_earnings"] = p.claim_earnings().gas_used
    gas["unbond"] = p.unbond(10**6).gas_used
    b.advance(61)
    gas["withdraw_stake"] = p.withdraw_stake().gas_used
    return gas


def batches(b: Bench, sizes: tuple[int, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    base = 100
    for n in sizes:
        # one Terms covering n jobs (one acceptance, one lane word), on a lane used before
        lane = base
        b.warm(range(lane, lane + 1))
        deal, oc = b.accept(lane, jobs=n)
        fin = b.finalize([deal])
        out[f"batch_{n}_jobs_one_terms"] = (oc + fin) / n
        emit(kind="batch_one_terms", n=n, open_and_commit=oc, finalize=fin, per_deal=round((oc + fin) / n))
        # n separate single-job deals on n used lanes, finalized by one call
        lanes = range(base + 1, base + 1 + n)
        b.warm(lanes)
        opened = [b.accept(lane) for lane in lanes]
        fin = b.finalize([d for d, _ in opened])
        total = sum(g for _, g in opened) + fin
        out[f"batch_{n}_separate_deals"] = total / n
        emit(kind="batch_separate_deals", n=n, open_and_commit_each=round(sum(g for _, g in opened) / n),
             finalize=fin, finalize_calls=len(chunks(opened)), finalize_per_deal=round(fin / n), per_deal=round(total / n))
        base += n + 10
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mercato-gas-") as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        net = Devnet(Settings(home=Path(tmp), devnet_port=port))
        try:
            dep = net.start().deployment
            assert dep is not None
            w3 = connect(dep.rpc_url, RetryPolicy(attempts=3))
            r = MarketClient.from_deployment(w3, dep, dep.keys["requester1"])
            p = r.as_account(dep.keys["provider1"])
            b = Bench(r, p, r.as_account(dep.keys["provider2"]), lambda seconds: increase_time(w3, seconds),
                      lambda n: bytes(w3.eth.get_block(n)["hash"]))
            gas = lifecycle(b)
            for step, used in gas.items():
                emit(kind="step", step=step, gas=used)
            per_deal = batches(b, (1, 10, 100))
        finally:
            net.stop()
    single = gas["open_and_commit_steady"] + gas["draw_steady"] + gas["finalize_after_accept_steady"]
    audited = sum(v for k, v in gas.items() if k.startswith("audited_"))
    summary = {
        "lifecycle_gas_single": single,
        "gas_per_job_unaudited": single,
        "gas_per_job_audited": audited,
        "lifecycle_gas_single_fresh_lane": (gas["open_and_commit_fresh_lane"] + gas["draw_fresh_lane"]
                                            + gas["finalize_after_accept_fresh_lane"]),
        "lifecycle_gas_requester_opened": gas["open_deal_steady"] + gas["commit_result_steady"] + gas["finalize_steady"],
        "lifecycle_gas_requester_opened_fresh_lane": (gas["open_deal_fresh_lane"] + gas["commit_result_fresh_lane"]
                                                      + gas["finalize_fresh_lane"]),
        "lifecycle_gas_per_deal_batch_1": round(per_deal["batch_1_jobs_one_terms"]),
        "lifecycle_gas_per_deal_batch_10": round(per_deal["batch_10_jobs_one_terms"]),
        "lifecycle_gas_per_deal_batch_100": round(per_deal["batch_100_jobs_one_terms"]),
        "separate_deals_gas_per_deal_batch_1": round(per_deal["batch_1_separate_deals"]),
        "separate_deals_gas_per_deal_batch_10": round(per_deal["batch_10_separate_deals"]),
        "separate_deals_gas_per_deal_batch_100": round(per_deal["batch_100_separate_deals"]),
        "withdraw_gas": gas["request_withdrawal"] + gas["withdraw"],
        "reclaim_gas": gas["reclaim"],
        "lottery_audits_during_run": len(b.audits),
        "target_single": TARGET_SINGLE,
        "target_batch_100_per_deal": TARGET_BATCH_100,
        "max_deals_per_finalize_call": MAX_BATCH,
        "meets_targets": single <= TARGET_SINGLE and per_deal["batch_100_jobs_one_terms"] <= TARGET_BATCH_100,
        "steps": gas,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
