"""`sql_query`: one read-only SELECT/WITH statement against the `SqlDatabase` passed in.

Invariants: the statement is checked here first (exactly one statement, starting with a read-only
keyword; `core.sql`, the same scanner the policy gate uses), and the store then runs it read-only
whatever it says (so `WITH ... DELETE` fails even past this check), with bound parameters, under a time
limit. This activity turns the rows into a compact table. Blocking store calls run in a thread.
"""

from __future__ import annotations

from activities.content_store import tool_result
from activities.tools.registry import run_store, tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import SqlQueryArgs, ToolResult
from core.sql import READ_FIRST_WORDS, SqlRejected, first_keyword, single_statement
from stores.protocols import ContentStore, QueryRows, SqlDatabase

MAX_CELL_CHARS = 500


def read_only_statement(sql: str) -> str:
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


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + "…"


def format_table(result: QueryRows, max_rows: int) -> str:
    """A compact pipe-separated table: header line, one line per row, then a row-count footer."""
    lines = [" | ".join(result.columns)]
    lines += [" | ".join(_cell(v) for v in row) for row in result.rows]
    footer = f"({len(result.rows)} rows" + (f"; stopped at max_rows={max_rows}, more rows exist)" if result.more else ")")
    return "\n".join([*lines, footer])


class SqlTools:
    """`sql_query`, bound to one database and one content store."""

    def __init__(self, database: SqlDatabase, content: ContentStore) -> None:
        self._database = database
        self._content = content

    @tool_activity("sql_query")
    async def sql_query(self, args: SqlQueryArgs) -> ToolResult:
        """Run one read-only SQL query (SELECT or WITH) on the SQLite database; returns a pipe-separated table."""
        statement = read_only_statement(args.sql)
        result = await run_store(self._database.query, statement, list(args.params), args.max_rows)
        return tool_result(self._content, "sql_query", format_table(result, args.max_rows))
