"""JSON-RPC access: a retrying provider, a per-key transaction sender with its own nonces.

    >>> w3 = connect("http://127.0.0.1:8545", RetryPolicy())          # doctest: +SKIP
    >>> sender = TxSender(w3, private_key)                             # doctest: +SKIP
    >>> receipt = sender.send(contract.functions.deposit(10))          # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import RPCEndpoint, RPCResponse, TxReceipt

from mercato.chain.reverts import raise_for_error, revert_reason
from mercato.config import RetryPolicy
from mercato.errors import RpcUnavailable, TransactionFailed

__all__ = ["RetryingProvider", "connect", "TxSender"]

_TRANSIENT = (requests.ConnectionError, requests.Timeout)


class RetryingProvider(HTTPProvider):
    """HTTP provider that retries connection errors and timeouts with exponential back-off."""

    def __init__(self, url: str, policy: RetryPolicy, timeout: float = 10.0) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.policy = policy

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        delays = self.policy.delays()
        for attempt in range(self.policy.attempts):
            try:
                return super().make_request(method, params)
            except _TRANSIENT:
                if attempt == len(delays):
                    break
                time.sleep(delays[attempt])
        raise RpcUnavailable(
            f"RPC node at {self.endpoint_uri} did not answer after {self.policy.attempts} tries: "
            "is `mercato devnet start` running?"
        )


def connect(url: str, policy: RetryPolicy, timeout: float = 10.0, chain_id: int | None = None) -> Web3:
    """A Web3 on ``url``; checks the node answers (and its chain id when given)."""
    w3 = Web3(RetryingProvider(url, policy, timeout))
    actual = w3.eth.chain_id
    if chain_id is not None and actual != chain_id:
        raise RpcUnavailable(f"RPC node at {url} serves chain {actual}, expected {chain_id}: "
                             "check --rpc-url / MERCATO_CHAIN_ID")
    return w3


class TxSender:
    """Signs locally and sends transactions for one key; keeps its own nonce counter.

    The counter starts at the node's pending count and is resynced on "nonce too low",
    so several transactions can be in flight without waiting for each other.
    """

    def __init__(self, w3: Web3, private_key: str | bytes, *, gas_margin: float = 1.2,
                 timeout: float = 60.0) -> None:
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(private_key)
        self.gas_margin = gas_margin
        self.timeout = timeout
        self._nonce: int | None = None
        self._cid: int | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The checksummed address of the key."""
        return str(self.account.address)

    def _next_nonce(self) -> int:
        with self._lock:
            if self._nonce is None:
                self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
            self._nonce += 1
            return self._nonce - 1

    def resync(self) -> None:
        """Forget the local nonce; the next send asks the node again."""
        with self._lock:
            self._nonce = None

    def call(self, fn: ContractFunction) -> Any:
        """eth_call ``fn`` from this account, mapping reverts to typed errors."""
        try:
            return fn.call({"from": self.account.address})
        except (ContractLogicError, Web3RPCError) as exc:
            raise_for_error(exc)

    def build(self, fn: ContractFunction, gas: int | None = None) -> dict[str, Any]:
        """The unsigned transaction (gas estimated with margin; reverts raise typed errors)."""
        tx: dict[str, Any] = {"from": self.account.address, "chainId": self._chain_id()}
        try:
            # against the pending block: its timestamp is the next block's, so time-gated calls
            # (finalize after the window, reclaim after the deadline) estimate as they will run;
            # an idle devnet's latest block can be minutes old
            estimate = gas or fn.estimate_gas(tx, block_identifier="pending")
        except (ContractLogicError, Web3RPCError) as exc:
            raise_for_error(exc)
        tx["gas"] = gas or int(estimate * self.gas_margin) + 10_000
        base = self._base_fee()
        tx["maxPriorityFeePerGas"] = 1_000_000  # 0.001 gwei: anvil and L2s need no more
        tx["maxFeePerGas"] = 2 * base + tx["maxPriorityFeePerGas"]
        return fn.build_transaction(tx)

    def send(self, fn: ContractFunction, *, gas: int | None = None, wait: bool = True) -> TxReceipt | bytes:
        """Estimate, sign, send; waits for the receipt unless ``wait`` is False (returns the hash)."""
        tx = self.build(fn, gas)
        for attempt in range(2):
            tx["nonce"] = self._next_nonce()
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                break
            except Web3RPCError as exc:
                if "nonce too low" in str(exc).lower() and attempt == 0:
                    self.resync()  # someone else used this key: ask the node again
                    continue
                if "already known" in str(exc).lower():
                    tx_hash = signed.hash
                    break
                self.resync()
                raise_for_error(exc)
        return self.wait(tx_hash, fn) if wait else bytes(tx_hash)

    def wait(self, tx_hash: bytes, fn: ContractFunction | None = None) -> TxReceipt:
        """The receipt of ``tx_hash``; a revert raises the mapped typed error."""
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout, poll_latency=0.05)
        except TimeExhausted:
            self.resync()
            raise TransactionFailed(
                f"transaction {tx_hash.hex()} was not mined within {self.timeout:.0f} s: "
                "check the node is mining, or raise --tx-timeout"
            ) from None
        if receipt["status"] != 1:
            self._explain_failure(receipt, fn)
        return receipt

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
