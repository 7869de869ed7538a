"""``Market.run`` end to end against scripted providers on a fake ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_utils import keccak

from requester_fakes import DEPOSIT, KEYS, MakeMarket, OUTPUTS, STDOUT, FakeProvider, transport

from mercato import errors as e
from mercato.chain import FakeLedger, FakeMarket
from mercato.domain.deals import AUDITED, UNDRAWN
from mercato.verification.params import DEFAULT_AUDIT_BPS
from mercato.requester import (
    Accepted,
    BidsCollected,
    Committed,
    JobHistory,
    JobRequest,
    Market,
    Paid,
    Running,
    Verified,
    WinnerChosen,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _go(market: Any, req: JobRequest, **options: Any) -> Any:
    async with market as m:
        return await m.run(req, **options)


def test_happy_path_verifies_pays_and_reports_every_step(ledger: FakeLedger, requester: FakeMarket,
                                                         make_market: MakeMarket, request_: JobRequest,
                                                         tmp_path: Path) -> None:
    p = FakeProvider("provider1", ledger)
    market = make_market([p])
    result = run(_go(market, request_, out_dir=tmp_path / "out"))
    assert result.verified and result.provider == p.address
    assert result.stdout == STDOUT and result.outputs == OUTPUTS
    assert result.price == 10_000 * 5  # 5 CU fuel cap at 10_000 per CU
    assert result.collateral == 19 * request_.max_price
    assert result.opened_by == "requester" and result.open_tx is not None
    assert (tmp_path / "out" / "sub" / "more.txt").read_bytes() == OUTPUTS["sub/more.txt"]
    # the price and the audit fee (max_price by default) stay escrowed until the deal settles
    assert requester.balance_of() == DEPOSIT - result.price - request_.max_price
    (deal,) = p.deals.values()
    assert keccak(deal["seed"]) == deal["terms"].seed_hash  # the lottery seed was revealed to the provider
    # no audit_bps in the job: the one default (5 %, verify-params' "standard"), above the fake's 3 % floor
    assert (deal["terms"].audit_bps, deal["terms"].audit_fee) == (DEFAULT_AUDIT_BPS, request_.max_price)
    assert DEFAULT_AUDIT_BPS == 500 > ledger.audit_floor_bps
    assert result.ttfb_ms is not None and result.timings["total_ms"] >= result.timings["bids_ms"]
    kinds = [type(ev) for ev in market.events]  # type: ignore[attr-defined]
    assert kinds == [BidsCollected, WinnerChosen, Accepted, Running, Committed, Verified, Paid]
    assert p.puts == 2  # the workload and the one input


def test_provider_may_open_and_commit_itself(ledger: FakeLedger, make_market: MakeMarket,
                                             request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, open_itself=True)
    result = run(_go(make_market([p], open_on_chain=False), request_))
    assert result.verified and result.opened_by == "provider" and result.open_tx is None


def test_cheapest_compliant_bid_wins(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    dear = FakeProvider("provider1", ledger, price_per_cu=30_000)
    cheap = FakeProvider("provider2", ledger, price_per_cu=20_000)
    mid = FakeProvider("provider3", ledger, price_per_cu=25_000)
    market = make_market([dear, cheap, mid])
    result = run(_go(market, request_))
    assert result.provider == cheap.address
    chosen = next(ev for ev in market.events if isinstance(ev, WinnerChosen))  # type: ignore[attr-defined]
    assert chosen.runner_up_price == 25_000 * 5


def test_tie_goes_to_reputation_then_stake_then_address(ledger: FakeLedger, make_market: MakeMarket,
                                                        request_: JobRequest) -> None:
    a = FakeProvider("provider1", ledger)
    b = FakeProvider("provider2", ledger, stake=20_000 * 10**6)
    assert run(_go(make_market([a, b]), request_)).provider == b.address  # more stake
    ledger.providers[a.address].completed = 5  # a better record beats the larger stake
    assert run(_go(make_market([a, b]), request_)).provider == a.address


def test_non_compliant_bids_are_ignored(ledger: FakeLedger, make_market: MakeMarket,
                                        request_: JobRequest) -> None:
    forged = FakeProvider("provider1", ledger, price_per_cu=1, bad_signature=True)
    honest = FakeProvider("provider2", ledger, price_per_cu=50_000)
    market = make_market([forged, honest])
    result = run(_go(market, request_))
    assert result.provider == honest.address
    collected = market.events[0]  # type: ignore[attr-defined]
    assert collected.compliant == 1 and "bad signature" in collected.causes[forged.address]


def test_no_bids_names_every_cause(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    providers = [FakeProvider("provider1", ledger, price_per_cu=400_000),
                 FakeProvider("provider2", ledger, price_per_cu=500_000),
                 FakeProvider("provider3", ledger, delay=1.0)]
    with pytest.raises(e.NoBids) as info:  # one round (asking again: test_bid_retries.py)
        run(_go(make_market(providers, bid_retries=0), request_))
    text = str(info.value)
    assert "3 providers asked" in text and "2 declined (price:" in text
    assert "1 did not answer in 250 ms" in text
    assert "raise max_price" in text and "widen bid_window" in text
    assert info.value.asked == 3 and len(info.value.causes) == 3


def test_no_qualifying_provider(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    poor = FakeProvider("provider1", ledger, stake=0)
    with pytest.raises(e.NoBids, match="1 registered, none with an endpoint") as info:
        run(_go(make_market([poor]), request_))
    assert poor.rfqs == 0 and info.value.asked == 0


def _audited_on_chain(ledger: FakeLedger, p: FakeProvider, deal: dict) -> bool:
    """Whether the provider's lane holds the deal as committed, now with status AUDITED."""
    stored = deal["onchain"].with_status(AUDITED)
    return ledger.client(KEYS["requester3"]).lane(p.address, deal["terms"].lane).deal_hash_prefix == (
        int.from_bytes(stored.hash, "big") >> 64)


def test_tampered_output_is_a_result_mismatch(ledger: FakeLedger, make_market: MakeMarket,
                                              request_: JobRequest, tmp_path: Path) -> None:
    p = FakeProvider("provider1", ledger, tamper_output=True)
    with pytest.raises(e.ResultMismatch, match="challenged on-chain") as info:
        run(_go(make_market([p]), request_, out_dir=tmp_path / "out"))
    assert info.value.what.startswith("output ") and info.value.provider == p.address
    assert not (tmp_path / "out").exists()
    (deal,) = p.deals.values()
    assert _audited_on_chain(ledger, p, deal)  # challenged: the provider must now open its seal to an auditor
    assert "seed" not in deal  # nothing to draw: the deal is audited already


def test_result_that_does_not_open_the_seal_is_challenged(ledger: FakeLedger, requester: FakeMarket,
                                                          make_market: MakeMarket, request_: JobRequest,
                                                          tmp_path: Path) -> None:
    p = FakeProvider("provider1", ledger, wrong_seal=True)  # outputs match the receipt, not the seal
    with pytest.raises(e.ResultMismatch, match="differs from the seal committed on-chain") as info:
        run(_go(make_market([p]), request_, out_dir=tmp_path / "out"))
    assert info.value.what == "seal" and info.value.provider == p.address
    assert not (tmp_path / "out").exists()
    (deal,) = p.deals.values()
    assert deal["onchain"].status == UNDRAWN  # as committed ...
    assert _audited_on_chain(ledger, p, deal)  # ... and now AUDITED on the fake lane: challenged
    assert "seed" not in deal
    assert requester.balance_of() == DEPOSIT - deal["terms"].escrow  # still escrowed: the audit decides


def test_a_provider_refusing_the_seed_costs_the_run_nothing(ledger: FakeLedger, make_market: MakeMarket,
                                                            request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, seed_status=503)  # the deal is audited by default later
    assert run(_go(make_market([p]), request_)).verified
    (deal,) = p.deals.values()
    assert "seed" not in deal


def test_never_committing_provider_is_reclaimed(ledger: FakeLedger, requester: FakeMarket,
                                                make_market: MakeMarket, request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, never_commit=True)
    with pytest.raises(e.ProviderMissedDeadline) as info:
        run(_go(make_market([p]), request_, deadline_s=300, accept_window_s=30))
    err = info.value
    collateral = 19 * request_.max_price
    assert err.refund == 50_000 + request_.max_price  # the price and the audit fee
    assert err.penalty == collateral // 2
    assert requester.balance_of() == DEPOSIT  # refunded; the penalty is burned, not paid to the requester
    assert ledger.providers[p.address].missed == 1
    assert "reclaimed" in str(err) and err.reclaim_tx


def test_failed_run_without_an_on_chain_deal_charges_nothing(ledger: FakeLedger, requester: FakeMarket,
                                                             make_market: MakeMarket, request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger, fail_run="out of disk")
    with pytest.raises(e.ProviderFailed, match="out of disk"):
        run(_go(make_market([p], open_on_chain=False), request_))
    assert requester.balance_of() == DEPOSIT


def test_balance_below_the_price(ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    broke = ledger.client(KEYS["requester2"])
    p = FakeProvider("provider1", ledger)
    with pytest.raises(e.BalanceTooLow, match="plus the audit fee 1 mUSD: run `mercato deposit 1.05`") as info:
        run(_go(Market(broke, transport=transport([p])), request_))
    assert info.value.price == 50_000 + request_.max_price
    ledger.mint(broke.address, 10**6)
    broke.deposit(50_000)  # the price alone is not enough: the audit fee is escrowed with it
    with pytest.raises(e.BalanceTooLow, match="mercato deposit 1"):
        run(_go(Market(broke, transport=transport([p])), request_))


def test_providers_declining_for_escrow_is_a_balance_error_with_the_deposit_to_make(
        ledger: FakeLedger, make_market: MakeMarket, request_: JobRequest) -> None:
    broke = ledger.client(KEYS["requester2"])
    reason = "escrow: your escrow balance 0 does not cover this bid's price 50000 plus the audit fee 1000000"
    providers = [FakeProvider("provider1", ledger, decline=("escrow", reason[8:])),
                 FakeProvider("provider2", ledger, decline=("escrow", reason[8:]))]
    with pytest.raises(e.BalanceTooLow, match=r"providers declined: your escrow balance 0 mUSD .* run `mercato deposit") \
            as info:
        run(_go(Market(broke, transport=transport(providers)), request_))
    assert info.value.price == request_.max_price + request_.fee and info.value.balance == 0
    # one provider declining for another reason: the full NoBids, with the deposit among the advice
    providers[1].decline = ("price", "this provider asks 9 per CU")
    with pytest.raises(e.NoBids, match="deposit more") as nobids:
        run(_go(Market(broke, transport=transport(providers)), request_))
    assert set(nobids.value.causes) == {p.address for p in providers}


def test_oversized_input_is_refused_before_any_upload(ledger: FakeLedger, make_market: MakeMarket,
                                                      workload: Path) -> None:
    big = workload.parent / "big.bin"
    big.write_bytes(b"x" * 1000)
    req = JobRequest.from_files(workload, inputs={"big.bin": big})
    p = FakeProvider("provider1", ledger)
    with pytest.raises(e.SpecError, match="input 'big.bin' is 1000 bytes, over the 100-byte") as info:
        run(_go(make_market([p], max_input_bytes=100), req))
    assert info.value.field == "inputs" and p.rfqs == 0 and p.puts == 0


def test_history_records_successes_and_failures(ledger: FakeLedger, make_market: MakeMarket,
                                                request_: JobRequest, tmp_path: Path) -> None:
    history = JobHistory(tmp_path / "requester.sqlite")
    ok = FakeProvider("provider1", ledger)
    run(_go(make_market([ok], history=history), request_))
    with pytest.raises(e.NoBids):
        run(_go(make_market([ok], history=history), request_, max_price=1))
    recent = history.recent()
    assert [r.state for r in recent] == ["NoBids", "sealed"]  # sealed: nobody else re-executed it (yet)
    assert recent[1].provider == ok.address and recent[1].price == 50_000 and recent[1].ttfb_ms is not None
