"""`make demo`: the Mercato market end to end on a private devnet.

1. starts a fresh anvil devnet (its own home and port) with the Market deployed and dev accounts funded;
2. starts three provider agents (real processes, HTTP on loopback) with different prices;
3. a requester deposits and runs C and Python jobs through the SDK: a sealed-bid auction per job,
   the cheapest compliant bid wins, the provider runs the job in the deterministic sandbox and
   commits a seal on-chain, the requester downloads the outputs and verifies them against it;
4. the providers finalize after the challenge window and claim their earnings;
5. a fourth provider that never commits wins one job: the requester reclaims it and is
   compensated from the provider's collateral;
6. every account's balance before and after is printed and checked to add up exactly;
7. everything it started is stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from mercato.chain import Deployment, Devnet, MarketClient
from mercato.config import Settings
from mercato.domain.jobs import FUEL_PER_CU, Limits
from mercato.errors import MercatoError, ProviderMissedDeadline
from mercato.requester import JobRequest, Market
from mercato.requester.events import BidsCollected, Committed, Event, Verified, WinnerChosen

ROOT = Path(__file__).resolve().parent.parent
UNIT = 10**6  # mUSD has 6 decimals
PROVIDERS = {"provider1": 3_000, "provider2": 1_000, "provider3": 2_000}  # price per CU, base units
console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def money(amount: int) -> str:
    return f"{amount / UNIT:,.6f}"


class Agent:
    """One `mercato provider start` process."""

    def __init__(self, name: str, price: int, net: Devnet, work: Path, cache: Path, behaviour: str = "honest"):
        self.name, self.port = name, free_port()
        data = work / name
        (data).mkdir(parents=True)
        (data / "cache").symlink_to(cache, target_is_directory=True)  # share the compiled Python interpreter
        config = work / f"{name}.toml"
        config.write_text(
            f'[provider]\naccount = "{name}"\nport = {self.port}\ndata_dir = "{data}"\nstake = 20_000_000_000\n'
            f'lanes = 4\n[pricing]\nprice_per_cu = {price}\nutilization_markup = 0\n'
            f"[intervals]\npoll_interval_s = 0.3\nhousekeeping_interval_s = 0.3\n"
            # the missed-deadline act asks an 8 s deadline 4 s after the expiry, to stay short: the default
            # terms caps (a 30 s margin at 1 CU/s, docs/SPEC.md §13) would refuse it as a forced-miss risk
            f"[terms]\nmin_run_margin_s = 2\ncu_per_s = 10\n"
            f'[testing]\nbehaviour = "{behaviour}"\n')
        env = dict(os.environ, MERCATO_HOME=str(net.settings.home), MERCATO_DEPLOYMENT=str(net.settings.deployment_path))
        self.log = work / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "mercato", "provider", "start", "--config", str(config)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))

    def wait_ready(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v1/info", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class ExplorerProcess:
    """`mercato explorer` on this devnet, in its own process at a lower priority so that it never
    slows the agents' answers to an auction."""

    def __init__(self, net: Devnet, work: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, MERCATO_HOME=str(net.settings.home), MERCATO_DEPLOYMENT=str(net.settings.deployment_path))
        env.pop("MERCATO_RPC_URL", None)
        with (work / "explorer.log").open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "mercato", "explorer", "--port", self.url.rsplit(":", 1)[1],
                                          "--db", str(work / "explorer.sqlite")], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=str(ROOT), preexec_fn=lambda: os.nice(10))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def snapshot(chain: MarketClient, dep: Deployment, names: list[str]) -> dict[str, dict[str, int]]:
    rows = {}
    for name in names:
        address = dep.accounts[name]
        info = chain.provider_info(address)
        rows[name] = {"wallet": chain.token_balance(address), "escrow": chain.balance_of(address),
                      "stake": info.stake + info.unbonding, "earnings": info.earnings}
    rows["Market contract"] = {"wallet": chain.token_balance(chain.market), "escrow": 0, "stake": 0, "earnings": 0}
    return rows


def show(title: str, rows: dict[str, dict[str, int]]) -> None:
    table = Table(title=title)
    for col in ("account", "wallet mUSD", "escrow", "stake", "earnings"):
        table.add_column(col, justify="left" if col == "account" else "right")
    for name, r in rows.items():
        table.add_row(name, money(r["wallet"]), money(r["escrow"]), money(r["stake"]), money(r["earnings"]))
    console.print(table)


def on_event(names: dict[str, str]):
    def show_event(ev: Event) -> None:
        if isinstance(ev, BidsCollected):
            console.print(f"  auction: {ev.asked} providers asked, {ev.compliant} compliant bids in {ev.window_ms:.0f} ms")
        elif isinstance(ev, WinnerChosen):
            runner = f" (runner-up {money(ev.runner_up_price)})" if ev.runner_up_price is not None else ""
            console.print(f"  winner: [bold]{names.get(ev.provider.lower(), ev.provider)}[/bold] at "
                          f"{money(ev.price)} mUSD{runner}, collateral {money(ev.collateral)}")
        elif isinstance(ev, Committed):
            console.print(f"  result seal committed on-chain {ev.seal[:18]}…")
        elif isinstance(ev, Verified):
            console.print(f"  [green]sealed[/green]: {ev.outputs} output file(s) match the provider's on-chain seal "
                          f"(result root {ev.result_root[:16]}…)")
    return show_event


async def run_jobs(dep: Deployment, names: dict[str, str], data: Path) -> None:
    market_terms = dict(limits=Limits(fuel=200 * FUEL_PER_CU, wall_clock_s=300), max_price=1 * UNIT,
                        deadline_s=600, accept_window_s=120)
    jobs = [
        ("Monte Carlo pi (C → WASM)",
         JobRequest.from_files(ROOT / "examples/wasm/montecarlo.wasm", args=["2000000", "7"], **market_terms)),
        ("matrix multiply (C → WASM)",
         JobRequest.from_files(ROOT / "examples/wasm/matmul.wasm", args=["120"], **market_terms)),
        ("SHA-256 hash chain over an input (C → WASM)",
         JobRequest.from_files(ROOT / "examples/wasm/hashchain.wasm", args=["/input/data.bin", "20000"],
                               inputs={"data.bin": data}, **market_terms)),
        ("numpy/scipy numerics (Python → WASM)",
         JobRequest.from_files(ROOT / "examples/python/numeric.py", **market_terms)),
    ]
    async with Market.connect(deployment=dep, key=dep.keys["requester1"], on_event=on_event(names)) as market:
        await market.deposit(100 * UNIT)
        console.print("requester1 deposited 100 mUSD into escrow")
        for title, job in jobs:
            console.rule(title)
            result = await market.run(job)
            line = result.stdout.decode(errors="replace").strip().splitlines()
            console.print(f"  {result.outcome}, {result.fuel_used:,} fuel; paid {money(result.price)} mUSD; "
                          f"stdout: {line[-1][:90] if line else ''}")


async def missed_deadline(dep: Deployment) -> None:
    console.rule("a provider that never commits")
    job = JobRequest.from_files(ROOT / "examples/wasm/montecarlo.wasm", args=["100000", "1"],
                                limits=Limits(fuel=5 * FUEL_PER_CU), max_price=1 * UNIT, deadline_s=8, accept_window_s=4)
    async with Market.connect(deployment=dep, key=dep.keys["requester1"]) as market:
        try:
            await market.run(job)
        except ProviderMissedDeadline as exc:
            console.print(f"  [yellow]{exc}[/yellow]")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="mercato-demo-"))
    cache = Path(os.environ.get("MERCATO_CACHE", Path.home() / ".cache" / "mercato"))
    cache.mkdir(parents=True, exist_ok=True)
    port = free_port()
    net = Devnet(Settings(home=work / "home", rpc_url=f"http://127.0.0.1:{port}", devnet_port=port))
    agents: list[Agent] = []
    explorer: ExplorerProcess | None = None
    console.rule("[bold]Mercato demo: a compute market on a local devnet")
    status = net.start()
    try:
        dep = status.deployment
        assert dep is not None
        console.print(f"devnet {status.rpc_url} (chain {status.chain_id}) · Market {dep.market} · court {dep.court} · token {dep.token}")
        explorer = ExplorerProcess(net, work)
        console.print(f"explorer (live dashboard of this market): [bold]{explorer.url}[/bold]")
        chain = MarketClient.from_deployment(net._web3(), dep, dep.keys["deployer"])
        names = ["requester1", *PROVIDERS, "provider4"]
        before = snapshot(chain, dep, names)
        show("balances before", before)
        agents = [Agent(n, p, net, work, cache) for n, p in PROVIDERS.items()]
        for a in agents:
            a.wait_ready()
        console.print("providers up: " + ", ".join(f"{a.name} ({money(PROVIDERS[a.name])} mUSD/CU) on :{a.port}"
                                                    for a in agents))
        data = work / "data.bin"
        data.write_bytes(bytes(range(256)) * 64)
        by_address = {dep.accounts[n].lower(): n for n in names}
        asyncio.run(run_jobs(dep, by_address, data))

        console.print("waiting for the providers to finalize after the challenge window and claim…")
        end = time.monotonic() + 60
        while time.monotonic() < end and any(chain.provider_info(dep.accounts[n]).locked for n in PROVIDERS):
            time.sleep(0.5)
        lazy = Agent("provider4", 1, net, work, cache, behaviour="never_commit")
        agents.append(lazy)
        lazy.wait_ready()
        asyncio.run(missed_deadline(dep))
        for n in names[1:]:
            rep = chain.reputation(dep.accounts[n])
            console.print(f"{n}: completed {rep.completed}, missed {rep.missed}, slashed {rep.slashed}, "
                          f"volume {money(rep.volume)} mUSD")
        time.sleep(2)  # let the last claims land
        after = snapshot(chain, dep, names)
        show("balances after", after)
        total_before = sum(r["wallet"] for r in before.values())
        total_after = sum(r["wallet"] for r in after.values())
        held = after["Market contract"]["wallet"]
        # every deal is settled, so nothing is locked and the Market owes exactly what it holds
        settled = all(chain.provider_info(dep.accounts[n]).locked == 0 for n in names)
        # penalties are burned: kept by the Market forever, owed to nobody (the missed deal's, here)
        burned = chain.burned()
        owed = sum(r["escrow"] + r["stake"] + r["earnings"] for n, r in after.items() if n != "Market contract")
        ok = total_before == total_after and held == owed + burned and settled
        console.print(f"tokens across these accounts: before {money(total_before)} = after {money(total_after)}; "
                      f"the Market holds {money(held)} = escrow + stake + earnings {money(owed)} "
                      f"+ burned penalties {money(burned)}: "
                      + ("[green]balances add up[/green]" if ok else "[red]MISMATCH[/red]"))
        if explorer is not None:
            console.print(f"explorer: {explorer.url} (stops with the demo; `mercato explorer` serves a running devnet)")
        return 0 if ok else 1
    except MercatoError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True)
        return 1
    finally:
        if explorer is not None:
            explorer.stop()
        for a in agents:
            a.stop()
        net.stop()
        console.print("stopped the explorer, the providers and the devnet")


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    console.print(f"demo finished in {time.monotonic() - t0:.0f} s")
    sys.exit(code)
