"""Bids that do not clog: a bid that arrives after the window is released as it arrives; a round
without a compliant bid for a cause time may cure is asked again with a wider window (and says
so); an acceptance the provider refuses opens nothing on-chain."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from requester_fakes import MakeMarket, FakeProvider

from mercato import errors as e
from mercato.chain import FakeLedger, FakeMarket
from mercato.cli.requester import _Progress
from mercato.requester import BidsCollected, BidsRetried, JobRequest
from mercato.requester._auction import wider

BUSY = ("capacity", "all 4 lanes of this provider are busy: retry in a little while or ask another provider")


async def _go(market: Any, req: JobRequest) -> Any:
    async with market as m:
        return await m.run(req)


def _no_sleep(market: Any, pauses: list[float], then: Any = None) -> Any:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if then is not None:
            then()
    market.sleep = sleep
    return market


def test_the_windows_widen_to_a_cap_below_the_providers_hold() -> None:
    assert [wider(0.25), wider(1.0), wider(4.0)] == [1.0, 4.0, 4.0]
    assert wider(0.1) == 1.0 and wider(10.0) == 10.0  # never narrower than asked


def test_a_bid_that_arrives_after_the_window_is_released(ledger: FakeLedger, make_market: MakeMarket,
                                                         request_: JobRequest) -> None:
    fast = FakeProvider("provider1", ledger, price_per_cu=20_000)
    slow = FakeProvider("provider2", ledger, price_per_cu=10_000, delay=0.4)  # cheaper, but too late
    result = asyncio.run(_go(make_market([fast, slow]), request_))
    assert result.provider == fast.address
    assert slow.released == list(slow.deals) and len(slow.deals) == 1  # released once it came
    assert slow.deals[slow.released[0]]["state"] == "expired"
    assert fast.released == []


def test_a_silent_round_is_asked_again_with_a_wider_window(ledger: FakeLedger, make_market: MakeMarket,
                                                           request_: JobRequest, caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    slow = FakeProvider("provider1", ledger, delay=0.4)  # misses 250 ms, makes 1,000 ms
    market = make_market([slow])
    with caplog.at_level(logging.INFO, logger="mercato.requester"):
        result = asyncio.run(_go(market, request_))
    assert result.provider == slow.address
    rounds = [ev for ev in market.events if isinstance(ev, (BidsCollected, BidsRetried))]
    assert [type(ev) for ev in rounds] == [BidsCollected, BidsRetried, BidsCollected]
    retry = rounds[1]
    assert (retry.attempt, retry.retries, retry.window_ms, retry.next_window_ms) == (1, 2, 250, 1000)
    assert retry.pause_s == 0 and retry.reason == "1 silent"  # a slow provider needs a wider window, not a pause
    assert rounds[0].compliant == 0 and rounds[2].compliant == 1
    # its first request ran on into the wider window: asked once, its one bid won, nothing to release
    assert slow.rfqs == 1 and list(slow.deals) == [result.deal_id] and slow.released == []
    assert any("asking again with a wider bid window" in r.getMessage() for r in caplog.records)


def test_only_the_busy_are_asked_again_while_a_slow_answer_is_on_its_way(ledger: FakeLedger, make_market: MakeMarket,
                                                                         request_: JobRequest) -> None:
    busy = FakeProvider("provider1", ledger, decline=BUSY, price_per_cu=1)
    slow = FakeProvider("provider2", ledger, delay=0.6)
    pauses: list[float] = []
    market = _no_sleep(make_market([busy, slow]), pauses)
    result = asyncio.run(_go(market, request_))
    assert result.provider == slow.address and slow.rfqs == 1
    assert busy.rfqs == 2 and pauses == [0.0]  # no pause: waiting for the slow one is the pause
    (retry,) = [ev for ev in market.events if isinstance(ev, BidsRetried)]
    assert retry.reason in ("1 busy, 1 silent", "1 silent, 1 busy")
    last = [ev for ev in market.events if isinstance(ev, BidsCollected)][-1]
    assert (last.asked, last.bids, last.compliant) == (2, 2, 1)  # providers, not answers: busy answered twice


def test_busy_providers_are_asked_again_after_a_pause(ledger: FakeLedger, make_market: MakeMarket,
                                                      request_: JobRequest) -> None:
    busy = FakeProvider("provider1", ledger, decline=BUSY)
    pauses: list[float] = []
    market = _no_sleep(make_market([busy]), pauses, then=lambda: setattr(busy, "decline", None))  # a lane frees
    result = asyncio.run(_go(market, request_))
    assert result.provider == busy.address and busy.rfqs == 2
    assert pauses == [1.0]
    (retry,) = [ev for ev in market.events if isinstance(ev, BidsRetried)]
    assert retry.reason == "1 busy" and retry.pause_s == 1.0


def test_no_bids_after_every_retry_names_the_rounds_and_the_causes(ledger: FakeLedger, make_market: MakeMarket,
                                                                  request_: JobRequest) -> None:
    busy = FakeProvider("provider1", ledger, decline=BUSY)
    pauses: list[float] = []
    market = _no_sleep(make_market([busy]), pauses)
    with pytest.raises(e.NoBids) as info:
        asyncio.run(_go(market, request_))
    text = str(info.value)
    assert "after 3 rounds (bid windows 250, 1000 and 4000 ms)" in text
    assert "1 declined (capacity: all 4 lanes" in text and "try again when providers have free lanes" in text
    assert busy.rfqs == 3 and pauses == [1.0, 4.0]
    assert [ev.attempt for ev in market.events if isinstance(ev, BidsRetried)] == [1, 2]


def test_a_round_time_cannot_cure_is_not_asked_again(ledger: FakeLedger, make_market: MakeMarket,
                                                     request_: JobRequest) -> None:
    dear = FakeProvider("provider1", ledger, price_per_cu=10**9)
    market = make_market([dear])
    with pytest.raises(e.NoBids, match="raise max_price") as info:
        asyncio.run(_go(market, request_))
    assert dear.rfqs == 1 and "rounds" not in str(info.value)
    assert not [ev for ev in market.events if isinstance(ev, BidsRetried)]


def test_retries_can_be_turned_off(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    busy = FakeProvider("provider1", ledger, decline=BUSY)
    with pytest.raises(e.NoBids):
        asyncio.run(_go(make_market([busy], bid_retries=0), request_))
    assert busy.rfqs == 1


def test_a_refused_acceptance_opens_nothing_on_chain(ledger: FakeLedger, make_market: MakeMarket,
                                                     requester: FakeMarket, request_: JobRequest) -> None:
    gone = FakeProvider("provider1", ledger, accept_status=409)  # e.g. its hold was over and the lane taken
    before = requester.balance_of()
    with pytest.raises(e.ProviderFailed, match="nothing was charged"):
        asyncio.run(_go(make_market([gone]), request_))
    (deal,) = gone.deals.values()
    assert not requester.lane(gone.address, deal["terms"].lane).busy
    assert requester.balance_of() == before


def test_uploads_refused_before_a_late_acceptance_go_again(ledger: FakeLedger, make_market: MakeMarket,
                                                           request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, put_refusals=1)  # the upload beat an acceptance taken after the hold
    result = asyncio.run(_go(make_market([p]), request_))
    assert result.verified and p.puts == 3  # two blobs, one sent twice


def test_the_progress_display_says_it_asks_again() -> None:
    line = _Progress._describe(BidsRetried(1, 2, 250, 1000, 1.0, "3 busy, 1 silent"))["bids"]
    assert line == "no compliant bid in 250 ms (3 busy, 1 silent): asking again in 1.0 s with a 1000 ms window " \
                   "(retry 1 of 2)"
