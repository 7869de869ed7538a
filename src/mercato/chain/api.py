"""The seam upper layers depend on: ``MarketApi`` and the typed values it returns.

``MarketClient`` (web3, a real node) and ``FakeMarket`` (in memory) both implement it,
with the same semantics and the same typed errors.

    >>> def pay(m: MarketApi, amount: int) -> int:
    ...     m.deposit(amount)
    ...     return m.balance_of()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mercato.domain.deals import ZERO32, Deal, Terms

__all__ = [
    "AuditRecord",
    "AuditState",
    "Event",
    "Tx",
    "DealTx",
    "PendingWithdrawal",
    "ProviderInfo",
    "Reputation",
    "LaneState",
    "MarketApi",
]


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded contract event: ``name`` as in the contract, ``args`` by field name."""

    name: str
    args: dict[str, Any]
    log_index: int = 0


@dataclass(frozen=True, slots=True)
class Tx:
    """A mined transaction: hash, gas used (incl. intrinsic and calldata), block, events."""

    tx_hash: bytes
    gas_used: int
    block_number: int
    timestamp: int
    events: tuple[Event, ...] = ()

    def events_named(self, name: str) -> list[Event]:
        """The events called ``name``, in log order."""
        return [ev for ev in self.events if ev.name == name]


@dataclass(frozen=True, slots=True)
class DealTx:
    """A deal after a transaction that changed it, with that transaction."""

    deal: Deal
    tx: Tx


@dataclass(frozen=True, slots=True)
class PendingWithdrawal:
    """An escrow withdrawal on its way out."""

    amount: int
    ready_at: int


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """A provider's registry entry and stake accounting (token base units)."""

    registered: bool
    endpoint: str
    resources: bytes
    enc_key: bytes
    stake: int
    locked: int
    unbonding: int
    unbond_ready_at: int
    earnings: int


@dataclass(frozen=True, slots=True)
class Reputation:
    """On-chain outcome counters of a provider."""

    completed: int
    missed: int
    slashed: int
    volume: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Verification counters of a provider (docs/SPEC.md §14): as provider, audits passed and
    failed; as anyone, disputes lost; as auditor, audits done; and audit no-shows."""

    audits_passed: int
    audits_failed: int
    disputes_lost: int
    audits_done: int
    no_shows: int


# AuditState.phase values
AUDIT_NONE, AUDIT_COMMIT, AUDIT_REVEAL, AUDIT_PASSED, AUDIT_FAILED, AUDIT_VOID = range(6)


@dataclass(frozen=True, slots=True)
class AuditState:
    """One deal's audit as the contract's ``audit(deal_id)`` view returns it (``phase`` 0 when
    the deal has none). Seat 0 is the first auditor of the current round, seats 1.. the dispute
    committee; a zero seal means the seat has not committed, a zero claim that it has not
    revealed (``provider_claim`` likewise for the provider)."""

    phase: int
    dispute: bool
    round: int
    deadline: int
    requester: str
    provider: str
    jobs_root: bytes
    fee: int
    provider_seal: bytes
    provider_claim: bytes
    claim: bytes  # the winning claim once resolved
    seats: tuple[str, ...]
    seals: tuple[bytes, ...]
    claims: tuple[bytes, ...]

    @property
    def resolved(self) -> bool:
        """Whether the audit has an outcome (passed, failed or void)."""
        return self.phase >= AUDIT_PASSED

    @property
    def provider_revealed(self) -> bool:
        return self.provider_claim != ZERO32

    def seat_of(self, auditor: str) -> int | None:
        """``auditor``'s seat index, or None when it holds none."""
        for i, seat in enumerate(self.seats):
            if seat.lower() == auditor.lower():
                return i
        return None

    def committed(self, seat: int) -> bool:
        return seat < len(self.seals) and self.seals[seat] != ZERO32

    def revealed(self, seat: int) -> bool:
        return seat < len(self.claims) and self.claims[seat] != ZERO32

    def acts_now(self, seat: int) -> bool:
        """Whether ``seat`` is part of the current round: seat 0 outside a dispute, 1.. in one."""
        return (seat >= 1) == self.dispute

    @classmethod
    def from_view(cls, v: Any) -> AuditState:
        """From the contract's ``audit(deal_id)`` (an ``AuditView`` tuple)."""
        return cls(int(v[0]), bool(v[1]), int(v[2]), int(v[3]), str(v[4]), str(v[5]), bytes(v[6]), int(v[7]),
                   bytes(v[8]), bytes(v[9]), bytes(v[10]), tuple(str(a) for a in v[11]),
                   tuple(bytes(b) for b in v[12]), tuple(bytes(b) for b in v[13]))


@dataclass(frozen=True, slots=True)
class LaneState:
    """One lane word: the truncated hash of its open deal (0 = free) and its last nonce."""

    deal_hash_prefix: int
    last_nonce: int

    @property
    def busy(self) -> bool:
        """Whether the lane holds an open deal."""
        return self.deal_hash_prefix != 0

    @classmethod
    def from_word(cls, word: int) -> LaneState:
        """Split the 256-bit lane slot."""
        return cls(word >> 64, word & (2**64 - 1))


@runtime_checkable
class MarketApi(Protocol):
    """The Market as seen from one account (``address``); writes are sent from it."""

    address: str
    market: str
    chain_id: int

    # escrow accounts
    def deposit(self, amount: int) -> Tx: ...
    def request_withdrawal(self, amount: int) -> Tx: ...
    def withdraw(self) -> Tx: ...
    def cancel_withdrawal(self) -> Tx: ...
    def balance_of(self, account: str | None = None) -> int: ...
    def pending_withdrawal(self, account: str | None = None) -> PendingWithdrawal: ...

    # provider registry and stake
    def register(self, endpoint: str, resources: bytes, enc_key: bytes) -> Tx: ...
    def stake(self, amount: int) -> Tx: ...
    def unbond(self, amount: int) -> Tx: ...
    def withdraw_stake(self) -> Tx: ...
    def claim_earnings(self) -> Tx: ...
    def provider_info(self, provider: str | None = None) -> ProviderInfo: ...
    def free_stake(self, provider: str | None = None) -> int: ...
    def reputation(self, provider: str | None = None) -> Reputation: ...
    def providers(self) -> list[str]: ...  # every registered provider, in registration order

    # deals
    def open_deal(self, terms: Terms, bid_signature: bytes) -> DealTx: ...
    def commit_result(self, deal: Deal, seal: bytes) -> DealTx: ...
    def open_and_commit(self, terms: Terms, acceptance_signature: bytes, seal: bytes) -> DealTx: ...
    def finalize(self, deals: Sequence[Deal]) -> Tx: ...
    def reclaim(self, deals: Sequence[Deal]) -> Tx: ...
    def lane(self, provider: str, lane: int) -> LaneState: ...

    # the lottery (docs/SPEC.md §14.3)
    def draw(self, deals: Sequence[Deal], seeds: Sequence[bytes]) -> list[DealTx]: ...
    def audit_by_default(self, deal: Deal) -> DealTx: ...
    def challenge(self, deal: Deal) -> DealTx: ...
    def block_number(self) -> int: ...
    def parameters(self) -> dict[str, int]: ...  # the deployment parameters (docs/SPEC.md §2, §14.1)

    # signing with this account's key, and chain facts
    def sign_bid(self, terms: Terms) -> bytes: ...
    def sign_acceptance(self, terms: Terms) -> bytes: ...
    def now(self) -> int: ...
    def token_balance(self, account: str | None = None) -> int: ...


