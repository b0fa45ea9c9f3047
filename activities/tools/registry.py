"""The typed tool registry. Each tool is its own activity (named after the tool), takes its own
argument model and returns a `ToolResult`; its registry entry declares side effect, timeout and retries.

The workflow reads this registry to validate arguments before scheduling anything, and to pick each
tool's activity options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.errors import ErrorType
from contracts.llm import ToolSchema
from contracts.tools import SideEffect, ToolArgs, ToolResult
from workflows.options import TOOL_DESTRUCTIVE, TOOL_READ, TOOL_WRITE, ActivityConfig

_DEFAULT_CONFIG = {SideEffect.READ: TOOL_READ, SideEffect.WRITE: TOOL_WRITE, SideEffect.DESTRUCTIVE: TOOL_DESTRUCTIVE}


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    args_model: type[ToolArgs]
    side_effect: SideEffect
    config: ActivityConfig
    activity: Callable[..., Awaitable[ToolResult]]

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self.name, description=self.description, parameters_json=json.dumps(self.args_model.model_json_schema())
        )


TOOLS: dict[str, ToolDefinition] = {}

F = TypeVar("F", bound=Callable[..., Awaitable[ToolResult]])


def tool(args_model: type[ToolArgs], side_effect: SideEffect, config: ActivityConfig | None = None) -> Callable[[F], F]:
    """Register `fn` as a tool activity named `fn.__name__`; its docstring's first line is the description."""

    def register(fn: F) -> F:
        name = fn.__name__
        if name in TOOLS:
            raise ValueError(f"tool {name!r} registered twice")
        defined = activity.defn(name=name)(fn)
        TOOLS[name] = ToolDefinition(
            name=name,
            description=(fn.__doc__ or args_model.__doc__ or name).strip().splitlines()[0],
            args_model=args_model,
            side_effect=side_effect,
            config=config or _DEFAULT_CONFIG[side_effect],
            activity=defined,
        )
        return defined

    return register


def tool_error(error_type: ErrorType, message: str, *, retryable: bool = False) -> ApplicationError:
    """A typed tool failure; non-retryable unless the cause is transient."""
    return ApplicationError(message, type=error_type.value, non_retryable=not retryable)
