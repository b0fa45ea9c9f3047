"""One SQL scanner for the policy gate (`sql_not_select`) and the `sql_query` tool.

Scanned left to right, so a `--` inside a string is not a comment, a `'` inside a comment is not a
string, `''` inside a string is an escaped quote and a `;` inside a literal does not end a statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

Kind = Literal["code", "quoted", "comment"]

_QUOTE_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}
_WRITE_KEYWORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|REPLACE|UPSERT|DROP|ALTER|CREATE|ATTACH|DETACH|PRAGMA|VACUUM|REINDEX|TRUNCATE|GRANT|REVOKE)\b",
    re.IGNORECASE,
)
READ_FIRST_WORDS = frozenset({"SELECT", "WITH"})


class SqlRejected(ValueError):
    """The text is not exactly one statement (empty, or more than one)."""


def spans(sql: str) -> Iterator[tuple[Kind, int, int]]:
    """(kind, start, end) for consecutive pieces of `sql`; an unterminated literal or comment runs to the end."""
    i = start = 0
    while i < len(sql):
        char = sql[i]
        if char in _QUOTE_CLOSERS or sql.startswith(("--", "/*"), i):
            if start < i:
                yield "code", start, i
            if char in _QUOTE_CLOSERS:
                end = sql.find(_QUOTE_CLOSERS[char], i + 1)
                while end != -1 and char == "'" and sql.startswith("''", end):
                    end = sql.find("'", end + 2)  # '' is an escaped quote inside a string
                kind: Kind = "quoted"
                stop = len(sql) if end == -1 else end + 1
            elif sql.startswith("--", i):
                end = sql.find("\n", i)
                kind, stop = "comment", len(sql) if end == -1 else end + 1
            else:
                end = sql.find("*/", i + 2)
                kind, stop = "comment", len(sql) if end == -1 else end + 2
            yield kind, i, stop
            i = start = stop
        else:
            i += 1
    if start < len(sql):
        yield "code", start, len(sql)


def sql_code(sql: str) -> str:
    """The SQL with literals and quoted names replaced by `_` and comments by spaces: what the keywords are."""
    parts = {"code": None, "quoted": " _ ", "comment": " "}
    return "".join(parts[kind] or sql[start:end] for kind, start, end in spans(sql))


def single_statement(sql: str) -> str:
    """The one statement in `sql`, without leading comments or a trailing `;`; SqlRejected otherwise."""
    pieces = list(spans(sql))
    first = next((start + len(sql[start:end]) - len(sql[start:end].lstrip())
                  for kind, start, end in pieces if kind != "comment" and sql[start:end].strip()), None)
    stop = next((start + sql[start:end].index(";") for kind, start, end in pieces
                 if kind == "code" and ";" in sql[start:end]), len(sql))
    if first is None or first >= stop:
        raise SqlRejected("the SQL statement is empty")
    if sql_code(sql[stop + 1 :]).replace(";", " ").strip():
        raise SqlRejected("only one SQL statement is allowed per call")
    return sql[first:stop]


def first_keyword(sql: str) -> str:
    """The statement's first word in upper case ('' if it starts with something else)."""
    match = re.match(r"\s*\(*\s*([A-Za-z]+)", sql_code(sql))
    return match.group(1).upper() if match else ""


def sql_is_plain_select(sql: str) -> bool:
    """True only for one statement that starts with SELECT/WITH and names no writing keyword anywhere.

    Deliberately conservative: a SELECT that names a writing keyword outside literals (say the function
    `replace(...)`) is gated too (a human looks at it) rather than letting `WITH x AS (...) DELETE ...` or
    `SELECT 1; DROP ...` through. A keyword inside a string literal or quoted name is data.
    """
    text = sql_code(sql).strip().rstrip(";").strip()
    return first_keyword(text) in READ_FIRST_WORDS and ";" not in text and not _WRITE_KEYWORDS.search(text)
