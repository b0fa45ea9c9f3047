"""The demo's auto-approval says what went wrong: a rejected approval is printed in one line (which
request, which error) and not repeated, instead of being swallowed until the request expires."""

from __future__ import annotations

import asyncio
import io
import uuid

from temporalio.client import Client

import starter
from contracts.approvals import PENDING_QUERY, ApprovalRequest
from contracts.goal import GOAL_WORKFLOW, GoalRequest, GoalResult, GoalStatus
from contracts.llm import ChatMessage, ModelRequest
from tests.fakes import ScriptedModel, answer, step_role
from worker import all_activities, build_worker


def responder(request: ModelRequest) -> ChatMessage:
    if step_role(request) == "researcher":
        return answer("- Durable execution resumes a workflow after a crash [source: durable-execution.md]")
    return answer("Durable execution records every step, so a crashed agent resumes instead of starting over.")


async def test_rejected_auto_approval_is_printed_once(client: Client, task_queue: str) -> None:
    model = ScriptedModel(responder)
    async with build_worker(client, task_queue, activities=all_activities(call_model=model.activity())):
        handle = await client.start_workflow(
            GOAL_WORKFLOW, GoalRequest(goal="Explain durable execution", playbook="research-brief"),
            id=f"demo-approve-{uuid.uuid4().hex[:8]}", task_queue=task_queue, result_type=GoalResult,
        )
        out = io.StringIO()
        # "mallory" is no approver in the default policy: the approve Update's validator rejects her.
        waiting = asyncio.create_task(starter.wait_for_result(handle, quiet=True, stream=out, approve_as="mallory"))
        async with asyncio.timeout(60):
            while " failed: " not in out.getvalue():
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # three more polling rounds, in which the rejection must not be retried
            (request,) = await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])
            await starter.decide(handle, "approve", request.request_id, "bob", action_sha256=request.action_sha256)
            result = await waiting
    assert result.status is GoalStatus.COMPLETED
    demo_lines = [line.strip() for line in out.getvalue().splitlines() if "[demo]" in line]
    assert len(demo_lines) == 2, out.getvalue()
    assert demo_lines[0] == f"[demo] approving request {request.request_id} as 'mallory' on your behalf"
    assert demo_lines[1].startswith(f"[demo] approving request {request.request_id} failed: WorkflowUpdateFailedError: ")
    assert "mallory" in demo_lines[1], demo_lines[1]
