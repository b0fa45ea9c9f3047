"""`sql_query`: one read-only SELECT/WITH statement against the SQLite database at
`settings.sql_database_path()`.

Invariants: the database is opened read-only (URI `mode=ro`, plus `query_only` and an authorizer
that permits reads only), so a statement cannot write even if it gets past the keyword check
(e.g. `WITH ... DELETE`). Exactly one statement runs, with bound parameters, in a worker thread,
under a time limit enforced by SQLite's progress handler. The demo database is built from
`demo/seed.sql` on first use; no binary database is kept in the repository.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import settings
from activities.content_store import tool_result
from activities.tools.registry import tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import SqlQueryArgs, ToolResult
from core.sql import READ_FIRST_WORDS, SqlRejected, first_keyword, single_statement

DEMO_DATABASE_PATH = settings.PROJECT_ROOT / "demo" / "demo.sqlite"
DEMO_SEED_PATH = settings.PROJECT_ROOT / "demo" / "seed.sql"
QUERY_SECONDS = 20.0
MAX_CELL_CHARS = 500
# Authorizer actions a read-only query legitimately needs; everything else is denied.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def ensure_demo_database(path: Path, seed: Path = DEMO_SEED_PATH) -> None:
    """Build the demo database at `path` from `seed` if it is missing (atomically, race-safe)."""
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


def _statement(sql: str) -> str:
    """The one read-only statement in `sql`, or a typed ToolArgumentsInvalid error."""
    try:
        statement = single_statement(sql)
    except SqlRejected as exc:
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, str(exc)) from exc
    first = first_keyword(statement)
    if first not in READ_FIRST_WORDS:
        raise tool_error(
            ErrorType.TOOL_ARGUMENTS_INVALID,
            f"only read-only SELECT or WITH queries are allowed, not {first or statement[:20]!r}",
        )
    return statement


def _authorize(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + "…"


def format_table(columns: list[str], rows: list[tuple], more: bool, max_rows: int) -> str:
    """A compact pipe-separated table: header line, one line per row, then a row-count footer."""
    lines = [" | ".join(columns)]
    lines += [" | ".join(_cell(v) for v in row) for row in rows]
    footer = f"({len(rows)} rows" + (f"; stopped at max_rows={max_rows}, more rows exist)" if more else ")")
    return "\n".join([*lines, footer])


def _table_names(connection: sqlite3.Connection) -> str:
    names = [r[0] for r in connection.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")]
    return ", ".join(names) or "none"


def _run(path: Path, statement: str, params: list, max_rows: int) -> str:
    # as_uri() percent-encodes the path, so odd characters cannot inject URI parameters.
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        connection.execute("PRAGMA query_only = ON")
        deadline = time.monotonic() + QUERY_SECONDS
        # Returning non-zero aborts the statement: bounds runaway queries a thread cannot be cancelled out of.
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        tables = _table_names(connection)
        connection.set_authorizer(_authorize)
        try:
            cursor = connection.execute(statement, params)
            rows = cursor.fetchmany(max_rows + 1)
        except sqlite3.Error as exc:
            message = str(exc)
            if "locked" in message or "busy" in message:
                raise tool_error(ErrorType.TOOL_TRANSIENT, f"database busy: {message}", retryable=True) from exc
            if "interrupted" in message:
                raise tool_error(ErrorType.TOOL_FAILED, f"query exceeded {QUERY_SECONDS:.0f} s and was stopped") from exc
            if "not authorized" in message or "readonly" in message:
                message = "the statement tries to do more than read (only read-only queries are allowed)"
            raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, f"SQL error: {message.rstrip('.')}. Tables: {tables}") from exc
        columns = [d[0] for d in cursor.description or []]
        more = len(rows) > max_rows
        return format_table(columns, rows[:max_rows], more, max_rows)
    finally:
        connection.close()


def _query(args: SqlQueryArgs) -> str:
    statement = _statement(args.sql)
    path = settings.sql_database_path()
    if not path.exists() and path == DEMO_DATABASE_PATH.resolve():
        ensure_demo_database(path)
    if not path.is_file():
        raise tool_error(ErrorType.TOOL_FAILED, f"database not found: {path.name}")
    return _run(path, statement, list(args.params), args.max_rows)


@tool_activity("sql_query")
async def sql_query(args: SqlQueryArgs) -> ToolResult:
    """Run one read-only SQL query (SELECT or WITH) on the SQLite database; returns a pipe-separated table."""
    return tool_result("sql_query", await asyncio.to_thread(_query, args))
