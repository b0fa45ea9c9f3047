"""A worker SIGKILLed in the middle of a goal: a new worker finishes it, and the history shows that
no activity that had completed ran again (only the one in flight was retried)."""

from __future__ import annotations

import asyncio
import signal
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from contracts.goal import GoalRequest, GoalResult, GoalStatus
from tests.helpers import approve_everything, assert_each_activity_completed_once, kill_workers, replay, scheduled_activities, start_worker


async def completed_activity_ids(handle: WorkflowHandle) -> dict[int, str]:
    """Scheduled-event id -> activity type, for every activity completed so far."""
    history = await handle.fetch_history()
    types = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return {
        e.activity_task_completed_event_attributes.scheduled_event_id: types[e.activity_task_completed_event_attributes.scheduled_event_id]
        for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }


async def test_killed_worker_resumes_without_rerunning_completed_activities(client: Client, task_queue: str) -> None:
    address = client.service_client.config.target_host
    first = start_worker(address, task_queue)
    second = None
    try:
        handle = await client.start_workflow(
            "GoalWorkflow", GoalRequest(goal="Explain durable execution", playbook="research-brief"),
            id=f"crash-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=GoalResult,
        )
        async with asyncio.timeout(60):
            while "call_model" not in (await completed_activity_ids(handle)).values():
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)  # the draft step's model call is now in flight
        before_kill = await completed_activity_ids(handle)
        first.send_signal(signal.SIGKILL)
        first.wait()

        second = start_worker(address, task_queue)
        approver = asyncio.create_task(approve_everything(handle, ("bob",)))  # the publish step is gated
        async with asyncio.timeout(90):
            result = await handle.result()
        approver.cancel()
    finally:
        kill_workers(first, second)

    assert result.status is GoalStatus.COMPLETED, result.error
    history = await handle.fetch_history()
    # Every activity was scheduled once and completed once: nothing that had finished ran again.
    completed = assert_each_activity_completed_once(history)
    assert all(sid in completed for sid in before_kill)
    types = scheduled_activities(history)
    assert types.count("call_model") == 2 and types.count("plan_goal") == 1 and types.count("search_corpus") == 1
    # The call that was in flight at the kill was retried by the new worker (attempt 2).
    retried = [
        e for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert retried, "the kill did not land while an activity was in flight"
    await replay(history)
