"""Tool steps (workflow code): one declared tool call; its output is the tool's output, or the field
`extract` names, verified like any step's (bounded attempts). With `model_fills`, one model call fills
just those arguments first (constrained to their JSON schema); the filled call then passes the same
validation, policy and approvals as any other."""

from __future__ import annotations

import json
from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.goal import StepResult, StepStatus
    from contracts.llm import ChatMessage, ChatRole, ToolCallRequest
    from core.catalogue import ToolCatalogue
    from contracts.errors import ErrorType
    from contracts.plan import EXTRACT_OUTPUT_ACTIVITY, ExtractedValue, ExtractRequest, ToolStep
    from core.options import EXTRACT
    from core.untrusted import UNTRUSTED_NOTE
    from contracts.archive import ContentRef
    from contracts.tools import ToolResult
    from workflows.failures import StepFailed, failure_message
    from workflows.model_calls import cache_use, call_model
    from workflows.steps.base import StepContext, declared_call, material_and_task, within_step_limits


def full_output(output: ToolResult) -> ContentRef | None:
    """Where a tool's whole output is, when the result carries only its preview."""
    if not output.truncated or output.content_ref is None:
        return None
    return ContentRef(ref=output.content_ref, sha256=output.content_sha256, size_bytes=output.size_bytes)


def marked_preview(output: ToolResult) -> str:
    return (f"{output.content}\n[preview: the first {len(output.content)} characters of a {output.size_bytes}-byte output, "
            f"sha256 {output.content_sha256}]")


def fill_schema(catalogue: ToolCatalogue, tool: str, names: list[str]) -> dict:
    """The JSON schema of just the arguments the model fills (with the tool's shared definitions)."""
    spec = catalogue.get(tool)
    if spec is None:
        raise StepFailed(f"tool {tool!r} is not in this goal's catalogue")
    full = spec.input_schema()
    missing = [n for n in names if n not in full.get("properties", {})]
    if missing:  # plan validation checks built-in tools' fields; an MCP tool's schema is only known here
        raise StepFailed(f"{tool} has no arguments {missing} to fill")
    schema: dict = {"type": "object", "properties": {n: full["properties"][n] for n in names}, "required": list(names)}
    if "$defs" in full:
        schema["$defs"] = full["$defs"]
    return schema


class ToolStepRunner:
    def __init__(self, context: StepContext) -> None:
        self.context = context

    async def run(self, step: ToolStep, outputs: Mapping[str, str], result: StepResult) -> None:
        context = self.context
        progress = context.progress[step.id]
        call = declared_call(f"{step.id}-call", step.invocation, context.request.goal, outputs)
        if step.model_fills:
            call = await self._fill(step, call, outputs, result)
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            within_step_limits(step, result, "tool")
            record, output = await context.tools.call(step, call, allowed={step.invocation.tool}, saw_untrusted=bool(step.depends_on))
            result.tool_calls.append(record)
            if output is None:
                raise StepFailed(record.error or "tool call failed")
            full = full_output(output)
            result.full_output = None
            try:
                if step.extract:  # from the whole output (the field may lie past the preview), read by the activity
                    result.output = await _extracted(step, output.content, full)
                elif full:  # later steps see a marked preview; those whose templates name this step get the whole text
                    result.output, result.full_output = marked_preview(output), full
                else:
                    result.output = output.content
            except ActivityError as err:
                cause = err.cause
                detail = cause.message if isinstance(cause, ApplicationError) and cause.type == ErrorType.EXTRACTION_FAILED else failure_message(err)
                raise StepFailed(f"output extraction failed: {detail}") from err
            if await context.verification.accepted(step, result.output, result) or result.status is StepStatus.ESCALATED:
                return
        result.status = StepStatus.FAILED
        result.error = "verification failed: " + "; ".join(result.verdicts[-1].reasons)

    async def _fill(self, step: ToolStep, call: ToolCallRequest, outputs: Mapping[str, str], result: StepResult) -> ToolCallRequest:
        """One model call fills `step.model_fills`; declared arguments keep their values."""
        goal, tool, names = self.context.request.goal, step.invocation.tool, step.model_fills
        material, task = material_and_task(step.depends_on, step.fill_instruction, goal, outputs)
        messages = [
            ChatMessage(role=ChatRole.SYSTEM, content=(
                f"You fill in arguments for the {tool} tool: {', '.join(names)}. {UNTRUSTED_NOTE} "
                "Reply with a JSON object of exactly those arguments."
            )),
            ChatMessage(role=ChatRole.USER, content="\n\n".join([*material, f"Goal: {goal}\n{task}"])),
        ]
        response = await call_model(
            self.context.ledger, step.model or self.context.request.models.executor, messages, result,
            activity_id=f"{step.id}: fill {', '.join(names)}", response_schema_json=json.dumps(fill_schema(self.context.catalogue, tool, names)),
            cache=cache_use(self.context.request, step), journal=self.context.journal, events=self.context.events,
            route=self.context.model_route,
        )
        try:
            filled = json.loads(response.message.content)
        except json.JSONDecodeError as err:
            raise StepFailed(f"the model's arguments for {tool} are not JSON ({err.msg})") from err
        missing = [n for n in names if not isinstance(filled, dict) or n not in filled]
        if missing:
            raise StepFailed(f"the model did not fill {missing} for {tool}")
        arguments = json.loads(call.arguments_json) | {n: filled[n] for n in names}
        return call.model_copy(update={"arguments_json": json.dumps(arguments, sort_keys=True, ensure_ascii=False)})


async def _extracted(step: ToolStep, text: str, full: ContentRef | None) -> str:
    """In an activity, not here: the pattern is a plan's (a model's, for an LLM plan), and one that backtracks for ever
    would hold the workflow task past its deadlock timeout; the whole output also stays out of the history."""
    extracted = await workflow.execute_activity(
        EXTRACT_OUTPUT_ACTIVITY, ExtractRequest(text=None if full else text, full=full, extract=step.extract),
        result_type=ExtractedValue, summary=f"{step.id}: extract output", **EXTRACT.kwargs(),
    )
    return extracted.value
