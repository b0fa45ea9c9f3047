"""A deliberately changed `GoalWorkflow` for tests/test_history_cli.py: registered under the real name, it
schedules an activity where today's workflow plans a playbook in a local activity, so every real playbook
goal's history replays nondeterministic against it. Its own module (nothing else imported) so the workflow
sandbox can import it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.goal import GOAL_WORKFLOW, GoalRequest, GoalResult

CHANGED_ACTIVITY = "plan_goal_v2"


@workflow.defn(name=GOAL_WORKFLOW)
class ChangedGoalWorkflow:
    @workflow.run
    async def run(self, request: GoalRequest) -> GoalResult:
        return await workflow.execute_activity(
            CHANGED_ACTIVITY, request, start_to_close_timeout=timedelta(seconds=5), result_type=GoalResult
        )
