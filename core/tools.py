"""The tool catalogue: what each built-in tool is (name, description, argument model, side effect,
activity options), without its implementation.

Workflow code reads this to validate arguments, check policy and pick activity options before
scheduling a tool by name; the planner reads it to describe tools; `activities/tools/` binds one
activity to each entry (`registry.tool_activity`). So the workflow sandbox never imports httpx,
sqlite3 or a tool's code.

Each entry also decides, with a one-line reason, whether the worker may answer it from the call cache:
only a read-only tool whose result is a function of its arguments for the time it is cached (`cache_for`,
capped by the cache's TTL). A tool with side effects never is, nor one whose source an earlier step or
another goal may change (workspace files, memory, the SQL database).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError

from contracts.llm import ToolSchema
from contracts.tools import (
    CacheableArgs,
    CalculateArgs,
    HttpFetchArgs,
    KeyedArgs,
    ListFilesArgs,
    ReadFileArgs,
    RecallArgs,
    RememberArgs,
    RunPythonArgs,
    SearchCorpusArgs,
    SideEffect,
    SqlQueryArgs,
    ToolArgs,
    WriteFileArgs,
)
from core.options import SANDBOX, SANDBOX_MARGIN, TOOL_DESTRUCTIVE, TOOL_READ, TOOL_WRITE, ActivityConfig


class ArgumentsInvalid(ValueError):
    """A tool call's arguments do not validate; the message (every problem, by location) is told to the model."""


_DEFAULT_CONFIG = {
    SideEffect.READ: TOOL_READ, SideEffect.WRITE: TOOL_WRITE, SideEffect.DESTRUCTIVE: TOOL_DESTRUCTIVE, SideEffect.EXECUTE: SANDBOX,
}


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its activity is named `name`, takes `args_model` and returns a `ToolResult`."""

    name: str
    description: str
    args_model: type[ToolArgs]
    side_effect: SideEffect
    cache_why: str  # why the call cache may or may not answer this tool (one line, decided per tool)
    cache_for: timedelta | None = None  # how long a cached result stands (capped by the cache's TTL); None: never cached
    config_override: ActivityConfig | None = None
    sandboxed: bool = False  # runs model-written code: scheduled on the sandbox task queue when the plan names one

    def __post_init__(self) -> None:
        # The stamped flag exists exactly on cacheable tools' arguments, and only reads can be cacheable.
        if self.cacheable != issubclass(self.args_model, CacheableArgs) or (self.cacheable and self.side_effect is not SideEffect.READ):
            raise TypeError(f"tool {self.name!r}: cacheable iff a read whose arguments are CacheableArgs")
        # A tool that changes the world records its effect under the key the workflow stamps (`core.idempotency`).
        if self.side_effect is not SideEffect.READ and not self.keyed:
            raise TypeError(f"tool {self.name!r}: a {self.side_effect.value} tool's arguments must be KeyedArgs")

    @property
    def cacheable(self) -> bool:
        return self.cache_for is not None

    @property
    def keyed(self) -> bool:
        """The workflow stamps an idempotency key on its calls: every tool that is not read-only, and `http_fetch`
        (whose method may be one that changes something)."""
        return issubclass(self.args_model, KeyedArgs)

    @property
    def config(self) -> ActivityConfig:
        """Timeouts and retries: the side-effect class's preset unless this tool overrides it."""
        return self.config_override or _DEFAULT_CONFIG[self.side_effect]

    def config_for(self, args: ToolArgs) -> ActivityConfig:
        """This call's options: a call that names its own wall-clock limit gets that (plus a margin) as its timeout."""
        limit = getattr(args, "timeout_seconds", None)
        if isinstance(limit, (int, float)):
            return self.config.with_overrides(start_to_close_timeout=timedelta(seconds=limit) + SANDBOX_MARGIN)
        return self.config

    @property
    def activity(self) -> str:
        """The activity that runs it: each built-in tool has its own, named after it."""
        return self.name

    def input_schema(self) -> dict:
        return self.args_model.model_json_schema()

    def schema(self) -> ToolSchema:
        """What the model sees: name, description and the argument model's JSON schema."""
        return ToolSchema(name=self.name, description=self.description, parameters_json=json.dumps(self.input_schema()))

    def parse(self, arguments_json: str) -> ToolArgs:
        """The validated argument model; ArgumentsInvalid (every problem, by location) otherwise."""
        try:
            return self.args_model.model_validate_json(arguments_json or "{}")
        except ValidationError as err:
            raise ArgumentsInvalid(
                "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in err.errors())
            ) from err


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "calculate",
            "Evaluate an arithmetic expression (+ - * / // % **, parentheses, sqrt, log, exp, sin, cos, min, max, abs, round, pi, e).",
            CalculateArgs,
            SideEffect.READ,
            "not cached: a pure function of its arguments, but computing it is cheaper than a cache lookup",
        ),
        ToolSpec(
            "search_corpus",
            "Search the local document corpus (full text, bm25); each hit shows a `[source: <path>]` to cite.",
            SearchCorpusArgs,
            SideEffect.READ,
            "cached: the corpus is the operator's documents, which no tool writes; an edit shows within the hour",
            cache_for=timedelta(hours=1),
        ),
        ToolSpec(
            "http_fetch",
            "Fetch an http(s) URL (GET or HEAD) and return the status line and the response body as text.",
            HttpFetchArgs,
            SideEffect.READ,
            "cached: GET and HEAD change nothing; a page is taken as unchanged for an hour (the worker's host list is checked first)",
            cache_for=timedelta(hours=1),
        ),
        ToolSpec(
            "sql_query",
            "Run one read-only SQL query (SELECT or WITH) on the SQLite database; returns a pipe-separated table.",
            SqlQueryArgs,
            SideEffect.READ,
            "not cached: the database is live data that other programs change at any time",
        ),
        ToolSpec(
            "read_file",
            "Read a UTF-8 text file from the workspace (path relative to the workspace root).",
            ReadFileArgs,
            SideEffect.READ,
            "not cached: an earlier step (or another goal) may have written the file since",
        ),
        ToolSpec(
            "write_file",
            "Write a UTF-8 text file in the workspace, replacing it atomically and creating parent folders.",
            WriteFileArgs,
            SideEffect.WRITE,
            "never cached: a side effect; answering it from a cache would skip the write",
        ),
        ToolSpec(
            "list_files",
            "List the files (recursively, with sizes in bytes) under a workspace folder.",
            ListFilesArgs,
            SideEffect.READ,
            "not cached: steps write files into the workspace, so the listing changes",
        ),
        ToolSpec(
            "remember",
            "Keep a note in long-term memory for later goals (your role's memory; where it came from is recorded).",
            RememberArgs,
            SideEffect.WRITE,
            "never cached: a side effect (a new memory, with provenance stamped per call)",
        ),
        ToolSpec(
            "recall",
            "Search long-term memory: notes your role kept in earlier goals, best matches first, with where each came from.",
            RecallArgs,
            SideEffect.READ,
            "not cached: every `remember` changes what it finds, and it answers per role",
        ),
        ToolSpec(
            "run_python",
            "Run a Python 3 program in a sandbox (standard library only, no network, a scratch copy of the workspace, "
            "strict time and memory limits); returns its exit code, stdout and stderr. List files to keep in `outputs`.",
            RunPythonArgs,
            SideEffect.EXECUTE,
            "never cached: it runs arbitrary code, whose result may depend on the workspace, the clock or chance",
            sandboxed=True,
        ),
    )
}


def tool_effects() -> dict[str, SideEffect]:
    """Tool name -> side-effect class, for plan validation."""
    return {name: spec.side_effect for name, spec in TOOLS.items()}
