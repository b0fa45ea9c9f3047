"""Subagent steps (workflow code): the sub-goal runs as a child `GoalWorkflow`, shown as such in the
Temporal UI (Relationships), with a deterministic id `<parent>/<step>` (`/<n>` for later runs), so a
replayed or resumed parent finds its child instead of starting another.

The child gets a budget carved out of what the parent has left, the step role's principal as an outer
policy scope (plus the parent's own scopes: never wider), the parent's model routing and its cache
switch. Cancelling the parent cancels the child (REQUEST_CANCEL). The child's output is the step's output,
verified by the step's checks; a child that fails, runs out of budget or ends escalated is a typed step
outcome.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from contracts.goal import (
        GOAL_WORKFLOW, MAX_SUBAGENT_DEPTH, Budget, GoalRequest, GoalResult, GoalStatus, ParentLink, StepResult, StepStatus,
        UsageTotals,
    )
    from contracts.events import SubagentStarted
    from contracts.llm import CacheUse
    from contracts.plan import SubagentStep
    from contracts.policy import Principal
    from core.templating import render
    from workflows.failures import StepEscalated, StepFailed, failure_message
    from workflows.ledger import whole_carve
    from workflows.model_calls import cache_use
    from workflows.steps.base import StepContext


class SubagentStepRunner:
    def __init__(self, context: StepContext) -> None:
        self.context = context

    @property
    def depth(self) -> int:
        """How deep this goal is: 0 for a top-level goal."""
        parent = self.context.request.parent
        return parent.depth if parent else 0

    def child_request(self, step: SubagentStep, goal: str, budget: Budget) -> GoalRequest:
        parent = self.context.request
        own = self.context.approvals.policy.principal(step.role) or Principal(role=step.role, tools=[])
        return GoalRequest(
            goal=goal,
            playbook=step.playbook,
            budget=budget,
            models=parent.models.model_copy(update={"executor": step.model}) if step.model else parent.models,
            max_parallel_steps=parent.max_parallel_steps,
            continue_as_new_after_events=parent.continue_as_new_after_events,
            continue_as_new_after_bytes=parent.continue_as_new_after_bytes,
            cache=cache_use(parent, step) is not CacheUse.OFF,  # a goal's or a step's `cache: false` holds in the child too
            parent=ParentLink(workflow_id=workflow.info().workflow_id, step_id=step.id, role=step.role, depth=self.depth + 1),
            scopes=[*parent.scopes, own],
            # This goal's gates already include its ancestors' (first): the child inherits them all.
            inherited_gates=list(self.context.approvals.policy.gates),
            inherited_approvers=list(self.context.approvals.policy.approvers),
            inherited_require_signatures=self.context.approvals.policy.require_signatures,
            inherited_escalations=self.context.approvals.policy.escalations,
            # A revised plan's sub-goal was written by a model that had read step outputs; so was any goal under it.
            written_after_untrusted=parent.written_after_untrusted or step.id in self.context.revised_steps,
        )

    async def run(self, step: SubagentStep, outputs: Mapping[str, str], result: StepResult) -> None:
        context = self.context
        progress = context.progress[step.id]
        goal = render(step.goal, context.request.goal, outputs)
        if self.depth >= MAX_SUBAGENT_DEPTH:
            raise StepFailed(f"subagents nest at most {MAX_SUBAGENT_DEPTH} deep; this goal is already at depth {self.depth}")
        for attempt in range(1, step.max_attempts + 1):
            result.attempts = progress.attempt = attempt
            run = len(result.child_workflow_ids) + 1
            child_id = f"{workflow.info().workflow_id}/{step.id}" + (f"/{run}" if run > 1 else "")
            carved = context.ledger.carve(step.budget_share)
            result.child_workflow_ids.append(child_id)
            progress.child_workflow_id = child_id
            context.router.expect(child_id)
            context.events.emit(SubagentStarted, step_id=step.id, child_workflow_id=child_id, attempt=attempt)
            try:
                child: GoalResult = await workflow.execute_child_workflow(
                    GOAL_WORKFLOW,
                    self.child_request(step, goal, carved),
                    id=child_id,
                    result_type=GoalResult,
                    task_queue=step.task_queue or workflow.info().task_queue,
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    static_summary=f"subagent {step.id} ({step.role}): {goal[:200]}",
                )
            except ChildWorkflowError as err:
                context.ledger.settle(carved, whole_carve(carved))  # what it spent is unknown: charge it all
                raise StepFailed(f"subagent {child_id} failed: {failure_message(err)}") from err
            except WorkflowAlreadyStartedError as err:  # e.g. a reset parent whose earlier child still runs
                context.ledger.settle(carved, UsageTotals())
                raise StepFailed(f"subagent {child_id} could not start: a workflow with that id is already running") from err
            finally:
                context.router.forget(child_id)
            context.ledger.settle(carved, child.usage)
            result.child_memories += child.memories
            result.output = child.output  # what a resolver accepts if the child ended escalated
            if child.status is GoalStatus.ESCALATED:
                raise StepEscalated(f"subagent {child_id} ended escalated: {child.error}")
            if child.status is not GoalStatus.COMPLETED:
                raise StepFailed(f"subagent {child_id} ended {child.status.value}: {child.error}")
            result.output = child.output
            if await context.verification.accepted(step, child.output, result) or result.status is StepStatus.ESCALATED:
                return
        result.status = StepStatus.FAILED
        result.error = "verification failed: " + "; ".join(result.verdicts[-1].reasons)
