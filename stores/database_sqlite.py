"""`SqlDatabase` on a SQLite file, opened read-only for every query.

Invariants: the file is opened read-only (URI `mode=ro`, plus `query_only` and an authorizer that
permits reads only), so a statement cannot write even if it gets past the caller's keyword check
(e.g. `WITH ... DELETE`). One statement runs, with bound parameters, under a time limit enforced by
SQLite's progress handler. A store given a `seed` builds a missing database from that SQL script
first (atomically, race-safe); one without a seed never creates a file. Nothing is opened until the
first query.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

from contracts.errors import ErrorType
from stores.protocols import QueryRows, StoreError

QUERY_SECONDS = 20.0
# Authorizer actions a read-only query legitimately needs; everything else is denied.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def ensure_database(path: Path, seed: Path) -> None:
    """Build the database at `path` from the SQL script `seed` if it is missing (atomically, race-safe)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sqlite")
    os.close(fd)
    try:
        connection = sqlite3.connect(tmp)
        try:
            connection.executescript(seed.read_text(encoding="utf-8"))
        finally:
            connection.close()
        # Concurrent builders each replace with identical content; readers never see a partial file.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _authorize(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _table_names(connection: sqlite3.Connection) -> str:
    names = [r[0] for r in connection.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")]
    return ", ".join(names) or "none"


class SqliteDatabase:
    """Read-only queries against the SQLite file at `path` (built from `seed` when missing, if given)."""

    def __init__(self, path: Path, *, seed: Path | None = None, query_seconds: float = QUERY_SECONDS) -> None:
        self.path = Path(path)
        self.seed = seed
        self.query_seconds = query_seconds

    def query(self, statement: str, params: list[str | int | float | None], max_rows: int) -> QueryRows:
        if self.seed is not None:
            ensure_database(self.path, self.seed)
        if not self.path.is_file():
            raise StoreError(ErrorType.TOOL_FAILED, f"database not found: {self.path.name}")
        # as_uri() percent-encodes the path, so odd characters cannot inject URI parameters.
        connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            connection.execute("PRAGMA query_only = ON")
            deadline = time.monotonic() + self.query_seconds
            # Returning non-zero aborts the statement: bounds runaway queries a thread cannot be cancelled out of.
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            tables = _table_names(connection)
            connection.set_authorizer(_authorize)
            try:
                cursor = connection.execute(statement, params)
                rows = cursor.fetchmany(max_rows + 1)
            except sqlite3.Error as exc:
                raise self._error(exc, tables) from exc
            columns = [d[0] for d in cursor.description or []]
            return QueryRows(columns=columns, rows=rows[:max_rows], more=len(rows) > max_rows)
        finally:
            connection.close()

    def _error(self, exc: sqlite3.Error, tables: str) -> StoreError:
        message = str(exc)
        if "locked" in message or "busy" in message:
            return StoreError(ErrorType.TOOL_TRANSIENT, f"database busy: {message}", retryable=True)
        if "interrupted" in message:
            return StoreError(ErrorType.TOOL_FAILED, f"query exceeded {self.query_seconds:.0f} s and was stopped")
        if "not authorized" in message or "readonly" in message:
            message = "the statement tries to do more than read (only read-only queries are allowed)"
        # The table names help the model write a valid query next time.
        return StoreError(ErrorType.TOOL_ARGUMENTS_INVALID, f"SQL error: {message.rstrip('.')}. Tables: {tables}")
