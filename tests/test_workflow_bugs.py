"""A bug in workflow code fails the workflow task, never a step or the run: the goal waits, RUNNING,
with the bug in its history, until a fixed worker resumes it from history and completes it.

The bug is injected by registering a `GoalWorkflow` subclass (same workflow type) whose agent runner
raises on the `draft` step, after `research` has completed; a worker with the real workflow then
replays `research` without running any of its activities again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from temporalio import workflow

# The sandbox re-imports this module to validate the workflows defined here: everything else passes through.
with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowExecutionStatus
    from temporalio.worker import Worker

    from contracts.goal import GOAL_WORKFLOW, GoalRequest, GoalResult, GoalStatus, StepResult, StepStatus
    from contracts.plan import PlanStep, StepKind
    from tests.fakes import ScriptedModel, answer
    from tests.helpers import approve_everything, assert_each_activity_completed_once, fake_activities, replay
    from worker import build_worker
    from workflows.goal import GoalWorkflow
    from workflows.runner import workflow_runner
    from workflows.steps import StepRunner

BUGS = {
    # pydantic's ValidationError is a ValueError: it must not pass for bad input or a failed step.
    "validation-error": lambda: StepResult.model_validate({"step_id": "draft"}),
    "key-error": lambda: {}["missing"],
}


class DraftBug:
    """The real agent runner, except that the `draft` step hits a bug before it does anything."""

    def __init__(self, runner: StepRunner, bug: str) -> None:
        self.runner, self.bug = runner, bug

    async def run(self, step: PlanStep, outputs: Mapping[str, str], result: StepResult) -> None:
        if step.id == "draft":
            BUGS[self.bug]()
        await self.runner.run(step, outputs, result)


@workflow.defn(name=GOAL_WORKFLOW, failure_exception_types=[ValidationError])
class GoalWorkflowWithValidationBug(GoalWorkflow):
    bug = "validation-error"

    @workflow.init
    def __init__(self, request: GoalRequest) -> None:
        super().__init__(request)
        runners = self._executor.runners
        runners[StepKind.AGENT] = DraftBug(runners[StepKind.AGENT], self.bug)

    @workflow.run
    async def run(self, request: GoalRequest) -> GoalResult:
        return await super().run(request)


@workflow.defn(name=GOAL_WORKFLOW, failure_exception_types=[ValidationError])
class GoalWorkflowWithKeyBug(GoalWorkflowWithValidationBug):
    bug = "key-error"

    @workflow.run
    async def run(self, request: GoalRequest) -> GoalResult:
        return await super().run(request)


BUGGY_WORKFLOWS = {cls.bug: cls for cls in (GoalWorkflowWithValidationBug, GoalWorkflowWithKeyBug)}


def responder(request):
    return answer("Durable execution records every step, so a crashed agent resumes instead of starting over.")


@pytest.mark.parametrize("bug", sorted(BUGS))
async def test_a_bug_in_a_step_fails_the_workflow_task_and_a_fixed_worker_completes_the_goal(
    client: Client, task_queue: str, bug: str
) -> None:
    activities = fake_activities(ScriptedModel(responder).activity())
    request = GoalRequest(goal="Explain durable execution for agents", playbook="research-brief")
    async with Worker(client, task_queue=task_queue, workflows=[BUGGY_WORKFLOWS[bug]], activities=activities, workflow_runner=workflow_runner()):
        handle = await client.start_workflow(GOAL_WORKFLOW, request, id=f"bug-{bug}-{task_queue}", task_queue=task_queue,
                                             result_type=GoalResult)
        async with asyncio.timeout(30):
            while not (failed := await failed_tasks(handle)):
                await asyncio.sleep(0.1)
    # The goal is waiting, not failed: nothing about the bug was turned into a step or goal outcome.
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    assert any(expected in failed[0] for expected in ("WorkflowCodeError", "KeyError")), failed[0]

    async with build_worker(client, task_queue, activities=activities):
        approving = asyncio.create_task(approve_everything(handle, ("bob",)))
        try:
            async with asyncio.timeout(60):
                result = await handle.result()
        finally:
            approving.cancel()
    assert result.status is GoalStatus.COMPLETED, result.error
    assert [s.status for s in result.steps] == [StepStatus.COMPLETED] * 3
    history = await handle.fetch_history()
    # research's search, model turn and verification ran once, before the bug; the fixed worker replayed them.
    assert_each_activity_completed_once(history)
    await replay(history)


async def failed_tasks(handle) -> list[str]:
    """Failure messages of the workflow's failed workflow tasks, oldest first."""
    history = await handle.fetch_history()
    return [
        f"{e.workflow_task_failed_event_attributes.failure.message} "
        f"{e.workflow_task_failed_event_attributes.failure.application_failure_info.type}"
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
