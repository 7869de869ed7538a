"""The requester's crash journal and ``Market.recover`` against scripted providers on a fake ledger.

A "crash" is a ``BaseException`` thrown at a chosen step of ``run`` (nothing of the run's own
clean-up runs, as after SIGKILL); a fresh ``Market`` over the same journal then recovers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from requester_fakes import DEPOSIT, OUTPUTS, STDOUT, FakeProvider, transport

from mercato.chain import FakeLedger, FakeMarket
from mercato.requester import JobRequest, Market
from mercato.requester.journal import Journal, JournalEntry


class Crash(BaseException):
    """SIGKILL, as far as the run can tell: no except clause of the SDK catches it."""


def _market(requester: FakeMarket, providers: list[FakeProvider], journal: Journal, **options: Any) -> Market:
    return Market(requester, transport=transport(providers), journal=journal, **options)


async def _run(market: Market, req: JobRequest, **options: Any) -> Any:
    async with market as m:
        return await m.run(req, **options)


async def _recover(market: Market) -> list[Any]:
    async with market as m:
        return await m.recover()


def _killed_at(method: str, market: Market, request_: JobRequest, **run: Any) -> None:
    """Run ``request_`` as if the process died on entering ``Market.<method>``."""
    async def crash(*_a: Any, **_k: Any) -> Any:
        raise Crash(method)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Market, method, crash)
        with pytest.raises(Crash):
            asyncio.run(_run(market, request_, **run))


def test_a_verified_run_is_journaled_with_its_result_on_disk(ledger: FakeLedger, requester: FakeMarket,
                                                             request_: JobRequest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    p = FakeProvider("provider1", ledger)
    result = asyncio.run(_run(_market(requester, [p], journal), request_))
    (entry,) = journal.entries()
    assert entry.deal_id == result.deal_id and entry.state == "verified" and entry.seed_revealed == 1
    assert keccak(bytes.fromhex(entry.seed[2:])) == p.deals[result.deal_id]["terms"].seed_hash
    folder = Path(entry.result_dir)
    assert (folder / "stdout").read_bytes() == STDOUT
    assert (folder / "outputs" / "sub" / "more.txt").read_bytes() == OUTPUTS["sub/more.txt"]
    assert entry.result_root == result.result_root and not entry.done  # open until it settles
    # the deal is still open on-chain (undrawn): recover reports it and changes nothing
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.state == "verified" and rep.has_result and not rep.done and rep.actions == ()


def test_killed_after_the_acceptance_recovers_result_and_reveals_the_seed(
        ledger: FakeLedger, requester: FakeMarket, request_: JobRequest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    p = FakeProvider("provider1", ledger)
    _killed_at("_await_commit", _market(requester, [p], journal), request_, out_dir=tmp_path / "out")
    (entry,) = journal.entries()
    assert entry.state == "accepted" and not entry.seed_revealed
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.state == "verified" and rep.has_result
    assert "result verified and saved" in rep.actions and "seed revealed" in rep.actions
    assert keccak(p.deals[rep.deal_id]["seed"]) == p.deals[rep.deal_id]["terms"].seed_hash
    assert (tmp_path / "out" / "pi.txt").read_bytes() == OUTPUTS["pi.txt"]  # saved as run would have
    # idempotent: a second walk does nothing
    (again,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert again.actions == () and again.state == "verified"


def test_a_deal_the_provider_never_commits_is_reclaimed_after_its_deadline(
        ledger: FakeLedger, requester: FakeMarket, request_: JobRequest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    p = FakeProvider("provider1", ledger, never_commit=True)
    _killed_at("_await_commit", _market(requester, [p], journal), request_)
    (entry,) = journal.entries()
    escrow = entry.terms_json["price"] + entry.terms_json["audit_fee"]
    assert requester.balance_of() == DEPOSIT - escrow  # the deal is open: its escrow is held
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.settled == "" and not rep.done  # before the deadline: wait
    ledger.advance(10_000)
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.settled == "reclaimed" and rep.done and rep.actions[0].startswith("reclaimed")
    penalty = entry.terms_json["collateral"] * ledger.miss_penalty_bps // 10_000
    assert requester.balance_of() == DEPOSIT and ledger.burned == penalty  # refunded; the penalty burned
    (again,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert again.actions == () and requester.balance_of() == DEPOSIT


def test_an_acceptance_that_never_left_expires_with_nothing_charged(
        ledger: FakeLedger, requester: FakeMarket, request_: JobRequest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    p = FakeProvider("provider1", ledger)
    _killed_at("_hand_over", _market(requester, [p], journal, open_on_chain=False), request_)
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert not rep.done and "not open yet" in rep.note  # the acceptance could still reach the chain
    ledger.advance(10_000)
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.settled == "never_opened" and rep.done and requester.balance_of() == DEPOSIT


def test_a_failed_run_keeps_its_error_and_ends_never_opened(ledger: FakeLedger, requester: FakeMarket,
                                                                 request_: JobRequest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    p = FakeProvider("provider1", ledger, fail_run="the sandbox broke")
    with pytest.raises(Exception):
        asyncio.run(_run(_market(requester, [p], journal, open_on_chain=False), request_))
    (entry,) = journal.entries()
    assert entry.state not in ("accepted", "verified") and "sandbox broke" in entry.note
    ledger.advance(10_000)
    (rep,) = asyncio.run(_recover(_market(requester, [p], journal)))
    assert rep.done and rep.settled == "never_opened" and requester.balance_of() == DEPOSIT


def test_journal_rows_are_written_once_and_columns_are_checked(tmp_path: Path) -> None:
    journal = Journal.for_account(tmp_path, 31337, "0x" + "AB" * 20, "0x" + "Cd" * 20)
    assert journal.folder == tmp_path / "journal" / f"31337-0x{'ab' * 20}-0x{'cd' * 20}"
    entry = JournalEntry("0x01", 1.0, "job", "sha256:00", "0xp", "http://p", "{}", "0x00", "0x", "0x")
    journal.begin(entry)
    journal.begin(JournalEntry("0x01", 2.0, "other", "", "", "", "{}", "", "", ""))  # no-op
    assert journal.get("0x01").name == "job"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown journal column"):
        journal.update("0x01", nope=1)
    journal.save_result("0x01", result_root="ab", stdout=b"out", stderr=b"", outputs={"../evil": b"x", "a/b": b"y"})
    got = journal.get("0x01")
    assert got is not None and got.state == "verified" and journal.has_result(got)
    assert (Path(got.result_dir) / "outputs" / "a" / "b").read_bytes() == b"y"
    assert not (Path(got.result_dir).parent / "evil").exists()
    journal.outcome("0x01", "ProviderFailed", "late")  # a verified row keeps its state
    assert journal.get("0x01").state == "verified"  # type: ignore[union-attr]
