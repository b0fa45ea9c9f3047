"""The SQL-backed stores, SQLite and PostgreSQL, held to the same tests: the call cache (expiry, shared by
workers, replaced values, a cache that cannot be used is a miss), long-term memory (the same entries
with their provenance and untrusted flag, scope per namespace and role, ranking, stemming, queries that
are never syntax errors) and the idempotency ledger (first writer wins, also under concurrent writers;
a ledger that cannot be used is a retryable failure, never a miss). PostgreSQL is a real server from the machine's binaries, one per session
(`postgres_server` in conftest.py), with a fresh schema per test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from contracts.errors import ErrorType
from core.hashing import sha256_text
from stores.cache_postgres import PostgresCallCache
from stores.cache_sqlite import SqliteCallCache
from stores.idempotency_postgres import PostgresIdempotencyLedger
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from stores.memory_postgres import PostgresMemoryStore
from stores.memory_sqlite import SqliteMemoryStore
from stores.protocols import CallCache, IdempotencyLedger, MemoryEntry, MemoryStore, StoreError
from tests.llama_server import free_port
from tests.store_servers import PostgresServer

T = TypeVar("T")
NOTE = "Idempotency keys make retried tool calls safe: a retry with the same key changes nothing."


@dataclass(frozen=True)
class Backend:
    """How one backend builds its stores (each call is another worker's store over the same data)."""

    name: str
    memory: Callable[[], MemoryStore]
    cache: Callable[[float], CallCache]
    unusable_cache: Callable[[], CallCache]
    ledger: Callable[[float], IdempotencyLedger]  # by retention in seconds
    unusable_ledger: Callable[[], IdempotencyLedger]


def fresh_schema_url(server: PostgresServer) -> str:
    """A URL whose tables land in a new, empty schema: each test starts from an empty store."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return server.url(options=f"-csearch_path%3D{schema}")


def unreachable_url() -> str:
    return f"postgresql://foreman@127.0.0.1:{free_port()}/foreman"  # a port nobody listens on


def together(work: Callable[[int], T], count: int = 6) -> list[T]:
    """`work(0)` to `work(count - 1)`, each in its own thread (another worker), released at once; their results,
    in no set order. Any error fails the test."""
    results: list[T] = []
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait(timeout=10)
            results.append(work(n))
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(results) == count
    return results


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        (tmp_path / "not-a-dir").write_text("x")
        return Backend(
            "sqlite",
            memory=lambda: SqliteMemoryStore(tmp_path / "memory.sqlite"),
            cache=lambda ttl: SqliteCallCache(tmp_path / "cache.sqlite", ttl),
            unusable_cache=lambda: SqliteCallCache(tmp_path / "not-a-dir" / "cache.sqlite", 60),
            ledger=lambda retention: SqliteIdempotencyLedger(tmp_path / "idempotency.sqlite", retention),
            unusable_ledger=lambda: SqliteIdempotencyLedger(tmp_path / "not-a-dir" / "idempotency.sqlite", 3600),
        )
    url = fresh_schema_url(request.getfixturevalue("postgres_server"))
    return Backend(
        "postgres",
        memory=lambda: PostgresMemoryStore(url),
        cache=lambda ttl: PostgresCallCache(url, ttl),
        unusable_cache=lambda: PostgresCallCache(unreachable_url(), 60),
        ledger=lambda retention: PostgresIdempotencyLedger(url, retention),
        unusable_ledger=lambda: PostgresIdempotencyLedger(unreachable_url(), 3600),
    )


def test_the_cache_keeps_replaces_and_shares_entries(backend: Backend) -> None:
    cache = backend.cache(60)
    assert cache.get("k") is None
    cache.put("k", "v")
    assert cache.get("k") == "v" and backend.cache(60).get("k") == "v"  # shared by workers
    backend.cache(60).put("k", "newer")
    assert cache.get("k") == "newer"


def test_cache_entries_expire(backend: Backend) -> None:
    backend.cache(-1).put("stale", "v")  # expired the moment it was written
    assert backend.cache(60).get("stale") is None
    short = backend.cache(0.2)
    short.put("k", "v")
    time.sleep(0.3)
    assert short.get("k") is None and backend.cache(60).get("k") is None


def test_a_cache_that_cannot_be_used_is_a_miss(backend: Backend) -> None:
    broken = backend.unusable_cache()
    broken.put("k", "v")  # logged, not raised
    assert broken.get("k") is None


def test_the_ledger_keeps_the_first_result_and_shares_it(backend: Backend) -> None:
    ledger = backend.ledger(3600)
    assert ledger.get("k") is None
    assert ledger.put("k", "first") == "first"
    assert ledger.get("k") == "first" and backend.ledger(3600).get("k") == "first"  # shared by workers
    assert backend.ledger(3600).put("k", "second") == "first"  # never replaced: the recorded result comes back
    assert ledger.get("k") == "first" and ledger.get("other") is None


def test_of_concurrent_writers_one_wins_and_all_see_its_result(backend: Backend) -> None:
    returned = together(lambda n: backend.ledger(3600).put("k", f"attempt {n}"))  # each its own worker's store
    assert len(set(returned)) == 1 and backend.ledger(3600).get("k") == returned[0]


def test_ledger_entries_outlive_retries_then_are_dropped(backend: Backend) -> None:
    short = backend.ledger(0.2)
    short.put("old", "v")
    assert short.get("old") == "v"
    time.sleep(0.3)
    short.put("new", "w")  # writing drops what has outlived the retention
    assert short.get("old") is None and short.get("new") == "w"


def test_a_ledger_that_cannot_be_used_fails_retryably_and_is_never_a_miss(backend: Backend) -> None:
    broken = backend.unusable_ledger()
    for call in (lambda: broken.get("k"), lambda: broken.put("k", "v")):
        with pytest.raises(StoreError) as refused:
            call()
        assert refused.value.error_type is ErrorType.TOOL_TRANSIENT and refused.value.retryable
        assert "idempotency ledger unavailable" in str(refused.value)


def remember(memory: MemoryStore, text: str, *, namespace: str = "ns", role: str = "drafter", topic: str = "retries",
             untrusted: bool = False) -> MemoryEntry:
    return memory.remember(namespace, role, text, topic, "goal-1", "note", untrusted)


def test_recall_returns_the_entry_remember_wrote_with_its_provenance(backend: Backend) -> None:
    before = time.time()
    entry = remember(backend.memory(), NOTE)
    assert entry.entry_id > 0 and entry.content_sha256 == sha256_text(NOTE) and before <= entry.created_at <= time.time()
    assert (entry.namespace, entry.role, entry.text, entry.topic, entry.workflow_id, entry.step_id, entry.untrusted) == (
        "ns", "drafter", NOTE, "retries", "goal-1", "note", False)
    (found,) = backend.memory().recall("ns", "drafter", "idempotency keys", 5)  # another worker's store
    assert replace(found, score=0.0) == entry and found.score < 0  # lower is better, as with bm25


def test_a_keyed_entry_is_written_once_however_often_it_is_remembered(backend: Backend) -> None:
    """The chaos suite's finding: a worker killed between the entry and the ledger's record made a retry write a second
    entry. With the call's key, the entry and its key commit together: the retry gets the first entry back."""
    memory = backend.memory()
    first = memory.remember("ns", "drafter", NOTE, "retries", "goal-1", "note", False, "idem:v2:remember:abc")
    again = backend.memory().remember("ns", "drafter", NOTE, "retries", "goal-1", "note", False, "idem:v2:remember:abc")
    other = memory.remember("ns", "drafter", NOTE, "retries", "goal-1", "note", False, "idem:v2:remember:def")
    assert again == first and other.entry_id != first.entry_id
    assert sorted(e.entry_id for e in memory.recall("ns", "drafter", "idempotency keys", 10)) == sorted([first.entry_id, other.entry_id])


def test_the_untrusted_flag_is_kept(backend: Backend) -> None:
    memory = backend.memory()
    remember(memory, "A fetched page says retries are always safe.", untrusted=True)
    remember(memory, "Retries are safe with idempotency keys.", untrusted=False)
    recalled = {entry.text: entry.untrusted for entry in memory.recall("ns", "drafter", "retries safe", 10)}
    assert recalled == {"A fetched page says retries are always safe.": True, "Retries are safe with idempotency keys.": False}
    assert all(type(flag) is bool for flag in recalled.values())


def test_recall_sees_only_its_namespace_and_role(backend: Backend) -> None:
    memory = backend.memory()
    scopes = [("ns", "drafter"), ("ns", "researcher"), ("other", "drafter")]
    for namespace, role in scopes:
        remember(memory, f"retries note of {namespace} {role}", namespace=namespace, role=role)
    for namespace, role in scopes:
        assert [(e.namespace, e.role) for e in memory.recall(namespace, role, "retries", 10)] == [(namespace, role)]
    assert memory.recall("ns", "publisher", "retries", 10) == []


def test_recall_ranks_stems_and_limits(backend: Backend) -> None:
    memory = backend.memory()
    remember(memory, NOTE)
    remember(memory, "The planner splits a goal into steps.", topic="planning")
    remember(memory, "Retry budgets bound what a goal may spend.", topic="budgets")
    hits = memory.recall("ns", "drafter", "retrying idempotency", 10)
    # "retrying" finds "retried", "retry" and "Retry" (stemming); the note matching both words ranks first.
    assert [h.text for h in hits] == [NOTE, "Retry budgets bound what a goal may spend."]
    assert hits[0].score < hits[1].score
    assert [h.text for h in memory.recall("ns", "drafter", "retrying idempotency", 1)] == [NOTE]
    assert [h.topic for h in memory.recall("ns", "drafter", "planning", 10)] == ["planning"]  # the topic is searched too


def test_no_query_is_a_syntax_error(backend: Backend) -> None:
    memory = backend.memory()
    remember(memory, "Quote marks (\" and ') and operators like OR, NOT, & and | are only text here.")
    hostile = ['"unbalanced', "a' OR '1'='1", "x:* & !y | (z", "NEAR(a b)", "-- ;DROP TABLE foreman_memories; DROP TABLE memories", "\\'"]
    for query in hostile:
        assert isinstance(memory.recall("ns", "drafter", query, 5), list), query
    assert memory.recall("ns", "drafter", "   ?!  ", 5) == []  # no words: nothing to match
    (found,) = memory.recall("ns", "drafter", "operators quote", 5)  # the table is still there
    assert found.text.startswith("Quote marks")


# PostgreSQL only: what a networked database adds (connecting, configuration, several workers at once).


def test_postgres_stores_connect_on_first_use_and_fail_typed() -> None:
    memory = PostgresMemoryStore(unreachable_url())  # building connects to nothing
    for call in (lambda: memory.recall("ns", "drafter", "retries", 5), lambda: remember(memory, NOTE)):
        with pytest.raises(StoreError) as refused:
            call()
        assert refused.value.error_type is ErrorType.TOOL_TRANSIENT and refused.value.retryable
        assert isinstance(refused.value.__cause__, psycopg.OperationalError)


def test_a_malformed_database_url_is_a_config_error_that_hides_the_password() -> None:
    for build in (PostgresMemoryStore, lambda url: PostgresCallCache(url, 60), lambda url: PostgresIdempotencyLedger(url, 60)):
        with pytest.raises(StoreError) as refused:
            build("host=db password=s3cret dbname")
        assert refused.value.error_type is ErrorType.STORE_CONFIG and not refused.value.retryable
        assert "s3cret" not in str(refused.value) and refused.value.__cause__ is None


def test_workers_starting_together_create_the_tables_once(postgres_server: PostgresServer) -> None:
    url = fresh_schema_url(postgres_server)

    def worker(n: int) -> MemoryEntry:
        entry = remember(PostgresMemoryStore(url), f"retries note {n}")
        PostgresCallCache(url, 60).put(f"k{n}", "v")
        PostgresIdempotencyLedger(url, 60).put(f"k{n}", "v")
        return entry

    assert len({e.entry_id for e in together(worker)}) == 6
    assert all(PostgresCallCache(url, 60).get(f"k{n}") == "v" == PostgresIdempotencyLedger(url, 60).get(f"k{n}") for n in range(6))
