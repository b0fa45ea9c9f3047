"""`make chaos`: workers SIGKILLed again and again at random points of several goals; every goal
still completes, and no activity that had completed ever ran again."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid

import pytest
from temporalio.client import Client

from contracts.goal import GoalRequest, GoalResult, GoalStatus
from tests.helpers import approve_everything, assert_each_activity_completed_once, replay, start_worker

pytestmark = pytest.mark.chaos

GOALS = 4
KILLS_PER_GOAL = 3


async def test_repeated_worker_kills(client: Client, task_queue: str) -> None:
    address = client.service_client.config.target_host
    rng = random.Random(20261125)
    handles = [
        await client.start_workflow(
            "GoalWorkflow", GoalRequest(goal=f"Explain durable execution {n}", playbook="research-brief"),
            id=f"chaos-{n}-{uuid.uuid4().hex[:6]}", task_queue=task_queue, result_type=GoalResult,
        )
        for n in range(GOALS)
    ]
    approvers = [asyncio.create_task(approve_everything(h, ("bob",))) for h in handles]
    worker = start_worker(address, task_queue)
    try:
        for _ in range(GOALS * KILLS_PER_GOAL):
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = start_worker(address, task_queue)
        async with asyncio.timeout(300):
            results = [await h.result() for h in handles]
    finally:
        for task in approvers:
            task.cancel()
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    for handle, result in zip(handles, results):
        assert result.status is GoalStatus.COMPLETED, result.error
        history = await handle.fetch_history()
        assert_each_activity_completed_once(history)
        await replay(history)
