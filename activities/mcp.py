"""Tools from Model Context Protocol servers: the worker's side.

The servers come from the file FOREMAN_MCP_CONFIG names (JSON, Claude Desktop's `mcpServers` shape): a
stdio server is a command the worker starts, a streamable HTTP server a URL. `McpServers` keeps one session
per server, opened on first use and held by a task of its own (the SDK's anyio scopes must close in the task
that opened them); a session that died is opened again on the next call. The planner lists tools through it
(`specs`, recorded in the plan); `call_mcp_tool` calls one.

Invariants: a tool's side-effect class is the operator's (per tool, then per server), else the server's
annotations (readOnlyHint: read; destructiveHint: destructive), else write. Failures are typed: server
missing, tool missing, the tool's error result (non-retryable), timeout and unreachable server (retryable,
within the side-effect class's retry policy). Output: text content joined, through the content store.

A call of a tool that is not read-only carries the key the workflow stamped (`core.idempotency`): it is done once
per call however often Temporal runs the activity (`Idempotency`: a retry returns the recorded result), and the key
goes to the server in the request's `_meta` as `foreman/idempotency-key` (the MCP spec leaves `_meta` keys with a
prefix of one's own to clients; a server that deduplicates by it also covers a worker dying between call and record).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import mcp_types
from jsonschema import Draft202012Validator, SchemaError, validators
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

import settings
from activities.content_store import tool_result
from activities.metrics import measured_tool
from activities.tools.idempotency import Idempotency
from contracts.errors import ErrorType
from contracts.mcp import CALL_MCP_TOOL_ACTIVITY, SERVER_NAME_PATTERN, McpCall, McpToolSpec, SideEffectSource
from contracts.tools import SideEffect, ToolResult
from core.mcp import mcp_name, split_mcp_name
from stores.protocols import ContentStore

logger = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2_000
MAX_LIST_PAGES = 50  # a server whose listing never ends cannot hang planning
IDEMPOTENCY_META_KEY = "foreman/idempotency-key"  # in a tools/call request's `_meta` (a prefixed key, as the spec asks)


class McpToolConfig(BaseModel):
    """What the operator declares about one tool."""

    model_config = ConfigDict(extra="forbid")
    side_effect: SideEffect | None = None


class McpServerConfig(BaseModel):
    """One server: `command` (stdio, started by the worker) or `url` (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")
    type: str | None = Field(default=None, description="Optional: stdio, http or streamable-http; implied by command/url.")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    side_effect: SideEffect | None = Field(default=None, description="Declared for every tool of this server.")
    tools: dict[str, McpToolConfig] = Field(default_factory=dict, description="Declared per tool (wins over `side_effect`).")
    trust_annotations: bool = Field(default=True, description="false: the server's readOnly/destructive hints are ignored.")
    timeout_seconds: float = Field(default=60.0, gt=0, le=3_600, description="Per tool call.")
    connect_timeout_seconds: float = Field(default=20.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServerConfig":
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of command (stdio) and url (streamable HTTP)")
        if self.type is not None and self.type not in ({"stdio"} if self.command else {"http", "streamable-http", "streamable_http"}):
            raise ValueError(f"type {self.type!r} does not fit {'command' if self.command else 'url'}")
        return self


class McpConfig(BaseModel):
    """The FOREMAN_MCP_CONFIG file: `{"mcpServers": {"<name>": {...}}}`."""

    model_config = ConfigDict(extra="forbid")
    servers: dict[str, McpServerConfig] = Field(default_factory=dict, alias="mcpServers")

    @model_validator(mode="after")
    def _names(self) -> "McpConfig":
        bad = [n for n in self.servers if not re.fullmatch(SERVER_NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"server names must match {SERVER_NAME_PATTERN}: {bad}")
        return self


def config_error(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorType.MCP_CONFIG.value, non_retryable=True)


def load_config(path: Path | None) -> McpConfig:
    """The servers in `path` (none when unset); a file that is missing or malformed is a McpConfigError."""
    if path is None:
        return McpConfig()
    try:
        return McpConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise config_error(f"FOREMAN_MCP_CONFIG {path}: cannot read it ({err.strerror})") from err
    except ValidationError as err:
        first = err.errors()[0]
        raise config_error(f"FOREMAN_MCP_CONFIG {path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from err


def side_effect_of(server: McpServerConfig, tool: mcp_types.Tool) -> tuple[SideEffect, SideEffectSource]:
    """The operator's word first (per tool, then per server), then the server's hints, else write."""
    declared = server.tools.get(tool.name, McpToolConfig()).side_effect or server.side_effect
    if declared is not None:
        return declared, SideEffectSource.CONFIG
    hints = tool.annotations if server.trust_annotations else None
    if hints is not None and hints.read_only_hint:
        return SideEffect.READ, SideEffectSource.ANNOTATIONS
    if hints is not None and hints.destructive_hint:
        return SideEffect.DESTRUCTIVE, SideEffectSource.ANNOTATIONS
    return SideEffect.WRITE, SideEffectSource.DEFAULT


def usable_schema(schema: dict) -> bool:
    """A schema the workflow can validate arguments against (checked here, once, not in workflow code)."""
    try:
        validators.validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError:
        return False
    return schema.get("type", "object") == "object"


def result_text(result: mcp_types.CallToolResult) -> str:
    """Text blocks joined; other blocks named, not inlined; structured content when there is no text."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.EmbeddedResource) and isinstance(block.resource, mcp_types.TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, mcp_types.EmbeddedResource):
            parts.append(f"[binary resource {block.resource.uri} omitted]")
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource link: {block.uri}]")
        else:
            parts.append(f"[{block.type} content ({getattr(block, 'mime_type', '?')}) omitted]")
    if not any(p.strip() for p in parts) and result.structured_content is not None:
        return json.dumps(result.structured_content, sort_keys=True, ensure_ascii=False)
    return "\n".join(parts)


def _error(error_type: ErrorType, message: str, *, retryable: bool = False) -> ApplicationError:
    return ApplicationError(message, type=error_type.value, non_retryable=not retryable)


class _Connection:
    """One server's session, held open by its own task until `close`."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._closing = asyncio.Event()
        self.tools: dict[str, mcp_types.Tool] = {}

    async def client(self) -> Client:
        """The open session, opened now if there is none (or the last one died)."""
        async with self._lock:
            if self._client is not None and self._task is not None and not self._task.done():
                return self._client
            self._closing = asyncio.Event()
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._hold(ready), name=f"mcp session {self.name}")
            try:
                async with asyncio.timeout(self.config.connect_timeout_seconds):
                    self._client = await asyncio.shield(ready)
            except TimeoutError:
                self._task.cancel()
                raise _error(ErrorType.MCP_UNAVAILABLE, f"MCP server {self.name!r} did not answer within "
                             f"{self.config.connect_timeout_seconds:g} s", retryable=True) from None
            except Exception as err:  # noqa: BLE001 - whatever stopped the server from starting is reported, typed
                raise _error(ErrorType.MCP_UNAVAILABLE, f"MCP server {self.name!r} could not be reached: {_describe(err)}",
                             retryable=True) from err
            self.tools = await self._list(self._client)
            return self._client

    async def _hold(self, ready: asyncio.Future[Client]) -> None:
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await self._transport(stack)))
                ready.set_result(client)
                await self._closing.wait()
        except Exception as err:  # noqa: BLE001 - the session's end, whatever ended it, is handed to the waiting caller or logged
            if not ready.done():
                ready.set_exception(err)
            else:
                logger.warning("MCP session %s ended: %s", self.name, _describe(err))
        finally:
            if self._task is asyncio.current_task():  # a newer session may have replaced this one meanwhile
                self._client = None

    async def _transport(self, stack: AsyncExitStack) -> object:
        config = self.config
        if config.command is not None:
            return _stdio(config)
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30.0, read=300.0)))
        return streamable_http_client(config.url or "", http_client=http)

    async def _list(self, client: Client) -> dict[str, mcp_types.Tool]:
        tools: dict[str, mcp_types.Tool] = {}
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.config.connect_timeout_seconds):
                for _ in range(MAX_LIST_PAGES):
                    page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                    tools.update({t.name: t for t in page.tools})
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except (MCPError, TimeoutError) as err:
            raise _error(ErrorType.MCP_UNAVAILABLE, f"MCP server {self.name!r} did not list its tools: {_describe(err)}",
                         retryable=True) from err
        return tools

    async def refresh(self) -> None:
        self.tools = await self._list(await self.client())

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _stdio(config: McpServerConfig) -> StdioServerParameters:
    return StdioServerParameters(command=config.command or "", args=config.args, env=config.env or None, cwd=config.cwd)


def _describe(err: BaseException) -> str:
    """One line for an error, the first leaf of an exception group (anyio task groups raise those)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]


@dataclass
class Listing:
    """The MCP tools asked for that were found, and why the others were not."""

    specs: list[McpToolSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class McpServers:
    """The worker's MCP servers, one session each (opened on first use); `close` ends them all."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self._connections = {name: _Connection(name, server) for name, server in config.servers.items()}

    @classmethod
    def from_settings(cls) -> "McpServers":
        return cls(load_config(settings.mcp_config_path()))

    @property
    def names(self) -> list[str]:
        return sorted(self._connections)

    def _connection(self, server: str) -> _Connection:
        connection = self._connections.get(server)
        if connection is None:
            raise _error(ErrorType.MCP_SERVER_MISSING, f"MCP server {server!r} is not configured on this worker "
                         f"(configured: {self.names or 'none'})")
        return connection

    def _spec(self, connection: _Connection, tool: mcp_types.Tool) -> McpToolSpec | None:
        if not usable_schema(tool.input_schema):
            activity.logger.warning("MCP tool %s of %s has an input schema that cannot be used: left out", tool.name, connection.name)
            return None
        effect, source = side_effect_of(connection.config, tool)
        return McpToolSpec(
            server=connection.name, tool=tool.name, description=tool.description or tool.title or "",
            input_schema_json=json.dumps(tool.input_schema, sort_keys=True), side_effect=effect, side_effect_source=source,
            timeout_seconds=connection.config.timeout_seconds,
        )

    async def specs(self, names: Iterable[str]) -> Listing:
        """The tools named `mcp:<server>:<tool>` in `names` (other names ignored), listed from their servers."""
        wanted: dict[str, set[str]] = {}
        for name in names:
            parts = split_mcp_name(name)
            if parts is not None:
                wanted.setdefault(parts[0], set()).add(parts[1])
        listing = Listing()
        for server in sorted(wanted):
            if server not in self._connections:
                listing.problems.append(f"MCP server {server!r} is not configured on this worker (FOREMAN_MCP_CONFIG)")
                continue
            connection = self._connections[server]
            await connection.client()
            for tool in sorted(wanted[server]):
                found = connection.tools.get(tool)
                spec = self._spec(connection, found) if found is not None else None
                if spec is None:
                    listing.problems.append(f"MCP server {server!r} has no usable tool {tool!r}")
                else:
                    listing.specs.append(spec)
        return listing

    async def every_spec(self) -> list[McpToolSpec]:
        """Every usable tool of every server that answers (one that does not is left out, with a warning)."""
        specs: list[McpToolSpec] = []
        for server in self.names:
            connection = self._connections[server]
            try:
                await connection.client()
            except ApplicationError as err:
                activity.logger.warning("MCP server %s left out of planning: %s", server, err.message)
                continue
            specs += [s for s in (self._spec(connection, connection.tools[t]) for t in sorted(connection.tools)) if s is not None]
        return specs

    async def call(self, call: McpCall) -> mcp_types.CallToolResult:
        """One `tools/call`, typed failures for a missing server or tool, a timeout or a lost session."""
        connection = self._connection(call.server)
        client = await connection.client()
        if call.tool not in connection.tools:
            await connection.refresh()  # the server's tools may have changed since this session listed them
        if call.tool not in connection.tools:
            raise _error(ErrorType.MCP_TOOL_MISSING, f"MCP server {call.server!r} has no tool {call.tool!r}")
        timeout = connection.config.timeout_seconds
        try:
            async with asyncio.timeout(timeout + 5):  # a backstop: the SDK's own read timeout should fire first
                meta = {IDEMPOTENCY_META_KEY: call.idempotency_key} if call.idempotency_key else None
                return await client.call_tool(call.tool, json.loads(call.arguments_json), read_timeout_seconds=timeout, meta=meta)
        except TimeoutError:
            raise _error(ErrorType.MCP_TIMEOUT, f"{call.name} did not answer within {timeout:g} s", retryable=True) from None
        except MCPError as err:
            if err.code == mcp_types.REQUEST_TIMEOUT:
                raise _error(ErrorType.MCP_TIMEOUT, f"{call.name} did not answer within {timeout:g} s", retryable=True) from err
            if err.code == mcp_types.CONNECTION_CLOSED:
                await connection.close()  # the next call (a retry, say) opens a new session: a stdio server is started again
                raise _error(ErrorType.MCP_UNAVAILABLE, f"MCP server {call.server!r} closed the session", retryable=True) from err
            raise _error(ErrorType.MCP_TOOL_ERROR, f"{call.name}: {err.error.message}"[:MAX_ERROR_CHARS]) from err

    def side_effect(self, call: McpCall) -> str:
        """The side-effect class of a tool this worker's session has listed, else `unknown` (a metric label)."""
        connection = self._connections.get(call.server)
        tool = connection.tools.get(call.tool) if connection is not None else None
        return side_effect_of(connection.config, tool)[0].value if connection is not None and tool is not None else "unknown"

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._connections.values()))


class McpTools:
    """`call_mcp_tool`, bound to the worker's MCP servers, content store and idempotency ledger."""

    def __init__(self, servers: McpServers, content: ContentStore, once: Idempotency | None = None) -> None:
        self._servers = servers
        self._content = content
        self._once = once or Idempotency(None)

    @activity.defn(name=CALL_MCP_TOOL_ACTIVITY)
    async def call_mcp_tool(self, call: McpCall) -> ToolResult:
        """Call one MCP tool (arguments validated by the workflow); its text output, untrusted like any tool's.
        A keyed call (a tool that is not read-only) is done once per key. Each attempt is timed and counted."""
        return await measured_tool(call.name, lambda: self._servers.side_effect(call), lambda: self._once_per_key(call))

    async def _once_per_key(self, call: McpCall) -> ToolResult:
        if call.idempotency_key is None:  # a read-only tool: nothing to record
            return await self._call(call)
        return await self._once.once(call.name, call.idempotency_key, lambda: self._call(call))

    async def _call(self, call: McpCall) -> ToolResult:
        result = await self._servers.call(call)
        text = result_text(result)
        if result.is_error:  # the tool ran and said it failed: the model is told why, nothing is retried
            raise _error(ErrorType.MCP_TOOL_ERROR, f"{call.name}: {text or 'the tool reported an error'}"[:MAX_ERROR_CHARS])
        return tool_result(self._content, mcp_name(call.server, call.tool), text)
