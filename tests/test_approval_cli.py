"""Approvals from outside the test process: a decision after the worker holding the goal was
SIGKILLed, and `starter.py pending/approve` plus the raw `temporal workflow update execute`."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from contracts.approvals import ApprovalRequest
from contracts.goal import GoalRequest, GoalStatus
from devserver import find_binary
from tests.fakes import ScriptedModel, answer
from tests.helpers import (
    CONTENT,
    TARGET,
    accepted_update_ids,
    audit,
    decide,
    fake_activities,
    finish,
    gated_playbook,
    goal,
    pending,
    run_cli,
    scheduled_activities,
    start_worker,
    starter,
    update_events,
)
from worker import build_worker
from workflows.goal import GoalWorkflow


async def test_approval_after_the_worker_was_killed(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    # The subprocess worker inherits FOREMAN_HOME and FOREMAN_PLAYBOOKS_DIR; this playbook makes no model calls.
    playbook = gated_playbook(tmp_path, monkeypatch)
    address = client.service_client.config.target_host
    first = start_worker(address, task_queue)
    try:
        async with asyncio.timeout(45):
            handle = await client.start_workflow(
                GoalWorkflow.run, GoalRequest(goal="publish it", playbook=playbook),
                id=f"approval-restart-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
            )
            (request,) = await pending(handle)
            first.send_signal(signal.SIGKILL)
            first.wait()
            # The Update needs a worker. Its first task still goes to the dead worker's sticky queue and
            # times out there (the SDK default, 10 s) before the new worker gets it: most of this test's time.
            # A new worker rebuilds the desk from history, with the same request id.
            async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(lambda r: answer("")).activity())):
                approved = await decide(handle, "alice", request)
                assert approved.status.value == "approved" and approved.request_id == request.request_id
                result, history = await finish(handle)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    assert result.status is GoalStatus.COMPLETED, result.error
    assert audit(result) == [("requested", "publisher"), ("approved", "alice"), ("executed", None)]
    assert scheduled_activities(history) == ["plan_goal", "write_file"]
    started = [e.activity_task_started_event_attributes for e in history.events
               if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert [s.attempt for s in started] == [1]  # the write ran exactly once (the plan is a local activity)
    identities = {e.workflow_task_started_event_attributes.identity for e in history.events
                  if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED}
    assert len(identities) == 2  # the request was opened by one worker and decided on another
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT


async def test_starter_and_raw_cli_decide_requests(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    address = client.service_client.config.target_host
    playbook = gated_playbook(tmp_path, monkeypatch, approvals=2)

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run_cli(*args, address=address, task_queue=task_queue, timeout=30)

    async with goal(client, task_queue, playbook, timeout=50) as handle:
        (request,) = await pending(handle)
        code, out, err = await cli(*starter("pending", handle.id, "--json"))
        assert code == 0, err
        (shown,) = json.loads(out)
        assert ApprovalRequest.model_validate(shown) == request
        assert shown["tool"] == "write_file" and shown["requested_by"] == "publisher" and shown["approvals_needed"] == 2
        assert shown["action_sha256"] == request.action_sha256 and shown["approvals_given"] == []
        assert shown["request_id"] == request.request_id and shown["expires_at"]

        code, out, err = await cli(*starter("approve", handle.id, request.request_id, "--as", "publisher"))
        assert (code, out) == (1, "") and err.count("\n") == 1
        assert err.startswith("error: approve rejected: 'publisher' is an agent principal")

        expected = f"request {request.request_id}: pending (1 of 2 approvals)\n"
        for _ in range(2):  # the same command twice is one approval: the Update id is derived from it
            code, out, err = await cli(*starter("approve", handle.id, request.request_id, "--as", "alice", "--comment", "ok"))
            assert (code, out) == (0, expected), err

        temporal = find_binary("temporal")
        assert temporal
        base = (temporal, "workflow", "update", "execute", "--address", address, "--workflow-id", handle.id, "--name", "approve")
        stranger = json.dumps({"request_id": request.request_id, "approver": "mallory"})
        code, out, err = await cli(*base, "--input", stranger)
        assert code != 0 and "'mallory' is not an approver in this goal's policy (type: ApprovalRejected" in err
        malformed = json.dumps({"request_id": request.request_id})  # no approver: not an ApprovalDecision
        code, out, err = await cli(*base, "--input", malformed)
        assert code != 0 and "validation error for ApprovalDecision" in err
        bob = json.dumps({"request_id": request.request_id, "approver": "bob", "action_sha256": request.action_sha256})
        code, out, err = await cli(*base, "--input", bob, "--output", "json")
        assert code == 0, err
        assert '"approved"' in out and '"bob"' in out
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert [(g.approver, g.comment) for g in result.approvals[0].approvals_given] == [("alice", "ok"), ("bob", "")]
    assert accepted_update_ids(history)[0] == f"approve-{request.request_id}-alice"
    assert update_events(history) == {"ACCEPTED": 2, "COMPLETED": 2}
    assert scheduled_activities(history).count("write_file") == 1
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT
