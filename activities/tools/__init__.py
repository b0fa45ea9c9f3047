"""Built-in tools. Importing this package registers every built-in in `registry.TOOLS`.

Each tool is its own activity (named after its function); `tool_activities()` is what the worker registers.
"""

from __future__ import annotations

from typing import Awaitable, Callable

# Imported for their side effect: each module's @tool decorators fill TOOLS.
from activities.tools import calc, corpus, http, sql, workspace  # noqa: F401
from activities.tools.registry import TOOLS, ToolDefinition, tool, tool_error
from contracts.tools import ToolResult

__all__ = ["TOOLS", "ToolDefinition", "tool", "tool_activities", "tool_error"]


def tool_activities() -> list[Callable[..., Awaitable[ToolResult]]]:
    """The activity callables of every registered tool, for `Worker(activities=...)`."""
    return [definition.activity for definition in TOOLS.values()]
