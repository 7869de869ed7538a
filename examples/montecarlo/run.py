"""Estimate pi from 1,000 Monte Carlo tasks with ``Market.map``, every task verified.

    .venv/bin/python examples/montecarlo/run.py     # a devnet, providers and a deposit first (README)

Task i runs examples/wasm/montecarlo.wasm with 200,000 samples and PRNG seed i; the inside counts
of all tasks are added up into one estimate over 200 million samples.
"""

import asyncio
import os
import re
from pathlib import Path

from mercato.config import Settings
from mercato.requester import Market, load_job_toml
from mercato.requester.money import format_musd

HERE = Path(__file__).parent
TASKS = 1000


async def main() -> None:
    job = load_job_toml(HERE / "job.toml")
    samples = inside = 0
    async with Market.connect(Settings.load(None, os.environ)) as market:
        run = market.map(job, [[str(i)] for i in range(TASKS)], max_price_per_cu=5_000, tasks_per_deal=50)
        async for task in run:
            m = re.match(rb"samples=(\d+) inside=(\d+)", task.stdout)
            if task.ok and m:
                samples, inside = samples + int(m[1]), inside + int(m[2])
        summary = run.summary
    print(f"pi ~ {4 * inside / samples:.8f} from {samples:,} samples in {len(summary.done)} tasks, "
          f"{summary.batches} batch deals, {format_musd(summary.spent)} mUSD, {summary.elapsed_s:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
