"""Parallel exploration on the real dev server with a scripted model: candidates run at once, each is
scored by the step's checks, the best is kept (ties: the earlier), every candidate and the reason for
the pick are in the result, the `status` query and the activity summaries, and a budget that runs out
stops the remaining candidates while the pick is made among the finished ones."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.goal import STATUS_QUERY, Budget, GoalProgress, GoalRequest, GoalResult, GoalStatus, StepStatus
from tests.fakes import ANSWERS, ScriptedModel, by_instruction
from tests.helpers import VARIANTS, activity_labels, explore_playbook, fake_activities, replay
from worker import build_worker
from workflows.goal import GoalWorkflow


async def run(client: Client, task_queue: str, name: str, **request: object) -> tuple[GoalResult, GoalProgress, object]:
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(by_instruction).activity())):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=name, **request),
            id=f"explore-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
        )
        async with asyncio.timeout(30):
            result = await handle.result()
        progress = await handle.query(STATUS_QUERY, result_type=GoalProgress)
    history = await handle.fetch_history()
    await replay(history)
    return result, progress, history


async def test_the_best_scored_candidate_is_kept(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    result, progress, history = await run(client, task_queue, explore_playbook(tmp_path, monkeypatch, VARIANTS))
    assert result.status is GoalStatus.COMPLETED, result.error
    (step,) = result.steps
    assert [(c.label, round(c.score, 2), c.decision.value) for c in step.candidates] == [
        ("brief", 0.33, "refine"), ("thorough", 1.0, "accept"), ("balanced", 0.67, "refine")]
    assert step.output == result.output == ANSWERS["Be thorough."] and step.score == 1.0
    assert step.pick_reason.startswith("kept 'thorough' (accept, score 1.00); others: brief: 0.33, balanced: 0.67")
    assert len(step.model_calls) == 3 and len(step.verdicts) == 3 and all(c.output_sha256 for c in step.candidates)
    assert [c.label for c in progress.steps[0].candidates] == ["brief", "thorough", "balanced"] and progress.steps[0].score == 1.0
    shown = activity_labels(history)
    assert {"draft/brief: model turn 1", "draft/thorough: model turn 1", "draft/balanced: model turn 1"} <= set(shown)
    assert {"draft/brief: score", "draft/thorough: score", "draft/balanced: score"} <= set(shown)
    # The candidates ran at the same time: all three model calls were scheduled before any completed.
    model_turns = [i for i, e in enumerate(history.events) if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                   and e.activity_task_scheduled_event_attributes.activity_type.name == "call_model"]
    first_done = next(i for i, e in enumerate(history.events)
                      if i > model_turns[0] and e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert len(model_turns) == 3 and model_turns[-1] < first_done


async def test_a_tie_keeps_the_earlier_candidate(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    variants = [{"label": "first", "instruction": "Explain it. Be balanced."}, {"label": "second", "instruction": "Explain it. Be balanced."}]
    result, _, _ = await run(client, task_queue, explore_playbook(tmp_path, monkeypatch, variants))
    (step,) = result.steps
    assert step.status is StepStatus.FAILED and "no candidate passed verification" in step.error  # 2 of 3 terms: refine
    assert step.pick_reason.startswith("kept 'first'")


async def test_a_budget_that_runs_out_stops_the_rest_and_picks_among_the_finished(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    variants = [VARIANTS[2], VARIANTS[0], VARIANTS[1]]  # the best answer comes third and never runs
    result, _, _ = await run(client, task_queue, explore_playbook(tmp_path, monkeypatch, variants), budget=Budget(max_model_calls=2))
    (step,) = result.steps
    balanced, brief, thorough = step.candidates
    assert thorough.score is None and thorough.error.startswith("BudgetExceeded: model call budget of 2 used up")
    assert step.pick_reason.startswith("kept 'balanced' (refine, score 0.67)") and step.output == ANSWERS["Be balanced."]
    assert result.status is GoalStatus.BUDGET_EXCEEDED and result.usage.model_calls == 2
