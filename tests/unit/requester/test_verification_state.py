"""What the SDK tells about a result (docs/SPEC.md §14.9): sealed, audited, unaudited, proven wrong,
void; jailed providers flagged; one default audit rate; a warning when too few could audit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from requester_fakes import DEPOSIT, KEYS, FakeProvider, transport

from mercato.chain import FakeLedger, FakeMarket
from mercato.chain.api import (
    AUDIT_COMMIT,
    AUDIT_FAILED,
    AUDIT_NONE,
    AUDIT_PASSED,
    AUDIT_REVEAL,
    AUDIT_VOID,
    AuditState,
)
from mercato.cli import app
from mercato.cli.requester import _Progress, _summary, auditors_warning, jobs_table
from mercato.requester import (
    AuditorsShort,
    JobHistory,
    JobRecord,
    JobRequest,
    Market,
    Verification,
    VerificationStatus,
    Verified,
)
from mercato.requester.trust import state_of_audit
from mercato.verification.bond import DEVNET
from mercato.verification.params import DEFAULT_AUDIT_BPS, default_audit_bps, recommend

ZERO = b"\x00" * 32
CLAIM = b"\xc1" * 32


def _audit(phase: int, claim: bytes = ZERO) -> AuditState:
    return AuditState(phase, False, 1, 0, "0x" + "00" * 20, "0x" + "00" * 20, ZERO, 0, ZERO, ZERO, claim, (), (), ())


class TrustFake(FakeMarket):
    """The fake market with the views the verification state reads: ``audit`` per deal (none by
    default, unlike the plain fake's passed-at-once), ``jailed`` and ``committee_size``."""

    def __init__(self, ledger: FakeLedger, key: str, committee_size: int | None = None) -> None:
        super().__init__(ledger, key)
        self.audits: dict[bytes, AuditState] = {}
        self.jailed_set: set[str] = set()
        self.committee_size = committee_size
        self.reads: list[str] = []

    def audit(self, deal_id: bytes) -> AuditState:
        self.reads.append("audit")
        return self.audits.get(bytes(deal_id), _audit(AUDIT_NONE))

    def jailed(self, provider: str | None = None) -> bool:
        self.reads.append("jailed")
        return (provider or self.address).lower() in self.jailed_set

    def parameters(self) -> dict[str, int]:
        params = super().parameters()
        if self.committee_size is not None:
            params["committee_size"] = self.committee_size
        return params


def _requester(ledger: FakeLedger, committee_size: int | None = None) -> TrustFake:
    m = TrustFake(ledger, KEYS["requester1"], committee_size)
    ledger.mint(m.address, 10 * DEPOSIT)
    m.deposit(DEPOSIT)
    return m


async def _run(market: Market, req: JobRequest, runs: int = 1) -> Any:
    async with market as m:
        for _ in range(runs):
            result = await m.run(req)
    return result


# the state from the audit view ---------------------------------------------------------------
@pytest.mark.parametrize(("audit", "state"), [
    (_audit(AUDIT_NONE), Verification.SEALED),              # lottery not drawn, or cleared
    (_audit(AUDIT_COMMIT), Verification.AUDITING),
    (_audit(AUDIT_REVEAL, CLAIM), Verification.AUDITING),
    (_audit(AUDIT_PASSED, CLAIM), Verification.AUDITED),    # an auditor re-executed and agreed
    (_audit(AUDIT_PASSED, ZERO), Verification.UNAUDITED),   # _pass_by_default: AuditResolved(3, 0x00..0)
    (_audit(AUDIT_FAILED, CLAIM), Verification.PROVEN_WRONG),
    (_audit(AUDIT_FAILED, ZERO), Verification.PROVEN_WRONG),  # the provider did not reveal
    (_audit(AUDIT_VOID), Verification.VOID),
])
def test_state_of_audit(audit: AuditState, state: Verification) -> None:
    assert state_of_audit(audit) is state


def test_a_result_is_sealed_when_run_returns_and_the_chain_moves_it_on(ledger: FakeLedger, request_: JobRequest,
                                                                         tmp_path: Path) -> None:
    requester = _requester(ledger)
    p = FakeProvider("provider1", ledger)
    history = JobHistory(tmp_path / "h.sqlite")
    market = Market(requester, transport=transport([p]), history=history)  # type: ignore[arg-type]
    result = asyncio.run(_run(market, request_))
    # the bytes opened the provider's seal: that and nothing more is known now
    assert result.verified and result.verification == "sealed" and not result.audited
    assert not result.provider_flagged and history.recent(1)[0].state == "sealed"

    deal = bytes.fromhex(result.deal_id[2:])
    status = asyncio.run(market.verification(result))
    assert status == VerificationStatus(result.deal_id, p.address, Verification.SEALED, False) and not status.trusted

    requester.audits[deal] = _audit(AUDIT_PASSED)  # drawn, nobody answered: passed by default
    status = asyncio.run(market.verification(result))
    assert status.state == "unaudited" and not result.with_status(status).audited
    assert history.recent(1)[0].state == "unaudited"

    requester.audits[deal] = _audit(AUDIT_PASSED, CLAIM)
    audited = result.with_status(asyncio.run(market.verification(result.deal_id, p.address)))
    assert audited.verification == "audited" and audited.audited and audited.verified

    requester.jailed_set.add(p.address.lower())  # proven to cheat on some other deal since
    flagged = result.with_status(asyncio.run(market.verification(result)))
    assert flagged.verification == "audited" and flagged.provider_flagged and not flagged.audited

    assert history.recent(1)[0].state == "unaudited"  # an audit's outcome is final: the row is not moved again
    requester.audits[deal] = _audit(AUDIT_FAILED, CLAIM)
    assert asyncio.run(market.verification(result)).state == "proven_wrong"
    with pytest.raises(ValueError, match="given for deal"):
        result.with_status(VerificationStatus("0x" + "ab" * 32, p.address, Verification.AUDITED))


def test_history_moves_only_result_rows(tmp_path: Path) -> None:
    h = JobHistory(tmp_path / "h.sqlite")
    h.record(JobRecord(1.0, "old", "sha256:00", "verified", "0xAA"))  # a row of an older version
    h.record(JobRecord(2.0, "bad", "sha256:00", "ResultMismatch", "0xbb"))
    h.set_state("0xaa", "audited")
    h.set_state("0xbb", "proven_wrong")  # a failed job keeps its error
    assert [r.state for r in h.recent()] == ["ResultMismatch", "audited"]
    h.set_state("0xaa", "unaudited")  # an audit's outcome is final
    assert h.recent()[1].state == "audited"
    with pytest.raises(ValueError):
        h.set_state("0xaa", "verified")


# one default audit rate ---------------------------------------------------------------------
def test_one_default_audit_rate_for_the_sdk_and_verify_params(ledger: FakeLedger, request_: JobRequest) -> None:
    assert recommend(1_500_000).audit_bps == default_audit_bps(300) == DEFAULT_AUDIT_BPS == 500
    assert default_audit_bps(800) == 800  # never below a market's floor
    p = FakeProvider("provider1", ledger)
    asyncio.run(_run(Market(_requester(ledger), transport=transport([p])), request_))  # type: ignore[arg-type]
    (deal,) = p.deals.values()
    assert deal["terms"].audit_bps == DEFAULT_AUDIT_BPS


def test_verify_params_standard_is_the_sdk_default() -> None:
    res = CliRunner().invoke(app, ["verify-params", "--price", "1.5", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["audit_bps"] == DEFAULT_AUDIT_BPS == default_audit_bps(DEVNET.audit_floor_bps)


def test_the_default_rises_to_a_higher_floor(request_: JobRequest) -> None:
    ledger = FakeLedger(audit_floor_bps=800)
    p = FakeProvider("provider1", ledger)
    asyncio.run(_run(Market(_requester(ledger), transport=transport([p])), request_))  # type: ignore[arg-type]
    (deal,) = p.deals.values()
    assert deal["terms"].audit_bps == 800


# too few auditors ---------------------------------------------------------------------------
def _events_of(ledger: FakeLedger, providers: list[FakeProvider], req: JobRequest, committee: int | None,
               runs: int = 1, jail: tuple[FakeProvider, ...] = ()) -> list[object]:
    requester = _requester(ledger, committee)
    requester.jailed_set |= {p.address.lower() for p in jail}
    events: list[object] = []
    market = Market(requester, transport=transport(providers), on_event=events.append)  # type: ignore[arg-type]
    asyncio.run(_run(market, req, runs))
    return events


def test_too_few_auditors_warns_once(ledger: FakeLedger, request_: JobRequest,
                                     caplog: pytest.LogCaptureFixture) -> None:
    ps = [FakeProvider(f"provider{i}", ledger, price_per_cu=10_000 + i) for i in (1, 2, 3)]
    with caplog.at_level(logging.WARNING, logger="mercato.requester"):
        events = _events_of(ledger, ps, request_, committee=2, runs=2)
    short = [ev for ev in events if isinstance(ev, AuditorsShort)]
    # provider1 wins; provider2 and provider3 could audit: 2 < committee 2 + 1
    assert short == [AuditorsShort(available=2, needed=3, committee_size=2, provider=ps[0].address)]
    assert events.index(short[0]) > min(i for i, ev in enumerate(events) if isinstance(ev, Verified))
    assert sum("too few independent auditors" in r.getMessage() for r in caplog.records) == 1
    assert "only 2 staked provider(s)" in auditors_warning(short[0]) and "needs 3" in auditors_warning(short[0])


def test_enough_auditors_no_warning_unless_one_is_jailed_or_unstaked(request_: JobRequest) -> None:
    def providers(ledger: FakeLedger, n: int = 4) -> list[FakeProvider]:
        return [FakeProvider(f"provider{i}", ledger, price_per_cu=10_000 + i) for i in range(1, n + 1)]

    ledger = FakeLedger()
    assert not [ev for ev in _events_of(ledger, providers(ledger), request_, committee=2)
                if isinstance(ev, AuditorsShort)]
    ledger = FakeLedger()
    ps = providers(ledger)
    (short,) = [ev for ev in _events_of(ledger, ps, request_, committee=2, jail=(ps[3],))
                if isinstance(ev, AuditorsShort)]
    assert (short.available, short.needed) == (2, 3)
    ledger = FakeLedger()
    ps = providers(ledger, 3) + [FakeProvider("provider4", ledger, stake=0)]  # registered, no stake
    assert [ev.available for ev in _events_of(ledger, ps, request_, committee=2) if isinstance(ev, AuditorsShort)] \
        == [2]


def test_no_committee_size_no_check(ledger: FakeLedger, request_: JobRequest) -> None:
    events = _events_of(ledger, [FakeProvider("provider1", ledger)], request_, committee=None)
    assert not [ev for ev in events if isinstance(ev, AuditorsShort)]


# what the CLI shows -------------------------------------------------------------------------
def _text(renderable: Any) -> str:
    console = Console(record=True, width=400, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_jobs_table_shows_each_state_and_jailed_providers() -> None:
    honest, cheat = "0x" + "11" * 20, "0x" + "22" * 20
    rows = [JobRecord(1_700_000_000.0 + i, name, "sha256:00", state, deal, prov, 50_000)
            for i, (name, state, deal, prov) in enumerate([
                ("old", "verified", "0xd1", honest), ("clr", "sealed", "0xd2", honest),
                ("aud", "sealed", "0xd3", honest), ("pbd", "sealed", "0xd4", honest),
                ("bad", "ResultMismatch", "0xd5", cheat), ("chx", "sealed", "0xd6", cheat)])]
    st = {"0xd3": VerificationStatus("0xd3", honest, Verification.AUDITED),
          "0xD4": VerificationStatus("0xd4", honest, Verification.UNAUDITED),
          "0xd5": VerificationStatus("0xd5", cheat, Verification.PROVEN_WRONG, True),
          "0xd6": VerificationStatus("0xd6", cheat, Verification.SEALED, True)}
    cells = [[c.strip() for c in line.split("│")] for line in _text(jobs_table(rows, st)).splitlines()]
    lines = {row[2]: " | ".join(row[3:5]) for row in cells if len(row) > 5}  # name -> state | provider
    assert set(lines) == {"old", "clr", "aud", "pbd", "bad", "chx"}
    assert "sealed" in lines["old"] and "verified" not in lines["old"]
    assert "sealed" in lines["clr"] and "audited" in lines["aud"] and "unaudited" in lines["pbd"]
    assert "ResultMismatch (audit: proven_wrong)" in lines["bad"] and "jailed" in lines["bad"]
    assert "sealed" in lines["chx"] and "jailed" in lines["chx"]
    assert "jailed" not in lines["aud"] + lines["clr"] + lines["pbd"]
    offline = _text(jobs_table(rows))
    assert "audited" not in offline and "jailed" not in offline


def test_run_output_says_sealed_not_verified(ledger: FakeLedger, request_: JobRequest) -> None:
    p = FakeProvider("provider1", ledger)
    progress = _Progress()
    market = Market(_requester(ledger, committee_size=5), transport=transport([p]), on_event=progress)  # type: ignore[arg-type]
    result = asyncio.run(_run(market, request_))
    steps = _text(progress.render())
    assert "sealed" in steps and "matches the provider's on-chain commitment" in steps and "verified" not in steps
    assert len(progress.warnings) == 1 and "only 0 staked provider(s)" in progress.warnings[0]
    sealed = _text(_summary(result))
    assert "sealed" in sealed and "verified" not in sealed and "audited" not in sealed.replace("not audited", "")
    audited = _text(_summary(result.with_status(VerificationStatus(result.deal_id, p.address, Verification.AUDITED))))
    assert "job done: result audited" in audited and "re-executed the job and agreed" in audited
    unaudited = _text(_summary(result.with_status(VerificationStatus(result.deal_id, p.address,
                                                                     Verification.UNAUDITED, True))))
    assert "passed by default" in unaudited and "do not trust" in unaudited
