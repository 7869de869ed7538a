"""Downloading a result and proving it is the one sealed on-chain.

The provider's receipt is a claim; the chain holds
``seal = keccak256(abi.encode(provider, deal_id, result_root, fuel_used, salt))``.
We download stdout, stderr and every output, recompute the result root from those exact
bytes plus the receipt's outcome and exit code, and check the seal against the chain.

``download_caps(spec)`` gives the size caps to download a deal of ``spec`` with: a batch's
outputs hold every task's files (docs/SPEC.md §17), so its outputs cap is
``batch_output_cap`` rather than one job's ``limits.output_bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from eth_utils import event_abi_to_log_topic

from mercato.chain import MarketClient
from mercato.chain.api import MarketApi
from mercato.domain.batch import batch_output_cap
from mercato.domain.deals import ZERO32, Deal, Terms, hash_prefix
from mercato.domain.jobs import JobSpec
from mercato.domain.sealing import BoxKey, box_query, open_answer
from mercato.domain.wire import DealStatusMsg
from mercato.errors import ResultMismatch, SealError
from mercato.verification.lottery import seal_of
from mercato.verification.result_root import result_root

__all__ = ["Download", "SealReader", "LogSealReader", "LaneSealReader", "seal_reader_for", "download",
           "download_caps", "verify", "write_outputs"]

Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Download:
    """A result as fetched: the exact bytes and the receipt fields they must match."""

    outcome: str
    exit_code: int | None
    fuel_used: int
    result_root: str
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]
    claimed: dict[str, tuple[str, int]]  # path -> (sha256 hex, size) as the receipt says


class SealReader(Protocol):
    """Where the committed deal (its seal, commit time and block) is read from the chain."""

    async def committed(self, terms: Terms, since: int, claimed: bytes) -> Deal | None: ...


class LogSealReader:
    """Rebuilds the committed ``Deal`` from ``DealOpened.seal`` (open-and-commit) or
    ``ResultCommitted`` and the block it was mined in."""

    def __init__(self, client: MarketClient, call: Call) -> None:
        self.client, self.call = client, call
        abi = {a["name"]: a for a in client.contract.abi if a["type"] == "event"}
        self.topics = {name: "0x" + event_abi_to_log_topic(abi[name]).hex()  # type: ignore[arg-type]
                       for name in ("DealOpened", "ResultCommitted")}

    async def committed(self, terms: Terms, since: int, claimed: bytes) -> Deal | None:
        return await self.call(self._read, terms)

    def _read(self, terms: Terms) -> Deal | None:
        events, deal_id = self.client.contract.events, "0x" + terms.deal_id.hex()
        for name in ("DealOpened", "ResultCommitted"):
            logs = self.client.w3.eth.get_logs({"address": self.client.contract.address,  # type: ignore[typeddict-item]
                                                "topics": [self.topics[name], deal_id],
                                                "fromBlock": self.client.from_block, "toBlock": "latest"})
            for log in logs:
                seal = bytes(getattr(events, name)().process_log(log)["args"]["seal"])
                if seal != ZERO32:
                    block = self.client.w3.eth.get_block(log["blockNumber"])
                    return Deal(terms, seal, int(block["timestamp"]), int(log["blockNumber"]))
        return None


class LaneSealReader:
    """For a ``MarketApi`` without logs (the fake): the lane word stores the hash of the deal
    with its seal, commit time and block, so try the seal the provider claims at each commit
    time since the RFQ and each recent block. Works while the deal is open and undrawn."""

    def __init__(self, api: MarketApi, call: Call, blocks: int = 64) -> None:
        self.api, self.call, self.blocks = api, call, blocks

    async def committed(self, terms: Terms, since: int, claimed: bytes) -> Deal | None:
        if len(claimed) != 32 or claimed == ZERO32:
            return None
        lane = await self.call(self.api.lane, terms.provider, terms.lane)
        now = await self.call(self.api.now)
        head = await self.call(self.api.block_number)
        for committed_at in range(max(0, since), now + 1):
            for block in range(max(0, head - self.blocks), head + 1):
                deal = Deal(terms, claimed, committed_at, block)
                if hash_prefix(deal) == lane.deal_hash_prefix:
                    return deal
        return None


def seal_reader_for(api: MarketApi, call: Call) -> LogSealReader | LaneSealReader:
    """Logs on a real node, the lane word on anything else."""
    return LogSealReader(api, call) if isinstance(api, MarketClient) else LaneSealReader(api, call)


async def _get(http: httpx.AsyncClient, url: str, what: str, cap: int, box: BoxKey | None = None) -> bytes:
    resp = await http.get(url, params=box_query(box))
    if resp.status_code != 200:
        raise ResultMismatch(f"the provider did not serve {what} ({resp.status_code} at {url}): "
                             "the result cannot be verified", what=what)
    try:
        data = open_answer(resp.content, resp.headers, box)
    except SealError as exc:
        raise ResultMismatch(f"{what} came sealed but does not open ({exc}): the result cannot be verified",
                             what=what) from None
    if len(data) > cap:
        raise ResultMismatch(f"{what} is {len(data)} bytes, over the job's cap of {cap}", what=what)
    return data


def download_caps(spec: JobSpec) -> tuple[int, int]:
    """``(stdout cap, outputs cap)`` for ``download`` of a deal of ``spec``: each of stdout and
    stderr at most ``limits.stdout_bytes`` (a batch's are empty), the outputs together at most
    ``limits.output_bytes``, or for a batch every task's files at their caps (``batch_output_cap``)."""
    limits = spec.limits
    if not spec.tasks:
        return limits.stdout_bytes, limits.output_bytes
    return limits.stdout_bytes, batch_output_cap(len(spec.tasks), limits.output_bytes, limits.stdout_bytes)


async def download(http: httpx.AsyncClient, endpoint: str, status: DealStatusMsg, caps: tuple[int, int], *,
                   box: BoxKey | None = None) -> Download:
    """Fetch stdout, stderr and every output the receipt lists. ``caps`` is ``(stdout cap,
    outputs cap)`` (``download_caps``): stdout and stderr are capped each, the outputs each and
    together (an honest runtime never leaves more under /output than the cap). With ``box``,
    each answer is asked for sealed to it (``?box=``) and opened here."""
    receipt = status.receipt or {}
    base = f"{endpoint.rstrip('/')}/v1/deals/{status.deal_id}"
    stdout_cap, output_cap = caps
    stdout = await _get(http, base + "/stdout", "stdout", stdout_cap, box)
    stderr = await _get(http, base + "/stderr", "stderr", stdout_cap, box)
    claimed = {str(o["path"]): (str(o["sha256"]), int(o["size"])) for o in receipt.get("outputs", [])}
    outputs: dict[str, bytes] = {}
    total = 0
    for path in claimed:
        outputs[path] = await _get(http, f"{base}/outputs/{quote(path, safe='/')}", f"output {path}", output_cap, box)
        total += len(outputs[path])
        if total > output_cap:
            raise ResultMismatch(f"the outputs are over the job's cap of {output_cap} bytes together",
                                 what="outputs")
    return Download(str(receipt.get("outcome", "")), receipt.get("exit_code"), int(receipt.get("fuel_used", 0)),
                    str(receipt.get("result_root", "")), stdout, stderr, outputs, claimed)


def verify(d: Download, *, salt: bytes, onchain_seal: bytes | None, provider: str, deal_id: str) -> str:
    """The recomputed result root, or ``ResultMismatch`` naming the first check that failed."""
    def mismatch(what: str, detail: str) -> ResultMismatch:
        return ResultMismatch(
            f"{what} of deal {deal_id} from provider {provider} does not match: {detail}. Do not use this "
            "result: the deal was challenged on-chain, so the provider must open its seal to an auditor "
            "or lose its stake, and you are refunded if it cannot",
            provider=provider, deal_id=deal_id, what=what)

    for path, (sha, size) in d.claimed.items():
        data = d.outputs[path]
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            raise mismatch(f"output {path}", f"downloaded {len(data)} bytes hashing to "
                                             f"{hashlib.sha256(data).hexdigest()[:16]}…, the receipt says {size} bytes, {sha[:16]}…")
    try:
        root = result_root(outputs=[(p, hashlib.sha256(b).hexdigest()) for p, b in d.outputs.items()],
                           stdout=d.stdout, stderr=d.stderr, outcome=d.outcome, exit_code=d.exit_code)
    except ValueError as exc:
        raise mismatch("result", f"the receipt is malformed ({exc})") from None
    if root != d.result_root:
        raise mismatch("result root", f"the downloaded bytes give {root[:16]}…, the receipt claims {d.result_root[:16]}…")
    if onchain_seal is None:
        raise mismatch("seal", "no result seal for this deal is on-chain")
    if seal_of(provider, bytes.fromhex(deal_id.removeprefix("0x")), bytes.fromhex(root), d.fuel_used,
               salt) != onchain_seal:
        raise mismatch("seal", "keccak256(provider, deal_id, result_root, fuel, salt) differs from the seal "
                               "committed on-chain")
    return root


def write_outputs(out_dir: Path | None, outputs: dict[str, bytes]) -> Path | None:
    """Write verified outputs under ``out_dir`` (never outside it); None when no folder was given."""
    if out_dir is None:
        return None
    for path, data in outputs.items():
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            continue  # never write outside out_dir, whatever a receipt says
        dest = out_dir.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return out_dir
