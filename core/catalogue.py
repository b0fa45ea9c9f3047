"""One goal's tool catalogue (pure): the built-in tools (`core.tools.TOOLS`) plus the MCP tools its plans
recorded (`Plan.mcp_tools`). Workflow code looks tools up here, by the name plans and policy use or by the
name a model was offered (an MCP tool's `mcp__<server>__<tool>`), so nothing depends on the worker's config.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.mcp import McpToolSpec
from contracts.tools import SideEffect
from core.mcp import McpTool, wire_name
from core.tools import TOOLS, ToolSpec, tool_effects

Tool = ToolSpec | McpTool


class ToolCatalogue:
    def __init__(self, mcp_tools: Iterable[McpToolSpec] = ()) -> None:
        self._mcp: dict[str, McpTool] = {}
        self._wire: dict[str, str] = {}
        self.add(mcp_tools)

    def add(self, mcp_tools: Iterable[McpToolSpec]) -> None:
        """Record a plan's MCP tools; a revised plan's later listing of the same tool replaces the earlier one."""
        for spec in mcp_tools:
            self._mcp[spec.name] = McpTool(spec)
            self._wire.setdefault(wire_name(spec.name), spec.name)

    def canonical(self, name: str) -> str:
        """The catalogue name for a name a model was offered (unchanged for every other name)."""
        return self._wire.get(name, name)

    def get(self, name: str) -> Tool | None:
        return TOOLS.get(name) or self._mcp.get(self.canonical(name))

    def offered(self, names: Iterable[str]) -> list[Tool]:
        """The known tools among `names`, in their order."""
        return [tool for tool in map(self.get, names) if tool is not None]

    def effects(self) -> dict[str, SideEffect]:
        """Tool name -> side-effect class, for plan validation."""
        return tool_effects() | {name: tool.side_effect for name, tool in self._mcp.items()}
