"""Job unavailable (docs/SPEC.md §14.4): a drawn auditor that cannot obtain the job (not pushed,
and the provider does not serve it) commits ``seal_of(self, deal_id, 0, 0, salt)`` once the commit
deadline is within max(3 s, audit_period / 4), and reveals it, instead of missing its commit and
losing its seat bond; earlier it commits nothing and keeps trying."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from provider_kit import KEYS, Harness

from mercato.chain.api import AUDIT_COMMIT, AUDIT_REVEAL, AuditState
from mercato.domain.deals import ZERO32
from mercato.verification.lottery import UNAVAILABLE_ROOT, seal_of

pytestmark = pytest.mark.anyio

DEAL = "0x" + "ab" * 32
PROVIDER = "0x" + "22" * 20


def _refusing(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="not serving audits")


async def _unreachable_provider(make_agent: Any, tmp_path: Any) -> tuple[Harness, list[tuple[Any, ...]]]:
    """An auditor (not started: we drive its steps) seated for DEAL, whose provider answers 503."""
    h = await make_agent(key=KEYS["provider2"], data_dir=tmp_path / "auditor", start=False)
    aud = h.agent.auditor
    aud._transport = httpx.MockTransport(_refusing)
    aud.audit_period = 20  # margin max(3, 20 // 4) = 5 s

    async def endpoint(_who: str) -> str:
        return "http://provider"
    aud._endpoint = endpoint  # type: ignore[method-assign]
    sent: list[tuple[Any, ...]] = []
    h.agent.chain.market.commit_audit = lambda *a: sent.append(a)  # type: ignore[attr-defined]
    aud.assign(DEAL)
    return h, sent


def _state(h: Harness, phase: int, deadline: int, seal: bytes = ZERO32) -> AuditState:
    return AuditState(phase, False, 1, deadline, "", PROVIDER, ZERO32, 0, ZERO32, ZERO32, ZERO32,
                      (h.agent.address,), (seal,), (ZERO32,))


async def test_close_to_the_deadline_an_unobtainable_job_is_reported_unavailable(make_agent, tmp_path) -> None:
    h, sent = await _unreachable_provider(make_agent, tmp_path)
    aud = h.agent.auditor
    assert aud.unavailable_margin() == 5
    state = _state(h, AUDIT_COMMIT, h.ledger.time + 4)
    await aud._execute_and_commit(aud.get(DEAL), state)  # type: ignore[arg-type]
    task = aud.get(DEAL)
    assert task is not None and task.state == "committed"
    assert (task.result_root, task.fuel) == ("00" * 32, 0) and task.salt is not None
    salt = bytes.fromhex(task.salt.removeprefix("0x"))
    expected = seal_of(h.agent.address, bytes.fromhex(DEAL[2:]), UNAVAILABLE_ROOT, 0, salt)
    assert len(sent) == 1 and sent[0] == (bytes.fromhex(DEAL[2:]), expected)
    assert task.seal == "0x" + expected.hex()
    assert h.runtime.calls == []  # nothing was run

    # the normal reveal path opens it: (0, 0, salt)
    revealed: list[tuple[Any, ...]] = []
    h.agent.chain.market.reveal = lambda *a: revealed.append(a)  # type: ignore[attr-defined]
    h.agent.chain.market.audit = lambda _d: _state(h, AUDIT_REVEAL, h.ledger.time + 20,  # type: ignore[attr-defined]
                                                   seal=expected)
    await aud._step(task)
    assert revealed == [(bytes.fromhex(DEAL[2:]), UNAVAILABLE_ROOT, 0, salt)]
    assert aud.get(DEAL).state == "revealed"  # type: ignore[union-attr]


async def test_far_from_the_deadline_nothing_is_committed_yet(make_agent, tmp_path) -> None:
    h, sent = await _unreachable_provider(make_agent, tmp_path)
    aud = h.agent.auditor
    for left in (100, 6):  # more than the margin: keep trying
        await aud._execute_and_commit(aud.get(DEAL), _state(h, AUDIT_COMMIT, h.ledger.time + left))  # type: ignore[arg-type]
        task = aud.get(DEAL)
        assert sent == [] and task is not None and task.state == "assigned" and task.seal is None
    # the 3 s floor holds with a short audit_period
    aud.audit_period = 4
    assert aud.unavailable_margin() == 3
    await aud._execute_and_commit(aud.get(DEAL), _state(h, AUDIT_COMMIT, h.ledger.time + 4))  # type: ignore[arg-type]
    assert sent == []
    await aud._execute_and_commit(aud.get(DEAL), _state(h, AUDIT_COMMIT, h.ledger.time + 3))  # type: ignore[arg-type]
    assert len(sent) == 1 and aud.get(DEAL).result_root == "00" * 32  # type: ignore[union-attr]
