"""The executor: runs one plan step inside `GoalWorkflow` (workflow code: deterministic, no I/O).

It owns a step's lifecycle (status, timestamps, output hash) and hands the work to the runner for
the step's kind (`workflows/steps/`). Expected endings (budget spent, a failed tool or model call,
escalation) become the step's status; any other exception is a bug in workflow code and fails the
workflow task, so the goal waits for a fixed worker instead of failing a step for no reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.goal import StepResult, StepStatus
    from contracts.plan import PlanStep, StepKind
    from core.hashing import sha256_text
    from workflows.failures import BudgetExceeded, StepEscalated, StepFailed, failure_message
    from workflows.steps import StepContext, StepRunner


class StepExecutor:
    """Runs steps for one goal; records progress for the `status` query."""

    def __init__(self, context: StepContext, runners: dict[StepKind, StepRunner]) -> None:
        self.context = context
        self.runners = runners

    async def run(self, step: PlanStep, outputs: Mapping[str, str]) -> StepResult:
        result = StepResult(step_id=step.id, role=step.role, status=StepStatus.RUNNING, started_at=workflow.now())
        progress = self.context.progress[step.id]
        progress.status = StepStatus.RUNNING
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
        result.finished_at = workflow.now()
        if result.status is StepStatus.COMPLETED:
            result.output_sha256 = sha256_text(result.output)
        progress.status = result.status
        return result
