"""`MemoryStore` on PostgreSQL full-text search: long-term memory shared by every worker on every host.

Invariants: the same entries as `SqliteMemoryStore` (provenance: goal, step, role, namespace, content hash,
time, whether its writer had seen untrusted content); a recall sees only its own namespace and role;
matches are ranked by `ts_rank` over topic and text (English stemming, as FTS5's porter tokenizer), and
`score` is the negated rank so that, as with bm25, lower is better. Queries are reduced to quoted words
(`query_words`), so no input is a tsquery syntax error. Nothing connects until first use; a database
that cannot be reached is a retryable `StoreError`.
"""

from __future__ import annotations

import time

import psycopg

from contracts.errors import ErrorType
from core.hashing import sha256_text
from stores.corpus_sqlite import query_words
from stores.postgres_conn import PostgresTables
from stores.protocols import MemoryEntry, StoreError

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS foreman_memories (
        id BIGSERIAL PRIMARY KEY, namespace TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, topic TEXT NOT NULL,
        workflow_id TEXT NOT NULL, step_id TEXT NOT NULL, content_sha256 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        untrusted BOOLEAN NOT NULL,
        search TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', topic || ' ' || text)) STORED
    )""",
    "CREATE INDEX IF NOT EXISTS foreman_memories_search ON foreman_memories USING GIN (search)",
    "CREATE INDEX IF NOT EXISTS foreman_memories_scope ON foreman_memories (namespace, role)",
    "CREATE TABLE IF NOT EXISTS foreman_memory_keys (idem_key TEXT PRIMARY KEY, entry_id BIGINT NOT NULL)",
)
_LOCK_ID = 4_673_002  # advisory lock key serialising this table's DDL (any fixed number, one per store)
_COLUMNS = "id, namespace, role, text, topic, workflow_id, step_id, content_sha256, created_at, untrusted"


def tsquery(text: str) -> str | None:
    """A tsquery matching any word of `text` (each quoted, OR-ed); None when the text has no words."""
    # A word matches \w+, so it holds no quote or backslash and cannot break out of its quotes.
    return " | ".join(f"'{w}'" for w in query_words(text)) or None


class PostgresMemoryStore:
    def __init__(self, url: str) -> None:
        self._tables = PostgresTables(url, _SCHEMA, _LOCK_ID)

    def remember(self, namespace: str, role: str, text: str, topic: str, workflow_id: str, step_id: str, untrusted: bool,
                 key: str | None = None) -> MemoryEntry:
        entry = MemoryEntry(0, namespace, role, text, topic, workflow_id, step_id, sha256_text(text), time.time(), untrusted)
        try:
            # One transaction: the row (its search vector is a generated column) and its key commit together, so a
            # retried call with the key gets the entry it wrote; two overlapping attempts: one fails on the key, retries.
            with self._tables.connect() as connection, connection.transaction():
                kept = connection.execute(
                    f"SELECT {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM foreman_memory_keys k"
                    " JOIN foreman_memories m ON m.id = k.entry_id WHERE k.idem_key = %s", (key,),
                ).fetchone() if key else None
                if kept is not None:
                    return MemoryEntry(*kept[:9], bool(kept[9]))
                (entry_id,) = connection.execute(
                    "INSERT INTO foreman_memories (namespace, role, text, topic, workflow_id, step_id, content_sha256, created_at, untrusted)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (namespace, role, text, topic, workflow_id, step_id, entry.content_sha256, entry.created_at, untrusted),
                ).fetchone()
                if key:
                    connection.execute("INSERT INTO foreman_memory_keys (idem_key, entry_id) VALUES (%s, %s)", (key, entry_id))
        except psycopg.errors.UniqueViolation as err:
            raise StoreError(ErrorType.TOOL_TRANSIENT, f"memory {key} is being written by another attempt: try again", retryable=True) from err
        except psycopg.OperationalError as err:
            raise _unavailable(err) from err
        return MemoryEntry(**{**entry.__dict__, "entry_id": entry_id})

    def recall(self, namespace: str, role: str, query: str, limit: int) -> list[MemoryEntry]:
        match = tsquery(query)
        if match is None:
            return []
        try:
            with self._tables.connect() as connection:
                rows = connection.execute(
                    f"SELECT {_COLUMNS}, -ts_rank(search, query, 1) AS score FROM foreman_memories, to_tsquery('english', %s) AS query"
                    " WHERE search @@ query AND namespace = %s AND role = %s ORDER BY score, id LIMIT %s",
                    (match, namespace, role, limit),
                ).fetchall()
        except psycopg.OperationalError as err:
            raise _unavailable(err) from err
        return [MemoryEntry(*row[:9], bool(row[9]), score=row[10]) for row in rows]


def _unavailable(err: psycopg.OperationalError) -> StoreError:
    return StoreError(ErrorType.TOOL_TRANSIENT, f"memory store unavailable: {str(err).strip()}", retryable=True)
