"""Provider unit helpers and fixtures: a fake ledger with an event log, a FakeRuntime, an agent factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from mercato.chain import FakeLedger, FakeMarket, dev_accounts
from mercato.domain.deals import Terms
from mercato.domain.jobs import JobSpec, Limits
from mercato.domain.wire import AcceptMsg, Rfq, TermsMsg, new_id
from mercato.provider import ChainEvent, ProviderAgent, ProviderConfig, create_app
from mercato.provider.guard import RequestSigner
from mercato.runtimes import FakeRuntime, content_hash

KEYS = dev_accounts()
STAKE = 10_000 * 10**6
DEPOSIT = 1_000 * 10**6
WORKLOAD = b"\x00asm\x01\x00\x00\x00 provider unit test workload"
INPUT = b"some input bytes"
SEED = b"\x5d" * 32  # the requester's lottery seed; its keccak goes in every RFQ
AUDIT_FEE = 10**6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class LedgerEvents:
    """An ``EventSource`` over a FakeLedger: records every event the ledger mines."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.log: list[ChainEvent] = []
        mine = ledger._mine

        def recording(*events: Any) -> Any:
            tx = mine(*events)
            self.log.extend(ChainEvent(ev.name, dict(ev.args), tx.block_number, tx.timestamp) for ev in events)
            return tx

        ledger._mine = recording  # type: ignore[method-assign]
        self.ledger = ledger

    def poll(self, cursor: int | None) -> tuple[list[ChainEvent], int]:
        after = -1 if cursor is None else cursor
        return [ev for ev in self.log if ev.block > after], self.ledger.block


@pytest.fixture
def ledger() -> FakeLedger:
    led = FakeLedger()
    for key in KEYS.values():
        led.mint(led.client(key).address, 1_000_000 * 10**6)
    return led


@pytest.fixture
def events(ledger: FakeLedger) -> LedgerEvents:
    return LedgerEvents(ledger)


@pytest.fixture
def requester(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester1"])
    m.deposit(DEPOSIT)
    return m


def make_spec(fuel: int = 2 * 10**9, inputs: bool = True, **kw: Any) -> JobSpec:
    pairs = (("data.bin", content_hash(INPUT)),) if inputs else ()
    return JobSpec(runtime="wasm", workload=content_hash(WORKLOAD), args=("1",), inputs=pairs,
                   limits=Limits(fuel=fuel, **kw))


def make_rfq(chain: FakeMarket | Any, requester: str, spec: JobSpec | None = None, **kw: Any) -> Rfq:
    spec = spec or make_spec()
    if isinstance(spec, dict):  # a raw (possibly broken) spec
        kw.setdefault("spec_hash", "sha256:" + "00" * 32)
        raw = spec
    else:
        raw = spec.to_json()
        kw.setdefault("spec_hash", spec.spec_hash())
    values: dict[str, Any] = dict(rfq_id=new_id(), requester=requester, chain_id=chain.chain_id, market=chain.market,
                                  spec=raw, max_price=10**9,
                                  min_collateral=0, deadline_s=600, accept_window_s=60,
                                  seed_hash="0x" + keccak(SEED).hex(), audit_bps=300, audit_fee=AUDIT_FEE)
    return Rfq(**(values | kw))


def accept_msg(requester: FakeMarket, bid: dict[str, Any]) -> AcceptMsg:
    terms = TermsMsg.model_validate(bid["terms"]).to_terms()
    return AcceptMsg(deal_id=bid["deal_id"], terms=TermsMsg.of(terms),
                     acceptance_signature="0x" + requester.sign_acceptance(terms).hex())


def terms_of(bid: dict[str, Any]) -> Terms:
    return TermsMsg.model_validate(bid["terms"]).to_terms()


async def until(pred: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``pred()`` holds (the agent's loops run every few ms in these tests)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = pred()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@dataclass
class Harness:
    """An agent on the fake ledger, its API client, and the pieces tests poke at."""

    agent: ProviderAgent
    client: httpx.AsyncClient
    ledger: FakeLedger
    runtime: FakeRuntime
    provider: FakeMarket
    extra: dict[str, Any] = field(default_factory=dict)
    app: Any = None

    def client_for(self, market: FakeMarket) -> httpx.AsyncClient:
        """A client of this agent's API signing as ``market``'s account (one per account)."""
        clients = self.extra.setdefault("by_account", {})
        if market.address not in clients:
            clients[market.address] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://provider",
                auth=RequestSigner(market.address, market.sign_text))
            self.extra.setdefault("clients", []).append(clients[market.address])
        return clients[market.address]

    def client_of(self, address: str) -> httpx.AsyncClient:
        """A client signing as the dev account of ``address`` (requester1's client for any other)."""
        for key in KEYS.values():
            if Account.from_key(key).address.lower() == address.lower():
                return self.client_for(self.ledger.client(key))
        return self.client

    def client_as(self, key: str | None) -> httpx.AsyncClient:
        """Another client of this agent's API, signing as ``key`` (a private key), or unsigned (None)."""
        client = signed_client(self.app, key)
        self.extra.setdefault("clients", []).append(client)
        return client

    async def bid(self, requester: FakeMarket, **kw: Any) -> dict[str, Any]:
        r = await self.client_for(requester).post("/v1/rfq",
                                                  json=make_rfq(self.provider, requester.address, **kw).model_dump())
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["bid"] is not None, answer
        return dict(answer["bid"])

    async def upload(self, *blobs: bytes, by: FakeMarket | None = None) -> None:
        """Upload ``blobs`` as ``by`` (default requester1): the requester of a deal that needs them."""
        client = self.client if by is None else self.client_for(by)
        for blob in blobs:
            r = await client.put(f"/v1/blobs/{content_hash(blob)}", content=blob)
            assert r.status_code == 200, r.text

    async def state(self, deal_id: str) -> str:
        return str((await self.client.get(f"/v1/deals/{deal_id}")).json()["state"])

    async def reveal(self, deal_id: str, seed: bytes = SEED) -> httpx.Response:
        """The requester's ``POST /v1/deals/{id}/seed``."""
        return await self.client.post(f"/v1/deals/{deal_id}/seed", json={"seed": "0x" + seed.hex()})

    def past_beacon(self, deal_id: str) -> None:
        """Mine the blocks the lottery waits for: the draw may land once the beacon block is past."""
        rec = self.agent.store.get(deal_id)
        assert rec is not None and rec.committed_block is not None
        self.ledger.advance(0, blocks=max(0, rec.committed_block + self.ledger.beacon_delay - self.ledger.block))


AgentFactory = Callable[..., Awaitable[Harness]]


def signed_client(app: Any, key: str | None) -> httpx.AsyncClient:
    """An in-process client of a provider ``app`` whose requests are signed with ``key`` (the
    provider API serves a deal's data to its requester only), or unsigned with None."""
    auth = None
    if key is not None:
        account = Account.from_key(key)
        auth = RequestSigner(account.address,
                             lambda text: bytes(Account.sign_message(encode_defunct(text=text), account.key).signature))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://provider", auth=auth)


@pytest.fixture
async def make_agent(tmp_path: Path, ledger: FakeLedger, events: LedgerEvents) -> AsyncIterator[AgentFactory]:
    made: list[Harness] = []

    async def factory(*, data_dir: Path | None = None, runtime: FakeRuntime | None = None,
                      key: str = KEYS["provider1"], start: bool = True, **cfg: Any) -> Harness:
        values: dict[str, Any] = dict(data_dir=data_dir or tmp_path / "agent", lanes=2, stake=STAKE,
                                      poll_interval_s=0.01, housekeeping_interval_s=0.01, reclaim_grace_s=10)
        config = ProviderConfig(**(values | cfg))
        fake = runtime or FakeRuntime(stdout=b"pi=3.14\n\xff raw", outputs={"pi.txt": b"3.14\n"})
        market = ledger.client(key)
        agent = ProviderAgent(config, market, events=events, runtimes={"wasm": fake, "python": fake},
                              clock=lambda: ledger.time, challenge_window=ledger.challenge_window)
        if start:
            await agent.start()
        app = create_app(agent, manage_lifecycle=False)
        h = Harness(agent, signed_client(app, KEYS["requester1"]), ledger, fake, market, app=app)
        made.append(h)
        return h

    yield factory
    for h in made:
        await h.client.aclose()
        for other in h.extra.get("clients", []):
            await other.aclose()
        if h.agent.started:
            await h.agent.stop()
