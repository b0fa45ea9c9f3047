"""Built-in tool implementations: importing this package binds an activity to every catalogued tool
(`core.tools.TOOLS`); `tool_activities()` is what the worker registers.
"""

from __future__ import annotations

# Imported for their side effect: each module's @tool_activity decorators fill IMPLEMENTATIONS.
from activities.tools import calc, corpus, http, sql, workspace  # noqa: F401
from activities.tools.registry import IMPLEMENTATIONS, ToolActivity, tool_activity, tool_error
from core.tools import TOOLS

__all__ = ["IMPLEMENTATIONS", "TOOLS", "tool_activities", "tool_activity", "tool_error"]

_missing = sorted(TOOLS.keys() - IMPLEMENTATIONS.keys())
if _missing:
    raise RuntimeError(f"catalogued tools without an implementation: {_missing}")


def tool_activities() -> list[ToolActivity]:
    """The activity of every catalogued tool, in catalogue order, for `Worker(activities=...)`."""
    return [IMPLEMENTATIONS[name] for name in TOOLS]
