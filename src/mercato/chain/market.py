"""``MarketClient``: the deployed Market and its court over web3, one method per external function.

    >>> m = MarketClient.from_deployment(w3, deployment, key)          # doctest: +SKIP
    >>> m.deposit(100 * 10**6).gas_used                                 # doctest: +SKIP
    51234
    >>> opened = m.open_deal(terms, bid_signature)                      # doctest: +SKIP
    >>> opened.deal.deal_id == opened.tx.events_named("DealOpened")[0].args["deal_id"]  # doctest: +SKIP
    True

The market is two contracts (docs/SPEC.md): the Market (accounts, stake, deals, the lottery and
settlement) and the court it created (the audit game: ``commit_audit``, ``reveal``, ``advance``
and the audit views). Each method calls the contract that has the function; a receipt's events
are decoded from both addresses (a ``draw`` that starts an audit logs ``DealDrawn`` from the
Market and ``AuditorDrawn`` from the court), :meth:`MarketClient.event_logs` queries an event of
either by name, and ``log_addresses`` lists both for ``eth_getLogs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.contract.contract import Contract, ContractEvent, ContractFunction
from web3.types import TxReceipt

from mercato.chain import eip712
from mercato.chain.api import (
    AuditRecord,
    AuditState,
    DealTx,
    Event,
    LaneState,
    PendingWithdrawal,
    ProviderInfo,
    Reputation,
    Tx,
)
from mercato.chain.deployment import Deployment
from mercato.chain.ledger import TxLedger
from mercato.chain.rpc import TxSender
from mercato.domain.deals import AUDITED, CLEARED, Deal, Terms
from mercato.errors import ChainError, TransactionFailed

# a stake change is reported to the court's sortition tree: a provider joining takes a member index
# whose 17 tree nodes may be written from zero (20,000 gas each, not 2,900) if another provider joined
# between the estimate and the block (seen: concurrent agents' first stakes out of gas)
SORTITION_HEADROOM = 17 * 20_000

__all__ = ["MarketClient", "MAX_BATCH", "check_batch", "chunks"]

MAX_BATCH = 32  # DynArray bound of finalize/reclaim (_MAX_BATCH in deals.vy; a unit test keeps them equal)


class MarketClient:
    """``MarketApi`` over a real node; writes are signed by ``sender``'s key."""

    def __init__(self, w3: Web3, market: Contract, token: Contract, sender: TxSender, court: Contract) -> None:
        self.w3 = w3
        self.contract = market
        self.court = court
        self.token = token
        self.sender = sender
        self.address: str = sender.address
        self.market: str = str(market.address)
        self.court_address: str = str(court.address)
        # the addresses whose logs make this market's history (eth_getLogs takes the list)
        self.log_addresses: list[str] = [self.market, self.court_address]
        self.chain_id: int = sender._chain_id()
        self.from_block = 0  # where registry scans start (the deployment block when known)
        self._registry: list[str] = []
        self._registry_scanned = -1  # last block the registry scan has covered
        # (emitting address, topic 0) -> (event name, the contract that declares it)
        self._events: dict[tuple[str, bytes], tuple[str, Contract]] = {
            (str(c.address), bytes(event_abi_to_log_topic(abi))): (str(abi["name"]), c)  # type: ignore[arg-type]
            for c in (market, court) for abi in c.abi if abi["type"] == "event"}

    @classmethod
    def from_deployment(cls, w3: Web3, deployment: Deployment, private_key: str | bytes, *,
                        gas_margin: float = 1.2, timeout: float = 60.0, ledger: TxLedger | str | Path | None = None,
                        confirmations: int | None = None, replace_after_s: float | None = None) -> MarketClient:
        """A client for ``deployment`` acting as ``private_key``; its transactions are recorded in
        ``ledger`` (see ``TxSender``: None is a file per chain and key under the settings home)."""
        if "court" not in deployment.abi:
            raise ChainError("the deployment file has no court ABI: it was written before the Market was split "
                             "into Market and court; redeploy (`mercato devnet reset` on the devnet)")
        market = w3.eth.contract(address=to_checksum_address(deployment.market), abi=deployment.abi["market"])
        court = w3.eth.contract(address=to_checksum_address(deployment.court_address(w3)), abi=deployment.abi["court"])
        token = w3.eth.contract(address=to_checksum_address(deployment.token), abi=deployment.abi["token"])
        sender = TxSender(w3, private_key, gas_margin=gas_margin, timeout=timeout, ledger=ledger,
                          confirmations=confirmations, replace_after_s=replace_after_s)
        client = cls(w3, market, token, sender, court)
        client.from_block = deployment.block
        return client

    def as_account(self, private_key: str | bytes, *, ledger: TxLedger | str | Path | None = None) -> MarketClient:
        """The same market seen from another key (shares the connection, and the ledger unless
        ``ledger`` is given: one ledger holds any number of keys)."""
        s = self.sender
        sender = TxSender(self.w3, private_key, gas_margin=s.gas_margin, gas_extra=s.gas_extra, timeout=s.timeout,
                          ledger=ledger if ledger is not None else s.ledger_arg,
                          replace_after_s=s._replace_after_s, max_bumps=s.max_bumps, fee_cap=s.fee_cap,
                          confirmations=s._confirmations, poll_s=s.poll_s)
        other = MarketClient(self.w3, self.contract, self.token, sender, self.court)
        other.from_block = self.from_block
        return other

    # plumbing -----------------------------------------------------------------------------
    @property
    def _f(self) -> Any:
        return self.contract.functions

    @property
    def _c(self) -> Any:
        return self.court.functions

    def event_logs(self, name: str, *, from_block: int | None = None, to_block: int | str = "latest",
                   argument_filters: dict[str, Any] | None = None) -> list[Any]:
        """Every ``name`` event (web3's decoded logs, ``["args"]``…) from whichever of the Market
        and the court declares it, in chain order; ``from_block`` defaults to ``self.from_block``.
        E.g. ``client.event_logs("AuditorDrawn", argument_filters={"deal_id": deal_id})``."""
        owners = [c for c in (self.contract, self.court)
                  if any(a["type"] == "event" and a.get("name") == name for a in c.abi)]
        if not owners:
            raise ValueError(f"neither the Market nor the court has an event {name!r}")
        start = self.from_block if from_block is None else from_block
        logs: list[Any] = []
        for c in owners:
            event: ContractEvent = getattr(c.events, name)()
            logs += event.get_logs(from_block=start, to_block=to_block,  # type: ignore[arg-type]
                                   argument_filters=argument_filters or None)
        return sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))

    def event_topics(self, names: Sequence[str] | None = None) -> dict[bytes, str]:
        """Topic 0 -> event name for ``names`` (every event of both contracts when None)."""
        return {topic: name for (_, topic), (name, _) in self._events.items() if names is None or name in names}

    def decode_log(self, log: Any) -> Event | None:
        """A log of the Market or the court decoded; None for any other log."""
        if not log["topics"]:
            return None
        found = self._events.get((to_checksum_address(log["address"]), bytes(log["topics"][0])))
        if found is None:
            return None
        name, contract = found
        data = getattr(contract.events, name)().process_log(log)
        return Event(name, {k: _plain(v) for k, v in data["args"].items()}, int(log["logIndex"]))

    def _send(self, fn: ContractFunction, key: str | None = None, headroom: int = 0) -> Tx:
        """Send and wait. With ``key`` (e.g. ``"commit:0x<deal id>"``) a retry while the first is
        still in flight (a timeout, a crash, another process of this key) waits for that one instead
        of sending a second; once it is mined a new call goes to the contract, which judges it."""
        receipt = self.sender.send(fn, key=key, reuse_mined=False, headroom=headroom)
        assert not isinstance(receipt, bytes)
        return self._tx(receipt)

    def _tx(self, receipt: TxReceipt) -> Tx:
        decoded = (self.decode_log(log) for log in receipt["logs"])
        events = tuple(ev for ev in decoded if ev is not None)
        block = self.w3.eth.get_block(receipt["blockNumber"])
        return Tx(bytes(receipt["transactionHash"]), int(receipt["gasUsed"]), int(receipt["blockNumber"]),
                  int(block["timestamp"]), events)

    def _view(self, fn: ContractFunction) -> Any:
        return self.sender.call(fn)

    def _approve(self, amount: int) -> None:
        allowance = self._view(self.token.functions.allowance(self.address, self.market))
        if allowance < amount:
            self.sender.send(self.token.functions.approve(self.market, amount))

    # escrow accounts ----------------------------------------------------------------------
    def deposit(self, amount: int) -> Tx:
        """Approve (when needed) and deposit ``amount`` into this account's escrow."""
        self._approve(amount)
        return self._send(self._f.deposit(amount))

    def request_withdrawal(self, amount: int) -> Tx:
        return self._send(self._f.request_withdrawal(amount))

    def withdraw(self) -> Tx:
        return self._send(self._f.withdraw())

    def cancel_withdrawal(self) -> Tx:
        return self._send(self._f.cancel_withdrawal())

    def balance_of(self, account: str | None = None) -> int:
        return int(self._view(self._f.balance_of(account or self.address)))

    def pending_withdrawal(self, account: str | None = None) -> PendingWithdrawal:
        amount, ready_at = self._view(self._f.pending_withdrawal(account or self.address))
        return PendingWithdrawal(int(amount), int(ready_at))

    # provider registry and stake ------------------------------------------------------------
    def register(self, endpoint: str, resources: bytes, enc_key: bytes) -> Tx:
        return self._send(self._f.register(endpoint, bytes(resources), bytes(enc_key)), headroom=SORTITION_HEADROOM)

    def stake(self, amount: int) -> Tx:
        """Approve (when needed) and stake ``amount``."""
        self._approve(amount)
        return self._send(self._f.stake(amount), headroom=SORTITION_HEADROOM)

    def unbond(self, amount: int) -> Tx:
        return self._send(self._f.unbond(amount))

    def withdraw_stake(self) -> Tx:
        return self._send(self._f.withdraw_stake())

    def claim_earnings(self) -> Tx:
        return self._send(self._f.claim_earnings())

    def provider_info(self, provider: str | None = None) -> ProviderInfo:
        v = self._view(self._f.provider_info(provider or self.address))
        return ProviderInfo(bool(v[0]), str(v[1]), bytes(v[2]), bytes(v[3]), *(int(x) for x in v[4:9]))

    def free_stake(self, provider: str | None = None) -> int:
        return int(self._view(self._f.free_stake(provider or self.address)))

    def reputation(self, provider: str | None = None) -> Reputation:
        return Reputation(*(int(x) for x in self._view(self._f.reputation(provider or self.address))))

    def providers(self) -> list[str]:
        """Every registered provider, in registration order, from ProviderRegistered/ProviderUpdated
        logs since ``from_block``; later calls scan only the blocks added since the last one."""
        head = int(self.w3.eth.block_number)
        if head > self._registry_scanned:
            # registrations are the Market's (staking); the court logs none
            topics = ["0x" + bytes(t).hex() for (address, t), (name, _) in self._events.items()
                      if address == self.market and name in ("ProviderRegistered", "ProviderUpdated")]
            logs = self.w3.eth.get_logs({"address": self.contract.address, "topics": [list(topics)],  # type: ignore[typeddict-item]
                                         "fromBlock": max(self.from_block, self._registry_scanned + 1),
                                         "toBlock": head})
            for log in sorted(logs, key=lambda lg: (lg["blockNumber"], lg["logIndex"])):
                provider = to_checksum_address(bytes(log["topics"][1])[-20:])
                if provider not in self._registry:
                    self._registry.append(provider)
            self._registry_scanned = head
        return list(self._registry)

    # deals ----------------------------------------------------------------------------------
    def open_deal(self, terms: Terms, bid_signature: bytes) -> DealTx:
        """Open a deal from the provider's signed Bid (sent by the requester)."""
        tx = self._send(self._f.open_deal(terms.to_tuple(), bytes(bid_signature)), _key("open", terms.deal_id))
        return DealTx(Deal(terms), tx)

    def commit_result(self, deal: Deal, seal: bytes) -> DealTx:
        """Commit the result seal (sent by the provider); returns the deal as now stored."""
        tx = self._send(self._f.commit_result(deal.to_tuple(), bytes(seal)), _key("commit", deal.deal_id))
        return DealTx(deal.with_commit(seal, _committed_at(tx), tx.block_number), tx)

    def open_and_commit(self, terms: Terms, acceptance_signature: bytes, seal: bytes) -> DealTx:
        """Open with the requester's signed Acceptance and commit at once (sent by the provider)."""
        tx = self._send(self._f.open_and_commit(terms.to_tuple(), bytes(acceptance_signature), bytes(seal)),
                        _key("commit", terms.deal_id))
        # DealOpened carries the seal; committed_at and committed_block are that block's
        return DealTx(Deal(terms).with_commit(seal, tx.timestamp, tx.block_number), tx)

    def finalize(self, deals: Sequence[Deal]) -> Tx:
        """Settle committed deals after their challenge window (one transaction)."""
        return self._send(self._f.finalize([d.to_tuple() for d in check_batch(deals)]))

    def reclaim(self, deals: Sequence[Deal]) -> Tx:
        """Unwind uncommitted deals past their deadline (one transaction)."""
        return self._send(self._f.reclaim([d.to_tuple() for d in check_batch(deals)]))

    def lane(self, provider: str, lane: int) -> LaneState:
        return LaneState.from_word(int(self._view(self._f.lane(provider, lane))))

    # the lottery and audits (docs/SPEC.md §14) ----------------------------------------------
    def draw(self, deals: Sequence[Deal], seeds: Sequence[bytes]) -> list[DealTx]:
        """Run the lottery for committed deals with their requesters' seeds (one transaction);
        returns each deal as now stored (``CLEARED`` or ``AUDITED``)."""
        check_batch(deals)
        if len(deals) != len(seeds):
            raise ValueError(f"{len(deals)} deals but {len(seeds)} seeds")
        tx = self._send(self._f.draw([d.to_tuple() for d in deals], [bytes(s) for s in seeds]))
        audited = {bytes(ev.args["deal_id"]): bool(ev.args["audited"]) for ev in tx.events_named("DealDrawn")}
        return [DealTx(d.with_status(AUDITED if audited.get(d.deal_id) else CLEARED), tx) for d in deals]

    def audit_by_default(self, deal: Deal) -> DealTx:
        """Send an undrawn deal whose draw window is over to audit (anyone)."""
        tx = self._send(self._f.audit_by_default(deal.to_tuple()))
        return DealTx(deal.with_status(AUDITED), tx)

    def challenge(self, deal: Deal) -> DealTx:
        """The requester sends its deal to audit within the challenge window (its fee pays)."""
        tx = self._send(self._f.challenge(deal.to_tuple()))
        return DealTx(deal.with_status(AUDITED), tx)

    # the court's functions
    def commit_audit(self, deal_id: bytes, seal: bytes) -> Tx:
        """A drawn auditor commits its blind seal."""
        return self._send(self._c.commit_audit(bytes(deal_id), bytes(seal)), _key("audit-commit", deal_id))

    def reveal(self, deal_id: bytes, result_root: bytes, fuel: int, salt: bytes) -> Tx:
        """The provider or a committed auditor opens its seal."""
        return self._send(self._c.reveal(bytes(deal_id), bytes(result_root), fuel, bytes(salt)),
                          _key("reveal", deal_id))

    def advance(self, deal_id: bytes) -> Tx:
        """Move an audit past a phase whose deadline is over (anyone)."""
        return self._send(self._c.advance(bytes(deal_id)))

    def audit(self, deal_id: bytes) -> AuditState:
        """The audit record of ``deal_id`` (phase 0 when none)."""
        return AuditState.from_view(self._view(self._c.audit(bytes(deal_id))))

    def audit_record(self, provider: str | None = None) -> AuditRecord:
        return AuditRecord(*(int(x) for x in self._view(self._c.audit_record(provider or self.address))))

    def is_flagged(self, jobs_root: bytes) -> bool:
        return bool(self._view(self._c.is_flagged(bytes(jobs_root))))

    def jailed(self, provider: str | None = None) -> bool:
        return bool(self._view(self._f.jailed(provider or self.address)))

    def in_flight(self, provider: str | None = None) -> tuple[int, int, int]:
        """(V, N, m): the value and number of the provider's open deals, and the largest price the bond
        rule counts (rounded up as the contract stores it; 0 when V is 0). The rule uses max(1, V // m) deals."""
        value, deals, largest = self._view(self._f.in_flight(provider or self.address))
        return int(value), int(deals), int(largest)

    def burned(self) -> int:
        return int(self._view(self._f.burned()))

    def block_number(self) -> int:
        """The latest block's number."""
        return int(self.w3.eth.block_number)

    def deal_id(self, provider: str, lane: int, nonce: int) -> bytes:
        """The contract's own deal id (equals ``domain.deals.deal_id``)."""
        return bytes(self._view(self._f.deal_id(provider, lane, nonce)))

    def parameters(self) -> dict[str, int]:
        """The deployment parameters the contract was built with."""
        names = ("challenge_window", "unbond_delay", "withdrawal_delay", "miss_penalty_bps",
                 "audit_floor_bps", "collusion_bps", "bond_lambda_bps", "beacon_delay", "draw_blocks",
                 "audit_period", "committee_size")
        return {n: int(self._view(self._getter(n)())) for n in names}

    def _getter(self, name: str) -> Any:
        """The Market's function ``name``, else the court's (audit_period, committee_size)."""
        declared = {a.get("name") for a in self.contract.abi if a["type"] == "function"}
        return getattr(self._f if name in declared else self._c, name)

    # signing and chain facts --------------------------------------------------------------
    def sign_bid(self, terms: Terms) -> bytes:
        return eip712.sign_bid(terms, self.sender.account.key, chain_id=self.chain_id, market=self.market)

    def sign_acceptance(self, terms: Terms) -> bytes:
        return eip712.sign_acceptance(terms, self.sender.account.key, chain_id=self.chain_id, market=self.market)

    def sign_text(self, text: str) -> bytes:
        """An EIP-191 (personal_sign) signature of ``text`` (e.g. an auditor's request)."""
        return bytes(Account.sign_message(encode_defunct(text=text), self.sender.account.key).signature)

    def now(self) -> int:
        """The timestamp the next block will carry (the pending block's): what time-gated calls
        are judged by. On an idle devnet the latest block can be minutes old, and after
        ``evm_increaseTime`` the chain runs ahead of the wall clock; the pending block tracks both."""
        try:
            return int(self.w3.eth.get_block("pending")["timestamp"])
        except (ValueError, KeyError, TypeError, Web3RPCError):  # a node without a pending block
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def token_balance(self, account: str | None = None) -> int:
        return int(self._view(self.token.functions.balanceOf(account or self.address)))


def check_batch(deals: Sequence[Deal]) -> Sequence[Deal]:
    """``deals`` if the contract takes that many in one call, else ValueError with advice."""
    if len(deals) > MAX_BATCH:
        raise ValueError(f"{len(deals)} deals in one call; the contract takes at most {MAX_BATCH}: split the batch")
    return deals


def chunks(deals: Sequence[Deal], size: int = MAX_BATCH) -> list[Sequence[Deal]]:
    """Split ``deals`` into contract-sized batches (one finalize/reclaim call each)."""
    return [deals[i:i + size] for i in range(0, len(deals), size)]


def _key(action: str, deal_id: bytes) -> str:
    """The idempotency key of a once-per-deal transaction of one account."""
    return f"{action}:0x{bytes(deal_id).hex()}"


def _committed_at(tx: Tx) -> int:
    events = tx.events_named("ResultCommitted")
    if not events:
        raise TransactionFailed(f"transaction {tx.tx_hash.hex()} logged no ResultCommitted")
    return int(events[-1].args["committed_at"])


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value
