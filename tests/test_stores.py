"""Stores: built from settings in one place (and nowhere opened before use), each backend satisfies its
protocol, and activities use the stores they are given, never a path of their own."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import settings
from activities.content_store import PREVIEW_CHARS, tool_result
from activities.tools import tool_implementations
from activities.tools.registry import run_store
from contracts.errors import ErrorType
from contracts.tools import ReadFileArgs, WriteFileArgs
from playbooks import available_playbooks, load_default_policy, load_playbook, playbook_folders
from stores import CallCache, ContentStore, CorpusIndex, MemoryStore, SqlDatabase, StoreError, Stores, Workspace, from_settings
from stores.cache_postgres import PostgresCallCache
from stores.cache_sqlite import SqliteCallCache
from stores.content_files import FileContentStore
from stores.content_s3 import S3ContentStore
from stores.corpus_sqlite import SqliteCorpusIndex
from stores.database_sqlite import SqliteDatabase
from stores.memory_postgres import PostgresMemoryStore
from stores.memory_sqlite import SqliteMemoryStore
from stores.workspace_files import LocalWorkspace
from tests.llama_server import free_port
from tests.store_servers import MotoS3Server
from worker import all_activities


class MemoryContentStore:
    """A second `ContentStore` backend: proves callers depend on the protocol, not on files."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def put(self, text: str) -> str:
        ref = f"mem:{len(self.texts)}"
        self.texts[ref] = text
        return ref

    def get(self, ref: str) -> str:
        return self.texts[ref]


def test_from_settings_reads_the_configured_paths_and_opens_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, name in [
        ("FOREMAN_WORKSPACE", "ws"), ("FOREMAN_CONTENT_STORE", "content"), ("FOREMAN_CORPUS", "corpus"),
        ("FOREMAN_CORPUS_INDEX", "index.sqlite"), ("FOREMAN_SQL_DATABASE", "db.sqlite"),
    ]:
        monkeypatch.setenv(variable, str(tmp_path / name))
    built = from_settings()
    assert isinstance(built.content, FileContentStore) and built.content.root == tmp_path / "content"
    assert isinstance(built.workspace, LocalWorkspace) and built.workspace.root == tmp_path / "ws"
    assert isinstance(built.corpus, SqliteCorpusIndex) and built.corpus.root == tmp_path / "corpus"
    assert built.corpus.index_path == tmp_path / "index.sqlite"
    assert isinstance(built.database, SqliteDatabase) and built.database.path == tmp_path / "db.sqlite"
    assert built.database.seed is None  # only the demo database is built from a seed
    assert list(tmp_path.iterdir()) == []  # building the stores created nothing


def test_only_the_demo_database_is_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOREMAN_SQL_DATABASE", raising=False)
    assert settings.sql_database_path() == settings.DEMO_SQL_DATABASE.resolve()
    database = from_settings().database
    assert isinstance(database, SqliteDatabase) and database.seed == settings.DEMO_SQL_SEED


def test_each_backend_satisfies_its_protocol(tmp_path: Path) -> None:
    assert isinstance(FileContentStore(tmp_path / "c"), ContentStore)
    assert isinstance(S3ContentStore("bucket", endpoint_url="http://127.0.0.1:1"), ContentStore)
    assert isinstance(MemoryContentStore(), ContentStore)
    assert isinstance(LocalWorkspace(tmp_path / "w"), Workspace)
    assert isinstance(SqliteCorpusIndex(tmp_path / "corpus", tmp_path / "i.sqlite"), CorpusIndex)
    assert isinstance(SqliteDatabase(tmp_path / "d.sqlite"), SqlDatabase)
    assert isinstance(SqliteMemoryStore(tmp_path / "m.sqlite"), MemoryStore)
    assert isinstance(PostgresMemoryStore("postgresql://127.0.0.1:1/x"), MemoryStore)
    assert isinstance(SqliteCallCache(tmp_path / "c.sqlite", 60), CallCache)
    assert isinstance(PostgresCallCache("postgresql://127.0.0.1:1/x", 60), CallCache)
    assert not any(tmp_path.iterdir())


def test_from_settings_builds_the_configured_backends_and_connects_to_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREMAN_STORE_BACKEND", "Postgres")
    monkeypatch.setenv("FOREMAN_DATABASE_URL", f"postgresql://foreman:pw@127.0.0.1:{free_port()}/foreman")  # nobody listens
    monkeypatch.setenv("FOREMAN_CONTENT_BACKEND", "s3")
    monkeypatch.setenv("FOREMAN_S3_BUCKET", "foreman")
    monkeypatch.setenv("FOREMAN_S3_ENDPOINT", "http://minio:9000")
    built = from_settings()
    assert isinstance(built.memory, PostgresMemoryStore) and isinstance(built.cache, PostgresCallCache)
    assert isinstance(built.content, S3ContentStore) and built.content._client is None  # no client until first use
    assert (built.content.bucket, built.content.endpoint_url, built.content.prefix) == ("foreman", "http://minio:9000", "content/")
    monkeypatch.setenv("FOREMAN_CACHE", "off")
    assert from_settings().cache is None


@pytest.mark.parametrize(("variables", "says"), [
    ({"FOREMAN_STORE_BACKEND": "mysql"}, "FOREMAN_STORE_BACKEND must be one of sqlite, postgres, not 'mysql'"),
    ({"FOREMAN_STORE_BACKEND": "postgres"}, "FOREMAN_STORE_BACKEND=postgres needs FOREMAN_DATABASE_URL"),
    ({"FOREMAN_STORE_BACKEND": "postgres", "FOREMAN_DATABASE_URL": "host=db password=pw dbname"}, "FOREMAN_DATABASE_URL is not"),
    ({"FOREMAN_CONTENT_BACKEND": "gcs"}, "FOREMAN_CONTENT_BACKEND must be one of files, s3, not 'gcs'"),
    ({"FOREMAN_CONTENT_BACKEND": "s3"}, "FOREMAN_CONTENT_BACKEND=s3 needs FOREMAN_S3_BUCKET"),
])
def test_a_misconfigured_backend_is_a_typed_error(variables: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOREMAN_DATABASE_URL", raising=False)
    monkeypatch.delenv("FOREMAN_S3_BUCKET", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreError) as refused:
        from_settings()
    assert refused.value.error_type is ErrorType.STORE_CONFIG and not refused.value.retryable
    assert str(refused.value).startswith(says)


@pytest.fixture
def s3_bucket(s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on moto's server; credentials come from the environment, as boto3 reads them in production."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"foreman-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


def test_s3_content_store_keeps_the_file_stores_references(tmp_path: Path, s3_server: MotoS3Server, s3_bucket: str) -> None:
    store = S3ContentStore(s3_bucket, endpoint_url=s3_server.endpoint_url, prefix="content/")
    ref = store.put("hello ✓")
    assert ref == FileContentStore(tmp_path / "content").put("hello ✓") and store.put("hello ✓") == ref
    other_worker = S3ContentStore(s3_bucket, endpoint_url=s3_server.endpoint_url, prefix="content/")
    assert other_worker.get(ref) == "hello ✓"
    listed = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1").list_objects_v2(Bucket=s3_bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["content/" + ref.removeprefix("sha256:")]
    big = "line ✓\n" * 2_000
    large = tool_result(store, "read_file", big)  # what a tool activity does with a large output
    assert large.truncated and other_worker.get(large.content_ref) == big
    for bad in ("sha256:" + "0" * 64, "hello", "sha256:../content", "sha256:" + "A" * 64, ""):
        with pytest.raises(KeyError):
            store.get(bad)


def test_s3_failures_are_typed(s3_server: MotoS3Server, s3_bucket: str) -> None:
    unreachable = S3ContentStore(s3_bucket, endpoint_url=f"http://127.0.0.1:{free_port()}")
    missing_bucket = S3ContentStore(f"{s3_bucket}-missing", endpoint_url=s3_server.endpoint_url)
    ref = "sha256:" + "0" * 64
    for store, error_type, retryable in ((unreachable, ErrorType.TOOL_TRANSIENT, True), (missing_bucket, ErrorType.STORE_CONFIG, False)):
        for call in (lambda: store.put("x"), lambda: store.get(ref)):
            with pytest.raises(StoreError) as refused:
                call()
            assert (refused.value.error_type, refused.value.retryable) == (error_type, retryable)


def test_content_store_round_trip_and_malformed_refs(tmp_path: Path) -> None:
    store = FileContentStore(tmp_path / "content")
    ref = store.put("hello ✓")
    assert ref.startswith("sha256:") and store.put("hello ✓") == ref
    assert store.get(ref) == "hello ✓"
    (tmp_path / "secret").write_text("outside")
    for bad in ("sha256:" + "0" * 64, "hello", "sha256:../secret", "sha256:" + "A" * 64, ""):
        with pytest.raises(KeyError):
            store.get(bad)


def test_workspace_resolve_is_canonical_and_confined(tmp_path: Path) -> None:
    workspace = LocalWorkspace(tmp_path / "ws")
    assert workspace.resolve("a/../b/./c.md") == "b/c.md"
    assert workspace.resolve(".") == "."
    for path in ("../x", "/etc/passwd", "C:\\x", "a/../../x"):
        with pytest.raises(StoreError) as refused:
            workspace.resolve(path)
        assert refused.value.error_type is ErrorType.PATH_OUTSIDE_WORKSPACE and not refused.value.retryable
    written = workspace.write_text("notes/a.md", "abc")
    assert (written.path, written.size_bytes) == ("notes/a.md", 3)
    assert workspace.read_text("notes/a.md") == "abc"
    assert workspace.list_files(".", limit=10).files == [("notes/a.md", 3)]


async def test_store_errors_become_typed_tool_failures() -> None:
    def busy() -> None:
        try:
            raise OSError("disk says no")
        except OSError as exc:
            raise StoreError(ErrorType.TOOL_TRANSIENT, "busy", retryable=True) from exc

    with pytest.raises(ApplicationError) as caught:
        await run_store(busy)
    assert caught.value.type == "ToolTransient" and not caught.value.non_retryable and caught.value.message == "busy"
    assert isinstance(caught.value.__cause__, OSError)  # the store's cause, as when tools raised it themselves


def test_tool_result_stores_large_output_in_the_store_it_is_given() -> None:
    memory = MemoryContentStore()
    small = tool_result(memory, "calculate", "42")
    assert small.content == "42" and small.content_ref is None and memory.texts == {}
    big = "x" * (PREVIEW_CHARS + 1)
    large = tool_result(memory, "read_file", big)
    assert large.truncated and large.content_ref == "mem:0" and memory.get("mem:0") == big


async def test_worker_binds_tools_to_the_stores_it_is_given(tmp_path: Path, foreman_home: Path) -> None:
    memory = MemoryContentStore()
    given = Stores(
        content=memory,
        workspace=LocalWorkspace(tmp_path / "given-ws"),
        corpus=SqliteCorpusIndex(tmp_path / "corpus", tmp_path / "index.sqlite"),
        database=SqliteDatabase(tmp_path / "db.sqlite"),
        memory=SqliteMemoryStore(tmp_path / "memory.sqlite"),
    )
    by_name = {fn.__name__: fn for fn in all_activities(stores=given)}  # each tool method is named after its tool
    assert {"plan_goal", "call_model", "verify_output"} <= by_name.keys()
    big = "line\n" * 2_000
    env = ActivityEnvironment()
    await env.run(by_name["write_file"], WriteFileArgs(path="big.txt", content=big))
    result = await env.run(by_name["read_file"], ReadFileArgs(path="big.txt"))
    assert (tmp_path / "given-ws" / "big.txt").read_text() == big
    assert result.content_ref and memory.get(result.content_ref) == big
    assert not foreman_home.exists()  # nothing went to the settings' locations
    assert tool_implementations(given).keys() == {
        n for n in by_name if n not in ("plan_goal", "call_model", "verify_output", "archive_content", "load_content", "extract_output",
                                        "run_check_tests", "call_mcp_tool")}


def test_playbooks_take_their_folders_from_settings_or_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "mine.json").write_text((settings.PROJECT_ROOT / "playbooks" / "research-brief.json").read_text())
    monkeypatch.delenv("FOREMAN_PLAYBOOKS_DIR", raising=False)
    assert "mine" not in available_playbooks()
    assert "mine" in available_playbooks(playbook_folders(folder))
    assert load_playbook("mine", playbook_folders(folder)) is not None
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    assert playbook_folders()[0] == folder and "mine" in available_playbooks()
    policy_file = tmp_path / "policy.json"
    policy = load_default_policy()
    policy_file.write_text(policy.model_copy(update={"approvers": policy.approvers[:1]}).model_dump_json())
    assert len(load_default_policy(policy_file).approvers) == 1
    monkeypatch.setenv("FOREMAN_POLICY_FILE", str(policy_file))
    assert load_default_policy() == load_default_policy(policy_file)


def test_observability_exporter_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOREMAN_OTEL_EXPORTER", raising=False)
    assert settings.otel_exporter() == "none"
    monkeypatch.setenv("FOREMAN_OTEL_EXPORTER", "Console")
    assert settings.otel_exporter() == "console"
