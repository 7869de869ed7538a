"""Helpers of the chaos test: an RPC fault injector, the requester driver process, and the
books (every deal's outcome and the token identities) rebuilt from the chain."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from mercato.chain import Deployment, MarketClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DRIVER = HERE / "requester_driver.py"


class RpcProxy:
    """A TCP proxy in front of the node: everyone's RPC URL. ``cut()`` drops every open
    connection and refuses new ones (accepted, then closed at once) until ``restore()``."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, 0))
        self.server.listen(256)
        self.port = int(self.server.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self.refused = 0
        threading.Thread(target=self._accept, name="rpc-proxy", daemon=True).start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            pairs, self._pairs = set(self._pairs), set()
        for a, b in pairs:
            _close(a)
            _close(b)

    def restore(self) -> None:
        self._cut.clear()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self.server)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self._cut.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        a, b = pair
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs.discard(pair)
            _close(a)
            _close(b)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


@dataclass
class Driver:
    """The requester: ``requester_driver.py`` in its own process (SIGKILLed and restarted)."""

    deployment: Path
    home: Path
    account: str
    log: Path
    stop_file: Path
    seed: int
    concurrency: int = 2
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Driver:
        self.starts += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(DRIVER), "--deployment", str(self.deployment), "--home", str(self.home),
                 "--account", self.account, "--stop-file", str(self.stop_file), "--seed",
                 str(self.seed * 1000 + self.starts), "--concurrency", str(self.concurrency)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


# the books ----------------------------------------------------------------------------------------
_EVENTS = ("Deposited", "Withdrawn", "DealOpened", "ResultCommitted", "DealFinalized", "DealReclaimed",
           "DealDrawn", "AuditorDrawn", "AuditResolved", "AuditorMissed", "BountyPaid", "Burned", "Staked",
           "StakeWithdrawn", "EarningsClaimed", "ProviderSlashed", "StakeForfeited")
PASSED, FAILED, VOID = 3, 4, 5


@dataclass
class Books:
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def read(cls, client: MarketClient) -> Books:
        found = {}
        for name in _EVENTS:
            logs = client.event_logs(name)  # the Market's or the court's
            found[name] = [dict(log["args"]) for log in logs]
        return cls(found)

    def by_deal(self, name: str) -> dict[bytes, list[dict[str, Any]]]:
        out: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
        for args in self.events[name]:
            out[bytes(args["deal_id"])].append(args)
        return out

    def opened(self) -> dict[bytes, dict[str, Any]]:
        return {bytes(a["deal_id"]): a for a in self.events["DealOpened"]}

    def closing(self) -> dict[bytes, list[str]]:
        """Every opened deal's closing outcomes: finalized, reclaimed, or refunded by its audit."""
        out: dict[bytes, list[str]] = {d: [] for d in self.opened()}
        for a in self.events["DealFinalized"]:
            out.setdefault(bytes(a["deal_id"]), []).append("finalized")
        for a in self.events["DealReclaimed"]:
            out.setdefault(bytes(a["deal_id"]), []).append("reclaimed")
        for a in self.events["AuditResolved"]:
            if int(a["outcome"]) in (FAILED, VOID):
                out.setdefault(bytes(a["deal_id"]), []).append("refunded")
        return out

    def requester_expected(self, requester: str) -> int:
        """What ``requester``'s escrow (available + pending) must hold, from the events alone:
        deposits − withdrawals − Σ(price + audit fee) of its deals opened + refunds and miss
        penalties of reclaimed ones + the audit fee of each unaudited finalized one + what audits
        paid it (bounties, no-show penalties, refunds)."""
        req = Web3.to_checksum_address(requester)
        total = sum(int(a["amount"]) for a in self.events["Deposited"] if a["account"] == req)
        total -= sum(int(a["amount"]) for a in self.events["Withdrawn"] if a["account"] == req)
        mine = {d: a for d, a in self.opened().items() if a["requester"] == req}
        finalized = {bytes(a["deal_id"]) for a in self.events["DealFinalized"]}
        audited = {bytes(a["deal_id"]) for a in self.events["DealDrawn"] if a["audited"]}
        resolved = self.by_deal("AuditResolved")
        bounties = self.by_deal("BountyPaid")
        seats = self.by_deal("AuditorDrawn")
        for d, a in mine.items():
            price, fee = int(a["price"]), int(a["audit_fee"])
            total -= price + fee
            if d in finalized and d not in audited:
                total += fee
            if d in audited:
                total += sum(int(b["amount"]) for b in bounties.get(d, []) if b["to"] == req)
                first = {s["auditor"] for s in seats.get(d, []) if int(s["seat"]) == 0}
                fee_to_auditor = any(b["to"] in first and int(b["amount"]) == fee for b in bounties.get(d, []))
                for r in resolved.get(d, []):
                    outcome = int(r["outcome"])
                    if outcome == VOID:
                        total += price + fee
                    elif outcome in (PASSED, FAILED):
                        total += (0 if fee_to_auditor else fee) + (price if outcome == FAILED else 0)
        for a in self.events["DealReclaimed"]:
            if a["requester"] == req:
                total += int(a["refund"])  # the miss penalty is burned, not paid to the requester
        # no-show penalties are burned: none reaches the requester
        return total

    def provider_expected(self, provider: str) -> tuple[int, int]:
        """``(stake + unbonding, unclaimed earnings)`` a provider must hold, from the events:
        staked − withdrawn − slashes (miss and no-show penalties) − forfeits; and the prices of its
        finalized deals − what it claimed."""
        p = Web3.to_checksum_address(provider)
        stake = sum(int(a["amount"]) for a in self.events["Staked"] if a["provider"] == p)
        stake -= sum(int(a["amount"]) for a in self.events["StakeWithdrawn"] if a["provider"] == p)
        stake -= sum(int(a["amount"]) for a in self.events["ProviderSlashed"] if a["provider"] == p)
        stake -= sum(int(a["amount"]) for a in self.events["StakeForfeited"] if a["provider"] == p)
        # a no-show's penalty is in ProviderSlashed (never committed) or StakeForfeited (committed, silent)
        opened = self.opened()
        earned = sum(int(opened[bytes(a["deal_id"])]["price"]) for a in self.events["DealFinalized"]
                     if opened[bytes(a["deal_id"])]["provider"] == p)
        earned -= sum(int(a["amount"]) for a in self.events["EarningsClaimed"] if a["provider"] == p)
        return stake, earned


def token_holders(w3: Web3, dep: Deployment) -> tuple[Any, set[str]]:
    """The mock token contract and every address its Transfer events ever named."""
    token = w3.eth.contract(address=Web3.to_checksum_address(dep.token), abi=dep.abi["token"])
    holders = set()
    for log in token.events.Transfer().get_logs(from_block=0):
        args = log["args"]
        for key in ("sender", "receiver", "from", "to", "owner"):
            if key in args:
                holders.add(Web3.to_checksum_address(args[key]))
    holders.discard("0x0000000000000000000000000000000000000000")
    return token, holders


def wait_until(predicate: Any, timeout: float, every: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
