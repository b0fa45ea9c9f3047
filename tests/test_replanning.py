"""Re-planning and fallbacks on the real dev server: a step of an LLM-planned goal that fails for good
makes the planner revise the rest of the plan (finished steps kept, revisions bounded and recorded); a
resolver's `replan` does the same for any goal, with their guidance; a playbook's declared fallback step
stands in for a step that failed. The planner and judge models are a real local OpenAI-protocol server."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from contracts.goal import GoalRequest, GoalStatus, StepStatus
from contracts.llm import ModelRequest
from tests.fakes import COMPARISON as GOOD, ScriptedModel, answer, executor, step_role
from tests.helpers import GOAL, PlannerServer, draft, fake_activities, models, replay, resolve, run_goal, waiting, write_playbook
from worker import build_worker
from workflows.goal import GoalWorkflow


async def test_a_failed_llm_planned_step_makes_the_planner_revise_the_rest(client: Client, task_queue: str) -> None:
    server = PlannerServer(
        draft(("researcher", "Research retries and idempotency for tool calls"), ("drafter", "Draft a comparison of retries and idempotency")),
        draft(("drafter", "Write the comparison of retries and idempotency from the research")),
    )
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
    assert "researcher-1 (researcher)" in prompt and "Step drafter-2 failed" in prompt and GOOD in prompt
    summaries = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert summaries.count("plan_goal") == 2


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
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    step = {"type": "agent", "id": "draft", "role": "drafter", "instruction": "Explain retries and idempotency.", "max_attempts": 1,
            "checks": [{"type": "required_terms", "terms": ["harmless"], "on_fail": "escalate"}]}
    policy = {"principals": [{"role": "drafter", "tools": []}, {"role": "analyst", "tools": []}],
              "approvers": [{"name": "bob", "roles": ["lead"]}]}
    name = write_playbook(tmp_path / "playbooks", {"name": "replannable", "steps": [step], "policy": policy})

    def weak_then_good(request: ModelRequest):
        return answer(GOOD if step_role(request) == "analyst" else "Retries happen.")

    server = PlannerServer(draft(("analyst", "Explain why idempotency makes retries of tool calls harmless")))
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
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    steps = [
        {"type": "tool", "id": "notes", "role": "analyst", "fallback": "recall",
         "invocation": {"tool": "read_file", "arguments_json": "{\"path\": \"missing/notes.md\"}"}},
        {"type": "agent", "id": "recall", "role": "analyst", "instruction": "Write notes on retries from what you know."},
        {"type": "agent", "id": "brief", "role": "drafter", "depends_on": ["notes"], "instruction": "Brief from {{steps.notes.output}}"},
    ]
    policy = {"principals": [{"role": "analyst", "tools": ["read_file"]}, {"role": "drafter", "tools": []}]}
    name = write_playbook(tmp_path / "playbooks", {"name": "with-fallback", "steps": steps, "policy": policy})
    model = ScriptedModel(lambda request: answer("notes from memory" if step_role(request) == "analyst" else GOOD))
    result, _ = await run_goal(client, task_queue, GoalRequest(goal=GOAL, playbook=name), fake_activities(model.activity()))
    assert result.status is GoalStatus.COMPLETED, result.error
    notes, recall, brief = result.steps
    assert notes.status is StepStatus.FAILED and notes.superseded_by == "recall" and "file not found" in notes.error
    assert recall.output == "notes from memory" and "notes from memory" in model.requests[-1].messages[-1].content
    assert brief.status is StepStatus.COMPLETED and result.output == GOOD
