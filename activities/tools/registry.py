"""Binds one activity to each entry of the tool catalogue (`core.tools.TOOLS`).

The catalogue says what a tool is (description, argument model, side effect, options); this module
holds the implementations the worker registers. Every catalogued tool has exactly one.
"""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorType
from contracts.tools import ToolResult
from core.tools import TOOLS

ToolActivity = Callable[..., Awaitable[ToolResult]]
F = TypeVar("F", bound=ToolActivity)

IMPLEMENTATIONS: dict[str, ToolActivity] = {}


def tool_activity(name: str) -> Callable[[F], F]:
    """Register `fn` as the activity of the catalogued tool `name` (an unknown name fails at import)."""
    spec = TOOLS[name]

    def register(fn: F) -> F:
        if spec.name in IMPLEMENTATIONS:
            raise ValueError(f"tool {spec.name!r} implemented twice")
        defined = activity.defn(name=spec.name)(fn)
        IMPLEMENTATIONS[spec.name] = defined
        return defined

    return register


def tool_error(error_type: ErrorType, message: str, *, retryable: bool = False) -> ApplicationError:
    """A typed tool failure; non-retryable unless the cause is transient."""
    return ApplicationError(message, type=error_type.value, non_retryable=not retryable)
