"""`run_python` from the shipped `compute` playbook on the real dev server: with the real embedded model (SmolLM2 in
process) the goal's expression runs in the sandbox, its result comes back (stdout and a kept file) and the report
states it; a goal with no expression fails at the sandboxed step, with the reason, before any model call. Each goal
is replayed (`run_goal`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.goal import GoalRequest, GoalStatus, StepStatus
from contracts.tools import ToolResult
from core.templating import slugify
from testkit.models import ScriptedModel, answer
from tests.helpers import fake_activities, run_goal, scheduled_activities
from worker import all_activities

GOAL = "Compute `sum(i * i for i in range(1, 11))` and report it"
RESULT = "385"


def tool_results(history: WorkflowHistory, activity_type: str) -> list[ToolResult]:
    """The `ToolResult`s the activities of one type returned, as recorded in the history."""
    scheduled = {
        e.event_id for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    converter = pydantic_data_converter.payload_converter
    return [
        converter.from_payloads(attrs.result.payloads, [ToolResult])[0]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and (attrs := e.activity_task_completed_event_attributes).scheduled_event_id in scheduled
    ]


@pytest.mark.embedded
async def test_the_compute_playbook_runs_code_and_reports_it_on_the_embedded_model(
    client: Client, task_queue: str, foreman_home: Path,
) -> None:
    result, history = await run_goal(client, task_queue, GoalRequest(goal=GOAL, playbook="compute"), all_activities(), timeout=120)

    assert result.status is GoalStatus.COMPLETED, result.error
    compute, report = result.steps
    assert [compute.status, report.status] == [StepStatus.COMPLETED] * 2
    (call,) = compute.tool_calls
    assert call.tool == "run_python" and call.ok and compute.output == RESULT
    (run,) = [r.sandbox for r in tool_results(history, "run_python")]
    assert run is not None and run.exit_code == 0 and run.stdout.strip() == RESULT and not run.timed_out
    (kept,) = run.outputs
    assert kept.path == f"results/{slugify(GOAL)}.json" and kept.error is None and kept.sha256
    assert json.loads((foreman_home / "workspace" / kept.path).read_text())["result"] == RESULT
    # The report is the embedded model's sentence (not a copy of the tool output), and it states the number.
    assert report.model_calls and all(c.provider == "local" and c.model.endswith(".gguf") for c in report.model_calls)
    assert RESULT in result.output and result.output.strip() != RESULT
    kinds = scheduled_activities(history)
    assert kinds.index("run_python") < kinds.index("call_model") and "run_check_tests" in kinds


async def test_a_goal_without_an_expression_fails_in_the_sandbox_with_the_reason(client: Client, task_queue: str) -> None:
    model = ScriptedModel(lambda r: answer("never asked"))
    request = GoalRequest(goal="Compute the sum of the squares of 1 to 10", playbook="compute")
    result, history = await run_goal(client, task_queue, request, fake_activities(model.activity()))

    assert result.status is GoalStatus.FAILED
    compute = result.steps[0]
    assert compute.status is StepStatus.FAILED and not compute.tool_calls[0].ok  # the program ran and exited 1
    assert "cannot evaluate 'Compute the sum of the squares of 1 to 10': SyntaxError" in (compute.error or "")
    (run,) = [r.sandbox for r in tool_results(history, "run_python")]
    assert run is not None and run.exit_code == 1 and run.outputs[0].error
    assert model.requests == [] and "call_model" not in scheduled_activities(history)


PLANNED_GOAL = "As a coder, write and run Python code that prints 2 to the power of 20, and report the result"


@pytest.mark.embedded
async def test_the_llm_planner_on_the_embedded_model_plans_code_that_runs_in_the_sandbox(
    client: Client, task_queue: str, foreman_home: Path,
) -> None:
    """No playbook: the embedded model plans the goal, writes the program as a ```python block, the block runs through
    run_python in the sandbox, and what it printed is reported."""
    result, history = await run_goal(client, task_queue, GoalRequest(goal=PLANNED_GOAL), all_activities(), timeout=240)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.plan is not None and result.plan.source == "llm" and result.plan.fallback_reason is None
    coders = [s for s in result.plan.steps if s.role == "coder"]
    assert coders and all(s.tools == ["run_python"] and s.code_blocks for s in coders)
    runs = [r.sandbox for r in tool_results(history, "run_python")]
    assert any(r is not None and r.exit_code == 0 and r.stdout.strip() == "1048576" for r in runs), runs
    calls = [c for s in result.steps for c in s.tool_calls]
    assert calls and all(c.tool == "run_python" for c in calls)  # code ran only as run_python calls, gated like one
    assert "1048576" in result.output
