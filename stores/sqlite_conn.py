"""What the SQLite stores that workers share share: one file per store under FOREMAN_HOME, a connection per
call, WAL and the store's schema set up once per process.

Invariants: building a store opens nothing; the first connection creates the folder, switches the file to
WAL (readers never wait on a writer, and the mode persists in the file) and runs the store's schema
(idempotent statements). Connections are in autocommit mode and wait up to `timeout_seconds` for a
writer's lock; the caller closes them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class SqliteFile:
    """Connections to the SQLite file `path`, whose first use creates `schema` (a script of idempotent statements)."""

    def __init__(self, path: Path, schema: str, timeout_seconds: float = 30.0) -> None:
        self.path = path
        self._schema = schema
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._ready = False

    def connect(self) -> sqlite3.Connection:
        """An autocommit connection (the caller closes it), with WAL and the schema in place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        try:
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        self._set_up(connection)
                        self._ready = True
        except BaseException:
            connection.close()
            raise
        return connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs it to itself and answers "locked" at once (no busy wait) while another
        # process's first connection does the same: try again for a while rather than fail a store call.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(self._schema)
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
