"""One piece of SQLite plumbing the stores share (the provider's deals, the explorer's index,
the transaction ledger): an all-or-nothing write on a connection in autocommit mode.

    with immediate(db, lock) as db:     # BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error)
        db.execute("INSERT ...")
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["immediate"]


@contextmanager
def immediate(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on ``db`` (opened with ``isolation_level=None``) under
    ``lock``: other threads wait on the lock, other processes on SQLite's write lock; anything
    raised inside rolls it back."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
