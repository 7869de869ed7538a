"""Transactions against a real anvil when things go wrong: stuck, lost, raced, retried, restarted,
reorged, and the node down and back. The module runs its own devnet (mining is switched off and
the node restarted here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from chain_kit import deployment_of, running_devnet
from eth_account import Account
from web3 import Web3

from mercato.chain import Deployment, Devnet, MarketClient, TxSender, connect
from mercato.chain.ledger import DROPPED, MINED, PENDING, REPLACED, TxLedger
from mercato.config import RetryPolicy
from mercato.errors import RpcUnavailable

SPENDER = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    yield from running_devnet(tmp_path_factory.mktemp("tx-devnet"))


@pytest.fixture(scope="module")
def dep(net: Devnet) -> Deployment:
    return deployment_of(net)


@pytest.fixture
def w3(dep: Deployment) -> Web3:
    return connect(dep.rpc_url, RetryPolicy(attempts=2, base_delay=0.1))


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    answer = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer.get("result")


class Mining:
    """Mining off for a test (no automine, no interval blocks), restored after."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def __enter__(self) -> Mining:
        rpc(self.w3, "evm_setAutomine", False)
        rpc(self.w3, "evm_setIntervalMining", 0)
        return self

    def mine(self) -> None:
        rpc(self.w3, "evm_mine")

    def __exit__(self, *exc: object) -> None:
        rpc(self.w3, "evm_setAutomine", True)
        rpc(self.w3, "evm_setIntervalMining", 1)


def approve(w3: Web3, dep: Deployment, amount: int) -> Any:
    token = w3.eth.contract(address=dep.token, abi=dep.abi["token"])
    return token.functions.approve(SPENDER, amount)


def in_thread(fn: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(fn)
    pool.shutdown(wait=False)
    return fut


def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def known(w3: Web3, tx_hash: bytes) -> bool:
    return rpc(w3, "eth_getTransactionByHash", "0x" + tx_hash.hex()) is not None


def count(w3: Web3, address: str) -> int:
    return int(w3.eth.get_transaction_count(address, "latest"))  # type: ignore[arg-type]


def test_a_stuck_transaction_is_replaced_with_higher_fees(w3: Web3, dep: Deployment, tmp_path: Path) -> None:
    key = dep.keys["provider3"]
    sender = TxSender(w3, key, ledger=tmp_path / "l.sqlite3", replace_after_s=0.5, timeout=30)
    with Mining(w3) as mining:
        fut = in_thread(lambda: sender.send(approve(w3, dep, 1), key="stuck"))
        first = until(lambda: sender.ledger.records(sender.address), "the first version")[0]
        until(lambda: len([v for v in sender.ledger.versions(sender.address, first.nonce) if v.sent_at]) >= 3,
              "two replacements sent", timeout=30)
        mining.mine()
        receipt = fut.result(timeout=30)
    versions = sender.ledger.versions(sender.address, first.nonce)
    mined = [v for v in versions if v.state == MINED]
    assert len(mined) == 1 and mined[0].hash == bytes(receipt["transactionHash"]) != first.hash
    assert {v.state for v in versions if v.hash != mined[0].hash} <= {REPLACED, DROPPED}
    assert any(v.state == REPLACED for v in versions)
    sent = sorted((v for v in versions if v.sent_at), key=lambda v: v.id)
    assert len(sent) >= 3 and sent[-1].hash == mined[0].hash  # the pool kept the newest version
    for before, after in zip(sent, sent[1:]):  # each bump raises both fees by an eighth or more
        assert after.max_fee * 8 >= before.max_fee * 9 and after.priority_fee * 8 >= before.priority_fee * 9
    assert int(w3.eth.get_transaction(receipt["transactionHash"])["maxFeePerGas"]) == mined[0].max_fee


def test_a_transaction_the_node_lost_is_sent_again(w3: Web3, dep: Deployment, tmp_path: Path) -> None:
    sender = TxSender(w3, dep.keys["provider3"], ledger=tmp_path / "l.sqlite3", replace_after_s=600, timeout=30)
    with Mining(w3) as mining:
        fut = in_thread(lambda: sender.send(approve(w3, dep, 2)))
        rec = until(lambda: sender.ledger.records(sender.address), "the transaction")[0]
        until(lambda: known(w3, rec.hash), "the node to have it")
        rpc(w3, "anvil_dropTransaction", "0x" + rec.hash.hex())  # a node restart forgets its mempool
        assert not known(w3, rec.hash)
        until(lambda: known(w3, rec.hash), "the rebroadcast", timeout=10)
        mining.mine()
        receipt = fut.result(timeout=30)
    assert bytes(receipt["transactionHash"]) == rec.hash  # the same bytes, not a new transaction
    assert [r.state for r in sender.ledger.records(sender.address)] == [MINED]


def test_another_sender_of_the_key_takes_the_nonce(w3: Web3, dep: Deployment, tmp_path: Path) -> None:
    """An out-of-band transaction replaces ours in the pool: we send again with the next nonce; a
    second sender with its own ledger keeps working beside us."""
    key = dep.keys["provider4"]
    one = TxSender(w3, key, ledger=tmp_path / "one.sqlite3", replace_after_s=600, timeout=30)
    two = TxSender(w3, key, ledger=tmp_path / "two.sqlite3", replace_after_s=600, timeout=30)
    acct = Account.from_key(key)
    one.send(approve(w3, dep, 3))
    two.send(approve(w3, dep, 4))  # its ledger knows nothing of one's: the node's count leads
    start = count(w3, acct.address)
    with Mining(w3) as mining:
        fut = in_thread(lambda: one.send(approve(w3, dep, 5)))
        ours = until(lambda: [r for r in one.ledger.records(acct.address) if r.state == PENDING], "ours")[0]
        until(lambda: known(w3, ours.hash), "the node to have ours")
        base = int(w3.eth.get_block("latest")["baseFeePerGas"])
        oob = acct.sign_transaction({"to": SPENDER, "value": 1, "gas": 21_000, "nonce": ours.nonce, "chainId": dep.chain_id,
                                     "maxFeePerGas": 10 * ours.max_fee + 4 * base,
                                     "maxPriorityFeePerGas": 10 * ours.priority_fee})
        w3.eth.send_raw_transaction(oob.raw_transaction)
        mining.mine()  # the out-of-band one is mined with ours' nonce
        again = until(lambda: [r for r in one.ledger.records(acct.address) if r.nonce == ours.nonce + 1],
                      "the resend", timeout=10)[0]
        mining.mine()
        receipt = fut.result(timeout=30)
    assert bytes(receipt["transactionHash"]) == again.hash
    assert one.ledger.by_hash(ours.hash).state == DROPPED  # type: ignore[union-attr]
    assert count(w3, acct.address) == start + 2
    assert two.send(approve(w3, dep, 6))["status"] == 1  # type: ignore[index]
    assert count(w3, acct.address) == start + 3


def test_sending_a_key_twice_makes_one_transaction(w3: Web3, dep: Deployment, tmp_path: Path) -> None:
    key = dep.keys["provider6"]
    path = tmp_path / "l.sqlite3"
    sender = TxSender(w3, key, ledger=path)
    start = count(w3, sender.address)
    first = sender.send(approve(w3, dep, 7), key="approve:7")
    second = sender.send(approve(w3, dep, 7), key="approve:7")
    assert first["transactionHash"] == second["transactionHash"]  # type: ignore[index]
    assert count(w3, sender.address) == start + 1
    # two senders of one ledger at once, the first still in flight: still one
    a, b = TxSender(w3, key, ledger=path, replace_after_s=600), TxSender(w3, key, ledger=path, replace_after_s=600)
    with Mining(w3) as mining:
        fa = in_thread(lambda: a.send(approve(w3, dep, 8), key="approve:8"))
        fb = in_thread(lambda: b.send(approve(w3, dep, 8), key="approve:8"))
        until(lambda: len([r for r in a.ledger.records(a.address) if r.key == "approve:8"]) == 1, "the send")
        time.sleep(0.5)
        mining.mine()
        ra, rb = fa.result(timeout=30), fb.result(timeout=30)
    assert ra["transactionHash"] == rb["transactionHash"]
    assert count(w3, sender.address) == start + 2
    assert len([r for r in TxLedger(path).records(sender.address) if r.key == "approve:8"]) == 1


def test_a_restarted_sender_waits_for_its_pending_transaction(w3: Web3, dep: Deployment, tmp_path: Path) -> None:
    """The process dies with a transaction pending and the node loses it too; the new process on
    the same ledger sends the same raw bytes again, not a second transaction."""
    key = dep.keys["provider7"]
    path = tmp_path / "l.sqlite3"
    start = count(w3, Account.from_key(key).address)
    with Mining(w3) as mining:
        old = TxSender(w3, key, ledger=path, replace_after_s=600)
        tx_hash = old.send(approve(w3, dep, 9), key="approve:9", wait=False)
        assert isinstance(tx_hash, bytes)
        old.ledger.close()
        del old  # the process is gone
        rpc(w3, "anvil_dropTransaction", "0x" + tx_hash.hex())
        new = TxSender(w3, key, ledger=path, replace_after_s=600)
        fut = in_thread(lambda: new.send(approve(w3, dep, 9), key="approve:9"))
        until(lambda: known(w3, tx_hash), "the rebroadcast on start")
        mining.mine()
        receipt = fut.result(timeout=30)
    assert bytes(receipt["transactionHash"]) == tx_hash
    assert count(w3, new.address) == start + 1
    assert [r.state for r in new.ledger.records(new.address)] == [MINED]


def test_a_receipt_that_vanishes_before_its_confirmations_is_sent_again(w3: Web3, dep: Deployment,
                                                                        tmp_path: Path) -> None:
    sender = TxSender(w3, dep.keys["provider8"], ledger=tmp_path / "l.sqlite3", confirmations=2,
                      replace_after_s=600, timeout=30)
    rpc(w3, "evm_setIntervalMining", 0)
    rpc(w3, "evm_setAutomine", True)  # a block per transaction, none besides
    try:
        snap = rpc(w3, "evm_snapshot")
        fut = in_thread(lambda: sender.send(approve(w3, dep, 10)))
        rec = until(lambda: sender.ledger.records(sender.address), "the transaction")[0]
        first = until(lambda: rpc(w3, "eth_getTransactionReceipt", "0x" + rec.hash.hex()), "the first mining")
        time.sleep(0.3)
        assert not fut.done()  # one block deep, two wanted
        assert int(first["blockNumber"], 16) == w3.eth.block_number
        rpc(w3, "evm_revert", snap)  # the block is gone (a reorg)
        until(lambda: known(w3, rec.hash) and rpc(w3, "eth_getTransactionReceipt", "0x" + rec.hash.hex()),
              "the rebroadcast to be mined again")
        for _ in range(3):
            rpc(w3, "evm_mine")
        receipt = fut.result(timeout=30)
    finally:
        rpc(w3, "evm_setIntervalMining", 1)
    assert bytes(receipt["transactionHash"]) == rec.hash
    assert sender.ledger.by_hash(rec.hash).state == MINED  # type: ignore[union-attr]


def test_a_node_down_then_back(net: Devnet, dep: Deployment, tmp_path: Path) -> None:
    """Runs last: stops the module's devnet (its state kept) and starts it again."""
    w3 = connect(dep.rpc_url, RetryPolicy(attempts=2, base_delay=0.05), timeout=2.0)
    client = MarketClient.from_deployment(w3, dep, dep.keys["requester3"], ledger=tmp_path / "txs", timeout=20)
    client.deposit(1_000)
    genesis = bytes(w3.eth.get_block(0)["hash"])
    ledger_file = Path(client.sender.ledger.path)
    assert ledger_file.parent == tmp_path / "txs" and genesis[:8].hex() in ledger_file.name
    assert net.stop()
    with pytest.raises(RpcUnavailable, match="did not answer"):
        client.balance_of()
    with pytest.raises(RpcUnavailable):
        client.deposit(1_000)
    net.start()
    assert bytes(w3.eth.get_block(0)["hash"]) == genesis  # same chain: the same default ledger file
    assert client.balance_of() == 1_000
    client.deposit(1_000)
    assert client.balance_of() == 2_000
    assert {r.state for r in client.sender.ledger.records(client.address)} == {MINED}
