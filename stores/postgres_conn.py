"""What the PostgreSQL backends share: the database URL checked when a store is built, a connection per
call, and each store's schema created once per process.

Invariants: building a store parses the URL and connects to nothing; the first call connects and creates
the store's tables under a transaction-scoped advisory lock, because `CREATE ... IF NOT EXISTS` is not
atomic in PostgreSQL and workers on several hosts may start together. A connection lives for one call:
calls are few (one per model call or memory tool call) and a worker's threads then never share one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
from psycopg import conninfo

from contracts.errors import ErrorType
from stores.protocols import StoreError

# An unreachable database should cost a call seconds, not the OS's TCP timeout (minutes).
CONNECT_TIMEOUT_SECONDS = 5
# The database's clock in seconds since the epoch, for SQL text: what expires or ages out is decided on one
# clock, so workers whose clocks disagree still agree.
DB_NOW = "extract(epoch FROM clock_timestamp())"


def checked_conninfo(url: str) -> str:
    """`url` as a libpq connection string with a connect timeout unless it names one; StoreError when unparsable."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # `from None`: libpq's message can quote the URL, password included.
        raise StoreError(
            ErrorType.STORE_CONFIG,
            "FOREMAN_DATABASE_URL is not a PostgreSQL URL or conninfo string (postgresql://user:password@host:5432/dbname)",
        ) from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return conninfo.make_conninfo(**params)


class PostgresTables:
    """Connections to one database, whose first use creates `schema` (idempotent statements) under `lock_id`."""

    def __init__(self, url: str, schema: Sequence[str], lock_id: int) -> None:
        self.conninfo = checked_conninfo(url)
        self._schema = tuple(schema)
        self._lock_id = lock_id
        self._lock = threading.Lock()
        self._ready = False

    def connect(self) -> psycopg.Connection:
        """An autocommit connection (the caller closes it), with the schema in place."""
        connection = psycopg.connect(self.conninfo, autocommit=True)
        try:
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        with connection.transaction():
                            connection.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
                            for statement in self._schema:
                                connection.execute(statement)
                        self._ready = True
        except BaseException:
            connection.close()
            raise
        return connection
