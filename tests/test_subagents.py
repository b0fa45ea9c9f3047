"""Subagents as child workflows, on the real dev server with a scripted model: deterministic child ids,
parent usage including the children's, budgets carved from what the parent has left, a policy scope
never wider than the parent role's, typed failures, cancellation through the parent, and a resumed
parent that finds its child instead of starting another."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from console.goals import waiting_goals
from contracts.approvals import APPROVAL_SIGNAL, APPROVE_UPDATE, CHILD_APPROVALS_SIGNAL, PENDING_QUERY, ChildApprovals, ApprovalDecision, ApprovalRequest, ApprovalSignal
from contracts.escalations import ESCALATIONS_QUERY, RESOLVE_UPDATE, Escalation, ResolveRequest
from contracts.goal import Budget, GoalRequest, GoalResult, GoalStatus, StepStatus
from contracts.llm import ModelRequest
from tests.fakes import ScriptedModel, answer, call_tool, researcher_answers, step_role
from tests.helpers import TEAM_PRINCIPALS as PRINCIPALS, approve_pending, fake_activities, replay, run_goal, team_playbooks, write_playbook
from worker import build_worker
from workflows.goal import GoalWorkflow


async def start(client: Client, task_queue: str, playbook: str, **request: object) -> WorkflowHandle:
    return await client.start_workflow(
        GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=playbook, **request),
        id=f"team-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
    )


def started_children(history) -> list[str]:
    return [e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in history.events if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]


async def test_subagents_run_as_child_workflows_and_their_usage_counts(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(researcher_answers).activity())):
        handle = await start(client, task_queue, name, budget=Budget(max_model_calls=20))
        async with asyncio.timeout(30):
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.output == "merged: one and two"
    r1, r2, merge = result.steps
    assert r1.child_workflow_ids == [f"{handle.id}/r1"] and r2.child_workflow_ids == [f"{handle.id}/r2"]
    assert (r1.output, r2.output) == ("angle one findings", "angle two findings")
    history = await handle.fetch_history()
    assert sorted(started_children(history)) == [f"{handle.id}/r1", f"{handle.id}/r2"]
    assert result.usage.model_calls == 3  # one per child, one for the merge: the children's usage is the parent's
    child = await client.get_workflow_handle(f"{handle.id}/r1", result_type=GoalResult).result()
    assert child.status is GoalStatus.COMPLETED and child.usage.model_calls == 1
    # Its budget was carved from what the parent had left: half of 20 calls.
    child_input = (await client.get_workflow_handle(f"{handle.id}/r1").fetch_history()).events[0]
    request = pydantic_data_converter.payload_converter.from_payload(
        child_input.workflow_execution_started_event_attributes.input.payloads[0], GoalRequest
    )
    assert request.budget.max_model_calls == 10 and request.parent.workflow_id == handle.id and request.parent.step_id == "r1"
    assert [s.role for s in request.scopes] == ["lead"]
    await replay(history)


async def test_a_subagent_never_gets_more_than_its_parent_role_may(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """The child's own policy lets researchers write; the parent's lead role may not, so the child cannot."""
    name = team_playbooks(tmp_path, monkeypatch)

    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(write_first).activity())):
        handle = await start(client, task_queue, name)
        async with asyncio.timeout(30):
            result = await handle.result()
    child = await client.get_workflow_handle(f"{handle.id}/r1", result_type=GoalResult).result()
    (call,) = child.steps[0].tool_calls
    assert not call.ok and call.error.startswith("PolicyDenied: this subagent (within the scope of 'lead') may not use tool 'write_file'")
    assert result.status is GoalStatus.COMPLETED


async def test_a_failed_child_is_a_typed_step_failure(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch, child_playbook="no-such-playbook")
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(researcher_answers).activity())):
        handle = await start(client, task_queue, name, budget=Budget(max_model_calls=20))
        async with asyncio.timeout(30):
            result = await handle.result()
    assert result.status is GoalStatus.FAILED
    r1, r2, merge = result.steps
    assert r1.status is StepStatus.FAILED and r1.error.startswith(f"subagent {handle.id}/r1 failed: ")
    assert "UnknownPlaybook" in r1.error and merge.status is StepStatus.SKIPPED
    # A child that failed without a result is charged everything it was given: 10, then 5 of the 10 left.
    assert result.usage.model_calls == 15


def write_first(request: ModelRequest):
    """Researchers ask to write once (a gated action in `child_gate` playbooks), then answer."""
    if step_role(request) == "researcher" and not any(m.role.value == "tool" for m in request.messages):
        return call_tool("write_file", {"path": "drafts/x.md", "content": "x"})
    return researcher_answers(request)


async def waiting_for_approval(child: WorkflowHandle) -> None:
    while not (await exists(child) and await child.query(PENDING_QUERY, result_type=list[ApprovalRequest])):
        await asyncio.sleep(0.05)


async def test_cancelling_the_parent_cancels_its_children(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch, child_gate=True)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(write_first).activity())):
        handle = await start(client, task_queue, name)
        child = client.get_workflow_handle(f"{handle.id}/r1")
        async with asyncio.timeout(30):
            await waiting_for_approval(child)
            await handle.cancel()
            while (await child.describe()).status is WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.05)
            while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.05)
    assert (await child.describe()).status is WorkflowExecutionStatus.CANCELED
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED


async def exists(handle: WorkflowHandle) -> bool:
    try:
        await handle.describe()
        return True
    except RPCError:  # not started yet
        return False


async def test_a_resumed_parent_finds_its_child_instead_of_starting_another(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch, child_gate=True)
    activities = fake_activities(ScriptedModel(write_first).activity())
    async with build_worker(client, task_queue, activities=activities):
        handle = await start(client, task_queue, name)
        children = [client.get_workflow_handle(f"{handle.id}/{s}") for s in ("r1", "r2")]
        async with asyncio.timeout(30):
            for child in children:
                await waiting_for_approval(child)
    # The worker is gone; a new one picks the parent and its children up from history.
    async with build_worker(client, task_queue, activities=activities):
        async with asyncio.timeout(30):
            for child in children:
                await approve_pending(child, ("alice",))
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED, result.error
    history = await handle.fetch_history()
    assert sorted(started_children(history)) == [f"{handle.id}/r1", f"{handle.id}/r2"]  # one each, never a second
    await replay(history)


async def test_a_childs_approvals_are_listed_and_answered_on_the_parent(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = team_playbooks(tmp_path, monkeypatch, child_gate=True)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(write_first).activity())):
        handle = await start(client, task_queue, name)
        async with asyncio.timeout(30):
            while len(open_ := await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])) < 2:
                await asyncio.sleep(0.05)
            by_child = {r.workflow_id: r for r in open_}
            assert set(by_child) == {f"{handle.id}/r1", f"{handle.id}/r2"}
            first, second = by_child[f"{handle.id}/r1"], by_child[f"{handle.id}/r2"]
            assert first.tool == "write_file" and first.requested_by == "researcher"
            # The console's inbox lists the parent, never its waiting children (the query leaves subagents out).
            while [g.workflow_id for g in await waiting_goals(client)] != [handle.id]:
                await asyncio.sleep(0.1)
            # The child applies its own policy: a stranger's decision routed through the parent is refused.
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(APPROVE_UPDATE, ApprovalDecision(request_id=first.request_id, approver="mallory"),
                                            result_type=ApprovalRequest)
            assert "refused the decision" in str(refused.value.cause) and "not an approver" in str(refused.value.cause)
            approved = await handle.execute_update(
                APPROVE_UPDATE, ApprovalDecision(request_id=first.request_id, approver="alice", action_sha256=first.action_sha256),
                result_type=ApprovalRequest,
            )
            assert approved.status.value == "approved" and approved.workflow_id == f"{handle.id}/r1"
            await handle.signal(APPROVAL_SIGNAL, ApprovalSignal(request_id=second.request_id, approver="alice", decision="approve"))
            result = await handle.result()
            assert await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest]) == []  # the children's last reports
    assert result.status is GoalStatus.COMPLETED, result.error
    for child_id in (f"{handle.id}/r1", f"{handle.id}/r2"):
        child = await client.get_workflow_handle(child_id, result_type=GoalResult).result()
        (request,) = child.approvals
        assert request.status.value == "approved" and request.decided_by == "alice"
    await replay(await handle.fetch_history())


async def test_the_research_team_playbook(client: Client, task_queue: str) -> None:
    """The built-in demo: three researcher subagents at once, three drafts explored, the best published."""

    def team(request: ModelRequest):
        if step_role(request) == "researcher":
            return answer("Durable execution records each step, so work resumes after a crash [source: durable-execution.md].")
        if "first how it works" in request.messages[-1].content:
            return answer("Durable execution records every step in a history. A crash loses nothing that finished. "
                          "Retries are safe when tools are idempotent, so the agent resumes where it stopped.")
        return answer("Durable execution resumes agents.")

    request = GoalRequest(goal="Explain how durable execution makes AI agents safe to retry", playbook="research-team")
    result, history = await run_goal(client, task_queue, request, fake_activities(ScriptedModel(team).activity()), approvers=("alice",))
    assert result.status is GoalStatus.COMPLETED, result.error
    how, failures, limits, draft, publish = result.steps
    assert [s.child_workflow_ids for s in (how, failures, limits)] == [[f"{result.workflow_id}/{s}"] for s in ("how", "failures", "limits")]
    assert [c.label for c in draft.candidates] == ["plain", "warm", "structured"]
    assert draft.pick_reason.startswith("kept 'structured' (accept, score 1.00)") and result.output == draft.output
    assert publish.status is StepStatus.COMPLETED and result.approvals[0].artifact_sha256 == draft.output_sha256
    assert result.usage.model_calls == 6  # three children (one call each) and three candidates
    assert sorted(started_children(history)) == sorted(how.child_workflow_ids + failures.child_workflow_ids + limits.child_workflow_ids)


async def test_subagents_nest_only_so_deep(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """A playbook that delegates to itself stops at the depth limit instead of recursing without end."""
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(tmp_path / "playbooks"))
    step = {"type": "subagent", "id": "again", "role": "lead", "goal": "{{goal}}", "playbook": "loop", "budget_share": 0.9}
    write_playbook(tmp_path / "playbooks", {"name": "loop", "steps": [step], "policy": {"principals": PRINCIPALS}})
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(researcher_answers).activity())):
        handle = await start(client, task_queue, "loop", budget=Budget(max_model_calls=100))
        async with asyncio.timeout(30):
            result = await handle.result()
        deepest = await client.get_workflow_handle(f"{handle.id}/again/again/again", result_type=GoalResult).result()
    assert result.status is GoalStatus.FAILED and "ended failed" in result.steps[0].error
    assert "subagents nest at most 3 deep" in deepest.steps[0].error


async def test_only_a_goals_own_subagents_can_report_approvals_to_it(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """Anyone can send a Signal: a forged `child_approvals` report lists nothing and is recorded as refused."""
    name = team_playbooks(tmp_path, monkeypatch, child_gate=True)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(write_first).activity())):
        handle = await start(client, task_queue, name)
        fake = ApprovalRequest(request_id="fake", step_id="x", tool="write_file", arguments_json="{}", action_sha256="0" * 64,
                               requested_by="researcher", rule="r", reason="r", created_at=datetime.now(UTC),
                               expires_at=datetime.now(UTC), approvals_needed=1, workflow_id="attacker-controlled")
        await handle.signal(CHILD_APPROVALS_SIGNAL, ChildApprovals(workflow_id="attacker-controlled", requests=[fake]))
        async with asyncio.timeout(30):
            while len(open_ := await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])) < 2:
                await asyncio.sleep(0.05)
            assert {r.workflow_id for r in open_} == {f"{handle.id}/r1", f"{handle.id}/r2"}
            for child in (f"{handle.id}/r1", f"{handle.id}/r2"):
                await approve_pending(client.get_workflow_handle(child), ("alice",))
            result = await handle.result()
    assert any(e.kind.value == "refused" and "attacker-controlled" in e.detail for e in result.audit)


async def test_a_subagent_inherits_its_parents_gates(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """The child's own policy gates nothing; the parent gates every write: the child's write waits for the parent's approver."""
    folder = tmp_path / "playbooks"
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    writers = [{"role": r, "tools": ["write_file"], "side_effects": ["read", "write"]} for r in ("lead", "researcher")]
    write_playbook(folder, {"name": "free-writer", "steps": [
        {"type": "agent", "id": "dig", "role": "researcher", "instruction": "Research {{goal}}", "tools": ["write_file"], "max_turns": 3},
    ], "policy": {"principals": writers}})
    gate = {"name": "parent-writes", "when": [{"type": "tool", "tools": ["write_file"]}], "approver_roles": ["legal"]}
    write_playbook(folder, {"name": "guarded", "steps": [
        {"type": "subagent", "id": "r1", "role": "lead", "goal": "durable execution, angle one", "playbook": "free-writer"},
    ], "policy": {"principals": writers, "approvers": [{"name": "lawyer", "roles": ["legal"]}], "gates": [gate]}})
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(write_first).activity())):
        handle = await start(client, task_queue, "guarded")
        async with asyncio.timeout(30):
            while not (open_ := await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest])):
                await asyncio.sleep(0.05)
            (request,) = open_
            assert request.rule == "parent-writes" and request.workflow_id == f"{handle.id}/r1"
            await handle.execute_update(APPROVE_UPDATE, ApprovalDecision(request_id=request.request_id, approver="lawyer"),
                                        result_type=ApprovalRequest)
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED, result.error


ESCALATING_PRINCIPALS = [{"role": "lead", "tools": []}, {"role": "drafter", "tools": []}]


def delegating_playbooks(tmp_path, monkeypatch, parent_policy: dict, child_policy: dict) -> str:
    """`delegates` hands one sub-goal to `picky`, whose drafter escalates at once unless it says 'durable'."""
    folder = tmp_path / "playbooks"
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    write_playbook(folder, {"name": "picky", "policy": child_policy, "steps": [
        {"type": "agent", "id": "draft", "role": "drafter", "instruction": "Explain durable execution.", "max_attempts": 1,
         "checks": [{"type": "required_terms", "terms": ["durable"], "on_fail": "escalate"}]}]})
    return write_playbook(folder, {"name": "delegates", "policy": parent_policy, "steps": [
        {"type": "subagent", "id": "sub", "role": "lead", "goal": "Explain durable execution", "playbook": "picky"}]})


async def the_escalation(handle: WorkflowHandle) -> Escalation:
    """The one escalation the goal lists, once it does."""
    while not (open_ := await handle.query(ESCALATIONS_QUERY, result_type=list[Escalation])):
        await asyncio.sleep(0.05)
    (escalation,) = open_
    return escalation


async def test_a_childs_escalation_is_listed_and_resolved_on_the_parent(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """Listed on the parent, resolved through it; the child's playbook lets any approver resolve, but the parent's
    escalation policy (leads only) governs the child."""
    strict = {"principals": ESCALATING_PRINCIPALS, "approvers": [{"name": "bob", "roles": ["lead"]}],
              "escalations": {"resolver_roles": ["lead"]}}
    lax = {"principals": ESCALATING_PRINCIPALS, "approvers": [{"name": "bob", "roles": ["lead"]}, {"name": "eve", "roles": ["intern"]}]}
    name = delegating_playbooks(tmp_path, monkeypatch, strict, lax)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(lambda r: answer("It is fine.")).activity())):
        handle = await start(client, task_queue, name)
        async with asyncio.timeout(30):
            escalation = await the_escalation(handle)
            assert escalation.workflow_id == f"{handle.id}/sub" and escalation.step_id == "draft"
            with pytest.raises(WorkflowUpdateFailedError) as refused:  # the child checks its own policy's resolvers
                await handle.execute_update(RESOLVE_UPDATE, ResolveRequest(escalation_id=escalation.escalation_id,
                                                                           resolver="mallory", decision="accept"), result_type=Escalation)
            assert "refused the decision" in str(refused.value.cause) and "not an approver" in str(refused.value.cause)
            assert escalation.resolver_roles == ["lead"]  # the parent's policy, not the child playbook's
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(RESOLVE_UPDATE, ResolveRequest(escalation_id=escalation.escalation_id,
                                                                           resolver="eve", decision="accept"), result_type=Escalation)
            assert "lacks a resolver role" in str(refused.value.cause)
            resolved = await handle.execute_update(
                RESOLVE_UPDATE, ResolveRequest(escalation_id=escalation.escalation_id, resolver="bob", decision="accept"),
                result_type=Escalation)
            assert resolved.resolution.resolver == "bob" and resolved.status.value == "resolved"
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED, result.error
    assert result.output == "It is fine."  # accepted as it was, in the child
    await replay(await handle.fetch_history())


def angle_one_reads_forever(request: ModelRequest):
    """The angle-one researcher keeps reading and never answers; everyone else answers at once."""
    if step_role(request) == "researcher" and "angle one" in request.messages[1].content:
        return call_tool("read_file", {"path": "notes/one.md"})
    return researcher_answers(request)


async def test_a_budget_that_runs_out_inside_a_subagent_stops_it_gracefully(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    """The child spends its carve and ends budget_exceeded with what it did; the parent charges it and goes on
    without it (the merge is skipped); together they stay within the parent's budget."""
    name = team_playbooks(tmp_path, monkeypatch)
    result, _ = await run_goal(client, task_queue, GoalRequest(goal="Explain durable execution", playbook=name,
                                                               budget=Budget(max_model_calls=4)),
                               fake_activities(ScriptedModel(angle_one_reads_forever).activity()))
    r1, r2, merge = result.steps
    child = await client.get_workflow_handle(r1.child_workflow_ids[0], result_type=GoalResult).result()
    assert child.status is GoalStatus.BUDGET_EXCEEDED and child.error == "model call budget of 2 used up"
    assert child.budget.max_model_calls == 2 and child.usage.model_calls == 2 and child.steps[0].tool_calls  # partial work kept
    assert r1.status is StepStatus.FAILED and "ended budget_exceeded: model call budget of 2 used up" in r1.error
    assert r2.status is StepStatus.COMPLETED and merge.status is StepStatus.SKIPPED
    assert result.status is GoalStatus.FAILED and result.usage.model_calls == 3 <= result.budget.max_model_calls
