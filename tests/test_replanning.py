"""Re-planning and fallbacks on the real dev server: a step of an LLM-planned goal that fails for good
makes the planner revise the rest of the plan (finished steps kept, revisions bounded and recorded); a
resolver's `replan` does the same for any goal, with their guidance; a playbook's declared fallback step
stands in for a step that failed. The planner and judge models are a real local OpenAI-protocol server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.goal import Budget, GoalRequest, GoalStatus, StepStatus
from tests.fakes import COMPARISON as GOOD, ScriptedModel, answer, executor, notes_from_memory, weak_then_good
from tests.helpers import (
    GOAL, PlannerServer, draft, fake_activities, fallback_playbook, models, replan_llm_plans, replan_resolver_plans,
    replannable_playbook, replay, resolve, run_goal, waiting, write_playbook,
)
from tests.llama_server import Recorded, Reply
from worker import build_worker
from workflows.goal import GoalWorkflow


async def test_a_failed_llm_planned_step_makes_the_planner_revise_the_rest(client: Client, task_queue: str) -> None:
    server = PlannerServer(*replan_llm_plans())
    with server:
        result, history = await run_goal(client, task_queue, GoalRequest(goal=GOAL, models=models(server)),
                                         fake_activities(ScriptedModel(executor).activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    research, failed, rewritten = result.steps
    assert failed.step_id == "drafter-2" and failed.status is StepStatus.FAILED and failed.superseded_by == "revision 1"
    assert rewritten.step_id == "v1-drafter-1" and rewritten.status is StepStatus.COMPLETED
    (revision,) = result.plan_revisions
    assert revision.revision == 1 and revision.steps[0].depends_on == ["researcher-1"] and result.output == GOOD
    # The planner saw what was done and why the step failed.
    prompt = server.planner_prompts[1]
    assert 'step="researcher-1" untrusted="true">\n(researcher) Research retries' in prompt and "Step drafter-2 failed" in prompt and GOOD in prompt
    summaries = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert summaries.count("plan_goal") == 2


class SlowRevisions(PlannerServer):
    """Plans at once; answers a revision long after the goal's deadline."""

    def reply(self, request: Recorded) -> Reply:
        answer = super().reply(request)
        revising = "steps" in json.dumps(request.body.get("response_format")) and len(self.planner_prompts) > 1
        return dataclasses.replace(answer, delay_seconds=8.0) if revising else answer


async def test_a_revision_cut_off_by_the_deadline_ends_the_goal_over_budget(client: Client, task_queue: str) -> None:
    server = SlowRevisions(*replan_llm_plans())
    with server:
        request = GoalRequest(goal=GOAL, models=models(server), budget=Budget(max_wall_seconds=4))
        result, history = await run_goal(client, task_queue, request, fake_activities(ScriptedModel(executor).activity()),
                                         timeout=20)
    assert result.status is GoalStatus.BUDGET_EXCEEDED and result.error == "wall-clock budget of 4 s used up"
    assert not result.plan_revisions and len(server.planner_prompts) == 2  # the revision was asked for, and cut off
    timed_out = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
    assert len(timed_out) == 1


async def test_revisions_are_bounded(client: Client, task_queue: str) -> None:
    server = PlannerServer(draft(("drafter", "Draft a comparison of retries and idempotency")),
                           draft(("drafter", "Draft a comparison of retries and idempotency, again")))
    with server:
        request = GoalRequest(goal=GOAL, models=models(server), max_plan_revisions=1)
        result, _ = await run_goal(client, task_queue, request, fake_activities(ScriptedModel(executor).activity()))
    assert result.status is GoalStatus.FAILED and len(result.plan_revisions) == 1
    first, second = result.steps
    assert first.superseded_by == "revision 1" and second.step_id == "v1-drafter-1" and second.superseded_by is None
    assert "steps did not complete: ['v1-drafter-1']" in result.error


async def test_a_resolver_can_ask_for_a_new_plan_with_guidance(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = replannable_playbook(tmp_path, monkeypatch)
    server = PlannerServer(*replan_resolver_plans())
    with server:
        async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(weak_then_good).activity())):
            handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal=GOAL, playbook=name, models=models(server)),
                                                 id=f"replan-{task_queue}", task_queue=task_queue)
            (escalation,) = await waiting(handle)
            await resolve(handle, escalation, "bob", "replan", guidance="Say why a repeat is harmless.")
            result = await handle.result()
    await replay(await handle.fetch_history())
    assert result.status is GoalStatus.COMPLETED, result.error
    original, replacement = result.steps
    assert "re-planning requested by bob" in original.error and original.superseded_by == "revision 1"
    assert replacement.role == "analyst" and result.output == GOOD
    assert "Guidance from the human who reviewed it: Say why a repeat is harmless." in server.planner_prompts[0]
    assert result.plan.policy.principal("drafter") is not None  # the goal kept its playbook's policy


async def test_a_fallback_step_stands_in_for_a_failed_one(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = fallback_playbook(tmp_path, monkeypatch)
    model = ScriptedModel(notes_from_memory)
    result, _ = await run_goal(client, task_queue, GoalRequest(goal=GOAL, playbook=name), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    notes, recall, brief = result.steps
    assert notes.status is StepStatus.FAILED and notes.superseded_by == "recall" and "file not found" in notes.error
    assert recall.output == "notes from memory" and "notes from memory" in model.requests[-1].messages[-1].content
    assert brief.status is StepStatus.COMPLETED and result.output == GOOD


async def test_a_fallback_for_the_output_step_gives_the_goal_its_output(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [{"type": "agent", "id": "draft", "role": "drafter", "instruction": "Draft it.", "fallback": "plain", "max_attempts": 1,
              "checks": [{"type": "required_terms", "terms": ["idempotency"]}]},
             {"type": "agent", "id": "plain", "role": "drafter", "instruction": "Say it plainly."}]
    name = write_playbook(tmp_path / "playbooks", {"name": "output-fallback", "steps": steps,
                                                   "policy": {"principals": [{"role": "drafter", "tools": []}]}})
    model = ScriptedModel(lambda request: answer("REJECTED DRAFT" if "Draft it." in request.messages[-1].content else "plain words"))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal=GOAL, playbook=name), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.plan.output_step == "draft" and result.output == "plain words"  # the fallback's, not the rejected draft
