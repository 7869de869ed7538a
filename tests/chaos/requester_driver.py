"""The chaos test's requester: a stream of jobs through the SDK, journaled, in its own process.

    python tests/chaos/requester_driver.py --deployment dep.json --home DIR --account requester1 \
        --stop-file DIR/stop --seed 7 --concurrency 2

On start it connects (retrying while the RPC is cut), runs ``Market.recover()`` over its
journal, then runs jobs (``--concurrency`` at a time) until the stop file exists; then it lets
the jobs in flight finish and exits. Every step is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "examples" / "wasm" / "montecarlo.wasm"
CU = 5


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"t": round(time.time(), 3), "event": event} | fields, default=str), flush=True)


async def main() -> int:
    from eth_account import Account

    from mercato.chain import Deployment
    from mercato.domain.jobs import FUEL_PER_CU, Limits
    from mercato.requester import JobHistory, JobRequest, Market
    from mercato.requester.journal import Journal

    ap = argparse.ArgumentParser()
    ap.add_argument("--deployment", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--account", default="requester1")
    ap.add_argument("--stop-file", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    dep = Deployment.load(args.deployment)
    key = dep.keys[args.account]
    address = Account.from_key(key).address
    journal = Journal.for_account(args.home, dep.chain_id, dep.market, address)
    emit("started", pid_seed=args.seed, journal=str(journal.folder))

    while True:  # the node may be cut off right now
        try:
            market = Market.connect(deployment=dep, key=key, journal=journal,
                                    history=JobHistory(args.home / "requester.sqlite"), bid_window=5.0,
                                    audit_wait_s=5.0)
            break
        except Exception as exc:
            emit("connect_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(1.0)

    async with market:
        for attempt in range(30):
            try:
                reports = await market.recover()
                emit("recovered", attempt=attempt, deals=len(reports),
                     actions={r.deal_id: list(r.actions) for r in reports if r.actions},
                     pending=[r.deal_id for r in reports if not r.done])
                break
            except Exception as exc:
                emit("recover_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)

        counter = 0

        async def worker(w: int) -> None:
            nonlocal counter
            while not args.stop_file.exists():
                counter += 1
                name = f"chaos-{args.seed}-{w}-{counter}"
                samples = rng.randrange(20_000, 400_000)
                job = JobRequest.from_files(WASM, args=[str(samples), str(rng.randrange(1, 1000))],
                                            limits=Limits(fuel=CU * FUEL_PER_CU), max_price=10_000 * CU,
                                            deadline_s=40, accept_window_s=15, name=name)
                t0 = time.monotonic()
                try:
                    result = await market.run(job)
                except Exception as exc:
                    emit("failed", name=name, error=type(exc).__name__, message=str(exc)[:300],
                         deal_id=getattr(exc, "deal_id", None) or "")
                    await asyncio.sleep(0.5)
                    continue
                emit("verified", name=name, deal_id=result.deal_id, provider=result.provider, price=result.price,
                     result_root=result.result_root, seconds=round(time.monotonic() - t0, 2),
                     timings={k: round(v) for k, v in result.timings.items()})

        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
    emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
