"""Helpers shared by workflow tests: run a goal on a real server with a given model, inspect and
replay its history."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.planner import plan_goal
from activities.tools import tool_activities
from activities.verifier import verify_output
from contracts.approvals import APPROVE_UPDATE, PENDING_QUERY, ApprovalDecision, ApprovalRequest
from contracts.goal import GoalRequest, GoalResult
from worker import build_worker
from workflows.goal import GoalWorkflow


def fake_activities(call_model) -> list:
    """Every real activity except `call_model`, which the test supplies."""
    return [plan_goal, call_model, verify_output, *tool_activities()]


async def replay(history: WorkflowHistory) -> None:
    """Replay a history against today's workflow code; raises on any nondeterminism."""
    await Replayer(workflows=[GoalWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)


async def approve_pending(handle: WorkflowHandle, approvers: tuple[str, ...]) -> int:
    """Approve every open request, each with as many distinct approvers as it needs (in order)."""
    requests = await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])
    for request in requests:
        for name in approvers[len(request.approvals_given) : request.approvals_needed]:
            await handle.execute_update(
                APPROVE_UPDATE,
                ApprovalDecision(request_id=request.request_id, approver=name, action_sha256=request.action_sha256),
                result_type=ApprovalRequest,
            )
    return len(requests)


async def approve_everything(handle: WorkflowHandle, approvers: tuple[str, ...]) -> None:
    """A human who keeps approving whatever is asked (until cancelled)."""
    while True:
        try:
            await approve_pending(handle, approvers)
        except (RPCError, WorkflowUpdateFailedError, WorkflowQueryFailedError):
            pass  # e.g. the worker died mid-update, or another approval landed first: look again
        await asyncio.sleep(0.05)


async def run_goal(
    client: Client, task_queue: str, request: GoalRequest, activities: list, timeout: float = 90,
    approvers: tuple[str, ...] | None = ("bob", "carol"),
) -> tuple[GoalResult, WorkflowHistory]:
    """Run one goal on a fresh worker (with `approvers` approving every gated action), then replay it."""
    async with build_worker(client, task_queue, activities=activities):
        handle = await client.start_workflow(
            GoalWorkflow.run, request, id=f"goal-test-{uuid.uuid4().hex[:10]}", task_queue=task_queue
        )
        approving = asyncio.create_task(approve_everything(handle, approvers)) if approvers else None
        try:
            async with asyncio.timeout(timeout):
                result = await handle.result()
        finally:
            if approving:
                approving.cancel()
        history = await handle.fetch_history()
    await replay(history)
    return result, history


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """Activity type names in the order they were scheduled."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def assert_each_activity_completed_once(history: WorkflowHistory) -> list[str]:
    """Every scheduled activity completed exactly once (nothing that finished ran again); returns the
    scheduled activity ids."""
    scheduled = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    completed = Counter(
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )
    assert sorted(completed) == scheduled and set(completed.values()) == {1}, (scheduled, completed)
    return scheduled


def write_playbook(folder: Path, playbook: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{playbook['name']}.json").write_text(json.dumps(playbook))
    return playbook["name"]
