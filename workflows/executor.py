"""The executor: runs one plan step inside `GoalWorkflow` (workflow code: deterministic, no I/O).

It owns a step's lifecycle (status, timestamps, output hash) and hands the work to the runner for
the step's kind (`workflows/steps/`). Expected endings (budget spent, a failed tool or model call,
escalation) become the step's status; any other exception is a bug in workflow code and fails the
workflow task, so the goal waits for a fixed worker instead of failing a step for no reason.

An escalated step waits for a human (`resolve`): accept keeps its output, retry runs it again with
the resolver's guidance, abort (or the timeout) leaves it escalated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.continuation import EntryKind, JournalEntry
    from contracts.escalations import Escalation, EscalationDecision, Resolution
    from contracts.events import StepFinished, StepStarted, short
    from contracts.goal import StepResult, StepStatus
    from contracts.plan import PlanStep, StepKind, ToolStep
    from core.hashing import sha256_text
    from workflows.escalations import STEP_DECISIONS, EscalationDesk
    from workflows.failures import BudgetExceeded, StepEscalated, StepFailed, failure_message
    from workflows.steps import StepContext, StepRunner


GUIDED_FIELDS = {StepKind.AGENT: "instruction", StepKind.EXPLORE: "instruction", StepKind.SUBAGENT: "goal"}


def output_hash_of(result: StepResult) -> str:
    """The hash of the step's whole output (a previewed one's is the full content's, from the tool)."""
    return result.full_output.sha256 if result.full_output is not None else sha256_text(result.output)


def with_guidance(step: PlanStep, resolution: Resolution) -> PlanStep:
    """The step to retry: what it is asked to do gains the resolver's guidance (a human's words, trusted), kept
    within the field's limit; a tool step gains it only where a model fills its arguments."""
    field = "fill_instruction" if isinstance(step, ToolStep) and step.model_fills else GUIDED_FIELDS.get(step.type)
    if field is None or not resolution.guidance.strip():
        return step
    note = f"\n\nGuidance from {resolution.resolver}, the human who reviewed the previous attempt: {resolution.guidance.strip()}"
    limit = next(m.max_length for m in type(step).model_fields[field].metadata if hasattr(m, "max_length"))
    guided = getattr(step, field)[: max(0, limit - len(note))] + note  # the guidance is kept whole, the text cut if needed
    return type(step).model_validate(step.model_dump() | {field: guided[:limit]})


class StepExecutor:
    """Runs steps for one goal; records progress for the `status` query."""

    def __init__(
        self, context: StepContext, runners: dict[StepKind, StepRunner], escalations: EscalationDesk,
        can_replan: Callable[[], bool] = lambda: False,
    ) -> None:
        self.context = context
        self.runners = runners
        self.escalations = escalations
        self.can_replan = can_replan  # the scheduler says whether a revision of the plan is still possible

    async def run(self, step: PlanStep, outputs: Mapping[str, str]) -> StepResult:
        journal, events = self.context.journal, self.context.events
        resumed = journal.resuming(step.id)
        result = StepResult(step_id=step.id, role=step.role, status=StepStatus.RUNNING, started_at=journal.begin(step.id, step.type))
        events.emit(StepStarted, step_id=step.id, kind=step.type.value, role=step.role, resumed=resumed)
        progress = self.context.progress[step.id]
        attempt = step
        while True:
            progress.status = result.status = StepStatus.RUNNING
            result.error = None
            await self._attempt(attempt, outputs, result)
            if result.status is not StepStatus.ESCALATED:
                break
            progress.status = StepStatus.AWAITING_RESOLUTION
            output_hash = output_hash_of(result) if result.output else None
            escalation = self._escalation(step.id, result.error or "escalated", output_hash)
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
            result.output_sha256 = output_hash_of(result)
        progress.status = result.status
        progress.sync(result)
        journal.end(step.id)
        events.emit(StepFinished, step_id=step.id, status=result.status.value, attempts=result.attempts, score=result.score,
                    output_sha256=result.output_sha256, error=short(result.error) if result.error else None)
        return result

    def _escalation(self, step_id: str, reason: str, output_hash: str | None) -> Escalation:
        """A new escalation, or, for a step resumed after continue-as-new, the one it had opened (resolved meanwhile, perhaps)."""
        replayed = self.context.journal.replayed(step_id, EntryKind.ESCALATION)
        if replayed and replayed.escalation_id:
            return self.escalations.escalations[replayed.escalation_id]
        escalation = self.escalations.open_escalation(step_id, reason, output_hash, self._decisions(output_hash))
        self.context.journal.record(step_id, JournalEntry(kind=EntryKind.ESCALATION, escalation_id=escalation.escalation_id))
        return escalation

    def _decisions(self, output_hash: str | None) -> list[EscalationDecision]:
        """What a resolver may decide: accept needs an output to accept (an expired approval has none: the
        action never ran), replan needs a revision to be possible."""
        return [
            d for d in STEP_DECISIONS
            if not (d is EscalationDecision.ACCEPT and output_hash is None)
            and not (d is EscalationDecision.REPLAN and not self.can_replan())
        ]

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
