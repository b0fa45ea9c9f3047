"""`CorpusIndex` on SQLite FTS5: bm25-ranked full-text search over the .md/.txt files under a folder.

Invariants: the index file is brought up to date before every search, incrementally (files are tracked
by relative path, mtime_ns, size and sha256; only changed ones are re-read). Index writes happen inside
`BEGIN IMMEDIATE` and under a file lock, so concurrent workers serialise and re-check under the lock;
the common "nothing changed" case takes no write lock. Free-text queries are reduced to quoted word
tokens joined with OR, so no input can produce an FTS5 syntax error. Nothing is opened until the first
search (or `sync`).
"""

from __future__ import annotations

import fcntl
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contracts.errors import ErrorType
from core.hashing import sha256_bytes
from stores.protocols import CorpusHit, CorpusSearch, IndexChanges, StoreError

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


def _apply(connection: sqlite3.Connection, root: Path, scanned: dict[str, tuple[int, int]]) -> IndexChanges:
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
    return IndexChanges(added, updated, deleted)


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


def sync_index(root: Path, index_path: Path) -> IndexChanges:
    """Incrementally re-index `root` into `index_path`; safe to call from several workers at once."""
    with _index_lock(index_path):
        return _sync_locked(root, index_path)


def _sync_locked(root: Path, index_path: Path) -> IndexChanges:
    scanned = _scan(root)
    connection = _connect(index_path)
    try:
        if not _stale(connection, root, scanned):
            return IndexChanges()
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


def query_words(text: str) -> list[str]:
    """The words a free-text query searches for: lower-cased, unique, stopwords dropped unless nothing else is left.
    Each matches \\w+, so no word contains a quote or an operator of any full-text query syntax."""
    unique = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", text)))
    return ([w for w in unique if w not in _STOPWORDS] or unique)[:MAX_QUERY_TOKENS]


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression: each word quoted, OR-ed; None when the text has no words."""
    return " OR ".join(f'"{w}"' for w in query_words(text)) or None


class SqliteCorpusIndex:
    """The documents under `root`, indexed into the SQLite file `index_path`."""

    def __init__(self, root: Path, index_path: Path) -> None:
        self.root = Path(root)
        self.index_path = Path(index_path)

    def sync(self) -> IndexChanges:
        """Bring the index up to date now (a search does this itself)."""
        return sync_index(self.root, self.index_path)

    def search(self, query: str, limit: int) -> CorpusSearch:
        if not self.root.is_dir():
            raise StoreError(ErrorType.TOOL_FAILED, f"corpus folder not found: {self.root.name}")
        try:
            return self._search(query, limit)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(ErrorType.TOOL_TRANSIENT, f"corpus index busy: {exc}", retryable=True) from exc
            raise StoreError(ErrorType.TOOL_FAILED, f"corpus index error: {exc}") from exc

    def _search(self, query: str, limit: int) -> CorpusSearch:
        changes = sync_index(self.root, self.index_path)
        match = fts_query(query)
        if match is None:
            return CorpusSearch(hits=[], reindexed=changes)
        connection = sqlite3.connect(self.index_path, timeout=30.0)
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
        return CorpusSearch(hits=[CorpusHit(*row) for row in rows], reindexed=changes)
