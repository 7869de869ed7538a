"""Provider integration: a real anvil (one per session), real agent processes, real wasmtime."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from eth_account import Account
from eth_account.messages import encode_defunct

from mercato.chain import Deployment, Devnet, DevnetParams, MarketClient, connect, dev_accounts
from mercato.config import RetryPolicy, Settings
from mercato.requester._signing import RequestSigner

ROOT = Path(__file__).resolve().parents[3]
WASM = ROOT / "examples" / "wasm" / "montecarlo.wasm"


DEV_KEYS = dev_accounts()


def signer(who: str | None) -> httpx.Auth | None:
    """An ``httpx`` auth signing provider API requests as ``who`` (a dev account's name or a 0x
    private key; docs/SPEC.md §13), or None for an unsigned request."""
    if who is None:
        return None
    account = Account.from_key(DEV_KEYS.get(who, who))
    return RequestSigner(account.address,
                         lambda text: bytes(Account.sign_message(encode_defunct(text=text), account.key).signature))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running_devnet(home: Path, params: DevnetParams) -> Iterator[Devnet]:
    """A devnet on a free port under ``home`` for the life of a fixture."""
    net = Devnet(Settings(home=home, devnet_port=free_port(), rpc_url="", retry=RetryPolicy(attempts=3, base_delay=0.1)),
                 params)
    try:
        net.start()
        yield net
    finally:  # a start that fails after spawning anvil (a deployment that reverts) must not leave it running
        net.stop()


def deployment_of(net: Devnet) -> Deployment:
    """The deployment of a running devnet."""
    dep = net.status().deployment
    assert dep is not None
    return dep


def funded_client(dep: Deployment, deposit: int, account: str = "requester1") -> MarketClient:
    """A MarketClient for a dev ``account`` with ``deposit`` base units moved into its escrow."""
    client = MarketClient.from_deployment(connect(dep.rpc_url, RetryPolicy(attempts=3, base_delay=0.1)), dep,
                                          dep.keys[account])
    client.deposit(deposit)
    return client


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    # audits at 0.01 % unless a test asks for more: a deal sent to audit by chance would wait
    # on auditors drawn from other tests' agents, long gone (tests/integration/market/test_verification.py
    # asks for audits explicitly, on its own devnet)
    yield from running_devnet(tmp_path_factory.mktemp("provider-devnet"), DevnetParams(audit_floor_bps=1))


@pytest.fixture(scope="session")
def deployment(devnet: Devnet) -> Deployment:
    return deployment_of(devnet)


@pytest.fixture(scope="session")
def w3(deployment: Deployment) -> Web3:
    return connect(deployment.rpc_url, RetryPolicy(attempts=3, base_delay=0.1))


@pytest.fixture(scope="session")
def requester(deployment: Deployment) -> MarketClient:
    return funded_client(deployment, 10_000 * 10**6)


@dataclass
class AgentProcess:
    """``mercato provider start`` in a subprocess, on its own port and data dir."""

    config: Path
    port: int
    env: dict[str, str]
    log: Path
    account: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> AgentProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> AgentProcess:
        """Start the process without waiting for its API (``wait_ready`` waits)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "mercato", "provider", "start", "--config",
                                          str(self.config)], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=str(ROOT))
        return self

    def wait_ready(self, timeout: float = 60.0) -> AgentProcess:
        """Return once the agent's API answers; fail with its log if it exits or stays silent."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/info", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"agent did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    # the API's requests, signed as ``as_`` (a dev account's name or a 0x key; None: unsigned)
    def get(self, path: str, *, as_: str | None = "requester1") -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, auth=signer(as_))

    def post(self, path: str, body: Any, *, as_: str | None = "requester1") -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=30, auth=signer(as_))

    def put(self, path: str, data: bytes, *, as_: str | None = "requester1") -> httpx.Response:
        return httpx.put(self.url + path, content=data, timeout=30, auth=signer(as_))

    def delete(self, path: str, *, as_: str | None = "requester1") -> httpx.Response:
        return httpx.delete(self.url + path, timeout=10, auth=signer(as_))

    def wait_state(self, deal_id: str, *states: str, timeout: float = 60.0,
                   as_: str | None = "requester1") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.get(f"/v1/deals/{deal_id}", as_=as_).json()
            if last["state"] in states:
                return last
            time.sleep(0.1)
        raise AssertionError(f"deal {deal_id} is {last.get('state')}, not {states}:\n{self.log.read_text()[-3000:]}")


def start_agent(root: Path, devnet: Devnet, account: str, *, behaviour: str = "honest", lanes: int = 2,
                stake: int = 50_000 * 10**6, pricing: dict[str, Any] | None = None, name: str | None = None,
                **extra: Any) -> AgentProcess:
    """``mercato provider start`` for one account, waiting until it answers (see ``agent_process``)."""
    return agent_process(root, devnet, account, behaviour=behaviour, lanes=lanes, stake=stake, pricing=pricing,
                         name=name, **extra).start()


def start_agents(root: Path, devnet: Devnet, accounts: dict[str, dict[str, Any]],
                 timeout: float = 180.0) -> list[AgentProcess]:
    """Several agents at once (``{account: start_agent keyword arguments}``): all launched, then
    all waited for, so their start-ups overlap."""
    agents = [agent_process(root, devnet, account, **kw).launch() for account, kw in accounts.items()]
    return [a.wait_ready(timeout) for a in agents]


def agent_process(root: Path, devnet: Devnet, account: str, *, behaviour: str = "honest", lanes: int = 2,
                  stake: int = 50_000 * 10**6, pricing: dict[str, Any] | None = None, name: str | None = None,
                  defaults: bool = False, **extra: Any) -> AgentProcess:
    """``mercato provider start`` for ``account`` (a dev account's name, or a 0x key with ``name``)
    against ``devnet``, its config, data, log and interpreter cache under ``root``; not started
    (``launch``/``start`` it). ``defaults``: the default agent config apart from the account, port,
    data dir and stake (and ``extra``): no test lanes, intervals, pricing or behaviour."""
    port = free_port()
    name = name or account
    lines = [f'account = "{account}"', f"port = {port}", f'data_dir = "{name}"', f"stake = {stake}"]
    if not defaults:
        lines += [f"lanes = {lanes}", "poll_interval_s = 0.2", "housekeeping_interval_s = 0.2"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}".replace("'", '"') for k, v in extra.items()]
    if not defaults:
        lines += ["[pricing]", *(f"{k} = {v!r}" for k, v in (pricing or {}).items()),
                  "[testing]", f'behaviour = "{behaviour}"']
    config = root / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, MERCATO_HOME=str(devnet.settings.home),
               MERCATO_DEPLOYMENT=str(devnet.settings.deployment_path), MERCATO_CACHE=str(root / "cache"))
    env.pop("MERCATO_RPC_URL", None)
    return AgentProcess(config, port, env, root / f"{name}.log", name)


@pytest.fixture
def spawn_agent(tmp_path: Path, devnet: Devnet, deployment: Deployment) -> Iterator[Any]:
    made: list[AgentProcess] = []

    def spawn(account: str, behaviour: str = "honest", lanes: int = 2, pricing: dict[str, Any] | None = None,
              **extra: Any) -> AgentProcess:
        agent = start_agent(tmp_path, devnet, account, behaviour=behaviour, lanes=lanes, pricing=pricing, **extra)
        made.append(agent)
        return agent

    yield spawn
    for agent in made:
        agent.kill(signal.SIGTERM)


# The lottery (docs/SPEC.md §14.3) draws on the hash of block committed_block + 2. The devnet mines a
# block every second besides one per transaction; a test waiting on a draw (and so on a
# finalization) mines blocks too, to get there sooner.
def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks on the devnet (``anvil_mine``)."""
    w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def wait_mining(w3: Web3, predicate: Any, what: str, timeout: float = 60.0, every: float = 1.0) -> None:
    """Wait for ``predicate()``, mining a block every ``every`` seconds meanwhile, so that deals
    committed by an idle chain reach their lottery's beacon block."""
    end = time.monotonic() + timeout
    next_mine = time.monotonic() + every
    while time.monotonic() < end:
        if predicate():
            return
        if time.monotonic() >= next_mine:
            mine(w3)
            next_mine = time.monotonic() + every
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


_LIVE = ("accepted", "running", "executed", "committed")  # deals that hold a lane until finalized


def metrics_of(agent: AgentProcess) -> dict[str, float]:
    """An agent's ``/metrics`` as ``{'name{labels}': value}``."""
    out: dict[str, float] = {}
    for line in agent.get("/metrics").text.splitlines():
        m = re.fullmatch(r"([a-z_]+(?:\{[^}]*\})?) (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def live_deals(agents: list[AgentProcess]) -> int:
    """How many deals of ``agents`` still hold a lane (accepted, running, executed or committed)."""
    return int(sum(metrics_of(a).get(f'mercato_provider_deals{{state="{s}"}}', 0) for a in agents for s in _LIVE))


def deal_events(client: MarketClient, name: str, deal_id: bytes | str) -> list[dict[str, Any]]:
    """The args of every ``name`` event logged for ``deal_id`` since the deployment."""
    if isinstance(deal_id, str):
        deal_id = bytes.fromhex(deal_id.removeprefix("0x"))
    logs = client.event_logs(name, argument_filters={"deal_id": deal_id})  # the Market's or the court's
    return [dict(log["args"]) for log in logs]


_CLOSING = ("DealFinalized", "DealReclaimed", "AuditResolved")


def wait_deals_closed(client: MarketClient, providers: list[str], timeout: float = 90.0) -> None:
    """Wait (mining) until every deal opened with one of ``providers`` (addresses) has closed:
    finalized, reclaimed or resolved by an audit. A test that snapshots a balance calls this first,
    so that an earlier test's deal settling late (its audit fee coming back) does not move it."""
    def opened() -> set[bytes]:
        logs = client.event_logs(
            "DealOpened", argument_filters={"provider": [Web3.to_checksum_address(p) for p in providers]})
        return {bytes(log["args"]["deal_id"]) for log in logs}

    def closed() -> set[bytes]:
        done: set[bytes] = set()
        for name in _CLOSING:
            logs = client.event_logs(name)  # AuditResolved: the court's
            done |= {bytes(log["args"]["deal_id"]) for log in logs}
        return done

    wait_mining(client.w3, lambda: opened() <= closed(), f"every deal with {len(providers)} provider(s) closed",
                timeout)
