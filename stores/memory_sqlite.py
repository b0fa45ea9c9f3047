"""`MemoryStore` on SQLite FTS5 (bm25): long-term memory shared by every worker on a machine.

Invariants: every entry carries its provenance (goal, step, role, namespace, content hash, time, whether
its writer had seen untrusted content); a recall sees only its own namespace and role; queries are reduced
to quoted words (`fts_query`), so no input is an FTS5 syntax error. Nothing is opened until first use.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

from core.hashing import sha256_text
from stores.corpus_sqlite import fts_query
from stores.protocols import MemoryEntry
from stores.sqlite_conn import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, topic TEXT NOT NULL,
    workflow_id TEXT NOT NULL, step_id TEXT NOT NULL, content_sha256 TEXT NOT NULL, created_at REAL NOT NULL,
    untrusted INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(topic, text, tokenize = 'porter unicode61');
CREATE TABLE IF NOT EXISTS memory_keys (idem_key TEXT PRIMARY KEY, entry_id INTEGER NOT NULL);
"""
_COLUMNS = "m.id, m.namespace, m.role, m.text, m.topic, m.workflow_id, m.step_id, m.content_sha256, m.created_at, m.untrusted"


class SqliteMemoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = SqliteFile(path, _SCHEMA)

    def remember(self, namespace: str, role: str, text: str, topic: str, workflow_id: str, step_id: str, untrusted: bool,
                 key: str | None = None) -> MemoryEntry:
        entry = MemoryEntry(0, namespace, role, text, topic, workflow_id, step_id, sha256_text(text), time.time(), untrusted)
        connection = self._file.connect()
        try:
            connection.execute("BEGIN IMMEDIATE")  # if this fails there is no transaction to roll back
        except BaseException:
            connection.close()
            raise
        try:
            # The entry and its key commit together: a retried call with the key gets the entry it wrote, never a second.
            kept = connection.execute(
                f"SELECT {_COLUMNS} FROM memory_keys k JOIN memories m ON m.id = k.entry_id WHERE k.idem_key = ?", (key,),
            ).fetchone() if key else None
            if kept is not None:
                connection.execute("COMMIT")
                return MemoryEntry(*kept[:9], bool(kept[9]))
            cursor = connection.execute(
                "INSERT INTO memories (namespace, role, text, topic, workflow_id, step_id, content_sha256, created_at, untrusted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (namespace, role, text, topic, workflow_id, step_id, entry.content_sha256, entry.created_at, int(untrusted)),
            )
            entry_id = cursor.lastrowid
            connection.execute("INSERT INTO memories_fts (rowid, topic, text) VALUES (?, ?, ?)", (entry_id, topic, text))
            if key:
                connection.execute("INSERT INTO memory_keys (idem_key, entry_id) VALUES (?, ?)", (key, entry_id))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()
        return MemoryEntry(**{**entry.__dict__, "entry_id": entry_id})

    def recall(self, namespace: str, role: str, query: str, limit: int) -> list[MemoryEntry]:
        match = fts_query(query)
        if match is None:
            return []
        with closing(self._file.connect()) as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS}, bm25(memories_fts) AS score FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid"
                " WHERE memories_fts MATCH ? AND m.namespace = ? AND m.role = ? ORDER BY score LIMIT ?",
                (match, namespace, role, limit),
            ).fetchall()
        return [MemoryEntry(*row[:9], bool(row[9]), score=row[10]) for row in rows]
