"""Fixtures for chain unit tests: a fake ledger with funded, registered parties."""

from __future__ import annotations

import pytest

from chain_scenarios import KEYS

from mercato.chain import FakeLedger, FakeMarket

STAKE = 10_000 * 10**6
DEPOSIT = 1_000 * 10**6


@pytest.fixture
def ledger() -> FakeLedger:
    led = FakeLedger()
    for key in KEYS.values():
        led.mint(led.client(key).address, 1_000_000 * 10**6)
    return led


@pytest.fixture
def requester(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester1"])
    m.deposit(DEPOSIT)
    return m


@pytest.fixture
def provider(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["provider1"])
    m.register("http://127.0.0.1:7001", b"\x01" * 32, b"\x02" * 32)
    m.stake(STAKE)
    return m
