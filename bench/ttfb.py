"""Time to first byte of compute: from ``market.run()`` to the provider's ``started_at``.

    .venv/bin/python bench/ttfb.py [--jobs 50] [--providers 10] [--block-time 2]

Starts anvil with ``--block-time`` on a free port in a temporary home, deploys the Market and
the mock token, funds 10 extra provider accounts, starts 10 provider agents
(``mercato provider start --config …``), then runs the jobs one after another through the
requester SDK. Prints p50/p95; the last line is one JSON object with ``ttfb_p50_ms`` and
``ttfb_p95_ms`` (target: p50 <= 500 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account

from mercato.chain import Deployment, connect
from mercato.chain.artifacts import load_artifacts
from mercato.chain.deployment import ANVIL_MNEMONIC, DevnetParams, deploy, dev_accounts, fund
from mercato.chain.devnet import resolve_anvil
from mercato.config import RetryPolicy, default_anvil_path
from mercato.domain.jobs import Limits
from mercato.errors import NoBids
from mercato.requester import BidsCollected, JobRequest, JobResult, Market

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "examples" / "wasm" / "montecarlo.wasm"
FUND = 1_000_000 * 10**6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def extra_keys(n: int, first: int = 10) -> list[str]:
    """Provider keys beyond the 9 named dev accounts (anvil's mnemonic, indices 10…)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{first + i}").key.to_0x_hex()
            for i in range(n)]


def start_anvil(home: Path, port: int, block_time: int, *, mixed: bool = False,
                accounts: int = 30) -> subprocess.Popen[bytes]:
    """anvil on ``port`` mining a block every ``block_time`` seconds (``mixed``: and one per
    transaction besides, as ``mercato devnet start`` runs it), ``accounts`` funded."""
    anvil = resolve_anvil(default_anvil_path())
    log = (home / "anvil.log").open("wb")
    mining = ["--mixed-mining"] if mixed else []
    proc = subprocess.Popen([str(anvil), "--port", str(port), *mining, "--block-time", str(block_time),
                             "--accounts", str(accounts)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("anvil did not start")


def deploy_market(home: Path, url: str, provider_keys: list[str]) -> Deployment:
    w3 = connect(url, RetryPolicy(attempts=3, base_delay=0.1))
    keys = dev_accounts()
    dep = deploy(w3, load_artifacts(home / "artifacts"), keys["deployer"], DevnetParams(), rpc_url=url)
    addresses = {name: str(Account.from_key(k).address) for name, k in keys.items()}
    addresses |= {f"bench{i}": str(Account.from_key(k).address) for i, k in enumerate(provider_keys)}
    dep = dataclasses.replace(dep, rpc_url=url, accounts=addresses, keys=keys)  # keeps the court's address
    fund(w3, dep, keys["deployer"], addresses, FUND)
    path = home / "deployments" / f"{dep.chain_id}.json"
    dep.save(path)
    return dep


PROVIDER_TOML = """
[provider]
account = "{key}"
host = "127.0.0.1"
port = {port}
data_dir = "{data}"
stake = 100_000_000_000
lanes = 4
runtimes = ["wasm"]
[pricing]
price_per_cu = {price}
"""


def start_providers(home: Path, keys: list[str], *, template: str = PROVIDER_TOML,
                    price: Callable[[int], int] = lambda i: 1_000 + 10 * i,
                    timeout: float = 120.0) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """One agent per key (config from ``template``, provider ``i`` at ``price(i)``), all launched
    at once, then waited for until each answers ``/v1/info``."""
    env = os.environ | {"MERCATO_HOME": str(home), "MERCATO_DEPLOYMENT": str(home / "deployments" / "31337.json")}
    procs, urls = [], []
    for i, key in enumerate(keys):
        port = free_port()
        cfg = home / f"provider{i}.toml"
        cfg.write_text(template.format(key=key, port=port, data=home / f"p{i}", price=price(i)))
        log = (home / f"provider{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "mercato", "provider", "start", "--config", str(cfg),
                                       "--log-level", "WARNING"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    pending = set(urls)
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                if httpx.get(url + "/v1/info", timeout=1).status_code == 200:
                    pending.discard(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    if pending:
        raise SystemExit(f"providers did not come up: {sorted(pending)} (see {home}/provider*.log)")
    return procs, urls


async def run_when_lanes_free(m: Market, req: JobRequest) -> JobResult:
    """When every lane is reserved (deals settling, bids still held), wait a moment and ask again
    (only the run that gets a bid is measured)."""
    for _ in range(60):
        try:
            return await m.run(req)
        except NoBids as exc:
            print(f"  (no free lane: {len(exc.causes)} providers busy, retrying in 0.5 s)", flush=True)
            await asyncio.sleep(0.5)
    return await m.run(req)


async def bench(dep: Deployment, n_jobs: int, n_providers: int) -> list[float]:
    req = JobRequest.from_files(WORKLOAD, args=["20000", "7"], limits=Limits(fuel=2 * 10**9),
                                max_price=1_000_000, deadline_s=120, accept_window_s=10)
    ttfb: list[float] = []
    rounds: list[BidsCollected] = []

    def note(ev: object) -> None:
        if isinstance(ev, BidsCollected):
            rounds.append(ev)

    async with Market.connect(deployment=dep, key=dev_accounts()["requester1"], bid_window=0.25,
                              on_event=note) as m:
        await m.deposit(100_000 * 10**6)
        while len(await m.providers()) < n_providers:  # registrations land with the next blocks
            await asyncio.sleep(0.5)
        await m.run(req, bid_window=10.0)  # warm-up (not measured): connections, caches, each agent's first RFQ
        for i in range(n_jobs):
            result = await run_when_lanes_free(m, req)
            assert result.verified and result.ttfb_ms is not None
            ttfb.append(result.ttfb_ms)
            bids = rounds[-1]
            print(f"job {i + 1:3d}: ttfb {result.ttfb_ms:7.1f} ms  bids {bids.compliant}/{bids.asked} in "
                  f"{bids.window_ms:5.1f} ms  total {result.timings['total_ms']:7.1f} ms  "
                  f"provider {result.provider[:10]}…  price {result.price}", flush=True)
    return ttfb


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, then SIGKILL what has not exited after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--providers", type=int, default=10)
    ap.add_argument("--block-time", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mercato-ttfb-") as tmp:
        home = Path(tmp)
        port = free_port()
        anvil = start_anvil(home, port, args.block_time)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            keys = extra_keys(args.providers)
            dep = deploy_market(home, f"http://127.0.0.1:{port}", keys)
            procs, _ = start_providers(home, keys)
            ttfb = asyncio.run(bench(dep, args.jobs, args.providers))
        finally:
            stop([*procs, anvil])
    p50 = statistics.median(ttfb)
    p95 = statistics.quantiles(ttfb, n=20, method="inclusive")[18]
    print(f"ttfb over {len(ttfb)} jobs, {args.providers} providers, block time {args.block_time} s: "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p50 <= 500 ms)")
    print(json.dumps({"ttfb_p50_ms": round(p50, 1), "ttfb_p95_ms": round(p95, 1), "jobs": len(ttfb),
                      "providers": args.providers, "block_time_s": args.block_time}))


if __name__ == "__main__":
    main()
