"""Worker-side stores: one small `Protocol` each (`stores.protocols`), backends in their own modules,
bundled as `Stores` and built from settings in one place, `from_settings()`.

Invariants: importing this package does no I/O and keeps no "current" store; a backend opens nothing
until it is first used. The worker builds one `Stores` and hands it to the activities that need it
(constructor injection); tests build theirs over tmp_path.
"""

from __future__ import annotations

from dataclasses import dataclass

import settings
from stores.cache_sqlite import SqliteCallCache
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from stores.memory_sqlite import SqliteMemoryStore
from stores.protocols import CallCache, ContentStore, CorpusIndex, MemoryStore, SqlDatabase, StoreError, Workspace
from stores.workspace_files import LocalWorkspace

__all__ = ["CallCache", "ContentStore", "MemoryStore", "CorpusIndex", "SqlDatabase", "StoreError", "Stores", "Workspace", "from_settings"]


@dataclass(frozen=True)
class Stores:
    """Every store an activity may receive."""

    content: ContentStore
    workspace: Workspace
    corpus: CorpusIndex
    database: SqlDatabase
    memory: MemoryStore
    cache: CallCache | None = None  # None: no call cache (FOREMAN_CACHE=off)


def from_settings() -> Stores:
    """The stores the configuration names (paths from `settings`), read now; nothing is opened yet."""
    return Stores(
        content=FileContentStore(settings.content_store_dir()),
        workspace=LocalWorkspace(settings.workspace_dir()),
        corpus=SqliteCorpusIndex(settings.corpus_dir(), settings.corpus_index_path()),
        database=SqliteDatabase(settings.sql_database_path(), seed=settings.sql_seed_path()),
        memory=SqliteMemoryStore(settings.memory_path()),
        cache=SqliteCallCache(settings.cache_path(), settings.cache_ttl_seconds()) if settings.cache_enabled() else None,
    )
