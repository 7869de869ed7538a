"""The explorer's SQLite database: the raw Market events and the tables derived from them.

Money is stored as decimal TEXT (amounts go up to 2⁹⁶, past SQLite's 64-bit integers) and
read back as Python ints. Every table derived from events is keyed by the event's
``(block, log_index)`` or by the deal id, so applying the same event twice changes nothing.
The database is opened in WAL mode: the indexer thread writes while the web app reads.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mercato.explorer.errors import IndexDbError, IndexMismatch
from mercato.sqlite import immediate

__all__ = ["Store", "SCHEMA_VERSION", "DERIVED_TABLES"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL, name TEXT NOT NULL,
  args TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS providers (
  address TEXT PRIMARY KEY, endpoint TEXT NOT NULL, resources TEXT NOT NULL, enc_key TEXT NOT NULL,
  registered_block INTEGER NOT NULL, registered_at INTEGER NOT NULL, updated_block INTEGER NOT NULL,
  stake TEXT NOT NULL DEFAULT '0', unbonding TEXT NOT NULL DEFAULT '0', unbond_ready_at INTEGER NOT NULL DEFAULT 0,
  jailed INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0, missed INTEGER NOT NULL DEFAULT 0,
  slashed INTEGER NOT NULL DEFAULT 0, volume TEXT NOT NULL DEFAULT '0', earnings_claimed TEXT NOT NULL DEFAULT '0',
  audits_passed INTEGER NOT NULL DEFAULT 0, audits_failed INTEGER NOT NULL DEFAULT 0,
  disputes_lost INTEGER NOT NULL DEFAULT 0, audits_done INTEGER NOT NULL DEFAULT 0,
  no_shows INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS stakes (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, provider TEXT NOT NULL, kind TEXT NOT NULL,
  amount TEXT NOT NULL, total TEXT NOT NULL, tx_hash TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS deals (
  deal_id TEXT PRIMARY KEY, requester TEXT NOT NULL, provider TEXT NOT NULL, lane INTEGER NOT NULL,
  nonce INTEGER NOT NULL, jobs_root TEXT NOT NULL, jobs INTEGER NOT NULL, price TEXT NOT NULL,
  collateral TEXT NOT NULL, deadline INTEGER NOT NULL, expiry INTEGER NOT NULL, seed_hash TEXT NOT NULL,
  audit_bps INTEGER NOT NULL, audit_fee TEXT NOT NULL, seal TEXT, status TEXT NOT NULL, opened_by TEXT NOT NULL,
  opened_block INTEGER NOT NULL, opened_at INTEGER NOT NULL, opened_tx TEXT NOT NULL,
  committed_block INTEGER, committed_at INTEGER, commit_tx TEXT,
  drawn_block INTEGER, drawn_at INTEGER, draw_tx TEXT, audited INTEGER, draw_reason INTEGER,
  audit_outcome INTEGER, audit_claim TEXT, resolved_block INTEGER, resolved_at INTEGER, resolved_tx TEXT,
  finalized_block INTEGER, finalized_at INTEGER, finalized_tx TEXT,
  reclaimed_block INTEGER, reclaimed_at INTEGER, reclaimed_tx TEXT, refund TEXT, penalty TEXT,
  flagged INTEGER NOT NULL DEFAULT 0,
  fuel TEXT, units INTEGER, unit TEXT, units_source TEXT, units_tries INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS deals_provider ON deals (provider);
CREATE INDEX IF NOT EXISTS deals_status ON deals (status);
CREATE TABLE IF NOT EXISTS results (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, deal_id TEXT NOT NULL, executor TEXT NOT NULL,
  result_root TEXT NOT NULL, fuel TEXT NOT NULL, tx_hash TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS audits (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, deal_id TEXT NOT NULL, kind TEXT NOT NULL,
  party TEXT, amount TEXT, detail TEXT, tx_hash TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (block, log_index));
CREATE INDEX IF NOT EXISTS audits_deal ON audits (deal_id);
CREATE TABLE IF NOT EXISTS slashes (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, provider TEXT NOT NULL, kind TEXT NOT NULL,
  amount TEXT NOT NULL, to_addr TEXT, deal_id TEXT, tx_hash TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS withdrawals (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL,
  amount TEXT NOT NULL, tx_hash TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (block, log_index));
CREATE TABLE IF NOT EXISTS deposits (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, account TEXT NOT NULL, amount TEXT NOT NULL,
  available TEXT NOT NULL, tx_hash TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (block, log_index));
"""

# rebuilt from `events` after a reorg rewind
DERIVED_TABLES = ("providers", "stakes", "deals", "results", "audits", "slashes", "withdrawals", "deposits")
# read back as ints
_MONEY = {"stake", "unbonding", "volume", "earnings_claimed", "amount", "total", "price", "collateral",
          "audit_fee", "refund", "penalty", "fuel", "available"}


class Store:
    """One SQLite file; thread-safe (one connection, one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise IndexDbError(f"cannot open the explorer database {path}: {exc}") from None
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """All-or-nothing writes (a crash leaves the previous cursor and rows)."""
        return immediate(self._db, self._lock)

    # metadata and cursor -------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def bind(self, chain_id: int, market: str, start_block: int) -> None:
        """Tie the database to one chain and Market; another one's database is refused."""
        want = {"schema": SCHEMA_VERSION, "chain_id": str(chain_id), "market": market.lower()}
        with self.transaction() as db:
            have = {r[0]: r[1] for r in db.execute("SELECT key, value FROM meta")}
            for key, value in want.items():
                if key in have and have[key] != value:
                    raise IndexMismatch(f"{self.path} indexes {key} {have[key]}, not {value}: "
                                        "use another --db (or delete this one to re-index)")
            for key, value in want.items():
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('start_block', ?)", (str(start_block),))
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor', ?)", (str(start_block - 1),))

    def cursor(self) -> int:
        """The last block whose events are all indexed."""
        value = self.meta("cursor")
        return -1 if value is None else int(value)

    # reads ---------------------------------------------------------------------------------
    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, params)
            return [_plain(r) for r in cur.fetchall()]

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def count(self, table: str) -> int:
        if table not in (*DERIVED_TABLES, "events", "blocks"):
            raise ValueError(f"unknown table {table!r}")
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608


def _plain(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in _MONEY & out.keys():
        if out[key] is not None:
            out[key] = int(out[key])
    return out
