"""The requester's crash journal: what a killed requester needs to finish its deals.

    >>> j = Journal.for_account(home, chain_id, market, address)     # doctest: +SKIP
    >>> j.begin(entry)                 # before the acceptance is sent or the deal opened
    >>> j.save_result(deal_id, ...)    # the verified bytes, before the seed is revealed
    >>> j.pending()                    # what ``recover`` still has to look at

One SQLite file per requester address and deployment, under the settings home
(``<home>/journal/<chain_id>-<market>-<address>/journal.sqlite``), one row per deal, written
*before* each irreversible step:

- ``begin`` — before the signed acceptance leaves and before ``open_deal``: the deal id, its
  terms, the provider's endpoint and bid signature, the acceptance, the spec hash and the
  lottery seed (the only copy of the secret the requester must reveal, see docs/SPEC.md §14.3);
- ``save_result`` — once the result verified against the on-chain seal: the exact bytes are
  written under ``results/<deal_id>/`` (``stdout``, ``stderr``, ``outputs/…``, ``result.json``)
  with a temporary folder renamed into place, then the row says ``verified``;
- ``mark_revealed`` — the provider took the seed;
- ``outcome`` — how the run ended (``verified``, or the error's class name), and ``settle``
  — how the deal ended on-chain, set by ``requester.recover``.

``done`` is set when nothing is left to do for the deal: it is settled on-chain and its result
is on disk (or it had none: reclaimed, refunded, never opened). ``recover`` skips those rows,
so running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["Journal", "JournalEntry", "SETTLED_STATES"]

# how a deal ended on-chain (``JournalEntry.settled``)
SETTLED_STATES = ("finalized", "reclaimed", "refunded", "never_opened")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One deal as the journal holds it (money in base units, times in unix seconds)."""

    deal_id: str
    created_at: float
    name: str
    spec_hash: str
    provider: str
    endpoint: str
    terms: str  # TermsMsg JSON: the Terms exactly as signed
    seed: str  # 0x… 32 bytes: the lottery seed committed (hashed) in the terms
    acceptance: str  # 0x… the requester's EIP-712 Acceptance signature
    bid_signature: str  # 0x… the provider's EIP-712 Bid signature
    out_dir: str = ""  # where ``run`` writes the outputs (the job's out_dir), "" if nowhere
    caps: str = ""  # "<stdout cap>,<outputs cap>": the download caps of the job's spec
    state: str = "accepted"  # accepted, verified, mismatch, or the run's error class name
    seed_revealed: int = 0
    result_root: str = ""
    result_dir: str = ""  # where the verified bytes are kept
    settled: str = ""  # one of SETTLED_STATES once the deal is over on-chain
    done: int = 0
    note: str = ""  # the last thing recover found or did
    updated_at: float = 0.0

    @property
    def terms_json(self) -> dict[str, Any]:
        return dict(json.loads(self.terms))


_COLUMNS = [f.name for f in fields(JournalEntry)]
_SCHEMA = ("CREATE TABLE IF NOT EXISTS deals (deal_id TEXT PRIMARY KEY, "
           + ", ".join(c for c in _COLUMNS if c != "deal_id") + ")")


class Journal:
    """The durable record of one requester's deals on one deployment."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "journal.sqlite"
        self.results = self.folder / "results"
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @classmethod
    def for_account(cls, home: Path, chain_id: int, market: str, address: str) -> Journal:
        """The journal of ``address`` on the Market ``market`` of chain ``chain_id``, under ``home``."""
        return cls(Path(home) / "journal" / f"{chain_id}-{market.lower()}-{address.lower()}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db, db:  # commit, then close
            db.execute("PRAGMA synchronous=FULL")  # a row written is a row kept, power cut or SIGKILL
            yield db

    # writing ---------------------------------------------------------------------------------
    def begin(self, entry: JournalEntry) -> None:
        """Record a deal before its acceptance leaves (a second call for the same deal is a no-op)."""
        values = [getattr(entry, c) for c in _COLUMNS]
        values[_COLUMNS.index("updated_at")] = time.time()
        with self._db() as db:
            db.execute(f"INSERT OR IGNORE INTO deals ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                       values)

    def update(self, deal_id: str, **changes: Any) -> None:
        """Change some columns of a deal's row."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown journal column(s) {sorted(unknown)}")
        changes["updated_at"] = time.time()
        with self._db() as db:
            db.execute(f"UPDATE deals SET {', '.join(f'{k} = ?' for k in changes)} WHERE deal_id = ?",
                       [*changes.values(), deal_id.lower()])

    def outcome(self, deal_id: str, state: str, note: str = "") -> None:
        """How ``run`` ended for the deal; a verified or settled row keeps its state."""
        with self._db() as db:
            db.execute("UPDATE deals SET state = ?, note = ?, updated_at = ? WHERE deal_id = ? "
                       "AND state NOT IN ('verified', 'mismatch')", (state, note[:500], time.time(), deal_id.lower()))

    def mark_revealed(self, deal_id: str) -> None:
        self.update(deal_id, seed_revealed=1)

    def save_result(self, deal_id: str, *, result_root: str, stdout: bytes, stderr: bytes,
                    outputs: Mapping[str, bytes], meta: Mapping[str, Any] | None = None) -> Path:
        """Write the verified bytes under ``results/<deal_id>/`` (all or nothing), then mark the
        row ``verified``. Paths that would leave the folder are skipped, as ``run`` does."""
        deal_id = deal_id.lower()
        dest = self.results / deal_id
        if not dest.is_dir():
            tmp = self.results / f".{deal_id}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "outputs").mkdir(parents=True)
            _write(tmp / "stdout", stdout)
            _write(tmp / "stderr", stderr)
            for path, data in outputs.items():
                rel = PurePosixPath(path)
                if rel.is_absolute() or ".." in rel.parts:
                    continue
                target = tmp.joinpath("outputs", *rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                _write(target, data)
            info = {"deal_id": deal_id, "result_root": result_root, "outputs": sorted(outputs)} | dict(meta or {})
            _write(tmp / "result.json", json.dumps(info, sort_keys=True).encode())
            os.replace(tmp, dest)
            _fsync_dir(self.results)
        self.update(deal_id, state="verified", result_root=result_root, result_dir=str(dest))
        return dest

    # reading ---------------------------------------------------------------------------------
    def get(self, deal_id: str) -> JournalEntry | None:
        with self._db() as db:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM deals WHERE deal_id = ?",
                             (deal_id.lower(),)).fetchone()
        return JournalEntry(*row) if row else None

    def entries(self) -> list[JournalEntry]:
        """Every deal, oldest first."""
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM deals ORDER BY created_at, deal_id").fetchall()
        return [JournalEntry(*row) for row in rows]

    def pending(self) -> list[JournalEntry]:
        """The deals ``recover`` still has something to do for, oldest first."""
        return [e for e in self.entries() if not e.done]

    def has_result(self, entry: JournalEntry) -> bool:
        """Whether the entry's verified bytes are on disk."""
        return bool(entry.result_dir) and (Path(entry.result_dir) / "result.json").is_file()


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
