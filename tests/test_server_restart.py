"""A goal waiting for approval survives a Temporal server restart: the dev server on SQLite is
stopped and started again, and the approval given afterwards completes the goal."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

from temporalio.client import Client

import devserver
from contracts.approvals import PENDING_QUERY, ApprovalRequest
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from temporal_client import connect
from tests.fakes import ScriptedModel, demo_responder
from tests.helpers import approve_pending, fake_activities, replay, scheduled_activities
from worker import build_worker


def stop_server(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


async def wait_pending(client: Client, workflow_id: str) -> list[ApprovalRequest]:
    handle = client.get_workflow_handle(workflow_id)
    while not (requests := await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])):
        await asyncio.sleep(0.05)
    return requests


async def test_pending_approval_survives_a_server_restart(task_queue: str) -> None:
    address = f"127.0.0.1:{devserver.free_port()}"
    activities = fake_activities(ScriptedModel(demo_responder).activity())
    workflow_id = f"restart-{uuid.uuid4().hex[:8]}"
    pid = devserver.start(address, ui_port=None)
    try:
        client = await connect(address)
        async with build_worker(client, task_queue, activities=activities):
            await client.start_workflow(
                "GoalWorkflow", GoalRequest(goal="Explain durable execution", playbook="research-brief"),
                id=workflow_id, task_queue=task_queue,
            )
            async with asyncio.timeout(30):
                (before,) = await wait_pending(client, workflow_id)
        stop_server(pid)
        pid = devserver.start(address, ui_port=None)  # same SQLite file

        client = await connect(address)
        async with build_worker(client, task_queue, activities=activities):
            async with asyncio.timeout(60):
                (after,) = await wait_pending(client, workflow_id)
                assert after.request_id == before.request_id and after.action_sha256 == before.action_sha256
                handle = client.get_workflow_handle(workflow_id, result_type=GoalResult)
                assert await approve_pending(handle, ("alice",)) == 1
                result = await handle.result()
            history = await handle.fetch_history()
    finally:
        stop_server(pid)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert scheduled_activities(history).count("write_file") == 1
    await replay(history)
