"""The agent's durable state: one SQLite file (WAL) — lanes, deals, watcher cursor.

    store = Store(data_dir / "provider.sqlite3")
    lane = store.reserve_lane("0xabc…")         # (index, nonce) or None when all lanes are busy
    store.update("0xabc…", state="accepted")

A restart loses nothing: every transition is written before the agent acts on it, the salt
before the seal is sent, so the agent can pick each deal up where it stood (see agent.py).
Calls are short and serialised by one lock, so they are safe from the event loop and from
worker threads alike.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from mercato.domain.deals import Terms
from mercato.domain.wire import DealState, TermsMsg
from mercato.sqlite import immediate

__all__ = ["ACTIVE_STATES", "DealRecord", "Store", "EXTERNAL", "HELD_OUT", "LANE_TAKEN", "RELEASED",
           "RELEASED_CLOSED", "UNSENT"]

# states in which a deal still holds its lane
ACTIVE_STATES: tuple[str, ...] = ("bid", "accepted", "running", "executed", "committed")
EXTERNAL = "external"  # reserved_by for a lane busy on-chain with a deal this store does not know
# ``error`` of a bid the requester released (DELETE /v1/bids/{id}): its lane is free for new bids,
# but the signed bid stays valid on-chain until its expiry, so an open is still honoured
RELEASED = "released: the requester chose another bid; the lane was freed for new bids"
RELEASED_CLOSED = RELEASED + " (expired unopened)"  # checked on-chain after its expiry: never opened
# ``error`` of a bid not accepted within the agent's ``bid_hold_s``: released like the above (and,
# until another bid takes its lane, still accepted if its acceptance comes late: ``retake``)
HELD_OUT = "released: not accepted within this provider's bid hold; the lane was freed for new bids"
# ``error`` of a bid whose requester hung up before the answer could be sent (a late answer)
UNSENT = "released: the requester stopped waiting before the bid was sent; the lane was freed for new bids"
_RELEASES = (RELEASED, HELD_OUT, UNSENT)  # released bids whose signed terms may still open on-chain
# ``error`` of a not-yet-open deal whose lane an earlier (released) bid took on-chain
LANE_TAKEN = ("lane taken by an earlier bid the requester opened: this deal can no longer open on-chain; "
              "nothing was charged, send a new RFQ")
_UNOPENED_LIVE = ("bid", "accepted", "running", "executed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lanes (
    idx INTEGER PRIMARY KEY,
    last_nonce INTEGER NOT NULL DEFAULT 0,
    reserved_by TEXT
);
CREATE TABLE IF NOT EXISTS deals (
    deal_id TEXT PRIMARY KEY,
    rfq_id TEXT NOT NULL,
    lane INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    terms TEXT NOT NULL,
    bid_sig TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    price_per_cu INTEGER NOT NULL DEFAULT 0,
    acceptance_sig TEXT,
    on_chain INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    salt TEXT,
    seal TEXT,
    commit_tx TEXT,
    committed_at INTEGER,
    committed_block INTEGER,
    status INTEGER NOT NULL DEFAULT 0,
    seed TEXT,
    started_at REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deals_state ON deals(state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class DealRecord:
    """One row of ``deals``: a bid and, if it was taken, the deal it became."""

    deal_id: str
    rfq_id: str
    lane: int
    nonce: int
    terms: str  # TermsMsg JSON
    bid_sig: str
    spec: str  # JobSpec JSON
    state: DealState
    price_per_cu: int = 0
    acceptance_sig: str | None = None
    on_chain: int = 0
    receipt: str | None = None  # Receipt.to_json() JSON
    salt: str | None = None  # 0x-hex, 32 bytes
    seal: str | None = None  # 0x-hex
    commit_tx: str | None = None
    committed_at: int | None = None
    committed_block: int | None = None
    status: int = 0  # the lottery's verdict on-chain: UNDRAWN, CLEARED or AUDITED (domain.deals)
    seed: str | None = None  # 0x-hex lottery seed, once the requester revealed it
    started_at: float | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def terms_obj(self) -> Terms:
        """The domain ``Terms``."""
        return TermsMsg.model_validate_json(self.terms).to_terms()

    @property
    def terms_msg(self) -> TermsMsg:
        return TermsMsg.model_validate_json(self.terms)

    @property
    def spec_json(self) -> dict[str, Any]:
        return dict(json.loads(self.spec))

    @property
    def receipt_json(self) -> dict[str, Any] | None:
        return None if self.receipt is None else dict(json.loads(self.receipt))


_COLUMNS = tuple(f.name for f in fields(DealRecord))


class Store:
    """SQLite-backed state of one provider agent."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a database written by an older agent up to the current ``deals`` columns."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(deals)").fetchall()}
        for column, decl in (("committed_block", "INTEGER"), ("status", "INTEGER NOT NULL DEFAULT 0"),
                             ("seed", "TEXT")):
            if column not in have:
                self._db.execute(f"ALTER TABLE deals ADD COLUMN {column} {decl}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db, self._lock)

    # lanes ----------------------------------------------------------------------------------
    def ensure_lanes(self, count: int) -> None:
        """Make sure lanes 0..count-1 exist (more lanes than before are added free)."""
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO lanes(idx) VALUES (?)", [(i,) for i in range(count)])

    def lanes(self, count: int) -> list[tuple[int, int, str | None]]:
        """``(index, last_nonce, reserved_by)`` of lanes 0..count-1."""
        with self._lock:
            rows = self._db.execute("SELECT idx, last_nonce, reserved_by FROM lanes WHERE idx < ? ORDER BY idx",
                                    (count,)).fetchall()
        return [(int(r[0]), int(r[1]), r[2]) for r in rows]

    def sync_lane(self, idx: int, chain_nonce: int, busy_external: bool) -> None:
        """Take the chain's nonce when it is ahead; mark a lane busy with an unknown deal."""
        with self._tx() as db:
            db.execute("UPDATE lanes SET last_nonce = MAX(last_nonce, ?) WHERE idx = ?", (chain_nonce, idx))
            if busy_external:
                db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ? AND reserved_by IS NULL",
                           (EXTERNAL, idx))
            else:
                db.execute("UPDATE lanes SET reserved_by = NULL WHERE idx = ? AND reserved_by = ?", (idx, EXTERNAL))

    def reserve_lane(self, count: int) -> tuple[int, int] | None:
        """Reserve the lowest free lane among 0..count-1: ``(index, next nonce)``, or None.

        The caller must then :meth:`insert_bid` (or :meth:`release_lane`) under the same lock.
        """
        with self._tx() as db:
            row = db.execute("SELECT idx, last_nonce FROM lanes WHERE reserved_by IS NULL AND idx < ? "
                             "ORDER BY idx LIMIT 1", (count,)).fetchone()
            if row is None:
                return None
            idx, nonce = int(row[0]), int(row[1]) + 1
            db.execute("UPDATE lanes SET last_nonce = ?, reserved_by = ? WHERE idx = ?", (nonce, "pending", idx))
        return idx, nonce

    def bind_lane(self, idx: int, deal_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ?", (deal_id, idx))

    def release_lane(self, idx: int, deal_id: str | None = None) -> None:
        """Free lane ``idx`` (only if ``deal_id`` still holds it, when given)."""
        with self._tx() as db:
            if deal_id is None:
                db.execute("UPDATE lanes SET reserved_by = NULL WHERE idx = ?", (idx,))
            else:
                db.execute("UPDATE lanes SET reserved_by = NULL WHERE idx = ? AND reserved_by = ?", (idx, deal_id))

    def rebind_lane(self, idx: int, holder: str, *, only_from: str) -> bool:
        """Hand lane ``idx`` to ``holder`` if ``only_from`` holds it now; whether it did."""
        with self._tx() as db:
            cur = db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ? AND reserved_by = ?",
                             (holder, idx, only_from))
            return cur.rowcount > 0

    def release_bid(self, deal_id: str, why: str = RELEASED) -> DealRecord | None:
        """A ``bid`` the requester let go (or whose hold is over: ``why`` = :data:`HELD_OUT`):
        ``expired`` (marked ``why``) and its lane freed, in one transaction. None when the deal is
        not in state ``bid`` (or was seen open on-chain). The lane's next bid takes the next nonce
        (``reserve_lane`` counts on), so the released bid can still open the lane on-chain only
        while it is free."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute("UPDATE deals SET state = 'expired', error = ?, updated_at = ? "
                             "WHERE deal_id = ? AND state = 'bid' AND on_chain = 0 AND acceptance_sig IS NULL",
                             (why, now, deal_id.lower()))
            if cur.rowcount == 0:
                return None
            row = db.execute("SELECT * FROM deals WHERE deal_id = ?", (deal_id.lower(),)).fetchone()
            db.execute("UPDATE lanes SET reserved_by = NULL WHERE idx = ? AND reserved_by = ?",
                       (int(row["lane"]), deal_id.lower()))
        return DealRecord(**dict(row))

    def retake(self, deal_id: str, acceptance_sig: str) -> DealRecord | None:
        """A bid released at the end of its hold (:data:`HELD_OUT`) accepted after all: ``accepted``
        with ``acceptance_sig``, its lane bound to it again — only while that lane is free and no
        newer bid was signed on it (its last nonce is still this bid's), so no other deal can ever
        compete for it. None otherwise (nothing changes)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT d.lane FROM deals d JOIN lanes l ON l.idx = d.lane WHERE d.deal_id = ? "
                             "AND d.state = 'expired' AND d.error = ? AND d.on_chain = 0 AND l.reserved_by IS NULL "
                             "AND l.last_nonce = d.nonce", (deal_id.lower(), HELD_OUT)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE deals SET state = 'accepted', error = NULL, acceptance_sig = ?, updated_at = ? "
                       "WHERE deal_id = ?", (acceptance_sig, now, deal_id.lower()))
            db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ?", (deal_id.lower(), int(row[0])))
            out = db.execute("SELECT * FROM deals WHERE deal_id = ?", (deal_id.lower(),)).fetchone()
        return DealRecord(**dict(out))

    def take_lane(self, deal_id: str) -> list[DealRecord]:
        """Deal ``deal_id`` is open on-chain: its lane is its own again. Every other deal on that lane
        that is not open on-chain yet (a newer bid handed out after a release) can never open while
        it stands, so it fails with :data:`LANE_TAKEN`; those are returned."""
        now = time.time()
        live = ", ".join(f"'{s}'" for s in _UNOPENED_LIVE)
        with self._tx() as db:
            row = db.execute("SELECT lane FROM deals WHERE deal_id = ?", (deal_id.lower(),)).fetchone()
            if row is None:
                return []
            lane = int(row[0])
            rows = db.execute(f"SELECT * FROM deals WHERE lane = ? AND deal_id != ? AND on_chain = 0 "
                              f"AND state IN ({live})", (lane, deal_id.lower())).fetchall()
            ids = [r["deal_id"] for r in rows]
            db.executemany("UPDATE deals SET state = 'failed', error = ?, updated_at = ? WHERE deal_id = ?",
                           [(LANE_TAKEN, now, d) for d in ids])
            db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ?", (deal_id.lower(), lane))
            failed = [DealRecord(**dict(r)) for r in
                      (db.execute("SELECT * FROM deals WHERE deal_id = ?", (d,)).fetchone() for d in ids)]
        return failed

    def released_open(self) -> list[DealRecord]:
        """Released bids (by their requester or at the end of their hold) not yet checked on-chain
        after their expiry."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM deals WHERE state = 'expired' AND error IN (?, ?, ?) "
                                    "ORDER BY created_at", _RELEASES).fetchall()
        return [DealRecord(**dict(r)) for r in rows]

    def reconcile_lanes(self) -> None:
        """After a restart: free lanes whose holder is gone (a half-made bid, a settled deal)."""
        active = ", ".join(f"'{s}'" for s in ACTIVE_STATES)
        holders = f"SELECT deal_id FROM deals WHERE state IN ({active}) OR (state = 'failed' AND on_chain = 1)"
        with self._tx() as db:
            db.execute("UPDATE lanes SET reserved_by = NULL WHERE reserved_by = 'pending'")
            db.execute(f"UPDATE lanes SET reserved_by = NULL WHERE reserved_by IS NOT NULL AND reserved_by != ? "
                       f"AND reserved_by NOT IN ({holders})", (EXTERNAL,))

    def busy_lanes(self, count: int) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM lanes WHERE reserved_by IS NOT NULL AND idx < ?",
                                        (count,)).fetchone()[0])

    # deals ----------------------------------------------------------------------------------
    def insert(self, rec: DealRecord) -> DealRecord:
        now = time.time()
        rec = replace(rec, created_at=now, updated_at=now)
        with self._tx() as db:
            db.execute(f"INSERT INTO deals({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                       tuple(getattr(rec, c) for c in _COLUMNS))
            db.execute("UPDATE lanes SET reserved_by = ? WHERE idx = ?", (rec.deal_id, rec.lane))
        return rec

    def get(self, deal_id: str) -> DealRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM deals WHERE deal_id = ?", (deal_id.lower(),)).fetchone()
        return None if row is None else DealRecord(**dict(row))

    def update(self, deal_id: str, *, expect: Iterable[str] | None = None, **changes: Any) -> DealRecord | None:
        """Change columns of one deal; with ``expect``, only if its state is one of those.

        Returns the updated record, or None when the deal is missing or in another state.
        """
        changes["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in changes)
        params: list[Any] = [*changes.values(), deal_id.lower()]
        where = "deal_id = ?"
        if expect is not None:
            states = tuple(expect)
            where += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(states)
        with self._tx() as db:
            cur = db.execute(f"UPDATE deals SET {sets} WHERE {where}", params)
            if cur.rowcount == 0:
                return None
            row = db.execute("SELECT * FROM deals WHERE deal_id = ?", (deal_id.lower(),)).fetchone()
        return DealRecord(**dict(row))

    def in_states(self, *states: str) -> list[DealRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM deals WHERE state IN ({', '.join('?' * len(states))}) "
                                    "ORDER BY created_at", states).fetchall()
        return [DealRecord(**dict(r)) for r in rows]

    def counts(self) -> dict[str, int]:
        """Deals by state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM deals GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def _unopened_terms(self) -> list[TermsMsg]:
        """Terms of deals that hold a lane but are not opened on-chain yet."""
        live = ("bid", "accepted", "running", "executed")
        with self._lock:
            rows = self._db.execute(f"SELECT terms FROM deals WHERE on_chain = 0 AND state IN "
                                    f"({', '.join('?' * len(live))})", live).fetchall()
        return [TermsMsg.model_validate_json(r[0]) for r in rows]

    def reserved_collateral(self) -> int:
        """Collateral of deals that hold a lane but are not opened on-chain yet (so not locked there)."""
        return sum(t.collateral for t in self._unopened_terms())

    def at_risk_collateral(self) -> int:
        """Collateral of the deals that can still miss: holding a lane, signed, accepted, running or
        executed, with no seal on-chain yet (opened or not)."""
        live = ("bid", "accepted", "running", "executed")
        with self._lock:
            rows = self._db.execute(f"SELECT terms FROM deals WHERE state IN ({', '.join('?' * len(live))})",
                                    live).fetchall()
        return sum(TermsMsg.model_validate_json(r[0]).collateral for r in rows)

    def reserved_value(self) -> tuple[int, int, int]:
        """Total price, count and largest price of the deals not opened on-chain yet (not in the chain's
        value in flight)."""
        terms = self._unopened_terms()
        return sum(t.price for t in terms), len(terms), max((t.price for t in terms), default=0)

    # meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                       (key, value, value))
