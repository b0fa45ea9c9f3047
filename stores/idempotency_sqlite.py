"""`IdempotencyLedger` on SQLite: one file shared by every worker on a machine (WAL, so readers never wait
on a writer), recording what side-effecting tool activities did, by key.

Invariants: nothing is opened until first use; a recorded result is never replaced (first writer wins,
`INSERT OR IGNORE` on the primary key, atomic in SQLite); a ledger that cannot be read or written raises a
retryable `StoreError`, never a miss, since a miss would let a retry repeat the effect. Entries older than
`retention_seconds` (far longer than any activity's retries) are dropped as new ones are written.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from contracts.errors import ErrorType
from stores.protocols import StoreError
from stores.sqlite_conn import SqliteFile

_SCHEMA = "CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, result TEXT NOT NULL, recorded_at REAL NOT NULL)"


class SqliteIdempotencyLedger:
    def __init__(self, path: Path, retention_seconds: float) -> None:
        self.path = path
        self.retention_seconds = retention_seconds
        self._file = SqliteFile(path, _SCHEMA)

    def get(self, key: str) -> str | None:
        try:
            with closing(self._file.connect()) as connection:
                row = connection.execute("SELECT result FROM ledger WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, OSError) as err:
            raise _unavailable(err) from err
        return row[0] if row else None

    def put(self, key: str, result: str) -> str:
        now = time.time()
        try:
            with closing(self._file.connect()) as connection:
                connection.execute("INSERT OR IGNORE INTO ledger (key, result, recorded_at) VALUES (?, ?, ?)", (key, result, now))
                (recorded,) = connection.execute("SELECT result FROM ledger WHERE key = ?", (key,)).fetchone()
                connection.execute("DELETE FROM ledger WHERE recorded_at < ?", (now - self.retention_seconds,))
        except (sqlite3.Error, OSError) as err:
            raise _unavailable(err) from err
        return recorded


def _unavailable(err: Exception) -> StoreError:
    return StoreError(ErrorType.TOOL_TRANSIENT, f"idempotency ledger unavailable: {err}", retryable=True)
