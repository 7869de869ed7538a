"""The in-memory fake runs the same scenarios as anvil (tests/integration/chain)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chain_scenarios import (
    KEYS,
    SEAL,
    Parties,
    acceptance_batch,
    bid_lifecycle,
    escrow_and_stake,
    reclaim_missed,
    terms,
    typed_reverts,
)

from mercato.chain import MAX_BATCH, FakeLedger, MarketApi
from mercato.chain.market import chunks


@pytest.fixture
def parties(ledger: FakeLedger, requester: MarketApi, provider: MarketApi) -> Parties:
    return Parties(requester, provider, ledger.client(KEYS["requester3"]), ledger.client(KEYS["provider5"]),
                   ledger.advance)


def test_fake_implements_the_protocol(requester: MarketApi) -> None:
    assert isinstance(requester, MarketApi)


def test_bid_lifecycle(parties: Parties) -> None:
    bid_lifecycle(parties, lane=0)


def test_acceptance_batch(parties: Parties) -> None:
    acceptance_batch(parties, lane=10)


def test_reclaim_missed(parties: Parties) -> None:
    reclaim_missed(parties, lane=20)


def test_typed_reverts(parties: Parties) -> None:
    typed_reverts(parties, lane=30)


def test_escrow_and_stake(parties: Parties) -> None:
    escrow_and_stake(parties)


def test_failed_batch_changes_nothing(ledger: FakeLedger, parties: Parties) -> None:
    r, v = parties.requester, parties.provider
    t = terms(parties, 40)
    done = v.open_and_commit(t, r.sign_acceptance(t), SEAL).deal
    ledger.advance(6)
    snapshot = ledger.snapshot()
    with pytest.raises(Exception):
        v.finalize([done, done])  # the second is already settled: all or nothing
    assert ledger.snapshot() == snapshot


def test_batch_bound_matches_the_contract(parties: Parties) -> None:
    source = (Path(__file__).resolve().parents[3] / "contracts" / "modules" / "deals.vy").read_text()
    bound = re.search(r"_MAX_BATCH: constant\(uint256\) = (\d+)", source)
    assert bound and int(bound.group(1)) == MAX_BATCH
    with pytest.raises(ValueError, match="split the batch"):
        parties.requester.finalize([None] * (MAX_BATCH + 1))  # type: ignore[list-item]
    assert [len(c) for c in chunks(list(range(70)))] == [32, 32, 6]  # type: ignore[arg-type]
