"""Side-effecting tools retried by Temporal do their effect once: each attempt runs under `ActivityEnvironment`
with the activity info Temporal would give it (attempt 2 shares attempt 1's workflow run and activity id),
over stores in tmp_path and a real HTTP server on 127.0.0.1.

Covered: a retried `remember` writes one entry and returns its id; a retried `write_file` returns what the
first attempt wrote and leaves a later change alone; a retried POST reaches the server once, carrying the
activity's key as `Idempotency-Key`; another activity id or another run (continue-as-new) does the effect
again; an unreadable ledger fails the attempt retryably before any effect; read-only calls are not recorded.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tools import tool_implementations
from activities.tools.idempotency import idempotency_key
from contracts.tools import CallContext, HttpFetchArgs, RememberArgs, ToolArgs, ToolResult, WriteFileArgs
from core.hashing import sha256_text
from stores import IdempotencyLedger, Stores, from_settings
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from stores.idempotency_postgres import PostgresIdempotencyLedger
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from stores.memory_sqlite import SqliteMemoryStore
from stores.workspace_files import LocalWorkspace
from tests.llama_server import free_port

CONTEXT = CallContext(workflow_id="goal-1", step_id="note", role="drafter", saw_untrusted=False)
NOTE = RememberArgs(text="Idempotency keys make retried tool calls safe.", topic="retries", context=CONTEXT)


def build_stores(tmp_path: Path, ledger: IdempotencyLedger | None) -> Stores:
    return Stores(
        content=FileContentStore(tmp_path / "content"),
        workspace=LocalWorkspace(tmp_path / "workspace"),
        corpus=SqliteCorpusIndex(tmp_path / "corpus", tmp_path / "corpus.sqlite"),  # unused here: opens nothing
        database=SqliteDatabase(tmp_path / "db.sqlite"),
        memory=SqliteMemoryStore(tmp_path / "memory.sqlite"),
        ledger=ledger,
    )


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return build_stores(tmp_path, SqliteIdempotencyLedger(tmp_path / "idempotency.sqlite", 3600))


@pytest.fixture
def tools(stores: Stores) -> SimpleNamespace:
    return SimpleNamespace(**tool_implementations(stores))


def attempt(n: int, *, activity_id: str = "7", run_id: str = "run-1") -> ActivityEnvironment:
    """An environment whose activity is attempt `n` of activity `activity_id` in workflow run `run_id`."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="goal-1", workflow_run_id=run_id, activity_id=activity_id, attempt=n)
    return env


def post(url: str) -> HttpFetchArgs:
    """A POST, built without validation: the contract admits only GET and HEAD today, the tool is ready for more."""
    return HttpFetchArgs.model_construct(url=url, method="POST", max_bytes=200_000, cache=False)


def memories(stores: Stores) -> list[int]:
    return [entry.entry_id for entry in stores.memory.recall("default", "drafter", "idempotency retried", 10)]


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request and records (method, path, Idempotency-Key) on the server."""

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Idempotency-Key")))
        body = f"{self.command} {self.path} number {len(self.server.requests)}".encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")  # a test server on loopback: named, as on-premise hosts are
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.daemon_threads = True
    httpd.requests = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url_of(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


async def test_a_retried_remember_writes_one_entry_and_returns_its_id(tools: SimpleNamespace, stores: Stores) -> None:
    first = await attempt(1).run(tools.remember, NOTE)
    retried = await attempt(2).run(tools.remember, NOTE)
    assert first.memory is not None and retried == first
    assert memories(stores) == [first.memory.entry_id]


async def test_another_activity_or_another_run_remembers_again(tools: SimpleNamespace, stores: Stores) -> None:
    first = await attempt(1).run(tools.remember, NOTE)
    other_activity = await attempt(1, activity_id="8").run(tools.remember, NOTE)
    # After continue-as-new, activity ids start again from 1: the run id keeps the new run's call apart.
    next_run = await attempt(1, run_id="run-2").run(tools.remember, NOTE)
    ids = [r.memory.entry_id for r in (first, other_activity, next_run)]
    assert len(set(ids)) == 3 and sorted(memories(stores)) == sorted(ids)


async def test_a_retried_write_file_returns_the_first_result_and_writes_nothing(tools: SimpleNamespace, stores: Stores,
                                                                               tmp_path: Path) -> None:
    args = WriteFileArgs(path="notes/a.md", content="first draft")
    first = await attempt(1).run(tools.write_file, args)
    assert first.content == f"wrote notes/a.md (11 bytes, sha256 {sha256_text('first draft')})"  # the written hash
    target = tmp_path / "workspace" / "notes" / "a.md"
    target.write_text("edited by a later step")
    retried = await attempt(2).run(tools.write_file, args)
    assert retried == first and target.read_text() == "edited by a later step"  # the retry did not write again
    other = await attempt(1, activity_id="8").run(tools.write_file, args)
    assert other == first and target.read_text() == "first draft"  # another call does write


async def test_a_retried_post_is_sent_once_with_its_idempotency_key(tools: SimpleNamespace, server: ThreadingHTTPServer) -> None:
    args = post(url_of(server, "/orders"))
    first = await attempt(1).run(tools.http_fetch, args)
    retried = await attempt(2).run(tools.http_fetch, args)
    key = attempt(3).run(idempotency_key, "http_fetch", args)
    assert retried == first and first.content.startswith("HTTP 201") and first.content.endswith("number 1")
    assert server.requests == [("POST", "/orders", key)] and key.startswith("idem:v1:http_fetch:")
    again = await attempt(1, activity_id="8").run(tools.http_fetch, args)
    assert again.content.endswith("number 2") and server.requests[1][2] not in (None, key)


async def test_read_only_calls_are_not_recorded(tools: SimpleNamespace, stores: Stores, server: ThreadingHTTPServer) -> None:
    get = HttpFetchArgs(url=url_of(server, "/page"))
    for n in (1, 2):
        await attempt(n).run(tools.http_fetch, get)
    assert [(method, key) for method, _, key in server.requests] == [("GET", None), ("GET", None)]
    key = attempt(1).run(idempotency_key, "http_fetch", get)
    assert stores.ledger.get(key) is None


async def test_an_unreadable_ledger_fails_retryably_and_does_nothing(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    broken = build_stores(tmp_path, SqliteIdempotencyLedger(tmp_path / "not-a-dir" / "idempotency.sqlite", 3600))
    tools = tool_implementations(broken)
    calls: list[tuple[str, ToolArgs]] = [
        ("remember", NOTE), ("write_file", WriteFileArgs(path="a.md", content="x")), ("http_fetch", post(url_of(server, "/orders")))]
    for tool, args in calls:
        with pytest.raises(ApplicationError) as failed:
            await attempt(1).run(tools[tool], args)
        assert failed.value.type == "ToolTransient" and not failed.value.non_retryable, tool
        assert "idempotency ledger unavailable" in failed.value.message
    assert memories(broken) == [] and not (tmp_path / "workspace" / "a.md").exists() and server.requests == []


async def test_a_record_that_does_not_decode_is_a_final_failure_not_a_second_effect(tools: SimpleNamespace, stores: Stores) -> None:
    stores.ledger.put(attempt(1).run(idempotency_key, "remember", NOTE), "not a tool result")
    with pytest.raises(ApplicationError) as failed:
        await attempt(2).run(tools.remember, NOTE)
    assert failed.value.type == "ToolFailed" and failed.value.non_retryable
    assert memories(stores) == []


async def test_the_key_is_the_activity_identity_and_the_action(tools: SimpleNamespace) -> None:
    other_text = NOTE.model_copy(update={"text": "Another note."})
    keys = {
        "attempt 1": attempt(1).run(idempotency_key, "remember", NOTE),
        "attempt 2": attempt(2).run(idempotency_key, "remember", NOTE),
        "activity": attempt(1, activity_id="8").run(idempotency_key, "remember", NOTE),
        "run": attempt(1, run_id="run-2").run(idempotency_key, "remember", NOTE),
        "arguments": attempt(1).run(idempotency_key, "remember", other_text),
    }
    assert keys["attempt 1"] == keys["attempt 2"]
    assert len({keys[k] for k in ("attempt 1", "activity", "run", "arguments")}) == 4


def test_from_settings_builds_the_ledger_on_the_store_backend(monkeypatch: pytest.MonkeyPatch, foreman_home: Path) -> None:
    built = from_settings()
    assert isinstance(built.ledger, SqliteIdempotencyLedger) and built.ledger.path == foreman_home / "idempotency.sqlite"
    monkeypatch.setenv("FOREMAN_CACHE", "off")  # the cache switch leaves the ledger on
    assert from_settings().cache is None and isinstance(from_settings().ledger, SqliteIdempotencyLedger)
    monkeypatch.setenv("FOREMAN_STORE_BACKEND", "postgres")
    monkeypatch.setenv("FOREMAN_DATABASE_URL", f"postgresql://foreman@127.0.0.1:{free_port()}/foreman")  # nobody listens
    assert isinstance(from_settings().ledger, PostgresIdempotencyLedger)  # built, connected to nothing
    assert isinstance(built.ledger, IdempotencyLedger) and not foreman_home.exists()


async def test_tool_results_round_trip_through_the_ledger(tools: SimpleNamespace, stores: Stores) -> None:
    big = WriteFileArgs(path="big.md", content="line\n" * 2_000)
    first = await attempt(1).run(tools.write_file, big)
    recorded = stores.ledger.get(attempt(1).run(idempotency_key, "write_file", big))
    assert recorded is not None and ToolResult.model_validate_json(recorded) == first
