"""The real path on the embedded model (SmolLM2 in process, no network): the demo playbook and an
LLM-planned goal, end to end on the dev server, then replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from contracts.goal import GoalRequest, GoalStatus, StepStatus
from contracts.plan import PlanRequest, PlanSource
from activities.planner import parse_draft, plan_goal
from core.relevance import ungrounded_steps
from temporalio.testing import ActivityEnvironment
from tests.helpers import run_goal, scheduled_activities
from worker import all_activities

pytestmark = pytest.mark.embedded


async def test_demo_goal_on_the_embedded_model(client: Client, task_queue: str, foreman_home: Path) -> None:
    request = GoalRequest(goal="Explain how durable execution makes AI agents safe to retry", playbook="research-brief")
    result, history = await run_goal(client, task_queue, request, all_activities(), timeout=300)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert [s.status for s in result.steps] == [StepStatus.COMPLETED] * 3
    assert result.output.strip()
    for step in result.steps[:2]:
        assert step.model_calls and all(c.provider == "local" and c.model.endswith(".gguf") for c in step.model_calls)
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0 and result.usage.cost_usd == 0
    kinds = scheduled_activities(history)
    assert kinds[0] == "plan_goal" and {"call_model", "search_corpus", "verify_output", "write_file"} <= set(kinds)
    brief = next((foreman_home / "workspace" / "briefs").glob("*.md")).read_text()
    assert result.output.strip() in brief


async def test_llm_planned_goal_on_the_embedded_model(client: Client, task_queue: str) -> None:
    request = GoalRequest(goal="List two reasons to make tool calls idempotent")
    result, history = await run_goal(client, task_queue, request, all_activities(), timeout=300)

    assert result.plan is not None and result.plan.source is PlanSource.LLM, result.error
    assert result.plan.model_calls >= 1 and result.plan.attempts
    # A clean plan, or (SmolLM2 often plans off-topic) a recorded fallback that answers the goal in one step.
    assert not result.plan.attempts[-1].problems or result.plan.fallback_reason
    assert ungrounded_steps(request.goal, result.plan.steps) == []
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.output.strip()
    assert scheduled_activities(history).count("call_model") >= len(result.plan.steps)


async def test_the_embedded_planner_never_gets_an_off_topic_plan_through() -> None:
    """SmolLM2 drafted "write a function that sums squares" for this goal when a user first tried it (that exact
    plan is caught in test_plan_validation.py); whatever it drafts now, an ungrounded draft is rejected and
    the plan that runs addresses the goal."""
    goal = "Compare retries and idempotency for tool calls"
    plan = await ActivityEnvironment().run(plan_goal, PlanRequest(goal=goal))
    for attempt in plan.attempts:
        steps, problems, _ = parse_draft(attempt.raw_output, 5)
        if steps and not problems and ungrounded_steps(goal, steps):
            assert attempt.problems, attempt  # an off-topic draft never passes
    assert ungrounded_steps(goal, plan.steps) == []
    assert not plan.attempts[-1].problems or plan.fallback_reason
