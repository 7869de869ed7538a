"""The transaction ledger: nonce allocation across connections and processes, keys, states, resets."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mercato.chain.ledger import (DROPPED, FAILED, MINED, PENDING, REPLACED, TxLedger, TxRecord,
                                  ledger_file_name)

A = "0x00000000000000000000000000000000000000aA"
B = "0x00000000000000000000000000000000000000bB"


def _signer(tag: str):  # noqa: ANN202
    def sign(nonce: int) -> tuple[bytes, bytes]:
        return f"raw-{tag}-{nonce}".encode(), f"{tag}:{nonce}".encode().ljust(32, b"\0")
    return sign


def reserve(ledger: TxLedger, node: int, tag: str, *, key: str | None = None, nonce: int | None = None,
            fee: int = 100, address: str = A, **kw: object) -> tuple[TxRecord, bool]:
    return ledger.reserve(address, node, _signer(tag), tx={"to": B, "data": b"\x01\x02"}, max_fee=fee,
                          priority_fee=fee // 10, key=key, nonce=nonce, **kw)  # type: ignore[arg-type]


def test_allocation_takes_the_node_count_then_skips_what_the_ledger_holds() -> None:
    ledger = TxLedger(":memory:")
    assert [reserve(ledger, 5, f"t{i}")[0].nonce for i in range(3)] == [5, 6, 7]
    # the node caught up with two of them: the ledger still holds 7
    assert reserve(ledger, 7, "t3")[0].nonce == 8
    # the node is ahead (another program used the key): its count wins
    assert reserve(ledger, 20, "t4")[0].nonce == 20
    # keys are separate
    assert reserve(ledger, 0, "b0", address=B)[0].nonce == 0


def test_a_nonce_given_up_is_handed_out_again() -> None:
    ledger = TxLedger(":memory:")
    first, _ = reserve(ledger, 3, "a")
    reserve(ledger, 3, "b")  # 4
    ledger.mark(first.hash, DROPPED, "node: insufficient funds")
    assert reserve(ledger, 3, "c")[0].nonce == 3  # the gap below 4 is filled, not left to stall it
    assert ledger.next_nonce(A, 3) == 5


def test_two_connections_on_one_file_never_share_a_nonce(tmp_path: Path) -> None:
    path = tmp_path / "txs" / "ledger.sqlite3"
    one, two = TxLedger(path), TxLedger(path)
    got = [reserve(one if i % 2 else two, 10, f"c{i}")[0].nonce for i in range(10)]
    assert sorted(got) == list(range(10, 20))
    assert [r.nonce for r in TxLedger(path).records(A)] == got  # on disk, in signing order


def _allocate_many(path: str, tag: str, count: int, out: "multiprocessing.Queue[list[int]]") -> None:
    ledger = TxLedger(path)
    out.put([reserve(ledger, 0, f"{tag}{i}")[0].nonce for i in range(count)])


def test_processes_sharing_a_ledger_file_never_share_a_nonce(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[int]] = ctx.Queue()
    procs = [ctx.Process(target=_allocate_many, args=(path, tag, 25, out)) for tag in ("p", "q", "r")]
    for p in procs:
        p.start()
    nonces = [n for _ in procs for n in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(nonces) == list(range(75))


def test_a_key_is_held_by_its_pending_or_mined_transaction() -> None:
    ledger = TxLedger(":memory:")
    first, new = reserve(ledger, 0, "a", key="commit:0x01")
    assert new and first.key == "commit:0x01" and first.state == PENDING
    again, new = reserve(ledger, 0, "b", key="commit:0x01")
    assert not new and again.hash == first.hash and len(ledger.records(A)) == 1
    ledger.mark_mined(first.hash, block=9, ok=True)
    held = ledger.by_key(A, "commit:0x01")
    assert held is not None and held.state == MINED and held.block == 9
    # in-flight-only lookups let a mined key go to the contract again
    assert ledger.by_key(A, "commit:0x01", (PENDING,)) is None
    second, new = reserve(ledger, 1, "c", key="commit:0x01", key_states=(PENDING,))
    assert new and second.nonce == 1
    # another key, another address: free
    assert reserve(ledger, 2, "d", key="commit:0x02")[1]
    assert reserve(ledger, 0, "e", key="commit:0x01", address=B)[1]


def test_a_reverted_transaction_frees_its_key_but_keeps_its_nonce() -> None:
    ledger = TxLedger(":memory:")
    rec, _ = reserve(ledger, 0, "a", key="open:0x07")
    ledger.mark_mined(rec.hash, block=3, ok=False)
    assert ledger.by_hash(rec.hash).state == FAILED  # type: ignore[union-attr]
    assert ledger.by_key(A, "open:0x07") is None
    assert ledger.next_nonce(A, 0) == 1
    assert ledger.max_mined_nonce(A) == 0


def test_the_mined_version_wins_and_the_others_are_replaced() -> None:
    ledger = TxLedger(":memory:")
    v1, _ = reserve(ledger, 4, "v1", key="k", fee=100)
    v2, new = reserve(ledger, 0, "v2", key="k", nonce=4, fee=113)  # a fee bump: same nonce, no key check
    assert new and v2.nonce == 4 and v2.tx == {"to": B, "data": "0x0102"}
    assert [v.hash for v in ledger.versions(A, 4)] == [v2.hash, v1.hash]
    assert {r.state for r in ledger.pending(A)} == {PENDING}
    ledger.mark_mined(v1.hash, block=12, ok=True)  # the old one got in after all
    states = {r.hash: (r.state, r.error) for r in ledger.records(A)}
    assert states[v1.hash] == (MINED, None)
    assert states[v2.hash][0] == REPLACED and "was mined" in states[v2.hash][1]
    assert ledger.pending(A) == []


def test_drop_unmine_and_states() -> None:
    ledger = TxLedger(":memory:")
    a, _ = reserve(ledger, 0, "a")
    b, _ = reserve(ledger, 0, "b", nonce=0)
    assert ledger.drop_nonce(A, 0, "its nonce was used by another transaction") == 2
    assert {r.state for r in ledger.records(A)} == {DROPPED}
    c, _ = reserve(ledger, 1, "c")
    ledger.mark_mined(c.hash, block=5, ok=True)
    ledger.unmine(c.hash, "its receipt vanished")
    back = ledger.by_hash(c.hash)
    assert back is not None and back.state == PENDING and back.block is None and "vanished" in (back.error or "")
    ledger.mark_sent(c.hash)
    assert ledger.by_hash(c.hash).sent_at is not None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown transaction state"):
        ledger.mark(a.hash, "lost")


def test_a_chain_reset_starts_the_ledger_over() -> None:
    ledger = TxLedger(":memory:")
    for i in range(3):
        rec, _ = reserve(ledger, 0, f"m{i}", key=f"k{i}")
        ledger.mark_mined(rec.hash, block=i + 1, ok=True)
    pending, _ = reserve(ledger, 3, "p", key="kp")
    assert ledger.next_nonce(A, 0) == 4  # the ledger remembers nonces 0..3
    assert ledger.reset_chain(A) == 4
    assert ledger.next_nonce(A, 0) == 0 and ledger.max_mined_nonce(A) is None
    assert ledger.by_key(A, "k0") is None and ledger.pending(A) == []
    assert {r.error for r in ledger.records(A)} == {"the chain was reset"}


def test_file_name_is_keyed_by_chain_genesis_and_address() -> None:
    name = ledger_file_name(31337, bytes.fromhex("ab" * 32), A)
    assert name == f"31337-{'ab' * 8}-{A.lower()}.sqlite3"
    assert ledger_file_name(31337, bytes.fromhex("cd" * 32), A) != name
    assert ledger_file_name(1, bytes.fromhex("ab" * 32), A) != name
