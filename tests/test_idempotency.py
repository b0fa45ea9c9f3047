"""Side-effecting tools do their effect once per call: every attempt of a call carries the key the workflow
stamped (`core.idempotency`), and the tools record under it. Attempts run under `ActivityEnvironment` over stores
in tmp_path and a real HTTP server on 127.0.0.1; the key builder is unit-tested here too.

Covered: a retried `remember` (the same key) writes one entry and returns its id; a retried `write_file` returns
what the first attempt wrote and leaves a later change alone; a retried POST reaches the server once, carrying the
key as `Idempotency-Key`; another key (another call) does the effect again; a keyed tool called without its key
fails before any effect; an unreadable ledger fails the attempt retryably before any effect; read-only calls are
not recorded; the key covers the goal, its first run, the step, the call index and the action, nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tools import tool_implementations
from contracts.mcp import McpCall
from contracts.tools import KEY_FIELD, CallContext, HttpFetchArgs, KeyedArgs, RememberArgs, SearchCorpusArgs, SideEffect, ToolResult, WriteFileArgs
from core.idempotency import KEY_VERSION, CallSite, idempotency_key
from core.policy import action_sha256, evaluate
from core.tools import TOOLS
from core.hashing import sha256_text
from stores import IdempotencyLedger, Stores, from_settings
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from playbooks import load_default_policy
from stores.idempotency_postgres import PostgresIdempotencyLedger
from stores.idempotency_sqlite import SqliteIdempotencyLedger
from stores.memory_sqlite import SqliteMemoryStore
from stores.workspace_files import LocalWorkspace
from tests.llama_server import free_port

CONTEXT = CallContext(workflow_id="goal-1", step_id="note", role="drafter", saw_untrusted=False)
SITE = CallSite(namespace="default", workflow_id="goal-1", first_run_id="run-1", step_id="note", call_index=0)


def stamped(tool: str, args: KeyedArgs, call_index: int = 0) -> KeyedArgs:
    """`args` as the workflow sends them: with the key of the step's `call_index`-th call."""
    site = dataclasses.replace(SITE, call_index=call_index)
    return args.model_copy(update={KEY_FIELD: idempotency_key(site, tool, args)})


NOTE = stamped("remember", RememberArgs(text="Idempotency keys make retried tool calls safe.", topic="retries", context=CONTEXT))


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
    """An environment whose activity is attempt `n` of activity `activity_id` in workflow run `run_id` (a
    continue-as-new run, or a new worker's activity, has another: the key in the arguments is what counts)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="goal-1", workflow_run_id=run_id, activity_id=activity_id, attempt=n)
    return env


def post(url: str, call_index: int = 0, body: str | None = '{"item": "book"}') -> HttpFetchArgs:
    """A POST as the workflow stamps it: its key from the call site and the canonical action."""
    args = HttpFetchArgs(url=url, method="POST", body=body)
    return args.model_copy(update={KEY_FIELD: idempotency_key(dataclasses.replace(SITE, call_index=call_index), "http_fetch", args)})


def memories(stores: Stores) -> list[int]:
    return [entry.entry_id for entry in stores.memory.recall("default", "drafter", "idempotency retried", 10)]


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request and records (method, path, Idempotency-Key) on the server."""

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Idempotency-Key")))
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append((self.headers.get("Content-Type"), self.rfile.read(length).decode() if length else None))
        body = f"{self.command} {self.path} number {len(self.server.requests)}".encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadingHTTPServer]:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")  # a test server on loopback: named, as on-premise hosts are
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.bodies = []  # (Content-Type, body) per request
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url_of(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


async def test_a_retried_remember_writes_one_entry_and_returns_its_id(tools: SimpleNamespace, stores: Stores) -> None:
    first = await attempt(1).run(tools.remember, NOTE)
    retried = await attempt(2).run(tools.remember, NOTE)
    resumed = await attempt(1, activity_id="3", run_id="run-2").run(tools.remember, NOTE)  # the same call after continue-as-new
    assert first.memory is not None and retried == first == resumed
    assert memories(stores) == [first.memory.entry_id]


async def test_another_call_remembers_again(tools: SimpleNamespace, stores: Stores) -> None:
    first = await attempt(1).run(tools.remember, NOTE)
    next_call = await attempt(1, activity_id="8").run(tools.remember, stamped("remember", NOTE, call_index=1))  # same text, next index
    ids = [r.memory.entry_id for r in (first, next_call)]
    assert len(set(ids)) == 2 and sorted(memories(stores)) == sorted(ids)


async def test_a_retried_write_file_returns_the_first_result_and_writes_nothing(tools: SimpleNamespace, stores: Stores,
                                                                               tmp_path: Path) -> None:
    args = stamped("write_file", WriteFileArgs(path="notes/a.md", content="first draft"))
    first = await attempt(1).run(tools.write_file, args)
    assert first.content == f"wrote notes/a.md (11 bytes, sha256 {sha256_text('first draft')})"  # the written hash
    target = tmp_path / "workspace" / "notes" / "a.md"
    target.write_text("edited by a later step")
    retried = await attempt(2).run(tools.write_file, args)
    assert retried == first and target.read_text() == "edited by a later step"  # the retry did not write again
    other = await attempt(1, activity_id="8").run(tools.write_file, stamped("write_file", args, call_index=1))
    assert other == first and target.read_text() == "first draft"  # another call does write


async def test_a_retried_post_is_sent_once_with_its_idempotency_key(tools: SimpleNamespace, server: ThreadingHTTPServer) -> None:
    args = post(url_of(server, "/orders"))
    first = await attempt(1).run(tools.http_fetch, args)
    retried = await attempt(2).run(tools.http_fetch, args)
    assert retried == first and first.content.startswith("HTTP 201") and first.content.endswith("number 1")
    assert server.requests == [("POST", "/orders", args.idempotency_key)] and args.idempotency_key.startswith(f"idem:{KEY_VERSION}:http_fetch:")
    assert server.bodies == [("application/json", '{"item": "book"}')]
    again = await attempt(1, activity_id="8").run(tools.http_fetch, post(url_of(server, "/orders"), call_index=1))
    assert again.content.endswith("number 2") and server.requests[1][2] not in (None, args.idempotency_key)


async def test_read_only_calls_are_not_recorded(tools: SimpleNamespace, stores: Stores, server: ThreadingHTTPServer) -> None:
    get = HttpFetchArgs(url=url_of(server, "/page"))
    assert not get.has_effect() and post(url_of(server, "/page")).has_effect()
    for n in (1, 2):
        await attempt(n).run(tools.http_fetch, get)
    assert [(method, key) for method, _, key in server.requests] == [("GET", None), ("GET", None)]
    assert stores.ledger.get(idempotency_key(SITE, "http_fetch", get)) is None


async def test_a_keyed_tool_without_its_key_does_nothing(tools: SimpleNamespace, stores: Stores, tmp_path: Path) -> None:
    calls = [(tools.remember, NOTE), (tools.write_file, WriteFileArgs(path="a.md", content="x"))]
    for tool, args in calls:
        with pytest.raises(ApplicationError) as failed:
            await attempt(1).run(tool, args.model_copy(update={KEY_FIELD: None}))
        assert failed.value.type == "ToolArgumentsInvalid" and failed.value.non_retryable
        assert "needs the idempotency key the workflow stamps" in failed.value.message
    assert memories(stores) == [] and not (tmp_path / "workspace" / "a.md").exists()


async def test_an_unreadable_ledger_fails_retryably_and_does_nothing(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    broken = build_stores(tmp_path, SqliteIdempotencyLedger(tmp_path / "not-a-dir" / "idempotency.sqlite", 3600))
    tools = tool_implementations(broken)
    calls: list[tuple[str, KeyedArgs]] = [
        ("remember", NOTE), ("write_file", stamped("write_file", WriteFileArgs(path="a.md", content="x"))),
        ("http_fetch", post(url_of(server, "/orders")))]
    for tool, args in calls:
        with pytest.raises(ApplicationError) as failed:
            await attempt(1).run(tools[tool], args)
        assert failed.value.type == "ToolTransient" and not failed.value.non_retryable, tool
        assert "idempotency ledger unavailable" in failed.value.message
    assert memories(broken) == [] and not (tmp_path / "workspace" / "a.md").exists() and server.requests == []


async def test_a_record_that_does_not_decode_is_a_final_failure_not_a_second_effect(tools: SimpleNamespace, stores: Stores) -> None:
    stores.ledger.put(NOTE.idempotency_key, "not a tool result")
    with pytest.raises(ApplicationError) as failed:
        await attempt(2).run(tools.remember, NOTE)
    assert failed.value.type == "ToolFailed" and failed.value.non_retryable
    assert memories(stores) == []


def test_the_key_covers_the_goal_its_first_run_the_step_the_call_index_and_the_action() -> None:
    args = WriteFileArgs(path="drafts/a.md", content="text")
    key = idempotency_key(SITE, "write_file", args)
    assert key.startswith(f"idem:{KEY_VERSION}:write_file:") and len(key.rsplit(":", 1)[1]) == 64
    # The same call, whatever its activity attempt or run: the same key (nothing else goes in).
    assert idempotency_key(dataclasses.replace(SITE), "write_file", args.model_copy()) == key
    # Stamped fields are not part of the action: the key a call carries does not change its key.
    assert idempotency_key(SITE, "write_file", args.model_copy(update={KEY_FIELD: "idem:v2:forged"})) == key
    others = [
        idempotency_key(dataclasses.replace(SITE, namespace="other"), "write_file", args),
        idempotency_key(dataclasses.replace(SITE, workflow_id="goal-2"), "write_file", args),
        idempotency_key(dataclasses.replace(SITE, first_run_id="run-9"), "write_file", args),  # a new goal reusing the id
        idempotency_key(dataclasses.replace(SITE, step_id="other"), "write_file", args),
        idempotency_key(dataclasses.replace(SITE, call_index=1), "write_file", args),
        idempotency_key(SITE, "write_file", args.model_copy(update={"content": "other text"})),
        idempotency_key(SITE, "mcp:notes:post_note", McpCall(server="notes", tool="post_note", arguments_json='{"text":"text"}')),
    ]
    assert len({key, *others}) == len(others) + 1


def test_the_stamped_fields_are_never_part_of_the_action() -> None:
    args = HttpFetchArgs(url="https://example.org/", cache=True, idempotency_key="idem:v2:x")
    assert action_sha256("http_fetch", args) == action_sha256("http_fetch", HttpFetchArgs(url="https://example.org/"))
    assert KEY_FIELD not in json.loads(TOOLS["write_file"].schema().parameters_json)["properties"]  # the model never sees it


def test_every_tool_that_changes_something_is_keyed() -> None:
    assert {name for name, spec in TOOLS.items() if spec.keyed} == {"write_file", "remember", "run_python", "http_fetch"}
    assert all(spec.keyed for spec in TOOLS.values() if spec.side_effect.value != "read")
    assert not issubclass(SearchCorpusArgs, KeyedArgs)


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
    big = stamped("write_file", WriteFileArgs(path="big.md", content="line\n" * 2_000))
    first = await attempt(1).run(tools.write_file, big)
    recorded = stores.ledger.get(big.idempotency_key)
    assert recorded is not None and ToolResult.model_validate_json(recorded) == first


def test_a_key_for_the_longest_mcp_tool_name_fits_the_contracts() -> None:
    """An MCP tool's name may be `mcp:` + 64 + `:` + 128 characters; its key must still pass the argument contracts."""
    from contracts.mcp import McpCall
    from contracts.tools import MAX_KEY_CHARS
    from core.idempotency import CallSite, idempotency_key

    call = McpCall(server="s" * 64, tool="t" * 128)
    site = CallSite(namespace="default", workflow_id="w" * 200, first_run_id="r", step_id="s", call_index=0)
    key = idempotency_key(site, call.name, call)
    assert len(call.name) == 197 and len(key) <= MAX_KEY_CHARS
    McpCall(server="s" * 64, tool="t" * 128, idempotency_key=key)  # the stamped call still validates


async def test_a_delete_is_sent_once_without_a_body(tools: SimpleNamespace, server: ThreadingHTTPServer) -> None:
    args = HttpFetchArgs(url=url_of(server, "/orders/7"), method="DELETE")
    args = args.model_copy(update={KEY_FIELD: idempotency_key(SITE, "http_fetch", args)})
    first = await attempt(1).run(tools.http_fetch, args)
    assert await attempt(2).run(tools.http_fetch, args) == first
    assert server.requests == [("DELETE", "/orders/7", args.idempotency_key)] and server.bodies == [(None, None)]


@pytest.mark.parametrize("fields", [{"body": "x"}, {"method": "HEAD", "body": "x"},
                                    {"method": "POST", "body": "x", "content_type": "text/plain\r\nX-Injected: 1"},
                                    {"method": "POST", "body": "x", "content_type": "text/plain\r\n; X-Injected: 1"}])
def test_a_read_carries_no_body_and_a_content_type_is_one_header(fields: dict) -> None:
    with pytest.raises(ValidationError):
        HttpFetchArgs(url="https://example.com/", **fields)


def test_the_default_policy_gates_a_post_bound_to_its_body() -> None:
    policy = load_default_policy().model_copy(deep=True)
    policy.principals = [p.model_copy(update={"hosts": ["api.example.com"]}) if p.role == "researcher" else p for p in policy.principals]
    get = HttpFetchArgs(url="https://api.example.com/orders")
    one, other = (HttpFetchArgs(url="https://api.example.com/orders", method="POST", body=b) for b in ('{"n": 1}', '{"n": 2}'))
    assert evaluate(policy, "researcher", "http_fetch", SideEffect.READ, get).outcome == "allow"
    decision = evaluate(policy, "researcher", "http_fetch", SideEffect.READ, one)
    assert decision.outcome == "gate" and decision.rule.name == "http-not-get"
    assert action_sha256("http_fetch", one) != action_sha256("http_fetch", other)  # an approval of one body is not of another
