"""The per-key transaction ledger: every transaction a key signed, in SQLite.

    >>> ledger = TxLedger(":memory:")
    >>> rec, new = ledger.reserve("0xabc", 7, lambda n: (b"raw", bytes([n]) * 32), key="commit:0x01",
    ...                           tx={"to": "0xdef"}, max_fee=2_000, priority_fee=1_000)
    >>> rec.nonce, rec.state, new
    (7, 'pending', True)
    >>> ledger.reserve("0xabc", 7, lambda n: (b"raw", bytes([n]) * 32), key="commit:0x01",
    ...                tx={}, max_fee=2_000, priority_fee=1_000)[1]          # the key is taken
    False

A row is one signed version of a transaction: its nonce, hash, raw bytes (to rebroadcast),
fees, an optional idempotency key (``"commit:0x<deal_id>"``) and a state:

    pending   signed and sent (or about to be); may be rebroadcast or replaced
    mined     mined with status 1 (at the sender's confirmation depth)
    failed    mined but reverted: its nonce is used all the same
    replaced  another version of the same nonce (a fee bump) was mined, or superseded it
    dropped   never mined and given up: rejected by the node, its nonce taken by another
              transaction of the key, or the chain was reset under it

Nonces are handed out inside ``BEGIN IMMEDIATE``, together with the signature and the insert
of the row, so several processes sharing one key and one ledger file never sign the same nonce
twice and a crash between signing and sending leaves a row to rebroadcast, not a gap. The
nonce chosen is the lowest one at or above the node's pending count that no live row
(pending, mined, failed) holds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercato.sqlite import immediate

__all__ = ["TxLedger", "TxRecord", "PENDING", "MINED", "FAILED", "REPLACED", "DROPPED", "LIVE", "KEYED",
           "ledger_file_name"]

PENDING, MINED, FAILED, REPLACED, DROPPED = "pending", "mined", "failed", "replaced", "dropped"
LIVE = (PENDING, MINED, FAILED)  # states that hold a nonce
KEYED = (PENDING, MINED)  # states that hold an idempotency key (a reverted send may be tried again)
STATES = (PENDING, MINED, FAILED, REPLACED, DROPPED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    tx TEXT NOT NULL,
    max_fee INTEGER NOT NULL,
    priority_fee INTEGER NOT NULL,
    key TEXT,
    state TEXT NOT NULL,
    block INTEGER,
    error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_nonce ON txs (address, nonce);
CREATE INDEX IF NOT EXISTS txs_key ON txs (address, key);
CREATE INDEX IF NOT EXISTS txs_state ON txs (address, state);
"""


def ledger_file_name(chain_id: int, genesis_hash: bytes, address: str) -> str:
    """``<chain id>-<first 8 bytes of the genesis hash>-<address>.sqlite3``: a fresh devnet (new
    genesis) gets a fresh ledger, a restarted one with its state keeps its own."""
    return f"{chain_id}-{bytes(genesis_hash)[:8].hex()}-{address.lower()}.sqlite3"


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One signed version of a transaction, as the ledger holds it."""

    id: int
    address: str
    nonce: int
    hash: bytes
    raw: bytes
    tx: dict[str, Any]  # the unsigned fields (without fees and nonce), to re-sign a replacement
    max_fee: int
    priority_fee: int
    key: str | None
    state: str
    block: int | None
    error: str | None
    created_at: float
    sent_at: float | None
    updated_at: float


class TxLedger:
    """Transactions of any number of keys in one SQLite file (WAL), or in memory (``":memory:"``)."""

    def __init__(self, path: str | Path = ":memory:", *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.RLock()
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: other writers (threads or processes) wait."""
        return immediate(self._db, self._lock)

    def _rows(self, sql: str, *args: Any) -> list[TxRecord]:
        with self._lock:
            return [_record(r) for r in self._db.execute(sql, args).fetchall()]

    # allocation -----------------------------------------------------------------------------
    def reserve(self, address: str, node_pending: int, sign: Callable[[int], tuple[bytes, bytes]], *,
                tx: dict[str, Any], max_fee: int, priority_fee: int, key: str | None = None,
                nonce: int | None = None, key_states: tuple[str, ...] = KEYED) -> tuple[TxRecord, bool]:
        """Allocate a nonce, sign with it (``sign(nonce) -> (raw, hash)``) and record the row as
        pending, all in one write transaction. With ``key``, a row already holding that key is
        returned instead (``(row, False)``; ``key_states=(PENDING,)``: only a row still in flight).
        ``nonce`` given: a new version of that nonce (a fee bump), no allocation."""
        address = address.lower()
        with self._write() as db:
            if key is not None and nonce is None:
                held = _key_rows(db, address, key, key_states)
                if held:
                    return held[0], False
            if nonce is None:
                nonce = _free_nonce(db, address, node_pending)
            raw, tx_hash = sign(nonce)
            now = time.time()
            db.execute("INSERT INTO txs (address, nonce, hash, raw, tx, max_fee, priority_fee, key, state, "
                       "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (address, nonce, "0x" + bytes(tx_hash).hex(), bytes(raw), json.dumps(tx, default=_hex),
                        int(max_fee), int(priority_fee), key, PENDING, now, now))
            row = db.execute("SELECT * FROM txs WHERE hash = ?", ("0x" + bytes(tx_hash).hex(),)).fetchone()
        return _record(row), True

    def next_nonce(self, address: str, node_pending: int) -> int:
        """The nonce the next ``reserve`` would hand out (nothing is reserved)."""
        with self._lock:
            return _free_nonce(self._db, address.lower(), node_pending)

    # queries --------------------------------------------------------------------------------
    def by_hash(self, tx_hash: bytes) -> TxRecord | None:
        rows = self._rows("SELECT * FROM txs WHERE hash = ?", "0x" + bytes(tx_hash).hex())
        return rows[0] if rows else None

    def by_key(self, address: str, key: str, states: tuple[str, ...] = KEYED) -> TxRecord | None:
        """The row holding ``key``: the mined one, else the newest pending one (a reverted send does
        not hold its key, so a retry estimates again and meets the typed revert)."""
        with self._lock:
            rows = _key_rows(self._db, address.lower(), key, states)
        return rows[0] if rows else None

    def versions(self, address: str, nonce: int) -> list[TxRecord]:
        """Every version signed for ``nonce``, newest first."""
        return self._rows("SELECT * FROM txs WHERE address = ? AND nonce = ? ORDER BY id DESC", address.lower(), nonce)

    def pending(self, address: str) -> list[TxRecord]:
        """Pending rows, lowest nonce first (newest version first within a nonce)."""
        return self._rows("SELECT * FROM txs WHERE address = ? AND state = ? ORDER BY nonce, id DESC",
                          address.lower(), PENDING)

    def records(self, address: str | None = None) -> list[TxRecord]:
        """Every row (of ``address``), in the order they were signed."""
        if address is None:
            return self._rows("SELECT * FROM txs ORDER BY id")
        return self._rows("SELECT * FROM txs WHERE address = ? ORDER BY id", address.lower())

    def max_mined_nonce(self, address: str) -> int | None:
        """The highest nonce the ledger saw mined (or reverted) for ``address``."""
        with self._lock:
            row = self._db.execute("SELECT MAX(nonce) FROM txs WHERE address = ? AND state IN (?, ?)",
                                   (address.lower(), MINED, FAILED)).fetchone()
        return None if row[0] is None else int(row[0])

    # state changes --------------------------------------------------------------------------
    def mark_sent(self, tx_hash: bytes) -> None:
        with self._write() as db:
            now = time.time()
            db.execute("UPDATE txs SET sent_at = ?, updated_at = ? WHERE hash = ?", (now, now, _h(tx_hash)))

    def mark_mined(self, tx_hash: bytes, block: int, ok: bool) -> None:
        """``tx_hash`` was mined (``ok``: status 1); the other versions of its nonce become replaced."""
        with self._write() as db:
            row = db.execute("SELECT address, nonce FROM txs WHERE hash = ?", (_h(tx_hash),)).fetchone()
            if row is None:
                return
            now = time.time()
            db.execute("UPDATE txs SET state = ?, block = ?, error = NULL, updated_at = ? WHERE hash = ?",
                       (MINED if ok else FAILED, int(block), now, _h(tx_hash)))
            db.execute("UPDATE txs SET state = ?, error = ?, updated_at = ? WHERE address = ? AND nonce = ? "
                       "AND hash != ? AND state IN (?, ?, ?)",
                       (REPLACED, f"version {_h(tx_hash)} was mined", now, row[0], row[1], _h(tx_hash),
                        PENDING, MINED, FAILED))

    def mark(self, tx_hash: bytes, state: str, error: str | None = None) -> None:
        """Set one row's state (e.g. dropped with the node's error, replaced by a fee bump)."""
        if state not in STATES:
            raise ValueError(f"unknown transaction state {state!r}: one of {', '.join(STATES)}")
        with self._write() as db:
            db.execute("UPDATE txs SET state = ?, error = COALESCE(?, error), updated_at = ? WHERE hash = ?",
                       (state, error, time.time(), _h(tx_hash)))

    def unmine(self, tx_hash: bytes, error: str) -> None:
        """A receipt that vanished (a reorg): the row is pending again, to rebroadcast."""
        with self._write() as db:
            db.execute("UPDATE txs SET state = ?, block = NULL, error = ?, updated_at = ? WHERE hash = ?",
                       (PENDING, error, time.time(), _h(tx_hash)))

    def drop_nonce(self, address: str, nonce: int, error: str) -> int:
        """Every pending version of ``nonce`` becomes dropped; returns how many."""
        with self._write() as db:
            cur = db.execute("UPDATE txs SET state = ?, error = ?, updated_at = ? WHERE address = ? AND nonce = ? "
                             "AND state = ?", (DROPPED, error, time.time(), address.lower(), nonce, PENDING))
            return int(cur.rowcount)

    def reset_chain(self, address: str, error: str = "the chain was reset") -> int:
        """The chain no longer holds what the ledger saw mined: every live row of ``address`` is
        dropped, so allocation starts over from the node's count. Returns how many rows."""
        with self._write() as db:
            cur = db.execute(f"UPDATE txs SET state = ?, error = ?, updated_at = ? WHERE address = ? "
                             f"AND state IN ({','.join('?' * len(LIVE))})",
                             (DROPPED, error, time.time(), address.lower(), *LIVE))
            return int(cur.rowcount)


def _h(tx_hash: bytes) -> str:
    return "0x" + bytes(tx_hash).hex()


def _hex(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    raise TypeError(f"cannot store {type(value).__name__} in a transaction record")


def _key_rows(db: sqlite3.Connection, address: str, key: str, states: tuple[str, ...]) -> list[TxRecord]:
    rows = db.execute(f"SELECT * FROM txs WHERE address = ? AND key = ? AND state IN ({','.join('?' * len(states))}) "
                      "ORDER BY CASE state WHEN ? THEN 1 ELSE 0 END, id DESC",
                      (address, key, *states, PENDING)).fetchall()
    return [_record(r) for r in rows]


def _free_nonce(db: sqlite3.Connection, address: str, node_pending: int) -> int:
    held = {int(r[0]) for r in db.execute(
        f"SELECT DISTINCT nonce FROM txs WHERE address = ? AND nonce >= ? AND state IN ({','.join('?' * len(LIVE))})",
        (address, int(node_pending), *LIVE)).fetchall()}
    nonce = int(node_pending)
    while nonce in held:
        nonce += 1
    return nonce


def _record(row: tuple[Any, ...]) -> TxRecord:
    (id_, address, nonce, tx_hash, raw, tx, max_fee, priority_fee, key, state, block, error, created_at,
     sent_at, updated_at) = row
    return TxRecord(int(id_), str(address), int(nonce), bytes.fromhex(tx_hash[2:]), bytes(raw), json.loads(tx),
                    int(max_fee), int(priority_fee), key, str(state), None if block is None else int(block), error,
                    float(created_at), None if sent_at is None else float(sent_at), float(updated_at))
