"""What is known about a result: sealed, audited, unaudited, proven wrong (docs/SPEC.md §14.9).

    >>> status = await market.verification(result)          # doctest: +SKIP
    >>> status.state, status.provider_flagged                # doctest: +SKIP
    (<Verification.SEALED: 'sealed'>, False)

``run`` checks every byte of a result against the seal its provider committed on-chain. That
proves the bytes are the ones the provider stands behind — not that anyone else ran the job.
Whether someone did is decided later, by the deal's lottery and audit, and read back from the
contract's ``audit(deal_id)`` view (it keeps an audit's outcome after the deal settles):

- phase 0, no audit: ``sealed`` (lottery not drawn yet, or drawn and cleared);
- commit or reveal phase: ``auditing``;
- ``PASSED`` with a non-zero winning claim: ``audited`` — an independent auditor (or a committee)
  re-executed the job and agreed with the provider;
- ``PASSED`` with a zero claim: ``unaudited`` — the audit passed *by default* because no auditor
  could be drawn or none answered (``_pass_by_default`` logs ``AuditResolved(3, 0x00…0)``);
  nobody independent checked the result;
- ``FAILED``: ``proven_wrong`` — the provider's claim lost; the price was refunded;
- ``VOID``: ``void`` — no majority among the executions; refunded, the workload flagged
  non-deterministic.

Independently of the state, ``provider_flagged`` says the provider is jailed now (proven to
cheat on some deal): none of its results should be trusted, sealed or passed by default.

``auditor_pool`` counts who could audit a deal: registered providers with stake that are not
jailed. A dispute needs ``committee_size + 1`` of them besides the deal's provider and
requester (the first auditor and the committee); with fewer, an audit may pass by default or
end void.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mercato.chain.api import AUDIT_FAILED, AUDIT_NONE, AUDIT_PASSED, AUDIT_VOID, AuditState, MarketApi

__all__ = ["Verification", "VerificationStatus", "auditor_pool", "describe", "read_verification", "state_of_audit"]

Call = Callable[..., Awaitable[Any]]
_ZERO32 = b"\x00" * 32


class Verification(str, enum.Enum):
    """How far a result was checked (a ``str``: compares equal to its value, e.g. ``"sealed"``)."""

    SEALED = "sealed"
    AUDITING = "auditing"
    AUDITED = "audited"
    UNAUDITED = "unaudited"
    PROVEN_WRONG = "proven_wrong"
    VOID = "void"

    def __str__(self) -> str:
        return self.value


_DESCRIPTIONS = {
    Verification.SEALED: "sealed (matches the provider's on-chain commitment; not independently re-executed)",
    Verification.AUDITING: "auditing (an audit of this deal is under way)",
    Verification.AUDITED: "audited (an independent auditor re-executed the job and agreed)",
    Verification.UNAUDITED: "unaudited (drawn for audit, but no auditor answered: passed by default, "
                            "nobody independent checked it)",
    Verification.PROVEN_WRONG: "proven wrong (the audit failed: the result is not what the job computes; "
                               "price refunded)",
    Verification.VOID: "void (the executions disagreed with no majority: refunded, workload flagged "
                       "non-deterministic)",
}


def describe(state: Verification | str, provider_flagged: bool = False) -> str:
    """One line for people: what ``state`` means (and a warning when the provider is jailed)."""
    try:
        text = _DESCRIPTIONS[Verification(state)]
    except ValueError:
        text = str(state)
    if provider_flagged:
        text += "; its provider has since been proven to cheat (jailed): do not trust this result"
    return text


def state_of_audit(audit: AuditState) -> Verification:
    """The state an ``audit(deal_id)`` view says (``sealed`` when the deal has no audit)."""
    if audit.phase == AUDIT_NONE:
        return Verification.SEALED
    if audit.phase == AUDIT_PASSED:
        return Verification.AUDITED if bytes(audit.claim) != _ZERO32 else Verification.UNAUDITED
    if audit.phase == AUDIT_FAILED:
        return Verification.PROVEN_WRONG
    if audit.phase == AUDIT_VOID:
        return Verification.VOID
    return Verification.AUDITING


@dataclass(frozen=True, slots=True)
class VerificationStatus:
    """What the chain says now about one deal's result (see the module doc)."""

    deal_id: str
    provider: str
    state: Verification
    provider_flagged: bool = False

    @property
    def trusted(self) -> bool:
        """An independent re-execution agreed and the provider is not jailed."""
        return self.state == Verification.AUDITED and not self.provider_flagged

    def describe(self) -> str:
        return describe(self.state, self.provider_flagged)


def _deal_bytes(deal_id: str | bytes) -> bytes:
    return bytes(deal_id) if isinstance(deal_id, (bytes, bytearray)) else bytes.fromhex(deal_id.removeprefix("0x"))


async def is_jailed(api: MarketApi, call: Call, provider: str) -> bool:
    """``jailed(provider)``; False on a market without the view (the in-memory fake)."""
    jailed = getattr(api, "jailed", None)
    return bool(await call(jailed, provider)) if jailed is not None and provider else False


async def read_verification(api: MarketApi, call: Call, deal_id: str | bytes, provider: str) -> VerificationStatus:
    """The deal's state from its ``audit`` view and whether ``provider`` is jailed now."""
    raw = _deal_bytes(deal_id)
    audit, jailed = await asyncio.gather(call(api.audit, raw), is_jailed(api, call, provider))  # type: ignore[attr-defined]
    return VerificationStatus("0x" + raw.hex(), provider, state_of_audit(audit), jailed)


async def auditor_pool(api: MarketApi, call: Call, exclude: Iterable[str] = ()) -> list[str]:
    """Providers that could be drawn as auditors now: registered, with stake, not jailed, and not in
    ``exclude`` (a deal's provider and requester)."""
    skip = {a.lower() for a in exclude}
    addresses = [a for a in await call(api.providers) if a.lower() not in skip]
    infos = await asyncio.gather(*(call(api.provider_info, a) for a in addresses))
    staked = [a for a, i in zip(addresses, infos, strict=True) if i.registered and i.stake > 0]
    jailed = await asyncio.gather(*(is_jailed(api, call, a) for a in staked))
    return [a for a, j in zip(staked, jailed, strict=True) if not j]
