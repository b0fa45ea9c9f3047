"""Tool activities run directly under `ActivityEnvironment`, bound to stores that live in tmp_path.

HTTP is exercised against a real server on 127.0.0.1; SQL against a database built from demo/seed.sql;
search against a copy of demo/corpus, so edits made by a test never touch the repository.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from jsonschema import Draft202012Validator
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities import content_store
from activities.tools import TOOLS, tool_activities, tool_implementations
from activities.tools import http as http_tool
from activities.tools.sql import SqlTools
from contracts.tools import (
    CalculateArgs,
    HttpFetchArgs,
    ListFilesArgs,
    ReadFileArgs,
    SearchCorpusArgs,
    SideEffect,
    SqlQueryArgs,
    ToolResult,
    WriteFileArgs,
)
from stores import ContentStore, Stores
from stores.content_files import FileContentStore
from stores.corpus_sqlite import SqliteCorpusIndex, fts_query
from stores.database_sqlite import SqliteDatabase, ensure_database
from stores.memory_sqlite import SqliteMemoryStore
from stores.workspace_files import LocalWorkspace

DEMO_CORPUS = settings.PROJECT_ROOT / "demo" / "corpus"
BIG_LINES = 5_000  # "line NNNN\n" * 5000 is ~50 KB: over the 4,000-char preview


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {
        "workspace": tmp_path / "workspace",
        "corpus": tmp_path / "corpus",
        "index": tmp_path / "index" / "corpus.sqlite",
        "db": tmp_path / "demo.sqlite",
        "content": tmp_path / "content",
    }
    shutil.copytree(DEMO_CORPUS, paths["corpus"])
    monkeypatch.delenv("FOREMAN_HTTP_ALLOWED_HOSTS", raising=False)
    # The HTTP tests' server is on 127.0.0.1, which http_fetch refuses unless the worker names it (tests/test_http_ssrf.py).
    monkeypatch.setenv("FOREMAN_HTTP_PRIVATE_HOSTS", "127.0.0.1")
    return paths


@pytest.fixture
def stores(dirs: dict[str, Path]) -> Stores:
    return Stores(
        content=FileContentStore(dirs["content"]),
        workspace=LocalWorkspace(dirs["workspace"]),
        corpus=SqliteCorpusIndex(dirs["corpus"], dirs["index"]),
        # Seeded like the demo database: the tool builds it from seed.sql on first use.
        database=SqliteDatabase(dirs["db"], seed=settings.DEMO_SQL_SEED),
        memory=SqliteMemoryStore(dirs["workspace"].parent / "memory.sqlite"),
    )


@pytest.fixture
def tools(stores: Stores) -> SimpleNamespace:
    """Every tool's activity bound to `stores`, by name (`tools.read_file`)."""
    return SimpleNamespace(**tool_implementations(stores))


async def run(fn, args) -> ToolResult:
    return await ActivityEnvironment().run(fn, args)


async def fails(fn, args, error_type: str, *, retryable: bool = False) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await run(fn, args)
    assert info.value.type == error_type, info.value
    assert info.value.non_retryable is not retryable
    return info.value


def assert_full_output_stored(content: ContentStore, result: ToolResult) -> str:
    assert result.truncated and result.content_ref
    full = content.get(result.content_ref)
    assert hashlib.sha256(full.encode()).hexdigest() == result.content_sha256
    assert full.startswith(result.content)
    return full


# --- http_fetch -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/text":
            self._reply(200, "hello, durable world ✓".encode())
        elif self.path == "/latin1":
            self._reply(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif self.path == "/big":
            self._reply(200, "".join(f"line {i:04d}\n" for i in range(BIG_LINES)).encode())
        elif self.path == "/missing":
            self._reply(404, b"no such page")
        elif self.path == "/unavailable":
            self._reply(503, b"try later", Retry_After="2")
        elif self.path == "/redirect-out":
            port = self.server.server_address[1]
            self._reply(302, b"", Location=f"http://localhost:{port}/text")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._reply(200, b"too late")
        else:
            self._reply(404, b"")

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # the /slow client hangs up early
        pass


@pytest.fixture(scope="module")
def server() -> str:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_http_fetch_text(server: str, tools: SimpleNamespace) -> None:
    result = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/text"))
    assert result.ok and not result.truncated
    assert result.content.startswith("HTTP 200 text/plain")
    assert result.content.endswith("hello, durable world ✓")
    latin = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/latin1"))
    assert latin.content.endswith("café")
    head = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/text", method="HEAD"))
    assert "content-length:" in head.content


async def test_http_status_errors(server: str, tools: SimpleNamespace) -> None:
    missing = await fails(tools.http_fetch, HttpFetchArgs(url=f"{server}/missing"), "ToolFailed")
    assert "404" in str(missing) and missing.details == (404,)
    unavailable = await fails(tools.http_fetch, HttpFetchArgs(url=f"{server}/unavailable"), "ToolTransient", retryable=True)
    assert unavailable.next_retry_delay is not None and unavailable.next_retry_delay.total_seconds() == 2


async def test_http_network_errors(server: str, monkeypatch: pytest.MonkeyPatch, tools: SimpleNamespace) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    await fails(tools.http_fetch, HttpFetchArgs(url=f"http://127.0.0.1:{closed_port}/"), "ToolTransient", retryable=True)
    monkeypatch.setattr(http_tool, "_TIMEOUT", httpx.Timeout(0.2))
    await fails(tools.http_fetch, HttpFetchArgs(url=f"{server}/slow"), "ToolTransient", retryable=True)


async def test_http_refuses_bad_schemes_and_hosts(server: str, monkeypatch: pytest.MonkeyPatch, tools: SimpleNamespace) -> None:
    for url in ("ftp://127.0.0.1/file", "file:///etc/passwd", "not a url"):
        await fails(tools.http_fetch, HttpFetchArgs(url=url), "ToolArgumentsInvalid")
    monkeypatch.setenv("FOREMAN_HTTP_ALLOWED_HOSTS", "example.com, *.example.org")
    await fails(tools.http_fetch, HttpFetchArgs(url=f"{server}/text"), "ToolNotAllowed")
    monkeypatch.setenv("FOREMAN_HTTP_ALLOWED_HOSTS", "127.0.0.1")
    assert (await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/text"))).ok
    # A redirect is reported, not followed: the next hop is a new call that policy checks again.
    redirected = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/redirect-out"))
    assert redirected.ok and redirected.content.startswith("HTTP 30") and " to http://localhost" in redirected.content


async def test_http_body_capped_at_max_bytes(server: str, tools: SimpleNamespace) -> None:
    result = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/big", max_bytes=100))
    header, body = result.content.split("\n\n", 1)
    assert "truncated at max_bytes=100" in header
    assert body == "".join(f"line {i:04d}\n" for i in range(10))


async def test_http_large_body_goes_to_content_store(server: str, tools: SimpleNamespace, stores: Stores) -> None:
    result = await run(tools.http_fetch, HttpFetchArgs(url=f"{server}/big"))
    full = assert_full_output_stored(stores.content, result)
    assert full.endswith(f"line {BIG_LINES - 1:04d}\n") and len(result.content) == content_store.PREVIEW_CHARS


# --- workspace ---------------------------------------------------------------------------------


async def test_write_read_list_round_trip(dirs: dict[str, Path], tools: SimpleNamespace) -> None:
    content = "# Notes\n\nDurable ✓\n"
    written = await run(tools.write_file, WriteFileArgs(path="reports/2025/notes.md", content=content))
    size = len(content.encode())
    digest = hashlib.sha256(content.encode()).hexdigest()
    assert written.content == f"wrote reports/2025/notes.md ({size} bytes, sha256 {digest})"
    assert (await run(tools.read_file, ReadFileArgs(path="reports/2025/notes.md"))).content == content
    # Overwrite through a path that wanders but stays inside.
    await run(tools.write_file, WriteFileArgs(path="reports/../reports/2025/notes.md", content="v2"))
    assert (dirs["workspace"] / "reports/2025/notes.md").read_text() == "v2"
    listing = await run(tools.list_files, ListFilesArgs())
    assert "reports/2025/notes.md\t2" in listing.content
    assert not [p for p in dirs["workspace"].rglob(".tmp-*")]


async def test_workspace_refuses_escapes(dirs: dict[str, Path], tmp_path: Path, tools: SimpleNamespace) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    dirs["workspace"].mkdir(parents=True)
    (dirs["workspace"] / "link").symlink_to(outside, target_is_directory=True)
    (dirs["workspace"] / "secret-link.txt").symlink_to(outside / "secret.txt")
    for path in ("../x", "../../etc/passwd", "/etc/passwd", "link/secret.txt", "secret-link.txt", "a/../../x"):
        await fails(tools.read_file, ReadFileArgs(path=path), "PathOutsideWorkspace")
    for path in ("../x", "/tmp/x", "link/new.txt"):
        await fails(tools.write_file, WriteFileArgs(path=path, content="x"), "PathOutsideWorkspace")
    await fails(tools.list_files, ListFilesArgs(path="link"), "PathOutsideWorkspace")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"
    listing = await run(tools.list_files, ListFilesArgs(path="."))
    assert "secret" not in listing.content


async def test_workspace_missing_and_large_files(dirs: dict[str, Path], tools: SimpleNamespace, stores: Stores) -> None:
    await fails(tools.read_file, ReadFileArgs(path="nope.txt"), "ToolFailed")
    await fails(tools.list_files, ListFilesArgs(path="nope"), "ToolFailed")
    big = "".join(f"row {i}\n" for i in range(2_000))
    await run(tools.write_file, WriteFileArgs(path="big.txt", content=big))
    assert assert_full_output_stored(stores.content, await run(tools.read_file, ReadFileArgs(path="big.txt"))) == big


# --- sql_query ---------------------------------------------------------------------------------


async def test_sql_select_builds_demo_database(dirs: dict[str, Path], tools: SimpleNamespace) -> None:
    assert not dirs["db"].exists()
    result = await run(tools.sql_query, SqlQueryArgs(sql="SELECT name, provider FROM models ORDER BY name;"))
    assert dirs["db"].exists()
    lines = result.content.splitlines()
    assert lines[0] == "name | provider"
    assert lines[1:] == ["claude-3-5-haiku | anthropic", "gpt-4o-mini | openai", "smollm2-360m-local | local", "(3 rows)"]
    with_params = await run(
        tools.sql_query,
        SqlQueryArgs(sql="WITH r AS (SELECT * FROM runs WHERE model = ?) SELECT COUNT(*) AS n FROM r", params=["gpt-4o-mini"]),
    )
    assert with_params.content.splitlines()[0] == "n"
    capped = await run(tools.sql_query, SqlQueryArgs(sql="SELECT id FROM tool_calls ORDER BY id", max_rows=3))
    assert capped.content.splitlines()[1:] == ["1", "2", "3", "(3 rows; stopped at max_rows=3, more rows exist)"]
    semicolon = await run(tools.sql_query, SqlQueryArgs(sql="SELECT 'a;b' AS s, NULL AS n -- trailing; comment"))
    assert semicolon.content.splitlines()[1] == "a;b | NULL"


async def test_sql_refuses_writes_and_leaves_database_unchanged(dirs: dict[str, Path], tools: SimpleNamespace) -> None:
    ensure_database(dirs["db"], settings.DEMO_SQL_SEED)
    before = hashlib.sha256(dirs["db"].read_bytes()).hexdigest()
    for statement in (
        "INSERT INTO models VALUES ('x', 'y', 0, 0)",
        "DROP TABLE runs",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE 'other.sqlite' AS other",
        "SELECT 1; DROP TABLE runs",
        "SELECT 1;; SELECT 2",
        "WITH doomed AS (SELECT 1) DELETE FROM runs",
        "",
    ):
        await fails(tools.sql_query, SqlQueryArgs(sql=statement), "ToolArgumentsInvalid")
    syntax = await fails(tools.sql_query, SqlQueryArgs(sql="SELECT * FROM nowhere"), "ToolArgumentsInvalid")
    assert "models, runs, tool_calls" in str(syntax)
    assert hashlib.sha256(dirs["db"].read_bytes()).hexdigest() == before
    assert "24" in (await run(tools.sql_query, SqlQueryArgs(sql="SELECT COUNT(*) FROM runs"))).content


async def test_sql_runaway_query_is_stopped(dirs: dict[str, Path], stores: Stores) -> None:
    impatient = SqlTools(SqliteDatabase(dirs["db"], seed=settings.DEMO_SQL_SEED, query_seconds=0.2), stores.content)
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"
    error = await fails(impatient.sql_query, SqlQueryArgs(sql=endless), "ToolFailed")
    assert "stopped" in str(error)


async def test_sql_missing_database(stores: Stores, tmp_path: Path) -> None:
    unseeded = SqlTools(SqliteDatabase(tmp_path / "absent.sqlite"), stores.content)
    await fails(unseeded.sql_query, SqlQueryArgs(sql="SELECT 1"), "ToolFailed")
    assert not (tmp_path / "absent.sqlite").exists()


# --- calculate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2^8", "256"),
        ("-3 + +5", "2"),
        ("10 / 4", "2.5"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(pi, 3)", "3.142"),
        ("max(1, 7, 3) - min(4, 2)", "5"),
        ("log(e) + log10(1000) + log(8, 2)", "7"),
        ("round(cos(0) + sin(0) + exp(0), 2)", "2"),
        ("2 ** -1", "0.5"),
        ("3 ** 200", str(3**200)),
    ],
)
async def test_calculate(expression: str, expected: str, tools: SimpleNamespace) -> None:
    assert (await run(tools.calculate, CalculateArgs(expression=expression))).content == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os')", "not allowed"),
        ("2**10**10", "too large"),
        ("9**9**9**9", "too large"),
        ("10.0 ** 400", "too large"),
        ("exp(1000)", "too large"),
        ("x + 1", "unknown name"),
        ("(1).__class__", "unsupported syntax"),
        ("math.sqrt(4)", "not allowed"),
        ("open('/etc/passwd')", "not allowed"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("(-8) ** 0.5", "complex"),
        ("round(5, -10**9)", "round()"),
        ("'a' * 3", "unsupported literal"),
        ("[1, 2]", "unsupported syntax"),
        ("lambda: 1", "unsupported syntax"),
        ("2 +", "not a valid expression"),
        ("True + 1", "unsupported literal"),
        ("1 << 4000", "unsupported operator"),
    ],
)
async def test_calculate_refuses(expression: str, reason: str, tools: SimpleNamespace) -> None:
    error = await fails(tools.calculate, CalculateArgs(expression=expression), "ToolArgumentsInvalid")
    assert reason in str(error)


# --- search_corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("retry policy backoff coefficient", "activities-retries-timeouts.md"),
        ("approval update validator", "human-in-the-loop.md"),
        ("replay non-determinism sandbox", "determinism-and-replay.md"),
        ("idempotency key, rename a temporary file?", "idempotency.md"),
        ("What does a token budget cost?", "cost-budgets.md"),
        ("OpenTelemetry gen_ai spans", "observability-llm-calls.md"),
    ],
)
async def test_search_ranks_the_right_document_first(query: str, expected: str, tools: SimpleNamespace) -> None:
    result = await run(tools.search_corpus, SearchCorpusArgs(query=query, limit=3))
    blocks = result.content.split("\n\n")
    assert blocks[0].split()[1] in ("result", "results") and int(blocks[0].split()[0]) <= 3
    first = blocks[1].splitlines()
    assert first[0].startswith("[1] ") and first[1] == f"[source: {expected}]"
    assert first[2].startswith("score: ") and float(first[2].removeprefix("score: ")) > 0
    assert "**" in first[3]  # the snippet highlights matched terms


async def test_search_first_hit_has_title(tools: SimpleNamespace) -> None:
    result = await run(tools.search_corpus, SearchCorpusArgs(query="heartbeat timeout"))
    assert "[1] Activities, retries and timeouts\n[source: activities-retries-timeouts.md]" in result.content


@pytest.mark.parametrize(
    "query",
    ['AND OR NOT "unbalanced ( * ^ :col NEAR(', '"; DROP TABLE docs; --', "c++ && || ~! {x}", "retry*", "-", "???"],
)
async def test_search_survives_punctuation(query: str, tools: SimpleNamespace) -> None:
    result = await run(tools.search_corpus, SearchCorpusArgs(query=query))
    assert result.ok
    assert fts_query("???") is None


async def test_search_reindexes_changes(dirs: dict[str, Path], tools: SimpleNamespace) -> None:
    async def sources(query: str) -> list[str]:
        text = (await run(tools.search_corpus, SearchCorpusArgs(query=query))).content
        return [line.removeprefix("[source: ").removesuffix("]") for line in text.splitlines() if line.startswith("[source: ")]

    assert await sources("zymurgy") == []
    note = dirs["corpus"] / "extra" / "brewing.md"
    note.parent.mkdir()
    note.write_text("# Brewing\n\nZymurgy is the study of fermentation.\n")
    assert await sources("zymurgy") == ["extra/brewing.md"]
    note.write_text("# Brewing\n\nQuokkas are small marsupials, unrelated to fermentation.\n")
    assert await sources("zymurgy") == []
    assert await sources("quokkas") == ["extra/brewing.md"]
    note.unlink()
    assert await sources("quokkas") == []
    (dirs["corpus"] / "cost-budgets.md").unlink()
    assert "cost-budgets.md" not in await sources("budget tokens cost")


async def test_search_concurrent_first_use(tools: SimpleNamespace) -> None:
    results = await asyncio.gather(
        *(run(tools.search_corpus, SearchCorpusArgs(query="durable execution workflow")) for _ in range(6))
    )
    assert len({r.content for r in results}) == 1 and "[source: durable-execution.md]" in results[0].content


# --- registry -----------------------------------------------------------------------------------


def test_registry_lists_all_tools(stores: Stores) -> None:
    expected = {
        "http_fetch": SideEffect.READ,
        "read_file": SideEffect.READ,
        "write_file": SideEffect.WRITE,
        "list_files": SideEffect.READ,
        "sql_query": SideEffect.READ,
        "calculate": SideEffect.READ,
        "search_corpus": SideEffect.READ,
        "remember": SideEffect.WRITE,
        "recall": SideEffect.READ,
        "run_python": SideEffect.EXECUTE,
    }
    assert {name: definition.side_effect for name, definition in TOOLS.items()} == expected
    implementations = tool_implementations(stores)
    activities = list(implementations.values())  # what tool_activities(stores) registers, in catalogue order
    assert len(activities) == len(expected)
    assert [activity._Definition.must_from_callable(fn).name for fn in tool_activities(stores)] == list(TOOLS)
    for name, definition in TOOLS.items():
        assert implementations[name] in activities
        assert activity._Definition.must_from_callable(implementations[name]).name == name
        assert definition.description and "\n" not in definition.description
        schema = definition.schema()
        assert schema.name == name
        parameters = json.loads(schema.parameters_json)
        Draft202012Validator.check_schema(parameters)
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False


async def test_write_file_refuses_content_that_is_not_the_expected_artifact(tmp_path: Path, tools: SimpleNamespace) -> None:
    good = hashlib.sha256(b"the brief").hexdigest()
    written = await run(tools.write_file, WriteFileArgs(path="briefs/a.md", content="the brief", expected_sha256=good))
    assert written.ok and good in written.content
    with pytest.raises(ApplicationError) as refused:
        await run(tools.write_file, WriteFileArgs(path="briefs/b.md", content="another text", expected_sha256=good))
    assert refused.value.type == "ArtifactMismatch" and refused.value.non_retryable
    assert not (tmp_path / "workspace" / "briefs" / "b.md").exists()


async def test_write_file_does_not_follow_symlinks_inside_the_workspace(dirs: dict[str, Path], tools: SimpleNamespace) -> None:
    """Policy gates judge the path as written (drafts/...); a symlink must not move the write elsewhere."""
    workspace = dirs["workspace"]
    (workspace / "published").mkdir(parents=True)
    (workspace / "drafts").symlink_to(workspace / "published")
    await fails(tools.write_file, WriteFileArgs(path="drafts/x.md", content="x"), "PathOutsideWorkspace")
    assert not (workspace / "published" / "x.md").exists()
    written = await run(tools.write_file, WriteFileArgs(path="./notes/../notes/y.md", content="y"))
    assert written.ok and (workspace / "notes" / "y.md").read_text() == "y"
