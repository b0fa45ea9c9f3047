"""MCP tools on the workflow side (pure and deterministic): their names, the name a model sees, grants
by server, argument validation against the input schema the worker listed (recorded in the plan), and
activity options.

Arguments are validated with `jsonschema` against the recorded schema and a registry of the JSON Schema
drafts only: a `$ref` to anything else is refused, never fetched. Valid arguments become canonical JSON
(sorted keys), so an approval's action hash binds to exactly what `call_mcp_tool` sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from jsonschema_specifications import REGISTRY as DRAFTS
from referencing.exceptions import Unresolvable

from contracts.llm import ToolSchema
from contracts.mcp import CALL_MCP_TOOL_ACTIVITY, MCP_PREFIX, McpCall, McpToolSpec
from contracts.tools import SideEffect
from core.options import TOOL_DESTRUCTIVE, TOOL_MCP_WRITE, TOOL_READ, ActivityConfig
from core.tools import ArgumentsInvalid

_WIRE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
CONNECT_ALLOWANCE = timedelta(seconds=30)  # on top of the tool's own timeout: starting or reaching its server
_CONFIG = {SideEffect.READ: TOOL_READ, SideEffect.WRITE: TOOL_MCP_WRITE, SideEffect.DESTRUCTIVE: TOOL_DESTRUCTIVE}


def mcp_name(server: str, tool: str) -> str:
    return f"{MCP_PREFIX}{server}:{tool}"


def split_mcp_name(name: str) -> tuple[str, str] | None:
    """(server, tool) of `mcp:<server>:<tool>`, or None for any other name."""
    if not name.startswith(MCP_PREFIX):
        return None
    server, sep, tool = name[len(MCP_PREFIX):].partition(":")
    return (server, tool) if sep and server and tool else None


def wire_name(name: str) -> str:
    """The name a model is offered: providers accept only [A-Za-z0-9_-]{1,64} (no colons)."""
    parts = split_mcp_name(name)
    if parts is None:
        return name
    return _WIRE_UNSAFE.sub("_", f"mcp__{parts[0]}__{parts[1]}")[:64]


def granted(tool: str, names: Iterable[str]) -> bool:
    """`tool` is among `names`, or it is an MCP tool and `names` grants its whole server (`mcp:<server>:*`)."""
    names = set(names)
    parts = split_mcp_name(tool)
    return tool in names or (parts is not None and mcp_name(parts[0], "*") in names)


@dataclass(frozen=True)
class McpTool:
    """An MCP tool as the tool gate and the step runners see it (the same face as a built-in `ToolSpec`)."""

    spec: McpToolSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def side_effect(self) -> SideEffect:
        return self.spec.side_effect

    @property
    def activity(self) -> str:
        return CALL_MCP_TOOL_ACTIVITY  # one activity for every MCP tool; the summary and the policy name the tool

    @property
    def cacheable(self) -> bool:
        return False  # another program's tool: nothing says its result is a function of its arguments

    @property
    def keyed(self) -> bool:
        return self.side_effect is not SideEffect.READ  # the worker records the effect of any other under the stamped key

    @property
    def config(self) -> ActivityConfig:
        """The side-effect class's preset, its start-to-close stretched to the tool's timeout plus connecting."""
        base = _CONFIG[self.side_effect]
        return replace(base, start_to_close_timeout=timedelta(seconds=self.spec.timeout_seconds) + CONNECT_ALLOWANCE)

    @property
    def sandboxed(self) -> bool:
        return False  # another program's tool runs where its server runs, never in Foreman's sandbox

    def config_for(self, args: object) -> ActivityConfig:
        return self.config

    def input_schema(self) -> dict:
        return json.loads(self.spec.input_schema_json)

    def schema(self) -> ToolSchema:
        return ToolSchema(name=wire_name(self.name), description=self.description, parameters_json=self.spec.input_schema_json)

    def parse(self, arguments_json: str) -> McpCall:
        """The call with canonical arguments; ArgumentsInvalid (every problem, by location) otherwise."""
        try:
            arguments = json.loads(arguments_json or "{}")
        except json.JSONDecodeError as err:
            raise ArgumentsInvalid(f"(root): not JSON ({err.msg})") from err
        if not isinstance(arguments, dict):
            raise ArgumentsInvalid("(root): arguments must be a JSON object")
        schema = self.input_schema()
        validator_class = validators.validator_for(schema, default=Draft202012Validator)
        try:
            errors = sorted(validator_class(schema, registry=DRAFTS).iter_errors(arguments), key=lambda e: (list(map(str, e.path)), e.message))
        except (Unresolvable, SchemaError) as err:
            raise ArgumentsInvalid(f"the tool's input schema cannot be used: {err}") from err
        if errors:
            raise ArgumentsInvalid("; ".join(f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors))
        canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return McpCall(server=self.spec.server, tool=self.spec.tool, arguments_json=canonical)
