"""Losing bids are released (DELETE /v1/bids/{id}) without slowing the winner; a deal whose lane an
earlier bid took surfaces as ProviderFailed, never as "the provider opened it" and never as a hang."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from requester_fakes import DEPOSIT, KEYS, MakeMarket, FakeProvider

from mercato import errors as e
from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.deals import Terms, job_leaf
from mercato.requester import JobRequest


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _go(market: Any, req: JobRequest, **options: Any) -> Any:
    async with market as m:
        return await m.run(req, **options)


@pytest.fixture
def requester2(ledger: FakeLedger) -> FakeMarket:
    m = ledger.client(KEYS["requester2"])
    ledger.mint(m.address, 10 * DEPOSIT)
    m.deposit(DEPOSIT)
    return m


def test_every_losing_bid_is_released_and_the_winner_is_not(ledger: FakeLedger, make_market: MakeMarket,
                                                            request_: JobRequest) -> None:
    cheap = FakeProvider("provider1", ledger, price_per_cu=10_000)
    dear = FakeProvider("provider2", ledger, price_per_cu=20_000)
    dearer = FakeProvider("provider3", ledger, price_per_cu=30_000)
    result = run(_go(make_market([cheap, dear, dearer]), request_))
    assert result.provider == cheap.address
    assert cheap.released == []
    for loser in (dear, dearer):
        (deal_id,) = loser.deals
        assert loser.released == [deal_id] and loser.deals[deal_id]["state"] == "expired"


def test_a_non_compliant_bid_is_released_too(ledger: FakeLedger, make_market: MakeMarket,
                                             request_: JobRequest) -> None:
    forged = FakeProvider("provider1", ledger, price_per_cu=1, bad_signature=True)
    honest = FakeProvider("provider2", ledger)
    assert run(_go(make_market([forged, honest]), request_)).provider == honest.address
    assert forged.released == list(forged.deals) and honest.released == []


def test_bids_are_released_when_none_complies(ledger: FakeLedger, make_market: MakeMarket,
                                              request_: JobRequest) -> None:
    forged = FakeProvider("provider1", ledger, bad_signature=True)
    with pytest.raises(e.NoBids):
        run(_go(make_market([forged]), request_))
    assert forged.released == list(forged.deals)


def test_a_slow_or_failing_release_costs_the_winner_nothing(ledger: FakeLedger, make_market: MakeMarket,
                                                           request_: JobRequest) -> None:
    winner = FakeProvider("provider1", ledger, price_per_cu=10_000)
    hangs = FakeProvider("provider2", ledger, price_per_cu=20_000, release_hang=30.0)
    refuses = FakeProvider("provider3", ledger, price_per_cu=30_000, release_status=500)
    market = make_market([winner, hangs, refuses], release_timeout=0.3)
    finished: dict[str, float] = {}

    async def go() -> Any:
        async with market as m:
            t0 = time.monotonic()
            result = await m.run(request_)
            finished["run"] = time.monotonic() - t0
        finished["closed"] = time.monotonic() - t0
        return result

    result = run(go())
    assert result.verified and result.provider == winner.address
    assert finished["run"] < 5.0 and finished["closed"] < finished["run"] + 2.0  # aclose waits 0.3 s at most
    assert refuses.released == list(refuses.deals)
    assert hangs.released == []  # still hanging when the market closed: dropped, not raised


def test_lane_taken_by_an_earlier_bid_is_provider_failed(ledger: FakeLedger, requester: FakeMarket,
                                                         requester2: FakeMarket, make_market: MakeMarket,
                                                         request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, lane_taken_by=requester2)
    with pytest.raises(e.ProviderFailed, match="lane taken by an earlier bid") as info:
        run(_go(make_market([p]), request_))
    assert info.value.provider == p.address and info.value.deal_id in p.deals
    assert requester.balance_of() == DEPOSIT  # nothing charged


def test_lane_taken_and_a_mute_provider_does_not_hang(ledger: FakeLedger, requester: FakeMarket,
                                                      requester2: FakeMarket, make_market: MakeMarket,
                                                      request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, lane_taken_by=requester2, lane_taken_says=False)  # stays "accepted"

    async def go() -> Any:
        return await asyncio.wait_for(_go(make_market([p]), request_, deadline_s=600), timeout=10)

    with pytest.raises(e.ProviderFailed, match="holds another deal") as info:
        run(go())
    assert "lane taken by an earlier bid" in str(info.value)
    assert requester.balance_of() == DEPOSIT


def _terms(ledger: FakeLedger, provider: FakeProvider, requester: FakeMarket, lane: int, nonce: int) -> Terms:
    now = ledger.time
    return Terms(requester.address, provider.address, lane, nonce, job_leaf(b"\x01" * 32, 100, 0), 1, 100, 0,
                 now + 600, now + 60, b"\x5d" * 32, 300, 100)


def test_open_confirms_the_lane_holds_our_deal(ledger: FakeLedger, requester: FakeMarket,
                                               requester2: FakeMarket, make_market: MakeMarket) -> None:
    p = FakeProvider("provider1", ledger)
    market = make_market([p])
    ours = _terms(ledger, p, requester, 7, 1)
    p.api.open_and_commit(ours, requester.sign_acceptance(ours), b"\x05" * 32)  # the provider opened it first
    opened = run(market._open(ours, p.api.sign_bid(ours)))
    assert opened.by == "provider" and opened.error is None and not opened.lane_taken
    # a lane busy with an earlier nonce holds someone else's deal: ours is not open and cannot open
    earlier, newer = _terms(ledger, p, requester2, 8, 5), _terms(ledger, p, requester, 8, 6)
    requester2.open_deal(earlier, p.api.sign_bid(earlier))
    opened = run(market._open(newer, p.api.sign_bid(newer)))
    assert opened.by == "" and opened.lane_taken and isinstance(opened.error, e.ChainError)
    assert "holds another deal (nonce 5, ours is 6)" in str(opened.error)
