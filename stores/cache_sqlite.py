"""`CallCache` on SQLite: one file shared by every worker on a machine (WAL, so readers never wait on a
writer); entries expire after `ttl_seconds`; expired rows are dropped as new ones are written.

Invariants: nothing is opened until first use; a cache that cannot be read or written is a miss (the
call is simply made), never a failed call.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from stores.sqlite_conn import SqliteFile

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)"


class SqliteCallCache:
    def __init__(self, path: Path, ttl_seconds: float) -> None:
        self.path = path
        self.ttl_seconds = ttl_seconds
        self._file = SqliteFile(path, _SCHEMA, timeout_seconds=10.0)

    def get(self, key: str) -> str | None:
        try:
            with closing(self._file.connect()) as connection:
                row = connection.execute("SELECT value FROM calls WHERE key = ? AND expires > ?", (key, time.time())).fetchone()
        except (sqlite3.Error, OSError) as err:
            log.warning("call cache unreadable (%s): treated as a miss", err)
            return None
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        now = time.time()
        try:
            with closing(self._file.connect()) as connection:
                connection.execute("INSERT OR REPLACE INTO calls (key, value, expires) VALUES (?, ?, ?)", (key, value, now + self.ttl_seconds))
                connection.execute("DELETE FROM calls WHERE expires <= ?", (now,))
        except (sqlite3.Error, OSError) as err:
            log.warning("call cache unwritable (%s): result not cached", err)
