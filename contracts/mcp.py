"""Contracts for tools from Model Context Protocol servers.

An MCP tool is named `mcp:<server>:<tool>` wherever Foreman names tools (plans, policy, approvals, records,
activity summaries). What the workflow knows of one (`McpToolSpec`: input schema, side-effect class, timeout)
comes from an activity result, recorded in the `Plan`, so replay sees the same schemas the run validated
against; the workflow never reads the worker's MCP configuration.
"""

from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.tools import MAX_KEY_CHARS, SideEffect

MCP_PREFIX = "mcp:"
SERVER_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CALL_MCP_TOOL_ACTIVITY = "call_mcp_tool"  # McpCall -> ToolResult


class SideEffectSource(StrEnum):
    """Where an MCP tool's side-effect class came from."""

    CONFIG = "config"  # the operator declared it (per tool, or for the whole server)
    ANNOTATIONS = "annotations"  # the server's hints (readOnlyHint, destructiveHint)
    DEFAULT = "default"  # nothing said: write, so the default policy gates it


class McpToolSpec(BaseModel):
    """One MCP tool as the workflow sees it, listed by the worker at planning time."""

    server: str = Field(pattern=SERVER_NAME_PATTERN)
    tool: str = Field(min_length=1, max_length=128)
    description: str = ""
    input_schema_json: str = Field(description="The tool's JSON schema for its arguments, as the server listed it.")
    side_effect: SideEffect = SideEffect.WRITE
    side_effect_source: SideEffectSource = SideEffectSource.DEFAULT
    timeout_seconds: float = Field(default=60.0, gt=0, le=3_600)

    @property
    def name(self) -> str:
        return f"{MCP_PREFIX}{self.server}:{self.tool}"


class McpCall(BaseModel):
    """Input of `call_mcp_tool`: one call of one MCP tool, arguments validated by the workflow against the
    listed schema and canonical (sorted keys), so the approval's action hash binds to exactly what is sent."""

    server: str = Field(pattern=SERVER_NAME_PATTERN)
    tool: str = Field(min_length=1, max_length=128)
    arguments_json: str = "{}"
    idempotency_key: str | None = Field(
        default=None, max_length=MAX_KEY_CHARS,
        description="Stamped by the workflow on a call of a tool that is not read-only; the worker records the effect under it.",
    )

    @property
    def name(self) -> str:
        return f"{MCP_PREFIX}{self.server}:{self.tool}"
