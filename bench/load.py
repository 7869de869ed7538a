"""Load: R requesters at once against P provider agents on a devnet for a fixed time, default settings.

    .venv/bin/python bench/load.py [--requesters 4] [--providers 10] [--duration 300] [--seed 1]

Starts anvil as ``mercato devnet start`` runs it (a block per transaction and one a second
besides) in a temporary home, deploys the Market with the devnet's parameters, starts P agents
(``mercato provider start``) with the default agent config apart from account, port, data dir
and stake, warms them up (one job per workload with a wide window, not measured), then starts R
requester processes. Each runs jobs one after another through the SDK with its default bid
window (250 ms) for ``--duration`` seconds, picking at random (fixed ``--seed``) from a mix of
sizes of the example workloads under examples/wasm: small (60 %: a few ms), medium (30 %: ~0.1 s)
and large (10 %: ~1 s of sandbox time). A job counts as a success when its result is verified.

Progress goes to stderr every 10 s. The last stdout line is one JSON object: ``success_rate``,
``ttfb_p50_ms``, ``ttfb_p95_ms``, ``ttfb_p99_ms`` (from ``market.run()`` to the provider's
``started_at``), ``jobs_per_s`` (verified jobs over the measured time), ``agent_rss_mib`` (the
largest resident set of any agent, sampled), and where the time goes: the bid round's share of
the TTFB (``bids_p50_ms``), how many jobs needed a second bid round (``retried_jobs``), the
failures by error, and the CPU seconds of agents, anvil and requesters. Target (issue 16), on
2 cores with the defaults: success_rate >= 0.999, ttfb_p50_ms <= 300, ttfb_p95_ms <= 600.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ttfb import deploy_market, extra_keys, free_port, start_anvil, start_providers, stop

from mercato.chain import Deployment, MarketClient, connect
from mercato.config import RetryPolicy
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import MercatoError
from mercato.requester import BidsRetried, JobRequest, Market

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "examples" / "wasm"
DEPOSIT = 100_000 * 10**6
CLK = os.sysconf("SC_CLK_TCK")

# the default agent config, apart from what each agent must have of its own
PROVIDER_TOML = """
[provider]
account = "{key}"
port = {port}
data_dir = "{data}"
stake = 100_000_000_000
"""

# (weight, name, workload, args, fuel cap in CU): sandbox time measured with `mercato exec`
MIX: tuple[tuple[int, str, str, tuple[str, ...], int], ...] = (
    (20, "montecarlo-s", "montecarlo.wasm", ("20000",), 1),
    (20, "matmul-s", "matmul.wasm", ("40",), 1),
    (20, "hashchain-s", "hashchain.wasm", ("/input/data.bin", "1000"), 1),
    (10, "montecarlo-m", "montecarlo.wasm", ("2000000",), 1),
    (10, "matmul-m", "matmul.wasm", ("200",), 1),
    (10, "hashchain-m", "hashchain.wasm", ("/input/data.bin", "20000"), 1),
    (4, "montecarlo-l", "montecarlo.wasm", ("20000000",), 3),
    (3, "matmul-l", "matmul.wasm", ("400",), 3),
    (3, "hashchain-l", "hashchain.wasm", ("/input/data.bin", "100000"), 3),
)


def jobs(data: Path) -> list[tuple[int, str, JobRequest]]:
    """The mix as ``(weight, name, JobRequest)``; hashchain reads ``data`` as /input/data.bin."""
    out = []
    for weight, name, workload, args, cu in MIX:
        inputs = {"data.bin": data} if workload.startswith("hashchain") else None
        out.append((weight, name, JobRequest.from_files(WASM / workload, args=list(args), inputs=inputs,
                                                        limits=Limits(fuel=cu * FUEL_PER_CU))))
    return out


# one requester (a process of its own) ----------------------------------------------------------
async def requester(dep: Deployment, key: str, until: float, seed: int, data: Path) -> None:
    """Run jobs back to back until ``until`` (unix time); one JSON line per job on stdout."""
    rng = random.Random(seed)
    mix = jobs(data)
    weights = [w for w, _, _ in mix]
    retried: list[int] = [0]

    def note(ev: object) -> None:
        if isinstance(ev, BidsRetried):
            retried[0] += 1

    async with Market.connect(deployment=dep, key=key, on_event=note, audit_wait_s=60.0) as market:
        while time.time() < until:
            _, name, req = rng.choices(mix, weights)[0]
            retried[0] = 0
            line: dict[str, Any] = {"job": name, "at": time.time()}
            try:
                result = await market.run(req)
            except MercatoError as exc:
                line |= {"ok": False, "error": type(exc).__name__, "detail": str(exc)[:300]}
            else:
                line |= {"ok": result.verified, "ttfb_ms": result.ttfb_ms, "bids_ms": result.timings.get("bids_ms"),
                         "total_ms": result.timings.get("total_ms"), "provider": result.provider}
            line["retries"] = retried[0]
            print(json.dumps(line), flush=True)


# the harness -------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 once it is gone)."""
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values: list[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method; the value itself for one sample)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def warm_up(dep: Deployment, key: str, data: Path, providers: int) -> None:
    """Wait for every registration, then one job per workload with a wide window (not measured):
    each agent's first RFQ and each module's first compile happen here."""
    async with Market.connect(deployment=dep, key=key, audit_wait_s=0.0) as m:
        while len(await m.providers()) < providers:
            await asyncio.sleep(0.5)
        for _, name, req in jobs(data)[:3]:
            await m.run(req, bid_window=10.0)
            print(f"  warm-up: {name} verified", file=sys.stderr, flush=True)


class Tally:
    """What the requesters reported, and the agents' memory, as it comes in."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.rss: dict[int, float] = {}

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            self.rss[pid] = max(self.rss.get(pid, 0.0), rss_mib(pid))

    def progress(self, elapsed: float) -> str:
        ok = [x for x in self.lines if x["ok"]]
        ttfb = [x["ttfb_ms"] for x in ok if x.get("ttfb_ms") is not None]
        p50 = f"{statistics.median(ttfb):.0f}" if ttfb else "-"
        return (f"  {elapsed:5.0f} s: {len(ok)} verified, {len(self.lines) - len(ok)} failed, "
                f"{len(ok) / max(elapsed, 1e-9):.2f} jobs/s, ttfb p50 {p50} ms, "
                f"agent rss max {max(self.rss.values(), default=0):.0f} MiB, load {os.getloadavg()[0]:.1f}")


async def drive(dep: Deployment, keys: list[str], agent_pids: list[int], args: argparse.Namespace,
                data: Path) -> tuple[Tally, float]:
    """Start the requester processes, read their lines until they exit, sample the agents."""
    until = time.time() + args.duration
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker", "--deployment", str(args.dep_path), "--key", key, "--until", str(until),
        "--seed", str(args.seed * 1000 + i), "--data", str(data), stdout=asyncio.subprocess.PIPE)
        for i, key in enumerate(keys)]
    tally, t0 = Tally(), time.monotonic()

    async def read(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            tally.lines.append(json.loads(raw))
        await proc.wait()

    readers = asyncio.gather(*(read(p) for p in procs))
    while not readers.done():
        tally.sample(agent_pids)
        await asyncio.wait([readers], timeout=10.0)
        print(tally.progress(time.monotonic() - t0), file=sys.stderr, flush=True)
    await readers
    return tally, time.monotonic() - t0


def report(tally: Tally, wall: float, cpu: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    lines = tally.lines
    ok = [x for x in lines if x["ok"]]
    ttfb = [x["ttfb_ms"] for x in ok if x.get("ttfb_ms") is not None]
    bids = [x["bids_ms"] for x in ok if x.get("bids_ms") is not None]
    return {
        "success_rate": round(len(ok) / len(lines), 5) if lines else 0.0,
        "ttfb_p50_ms": round(pct(ttfb, 50), 1), "ttfb_p95_ms": round(pct(ttfb, 95), 1),
        "ttfb_p99_ms": round(pct(ttfb, 99), 1), "jobs_per_s": round(len(ok) / wall, 3),
        "agent_rss_mib": round(max(tally.rss.values(), default=0.0), 1),
        "jobs": len(lines), "verified": len(ok), "failures": dict(Counter(x["error"] for x in lines if not x["ok"]
                                                                          and "error" in x)),
        "bids_p50_ms": round(pct(bids, 50), 1), "retried_jobs": sum(1 for x in lines if x.get("retries")),
        "requesters": args.requesters, "providers": args.providers, "duration_s": args.duration,
        "wall_s": round(wall, 1), "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "load_avg_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requesters", type=int, default=4)
    ap.add_argument("--providers", type=int, default=10)
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one requester process
    ap.add_argument("--deployment", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--until", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        asyncio.run(requester(Deployment.load(args.deployment), args.key, args.until, args.seed, args.data))
        return
    with tempfile.TemporaryDirectory(prefix="mercato-load-") as tmp:
        home = Path(tmp)
        data = home / "data.bin"
        data.write_bytes(random.Random(args.seed).randbytes(64 * 1024))
        port = free_port()
        anvil = start_anvil(home, port, 1, mixed=True, accounts=10 + args.providers + args.requesters)
        procs = []
        try:
            keys = extra_keys(args.providers + args.requesters)
            provider_keys, requester_keys = keys[:args.providers], keys[args.providers:]
            dep = deploy_market(home, f"http://127.0.0.1:{port}", keys)
            args.dep_path = home / "deployments" / f"{dep.chain_id}.json"
            w3 = connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))
            for key in requester_keys:
                MarketClient.from_deployment(w3, dep, key).deposit(DEPOSIT)
            print(f"starting {args.providers} agents …", file=sys.stderr, flush=True)
            procs, _ = start_providers(home, provider_keys, template=PROVIDER_TOML, price=lambda i: 1_000)
            asyncio.run(warm_up(dep, requester_keys[0], data, args.providers))
            pids = [p.pid for p in procs]
            before = {"agents": sum(cpu_s(p) for p in pids), "anvil": cpu_s(anvil.pid)}
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(f"load: {args.requesters} requesters x {args.providers} agents for {args.duration:g} s",
                  file=sys.stderr, flush=True)
            tally, wall = asyncio.run(drive(dep, requester_keys, pids, args, data))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = {"agents": sum(cpu_s(p) for p in pids) - before["agents"], "anvil": cpu_s(anvil.pid) - before["anvil"],
                   "requesters": after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime}
        finally:
            stop([*procs, anvil])
    out = report(tally, wall, cpu, args)
    for x in tally.lines:
        if not x["ok"]:
            print(f"  failed {x['job']}: {x.get('error')}: {x.get('detail', '')[:200]}", file=sys.stderr)
    print(f"{out['verified']} of {out['jobs']} jobs verified ({out['success_rate']:.2%}), {out['jobs_per_s']} jobs/s; "
          f"ttfb p50 {out['ttfb_p50_ms']} ms, p95 {out['ttfb_p95_ms']} ms, p99 {out['ttfb_p99_ms']} ms "
          f"(target: >= 99.9 %, p50 <= 300 ms, p95 <= 600 ms)", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
