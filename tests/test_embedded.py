"""The real path on the embedded model (SmolLM2 in process, no network): the demo playbook and an
LLM-planned goal, end to end on the dev server, then replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from contracts.goal import GoalRequest, GoalStatus, StepStatus
from contracts.plan import PlanSource
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
    assert result.plan.model_calls >= 1 and result.plan.attempts and not result.plan.attempts[-1].problems
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.output.strip()
    assert scheduled_activities(history).count("call_model") >= len(result.plan.steps)
