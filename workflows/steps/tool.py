"""Tool steps (workflow code): one declared tool call, no model; its output is the tool's output,
verified like any step's (bounded attempts)."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import StepResult, StepStatus
    from contracts.plan import ToolStep
    from workflows.failures import StepFailed
    from workflows.steps.base import StepContext, declared_call


class ToolStepRunner:
    def __init__(self, context: StepContext) -> None:
        self.context = context

    async def run(self, step: ToolStep, outputs: Mapping[str, str], result: StepResult) -> None:
        context = self.context
        progress = context.progress[step.id]
        call = declared_call(f"{step.id}-call", step.invocation, context.request.goal, outputs)
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            record, output = await context.tools.call(step, call, allowed={step.invocation.tool})
            result.tool_calls.append(record)
            if output is None:
                raise StepFailed(record.error or "tool call failed")
            result.output = output.content
            if await context.verification.accepted(step, output.content, result) or result.status is StepStatus.ESCALATED:
                return
        result.status = StepStatus.FAILED
        result.error = "verification failed: " + "; ".join(result.verdicts[-1].reasons)
