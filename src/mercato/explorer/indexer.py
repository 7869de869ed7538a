"""Follow the market's events (the Market contract's and its court's) into SQLite: resumable,
reorg-safe, idempotent.

    >>> store = Store(path / "explorer.sqlite")                                # doctest: +SKIP
    >>> ix = Indexer.from_deployment(deployment, store, confirmations=0)      # doctest: +SKIP
    >>> ix.sync().to_block == w3.eth.block_number                             # doctest: +SKIP
    True

Each :meth:`Indexer.sync` pass reads ``eth_getLogs`` of both addresses (the Market logs deals,
stake and payments; the court logs the audit game) in chunks from the block after the cursor
up to ``head - confirmations`` and writes, per chunk and in one SQLite transaction, the raw
events (keyed by block and log index, so a re-read inserts nothing), the rows derived from
them and the new cursor. It stores the hash of every block that logged an event and of each
cursor block; before reading on it compares the cursor block's hash with the chain's, and on
a mismatch (a reorganisation deeper than the confirmation depth) it walks back to the newest
stored block the chain still has, drops every event after it and rebuilds the derived tables
from the events kept.

Work units for the price index (fuel, so compute units) come from the chain when the provider
revealed its claim in an audit, else from the provider's published receipt
(``GET /v1/deals/{id}``), accepted only if ``seal_of(provider, deal, root, fuel, salt)``
equals the seal on-chain.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3

from mercato.chain import Deployment, connect
from mercato.chain.deployment import court_of
from mercato.config import RetryPolicy
from mercato.domain.jobs import cu_from_fuel
from mercato.errors import MercatoError
from mercato.explorer.errors import IndexerRpcError
from mercato.explorer.store import DERIVED_TABLES, Store
from mercato.verification.lottery import claim_of, seal_of

__all__ = ["Indexer", "SyncReport", "DEAL_STATES", "OUTCOMES", "apply_event", "units_from_status"]

log = logging.getLogger("mercato.explorer")
T = TypeVar("T")

ZERO32 = "0x" + "00" * 32
OUTCOMES = {3: "passed", 4: "failed", 5: "void"}
DRAW_REASONS = {0: "lottery", 1: "default", 2: "challenge"}
# every state a deal row can be in
DEAL_STATES = ("open", "committed", "cleared", "audited", "passed", "failed", "void", "finalized", "reclaimed")
ACTIVE_STATES = ("open", "committed", "cleared", "audited", "passed")
MAX_UNIT_TRIES = 5


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one :meth:`Indexer.sync` pass did."""

    from_block: int
    to_block: int  # the cursor afterwards
    head: int
    events: int  # events newly written
    rewound_to: int | None = None  # set when a reorganisation was undone


class Indexer:
    """Follows one Market and its court on one chain into one :class:`Store`.

    ``abi`` is the Market's; ``court_abi`` the court's, whose address is ``court`` or, when None,
    read from the Market's ``court()``. Without ``court_abi`` only the Market's events are read."""

    def __init__(self, w3: Web3, market: str, abi: list[dict[str, Any]], store: Store, *, start_block: int = 0,
                 confirmations: int = 0, chunk: int = 2000, fetch_receipts: bool = True,
                 http_timeout: float = 2.0, court: str | None = None,
                 court_abi: list[dict[str, Any]] | None = None) -> None:
        if confirmations < 0 or chunk < 1:
            raise ValueError("confirmations must be >= 0 and chunk >= 1")
        self.w3 = w3
        self.market = to_checksum_address(market)
        self.contract = w3.eth.contract(address=self.market, abi=abi)
        self.court: str | None = None
        contracts = [self.contract]
        if court_abi is not None:
            self.court = to_checksum_address(court) if court else self._rpc(
                lambda: court_of(w3, self.market, abi))
            contracts.append(w3.eth.contract(address=self.court, abi=court_abi))
        self.addresses = [str(c.address) for c in contracts]  # whose logs are read
        # (emitting address, topic 0) -> (event name, the contract that declares it)
        self._topics = {(str(c.address), bytes(event_abi_to_log_topic(e))): (str(e["name"]), c)  # type: ignore[arg-type]
                        for c in contracts for e in c.abi if e["type"] == "event"}
        self.store = store
        self.start_block = start_block
        self.confirmations = confirmations
        self.chunk = chunk
        self.fetch_receipts = fetch_receipts
        self.http_timeout = http_timeout
        self.chain_id = self._rpc(lambda: int(w3.eth.chain_id))
        store.bind(self.chain_id, self.market, start_block)
        self.start_block = int(store.meta("start_block") or start_block)  # an existing index keeps its own
        self.last_error: str | None = None
        self.last_sync: float | None = None

    @classmethod
    def from_deployment(cls, dep: Deployment, store: Store, *, rpc_url: str | None = None,
                        market: str | None = None, **options: Any) -> Indexer:
        """An indexer for ``dep``'s Market and court (or for ``market`` with the same ABIs, and
        the court it names) from its deployment block."""
        url = rpc_url or dep.rpc_url
        try:
            w3 = connect(url, RetryPolicy(attempts=3, base_delay=0.2), timeout=10.0)
        except MercatoError as exc:
            raise IndexerRpcError(f"cannot reach the RPC node at {url}: {exc}") from exc
        options.setdefault("start_block", dep.block if market is None else 0)
        own = market is None or to_checksum_address(market) == to_checksum_address(dep.market)
        options.setdefault("court", (dep.court or None) if own else None)  # None: ask the Market
        options.setdefault("court_abi", dep.abi.get("court"))
        return cls(w3, market or dep.market, dep.abi["market"], store, **options)

    # RPC -------------------------------------------------------------------------------------
    def _rpc(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except IndexerRpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - any transport or node failure
            endpoint = getattr(self.w3.provider, "endpoint_uri", "the RPC node")
            raise IndexerRpcError(f"RPC call to {endpoint} failed ({type(exc).__name__}: {exc}): "
                                  "is the node running and synced?") from exc

    def head(self) -> int:
        return self._rpc(lambda: int(self.w3.eth.block_number))

    def _block(self, number: int) -> tuple[str, int] | None:
        """(hash, timestamp) of block ``number``; None if the chain has no such block."""
        def get() -> tuple[str, int] | None:
            try:
                b = self.w3.eth.get_block(number)
            except Exception as exc:  # noqa: BLE001
                if "not found" in str(exc).lower():
                    return None
                raise
            return "0x" + bytes(b["hash"]).hex(), int(b["timestamp"])
        return self._rpc(get)

    def _logs(self, start: int, end: int) -> list[Any]:
        return self._rpc(lambda: list(self.w3.eth.get_logs(
            {"address": self.addresses, "fromBlock": start, "toBlock": end})))  # type: ignore[typeddict-item]

    # syncing ---------------------------------------------------------------------------------
    def sync(self, *, max_chunks: int | None = None) -> SyncReport:
        """Index every confirmed block after the cursor (at most ``max_chunks`` chunks)."""
        head = self.head()
        rewound: int | None = None
        start = self.store.cursor()
        target = head - self.confirmations
        written = chunks = 0
        while max_chunks is None or chunks < max_chunks:
            # the chain under the cursor may have changed since the last chunk: check before each
            undone = self._undo_reorg()
            if undone is not None:
                rewound = undone if rewound is None else min(rewound, undone)
                start = min(start, undone)
            cursor = self.store.cursor()
            if cursor >= target:
                break
            end = min(cursor + self.chunk, target)
            try:
                logs = self._logs(cursor + 1, end)
            except IndexerRpcError:
                if end - cursor > 1:  # a node that limits the range: halve it
                    self.chunk = max(1, (end - cursor) // 2)
                    continue
                raise
            done = self._write_chunk(cursor, end, logs)
            if done is None:  # the chain moved under us: check it again next pass
                break
            written += done
            chunks += 1
        self.last_sync = time.time()
        return SyncReport(start, self.store.cursor(), head, written, rewound)

    def _write_chunk(self, cursor: int, end: int, logs: list[Any]) -> int | None:
        numbers = sorted({int(lg["blockNumber"]) for lg in logs} | {end})
        blocks: dict[int, tuple[str, int]] = {}
        for n in numbers:
            found = self._block(n)
            if found is None:
                return None
            blocks[n] = found
        stored = self.store.one("SELECT hash FROM blocks WHERE number = ?", (cursor,))
        if stored is not None:  # the chunk must extend the chain already indexed
            now = self._block(cursor)
            if now is None or now[0] != stored["hash"]:
                return None
        events = []
        for lg in sorted(logs, key=lambda x: (int(x["blockNumber"]), int(x["logIndex"]))):
            n = int(lg["blockNumber"])
            if "0x" + bytes(lg["blockHash"]).hex() != blocks[n][0]:
                return None  # the log came from a block since replaced
            if not lg["topics"] or (to_checksum_address(lg["address"]), bytes(lg["topics"][0])) not in self._topics:
                continue
            events.append(self._decode(lg, blocks[n][1]))
        new = 0
        with self.store.transaction() as db:
            for n, (h, ts) in blocks.items():
                db.execute("INSERT OR REPLACE INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)", (n, h, ts))
            for ev in events:
                cur = db.execute("INSERT OR IGNORE INTO events (block, log_index, tx_hash, name, args, at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (ev["block"], ev["log_index"], ev["tx_hash"],
                                                              ev["name"], json.dumps(ev["args"]), ev["at"]))
                if cur.rowcount:
                    apply_event(db, ev)
                    new += 1
            db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(end),))
            # keep the hashes of blocks with events (rewind points) and of recent cursor blocks
            db.execute("DELETE FROM blocks WHERE number < ? AND number NOT IN (SELECT block FROM events)",
                       (end - 512,))
        return new

    def _decode(self, lg: Any, timestamp: int) -> dict[str, Any]:
        name, contract = self._topics[(to_checksum_address(lg["address"]), bytes(lg["topics"][0]))]
        data = getattr(contract.events, name)().process_log(lg)
        return {"name": name, "block": int(lg["blockNumber"]), "log_index": int(lg["logIndex"]),
                "tx_hash": "0x" + bytes(lg["transactionHash"]).hex(), "at": timestamp,
                "args": {k: _jsonable(v) for k, v in data["args"].items()}}

    def _undo_reorg(self) -> int | None:
        """Rewind to the newest stored block the chain still has if the cursor block changed."""
        cursor = self.store.cursor()
        if cursor < self.start_block:
            return None
        stored = self.store.one("SELECT hash FROM blocks WHERE number = ?", (cursor,))
        if stored is None:
            return None
        now = self._block(cursor)
        if now is not None and now[0] == stored["hash"]:
            return None
        keep = self.start_block - 1
        for row in self.store.rows("SELECT number, hash FROM blocks WHERE number < ? ORDER BY number DESC", (cursor,)):
            found = self._block(int(row["number"]))
            if found is not None and found[0] == row["hash"]:
                keep = int(row["number"])
                break
        log.warning("chain reorganised below block %d: rewinding the index to block %d", cursor, keep)
        self.rewind(keep)
        return keep

    def rewind(self, keep: int) -> None:
        """Forget everything after block ``keep`` and rebuild the derived tables from the events kept."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM events WHERE block > ?", (keep,))
            db.execute("DELETE FROM blocks WHERE number > ?", (keep,))
            db.execute("UPDATE meta SET value = ? WHERE key = 'cursor'", (str(keep),))
            for table in DERIVED_TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            for row in db.execute("SELECT * FROM events ORDER BY block, log_index").fetchall():
                apply_event(db, {"name": row["name"], "block": row["block"], "log_index": row["log_index"],
                                 "tx_hash": row["tx_hash"], "at": row["at"], "args": json.loads(row["args"])})

    # work units (for the price index) --------------------------------------------------------
    def enrich(self, limit: int = 20) -> int:
        """Find the work units of up to ``limit`` committed deals that lack them; returns how many."""
        todo = self.store.rows(
            "SELECT d.deal_id, d.provider, d.seal, d.units_tries, p.endpoint FROM deals d "
            "LEFT JOIN providers p ON p.address = d.provider WHERE d.units IS NULL AND d.seal IS NOT NULL "
            "AND d.status NOT IN ('open', 'reclaimed') AND d.units_tries < ? ORDER BY d.opened_block LIMIT ?",
            (MAX_UNIT_TRIES, limit))
        found = 0
        for deal in todo:
            units = self._units_on_chain(deal) or (self._units_from_receipt(deal) if self.fetch_receipts else None)
            with self.store.transaction() as db:
                if units is None:
                    db.execute("UPDATE deals SET units_tries = units_tries + 1 WHERE deal_id = ?", (deal["deal_id"],))
                else:
                    fuel, n, unit, source = units
                    db.execute("UPDATE deals SET fuel = ?, units = ?, unit = ?, units_source = ? WHERE deal_id = ?",
                               (str(fuel), n, unit, source, deal["deal_id"]))
                    found += 1
        return found

    def _units_on_chain(self, deal: dict[str, Any]) -> tuple[int, int, str, str] | None:
        row = self.store.one("SELECT fuel FROM results WHERE deal_id = ? AND lower(executor) = lower(?) "
                             "ORDER BY block LIMIT 1", (deal["deal_id"], deal["provider"]))
        if row is None or not row["fuel"]:
            return None
        return row["fuel"], cu_from_fuel(row["fuel"]), "cu", "chain"

    def _units_from_receipt(self, deal: dict[str, Any]) -> tuple[int, int, str, str] | None:
        endpoint = (deal.get("endpoint") or "").rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            return None
        try:
            r = httpx.get(f"{endpoint}/v1/deals/{deal['deal_id']}", timeout=self.http_timeout)
            body = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return units_from_status(deal, body) if isinstance(body, dict) else None

    # background loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Sync and enrich every ``interval`` seconds until ``stop`` is set; errors are logged and
        kept in ``last_error`` (the loop retries), never raised."""
        while not stop.is_set():
            try:
                self.sync()
                self.enrich()
                self.last_error = None
            except MercatoError as exc:
                if self.last_error != str(exc):
                    log.warning("indexer: %s", exc)
                self.last_error = str(exc)
            stop.wait(interval)


def units_from_status(deal: dict[str, Any], status: dict[str, Any]) -> tuple[int, int, str, str] | None:
    """(fuel, units, unit, "receipt") from a provider's ``DealStatusMsg`` for ``deal`` (its
    ``deal_id``, ``provider`` and on-chain ``seal``), or None unless the receipt's root and fuel
    with the revealed salt open that seal. Container receipts bill vCPU-seconds (rounded up)."""
    receipt = status.get("receipt") or {}
    try:
        fuel = int(receipt["fuel_used"])
        root = bytes.fromhex(str(receipt["result_root"]).removeprefix("0x"))
        salt = bytes.fromhex(str(status.get("salt")).removeprefix("0x"))
        seal = seal_of(deal["provider"], bytes.fromhex(deal["deal_id"][2:]), root, fuel, salt)
    except (KeyError, TypeError, ValueError):
        return None
    if "0x" + seal.hex() != deal["seal"]:
        log.info("receipt of deal %s does not open its on-chain seal: ignored", deal["deal_id"])
        return None
    rs = receipt.get("resource_seconds")
    if isinstance(rs, dict) and rs.get("vcpu_s"):
        return fuel, max(1, math.ceil(float(rs["vcpu_s"]))), "vcpu_s", "receipt"
    units = cu_from_fuel(fuel)
    return (fuel, units, "cu", "receipt") if units > 0 else None


# applying one event to the derived tables ----------------------------------------------------
def apply_event(db: Any, ev: dict[str, Any]) -> None:
    """Update the derived tables for one event (called once per event, in chain order)."""
    handler = _HANDLERS.get(ev["name"])
    if handler is not None:
        handler(db, ev, ev["args"])


def _key(ev: dict[str, Any]) -> tuple[int, int]:
    return ev["block"], ev["log_index"]


def _ensure_provider(db: Any, address: str, ev: dict[str, Any]) -> None:
    db.execute("INSERT OR IGNORE INTO providers (address, endpoint, resources, enc_key, registered_block, "
               "registered_at, updated_block) VALUES (?, '', '', '', -1, 0, ?)", (address, ev["block"]))


def _add(db: Any, table: str, key_col: str, key: str, **deltas: int) -> None:
    """Add integer ``deltas`` to columns of one row (money columns are TEXT)."""
    cols = ", ".join(deltas)
    row = db.execute(f"SELECT {cols} FROM {table} WHERE {key_col} = ?", (key,)).fetchone()  # noqa: S608
    if row is None:
        return
    values = [str(int(row[c]) + d) if isinstance(row[c], str) else int(row[c]) + d for c, d in deltas.items()]
    sets = ", ".join(f"{c} = ?" for c in deltas)
    db.execute(f"UPDATE {table} SET {sets} WHERE {key_col} = ?", (*values, key))  # noqa: S608


def _set(db: Any, table: str, key_col: str, key: str, **values: Any) -> None:
    sets = ", ".join(f"{c} = ?" for c in values)
    db.execute(f"UPDATE {table} SET {sets} WHERE {key_col} = ?",  # noqa: S608
               (*(str(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**62 else v
                  for v in values.values()), key))


def _registered(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    p = a["provider"]
    _ensure_provider(db, p, ev)
    db.execute("UPDATE providers SET endpoint = ?, resources = ?, enc_key = ?, updated_block = ?, "
               "registered_block = CASE WHEN registered_block < 0 THEN ? ELSE registered_block END, "
               "registered_at = CASE WHEN registered_block < 0 THEN ? ELSE registered_at END WHERE address = ?",
               (a["endpoint"], a["resources"], a["enc_key"], ev["block"], ev["block"], ev["at"], p))


def _stake_row(db: Any, ev: dict[str, Any], provider: str, kind: str, amount: int, total: int) -> None:
    db.execute("INSERT OR IGNORE INTO stakes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (*_key(ev), provider, kind, str(amount), str(total), ev["tx_hash"], ev["at"]))


def _withdrawal_row(db: Any, ev: dict[str, Any], account: str, kind: str, amount: int) -> None:
    db.execute("INSERT OR IGNORE INTO withdrawals VALUES (?, ?, ?, ?, ?, ?, ?)",
               (*_key(ev), account, kind, str(amount), ev["tx_hash"], ev["at"]))


def _staked(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _set(db, "providers", "address", a["provider"], stake=str(a["stake"]))
    _stake_row(db, ev, a["provider"], "staked", a["amount"], a["stake"])


def _unbonded(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _add(db, "providers", "address", a["provider"], stake=-a["amount"])
    _set(db, "providers", "address", a["provider"], unbonding=str(a["unbonding"]), unbond_ready_at=a["ready_at"])
    _stake_row(db, ev, a["provider"], "unbonded", a["amount"], a["unbonding"])


def _stake_withdrawn(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _add(db, "providers", "address", a["provider"], unbonding=-a["amount"])
    _stake_row(db, ev, a["provider"], "withdrawn", a["amount"], 0)
    _withdrawal_row(db, ev, a["provider"], "stake", a["amount"])


def _earnings_claimed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _add(db, "providers", "address", a["provider"], earnings_claimed=a["amount"])
    _withdrawal_row(db, ev, a["provider"], "earnings", a["amount"])


def _slashed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _add(db, "providers", "address", a["provider"], stake=-a["amount"], slashed=1)
    db.execute("INSERT OR IGNORE INTO slashes VALUES (?, ?, ?, 'slash', ?, ?, NULL, ?, ?)",
               (*_key(ev), a["provider"], str(a["amount"]), a["to"], ev["tx_hash"], ev["at"]))


def _forfeited(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _ensure_provider(db, a["provider"], ev)
    _set(db, "providers", "address", a["provider"], stake="0", unbonding="0", jailed=1)
    _add(db, "providers", "address", a["provider"], slashed=1)
    db.execute("INSERT OR IGNORE INTO slashes VALUES (?, ?, ?, 'forfeit', ?, NULL, NULL, ?, ?)",
               (*_key(ev), a["provider"], str(a["amount"]), ev["tx_hash"], ev["at"]))


def _link_slash(db: Any, ev: dict[str, Any], provider: str, kind: str, deal_id: str) -> None:
    """Name the deal (and the reason) of the unlinked slash ``provider`` took earlier in this tx."""
    row = db.execute("SELECT block, log_index FROM slashes WHERE tx_hash = ? AND provider = ? AND kind = 'slash' "
                     "AND deal_id IS NULL AND (block < ? OR (block = ? AND log_index < ?)) "
                     "ORDER BY block DESC, log_index DESC LIMIT 1",
                     (ev["tx_hash"], provider, ev["block"], ev["block"], ev["log_index"])).fetchone()
    if row is not None:
        db.execute("UPDATE slashes SET kind = ?, deal_id = ? WHERE block = ? AND log_index = ?",
                   (kind, deal_id, row["block"], row["log_index"]))


def _deposited(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    db.execute("INSERT OR IGNORE INTO deposits VALUES (?, ?, ?, ?, ?, ?, ?)",
               (*_key(ev), a["account"], str(a["amount"]), str(a["available"]), ev["tx_hash"], ev["at"]))


def _withdrawal(kind: str) -> Callable[[Any, dict[str, Any], dict[str, Any]], None]:
    def handle(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
        _withdrawal_row(db, ev, a["account"], kind, a["amount"])
    return handle


def _deal_opened(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    committed = a["seal"] != ZERO32
    db.execute(
        "INSERT OR IGNORE INTO deals (deal_id, requester, provider, lane, nonce, jobs_root, jobs, price, collateral, "
        "deadline, expiry, seed_hash, audit_bps, audit_fee, seal, status, opened_by, opened_block, opened_at, "
        "opened_tx, committed_block, committed_at, commit_tx) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (a["deal_id"], a["requester"], a["provider"], a["lane"], a["nonce"], a["jobs_root"], a["jobs"],
         str(a["price"]), str(a["collateral"]), a["deadline"], a["expiry"], a["seed_hash"], a["audit_bps"],
         str(a["audit_fee"]), a["seal"] if committed else None, "committed" if committed else "open",
         "provider" if committed else "requester", ev["block"], ev["at"], ev["tx_hash"],
         ev["block"] if committed else None, ev["at"] if committed else None, ev["tx_hash"] if committed else None))


def _result_committed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _set(db, "deals", "deal_id", a["deal_id"], seal=a["seal"], status="committed", committed_block=ev["block"],
         committed_at=a["committed_at"], commit_tx=ev["tx_hash"])


def _audit_row(db: Any, ev: dict[str, Any], deal_id: str, kind: str, party: str | None = None,
               amount: int | None = None, detail: Any = None) -> None:
    db.execute("INSERT OR IGNORE INTO audits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (*_key(ev), deal_id, kind, party, None if amount is None else str(amount),
                None if detail is None else json.dumps(detail), ev["tx_hash"], ev["at"]))


def _deal_drawn(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _set(db, "deals", "deal_id", a["deal_id"], drawn_block=ev["block"], drawn_at=ev["at"], draw_tx=ev["tx_hash"],
         audited=int(bool(a["audited"])), draw_reason=a["reason"], status="audited" if a["audited"] else "cleared")
    _audit_row(db, ev, a["deal_id"], "drawn", detail={"audited": bool(a["audited"]),
                                                      "reason": DRAW_REASONS.get(a["reason"], str(a["reason"]))})


def _auditor_drawn(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _audit_row(db, ev, a["deal_id"], "auditor_drawn", a["auditor"], detail={"seat": a["seat"], "deadline": a["deadline"]})


def _audit_committed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _audit_row(db, ev, a["deal_id"], "committed", a["auditor"], detail={"seal": a["seal"]})


def _claim_revealed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    db.execute("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (*_key(ev), a["deal_id"], a["executor"], a["result_root"], str(a["fuel"]), ev["tx_hash"], ev["at"]))
    _audit_row(db, ev, a["deal_id"], "revealed", a["executor"], detail={"result_root": a["result_root"],
                                                                         "fuel": a["fuel"]})


def _auditor_missed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _audit_row(db, ev, a["deal_id"], "missed", a["auditor"], a["penalty"])
    _ensure_provider(db, a["auditor"], ev)
    _add(db, "providers", "address", a["auditor"], no_shows=1)
    if a["penalty"]:
        _link_slash(db, ev, a["auditor"], "no_show", a["deal_id"])


def _audit_resolved(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    deal_id, outcome, claim = a["deal_id"], int(a["outcome"]), a["claim"]
    _set(db, "deals", "deal_id", deal_id, audit_outcome=outcome, audit_claim=claim, resolved_block=ev["block"],
         resolved_at=ev["at"], resolved_tx=ev["tx_hash"], status=OUTCOMES.get(outcome, "audited"))
    _audit_row(db, ev, deal_id, "resolved", detail={"outcome": OUTCOMES.get(outcome, str(outcome)), "claim": claim})
    deal = db.execute("SELECT provider FROM deals WHERE deal_id = ?", (deal_id,)).fetchone()
    if deal is None or outcome not in (3, 4):  # VOID counts nothing
        return
    provider = deal["provider"]
    revealed = db.execute("SELECT executor, result_root, fuel FROM results WHERE deal_id = ?", (deal_id,)).fetchall()
    if outcome == 3:
        _add(db, "providers", "address", provider, audits_passed=1)
    else:
        _add(db, "providers", "address", provider, audits_failed=1)
        if any(r["executor"] == provider for r in revealed):  # it revealed and still failed: a dispute it lost
            _add(db, "providers", "address", provider, disputes_lost=1)
    if claim != ZERO32:
        for r in revealed:
            if r["executor"] != provider and "0x" + claim_of(bytes.fromhex(r["result_root"][2:]),
                                                             int(r["fuel"])).hex() == claim:
                _ensure_provider(db, r["executor"], ev)
                _add(db, "providers", "address", r["executor"], audits_done=1)
    # the whole-stake forfeits logged earlier in this transaction belong to this audit
    for row in db.execute("SELECT block, log_index, provider FROM slashes WHERE tx_hash = ? AND kind = 'forfeit' "
                          "AND deal_id IS NULL", (ev["tx_hash"],)).fetchall():
        db.execute("UPDATE slashes SET deal_id = ? WHERE block = ? AND log_index = ?",
                   (deal_id, row["block"], row["log_index"]))
        if row["provider"] != provider:
            _add(db, "providers", "address", row["provider"], disputes_lost=1)


def _bounty(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _audit_row(db, ev, a["deal_id"], "bounty", a["to"], a["amount"])


def _burned(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _audit_row(db, ev, a["deal_id"], "burned", amount=a["amount"])


def _flagged(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    _set(db, "deals", "deal_id", a["deal_id"], flagged=1)
    _audit_row(db, ev, a["deal_id"], "flagged", detail={"jobs_root": a["jobs_root"]})


def _finalized(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    deal = db.execute("SELECT d.provider, d.requester, d.jobs, d.price, d.status, d.audit_outcome, d.audit_claim, "
                      "p.jailed FROM deals d LEFT JOIN providers p ON p.address = d.provider WHERE d.deal_id = ?",
                      (a["deal_id"],)).fetchone()
    _set(db, "deals", "deal_id", a["deal_id"], status="finalized", finalized_block=ev["block"], finalized_at=ev["at"],
         finalized_tx=ev["tx_hash"])
    if deal is None:
        return
    # the contract's rules (SPEC §14.3-14.5): a jailed provider is paid only for deals an auditor upheld
    # (PASSED with a non-zero claim); jobs count only for a deal paying a base unit a job, not a self-deal
    upheld = deal["audit_outcome"] == 3 and int(deal["audit_claim"] or "0x0", 16) != 0
    if deal["jailed"] and not upheld:
        return
    price, jobs = int(deal["price"]), int(deal["jobs"])
    counted = jobs if price >= jobs and deal["requester"] != deal["provider"] else 0
    _add(db, "providers", "address", deal["provider"], completed=counted, volume=price)


def _reclaimed(db: Any, ev: dict[str, Any], a: dict[str, Any]) -> None:
    deal = db.execute("SELECT jobs FROM deals WHERE deal_id = ?", (a["deal_id"],)).fetchone()
    _set(db, "deals", "deal_id", a["deal_id"], status="reclaimed", reclaimed_block=ev["block"], reclaimed_at=ev["at"],
         reclaimed_tx=ev["tx_hash"], refund=str(a["refund"]), penalty=str(a["penalty"]))
    _ensure_provider(db, a["provider"], ev)
    _add(db, "providers", "address", a["provider"], missed=int(deal["jobs"]) if deal is not None else 0)
    if a["penalty"]:
        _link_slash(db, ev, a["provider"], "miss_penalty", a["deal_id"])


_HANDLERS: dict[str, Callable[[Any, dict[str, Any], dict[str, Any]], None]] = {
    "ProviderRegistered": _registered,
    "ProviderUpdated": _registered,
    "Staked": _staked,
    "Unbonded": _unbonded,
    "StakeWithdrawn": _stake_withdrawn,
    "EarningsClaimed": _earnings_claimed,
    "ProviderSlashed": _slashed,
    "StakeForfeited": _forfeited,
    "Deposited": _deposited,
    "WithdrawalRequested": _withdrawal("escrow_requested"),
    "WithdrawalCancelled": _withdrawal("escrow_cancelled"),
    "Withdrawn": _withdrawal("escrow"),
    "DealOpened": _deal_opened,
    "ResultCommitted": _result_committed,
    "DealDrawn": _deal_drawn,
    "AuditorDrawn": _auditor_drawn,
    "AuditCommitted": _audit_committed,
    "ClaimRevealed": _claim_revealed,
    "AuditorMissed": _auditor_missed,
    "AuditResolved": _audit_resolved,
    "BountyPaid": _bounty,
    "Burned": _burned,
    "WorkloadFlagged": _flagged,
    "DealFinalized": _finalized,
    "DealReclaimed": _reclaimed,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
