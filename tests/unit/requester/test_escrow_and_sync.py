"""Deposit, balance, withdrawals and the registry view; the blocking ``SyncMarket`` twin."""

from __future__ import annotations

import asyncio

import pytest
from requester_fakes import DEPOSIT, FakeProvider, transport

from mercato import errors as e
from mercato.chain import FakeLedger, FakeMarket
from mercato.requester import JobRequest, Market, SyncMarket


def test_deposit_balance_and_a_withdrawal_after_the_delay(ledger: FakeLedger, requester: FakeMarket) -> None:
    m = SyncMarket(Market(requester))
    m.deposit(5 * 10**6)
    bal = m.balance()
    assert bal.available == DEPOSIT + 5 * 10**6 and bal.pending == 0
    pending = m.withdraw(2 * 10**6, wait=False)
    assert pending.amount == 2 * 10**6 and pending.ready_at == ledger.time + ledger.withdrawal_delay  # type: ignore[union-attr]
    with pytest.raises(e.WithdrawalNotReady):
        m.complete_withdrawal()
    ledger.advance(ledger.withdrawal_delay)
    wallet = m.balance().wallet
    m.complete_withdrawal()
    assert m.balance().wallet == wallet + 2 * 10**6


def test_withdraw_waits_out_the_delay(ledger: FakeLedger, requester: FakeMarket) -> None:
    market = Market(requester)

    async def sleep(seconds: float) -> None:  # the fake chain's clock moves only when told
        ledger.advance(int(seconds) + 1)

    market.sleep = sleep
    wallet = requester.token_balance()
    asyncio.run(market.withdraw(3 * 10**6))
    assert requester.token_balance() == wallet + 3 * 10**6


def test_providers_view(ledger: FakeLedger, requester: FakeMarket) -> None:
    a, b = FakeProvider("provider1", ledger), FakeProvider("provider2", ledger, stake=5 * 10**6)
    ledger.providers[a.address].completed = 3
    rows = SyncMarket(Market(requester)).providers()
    assert [r.address for r in rows] == [a.address, b.address]
    assert rows[0].endpoint == "http://provider1.test" and rows[0].score == pytest.approx(0.8)
    assert rows[1].stake == rows[1].free_stake == 5 * 10**6


def test_sync_run(ledger: FakeLedger, requester: FakeMarket, request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger)
    m = SyncMarket(Market(requester, transport=transport([p])))
    assert m.run(request_).verified
    assert m.run(request_.spec, blobs={h: request_.blob(h) for h, _ in request_.files}).verified
