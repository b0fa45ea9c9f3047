"""One implementation of each security rule, used by the policy gate (workflow side) and by the tool
(activity side): the same cases go to both call sites, so they cannot drift apart again.

Host allow-lists: a role's `hosts` (gate) and FOREMAN_HTTP_ALLOWED_HOSTS (`http_fetch`). SQL scanning:
the `sql_not_select` gate and `sql_query`'s one-statement, read-only check. Retry-After: the model
providers' error mapping and `http_fetch`'s status errors, both against real HTTP responses.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities.providers.http_errors import error_from_response
from activities.tools import tool_implementations
from activities.tools.cache import ToolCache
from activities.tools.http import HttpTools
from contracts.policy import Policy, Principal, SqlNotSelectGate
from contracts.tools import HttpFetchArgs, SideEffect, SqlQueryArgs
from core.policy import evaluate
from stores import Stores
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from stores.memory_sqlite import SqliteMemoryStore
from stores.workspace_files import LocalWorkspace


@pytest.fixture
def tools(tmp_path: Path) -> dict:
    stores = Stores(
        content=FileContentStore(tmp_path / "content"),
        workspace=LocalWorkspace(tmp_path / "workspace"),
        corpus=SqliteCorpusIndex(tmp_path / "corpus", tmp_path / "index.sqlite"),
        database=SqliteDatabase(tmp_path / "demo.sqlite", seed=settings.DEMO_SQL_SEED),
        memory=SqliteMemoryStore(tmp_path / "memory.sqlite"),
    )
    return tool_implementations(stores)


# --- hosts ---------------------------------------------------------------------------------------

HOSTS = [
    # host, allow-list, allowed
    ("example.com", ["example.com"], True),
    ("Example.COM", ["example.com"], True),
    ("example.com.", ["example.com"], True),  # a fully qualified name is the same host
    ("example.com", ["Example.com."], True),
    ("api.example.com", ["*.example.com"], True),
    ("example.com", ["*.example.com"], False),  # the wildcard means subdomains only
    ("evil-example.com", ["*.example.com"], False),
    ("example.com.evil.net", ["example.com"], False),
    ("127.0.0.1", ["example.com"], False),
]


@pytest.mark.parametrize("host, patterns, allowed", HOSTS)
def test_the_gate_matches_hosts(host: str, patterns: list[str], allowed: bool) -> None:
    policy = Policy(principals=[Principal(role="r", tools=["http_fetch"], hosts=patterns)])
    decision = evaluate(policy, "r", "http_fetch", SideEffect.READ, HttpFetchArgs(url=f"http://{host}:9/"))
    assert (decision.outcome == "allow") is allowed, decision


class NoSuchNames:
    """A resolver that notes each name it is asked and says none exists: the test sends no DNS query."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, host: str) -> list[str]:
        self.asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("host, patterns, allowed", HOSTS)
async def test_http_fetch_matches_hosts_the_same_way(
    host: str, patterns: list[str], allowed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOREMAN_HTTP_ALLOWED_HOSTS", ",".join(patterns))
    resolver = NoSuchNames()
    http_fetch = HttpTools(FileContentStore(tmp_path / "content"), ToolCache(None), resolver=resolver).http_fetch
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(http_fetch, HttpFetchArgs(url=f"http://{host}:9/"))
    assert (refused.value.type != "ToolNotAllowed") is allowed, refused.value
    assert bool(resolver.asked) is allowed  # an allowed host goes on to be resolved (and to fail there: no such name)


# --- SQL -----------------------------------------------------------------------------------------

SQL = [
    # statement, the gate lets it through without approval, the tool runs it
    ("SELECT 1", True, True),
    ("select 'a;b' AS s", True, True),  # a ; inside a literal ends nothing
    ("select 'it''s; fine' AS s", True, True),  # '' is an escaped quote, not the end of the literal
    ("SELECT 1 -- ; DROP TABLE runs", True, True),  # a ; inside a comment ends nothing
    ("/* ; */ SELECT 1", True, True),
    ("SELECT 1;", True, True),
    ("SELECT 1; DROP TABLE runs", False, False),
    ("select 'it''s'; DELETE FROM runs", False, False),
    ("WITH d AS (SELECT 1) DELETE FROM runs", False, False),
    ("DROP TABLE runs", False, False),
    ("", False, False),
    ("SELECT 'delete' AS word", True, True),  # a keyword inside a literal is data
    # The gate is deliberately more careful than the tool: a write keyword outside literals asks a human.
    ("SELECT 1 AS update_count, 2 AS [update]", True, True),
    ("SELECT replace('a', 'a', 'b') AS r", False, True),
]


@pytest.mark.parametrize("sql, gate_allows, _", SQL)
def test_the_gate_scans_sql(sql: str, gate_allows: bool, _: bool) -> None:
    policy = Policy(
        principals=[Principal(role="r", tools=["sql_query"])],
        gates=[{"name": "sql", "when": [SqlNotSelectGate()]}],
    )
    decision = evaluate(policy, "r", "sql_query", SideEffect.READ, SqlQueryArgs(sql=sql))
    assert (decision.outcome == "allow") is gate_allows, decision


@pytest.mark.parametrize("sql, _, tool_runs", SQL)
async def test_sql_query_scans_sql_the_same_way(sql: str, _: bool, tool_runs: bool, tools: dict) -> None:
    run = ActivityEnvironment().run(tools["sql_query"], SqlQueryArgs(sql=sql))
    if tool_runs:
        assert (await run).ok
    else:
        with pytest.raises(ApplicationError) as refused:
            await run
        assert refused.value.type == "ToolArgumentsInvalid" and refused.value.non_retryable


# --- Retry-After ---------------------------------------------------------------------------------

def http_dates(headers: dict) -> dict:
    """`{"Retry-After": "date+30"}` becomes an HTTP date 30 s from now (made when the test runs, not when it is collected)."""
    def value(raw: str) -> str:
        if not raw.startswith("date"):
            return raw
        return format_datetime(datetime.now(UTC) + timedelta(seconds=int(raw.removeprefix("date"))), usegmt=True)

    return {name: value(raw) for name, raw in headers.items()}


RETRY_AFTER = [
    # response headers, the delay Temporal's next attempt waits (seconds), None: its own backoff
    ({"Retry-After": "2"}, 2.0),
    ({"Retry-After": "1.5"}, 1.5),
    ({"Retry-After": "0"}, None),
    ({"Retry-After": "-3"}, None),
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": "99999"}, 600.0),  # capped at 10 minutes
    ({"Retry-After-Ms": "250"}, 0.25),
    ({"Retry-After": "date+30"}, 30.0),  # an HTTP date
    ({"Retry-After": "date-30"}, None),
]


class _TooMany(BaseHTTPRequestHandler):
    """429 with the headers named in the query string (for both GET and POST)."""

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(429)
        for name, value in parse_qsl(urlsplit(self.path).query):
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def too_many() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TooMany)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def seconds(delay: timedelta | None) -> float | None:
    return None if delay is None else delay.total_seconds()


@pytest.mark.parametrize("headers, expected", RETRY_AFTER, ids=[str(h) for h, _ in RETRY_AFTER])
async def test_model_providers_honour_retry_after(headers: dict, expected: float | None, too_many: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{too_many}/v1/chat/completions", params=http_dates(headers))
    error = error_from_response(response, provider="openai")
    assert error.type == "ModelRateLimited" and seconds(error.next_retry_delay) == pytest.approx(expected, abs=2)


@pytest.mark.parametrize("headers, expected", RETRY_AFTER, ids=[str(h) for h, _ in RETRY_AFTER])
async def test_http_fetch_honours_retry_after_the_same_way(
    headers: dict, expected: float | None, too_many: str, tools: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")  # the 429 server is local
    url = str(httpx.URL(f"{too_many}/page", params=http_dates(headers)))
    with pytest.raises(ApplicationError) as transient:
        await ActivityEnvironment().run(tools["http_fetch"], HttpFetchArgs(url=url))
    assert transient.value.type == "ToolTransient" and seconds(transient.value.next_retry_delay) == pytest.approx(expected, abs=2)


def test_a_request_shows_its_action_only_when_its_arguments_hash_to_it() -> None:
    """What the inbox and a signer check before showing or signing a listed request (a forged subagent report could
    keep a real request id and action hash and show harmless arguments)."""
    from contracts.tools import WriteFileArgs
    from core.policy import action_sha256, canonical_arguments, shows_its_action

    real = WriteFileArgs(path="published/x.md", content="rm -rf everything")
    action = action_sha256("write_file", real)
    assert shows_its_action("write_file", canonical_arguments(real), action)
    harmless = canonical_arguments(WriteFileArgs(path="drafts/x.md", content="a kind note"))
    assert not shows_its_action("write_file", harmless, action)
    assert not shows_its_action("read_file", canonical_arguments(real), action)
