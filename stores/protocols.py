"""What each worker-side store is, as one small `Protocol`, plus the plain values they return.

Invariants: activities depend on these protocols only, never on a backend module or a path; a store
reports a refusal as `StoreError` carrying the `ErrorType` the caller surfaces (the tool layer turns it
into a typed Temporal failure), and anything else it raises is a bug or an I/O fault. Store methods are
blocking: callers in async code run them in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from contracts.errors import ErrorType


class StoreError(Exception):
    """A typed refusal or failure (path outside the workspace, file missing, database busy...)."""

    def __init__(self, error_type: ErrorType, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable


@runtime_checkable
class ContentStore(Protocol):
    """Content-addressed text: the same text always gets the same reference."""

    def put(self, text: str) -> str:
        """Store `text`; return its reference (`sha256:<hex>`)."""
        ...

    def get(self, ref: str) -> str:
        """The text stored under `ref`; raises KeyError when absent."""
        ...


@dataclass(frozen=True)
class WrittenFile:
    """What a workspace write did: the path as stored (workspace-relative, POSIX), size and SHA-256."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class FileListing:
    """Files under a folder: (workspace-relative path, size in bytes), sorted; `more` when cut at the limit."""

    folder: str
    files: list[tuple[str, int]] = field(default_factory=list)
    more: bool = False


@runtime_checkable
class Workspace(Protocol):
    """The files agents may read and write; every path is relative to the workspace and stays inside it."""

    def resolve(self, path: str) -> str:
        """The canonical workspace-relative form of `path`; StoreError(PATH_OUTSIDE_WORKSPACE) if it leaves."""
        ...

    def read_text(self, path: str) -> str:
        """A UTF-8 text file's content."""
        ...

    def write_text(self, path: str, content: str) -> WrittenFile:
        """Replace (or create) a file atomically, creating parent folders."""
        ...

    def list_files(self, path: str, limit: int) -> FileListing:
        """Files under the folder `path`, recursively, at most `limit`."""
        ...

    def export(self, dest: str, max_bytes: int) -> int:
        """Copy the workspace into the empty folder `dest` (a sandbox's scratch copy) without following any symlink:
        regular files are copied, symlinks recreated as they are, anything else left out; returns the bytes copied.
        StoreError(TOOL_FAILED) when the files pass `max_bytes`."""
        ...


@dataclass(frozen=True)
class CorpusHit:
    """One search hit: the document's corpus-relative path, title, bm25 score (lower is better), snippet."""

    path: str
    title: str
    score: float
    snippet: str


@dataclass(frozen=True)
class IndexChanges:
    """What bringing the index up to date changed (all zero when nothing did)."""

    added: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True)
class CorpusSearch:
    """Hits in rank order, and what was re-indexed before searching."""

    hits: list[CorpusHit]
    reindexed: IndexChanges = IndexChanges()


@runtime_checkable
class CorpusIndex(Protocol):
    """Full-text search over the document corpus, always over its current content."""

    def search(self, query: str, limit: int) -> CorpusSearch:
        ...


@dataclass(frozen=True)
class QueryRows:
    """A read-only query's result: column names, at most `max_rows` rows, `more` when rows were left out."""

    columns: list[str]
    rows: list[tuple]
    more: bool = False


@runtime_checkable
class SqlDatabase(Protocol):
    """A database that answers read-only queries; it refuses anything that would write."""

    def query(self, statement: str, params: list[str | int | float | None], max_rows: int) -> QueryRows:
        ...


@runtime_checkable
class CallCache(Protocol):
    """Results of calls worth not paying for twice (model calls), by content key; entries expire."""

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None when absent or expired."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store `value` under `key` (replacing any older value), for the cache's time to live."""
        ...


@dataclass(frozen=True)
class MemoryEntry:
    """One long-term memory with its provenance: which goal and step wrote it, when, its hash, and whether
    the writing step had seen untrusted content."""

    entry_id: int
    namespace: str
    role: str
    text: str
    topic: str
    workflow_id: str
    step_id: str
    content_sha256: str
    created_at: float
    untrusted: bool
    score: float = 0.0


@runtime_checkable
class MemoryStore(Protocol):
    """Long-term memory across goals, scoped per namespace and per role."""

    def remember(self, namespace: str, role: str, text: str, topic: str, workflow_id: str, step_id: str, untrusted: bool,
                 key: str | None = None) -> MemoryEntry:
        """Keep an entry; with `key` (the call's idempotency key), a second call with the same key returns the first
        entry and writes nothing (the entry and its key commit together)."""
        ...

    def recall(self, namespace: str, role: str, query: str, limit: int) -> list[MemoryEntry]:
        """The best matches (bm25) in this namespace and role only."""
        ...


@runtime_checkable
class IdempotencyLedger(Protocol):
    """What side-effecting tool calls already did, by idempotency key (the call's place in its goal and its
    action, stamped by the workflow, see `core.idempotency`): a retried attempt finds the first attempt's
    result and returns it instead of doing the effect again.

    Unlike the call cache, a ledger that cannot be read is never a miss: treating it as one could repeat an
    effect, so `get` and `put` raise a retryable `StoreError(TOOL_TRANSIENT)` and the attempt is tried later.

    What it guarantees: once a result is recorded under a key, every later `get` (from any worker sharing
    the ledger) returns it, and it is never replaced (first writer wins: a later `put` returns the recorded
    result, not its own). What it cannot: the effect and the record are two steps, so an attempt that dies
    between them leaves nothing recorded, and two attempts that overlap before either records (a timed-out
    attempt still running beside its retry) both see nothing; both then do the effect, and both return
    the first recorded result.
    """

    def get(self, key: str) -> str | None:
        """The result recorded under `key`, or None when none is."""
        ...

    def put(self, key: str, result: str) -> str:
        """Record `result` under `key` unless one is recorded already; return the one recorded (first writer wins)."""
        ...
