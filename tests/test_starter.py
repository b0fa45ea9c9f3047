"""starter.py and the raw `temporal` CLI, as a user runs them, against the real dev server and an
in-process worker with a scripted model."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from temporalio.client import Client

import settings
from contracts.goal import GoalProgress, GoalResult, GoalStatus
from devserver import find_binary
from tests.fakes import ScriptedModel, demo_responder
from tests.helpers import approve_everything, approve_pending, fake_activities, run_cli, starter
from worker import build_worker


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", ""), "invalid goal: Value error, goal is empty"),
        (("run", "x" * 33_000), "invalid goal: Value error, goal is 33000 bytes; the limit is 32768"),
        (("run", "g", "--playbook", "nope"), "unknown playbook 'nope'; available: compute, research-brief, research-notes, research-team"),
        (("run", "g", "--max-model-calls", "0"), "invalid budget.max_model_calls: Input should be greater than 0"),
        (("run", "g", "--max-cost-usd", "-1"), "invalid budget.max_cost_usd: Input should be greater than or equal to 0"),
    ],
)
async def test_bad_input_is_one_line_and_starts_nothing(client: Client, task_queue: str, args, message: str) -> None:
    code, out, err = await run_cli(*starter(*args), address=client.service_client.config.target_host, task_queue=task_queue)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {message}"
    started = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert started == []


async def test_unreachable_server_is_a_clear_error(task_queue: str) -> None:
    code, out, err = await run_cli(*starter("run", "g"), address="127.0.0.1:1", task_queue=task_queue, timeout=60)
    assert code == 3 and out == ""
    assert err.startswith("error: cannot reach Temporal at 127.0.0.1:1") and err.count("\n") == 1


async def test_run_json_status_result_and_cancel(client: Client, task_queue: str) -> None:
    address = client.service_client.config.target_host
    workflow_id = f"cli-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
        # Like a person: read what the CLI prints, and approve once it asks.
        process = await asyncio.create_subprocess_exec(
            *starter("run", "Explain durable execution", "--playbook", "research-brief", "--json", "--id", workflow_id),
            cwd=settings.PROJECT_ROOT, env={**os.environ, "TEMPORAL_ADDRESS": address, "FOREMAN_TASK_QUEUE": task_queue},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout and process.stderr
        err_lines: list[str] = []
        async with asyncio.timeout(60):
            stdout_reader = asyncio.create_task(process.stdout.read())
            while line := (await process.stderr.readline()).decode():
                err_lines.append(line)
                if line.strip().startswith("approve: python starter.py approve"):
                    assert await approve_pending(client.get_workflow_handle(workflow_id), ("bob",)) == 1
            out, code = (await stdout_reader).decode(), await process.wait()
        err = "".join(err_lines)
        assert code == 0, err
        result = GoalResult.model_validate_json(out)
        assert result.status is GoalStatus.COMPLETED and result.workflow_id in err and "http://localhost:8233/namespaces/default/workflows/" in err
        # While it waited, the run printed the approval request and the exact commands to approve it.
        assert "approval needed: write_file requested by publisher" in err
        assert f"python starter.py approve {workflow_id} {result.approvals[0].request_id} --as NAME" in err
        assert f"temporal workflow update execute --workflow-id {workflow_id} --name approve" in err

        code, out, _ = await run_cli(*starter("result", result.workflow_id, "--json"), address=address, task_queue=task_queue)
        assert code == 0 and GoalResult.model_validate_json(out).output == result.output

        code, out, _ = await run_cli(*starter("status", result.workflow_id), address=address, task_queue=task_queue)
        progress = GoalProgress.model_validate_json(out)
        assert code == 0 and progress.phase == "done" and [s.status.value for s in progress.steps] == ["completed"] * 3

    # No worker now: --no-wait returns at once with the id; cancel ends the run.
    code, out, _ = await run_cli(*starter("run", "later", "--no-wait", "--id", f"nowait-{uuid.uuid4().hex[:6]}"), address=address, task_queue=task_queue)
    workflow_id = out.strip()
    assert code == 0 and workflow_id.startswith("nowait-")
    code, out, _ = await run_cli(*starter("cancel", workflow_id), address=address, task_queue=task_queue)
    assert code == 0
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status is not None and description.status.name in {"CANCELED", "RUNNING"}


async def test_raw_temporal_cli_starts_a_goal_with_plain_json(client: Client, task_queue: str) -> None:
    """Any client works: the README's raw `temporal workflow start --input '{...}'` command."""
    address = client.service_client.config.target_host
    workflow_id = f"raw-cli-{uuid.uuid4().hex[:6]}"
    cli = find_binary("temporal")
    payload = json.dumps({"goal": "Explain durable execution", "playbook": "research-brief"})
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(demo_responder).activity())):
        code, _, err = await run_cli(
            cli, "workflow", "start", "--address", address, "--type", "GoalWorkflow", "--task-queue", task_queue,
            "--workflow-id", workflow_id, "--input", payload, address=address, task_queue=task_queue,
        )
        assert code == 0, err
        approver = asyncio.create_task(approve_everything(client.get_workflow_handle(workflow_id), ("bob",)))
        code, out, err = await run_cli(
            cli, "workflow", "result", "--address", address, "--workflow-id", workflow_id, "--output", "json",
            address=address, task_queue=task_queue,
        )
    approver.cancel()
    assert code == 0, err
    described = json.loads(out)
    assert described["status"] == "COMPLETED"
    plain = described["closeEvent"]["workflowExecutionCompletedEventAttributes"]["result"][0]
    assert plain["status"] == "completed" and plain["output"].startswith("Durable execution")
    result = await client.get_workflow_handle(workflow_id, result_type=GoalResult).result()
    assert result.status is GoalStatus.COMPLETED


def test_ui_links_encode_the_workflow_id() -> None:
    """A subagent's id holds "/": its Temporal UI link must keep it in one path segment."""
    from starter import ui_link

    assert ui_link("goal-1/research").endswith("/namespaces/default/workflows/goal-1%2Fresearch")
