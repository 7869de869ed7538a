"""``Market.map`` at scale: 1,000 tiny tasks across 20 provider agents on a devnet.

    .venv/bin/python bench/map.py [--tasks 1000] [--providers 20] [--tasks-per-deal 25] [--block-time 1]

Starts anvil (``--block-time`` seconds a block) in a temporary home, deploys the Market, starts
the provider agents (``mercato provider start``, 8 lanes each, one price: the allocation splits
the run evenly by capacity), then
maps the Monte Carlo workload over ``--tasks`` tasks (task i: 2,000 samples with PRNG seed i)
through the requester SDK. Every task's result is verified against its batch deal's on-chain
seal. After the run it waits until every deal is finalized and adds up the gas of every
transaction since the run began (the providers' opens, commits, finalizations, lottery draws
and any audits), so gas per task is amortized over everything the run cost the chain.

Latency of a task: from the moment its batch was dispatched to the moment its verified result
was yielded. Last line: one JSON object with ``tasks_per_s``, ``latency_p50_ms``,
``latency_p95_ms``, ``gas_per_task`` (targets: >= 20 tasks/s on 2 cores, <= 30,000 gas a task).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ttfb import deploy_market, extra_keys, free_port, start_anvil, start_providers, stop

from mercato.chain import MarketClient, connect
from mercato.chain.deployment import Deployment, dev_accounts
from mercato.config import RetryPolicy
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.requester import JobRequest, Market
from mercato.requester.events import BatchDispatched

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "examples" / "wasm" / "montecarlo.wasm"

PROVIDER_TOML = """
[provider]
account = "{key}"
host = "127.0.0.1"
port = {port}
data_dir = "{data}"
stake = 100_000_000_000
lanes = 8
runtimes = ["wasm"]
poll_interval_s = 0.2
housekeeping_interval_s = 0.5
allow_batch_expiry_at_deadline = true  # map's batches ask an expiry at their deadline (docs/SPEC.md §13)
[pricing]
price_per_cu = {price}
utilization_markup = 0
"""


async def run(dep: Deployment, tasks: int, providers: int, per_deal: int) -> dict[str, object]:
    req = JobRequest.from_files(WORKLOAD, args=["2000"], limits=Limits(fuel=FUEL_PER_CU), max_price=1_000_000,
                                deadline_s=120, audit_fee=1_000)
    dispatched: dict[int, float] = {}  # task -> when its (latest) batch was sent

    def note(ev: object) -> None:
        if isinstance(ev, BatchDispatched):
            for t in ev.tasks:
                dispatched.setdefault(t, time.monotonic())

    async with Market.connect(deployment=dep, key=dev_accounts()["requester1"], bid_window=1.0,
                              on_event=note) as m:
        await m.deposit(1_000_000 * 10**6)
        while len(await m.providers()) < providers:  # registrations land with the next blocks
            await asyncio.sleep(0.5)
        start_block = int(await asyncio.to_thread(lambda: m.api.block_number()))  # type: ignore[attr-defined]
        t0 = time.monotonic()
        latencies: list[float] = []
        mapped = m.map(req, [[str(i)] for i in range(tasks)], max_price_per_cu=10_000, tasks_per_deal=per_deal)
        async for result in mapped:
            latencies.append((time.monotonic() - dispatched[result.index]) * 1000)
        wall = time.monotonic() - t0
        summary = mapped.summary
    if not summary.complete:
        raise SystemExit(f"the run did not complete: {summary.stopped}; failed {len(summary.failed)}")
    return {"wall_s": wall, "latencies": latencies, "summary": summary, "start_block": start_block}


def settled_gas(dep: Deployment, start_block: int, timeout: float = 300.0) -> tuple[int, int]:
    """Wait until every deal opened since ``start_block`` is finalized; the gas of every transaction
    mined since then, and how many deals there were."""
    w3 = connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
    client = MarketClient.from_deployment(w3, dep, dev_accounts()["requester1"])
    deadline = time.monotonic() + timeout
    while True:
        opened = {bytes(e["args"]["deal_id"]) for e in client.contract.events.DealOpened().get_logs(from_block=start_block)}
        done = {bytes(e["args"]["deal_id"]) for e in client.contract.events.DealFinalized().get_logs(from_block=start_block)}
        if opened and opened <= done:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(opened - done)} deals were not finalized in {timeout} s")
        time.sleep(2.0)
    gas = 0
    for n in range(start_block + 1, w3.eth.block_number + 1):
        block = w3.eth.get_block(n, full_transactions=False)
        if block["transactions"]:
            gas += int(block["gasUsed"])
    return gas, len(opened)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--providers", type=int, default=20)
    ap.add_argument("--tasks-per-deal", type=int, default=25)
    ap.add_argument("--block-time", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mercato-map-") as tmp:
        home = Path(tmp)
        port = free_port()
        anvil = start_anvil(home, port, args.block_time)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            keys = extra_keys(args.providers)
            dep = deploy_market(home, f"http://127.0.0.1:{port}", keys)
            procs, _ = start_providers(home, keys, template=PROVIDER_TOML,
                                       price=lambda _i: 1_000, timeout=300)
            out = asyncio.run(run(dep, args.tasks, args.providers, args.tasks_per_deal))
            gas, deals = settled_gas(dep, int(out["start_block"]))  # type: ignore[call-overload]
        finally:
            stop([*procs, anvil])
    lat: list[float] = out["latencies"]  # type: ignore[assignment]
    summary = out["summary"]
    wall: float = out["wall_s"]  # type: ignore[assignment]
    p50 = statistics.median(lat)
    p95 = statistics.quantiles(lat, n=20, method="inclusive")[18]
    used = sum(1 for t in summary.providers.values() if t.tasks)  # type: ignore[attr-defined]
    print(f"{args.tasks} tasks on {used} of {args.providers} providers in {deals} batch deals "
          f"({args.tasks_per_deal} tasks a deal), block time {args.block_time} s: {wall:.1f} s, "
          f"{args.tasks / wall:.1f} tasks/s (target >= 20); latency p50 {p50:.0f} ms, p95 {p95:.0f} ms; "
          f"gas {gas:,} in all, {gas / args.tasks:,.0f} a task (target <= 30,000); spent "
          f"{summary.spent} base units")  # type: ignore[attr-defined]
    print(json.dumps({"tasks_per_s": round(args.tasks / wall, 1), "latency_p50_ms": round(p50, 1),
                      "latency_p95_ms": round(p95, 1), "gas_per_task": round(gas / args.tasks),
                      "tasks": args.tasks, "providers": args.providers, "providers_used": used, "deals": deals,
                      "tasks_per_deal": args.tasks_per_deal, "block_time_s": args.block_time,
                      "wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
