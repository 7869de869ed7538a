"""An in-memory Market with the contract's semantics and typed errors, for unit tests.

    >>> ledger = FakeLedger()
    >>> alice = ledger.client("0x" + "01" * 32)
    >>> ledger.mint(alice.address, 100)
    >>> _ = alice.deposit(60)
    >>> alice.balance_of(), alice.token_balance()
    (60, 40)

Time only moves with :meth:`FakeLedger.advance`; every write mines one block.

The lottery runs as on-chain with a stand-in beacon (the keccak of the beacon block's
number, since the fake has no block hashes). There are no auditors in memory: a deal the
lottery (or a challenge) sends to audit passes at once, its audit fee going back to the
requester; audits, disputes and slashing are tested against the real contract.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from mercato.chain import eip712
from mercato.chain.api import (
    AUDIT_PASSED,
    AuditState,
    DealTx,
    Event,
    LaneState,
    PendingWithdrawal,
    ProviderInfo,
    Reputation,
    Tx,
)
from mercato.chain.market import check_batch
from mercato.chain.reverts import error_for
from mercato.domain.deals import (
    AUDITED,
    CLEARED,
    MAX_NONCE,
    UNDRAWN,
    ZERO32,
    Deal,
    Terms,
    hash_prefix,
    lane_word,
)

__all__ = ["FakeLedger", "FakeMarket", "DEALS_REASONS"]

# the contract's strings the fake raises (equal to contracts/modules/deals.vy)
DEALS_REASONS = {
    "not_requester": "deals: not requester",
    "not_provider": "deals: not provider",
    "no_jobs": "deals: no jobs",
    "expiry": "deals: expiry after deadline",
    "nonce_range": "deals: nonce out of range",
    "amount_range": "deals: amount out of range",
    "bid_expired": "deals: bid expired",
    "acceptance_expired": "deals: acceptance expired",
    "empty_seal": "deals: empty seal",
    "signature": "deals: bad signature",
    "busy": "deals: lane busy",
    "replayed": "deals: bid replayed",
    "unfunded": "deals: requester unfunded",
    "unregistered": "deals: provider not registered",
    "stake": "deals: insufficient free stake",
    "settled": "deals: already settled",
    "unknown": "deals: unknown deal",
    "committed": "deals: already committed",
    "late": "deals: deadline passed",
    "uncommitted": "deals: not committed",
    "window": "deals: challenge window open",
    "early": "deals: deadline not passed",
    "no_seed": "deals: no seed",
    "audit_range": "deals: audit probability out of range",
    "not_drawn": "deals: not drawn",
    "drawn": "deals: already drawn",
    "bad_seed": "deals: bad seed",
    "beacon": "deals: beacon not ready",
    "draw_over": "deals: draw window over",
    "draw_open": "deals: draw window open",
    "challenge_over": "deals: challenge window over",
    "audited": "deals: already audited",
    "length": "deals: length mismatch",
}
_R = DEALS_REASONS
_U32 = 2**32 - 1
_U31 = 2**31 - 1
ZERO_ADDRESS = "0x" + "00" * 20
_MAX_S = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0  # secp256k1n / 2


def _fail(reason: str) -> NoReturn:
    raise error_for(reason)


def _require(ok: bool, reason: str) -> None:
    if not ok:
        _fail(reason)


@dataclass(slots=True)
class _Provider:
    registered: bool = False
    endpoint: str = ""
    resources: bytes = ZERO32
    enc_key: bytes = ZERO32
    stake: int = 0
    locked: int = 0
    unbonding: int = 0
    unbond_ready_at: int = 0
    volume: int = 0
    withdrawn: int = 0
    completed: int = 0
    missed: int = 0
    slashed: int = 0


class FakeLedger:
    """Shared state of one fake chain: token balances, escrow, providers, lanes, the clock."""

    def __init__(self, *, chain_id: int = 31337, market: str = "0x" + "4d" * 20,
                 challenge_window: int = 5, unbond_delay: int = 60, withdrawal_delay: int = 30,
                 miss_penalty_bps: int = 5000, audit_floor_bps: int = 300, beacon_delay: int = 2,
                 draw_blocks: int = 200, start_time: int = 1_700_000_000) -> None:
        self.chain_id = chain_id
        self.market = to_checksum_address(market)
        self.challenge_window = challenge_window
        self.unbond_delay = unbond_delay
        self.withdrawal_delay = withdrawal_delay
        self.miss_penalty_bps = miss_penalty_bps
        self.audit_floor_bps = audit_floor_bps
        self.beacon_delay = beacon_delay
        self.draw_blocks = draw_blocks
        self.time = start_time
        self.block = 1
        self.tokens: dict[str, int] = {}
        self.escrow: dict[str, list[int]] = {}  # [available, pending, ready_at]
        self.providers: dict[str, _Provider] = {}
        self.lanes: dict[tuple[str, int], int] = {}
        self.burned = 0  # miss penalties (the contract's staking.burned)

    def client(self, private_key: str | bytes) -> FakeMarket:
        """The market as seen from the account of ``private_key``."""
        return FakeMarket(self, private_key)

    def advance(self, seconds: int, blocks: int = 1) -> None:
        """Move the clock (like ``evm_increaseTime`` + ``evm_mine``) and mine ``blocks`` blocks."""
        self.time += seconds
        self.block += blocks

    def beacon(self, block: int) -> bytes:
        """The fake's stand-in for ``blockhash(block)``."""
        return keccak(b"beacon" + block.to_bytes(32, "big"))

    def mint(self, to: str, amount: int) -> None:
        """Give ``to`` tokens (the mock token's open faucet)."""
        self.tokens[to] = self.tokens.get(to, 0) + amount

    def snapshot(self) -> tuple[object, ...]:
        """A deep copy of the mutable state (for all-or-nothing batches)."""
        return copy.deepcopy((self.tokens, self.escrow, self.providers, self.lanes))

    def restore(self, snapshot: tuple[object, ...]) -> None:
        """Go back to a :meth:`snapshot`."""
        self.tokens, self.escrow, self.providers, self.lanes = copy.deepcopy(snapshot)  # type: ignore[assignment]

    def _mine(self, *events: Event) -> Tx:
        self.block += 1
        return Tx(keccak(self.block.to_bytes(32, "big")), 0, self.block, self.time, tuple(events))

    def _account(self, who: str) -> list[int]:
        return self.escrow.setdefault(who, [0, 0, 0])

    def _provider(self, who: str) -> _Provider:
        return self.providers.setdefault(who, _Provider())

    def _pull(self, who: str, amount: int, prefix: str) -> None:
        _require(self.tokens.get(who, 0) >= amount, f"{prefix}: token transfer failed")
        self.tokens[who] -= amount


class FakeMarket:
    """``MarketApi`` over a :class:`FakeLedger`, acting as one account."""

    def __init__(self, ledger: FakeLedger, private_key: str | bytes) -> None:
        self.ledger = ledger
        self._key = private_key
        self.address: str = Account.from_key(private_key).address
        self.market: str = ledger.market
        self.chain_id: int = ledger.chain_id

    # escrow accounts ----------------------------------------------------------------------
    def deposit(self, amount: int) -> Tx:
        _require(amount != 0, "accounts: zero amount")
        self.ledger._pull(self.address, amount, "accounts")
        acct = self.ledger._account(self.address)
        acct[0] += amount
        return self.ledger._mine(Event("Deposited", {"account": self.address, "amount": amount,
                                                     "available": acct[0]}))

    def request_withdrawal(self, amount: int) -> Tx:
        _require(amount != 0, "accounts: zero amount")
        acct = self.ledger._account(self.address)
        _require(acct[0] >= amount, "accounts: insufficient balance")
        ready_at = self.ledger.time + self.ledger.withdrawal_delay
        acct[0], acct[1], acct[2] = acct[0] - amount, acct[1] + amount, ready_at
        return self.ledger._mine(Event("WithdrawalRequested", {
            "account": self.address, "amount": amount, "pending": acct[1], "ready_at": ready_at}))

    def withdraw(self) -> Tx:
        acct = self.ledger._account(self.address)
        _require(acct[1] != 0, "accounts: nothing pending")
        _require(self.ledger.time >= acct[2], "accounts: withdrawal not ready")
        amount, acct[1], acct[2] = acct[1], 0, 0
        self.ledger.mint(self.address, amount)
        return self.ledger._mine(Event("Withdrawn", {"account": self.address, "amount": amount}))

    def cancel_withdrawal(self) -> Tx:
        acct = self.ledger._account(self.address)
        _require(acct[1] != 0, "accounts: nothing pending")
        amount = acct[1]
        acct[0], acct[1], acct[2] = acct[0] + amount, 0, 0
        return self.ledger._mine(Event("WithdrawalCancelled", {"account": self.address, "amount": amount}))

    def balance_of(self, account: str | None = None) -> int:
        return self.ledger._account(account or self.address)[0]

    def pending_withdrawal(self, account: str | None = None) -> PendingWithdrawal:
        acct = self.ledger._account(account or self.address)
        return PendingWithdrawal(acct[1], acct[2] if acct[1] else acct[2])

    # provider registry and stake ------------------------------------------------------------
    def register(self, endpoint: str, resources: bytes, enc_key: bytes) -> Tx:
        _require(len(endpoint) != 0, "staking: empty endpoint")
        p = self.ledger._provider(self.address)
        name = "ProviderUpdated" if p.registered else "ProviderRegistered"
        p.registered, p.endpoint, p.resources, p.enc_key = True, endpoint, bytes(resources), bytes(enc_key)
        return self.ledger._mine(Event(name, {"provider": self.address, "endpoint": endpoint,
                                              "resources": p.resources, "enc_key": p.enc_key}))

    def stake(self, amount: int) -> Tx:
        _require(amount != 0, "staking: zero amount")
        self.ledger._pull(self.address, amount, "accounts")
        p = self.ledger._provider(self.address)
        p.stake += amount
        return self.ledger._mine(Event("Staked", {"provider": self.address, "amount": amount, "stake": p.stake}))

    def unbond(self, amount: int) -> Tx:
        _require(amount != 0, "staking: zero amount")
        p = self.ledger._provider(self.address)
        _require(p.stake - p.locked >= amount, "staking: insufficient free stake")
        p.stake -= amount
        p.unbonding += amount
        p.unbond_ready_at = self.ledger.time + self.ledger.unbond_delay
        return self.ledger._mine(Event("Unbonded", {"provider": self.address, "amount": amount,
                                                    "unbonding": p.unbonding, "ready_at": p.unbond_ready_at}))

    def withdraw_stake(self) -> Tx:
        p = self.ledger._provider(self.address)
        _require(p.unbonding != 0, "staking: nothing unbonding")
        _require(self.ledger.time >= p.unbond_ready_at, "staking: unbond not ready")
        amount, p.unbonding, p.unbond_ready_at = p.unbonding, 0, 0
        self.ledger.mint(self.address, amount)
        return self.ledger._mine(Event("StakeWithdrawn", {"provider": self.address, "amount": amount}))

    def claim_earnings(self) -> Tx:
        p = self.ledger._provider(self.address)
        amount = p.volume - p.withdrawn
        _require(amount != 0, "staking: no earnings")
        p.withdrawn = p.volume
        self.ledger.mint(self.address, amount)
        return self.ledger._mine(Event("EarningsClaimed", {"provider": self.address, "amount": amount}))

    def provider_info(self, provider: str | None = None) -> ProviderInfo:
        p = self.ledger._provider(provider or self.address)
        return ProviderInfo(p.registered, p.endpoint, p.resources, p.enc_key, p.stake, p.locked,
                            p.unbonding, p.unbond_ready_at, p.volume - p.withdrawn)

    def free_stake(self, provider: str | None = None) -> int:
        p = self.ledger._provider(provider or self.address)
        return p.stake - p.locked

    def reputation(self, provider: str | None = None) -> Reputation:
        p = self.ledger._provider(provider or self.address)
        return Reputation(p.completed, p.missed, p.slashed, p.volume)

    def providers(self) -> list[str]:
        """Every registered provider, once, in the order the ledger first saw it."""
        return [addr for addr, p in self.ledger.providers.items() if p.registered]

    # deals ----------------------------------------------------------------------------------
    def _check_terms(self, terms: Terms) -> None:
        _require(terms.jobs != 0, _R["no_jobs"])
        _require(terms.expiry <= terms.deadline, _R["expiry"])
        _require(terms.nonce <= MAX_NONCE, _R["nonce_range"])
        _require(terms.price < 2**96 and terms.audit_fee < 2**96, _R["amount_range"])
        _require(terms.seed_hash != ZERO32, _R["no_seed"])
        _require(self.ledger.audit_floor_bps <= terms.audit_bps <= 10_000, _R["audit_range"])

    def _check_signature(self, kind: eip712.Kind, terms: Terms, signature: bytes, signer: str) -> None:
        try:
            ok = (len(signature) == 65 and int.from_bytes(signature[32:64], "big") <= _MAX_S
                  and eip712.recover(kind, terms, signature, self.chain_id, self.market) == signer)
        except Exception:  # malformed signature bytes
            ok = False
        _require(ok, _R["signature"])

    def _open(self, deal: Deal) -> None:
        led, t = self.ledger, deal.terms
        word = led.lanes.get((t.provider, t.lane), 0)
        _require(word >> 64 == 0, _R["busy"])
        _require(t.nonce > word & MAX_NONCE, _R["replayed"])
        _require(led._account(t.requester)[0] >= t.escrow, _R["unfunded"])
        p = led._provider(t.provider)
        _require(p.registered, _R["unregistered"])
        _require(p.stake - p.locked >= t.collateral, _R["stake"])
        led._account(t.requester)[0] -= t.escrow
        p.locked += t.collateral
        led.lanes[(t.provider, t.lane)] = lane_word(deal, t.nonce)

    def _require_open(self, deal: Deal) -> int:
        t = deal.terms
        word = self.ledger.lanes.get((t.provider, t.lane), 0)
        stored = word >> 64
        if stored != 0 and stored == hash_prefix(deal):
            return word
        last = word & MAX_NONCE
        _require(not (t.nonce < last or (t.nonce == last and stored == 0)), _R["settled"])
        _fail(_R["unknown"])

    def open_deal(self, terms: Terms, bid_signature: bytes) -> DealTx:
        _require(self.address == terms.requester, _R["not_requester"])
        self._check_terms(terms)
        _require(self.ledger.time <= terms.expiry, _R["bid_expired"])
        self._check_signature("Bid", terms, bid_signature, terms.provider)
        deal = Deal(terms)
        self._open(deal)
        return DealTx(deal, self.ledger._mine(Event("DealOpened", _opened_args(deal))))

    def open_and_commit(self, terms: Terms, acceptance_signature: bytes, seal: bytes) -> DealTx:
        _require(self.address == terms.provider, _R["not_provider"])
        self._check_terms(terms)
        _require(self.ledger.time <= terms.expiry, _R["acceptance_expired"])
        _require(bytes(seal) != ZERO32, _R["empty_seal"])
        self._check_signature("Acceptance", terms, acceptance_signature, terms.requester)
        done = Deal(terms).with_commit(seal, self.ledger.time, self.ledger.block + 1)
        self._open(done)
        return DealTx(done, self.ledger._mine(Event("DealOpened", _opened_args(done))))

    def commit_result(self, deal: Deal, seal: bytes) -> DealTx:
        _require(self.address == deal.terms.provider, _R["not_provider"])
        word = self._require_open(deal)
        _require(deal.seal == ZERO32, _R["committed"])
        _require(self.ledger.time <= deal.terms.deadline, _R["late"])
        _require(bytes(seal) != ZERO32, _R["empty_seal"])
        done = deal.with_commit(seal, self.ledger.time, self.ledger.block + 1)
        self.ledger.lanes[(deal.terms.provider, deal.terms.lane)] = lane_word(done, word & MAX_NONCE)
        return DealTx(done, self.ledger._mine(Event("ResultCommitted", _committed_args(done))))

    def finalize(self, deals: Sequence[Deal]) -> Tx:
        check_batch(deals)
        snapshot = self.ledger.snapshot()
        events = []
        try:
            for deal in deals:
                word = self._require_open(deal)
                _require(deal.seal != ZERO32, _R["uncommitted"])
                _require(deal.status != UNDRAWN, _R["not_drawn"])
                _require(self.ledger.time >= deal.committed_at + self.ledger.challenge_window, _R["window"])
                t = deal.terms
                self.ledger.lanes[(t.provider, t.lane)] = word & MAX_NONCE
                # a cleared deal's fee goes back; an audited one passed at once (see the module doc)
                self.ledger._account(t.requester)[0] += t.audit_fee
                p = self.ledger._provider(t.provider)
                p.locked -= t.collateral
                p.volume += t.price
                p.completed = min(p.completed + t.jobs, _U32)
                events.append(Event("DealFinalized", {"deal_id": deal.deal_id}))
        except Exception:
            self.ledger.restore(snapshot)  # all or nothing, like a reverted transaction
            raise
        return self.ledger._mine(*events)

    def reclaim(self, deals: Sequence[Deal]) -> Tx:
        check_batch(deals)
        snapshot = self.ledger.snapshot()
        events = []
        try:
            for deal in deals:
                events.extend(self._reclaim_one(deal))
        except Exception:
            self.ledger.restore(snapshot)
            raise
        return self.ledger._mine(*events)

    def _reclaim_one(self, deal: Deal) -> list[Event]:
        word = self._require_open(deal)
        _require(deal.seal == ZERO32, _R["committed"])
        _require(self.ledger.time > deal.terms.deadline, _R["early"])
        t = deal.terms
        self.ledger.lanes[(t.provider, t.lane)] = word & MAX_NONCE
        penalty = t.collateral * self.ledger.miss_penalty_bps // 10_000
        p = self.ledger._provider(t.provider)
        p.locked -= t.collateral
        p.missed = min(p.missed + t.jobs, _U31)
        _require(p.stake - p.locked >= penalty, "staking: insufficient free stake")
        p.stake -= penalty
        p.slashed = min(p.slashed + 1, _U32)
        self.ledger._account(t.requester)[0] += t.escrow  # the penalty is burned, never the requester's
        self.ledger.burned += penalty
        return [
            Event("ProviderSlashed", {"provider": t.provider, "to": "0x" + "00" * 20, "amount": penalty}),
            Event("DealReclaimed", {"deal_id": deal.deal_id, "requester": t.requester,
                                    "provider": t.provider, "refund": t.escrow, "penalty": penalty}),
        ]

    def lane(self, provider: str, lane: int) -> LaneState:
        return LaneState.from_word(self.ledger.lanes.get((provider, lane), 0))

    # the lottery --------------------------------------------------------------------------
    def draw(self, deals: Sequence[Deal], seeds: Sequence[bytes]) -> list[DealTx]:
        check_batch(deals)
        _require(len(deals) == len(seeds), _R["length"])
        led = self.ledger
        snapshot = led.snapshot()
        done, events = [], []
        try:
            for deal, seed in zip(deals, seeds, strict=True):
                word = self._require_open(deal)
                _require(deal.seal != ZERO32, _R["uncommitted"])
                _require(deal.status == UNDRAWN, _R["drawn"])
                _require(keccak(bytes(seed)) == deal.terms.seed_hash, _R["bad_seed"])
                beacon_block = deal.committed_block + led.beacon_delay
                _require(led.block + 1 > beacon_block, _R["beacon"])
                _require(led.block + 1 <= beacon_block + led.draw_blocks, _R["draw_over"])
                r = int.from_bytes(keccak(encode(["bytes32", "bytes32", "bytes32"],
                                                 [bytes(seed), led.beacon(beacon_block), deal.deal_id])), "big")
                audited = r % 10_000 < deal.terms.audit_bps
                drawn = deal.with_status(AUDITED if audited else CLEARED)
                led.lanes[(deal.terms.provider, deal.terms.lane)] = lane_word(drawn, word & MAX_NONCE)
                done.append(drawn)
                events.append(Event("DealDrawn", {"deal_id": deal.deal_id, "audited": audited, "reason": 0}))
        except Exception:
            led.restore(snapshot)
            raise
        tx = led._mine(*events)
        return [DealTx(d, tx) for d in done]

    def challenge(self, deal: Deal) -> DealTx:
        _require(self.address == deal.terms.requester, _R["not_requester"])
        word = self._require_open(deal)
        _require(deal.seal != ZERO32, _R["uncommitted"])
        _require(deal.status != AUDITED, _R["audited"])
        _require(self.ledger.time < deal.committed_at + self.ledger.challenge_window, _R["challenge_over"])
        drawn = deal.with_status(AUDITED)
        self.ledger.lanes[(deal.terms.provider, deal.terms.lane)] = lane_word(drawn, word & MAX_NONCE)
        return DealTx(drawn, self.ledger._mine(Event("DealDrawn", {"deal_id": deal.deal_id, "audited": True,
                                                                   "reason": 2})))

    def audit_by_default(self, deal: Deal) -> DealTx:
        word = self._require_open(deal)
        _require(deal.seal != ZERO32, _R["uncommitted"])
        _require(deal.status == UNDRAWN, _R["drawn"])
        led = self.ledger
        _require(led.block + 1 > deal.committed_block + led.beacon_delay + led.draw_blocks, _R["draw_open"])
        drawn = deal.with_status(AUDITED)
        led.lanes[(deal.terms.provider, deal.terms.lane)] = lane_word(drawn, word & MAX_NONCE)
        return DealTx(drawn, led._mine(Event("DealDrawn", {"deal_id": deal.deal_id, "audited": True, "reason": 1})))

    def block_number(self) -> int:
        return self.ledger.block

    def audit(self, deal_id: bytes) -> AuditState:
        """Every audit in the fake has passed already (see the module doc)."""
        return AuditState(AUDIT_PASSED, False, 1, 0, ZERO_ADDRESS, ZERO_ADDRESS, ZERO32, 0, ZERO32, ZERO32,
                          ZERO32, (), (), ())

    def parameters(self) -> dict[str, int]:
        led = self.ledger
        return {"challenge_window": led.challenge_window, "unbond_delay": led.unbond_delay,
                "withdrawal_delay": led.withdrawal_delay, "miss_penalty_bps": led.miss_penalty_bps,
                "audit_floor_bps": led.audit_floor_bps, "beacon_delay": led.beacon_delay,
                "draw_blocks": led.draw_blocks}

    # signing and chain facts --------------------------------------------------------------
    def sign_bid(self, terms: Terms) -> bytes:
        return eip712.sign_bid(terms, self._key, chain_id=self.chain_id, market=self.market)

    def sign_acceptance(self, terms: Terms) -> bytes:
        return eip712.sign_acceptance(terms, self._key, chain_id=self.chain_id, market=self.market)

    def sign_text(self, text: str) -> bytes:
        return bytes(Account.sign_message(encode_defunct(text=text), self._key).signature)

    def now(self) -> int:
        return self.ledger.time

    def token_balance(self, account: str | None = None) -> int:
        return self.ledger.tokens.get(account or self.address, 0)


def _opened_args(deal: Deal) -> dict[str, object]:
    return {"deal_id": deal.deal_id} | deal.terms.as_message() | {"seal": deal.seal}


def _committed_args(deal: Deal) -> dict[str, object]:
    return {"deal_id": deal.deal_id, "seal": deal.seal, "committed_at": deal.committed_at}
