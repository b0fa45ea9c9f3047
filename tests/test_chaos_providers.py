"""Chaos, model provider faults (part of `make test`: about 15 s): ten goals in flight through the real `openai`
adapter against `tests/faulty_provider.py` on 127.0.0.1, each meeting another fault on its first model request.
Retryable faults succeed on the second attempt, no sooner than the spacing asked for (Retry-After, the retry
policy's interval, the client's timeout); non-retryable ones fail the step with a typed reason after exactly one
attempt; a tool the model made up or called with bad arguments is refused with a typed reason and never runs.
Every goal then passes `tests/invariants.py`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from contracts.errors import ErrorType
from contracts.goal import GoalStatus
from contracts.llm import CALL_MODEL_ACTIVITY
from tests.chaos_kit import start_goals
from tests.faulty_provider import FAULTS, FaultyProvider
from tests.helpers import scheduled_activities, single_step_playbook
from tests.invariants import check_invariants, outcome, print_table
from tests.llama_server import ScriptedServer
from worker import all_activities, build_worker


def model_attempts(history: WorkflowHistory) -> list[tuple[int, str]]:
    """(attempt of the start, how it closed) of each `call_model` activity, in order."""
    scheduled = {e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == CALL_MODEL_ACTIVITY}
    started = {e.activity_task_started_event_attributes.scheduled_event_id: e.activity_task_started_event_attributes.attempt
               for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED}
    closed = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            closed.append((e.activity_task_completed_event_attributes.scheduled_event_id, "completed"))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failure = e.activity_task_failed_event_attributes.failure.application_failure_info.type
            closed.append((e.activity_task_failed_event_attributes.scheduled_event_id, f"failed {failure}"))
    return [(started[sid], how) for sid, how in closed if sid in scheduled]


async def test_provider_faults(client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbook = single_step_playbook(tmp_path, monkeypatch, max_turns=3)
    provider = FaultyProvider()
    started = time.monotonic()
    with ScriptedServer(provider) as server:
        monkeypatch.setenv("FOREMAN_MODEL_PROVIDER", "openai")
        monkeypatch.setenv("FOREMAN_MODEL_BASE_URL", server.base_url + "/v1")
        monkeypatch.setenv("FOREMAN_MODEL_NAME", "faulty")
        monkeypatch.setenv("FOREMAN_MODEL_TIMEOUT_SECONDS", "1")  # the hanging response is given up after a second
        async with build_worker(client, task_queue, activities=all_activities()):
            handles = [(await start_goals(client, task_queue, playbook, 1, name, f"Compute it (fault={name})", cache=False))[0]
                       for name in FAULTS]
            async with asyncio.timeout(120):
                results = {name: await h.result() for name, h in zip(FAULTS, handles)}
    checked = await check_invariants(client, task_queue)
    print_table([("model provider faults", len(FAULTS), f"{len(FAULTS)}: " + ", ".join(FAULTS), outcome(checked),
                  time.monotonic() - started)])

    for name, fault in FAULTS.items():
        result, arrivals = results[name], provider.times[name]
        history = checked.goals[result.workflow_id].histories[-1]
        step = result.steps[0]
        if fault.refused_as:
            assert result.status is GoalStatus.COMPLETED, (name, result.error)
            assert [c.error.split(":")[0] for c in step.tool_calls] == [fault.refused_as] and not step.tool_calls[0].ran, name
            assert model_attempts(history) == [(1, "completed"), (1, "completed")], name
            assert scheduled_activities(history).count("calculate") == 0, name
        elif fault.retryable:
            assert result.status is GoalStatus.COMPLETED, (name, result.error)
            assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= fault.spacing - 0.05, (name, arrivals)
            assert model_attempts(history) == [(2, "completed")], name  # one activity; the retry is its second attempt
        else:
            assert result.status is GoalStatus.FAILED, name
            assert step.error and step.error.startswith(f"{ErrorType.MODEL_OUTPUT_INVALID.value}:"), (name, step.error)
            assert len(arrivals) == 1, (name, arrivals)  # exactly one attempt
            assert model_attempts(history) == [(1, f"failed {ErrorType.MODEL_OUTPUT_INVALID.value}")], name
