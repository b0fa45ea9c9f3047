"""Step scheduling for one goal (workflow code): ready steps (every dependency completed) run
concurrently up to `max_parallel_steps`, in plan order.

When a step fails for good: its declared `fallback` step runs and its output stands in for the failed
step's; else, in an LLM-planned goal (or when a resolver chose `replan`), new steps stop starting, the
running ones finish, and the planner revises the rest of the plan from what is done (bounded by
`max_plan_revisions`; each revision is a `plan_goal` activity and is kept in the result). Steps the
revision replaces, and the failed step itself, are marked `superseded_by`.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.goal import GoalRequest, StepProgress, StepResult, StepStatus
    from contracts.plan import PLAN_GOAL_ACTIVITY, DoneStep, Plan, PlanRequest, PlanRevision, PlanSource, PlanStep
    from core.options import PLANNER
    from core.relevance import instruction_of
    from workflows.executor import StepExecutor
    from workflows.failures import failure_message
    from workflows.ledger import GoalLedger

DONE_OUTPUT_CHARS = 1_000


class StepScheduler:
    def __init__(
        self, request: GoalRequest, executor: StepExecutor, ledger: GoalLedger, progress: dict[str, StepProgress]
    ) -> None:
        self.request = request
        self.executor = executor
        self.ledger = ledger
        self.progress = progress
        self.steps: list[PlanStep] = []
        self.output_step = ""
        self.revisions: list[Plan] = []
        self.revision_errors: list[str] = []
        self.outputs: dict[str, str] = {}  # a failed step a fallback stood in for has the fallback's output

    async def run(self, plan: Plan) -> list[StepResult]:
        self.steps, self.output_step = list(plan.steps), plan.output_step or plan.steps[-1].id
        standby = {s.fallback for s in self.steps if s.fallback}  # fallback steps run only when triggered
        triggered: dict[str, str] = {}  # fallback step id -> the failed step it stands in for
        results: dict[str, StepResult] = {}
        outputs = self.outputs
        running: dict[str, asyncio.Task[StepResult]] = {}
        replan_after: StepResult | None = None
        while True:
            awaited = {failed for fallback, failed in triggered.items() if fallback not in results}
            for step in self.steps if replan_after is None else []:
                if step.id in results or step.id in running or (step.id in standby and step.id not in triggered):
                    continue
                blocked = [d for d in step.depends_on
                           if d in results and d not in outputs and d not in awaited and results[d].status is not StepStatus.COMPLETED]
                if blocked or self.ledger.exceeded:
                    reason = "budget exceeded" if self.ledger.exceeded else f"dependencies did not complete: {blocked}"
                    results[step.id] = StepResult(step_id=step.id, role=step.role, status=StepStatus.SKIPPED, error=reason)
                    self.progress[step.id].status = StepStatus.SKIPPED
                elif all(d in outputs for d in step.depends_on) and len(running) < self.request.max_parallel_steps:
                    running[step.id] = asyncio.create_task(self.executor.run(step, outputs))
            if not running:
                if replan_after is not None and await self._revise(plan, replan_after, results, outputs):
                    replan_after = None
                    continue
                break
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for step_id, task in list(running.items()):  # insertion order: deterministic
                if not task.done():
                    continue
                del running[step_id]
                result = results[step_id] = task.result()
                if result.status is StepStatus.COMPLETED:
                    outputs[step_id] = result.output
                    if step_id in triggered:  # a fallback that worked stands in for the step that failed
                        outputs[triggered[step_id]] = result.output
                        results[triggered[step_id]].superseded_by = step_id
                elif result.status is StepStatus.FAILED:
                    step = next(s for s in self.steps if s.id == step_id)
                    if step.fallback and step.fallback not in triggered:
                        triggered[step.fallback] = step_id
                    elif replan_after is None and self._replannable(plan, result):
                        replan_after = result
        return [results[s.id] for s in self.steps if s.id in results]

    def can_revise(self) -> bool:
        """A revision of the plan is still possible (within `max_plan_revisions`, budget left)."""
        return len(self.revisions) < self.request.max_plan_revisions and not self.ledger.exceeded

    def _replannable(self, plan: Plan, result: StepResult) -> bool:
        return self.can_revise() and (result.replan_guidance is not None or plan.source is PlanSource.LLM)

    async def _revise(self, plan: Plan, failed: StepResult, results: dict[str, StepResult], outputs: dict[str, str]) -> bool:
        """Ask the planner for the rest of the plan; False (and the goal goes on as it is) if it cannot."""
        number = len(self.revisions) + 1
        done = [
            DoneStep(step_id=s.id, role=s.role, instruction=instruction_of(s), output=outputs[s.id][:DONE_OUTPUT_CHARS])
            for s in self.steps if s.id in outputs and results.get(s.id) and results[s.id].status is StepStatus.COMPLETED
        ]
        failures = [r for r in results.values() if r.status is StepStatus.FAILED and r.superseded_by is None]
        revision = PlanRevision(
            number=number, done=done, failed_step_id=failed.step_id,
            failure="; ".join(f"{r.step_id}: {r.error or 'failed'}" for r in failures) or failed.error or "failed",
            guidance=failed.replan_guidance or "",
        )
        try:
            revised = await workflow.execute_activity(
                PLAN_GOAL_ACTIVITY,
                PlanRequest(goal=self.request.goal, spec=self.request.models.planner, revision=revision),
                result_type=Plan,
                summary=f"revise plan ({number}): after {failed.step_id} failed",
                **PLANNER.kwargs(),
            )
        except ActivityError as err:
            self.revision_errors.append(f"revision {number} failed: {failure_message(err)}")
            return False
        self.ledger.usage.add_model(revised.usage, revised.cost_usd, calls=revised.model_calls)
        self.revisions.append(revised)
        marker = f"revision {number}"
        for result in results.values():  # every failure still standing (steps that failed in parallel too) is dealt with
            if result.status is StepStatus.FAILED and result.superseded_by is None:
                result.superseded_by = marker
        for step in self.steps:  # what has not run is replaced by the revision
            if step.id not in results:
                results[step.id] = StepResult(step_id=step.id, role=step.role, status=StepStatus.SKIPPED,
                                              error=f"replaced by plan {marker}", superseded_by=marker)
                self.progress[step.id].status = StepStatus.SKIPPED
        for step in revised.steps:
            self.progress[step.id] = StepProgress(step_id=step.id, role=step.role, status=StepStatus.PENDING)
        self.steps += revised.steps
        self.output_step = revised.output_step or revised.steps[-1].id
        return True
