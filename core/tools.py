"""The tool catalogue: what each built-in tool is (name, description, argument model, side effect,
activity options), without its implementation.

Workflow code reads this to validate arguments, check policy and pick activity options before
scheduling a tool by name; the planner reads it to describe tools; `activities/tools/` binds one
activity to each entry (`registry.tool_activity`). So the workflow sandbox never imports httpx,
sqlite3 or a tool's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from contracts.llm import ToolSchema
from contracts.tools import (
    CalculateArgs,
    HttpFetchArgs,
    ListFilesArgs,
    ReadFileArgs,
    RecallArgs,
    RememberArgs,
    SearchCorpusArgs,
    SideEffect,
    SqlQueryArgs,
    ToolArgs,
    WriteFileArgs,
)
from core.options import TOOL_DESTRUCTIVE, TOOL_READ, TOOL_WRITE, ActivityConfig

_DEFAULT_CONFIG = {SideEffect.READ: TOOL_READ, SideEffect.WRITE: TOOL_WRITE, SideEffect.DESTRUCTIVE: TOOL_DESTRUCTIVE}


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its activity is named `name`, takes `args_model` and returns a `ToolResult`."""

    name: str
    description: str
    args_model: type[ToolArgs]
    side_effect: SideEffect
    config_override: ActivityConfig | None = None

    @property
    def config(self) -> ActivityConfig:
        """Timeouts and retries: the side-effect class's preset unless this tool overrides it."""
        return self.config_override or _DEFAULT_CONFIG[self.side_effect]

    def schema(self) -> ToolSchema:
        """What the model sees: name, description and the argument model's JSON schema."""
        return ToolSchema(
            name=self.name, description=self.description, parameters_json=json.dumps(self.args_model.model_json_schema())
        )


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "calculate",
            "Evaluate an arithmetic expression (+ - * / // % **, parentheses, sqrt, log, exp, sin, cos, min, max, abs, round, pi, e).",
            CalculateArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "search_corpus",
            "Search the local document corpus (full text, bm25); each hit shows a `[source: <path>]` to cite.",
            SearchCorpusArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "http_fetch",
            "Fetch an http(s) URL (GET or HEAD) and return the status line and the response body as text.",
            HttpFetchArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "sql_query",
            "Run one read-only SQL query (SELECT or WITH) on the SQLite database; returns a pipe-separated table.",
            SqlQueryArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "read_file",
            "Read a UTF-8 text file from the workspace (path relative to the workspace root).",
            ReadFileArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "write_file",
            "Write a UTF-8 text file in the workspace, replacing it atomically and creating parent folders.",
            WriteFileArgs,
            SideEffect.WRITE,
        ),
        ToolSpec(
            "list_files",
            "List the files (recursively, with sizes in bytes) under a workspace folder.",
            ListFilesArgs,
            SideEffect.READ,
        ),
        ToolSpec(
            "remember",
            "Keep a note in long-term memory for later goals (your role's memory; where it came from is recorded).",
            RememberArgs,
            SideEffect.WRITE,
        ),
        ToolSpec(
            "recall",
            "Search long-term memory: notes your role kept in earlier goals, best matches first, with where each came from.",
            RecallArgs,
            SideEffect.READ,
        ),
    )
}


def tool_effects() -> dict[str, SideEffect]:
    """Tool name -> side-effect class, for plan validation."""
    return {name: spec.side_effect for name, spec in TOOLS.items()}
