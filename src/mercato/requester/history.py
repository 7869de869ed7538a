"""The requester's local job history: one SQLite row per ``run`` (``mercato jobs`` reads it).

    >>> h = JobHistory(home / "requester.sqlite")                       # doctest: +SKIP
    >>> h.record(JobRecord(name="pi", state="verified", ...))           # doctest: +SKIP
    >>> h.recent(20)[0].state                                           # doctest: +SKIP
    'verified'
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = ["JobRecord", "JobHistory"]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as the requester saw it end (money in base units, times in unix seconds)."""

    created_at: float
    name: str
    spec_hash: str
    state: str  # "verified", or the error's class name (NoBids, ResultMismatch, ...)
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

    def recent(self, limit: int = 20) -> list[JobRecord]:
        """The last ``limit`` jobs, newest first."""
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [JobRecord(*row) for row in rows]
