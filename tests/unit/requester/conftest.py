"""A fake ledger, a funded requester, and scripted providers behind a MockTransport."""

from __future__ import annotations

from pathlib import Path

import pytest

from requester_fakes import DEPOSIT, KEYS, FakeProvider, MakeMarket, transport

from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.jobs import Limits
from mercato.requester import JobRequest, Market


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def requester(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester1"])
    ledger.mint(m.address, 10 * DEPOSIT)
    m.deposit(DEPOSIT)
    return m


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    path = tmp_path / "job.wasm"
    path.write_bytes(b"\x00asm\x01\x00\x00\x00fake")
    (tmp_path / "data.bin").write_bytes(b"input bytes")
    return path


@pytest.fixture
def request_(workload: Path) -> JobRequest:
    return JobRequest.from_files(workload, args=["7"], inputs={"data.bin": workload.parent / "data.bin"},
                                 limits=Limits(fuel=5 * 10**9), max_price=1_000_000)



@pytest.fixture
def make_market(requester: FakeMarket) -> MakeMarket:
    def make(providers: list[FakeProvider], **options: object) -> Market:
        events: list[object] = []
        options.setdefault("on_event", events.append)
        market = Market(requester, transport=transport(providers), **options)  # type: ignore[arg-type]
        market.events = events  # type: ignore[attr-defined]
        return market

    return make
