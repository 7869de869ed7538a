"""A scikit-learn parameter sweep over 200 configurations with ``Market.map``.

    .venv/bin/python examples/sweep/run.py          # a devnet, providers and a deposit first (README)

Every line of configs.txt is one task (its arguments); the tasks are bought in batch deals from
the cheapest providers, verified against their on-chain seals, and streamed back as they
finish. Prints the ten best configurations and what the sweep cost.
"""

import asyncio
import json
import os
from pathlib import Path

from mercato.config import Settings
from mercato.requester import Market, load_job_toml
from mercato.requester.money import format_musd

HERE = Path(__file__).parent


async def main() -> None:
    job = load_job_toml(HERE / "job.toml")
    configs = [line.split() for line in (HERE / "configs.txt").read_text().splitlines() if line.strip()]
    scores = []
    async with Market.connect(Settings.load(None, os.environ)) as market:
        run = market.map(job, configs, max_price_per_cu=10_000, tasks_per_deal=10)
        async for task in run:
            if task.ok:
                scores.append(json.loads(task.stdout))
                print(f"{len(scores):>3}/{len(configs)}  {scores[-1]['accuracy']:.3f}  {' '.join(configs[task.index])}")
        summary = run.summary
    for s in sorted(scores, key=lambda s: -s["accuracy"])[:10]:
        print(f"{s['accuracy']:.3f}  {s['model']}  {s['params']}")
    print(f"{len(summary.done)} of {summary.tasks} configurations in {summary.batches} batch deals, "
          f"spent {format_musd(summary.spent)} mUSD")


if __name__ == "__main__":
    asyncio.run(main())
