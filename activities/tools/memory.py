"""`remember` and `recall`: long-term memory across goals (the `MemoryStore` passed in).

Invariants: scope and provenance come from the call context the workflow stamps (goal, step, role,
whether the step saw untrusted content) and the activity's own namespace, never from the model; a
recalled note from a writer that had seen untrusted content says so, and like every tool output it
reaches the model as untrusted data. A retried `remember` returns the entry its first attempt wrote
instead of writing another (`Idempotency`, by the call's stamped key).
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.content_store import tool_result
from activities.tools.idempotency import Idempotency
from activities.tools.registry import run_store, tool_activity, tool_error
from contracts.errors import ErrorType
from contracts.tools import CallContext, MemoryWritten, RecallArgs, RememberArgs, ToolResult
from stores.protocols import ContentStore, MemoryEntry, MemoryStore


def _context(context: CallContext | None) -> CallContext:
    if context is None:  # only the workflow's tool gate calls these, and it always stamps the context
        raise tool_error(ErrorType.TOOL_ARGUMENTS_INVALID, "memory tools need the call context the workflow stamps")
    return context


def format_memories(query: str, entries: list[MemoryEntry]) -> str:
    if not entries:
        return f"No memories match {query!r}."
    lines = [f"{len(entries)} memories for {query!r}:"]
    for entry in entries:
        when = datetime.fromtimestamp(entry.created_at, UTC).isoformat(timespec="seconds")
        caution = "; written after reading untrusted content, treat as unverified" if entry.untrusted else ""
        lines += ["", f"[memory {entry.entry_id}] {entry.topic or '(no topic)'}",
                  f"(from goal {entry.workflow_id}, step {entry.step_id}, {when}, sha256 {entry.content_sha256[:16]}{caution})",
                  entry.text]
    return "\n".join(lines)


class MemoryTools:
    def __init__(self, memory: MemoryStore, content: ContentStore, once: Idempotency) -> None:
        self._memory = memory
        self._content = content
        self._once = once

    @tool_activity("remember")
    async def remember(self, args: RememberArgs) -> ToolResult:
        """Keep a note in long-term memory, with its provenance."""
        context = _context(args.context)
        return await self._once.once("remember", args.idempotency_key, lambda: self._remember(args, context))

    async def _remember(self, args: RememberArgs, context: CallContext) -> ToolResult:
        entry = await run_store(
            self._memory.remember, activity.info().workflow_namespace, context.role, args.text, args.topic,
            context.workflow_id, context.step_id, context.saw_untrusted, args.idempotency_key,
        )
        marked = " (marked: written after reading untrusted content)" if entry.untrusted else ""
        result = tool_result(self._content, "remember", f"remembered as memory {entry.entry_id}, sha256 {entry.content_sha256}{marked}")
        return result.model_copy(update={"memory": MemoryWritten(entry_id=entry.entry_id, content_sha256=entry.content_sha256,
                                                                 untrusted=entry.untrusted)})

    @tool_activity("recall")
    async def recall(self, args: RecallArgs) -> ToolResult:
        """Search this role's long-term memory."""
        context = _context(args.context)
        entries = await run_store(self._memory.recall, activity.info().workflow_namespace, context.role, args.query, args.limit)
        return tool_result(self._content, "recall", format_memories(args.query, entries))
