"""Built-in tool implementations: one activity for every catalogued tool (`core.tools.TOOLS`), bound to
the stores the worker passes in.

`tool_activities(stores)` is what the worker registers; `tool_implementations(stores)` maps each tool
name to its bound activity. That every catalogued tool has exactly one implementation is checked at
import (over the classes) and again when binding (over the instances).
"""

from __future__ import annotations

from activities.tools.cache import ToolCache
from activities.tools.calc import CalcTools
from activities.tools.corpus import CorpusTools
from activities.tools.http import HttpTools
from activities.sandbox import Sandbox
from activities.tools.idempotency import Idempotency
from activities.tools.memory import MemoryTools
from activities.tools.python import PythonTools
from activities.tools.registry import ToolActivity, bind, check_implementations, tool_activity, tool_error
from activities.tools.sql import SqlTools
from activities.tools.workspace import WorkspaceTools
from core.tools import TOOLS
from stores import Stores, from_settings

__all__ = ["TOOLS", "ToolActivity", "tool_activities", "tool_activity", "tool_error", "tool_implementations", "toolsets"]

TOOLSET_CLASSES = (CalcTools, CorpusTools, HttpTools, MemoryTools, PythonTools, SqlTools, WorkspaceTools)
check_implementations(TOOLSET_CLASSES)  # fail at import, not when the first worker starts


def toolsets(stores: Stores, sandbox: Sandbox | None = None) -> list[object]:
    """One instance of each toolset class, each given the stores it needs (the cacheable ones share one `ToolCache`,
    the side-effecting ones, `run_python` included, one `Idempotency` over the ledger); `run_python` gets `sandbox` (default: the one the
    settings describe, over the workspace)."""
    cache = ToolCache(stores.cache)
    once = Idempotency(stores.ledger)
    sandbox = sandbox or Sandbox.from_settings(stores.workspace)
    return [
        CalcTools(stores.content),
        CorpusTools(stores.corpus, stores.content, cache),
        HttpTools(stores.content, cache, once),
        MemoryTools(stores.memory, stores.content, once),
        PythonTools(sandbox, stores.workspace, stores.content, once),
        SqlTools(stores.database, stores.content),
        WorkspaceTools(stores.workspace, stores.content, once),
    ]


def tool_implementations(stores: Stores, sandbox: Sandbox | None = None) -> dict[str, ToolActivity]:
    """Tool name -> its activity bound to `stores`, in catalogue order."""
    return bind(toolsets(stores, sandbox))


def tool_activities(stores: Stores | None = None, *, sandboxed: bool | None = None) -> list[ToolActivity]:
    """The activity of every catalogued tool, in catalogue order, for `Worker(activities=...)`;
    `stores` defaults to the ones the settings name, built now. `sandboxed`: only the tools that run code
    (True), only the others (False), or all (None)."""
    bound = tool_implementations(stores if stores is not None else from_settings())
    return [fn for name, fn in bound.items() if sandboxed is None or TOOLS[name].sandboxed == sandboxed]
