"""Worker-side stores: one small `Protocol` each (`stores.protocols`), backends in their own modules,
bundled as `Stores` and built from settings in one place, `from_settings()`.

Invariants: importing this package does no I/O and keeps no "current" store; a backend opens nothing
until it is first used. The worker builds one `Stores` and hands it to the activities that need it
(constructor injection); tests build theirs over tmp_path. A configuration that names no usable backend
is a `StoreError(STORE_CONFIG)` when the stores are built, before a worker takes any task.
"""

from __future__ import annotations

from dataclasses import dataclass

import settings
from contracts.errors import ErrorType
from stores.cache_sqlite import SqliteCallCache
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from stores.memory_sqlite import SqliteMemoryStore
from stores.protocols import CallCache, ContentStore, CorpusIndex, IdempotencyLedger, MemoryStore, SqlDatabase, StoreError, Workspace
from stores.workspace_files import LocalWorkspace

__all__ = [
    "CallCache", "ContentStore", "IdempotencyLedger", "MemoryStore", "CorpusIndex", "SqlDatabase", "StoreError", "Stores", "Workspace",
    "from_settings",
]


@dataclass(frozen=True)
class Stores:
    """Every store an activity may receive."""

    content: ContentStore
    workspace: Workspace
    corpus: CorpusIndex
    database: SqlDatabase
    memory: MemoryStore
    cache: CallCache | None = None  # None: no call cache (FOREMAN_CACHE=off)
    # None: side-effecting tools run without one, so a retried attempt may repeat its effect. `from_settings`
    # always builds one; the default keeps hand-built test stores short.
    ledger: IdempotencyLedger | None = None


def from_settings() -> Stores:
    """The stores the configuration names (backends and paths from `settings`), read now; nothing is opened yet."""
    memory, cache, ledger = _sql_stores()
    return Stores(
        content=_content_store(),
        workspace=LocalWorkspace(settings.workspace_dir()),
        corpus=SqliteCorpusIndex(settings.corpus_dir(), settings.corpus_index_path()),
        database=SqliteDatabase(settings.sql_database_path(), seed=settings.sql_seed_path()),
        memory=memory,
        cache=cache,
        ledger=ledger,
    )


def _misconfigured(message: str) -> StoreError:
    return StoreError(ErrorType.STORE_CONFIG, message)


def _sql_stores() -> tuple[MemoryStore, CallCache | None, IdempotencyLedger]:
    """Long-term memory, the call cache (None when off) and the idempotency ledger, on the configured backend."""
    backend = settings.store_backend()
    ttl = settings.cache_ttl_seconds()
    retention = settings.idempotency_retention_seconds()
    if backend == "sqlite":
        cache = SqliteCallCache(settings.cache_path(), ttl) if settings.cache_enabled() else None
        return SqliteMemoryStore(settings.memory_path()), cache, SqliteIdempotencyLedger(settings.idempotency_path(), retention)
    if backend == "postgres":
        url = settings.database_url()
        if not url:
            raise _misconfigured("FOREMAN_STORE_BACKEND=postgres needs FOREMAN_DATABASE_URL (postgresql://user:password@host:5432/dbname)")
        # Imported only when chosen: workers on the default backends never load psycopg.
        from stores.cache_postgres import PostgresCallCache
        from stores.idempotency_postgres import PostgresIdempotencyLedger
        from stores.memory_postgres import PostgresMemoryStore

        cache = PostgresCallCache(url, ttl) if settings.cache_enabled() else None
        return PostgresMemoryStore(url), cache, PostgresIdempotencyLedger(url, retention)
    raise _misconfigured(f"FOREMAN_STORE_BACKEND must be one of {', '.join(settings.STORE_BACKENDS)}, not {backend!r}")


def _content_store() -> ContentStore:
    backend = settings.content_backend()
    if backend == "files":
        return FileContentStore(settings.content_store_dir())
    if backend == "s3":
        location = settings.s3_location()
        if not location.bucket:
            raise _misconfigured("FOREMAN_CONTENT_BACKEND=s3 needs FOREMAN_S3_BUCKET (and FOREMAN_S3_ENDPOINT unless it is AWS S3)")
        # Imported only when chosen: boto3 takes a tenth of a second to import and file-store workers never need it.
        from stores.content_s3 import S3ContentStore

        return S3ContentStore(location.bucket, endpoint_url=location.endpoint_url, prefix=location.prefix, region=location.region)
    raise _misconfigured(f"FOREMAN_CONTENT_BACKEND must be one of {', '.join(settings.CONTENT_BACKENDS)}, not {backend!r}")
