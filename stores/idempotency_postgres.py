"""`IdempotencyLedger` on PostgreSQL: one table shared by every worker on every host, recording what
side-effecting tool activities did, by key.

Invariants: nothing connects until first use; a recorded result is never replaced (first writer wins:
`ON CONFLICT DO NOTHING` on the primary key, then the recorded row is read back); a ledger that cannot be
reached or written raises a retryable `StoreError`, never a miss, since a miss would let a retry repeat
the effect. Entries older than `retention_seconds` (far longer than any activity's retries, measured on
the database's clock) are dropped as new ones are written.
"""

from __future__ import annotations

import psycopg

from contracts.errors import ErrorType
from stores.postgres_conn import DB_NOW, PostgresTables
from stores.protocols import StoreError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS foreman_idempotency (key TEXT PRIMARY KEY, result TEXT NOT NULL, recorded_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS foreman_idempotency_recorded_at ON foreman_idempotency (recorded_at)",
)
_LOCK_ID = 4_673_003  # advisory lock key serialising this table's DDL (any fixed number, one per store)


class PostgresIdempotencyLedger:
    def __init__(self, url: str, retention_seconds: float) -> None:
        self.retention_seconds = retention_seconds
        self._tables = PostgresTables(url, _SCHEMA, _LOCK_ID)

    def get(self, key: str) -> str | None:
        try:
            with self._tables.connect() as connection:
                row = connection.execute("SELECT result FROM foreman_idempotency WHERE key = %s", (key,)).fetchone()
        except (psycopg.Error, OSError) as err:
            raise _unavailable(err) from err
        return row[0] if row else None

    def put(self, key: str, result: str) -> str:
        try:
            with self._tables.connect() as connection:
                connection.execute(
                    f"INSERT INTO foreman_idempotency (key, result, recorded_at) VALUES (%s, %s, {DB_NOW}) ON CONFLICT (key) DO NOTHING",
                    (key, result),
                )
                # Committed rows are never updated, so the row read back is the first writer's, whoever that was.
                (recorded,) = connection.execute("SELECT result FROM foreman_idempotency WHERE key = %s", (key,)).fetchone()
                # SKIP LOCKED: workers cleaning up at the same moment never wait on (or deadlock over) each other's rows.
                connection.execute(
                    "DELETE FROM foreman_idempotency WHERE key IN (SELECT key FROM foreman_idempotency"
                    f" WHERE recorded_at < {DB_NOW} - %s FOR UPDATE SKIP LOCKED)",
                    (self.retention_seconds,),
                )
        except (psycopg.Error, OSError) as err:
            raise _unavailable(err) from err
        return recorded


def _unavailable(err: Exception) -> StoreError:
    return StoreError(ErrorType.TOOL_TRANSIENT, f"idempotency ledger unavailable: {str(err).strip()}", retryable=True)
