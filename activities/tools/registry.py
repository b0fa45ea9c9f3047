"""Binds one activity to each entry of the tool catalogue (`core.tools.TOOLS`).

The catalogue says what a tool is (description, argument model, side effect, options); the tool
modules hold the implementations: classes whose methods are marked `@tool_activity(name)` and which
receive their stores in the constructor (the worker builds them once). `bind` turns instances into
the activities the worker registers; every catalogued tool has exactly one implementation, checked
for the classes at import and for the instances when bound.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Iterable
from typing import Awaitable, Callable, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import measured_tool
from contracts.errors import ErrorType
from contracts.tools import ToolResult
from core.tools import TOOLS
from stores.protocols import StoreError

ToolActivity = Callable[..., Awaitable[ToolResult]]
F = TypeVar("F", bound=Callable[..., Awaitable[ToolResult]])
R = TypeVar("R")

# Set on each marked method: which catalogued tool it implements.
_TOOL_ATTR = "__foreman_tool__"


def tool_activity(name: str) -> Callable[[F], F]:
    """Mark a method as the activity of the catalogued tool `name` (an unknown name fails at import); each attempt
    is timed and its outcome counted and put on the span (`measured_tool`)."""
    spec = TOOLS[name]

    def mark(fn: F) -> F:
        @functools.wraps(fn)
        async def measured(self: object, args: object) -> ToolResult:
            return await measured_tool(spec.name, lambda: spec.side_effect.value, lambda: fn(self, args))

        setattr(measured, _TOOL_ATTR, spec.name)
        return activity.defn(name=spec.name)(measured)  # type: ignore[return-value]

    return mark


def declared_tools(cls: type) -> dict[str, str]:
    """Method name -> tool name for every `@tool_activity` method of `cls`."""
    return {attr: getattr(fn, _TOOL_ATTR) for attr, fn in inspect.getmembers(cls, inspect.isfunction) if hasattr(fn, _TOOL_ATTR)}


def check_implementations(classes: Iterable[type]) -> None:
    """Every catalogued tool is implemented by exactly one method of `classes`, and nothing else is."""
    seen: dict[str, str] = {}
    for cls in classes:
        for attr, name in declared_tools(cls).items():
            if name in seen:
                raise ValueError(f"tool {name!r} implemented twice: {seen[name]} and {cls.__name__}.{attr}")
            seen[name] = f"{cls.__name__}.{attr}"
    missing = sorted(TOOLS.keys() - seen.keys())
    if missing:
        raise RuntimeError(f"catalogued tools without an implementation: {missing}")


def bind(toolsets: Iterable[object]) -> dict[str, ToolActivity]:
    """Tool name -> the activity bound to its toolset instance, in catalogue order."""
    toolsets = list(toolsets)
    check_implementations(type(t) for t in toolsets)
    bound = {name: getattr(t, attr) for t in toolsets for attr, name in declared_tools(type(t)).items()}
    return {name: bound[name] for name in TOOLS}


async def run_store(fn: Callable[..., R], *args: object) -> R:
    """Run a blocking store call in a thread; a `StoreError` becomes the typed tool failure it names."""
    try:
        return await asyncio.to_thread(fn, *args)
    except StoreError as exc:
        # `from exc.__cause__`: the failure chain is the store's cause, as when tools raised it themselves.
        raise tool_error(exc.error_type, str(exc), retryable=exc.retryable) from exc.__cause__


def tool_error(error_type: ErrorType, message: str, *, retryable: bool = False) -> ApplicationError:
    """A typed tool failure; non-retryable unless the cause is transient."""
    return ApplicationError(message, type=error_type.value, non_retryable=not retryable)
