"""Long goals continue as new (real dev server, scripted model): past `continue_as_new_after_events` the goal
hands its state to a fresh run where no step is mid-call. A step waiting for an approval is parked across the
boundary and resumes from its journal (its completed model call is not made again); the pending request keeps
its id, is decided in the next run, and the gated write runs once. The final result is the one a single run
gives; every run's history replays."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError

from contracts.approvals import ApprovalEventKind, ApprovalStatus
from contracts.continuation import DeskState, EscalationState, GoalCarry, LedgerState, SchedulerState
from contracts.errors import ErrorType
from contracts.goal import STATUS_QUERY, Continuation, GoalProgress, GoalRequest, GoalResult, GoalStatus, StepResult, UsageTotals
from contracts.plan import Plan
from contracts.policy import Policy
from tests.fakes import GOOD, ScriptedModel, answer
from tests.helpers import (
    APPROVERS, ESCALATION_APPROVERS, LONG_TARGET as TARGET, decide, fake_activities, gated_long_playbook, long_goal_reply as respond,
    long_playbook, pending, replay, resolve, scheduled_activities, waiting, write_playbook,
)
from worker import build_worker
from workflows.goal import GoalWorkflow, from_its_parent, handed_on

async def run_long(client: Client, task_queue: str, playbook: str, events: int, model: ScriptedModel) -> tuple[GoalResult, list[WorkflowHistory]]:
    """Run the goal; approve its one request only after it has continued as new at least once (if it does)."""
    request = GoalRequest(goal="Publish a notice and note facts", playbook=playbook, max_parallel_steps=2,
                          continue_as_new_after_events=events)
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"long-{uuid.uuid4().hex[:10]}", task_queue=task_queue)
        async with asyncio.timeout(120):
            (waiting,) = await pending(handle)
            if events < 2_000:  # decide only in a later run: the request must have crossed a boundary
                while not (await handle.query(STATUS_QUERY, result_type=GoalProgress)).continuations:
                    await asyncio.sleep(0.05)
                assert [r.request_id for r in await pending(handle)] == [waiting.request_id]
            await decide(handle, "alice", waiting)
            result = await handle.result()
            progress = await handle.query(STATUS_QUERY, result_type=GoalProgress)
        # Working memory crosses the boundaries too: every step's output hash, the publish's written file by hash.
        working = {p.step_id: p for p in progress.steps}
        assert all(working[s.step_id].output_sha256 == s.output_sha256 for s in result.steps)
        assert [a.tool for a in working["publish"].artifacts] == ["write_file"]
        runs = [c.run_id for c in result.continuations] + [(await handle.describe()).run_id]
        histories = [await client.get_workflow_handle(handle.id, run_id=run).fetch_history() for run in runs]
    for history in histories:
        await replay(history)
    return result, histories


def comparable(result: GoalResult) -> dict:
    """What must not depend on continue-as-new: everything but ids (of requests, and keys: another goal's), times and
    the continuations themselves."""
    def step(s: StepResult) -> dict:
        ids = {"approval_request_id", "idempotency_key"}
        return s.model_dump(mode="json", exclude={"started_at": True, "finished_at": True, "tool_calls": {"__all__": ids}})
    usage = result.usage.model_dump(exclude={"wall_seconds"})
    return {"status": result.status, "output": result.output, "steps": [step(s) for s in result.steps], "usage": usage,
            "approvals": [(a.step_id, a.action_sha256, a.status, [g.approver for g in a.approvals_given]) for a in result.approvals],
            "audit": [(e.kind, e.step_id, e.tool, e.actor) for e in result.audit]}


async def test_a_long_goal_continues_as_new_with_an_approval_pending_across_a_boundary(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    playbook = gated_long_playbook(tmp_path, monkeypatch)
    single_model, long_model = ScriptedModel(respond), ScriptedModel(respond)
    single, (single_history,) = await run_long(client, task_queue, playbook, 2_000, single_model)
    (foreman_home / "workspace" / TARGET).unlink()
    result, histories = await run_long(client, task_queue, playbook, 120, long_model)

    assert single.status is result.status is GoalStatus.COMPLETED, result.error
    assert not single.continuations and len(result.continuations) >= 2, result.continuations
    assert [c.run for c in result.continuations] == list(range(1, len(result.continuations) + 1))
    assert any("publish" in c.parked_steps for c in result.continuations)  # parked while it waited for alice
    assert comparable(result) == comparable(single)

    # The request crossed the boundary as it was: one request, asked once, decided in a later run, executed once.
    (approval,) = result.approvals
    assert approval.status is ApprovalStatus.APPROVED and approval.decided_by == "alice"
    kinds = [e.kind for e in result.audit]
    assert kinds.count(ApprovalEventKind.REQUESTED) == kinds.count(ApprovalEventKind.EXECUTED) == 1
    assert (foreman_home / "workspace" / TARGET).read_text() == "Notice: approved words."
    writes = [a for h in histories for a in scheduled_activities(h) if a == "write_file"]
    assert writes == ["write_file"]

    # The parked step's completed model call came from its journal: no call was made twice.
    assert len(long_model.requests) == len(single_model.requests) == result.usage.model_calls
    calls = sum(scheduled_activities(h).count("call_model") for h in histories)
    assert calls == scheduled_activities(single_history).count("call_model")
    for continuation, history in zip(result.continuations, histories, strict=False):
        assert continuation.history_events == len(history.events) - 2  # then the task completes and the run closes
    print(json.dumps({"single_run_events": len(single_history.events),
                      "runs": [{"events": len(h.events), "parked": c.parked_steps} for h, c in zip(histories, result.continuations, strict=False)]
                      + [{"events": len(histories[-1].events)}]}))


async def test_an_escalation_pending_across_a_boundary_is_resolved_in_the_next_run(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    draft = {"type": "agent", "id": "draft", "role": "drafter", "instruction": "Explain durable execution.", "max_attempts": 1,
             "checks": [{"type": "required_terms", "terms": ["durable"], "on_fail": "escalate"}]}
    playbook = long_playbook(tmp_path, monkeypatch, draft, {
        "principals": [{"role": "drafter", "tools": []}], "approvers": ESCALATION_APPROVERS, "escalations": {"resolver_roles": ["lead"]}})
    model = ScriptedModel(respond)
    request = GoalRequest(goal="Explain it and note facts", playbook=playbook, max_parallel_steps=2, continue_as_new_after_events=120)
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"long-esc-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(120):
            (escalation,) = await waiting(handle)
            while not (await handle.query(STATUS_QUERY, result_type=GoalProgress)).continuations:
                await asyncio.sleep(0.05)
            assert [e.escalation_id for e in await waiting(handle)] == [escalation.escalation_id]  # the same one, still open
            await resolve(handle, escalation, "bob", "retry", guidance="Say that durable execution keeps every step.")
            result = await handle.result()
        await replay(await handle.fetch_history())
    assert result.status is GoalStatus.COMPLETED, result.error
    assert any("draft" in c.parked_steps for c in result.continuations)
    step = next(s for s in result.steps if s.step_id == "draft")
    assert step.output == GOOD and [v.decision.value for v in step.verdicts] == ["escalate", "accept"]
    assert step.escalation_ids == [escalation.escalation_id] and len(result.escalations) == 1
    drafter_calls = [r for r in model.requests if "You are the drafter" in r.messages[0].content]
    assert len(drafter_calls) == 2  # the weak draft once (replayed from the journal after the boundary), then the guided one


async def test_an_approval_that_expired_into_an_escalation_crosses_a_boundary(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    """The gate's expiry escalates; the step, parked across boundaries, replays its escalated call (not a tool call
    that never ran) and waits on the same escalation, which a later run resolves."""
    publish = {"type": "agent", "id": "publish", "role": "publisher", "instruction": "Publish the notice.", "tools": ["write_file"],
               "max_turns": 3, "checks": [{"type": "non_empty"}]}
    playbook = long_playbook(tmp_path, monkeypatch, publish, {
        "principals": [{"role": "publisher", "tools": ["write_file"], "side_effects": ["read", "write"]}],
        "approvers": APPROVERS,
        "gates": [{"name": "publish", "when": [{"type": "path_outside", "prefixes": ["drafts/"]}], "approver_roles": ["editor"],
                   "expires_after_seconds": 1, "on_expiry": "escalate"}],
    })
    request = GoalRequest(goal="Publish a notice and note facts", playbook=playbook, max_parallel_steps=2, continue_as_new_after_events=120)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(respond).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"long-exp-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(120):
            (escalation,) = await waiting(handle)
            async def crossed() -> bool:
                runs = (await handle.query(STATUS_QUERY, result_type=GoalProgress)).continuations
                return any("publish" in c.parked_steps for c in runs)
            while not await crossed():
                await asyncio.sleep(0.05)
            assert [e.escalation_id for e in await waiting(handle)] == [escalation.escalation_id]
            await resolve(handle, escalation, "alice", "abort")
            result = await handle.result()
        await replay(await handle.fetch_history())
    assert result.status is GoalStatus.ESCALATED and len(result.escalations) == 1
    assert not (foreman_home / "workspace" / TARGET).exists()  # the expired request never ran


async def test_a_run_hands_over_only_after_it_got_something_done(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a byte limit below what a run starts with (its carried state), each run still finishes steps before it
    continues as new: no chain of runs that do nothing."""
    first = {"type": "agent", "id": "first", "role": "researcher", "instruction": "Note the first fact.", "max_turns": 1}
    playbook = long_playbook(tmp_path, monkeypatch, first, {"principals": []})
    request = GoalRequest(goal="Note facts", playbook=playbook, max_parallel_steps=4, continue_as_new_after_bytes=64 * 1024)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(respond).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"long-bytes-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(120):
            result = await handle.result()
    assert result.status is GoalStatus.COMPLETED, result.error
    finished = [c.finished_steps for c in result.continuations]
    assert len(result.continuations) >= 2 and finished == sorted(set(finished))  # every run finished more steps


async def test_a_subagent_continues_as_new_with_its_approval_decided_through_the_parent(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foreman_home: Path,
) -> None:
    """The child inherits the parent's limit, continues as new while its request waits; the parent keeps listing it
    and routes alice's approval to the child's current run; the parent's one step gets the child's whole result."""
    gated_long_playbook(tmp_path, monkeypatch)
    delegate = {"type": "subagent", "id": "team", "role": "lead", "goal": "{{goal}}", "playbook": "long", "budget_share": 0.9}
    lead = {"role": "lead", "tools": ["write_file"], "side_effects": ["read", "write"]}
    write_playbook(tmp_path / "playbooks", {"name": "delegating", "steps": [delegate],
                                            "policy": {"principals": [lead], "approvers": APPROVERS}})
    model = ScriptedModel(respond)
    request = GoalRequest(goal="Publish a notice and note facts", playbook="delegating", continue_as_new_after_events=120)
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        handle = await client.start_workflow(GoalWorkflow.run, request, id=f"parent-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        child = client.get_workflow_handle(f"{handle.id}/team")
        async with asyncio.timeout(120):
            (waiting_request,) = await pending(handle)
            while not (await child.query(STATUS_QUERY, result_type=GoalProgress)).continuations:
                await asyncio.sleep(0.05)
            assert [r.request_id for r in await pending(handle)] == [waiting_request.request_id]
            await decide(handle, "alice", waiting_request)  # through the parent, to the child's current run
            result = await handle.result()
        await replay(await handle.fetch_history())
    assert result.status is GoalStatus.COMPLETED, result.error
    (step,) = result.steps
    child_result = await client.get_workflow_handle(step.child_workflow_ids[0], result_type=GoalResult).result()
    assert child_result.continuations and any("publish" in c.parked_steps for c in child_result.continuations)
    assert step.output == child_result.output and result.usage.model_calls == child_result.usage.model_calls
    assert (foreman_home / "workspace" / TARGET).read_text() == "Notice: approved words."


def made_up_carry() -> GoalCarry:
    """Carried state a client wrote itself: a one-step plan, nothing spent, no approvals."""
    plan = Plan.model_validate({"goal": "x", "source": "playbook", "steps": [{"type": "agent", "id": "a", "role": "writer", "instruction": "x"}]})
    return GoalCarry(
        phase="executing", scheduler=SchedulerState(plan=plan, output_step="a"), progress=[],
        ledger=LedgerState(usage=UsageTotals(), started="2026-01-01T00:00:00Z"), desk=DeskState(policy=Policy()),
        escalations=EscalationState(policy=Policy()),
    )


async def test_a_client_cannot_start_a_goal_with_carried_state(client: Client, task_queue: str) -> None:
    """`resume` would let a client hand a goal approvals nobody gave: only continue-as-new may set it."""
    forged = made_up_carry()
    model = ScriptedModel(lambda r: answer("never"))
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(GoalWorkflow.run, GoalRequest(goal="x", resume=forged),
                                          id=f"forged-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ErrorType.RESUME_REFUSED.value
    assert not model.requests


async def test_a_client_cannot_name_a_parent_or_inherited_approvers(client: Client, task_queue: str) -> None:
    """Inherited approvers win over a playbook's own (keys included): only a real parent may hand them down."""
    forged = GoalRequest(goal="x", playbook="research-brief", inherited_approvers=[{"name": "alice", "roles": ["editor"]}])
    model = ScriptedModel(lambda r: answer("never"))
    async with build_worker(client, task_queue, activities=fake_activities(model.activity())):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(GoalWorkflow.run, forged, id=f"orphan-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    assert failure.value.cause.type == ErrorType.PARENT_REFUSED.value and not model.requests
    linked = GoalRequest(goal="x", parent={"workflow_id": "some-goal", "step_id": "s", "role": "lead"})
    assert from_its_parent(linked, "some-goal") and not from_its_parent(linked, None) and not from_its_parent(linked, "other")
    assert from_its_parent(GoalRequest(goal="x"), None)


def test_only_the_run_a_carry_names_may_resume_from_it() -> None:
    """A cron schedule's next run also has a continued_run_id: the carry must name that very run."""
    carry = made_up_carry()
    assert not handed_on(carry, None) and not handed_on(carry, "run-1")  # no continuation recorded: made up
    carry.continuations.append(Continuation(run=1, run_id="run-1", history_events=10, history_bytes=100, at="2026-01-01T00:00:00Z",
                                            finished_steps=0))
    assert handed_on(carry, "run-1") and not handed_on(carry, "cron-run-7") and not handed_on(carry, None)
