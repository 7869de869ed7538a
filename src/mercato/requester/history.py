"""The requester's local job history: one SQLite row per ``run`` (``mercato jobs`` reads it).

    >>> h = JobHistory(home / "requester.sqlite")                       # doctest: +SKIP
    >>> h.record(JobRecord(name="pi", state="sealed", ...))             # doctest: +SKIP
    >>> h.recent(20)[0].state                                           # doctest: +SKIP
    'sealed'
    >>> h.set_state("0x…deal", "audited")                               # doctest: +SKIP

A finished job is recorded ``sealed`` (its result opens the provider's on-chain seal); ``mercato
jobs`` reads the chain and moves it on to ``audited``, ``unaudited``, ``proven_wrong`` or ``void``
once its audit resolved (those do not change again). Rows written before these states say
``verified``, which meant sealed: :func:`known_state` reads them so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = ["JobRecord", "JobHistory", "FINAL_STATES", "RESULT_STATES", "known_state"]

RESULT_STATES = ("sealed", "auditing", "audited", "unaudited", "proven_wrong", "void")
FINAL_STATES = ("audited", "unaudited", "proven_wrong", "void")  # an audit's outcome: never changes again


def known_state(state: str) -> str:
    """``state`` with the old blanket ``"verified"`` read as what it meant: ``"sealed"``."""
    return "sealed" if state == "verified" else state


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as the requester saw it end (money in base units, times in unix seconds)."""

    created_at: float
    name: str
    spec_hash: str
    # "sealed", "auditing", "audited", "unaudited", "proven_wrong", "void" (requester.trust), or the
    # error's class name (NoBids, ResultMismatch, ...); "verified" in rows of older versions (= sealed)
    state: str
    deal_id: str = ""
    provider: str = ""
    price: int = 0
    result_root: str = ""
    open_tx: str = ""
    ttfb_ms: float | None = None
    total_ms: float | None = None
    error: str = ""


_COLUMNS = [f.name for f in fields(JobRecord)]
_SCHEMA = f"CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(_COLUMNS)})"


class JobHistory:
    """An append-only table of :class:`JobRecord` under the requester's home."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=5.0)) as db, db:  # commit, then close
            yield db

    def record(self, rec: JobRecord) -> None:
        """Append one job."""
        with self._db() as db:
            db.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                       astuple(rec))

    def set_state(self, deal_id: str, state: str) -> None:
        """Record what the chain now says about ``deal_id``'s result (rows of a finished job only)."""
        if state not in RESULT_STATES:
            raise ValueError(f"not a result state: {state!r}")
        with self._db() as db:
            db.execute("UPDATE jobs SET state = ? WHERE lower(deal_id) = ? AND state IN (?, ?, ?)",
                       (state, deal_id.lower(), "verified", "sealed", "auditing"))

    def recent(self, limit: int = 20) -> list[JobRecord]:
        """The last ``limit`` jobs, newest first."""
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [JobRecord(*row) for row in rows]
