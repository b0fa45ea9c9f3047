"""`CallCache` on SQLite: one file shared by every worker on a machine (WAL, so readers never wait on a
writer); entries expire after `ttl_seconds`; expired rows are dropped as new ones are written.

Invariants: nothing is opened until first use; a cache that cannot be read or written is a miss (the
call is simply made), never a failed call.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)"


class SqliteCallCache:
    def __init__(self, path: Path, ttl_seconds: float) -> None:
        self.path = path
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        if not self._ready:
            with self._lock:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute(_SCHEMA)
                self._ready = True
        return connection

    def get(self, key: str) -> str | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                row = connection.execute("SELECT value FROM calls WHERE key = ? AND expires > ?", (key, time.time())).fetchone()
            finally:
                connection.close()
        except (sqlite3.Error, OSError) as err:
            log.warning("call cache unreadable (%s): treated as a miss", err)
            return None
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        now = time.time()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                connection.execute("INSERT OR REPLACE INTO calls (key, value, expires) VALUES (?, ?, ?)", (key, value, now + self.ttl_seconds))
                connection.execute("DELETE FROM calls WHERE expires <= ?", (now,))
            finally:
                connection.close()
        except (sqlite3.Error, OSError) as err:
            log.warning("call cache unwritable (%s): result not cached", err)
