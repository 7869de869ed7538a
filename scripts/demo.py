"""`make demo`: the settlement layer and the sandbox, end to end on a private devnet.

1. starts a fresh anvil devnet (its own home and port; stopped at the end) with the Market deployed;
2. a provider registers and stakes, a requester deposits;
3. the provider runs real workloads (C → WASM, and Python with numpy inside WASM) in the
   deterministic sandbox, and opens-and-commits each deal with the requester's signed acceptance;
4. after the challenge window the deals finalize in one batch and the provider claims its earnings;
5. a deal whose provider never commits is reclaimed: the requester is refunded and compensated
   from the provider's collateral;
6. balances before and after are printed and checked to add up exactly.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from mercato.chain import Devnet, MarketClient, increase_time
from mercato.config import Settings
from mercato.domain.deals import Terms, job_leaf
from mercato.domain.jobs import JobSpec, Limits, Receipt
from mercato.errors import MercatoError
from mercato.runtimes import BlobStore, Workspace, runtime_for

ROOT = Path(__file__).resolve().parent.parent
UNIT = 10**6  # mUSD has 6 decimals
PRICE_PER_CU = 20_000  # 0.02 mUSD per compute unit
COLLATERAL_FACTOR = 19  # C = P·(1−p)/p at a 5 % audit rate (docs/SPEC.md)
console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def money(amount: int) -> str:
    return f"{amount / UNIT:,.6f}"


def snapshot(market: MarketClient, names: dict[str, str]) -> dict[str, dict[str, int]]:
    rows = {}
    for name, address in names.items():
        info = market.provider_info(address)
        rows[name] = {
            "wallet": market.token_balance(address),
            "escrow": market.balance_of(address),
            "stake": info.stake + info.unbonding,
            "earnings": info.earnings,
        }
    rows["market contract"] = {"wallet": market.token_balance(market.market), "escrow": 0, "stake": 0, "earnings": 0}
    return rows


def show(title: str, rows: dict[str, dict[str, int]]) -> None:
    table = Table(title=title)
    for col in ("account", "wallet mUSD", "escrow", "stake", "earnings"):
        table.add_column(col, justify="right" if col != "account" else "left")
    for name, r in rows.items():
        table.add_row(name, money(r["wallet"]), money(r["escrow"]), money(r["stake"]), money(r["earnings"]))
    console.print(table)


def run_job(runtime_name: str, workload: Path, args: list[str], blobs: BlobStore, cache: Path, seed: bytes) -> tuple[JobSpec, Receipt]:
    spec = JobSpec(runtime=runtime_name, workload=blobs.put_file(workload), args=tuple(args),
                   limits=Limits(fuel=200 * 10**9, wall_clock_s=600), seed=seed)
    runtime = runtime_for(runtime_name, blobs, cache_dir=cache, progress=lambda line: console.print(f"  [dim]{line}[/dim]"))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(tmp)
        receipt = runtime.run(spec, ws)
        ws.remove()
    return spec, receipt


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="mercato-demo-"))
    cache = Path(os.environ.get("MERCATO_CACHE", Path.home() / ".cache" / "mercato"))
    port = free_port()
    settings = Settings(home=home, rpc_url=f"http://127.0.0.1:{port}", devnet_port=port)
    net = Devnet(settings)
    console.rule("[bold]Mercato demo: escrow, sandbox, settlement")
    status = net.start()
    try:
        dep = status.deployment
        assert dep is not None
        console.print(f"devnet on {status.rpc_url} (chain {status.chain_id}); Market at {dep.market}, token {dep.token}")
        requester = MarketClient.from_deployment(net._web3(), dep, dep.key_of("requester1"))
        provider = requester.as_account(dep.key_of("provider1"))
        names = {"requester1": requester.address, "provider1": provider.address}
        before = snapshot(requester, names)
        show("balances before", before)

        requester.deposit(50 * UNIT)
        provider.register("http://127.0.0.1:9001", keccak(text="cpu=2,mem=4GiB"), secrets.token_bytes(32))
        provider.stake(2_000 * UNIT)
        console.print("requester deposited 50 mUSD; provider registered and staked 2,000 mUSD")

        blobs = BlobStore(home / "blobs")
        jobs = [
            ("wasm", ROOT / "examples/wasm/montecarlo.wasm", ["2000000", "7"]),
            ("wasm", ROOT / "examples/wasm/matmul.wasm", ["96"]),
            ("python", ROOT / "examples/python/numeric.py", []),
        ]
        deals = []
        for nonce, (rt, path, args) in enumerate(jobs, start=1):
            console.print(f"[bold]job {nonce}[/bold]: {rt} {path.name} {' '.join(args)}")
            spec, receipt = run_job(rt, path, args, blobs, cache, seed=keccak(text=f"demo-{nonce}"))
            console.print(f"  {receipt.outcome.value}, {receipt.fuel_used:,} fuel = {receipt.cu_used} CU, "
                          f"result root {receipt.result_root[:18]}…, {receipt.timings.run_ms:.0f} ms")
            if receipt.stdout:
                console.print("  stdout: " + receipt.stdout.decode(errors="replace").strip().splitlines()[-1][:100])
            price = max(1, receipt.cu_used) * PRICE_PER_CU
            now = requester.now()
            terms = Terms(requester=requester.address, provider=provider.address, lane=nonce, nonce=1,
                          jobs_root=job_leaf(bytes.fromhex(spec.spec_hash().removeprefix("sha256:")), price,
                                             price * COLLATERAL_FACTOR),
                          jobs=1, price=price, collateral=price * COLLATERAL_FACTOR,
                          deadline=now + 3600, expiry=now + 3600)
            acceptance = requester.sign_acceptance(terms)
            salt = secrets.token_bytes(32)
            seal = keccak(bytes.fromhex(receipt.result_root.removeprefix("sha256:")) + salt)
            opened = provider.open_and_commit(terms, acceptance, seal)
            console.print(f"  deal {opened.deal.deal_id.hex()[:16]}… opened+committed: price {money(price)} mUSD, "
                          f"collateral {money(terms.collateral)}, gas {opened.tx.gas_used:,}")
            deals.append(opened.deal)

        # A requester-opened deal the provider never commits: the requester reclaims it.
        now = requester.now()
        missed = Terms(requester=requester.address, provider=provider.address, lane=9, nonce=1,
                       jobs_root=keccak(text="never-run"), jobs=1, price=1 * UNIT, collateral=19 * UNIT,
                       deadline=now + 60, expiry=now + 30)
        opened = requester.open_deal(missed, provider.sign_bid(missed))
        console.print("a fourth deal is opened by the requester; the provider never commits it")

        window = requester.parameters()["challenge_window"]
        increase_time(requester.w3, max(window, 61) + 1)
        fin = provider.finalize(deals)
        console.print(f"challenge window over: {len(deals)} deals finalized in one transaction ({fin.gas_used:,} gas)")
        rec = requester.reclaim([opened.deal])
        console.print(f"missed deadline: reclaimed ({rec.gas_used:,} gas): refund + {money(missed.collateral // 2)} mUSD of collateral")
        provider.claim_earnings()
        rep = requester.reputation(provider.address)
        console.print(f"provider reputation: completed {rep.completed}, missed {rep.missed}, slashed {rep.slashed}, volume {money(rep.volume)}")

        after = snapshot(requester, names)
        show("balances after", after)
        total_before = sum(sum(r.values()) for r in before.values())
        total_after = sum(r["wallet"] for r in after.values())
        # everything the market holds is owed to someone: escrow + stake + earnings + open deals
        held = after["market contract"]["wallet"]
        owed = sum(r["escrow"] + r["stake"] + r["earnings"] for n, r in after.items() if n != "market contract")
        ok = total_before == total_after and held == owed
        console.print(f"tokens before {money(total_before)} = after {money(total_after)}; market holds {money(held)} "
                      f"= owed {money(owed)}: " + ("[green]balances add up[/green]" if ok else "[red]MISMATCH[/red]"))
        return 0 if ok else 1
    except MercatoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        net.stop()
        console.print("devnet stopped")


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    console.print(f"demo finished in {time.monotonic() - t0:.0f} s")
    sys.exit(code)
