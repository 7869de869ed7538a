"""The local devnet: anvil from node_modules, its state in a file, the Market deployed.

    >>> net = Devnet(settings)            # doctest: +SKIP
    >>> net.start().deployment.market     # doctest: +SKIP
    '0x5FbDB2315678afecb367f032d93F642f64180aa3'
    >>> net.stop()                        # doctest: +SKIP

State persistence: anvil runs with ``--state <dir>/state.json`` (load on start, dump on
exit) and ``--state-interval`` (a periodic dump, so even a killed node loses little).
:meth:`Devnet.stop` sends SIGTERM and waits, so anvil writes the file before it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from web3 import Web3

from mercato.chain.artifacts import load_artifacts
from mercato.chain.deployment import DEV_ACCOUNT_COUNT, Deployment, DevnetParams, deploy, dev_accounts, fund
from mercato.chain.rpc import RetryingProvider
from mercato.config import RetryPolicy, Settings
from mercato.errors import DevnetError, RpcUnavailable

__all__ = ["Devnet", "DevnetStatus", "resolve_anvil", "increase_time", "FUND_AMOUNT"]

FUND_AMOUNT = 1_000_000 * 10**6  # 1,000,000 mUSD (6 decimals) per dev account
_STATE_INTERVAL = 5  # seconds between periodic state dumps


@dataclass(frozen=True, slots=True)
class DevnetStatus:
    """What ``mercato devnet status`` shows."""

    running: bool
    rpc_url: str
    pid: int | None = None
    chain_id: int | None = None
    block: int | None = None
    deployment: Deployment | None = None


def resolve_anvil(path: Path) -> Path:
    """The native anvil binary behind the npm wrapper (signals then reach anvil itself)."""
    real = path.resolve() if path.exists() else path
    if real.name == "bin.mjs":  # @foundry-rs/anvil's node launcher: use the platform package
        for candidate in sorted(real.parent.parent.glob("anvil-*/bin/anvil")):
            if os.access(candidate, os.X_OK):
                return candidate
    if real.exists():
        return real
    found = shutil.which(str(path))
    if found:
        return Path(found)
    raise DevnetError(f"anvil not found at {path}: run `npm install` in the project root "
                      "(or point MERCATO_ANVIL at an anvil binary)")


def increase_time(w3: Web3, seconds: int) -> None:
    """Move the devnet clock forward and mine a block (tests and demos)."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


class Devnet:
    """Start/stop/status/reset of one anvil under ``settings.devnet_dir``."""

    def __init__(self, settings: Settings, params: DevnetParams = DevnetParams(),
                 fund_amount: int = FUND_AMOUNT) -> None:
        self.settings = settings
        self.params = params
        self.fund_amount = fund_amount
        self.dir = settings.devnet_dir
        self.state_file = self.dir / "state.json"
        self.pid_file = self.dir / "anvil.pid"
        self.log_file = self.dir / "anvil.log"
        self.rpc_url = f"http://{settings.devnet_host}:{settings.devnet_port}"

    # queries ------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our anvil if it is alive (the pid file holds "<pid> <port>")."""
        try:
            fields = self.pid_file.read_text().split()
            pid, port = int(fields[0]), int(fields[1])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        if port != self.settings.devnet_port:
            raise DevnetError(f"the devnet in {self.dir} already runs on port {port}: use that port, "
                              "or `mercato devnet stop` it first")
        return pid

    def _web3(self, attempts: int = 1) -> Web3:
        return Web3(RetryingProvider(self.rpc_url, RetryPolicy(attempts=attempts, base_delay=0.1), timeout=2.0))

    def status(self) -> DevnetStatus:
        """Running or not, and what is deployed."""
        pid = self.pid()
        if pid is None:
            return DevnetStatus(False, self.rpc_url, deployment=self._deployment_or_none())
        try:
            w3 = self._web3()
            return DevnetStatus(True, self.rpc_url, pid, w3.eth.chain_id, w3.eth.block_number,
                                self._deployment_or_none())
        except RpcUnavailable:
            return DevnetStatus(False, self.rpc_url, pid, deployment=self._deployment_or_none())

    def _deployment_or_none(self) -> Deployment | None:
        path = self.settings.deployment_path
        return Deployment.load(path) if path.exists() else None

    # lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> DevnetStatus:
        """Start anvil (idempotent), deploy and fund on first start; returns the status."""
        if self.pid() is None:
            self._spawn(timeout)
        self._ensure_deployed()
        return self.status()

    def _spawn(self, timeout: float) -> None:
        if _port_answers(self._web3()):
            raise DevnetError(f"something else already serves {self.rpc_url}: stop it, or pick "
                              "another port with MERCATO_DEVNET_PORT")
        anvil = resolve_anvil(self.settings.anvil_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(anvil), "--host", self.settings.devnet_host, "--port", str(self.settings.devnet_port),
               "--chain-id", str(self.settings.chain_id), "--accounts", str(DEV_ACCOUNT_COUNT),
               # a block per transaction, and one every second besides: the audit lottery's beacon
               # is a block after the commit, which an idle automine-only node would never mine
               "--mixed-mining", "--block-time", "1",
               "--state", str(self.state_file),
               "--state-interval", str(_STATE_INTERVAL)]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # outlives the CLI process
        self.pid_file.write_text(f"{proc.pid} {self.settings.devnet_port}")
        deadline = time.monotonic() + timeout
        w3 = self._web3()
        while not _port_answers(w3):
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise DevnetError(f"anvil exited with code {proc.returncode}: see {self.log_file}\n"
                                  + _tail(self.log_file))
            if time.monotonic() > deadline:
                self.stop()
                raise DevnetError(f"anvil did not answer on {self.rpc_url} within {timeout:.0f} s: "
                                  f"see {self.log_file}")
            time.sleep(0.1)

    def _ensure_deployed(self) -> Deployment:
        w3 = self._web3(attempts=3)
        existing = self._deployment_or_none()
        # a deployment from before the court (no court recorded) is redeployed: today's clients need both
        if (existing is not None and existing.chain_id == w3.eth.chain_id and existing.court
                and w3.eth.get_code(existing.market) and w3.eth.get_code(existing.court)):
            return existing
        keys = dev_accounts()
        arts = load_artifacts(self.settings.artifacts_dir)
        dep = deploy(w3, arts, keys["deployer"], self.params, rpc_url=self.rpc_url)
        accounts = {name: _address(key) for name, key in keys.items()}
        dep = replace(dep, accounts=accounts, keys=keys)
        fund(w3, dep, keys["deployer"], accounts, self.fund_amount)
        dep.save(self.settings.deployment_path)
        return dep

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM anvil (it dumps its state on exit) and wait; False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)  # last resort: the periodic dump is at most a few s old
                break
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def reset(self) -> DevnetStatus:
        """Stop, wipe the chain state and deployment, start fresh and redeploy."""
        self.stop()
        self.state_file.unlink(missing_ok=True)
        self.settings.deployment_path.unlink(missing_ok=True)
        return self.start()


def _address(key: str) -> str:
    from eth_account import Account

    return str(Account.from_key(key).address)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no procfs here: trust kill(0)
        return True
    try:  # a zombie is dead, and a recycled pid is not our anvil
        return ") Z" not in (proc / "stat").read_text() and b"anvil" in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def _port_answers(w3: Web3) -> bool:
    try:
        w3.eth.chain_id
        return True
    except RpcUnavailable:
        return False


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
