"""Record a goal's history into tests/histories/ for the replay tests (real activities, embedded model).

    .venv/bin/python -m tests.record_history research-brief --playbook research-brief "Explain how durable execution makes AI agents safe to retry"

Re-record when a workflow change is *meant* to change histories; otherwise a failing replay test
means the change broke determinism for runs already in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import settings
from contracts.goal import GoalRequest, GoalStatus
from devserver import find_binary
from tests.helpers import approve_everything
from worker import build_worker
from workflows.goal import GoalWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"


async def record(name: str, goal: str, playbook: str | None) -> Path:
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=settings.DEV_SERVER_FLAGS,
    )
    try:
        task_queue = f"record-{uuid.uuid4().hex[:8]}"
        async with build_worker(environment.client, task_queue):
            handle = await environment.client.start_workflow(
                GoalWorkflow.run, GoalRequest(goal=goal, playbook=playbook), id=f"recorded-{name}", task_queue=task_queue
            )
            approver = asyncio.create_task(approve_everything(handle, ("bob", "carol")))  # gated actions, approved
            result = await handle.result()
            approver.cancel()
        if result.status is not GoalStatus.COMPLETED:
            raise SystemExit(f"the goal ended {result.status.value}: {result.error}")
        history = await handle.fetch_history()
    finally:
        await environment.shutdown()
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{name}.json"
    path.write_text(history.to_json())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("goal")
    parser.add_argument("--playbook")
    args = parser.parse_args()
    os.environ.setdefault("FOREMAN_HOME", tempfile.mkdtemp(prefix="foreman-record-"))
    print(asyncio.run(record(args.name, args.goal, args.playbook)))


if __name__ == "__main__":
    main()
