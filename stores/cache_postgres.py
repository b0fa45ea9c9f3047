"""`CallCache` on PostgreSQL: one table shared by every worker on every host; entries expire after
`ttl_seconds`; expired rows are dropped as new ones are written.

Invariants: nothing connects until first use; a cache that cannot be read or written is a miss (the
call is simply made), never a failed call. Expiry is measured on the database's clock, so workers whose
clocks disagree still agree on what has expired.
"""

from __future__ import annotations

import logging

import psycopg

from stores.postgres_conn import DB_NOW, PostgresTables

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS foreman_call_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS foreman_call_cache_expires ON foreman_call_cache (expires)",
)
_LOCK_ID = 4_673_001  # advisory lock key serialising this table's DDL (any fixed number, one per store)


class PostgresCallCache:
    def __init__(self, url: str, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._tables = PostgresTables(url, _SCHEMA, _LOCK_ID)

    def get(self, key: str) -> str | None:
        try:
            with self._tables.connect() as connection:
                row = connection.execute(f"SELECT value FROM foreman_call_cache WHERE key = %s AND expires > {DB_NOW}", (key,)).fetchone()
        except (psycopg.Error, OSError) as err:
            log.warning("call cache unreadable (%s): treated as a miss", err)
            return None
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        try:
            with self._tables.connect() as connection:
                connection.execute(
                    f"INSERT INTO foreman_call_cache (key, value, expires) VALUES (%s, %s, {DB_NOW} + %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires",
                    (key, value, self.ttl_seconds),
                )
                # SKIP LOCKED: workers cleaning up at the same moment never wait on (or deadlock over) each other's rows.
                connection.execute(
                    "DELETE FROM foreman_call_cache WHERE key IN"
                    f" (SELECT key FROM foreman_call_cache WHERE expires <= {DB_NOW} FOR UPDATE SKIP LOCKED)"
                )
        except (psycopg.Error, OSError) as err:
            log.warning("call cache unwritable (%s): result not cached", err)
