"""Your first job: `mercato devnet start`, a provider running, `mercato deposit 10`, then this."""
import asyncio, os
from mercato.config import Settings
from mercato.requester import JobRequest, Market
async def main() -> None:
    async with Market.connect(Settings.load(None, os.environ)) as m:
        r = await m.run(JobRequest.from_files("examples/wasm/montecarlo.wasm", args=["1000000", "7"]))
        # "sealed": the result matches the seal its provider committed on-chain; the deal's lottery and
        # audit decide later whether anyone re-ran it: (await m.verification(r)).state -> "audited", ...
        print(r.stdout.decode(), f"paid {r.price} base units to {r.provider}, result {r.verification}")
asyncio.run(main())
