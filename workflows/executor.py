"""The executor: runs one plan step inside `GoalWorkflow` (workflow code: deterministic, no I/O).

It owns a step's lifecycle (status, timestamps, output hash) and hands the work to the runner for
the step's kind (`workflows/steps/`). Expected endings (budget spent, a failed tool or model call,
escalation) become the step's status; any other exception is a bug in workflow code and fails the
workflow task, so the goal waits for a fixed worker instead of failing a step for no reason.

An escalated step waits for a human (`resolve`): accept keeps its output, retry runs it again with
the resolver's guidance, abort (or the timeout) leaves it escalated.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.escalations import EscalationDecision, Resolution
    from contracts.goal import StepResult, StepStatus
    from contracts.plan import AgentStep, PlanStep, StepKind
    from core.hashing import sha256_text
    from workflows.escalations import STEP_DECISIONS, EscalationDesk
    from workflows.failures import BudgetExceeded, StepEscalated, StepFailed, failure_message
    from workflows.steps import StepContext, StepRunner


def with_guidance(step: PlanStep, resolution: Resolution) -> PlanStep:
    """The step to retry: an agent step's instruction gains the resolver's guidance (a human's words, trusted)."""
    if not isinstance(step, AgentStep) or not resolution.guidance.strip():
        return step
    note = f"\n\nGuidance from {resolution.resolver}, the human who reviewed the previous attempt: {resolution.guidance.strip()}"
    return step.model_copy(update={"instruction": step.instruction + note})


class StepExecutor:
    """Runs steps for one goal; records progress for the `status` query."""

    def __init__(self, context: StepContext, runners: dict[StepKind, StepRunner], escalations: EscalationDesk) -> None:
        self.context = context
        self.runners = runners
        self.escalations = escalations

    async def run(self, step: PlanStep, outputs: Mapping[str, str]) -> StepResult:
        result = StepResult(step_id=step.id, role=step.role, status=StepStatus.RUNNING, started_at=workflow.now())
        progress = self.context.progress[step.id]
        attempt = step
        while True:
            progress.status = result.status = StepStatus.RUNNING
            result.error = None
            await self._attempt(attempt, outputs, result)
            if result.status is not StepStatus.ESCALATED:
                break
            progress.status = StepStatus.AWAITING_RESOLUTION
            output_hash = sha256_text(result.output) if result.output else None
            escalation = self.escalations.open(step.id, result.error or "escalated", output_hash, STEP_DECISIONS)
            result.escalation_ids.append(escalation.escalation_id)
            decision = await self.escalations.wait(escalation)
            if decision is EscalationDecision.ACCEPT:
                result.status, result.error = StepStatus.COMPLETED, None
                break
            if decision is EscalationDecision.RETRY and escalation.resolution is not None:
                attempt = with_guidance(step, escalation.resolution)
                continue
            if decision is EscalationDecision.REPLAN and escalation.resolution is not None:
                # The scheduler revises the rest of the plan once the running steps are done.
                result.status, result.replan_guidance = StepStatus.FAILED, escalation.resolution.guidance
                result.error = f"{result.error}; re-planning requested by {escalation.resolution.resolver}"
                break
            ended = f"aborted by {escalation.resolution.resolver}" if escalation.resolution else "no resolution in time, aborted"
            result.error = f"{result.error}; {ended}"
            break
        result.finished_at = workflow.now()
        if result.status is StepStatus.COMPLETED:
            result.output_sha256 = sha256_text(result.output)
        progress.status = result.status
        return result

    async def _attempt(self, step: PlanStep, outputs: Mapping[str, str], result: StepResult) -> None:
        """One run of the step's runner; expected endings become the result's status."""
        try:
            await self.runners[step.type].run(step, outputs, result)
        except BudgetExceeded as err:
            result.status, result.error = StepStatus.FAILED, f"BudgetExceeded: {err}"
        except StepFailed as err:
            result.status, result.error = StepStatus.FAILED, str(err)
        except StepEscalated as err:
            result.status, result.error = StepStatus.ESCALATED, str(err)
        except ActivityError as err:
            # A model call or verification that failed for good ends this step; the goal still reports.
            result.status, result.error = StepStatus.FAILED, failure_message(err)
