"""Contracts for tools: one argument model per tool (its JSON schema is what the model sees)
and one `ToolResult` for all of them.

Large outputs are not carried here: the result holds a bounded preview plus the SHA-256 and
content-store reference of the full output.
"""

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from contracts.sandbox import SandboxRun


class SideEffect(StrEnum):
    """How much a tool changes the world; policy keys off this."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"
    EXECUTE = "execute"  # runs code the model wrote (in the sandbox)


class ToolArgs(BaseModel):
    """Base for tool argument models: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


CACHE_FLAG = "cache"  # the stamped field of `CacheableArgs`; never part of what an action is (policy.canonical_arguments)


class CacheableArgs(ToolArgs):
    """Arguments of a tool whose result the worker may answer from its call cache (the catalogue says which
    tools, `core.tools`). The flag is stamped by the workflow (the goal's and the step's `cache` switches):
    the model does not see it (left out of the JSON schema) and whatever it sends is overwritten."""

    cache: SkipJsonSchema[bool] = Field(default=False, description="May the worker answer from its call cache (workflow-stamped).")


# "idem:v2:" + the tool's name (an MCP tool's is up to 197 characters) + ":" + a SHA-256 in hex.
MAX_KEY_CHARS = 320
KEY_FIELD = "idempotency_key"  # the stamped field of `KeyedArgs` (and `McpCall`); never part of what an action is either


class KeyedArgs(ToolArgs):
    """Arguments of a tool whose call may change the world (a write, destructive or execute side effect, or a
    non-GET `http_fetch`). The workflow stamps the call's idempotency key (`core.idempotency`): the model does
    not see the field (left out of the JSON schema) and whatever it sends is overwritten."""

    idempotency_key: SkipJsonSchema[str | None] = Field(
        default=None, max_length=MAX_KEY_CHARS, description="This call's idempotency key (workflow-stamped); the tool records its effect under it.",
    )

    def has_effect(self) -> bool:
        """Does this call change something (and so get a key)? Every call does, unless a tool says otherwise."""
        return True


SAFE_METHODS = frozenset({"GET", "HEAD"})
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+([ \t]*;[^\r\n]*)?")


class HttpFetchArgs(CacheableArgs, KeyedArgs):
    """Fetch a URL over HTTP(S) and return the response body as text; or send a request that changes something (POST,
    PUT, PATCH, DELETE: gated by the default policy, sent once per call with an `Idempotency-Key`)."""

    url: str = Field(description="Absolute http:// or https:// URL.", max_length=2048)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    body: str | None = Field(default=None, max_length=1_000_000, description="The request body (not with GET or HEAD).")
    content_type: str = Field(default="application/json", max_length=200, description="The body's Content-Type.")
    max_bytes: int = Field(default=200_000, gt=0, le=5_000_000)

    @field_validator("content_type")
    @classmethod
    def _one_media_type(cls, value: str) -> str:
        # Checked here, not as a schema pattern: a local model's grammar cannot take the regex.
        if not _MEDIA_TYPE.fullmatch(value):
            raise ValueError("content_type must be one media type, e.g. application/json (no line breaks)")
        return value

    @model_validator(mode="after")
    def _body_only_with_a_change(self) -> "HttpFetchArgs":
        if self.body is not None and self.method in SAFE_METHODS:
            raise ValueError(f"{self.method} sends no body")
        return self

    def has_effect(self) -> bool:
        """GET and HEAD change nothing at the server (cacheable, never keyed); any other method does."""
        return self.method not in SAFE_METHODS


class ReadFileArgs(ToolArgs):
    """Read a UTF-8 text file from the workspace."""

    path: str = Field(description="Path relative to the workspace root.", max_length=512)


class WriteFileArgs(KeyedArgs):
    """Write a UTF-8 text file in the workspace (atomically; parent folders are created)."""

    path: str = Field(description="Path relative to the workspace root.", max_length=512)
    content: str = Field(max_length=2_000_000)
    expected_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="If set, the write runs only if the content has this SHA-256."
    )


class ListFilesArgs(ToolArgs):
    """List files under a workspace folder."""

    path: str = Field(default=".", description="Folder relative to the workspace root.", max_length=512)


class SqlQueryArgs(ToolArgs):
    """Run one read-only SQL statement against the configured SQLite database."""

    sql: str = Field(max_length=20_000)
    params: list[str | int | float | None] = Field(default_factory=list)
    max_rows: int = Field(default=200, gt=0, le=10_000)


class CalculateArgs(ToolArgs):
    """Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses, a few math functions)."""

    expression: str = Field(max_length=1_000)


class SearchCorpusArgs(CacheableArgs):
    """Full-text search (bm25) over the local document corpus."""

    query: str = Field(min_length=1, max_length=1_000)
    limit: int = Field(default=5, gt=0, le=50)


class RunPythonArgs(KeyedArgs):
    """Run a Python 3 program in a sandbox (no network, a scratch copy of the workspace, strict limits).
    Files come back to the workspace only if listed in `outputs`."""

    code: str = Field(min_length=1, max_length=200_000, description="The program; print what you want to see.")
    outputs: list[str] = Field(
        default_factory=list, max_length=20,
        description="Workspace-relative files the program writes that should be kept (each at most 1 MB of UTF-8 text).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Wall-clock limit (the worker may set a lower one).")

    @field_validator("outputs")
    @classmethod
    def _short_paths(cls, outputs: list[str]) -> list[str]:
        if any(not p or len(p) > 512 for p in outputs):
            raise ValueError("each output is a non-empty path of at most 512 characters")
        return outputs


class CallContext(BaseModel):
    """Who is calling, stamped by the workflow on tools that need it (memory): never taken from the model,
    which does not see the field (it is left out of the JSON schema) and whose value for it is overwritten."""

    workflow_id: str
    step_id: str
    role: str
    saw_untrusted: bool = Field(description="The step had tool output or other agents' output in its context.")


class RememberArgs(KeyedArgs):
    """Keep a note in long-term memory for later goals (scoped to this role; provenance is recorded)."""

    text: str = Field(min_length=1, max_length=4_000, description="What to remember, in a sentence or two.")
    topic: str = Field(default="", max_length=200, description="A few words to file it under.")
    context: SkipJsonSchema[CallContext | None] = None


class RecallArgs(ToolArgs):
    """Search long-term memory (notes this role kept in earlier goals), best matches first."""

    query: str = Field(min_length=1, max_length=1_000)
    limit: int = Field(default=5, gt=0, le=20)
    context: SkipJsonSchema[CallContext | None] = None


class MemoryWritten(BaseModel):
    """A long-term memory entry a `remember` call wrote: its id and the SHA-256 of its text."""

    entry_id: int
    content_sha256: str
    untrusted: bool = False


class ToolResult(BaseModel):
    """Output of every tool activity."""

    tool: str
    ok: bool = True
    content: str = Field(description="The output, or a bounded preview of it when large.")
    truncated: bool = False
    content_sha256: str
    content_ref: str | None = Field(default=None, description="Content-store key of the full output.")
    size_bytes: int = 0
    error_type: str | None = None
    cached: bool = Field(default=False, description="Answered from the worker's call cache: the tool did not run.")
    memory: MemoryWritten | None = Field(default=None, description="Set by `remember`: the entry it wrote.")
    sandbox: SandboxRun | None = Field(default=None, description="Set by `run_python`: exit code, output, limits hit, files kept.")
