"""Escalations a human resolves, on the real dev server with a scripted model: an escalated step waits
for the `resolve` Update (accept, retry with guidance, abort), the validator refuses what it must, a
resolver can retry a step only so often, and the goal's success criteria escalate the same way."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from contracts.escalations import RESOLVE_SIGNAL, RESOLVE_UPDATE, Escalation, ResolveRequest
from contracts.goal import STATUS_QUERY, GoalProgress, GoalRequest, GoalResult, GoalStatus, StepStatus
from contracts.verify import RequiredTermsCheck
from tests.fakes import GOOD, WEAK, ScriptedModel, answer, guided
from tests.helpers import escalating_playbook as playbook, fake_activities, replay, resolve, run_cli, starter, waiting
from worker import build_worker
from workflows.goal import GoalWorkflow


@asynccontextmanager
async def goal(client: Client, task_queue: str, name: str, model: ScriptedModel, **request: object) -> AsyncIterator[WorkflowHandle]:
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(
            GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=name, **request),
            id=f"escalation-{uuid.uuid4().hex[:10]}", task_queue=task_queue,
        )
        async with asyncio.timeout(30):
            yield handle


async def refused(handle: WorkflowHandle, request: ResolveRequest) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(RESOLVE_UPDATE, request, result_type=Escalation)
    cause = failure.value.cause
    assert cause.type == "ResolutionRejected", cause
    return str(cause)


async def finish(handle: WorkflowHandle) -> GoalResult:
    result = await handle.result()
    await replay(await handle.fetch_history())
    return result


async def test_accept_keeps_the_output_and_completes_the_goal(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(lambda request: answer(WEAK))
    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), model) as handle:
        (escalation,) = await waiting(handle)
        assert escalation.step_id == "draft" and "escalated by the verifier" in escalation.reason
        assert [d.value for d in escalation.decisions] == ["accept", "retry", "replan", "abort"] and escalation.output_sha256
        progress = await handle.query(STATUS_QUERY, result_type=GoalProgress)
        assert progress.steps[0].status is StepStatus.AWAITING_RESOLUTION and len(progress.escalations) == 1
        resolved = await resolve(handle, escalation, "bob", "accept")
        assert resolved.status.value == "resolved" and resolved.resolution.resolver == "bob"
        result = await finish(handle)
    assert result.status is GoalStatus.COMPLETED and result.output == WEAK
    step = result.steps[0]
    assert step.status is StepStatus.COMPLETED and step.error is None and step.escalation_ids == [escalation.escalation_id]
    assert result.escalations[0].resolution.decision.value == "accept"
    assert len(model.requests) == 1  # accepting runs nothing again


async def test_retry_reruns_the_step_with_the_guidance(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    model = ScriptedModel(guided)
    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), model) as handle:
        (escalation,) = await waiting(handle)
        await resolve(handle, escalation, "bob", "retry", guidance="Say that durable execution keeps every step.")
        result = await finish(handle)
    assert result.status is GoalStatus.COMPLETED and result.output == GOOD
    assert len(model.requests) == 2
    retried = model.requests[1].messages[-1].content
    assert "Guidance from bob, the human who reviewed the previous attempt: Say that durable execution keeps every step." in retried
    step = result.steps[0]
    assert [v.decision.value for v in step.verdicts] == ["escalate", "accept"] and step.escalation_ids == [escalation.escalation_id]


async def test_abort_ends_the_goal_escalated(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), ScriptedModel(lambda request: answer(WEAK))) as handle:
        (escalation,) = await waiting(handle)
        await resolve(handle, escalation, "bob", "abort")
        result = await finish(handle)
    assert result.status is GoalStatus.ESCALATED and "draft" in result.error
    assert result.steps[0].status is StepStatus.ESCALATED and result.steps[0].error.endswith("aborted by bob")


async def test_the_validator_refuses_what_it_must(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), ScriptedModel(lambda request: answer(WEAK))) as handle:
        (escalation,) = await waiting(handle)
        request = ResolveRequest(escalation_id=escalation.escalation_id, resolver="bob", decision="accept")
        assert "unknown escalation" in await refused(handle, request.model_copy(update={"escalation_id": "nope"}))
        assert "agent principal" in await refused(handle, request.model_copy(update={"resolver": "drafter"}))
        assert "not an approver" in await refused(handle, request.model_copy(update={"resolver": "mallory"}))
        assert "lacks a resolver role" in await refused(handle, request.model_copy(update={"resolver": "alice"}))
        await resolve(handle, escalation, "bob", "abort")
        result = await finish(handle)
    history = await handle.fetch_history()
    # Refused Updates leave no trace: one accepted resolve in the history.
    accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 1 and result.escalations[0].resolution.decision.value == "abort"


async def test_retries_are_bounded_per_step(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = playbook(tmp_path, monkeypatch, escalations={"max_retries_per_step": 1})
    async with goal(client, task_queue, name, ScriptedModel(lambda request: answer(WEAK))) as handle:
        (first,) = await waiting(handle)
        await resolve(handle, first, "bob", "retry", guidance="try again")
        while (second := await waiting(handle))[0].escalation_id == first.escalation_id:
            await asyncio.sleep(0.05)
        assert [d.value for d in second[0].decisions] == ["accept", "replan", "abort"]
        assert "already resolved" in await refused(
            handle, ResolveRequest(escalation_id=first.escalation_id, resolver="bob", decision="accept")
        )
        assert "'retry' is not possible" in await refused(
            handle, ResolveRequest(escalation_id=second[0].escalation_id, resolver="bob", decision="retry")
        )
        await resolve(handle, second[0], "bob", "abort")
        result = await finish(handle)
    assert result.status is GoalStatus.ESCALATED and result.steps[0].escalation_ids == [first.escalation_id, second[0].escalation_id]


async def test_success_criteria_that_escalate_wait_for_a_human(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    name = playbook(tmp_path, monkeypatch)
    model = ScriptedModel(lambda request: answer(GOOD))
    criteria = [RequiredTermsCheck(terms=["idempotency"], on_fail="escalate")]
    async with goal(client, task_queue, name, model, success_criteria=criteria) as handle:
        (escalation,) = await waiting(handle)
        assert escalation.step_id == "goal" and [d.value for d in escalation.decisions] == ["accept", "abort"]
        # The goal's own criteria can only be accepted or not: there is no step to retry or plan again.
        assert "'retry' is not possible" in await refused(
            handle, ResolveRequest(escalation_id=escalation.escalation_id, resolver="bob", decision="retry")
        )
        await resolve(handle, escalation, "bob", "accept")
        result = await finish(handle)
    assert result.status is GoalStatus.COMPLETED and result.output == GOOD
    assert result.final_verdict.decision.value == "escalate" and result.escalations[0].resolution.resolver == "bob"


async def test_the_cli_lists_and_resolves_escalations(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    address = client.service_client.config.target_host

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run_cli(*starter(*args), address=address, task_queue=task_queue, timeout=30)

    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), ScriptedModel(lambda request: answer(WEAK))) as handle:
        (escalation,) = await waiting(handle)
        code, out, _ = await cli("escalations", handle.id)
        assert code == 0 and escalation.escalation_id in out and "--decision accept|retry|replan|abort" in out
        assert "--name resolve" in out  # the raw Temporal CLI equivalent is shown too
        code, out, _ = await cli("escalations", handle.id, "--json")
        assert code == 0 and json.loads(out)[0]["step_id"] == "draft"
        code, _, err = await cli("resolve", handle.id, escalation.escalation_id, "--as", "alice", "--decision", "accept")
        assert code == 1 and "resolve rejected" in err and "lacks a resolver role" in err
        code, out, _ = await cli("resolve", handle.id, escalation.escalation_id, "--as", "bob", "--decision", "accept")
        assert code == 0 and f"escalation {escalation.escalation_id}: accept by bob" in out
        result = await finish(handle)
    assert result.status is GoalStatus.COMPLETED and result.escalations[0].resolution.resolver == "bob"


async def test_a_resolution_can_come_by_signal_and_a_refused_one_is_recorded(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    async with goal(client, task_queue, playbook(tmp_path, monkeypatch), ScriptedModel(lambda request: answer(WEAK))) as handle:
        (escalation,) = await waiting(handle)
        await handle.signal(RESOLVE_SIGNAL, ResolveRequest(escalation_id=escalation.escalation_id, resolver="alice", decision="accept"))
        await handle.signal(RESOLVE_SIGNAL, ResolveRequest(escalation_id=escalation.escalation_id, resolver="bob", decision="accept"))
        result = await finish(handle)
    assert result.status is GoalStatus.COMPLETED and result.escalations[0].resolution.resolver == "bob"
    (refusal,) = [e for e in result.audit if e.kind.value == "refused"]
    assert refusal.actor == "alice" and "lacks a resolver role" in refusal.detail
