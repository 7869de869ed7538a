"""JSON-RPC access: a retrying provider, a per-key transaction sender backed by a ledger.

    >>> w3 = connect("http://127.0.0.1:8545", RetryPolicy())          # doctest: +SKIP
    >>> sender = TxSender(w3, private_key)                             # doctest: +SKIP
    >>> receipt = sender.send(contract.functions.deposit(10))          # doctest: +SKIP
    >>> sender.send(contract.functions.commit(deal, seal), key="commit:0x…")  # sent at most once

Every transaction is recorded in a :class:`~mercato.chain.ledger.TxLedger` before it is sent
(nonce, hash, raw bytes, fees, idempotency key, state), so a restarted process, or several
processes sharing the key, neither reuse a nonce nor send a keyed transaction twice. While it
waits for a receipt the sender rebroadcasts a transaction the node has lost (a restarted node
forgets its mempool), re-signs one stuck longer than ``replace_after_s`` with fees raised by
an eighth (the most a node asks of a replacement), and answers with the receipt of whichever
version was mined, ``confirmations`` blocks deep.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, RPCResponse, TxReceipt

from mercato.chain.ledger import DROPPED, FAILED, KEYED, MINED, PENDING, TxLedger, TxRecord, ledger_file_name
from mercato.chain.reverts import raise_for_error, revert_reason
from mercato.config import DEVNET_CHAIN_ID, RetryPolicy, Settings
from mercato.errors import RpcUnavailable, TransactionFailed

__all__ = ["RetryingProvider", "connect", "TxSender", "default_ledger_dir", "BUMP_DIVISOR"]

log = logging.getLogger("mercato.chain.tx")

_TRANSIENT = (requests.ConnectionError, requests.Timeout)
BUMP_DIVISOR = 8  # a replacement raises both fees by at least 1/8 (12.5 %); nodes want 10 %
_CHECK_EVERY_S = 1.0  # how often a wait asks whether the node still knows the transaction


class RetryingProvider(HTTPProvider):
    """HTTP provider that retries connection errors with exponential back-off.

    A request that times out is tried once more only: a slow node stays slow, and ``timeout``
    seconds per try is what a caller waits at most for an answer."""

    def __init__(self, url: str, policy: RetryPolicy, timeout: float = 10.0) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.policy = policy
        self.timeout = timeout

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        delays = self.policy.delays()
        timeouts = 0
        for attempt in range(self.policy.attempts):
            try:
                return super().make_request(method, params)
            except requests.Timeout:
                timeouts += 1
                if timeouts > 1 or attempt == len(delays):
                    break
            except _TRANSIENT:
                if attempt == len(delays):
                    break
            time.sleep(delays[attempt])
        why = (f"did not answer {method} within {self.timeout:g} s" if timeouts
               else f"did not answer after {self.policy.attempts} tries")
        raise RpcUnavailable(f"RPC node at {self.endpoint_uri} {why}: is `mercato devnet start` running?")


def connect(url: str, policy: RetryPolicy, timeout: float = 10.0, chain_id: int | None = None) -> Web3:
    """A Web3 on ``url``; checks the node answers (and its chain id when given)."""
    w3 = Web3(RetryingProvider(url, policy, timeout))
    actual = w3.eth.chain_id
    if chain_id is not None and actual != chain_id:
        raise RpcUnavailable(f"RPC node at {url} serves chain {actual}, expected {chain_id}: "
                             "check --rpc-url / MERCATO_CHAIN_ID")
    return w3


def default_ledger_dir() -> Path:
    """Where ledgers live when no ``ledger`` is given: ``<settings home>/txs`` (``MERCATO_HOME``
    when set, as ``Settings.load`` reads it)."""
    return Path(os.environ.get("MERCATO_HOME") or Settings().home) / "txs"


class TxSender:
    """Signs locally and sends transactions for one key, recorded in a ledger.

    ``ledger``: a :class:`TxLedger`, ``":memory:"``, a ledger file, or a folder (a file per
    chain, genesis and key in it); None: the folder :func:`default_ledger_dir`.
    ``gas_margin``/``gas_extra``: the gas limit is ``estimate × gas_margin + gas_extra``.
    ``replace_after_s``: a transaction not mined this long is re-signed with higher fees (3 s on
    the devnet, 60 s elsewhere), at most ``max_bumps`` times and never above ``fee_cap`` wei per gas.
    ``confirmations``: how deep a receipt must be before it is returned (0 on the devnet, 2 elsewhere).
    """

    def __init__(self, w3: Web3, private_key: str | bytes, *, gas_margin: float = 1.2, gas_extra: int = 10_000,
                 timeout: float = 60.0, ledger: TxLedger | str | Path | None = None,
                 replace_after_s: float | None = None, max_bumps: int = 8, fee_cap: int | None = None,
                 confirmations: int | None = None, poll_s: float = 0.05) -> None:
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(private_key)
        self.gas_margin = gas_margin
        self.gas_extra = gas_extra
        self.timeout = timeout
        self.ledger_arg = ledger
        self.max_bumps = max_bumps
        self.fee_cap = fee_cap
        self.poll_s = poll_s
        self._replace_after_s = replace_after_s
        self._confirmations = confirmations
        self._ledger: TxLedger | None = ledger if isinstance(ledger, TxLedger) else None
        self._cid: int | None = None
        self._reconciled = False
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The checksummed address of the key."""
        return str(self.account.address)

    @property
    def replace_after_s(self) -> float:
        if self._replace_after_s is not None:
            return self._replace_after_s
        return 3.0 if self._chain_id() == DEVNET_CHAIN_ID else 60.0

    @property
    def confirmations(self) -> int:
        if self._confirmations is not None:
            return self._confirmations
        return 0 if self._chain_id() == DEVNET_CHAIN_ID else 2

    @property
    def ledger(self) -> TxLedger:
        """The ledger, opened on first use (a default file needs the chain's genesis hash)."""
        with self._lock:
            if self._ledger is None:
                arg = self.ledger_arg
                if arg is not None and str(arg) == ":memory:":
                    self._ledger = TxLedger(":memory:")
                else:
                    path = Path(arg) if arg is not None else default_ledger_dir()
                    if arg is None or path.is_dir() or not path.suffix:
                        genesis = bytes(self.w3.eth.get_block(0)["hash"])  # type: ignore[arg-type]
                        path = path / ledger_file_name(self._chain_id(), genesis, self.address)
                    self._ledger = TxLedger(path)
            return self._ledger

    def call(self, fn: ContractFunction) -> Any:
        """eth_call ``fn`` from this account, mapping reverts to typed errors."""
        try:
            return fn.call({"from": self.account.address})
        except (ContractLogicError, Web3RPCError) as exc:
            raise_for_error(exc)

    def build(self, fn: ContractFunction, gas: int | None = None, headroom: int = 0) -> dict[str, Any]:
        """The unsigned transaction (gas estimated with margin, plus ``headroom`` for a call whose cost
        can grow between the estimate and the block; reverts raise typed errors)."""
        tx: dict[str, Any] = {"from": self.account.address, "chainId": self._chain_id()}
        try:
            # against the pending block: its timestamp is the next block's, so time-gated calls
            # (finalize after the window, reclaim after the deadline) estimate as they will run;
            # an idle devnet's latest block can be minutes old
            estimate = gas or fn.estimate_gas(tx, block_identifier="pending")
        except (ContractLogicError, Web3RPCError) as exc:
            raise_for_error(exc)
        tx["gas"] = gas or int(estimate * self.gas_margin) + self.gas_extra + headroom
        base = self._base_fee()
        tx["maxPriorityFeePerGas"] = 1_000_000  # 0.001 gwei: anvil and L2s need no more
        tx["maxFeePerGas"] = 2 * base + tx["maxPriorityFeePerGas"]
        return fn.build_transaction(tx)

    # sending --------------------------------------------------------------------------------
    def send(self, fn: ContractFunction, *, gas: int | None = None, wait: bool = True,
             key: str | None = None, reuse_mined: bool = True, headroom: int = 0) -> TxReceipt | bytes:
        """Estimate, sign, record, send; waits for the receipt unless ``wait`` is False (returns
        the hash). With ``key``, a transaction already sent under that key (by this process or
        another sharing the ledger) is not sent again: its receipt is waited for and returned.
        ``reuse_mined=False``: only one still in flight is waited for; once mined, the key is free
        (the contract then judges a second call, e.g. "already committed")."""
        self._reconcile_once()
        states = KEYED if reuse_mined else (PENDING,)
        if key is not None:
            held = self.ledger.by_key(self.address, key, states)
            if held is not None:
                log.info("transaction already sent under this key", extra={"key": key, "tx": _hx(held.hash),
                                                                            "state": held.state})
                return self._await(held, fn, None) if wait else held.hash
        tx = self.build(fn, gas, headroom)
        rec = self._submit(tx, key, states)
        return self._await(rec, fn, tx) if wait else rec.hash

    def wait(self, tx_hash: bytes, fn: ContractFunction | None = None) -> TxReceipt:
        """The receipt of ``tx_hash`` (or of the version of it that was mined); a revert raises
        the mapped typed error."""
        rec = self.ledger.by_hash(tx_hash)
        if rec is not None:
            return self._await(rec, fn, None)
        try:  # not ours: only wait
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout, poll_latency=self.poll_s)
        except TimeExhausted:
            raise TransactionFailed(f"transaction {_hx(tx_hash)} was not mined within {self.timeout:.0f} s: "
                                    "check the node is mining, or raise --tx-timeout") from None
        if receipt["status"] != 1:
            self._explain_failure(receipt, fn)
        return receipt

    def resync(self) -> None:
        """Bring the ledger in line with the node now (see :meth:`reconcile`)."""
        self.reconcile()

    def reconcile(self) -> None:
        """Compare the ledger's pending transactions of this key with the node.

        A chain whose nonce count is below what the ledger saw mined was reset: the ledger's
        rows are dropped and nonces start over. A pending version that was mined is marked so; a
        nonce the chain has passed without any of our versions was taken by another transaction
        (dropped); a pending transaction the node does not know (its mempool was lost in a
        restart) is rebroadcast from its raw bytes.
        """
        ledger, addr = self.ledger, self.address
        mined_max = ledger.max_mined_nonce(addr)  # read before the count: a row is mined before it is recorded
        latest = int(self.w3.eth.get_transaction_count(addr, "latest"))  # type: ignore[arg-type]
        if mined_max is not None and latest <= mined_max:
            dropped = ledger.reset_chain(addr)
            log.warning("the chain no longer holds transactions this key sent: starting the ledger over",
                        extra={"address": addr, "chain_nonce": latest, "ledger_nonce": mined_max, "dropped": dropped})
            self._reconciled = True
            return
        groups: dict[int, list[TxRecord]] = {}
        for rec in ledger.pending(addr):
            groups.setdefault(rec.nonce, []).append(rec)
        for nonce, versions in groups.items():
            if self._settle_mined(versions):
                continue
            if nonce < latest:
                if not self._settle_mined(versions):  # mined between the count and the first look?
                    ledger.drop_nonce(addr, nonce, "its nonce was used by another transaction of this key")
                    log.warning("a pending transaction lost its nonce to another one of this key",
                                extra={"nonce": nonce, "tx": _hx(versions[0].hash)})
            elif not any(self._known(v.hash) for v in versions):
                self._rebroadcast(versions[0])
        self._reconciled = True

    def _settle_mined(self, versions: list[TxRecord]) -> bool:
        """Record the version of a nonce that was mined, if one was."""
        for v in versions:
            receipt = self._receipt(v.hash)
            if receipt is not None:
                self.ledger.mark_mined(v.hash, int(receipt["blockNumber"]), receipt["status"] == 1)
                return True
        return False

    def _reconcile_once(self) -> None:
        if not self._reconciled:
            self.reconcile()

    def _sign(self, tx: dict[str, Any], nonce: int) -> tuple[bytes, bytes]:
        signed = self.account.sign_transaction(dict(tx, nonce=nonce))
        return bytes(signed.raw_transaction), bytes(signed.hash)

    def _submit(self, tx: dict[str, Any], key: str | None, key_states: tuple[str, ...] = KEYED) -> TxRecord:
        """Reserve a nonce in the ledger, sign, send. "nonce too low" (the key was used elsewhere)
        reconciles and takes the next free nonce."""
        body = {k: v for k, v in tx.items() if k != "nonce"}
        for _ in range(4):
            pending = int(self.w3.eth.get_transaction_count(self.address, "pending"))  # type: ignore[arg-type]
            rec, new = self.ledger.reserve(self.address, pending, lambda n: self._sign(body, n), tx=body,
                                           max_fee=int(tx["maxFeePerGas"]), priority_fee=int(tx["maxPriorityFeePerGas"]),
                                           key=key, key_states=key_states)
            if not new:  # another sender of this key got there first
                return rec
            try:
                self._broadcast(rec.raw)
            except Web3RPCError as exc:
                kind = _kind(exc)
                if kind in ("nonce", "underpriced"):  # the nonce is taken: by a mined or a pooled transaction
                    self.ledger.mark(rec.hash, DROPPED, f"node: {_message(exc)}")
                    self.reconcile()
                    continue
                self.ledger.mark(rec.hash, DROPPED, f"node: {_message(exc)}")
                raise_for_error(exc)
            self.ledger.mark_sent(rec.hash)
            return rec
        raise TransactionFailed(f"no free nonce for {self.address} after 4 tries: another program keeps sending "
                                "with this key; give each program its own key, or share one ledger file")

    def _broadcast(self, raw: bytes) -> None:
        """Send raw bytes; "already known" is success."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            if _kind(exc) != "known":
                raise

    def _rebroadcast(self, rec: TxRecord) -> None:
        try:
            self._broadcast(rec.raw)
        except Web3RPCError as exc:
            kind = _kind(exc)
            if kind in ("nonce", "underpriced"):  # mined meanwhile, or the nonce is held in the pool
                return
            self.ledger.mark(rec.hash, DROPPED, f"node: {_message(exc)}")
            log.warning("a lost transaction could not be sent again", extra={"tx": _hx(rec.hash), "error": _message(exc)})
            return
        self.ledger.mark_sent(rec.hash)
        log.info("sent a transaction the node had lost again", extra={"tx": _hx(rec.hash), "nonce": rec.nonce})

    # waiting --------------------------------------------------------------------------------
    def _await(self, rec: TxRecord, fn: ContractFunction | None, tx: dict[str, Any] | None) -> TxReceipt:
        """Wait for whichever version of ``rec``'s nonce is mined, ``confirmations`` deep:
        rebroadcast what the node lost, replace what is stuck, resend (with ``tx``) what lost
        its nonce to another transaction."""
        addr, ledger = self.address, self.ledger
        deadline = time.monotonic() + self.timeout
        last_sent = rec.sent_at or rec.created_at
        next_check = time.monotonic() + _CHECK_EVERY_S
        bumps = 0
        while True:
            versions = [v for v in ledger.versions(addr, rec.nonce)
                        if v.state in (PENDING, MINED, FAILED) and v.key == rec.key]
            for v in versions:
                receipt = self._receipt(v.hash)
                if receipt is None:
                    if v.state in (MINED, FAILED):  # its receipt vanished: a reorg
                        ledger.unmine(v.hash, "its receipt vanished (a reorg?)")
                        log.warning("a mined transaction vanished from the chain: sending it again",
                                    extra={"tx": _hx(v.hash)})
                        self._rebroadcast(v)
                    continue
                if self.confirmations and int(self.w3.eth.block_number) < int(receipt["blockNumber"]) + self.confirmations:
                    break  # mined, not yet deep enough: look again
                ledger.mark_mined(v.hash, int(receipt["blockNumber"]), receipt["status"] == 1)
                if receipt["status"] != 1:
                    self._explain_failure(receipt, fn)
                return receipt
            else:
                now = time.monotonic()
                if not versions or now >= next_check:
                    next_check = now + _CHECK_EVERY_S
                    taken = not versions or int(self.w3.eth.get_transaction_count(addr, "latest")) > rec.nonce  # type: ignore[arg-type]
                    if taken and not any(self._receipt(v.hash) for v in versions):
                        ledger.drop_nonce(addr, rec.nonce, "its nonce was used by another transaction of this key")
                        if tx is None:
                            raise TransactionFailed(
                                f"transaction {_hx(rec.hash)} was never mined: another transaction of "
                                f"{addr} took its nonce {rec.nonce}; send it again if it is still wanted")
                        log.warning("another transaction of this key took the nonce: sending again",
                                    extra={"nonce": rec.nonce, "tx": _hx(rec.hash)})
                        rec = self._submit(tx, rec.key, (PENDING,))
                        last_sent, bumps = rec.sent_at or time.time(), 0
                        continue
                    if versions and not any(self._known(v.hash) for v in versions):
                        self._rebroadcast(versions[0])  # the node lost it (restarted without its mempool)
                        last_sent = time.time()
                if versions and time.time() - last_sent >= self.replace_after_s and bumps < self.max_bumps:
                    self.reconcile()  # a lower nonce lost by the node would hold this one back
                    if self._bump(rec.nonce, rec.key):
                        bumps += 1
                    last_sent = time.time()
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"transaction {_hx(rec.hash)} (nonce {rec.nonce}) was not mined within {self.timeout:.0f} s: "
                    "check the node is mining, or raise --tx-timeout; it stays in the ledger, and a retry "
                    "with the same key waits for it instead of sending it twice")
            time.sleep(self.poll_s)

    def _bump(self, nonce: int, key: str | None) -> bool:
        """Re-sign ``nonce`` with both fees raised by at least 1/8 over every version tried; False
        when the cap leaves no room."""
        every = self.ledger.versions(self.address, nonce)
        newest = next((v for v in every if v.key == key), every[0])
        old_max = max(v.max_fee for v in every)
        old_tip = max(v.priority_fee for v in every)
        tip = old_tip + -(-old_tip // BUMP_DIVISOR)
        max_fee = max(old_max + -(-old_max // BUMP_DIVISOR), 2 * self._base_fee() + tip)
        if self.fee_cap is not None and max_fee > self.fee_cap:
            if self.fee_cap < old_max + -(-old_max // BUMP_DIVISOR):
                log.warning("a stuck transaction is at the fee cap: waiting", extra={"nonce": nonce, "fee_cap": self.fee_cap})
                return False
            max_fee = self.fee_cap
        tip = min(tip, max_fee)
        body = dict(newest.tx, maxFeePerGas=max_fee, maxPriorityFeePerGas=tip)
        rec, _ = self.ledger.reserve(self.address, 0, lambda n: self._sign(body, n), tx=body, max_fee=max_fee,
                                     priority_fee=tip, key=key, nonce=nonce)
        try:
            self._broadcast(rec.raw)
        except Web3RPCError as exc:
            # underpriced: the next bump starts above this one; nonce too low: a version was mined
            self.ledger.mark(rec.hash, DROPPED, f"node: {_message(exc)}")
            log.info("replacement refused", extra={"nonce": nonce, "error": _message(exc)})
            return True
        self.ledger.mark_sent(rec.hash)
        log.info("replaced a stuck transaction with higher fees",
                 extra={"nonce": nonce, "tx": _hx(rec.hash), "max_fee": max_fee, "priority_fee": tip})
        return True

    def _receipt(self, tx_hash: bytes) -> TxReceipt | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _known(self, tx_hash: bytes) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            return True
        except TransactionNotFound:
            return False

    def _explain_failure(self, receipt: TxReceipt, fn: ContractFunction | None) -> None:
        reason = None
        if fn is not None:  # replay at the block to learn the revert string
            try:
                fn.call({"from": self.account.address}, block_identifier=receipt["blockNumber"])
            except (ContractLogicError, Web3RPCError) as exc:
                reason = revert_reason(exc)
                raise_for_error(exc)
        raise TransactionFailed(
            f"transaction {receipt['transactionHash'].hex()} reverted"
            + (f": {reason}" if reason else " without a reason (out of gas?)")
        )

    def _chain_id(self) -> int:
        if self._cid is None:
            self._cid = self.w3.eth.chain_id
        return self._cid

    def _base_fee(self) -> int:
        block = self.w3.eth.get_block("latest")
        return int(block.get("baseFeePerGas", 1_000_000_000))


def _message(exc: Exception) -> str:
    return str(exc.args[0] if exc.args else exc)


def _kind(exc: Exception) -> str | None:
    text = str(exc).lower()
    if "nonce too low" in text or "nonce is too low" in text:
        return "nonce"
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return "known"
    if "underpriced" in text:
        return "underpriced"
    return None


def _hx(value: bytes) -> str:
    return "0x" + bytes(value).hex()
