"""`search_corpus`: bm25-ranked full-text search over the .md/.txt files in `settings.corpus_dir()`.

Invariants: the SQLite FTS5 index at `settings.corpus_index_path()` is brought up to date before every
search, incrementally (files are tracked by relative path, mtime_ns, size and sha256; only changed ones
are re-read). Index writes happen inside `BEGIN IMMEDIATE`, so concurrent workers serialise on SQLite's
lock and re-check under it; the common "nothing changed" case takes no write lock. Free-text queries are
reduced to quoted word tokens joined with OR, so no input can produce an FTS5 syntax error.
Each hit is printed with a `[source: <relative path>]` line the model can cite verbatim.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

import settings
from activities.content_store import tool_result
from activities.tools.registry import tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import SearchCorpusArgs, ToolResult
from core.hashing import sha256_bytes

SUFFIXES = {".md", ".txt"}
MAX_FILE_BYTES = 5_000_000
MAX_QUERY_TOKENS = 32
SNIPPET_TOKENS = 32
# bm25 column weights for (path, title, body): a title match counts double.
_WEIGHTS = (0.0, 2.0, 1.0)
# Dropped from queries (unless nothing else is left) so OR-ing them does not match every document.
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how in is it its of on or that the this to was what when "
    "where which who why will with".split()
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, title TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(path UNINDEXED, title, body, tokenize = 'porter unicode61');
"""


@dataclass(frozen=True)
class SyncStats:
    added: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def _scan(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (mtime_ns, size) for every indexable file, skipping hidden files and folders."""
    found: dict[str, tuple[int, int]] = {}
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.suffix.lower() not in SUFFIXES or any(part.startswith(".") for part in relative.parts):
            continue
        try:
            if not path.is_file():
                continue
            stat = path.stat()
        except OSError:
            continue  # deleted between listing and stat
        if stat.st_size <= MAX_FILE_BYTES:
            found[relative.as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return found


def title_of(text: str, fallback: str) -> str:
    """The first markdown heading, else the first non-empty line, else `fallback`."""
    first_line = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip() or fallback
        if stripped and not first_line:
            first_line = stripped
    return first_line[:120] or fallback


def _connect(index_path: Path) -> sqlite3.Connection:
    index_path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit, so BEGIN IMMEDIATE means what it says.
    connection = sqlite3.connect(index_path, timeout=30.0, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    # WAL lets searches read while another worker re-indexes.
    connection.execute("PRAGMA journal_mode = WAL")
    connection.executescript(_SCHEMA)
    return connection


def _stale(connection: sqlite3.Connection, root: Path, scanned: dict[str, tuple[int, int]]) -> bool:
    row = connection.execute("SELECT value FROM meta WHERE key = 'root'").fetchone()
    if row is None or row[0] != str(root):
        return True
    indexed = {p: (m, s) for p, m, s in connection.execute("SELECT path, mtime_ns, size FROM files")}
    return indexed != scanned


def _apply(connection: sqlite3.Connection, root: Path, scanned: dict[str, tuple[int, int]]) -> SyncStats:
    """Bring the index in line with `scanned`; runs inside the caller's write transaction."""
    row = connection.execute("SELECT value FROM meta WHERE key = 'root'").fetchone()
    if row is None or row[0] != str(root):
        # A different corpus folder: relative paths mean something else now, start over.
        connection.execute("DELETE FROM docs")
        connection.execute("DELETE FROM files")
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('root', ?)", (str(root),))
    indexed = {p: (i, m, s, h) for i, p, m, s, h in connection.execute("SELECT id, path, mtime_ns, size, sha256 FROM files")}
    added = updated = deleted = 0
    for path, (file_id, *_rest) in indexed.items():
        if path not in scanned:
            connection.execute("DELETE FROM docs WHERE rowid = ?", (file_id,))
            connection.execute("DELETE FROM files WHERE id = ?", (file_id,))
            deleted += 1
    for path, (mtime_ns, size) in scanned.items():
        known = indexed.get(path)
        if known and known[1:3] == (mtime_ns, size):
            continue
        try:
            data = (root / path).read_bytes()
        except OSError:
            continue  # vanished since the scan; the next search drops it
        digest = sha256_bytes(data)
        if known and known[3] == digest:
            # Touched but not changed: record the new stat so it is not re-read next time.
            connection.execute("UPDATE files SET mtime_ns = ?, size = ? WHERE id = ?", (mtime_ns, size, known[0]))
            continue
        text = data.decode("utf-8", errors="replace")
        title = title_of(text, Path(path).stem)
        if known:
            connection.execute(
                "UPDATE files SET mtime_ns = ?, size = ?, sha256 = ?, title = ? WHERE id = ?",
                (mtime_ns, size, digest, title, known[0]),
            )
            connection.execute("DELETE FROM docs WHERE rowid = ?", (known[0],))
            file_id = known[0]
            updated += 1
        else:
            file_id = connection.execute(
                "INSERT INTO files (path, mtime_ns, size, sha256, title) VALUES (?, ?, ?, ?, ?)",
                (path, mtime_ns, size, digest, title),
            ).lastrowid
            added += 1
        connection.execute("INSERT INTO docs (rowid, path, title, body) VALUES (?, ?, ?, ?)", (file_id, path, title, text))
    return SyncStats(added, updated, deleted)


@contextmanager
def _index_lock(index_path: Path) -> Iterator[None]:
    """One indexer at a time across threads and processes: SQLite answers "locked" at once (no busy
    wait) when two connections race to create the schema or switch to WAL."""
    index_path.parent.mkdir(parents=True, exist_ok=True)
    with open(index_path.with_name(index_path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync_index(root: Path, index_path: Path) -> SyncStats:
    """Incrementally re-index `root` into `index_path`; safe to call from several workers at once."""
    with _index_lock(index_path):
        return _sync_locked(root, index_path)


def _sync_locked(root: Path, index_path: Path) -> SyncStats:
    scanned = _scan(root)
    connection = _connect(index_path)
    try:
        if not _stale(connection, root, scanned):
            return SyncStats()
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another worker may have finished the same work while we waited for the lock: _apply is a no-op then.
            stats = _apply(connection, root, _scan(root))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return stats
    finally:
        connection.close()


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression: each word quoted, OR-ed; None when the text has no words."""
    words = [w.lower() for w in re.findall(r"\w+", text)]
    unique = list(dict.fromkeys(words))
    meaningful = [w for w in unique if w not in _STOPWORDS] or unique
    # \w never matches a double quote, so quoting cannot be broken out of.
    return " OR ".join(f'"{w}"' for w in meaningful[:MAX_QUERY_TOKENS]) or None


def _search(root: Path, index_path: Path, query: str, limit: int) -> tuple[SyncStats, list[tuple[str, str, float, str]]]:
    stats = sync_index(root, index_path)
    match = fts_query(query)
    if match is None:
        return stats, []
    connection = sqlite3.connect(index_path, timeout=30.0)
    try:
        rows = connection.execute(
            f"""SELECT f.path, f.title, bm25(docs, {', '.join(map(str, _WEIGHTS))}) AS score,
                       snippet(docs, 2, '**', '**', ' … ', {SNIPPET_TOKENS})
                FROM docs JOIN files AS f ON f.id = docs.rowid
                WHERE docs MATCH ? ORDER BY score, f.path LIMIT ?""",
            (match, limit),
        ).fetchall()
    finally:
        connection.close()
    return stats, rows


def format_hits(query: str, rows: list[tuple[str, str, float, str]]) -> str:
    """Numbered hits, each with title, `[source: path]`, score (-bm25, higher is better) and snippet."""
    if not rows:
        return f"No documents match {query!r}."
    noun = "result" if len(rows) == 1 else "results"
    lines = [f"{len(rows)} {noun} for {query!r} (score = -bm25, higher is better):"]
    for rank, (path, title, score, snippet) in enumerate(rows, start=1):
        lines += ["", f"[{rank}] {title}", f"[source: {path}]", f"score: {-score:.3f}", " ".join(snippet.split())]
    return "\n".join(lines)


@tool_activity("search_corpus")
async def search_corpus(args: SearchCorpusArgs) -> ToolResult:
    """Search the local document corpus (full text, bm25); each hit shows a `[source: <path>]` to cite."""
    root, index_path = settings.corpus_dir(), settings.corpus_index_path()
    if not root.is_dir():
        raise tool_error(ErrorType.TOOL_FAILED, f"corpus folder not found: {root.name}")
    try:
        stats, rows = await asyncio.to_thread(_search, root, index_path, args.query, args.limit)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise tool_error(ErrorType.TOOL_TRANSIENT, f"corpus index busy: {exc}", retryable=True) from exc
        raise tool_error(ErrorType.TOOL_FAILED, f"corpus index error: {exc}") from exc
    if stats.changed:
        activity.logger.info("corpus re-indexed: %d added, %d updated, %d deleted", stats.added, stats.updated, stats.deleted)
    return tool_result("search_corpus", format_hits(args.query, rows))
