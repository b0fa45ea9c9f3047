"""Human approval of gated actions, on the real dev server: a playbook's own policy gates a
`write_file` to published/, and the tests approve, deny, let it expire, approve in sequence, send
wrong hashes, wrong approvers and duplicates, by Update and by Signal.

Invariants checked everywhere: the gated activity is scheduled only after approval (and the file
exists only then), a rejected Update leaves no event in history, and every history replays.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts.approvals import (
    APPROVAL_SIGNAL,
    APPROVE_UPDATE,
    DENY_UPDATE,
    PENDING_QUERY,
    ApprovalRequest,
    ApprovalSignal,
)
from contracts.goal import GoalStatus, StepStatus
from contracts.tools import WriteFileArgs
from tests.helpers import (
    APPROVERS,
    CONTENT,
    DRAFT,
    TARGET,
    accepted_update_ids,
    audit,
    decide,
    finish,
    gated_playbook,
    goal,
    pending,
    scheduled_activities,
    update_events,
)
from core.policy import action_sha256


async def rejected(handle: WorkflowHandle, approver: str, request: ApprovalRequest | str, **kwargs: object) -> str:
    """The message of an Update the validator rejects."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await decide(handle, approver, request, **kwargs)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ApprovalRejected", cause
    return cause.message


async def test_approve_runs_the_action_and_records_the_approver(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        assert (request.tool, request.requested_by, request.rule, request.approvals_needed) == ("write_file", "publisher", "publish", 1)
        # The request is bound to exactly this action: tool plus canonical arguments.
        assert request.action_sha256 == action_sha256("write_file", WriteFileArgs(path=TARGET, content=CONTENT))
        decided = await decide(handle, "alice", request)
        assert decided.status.value == "approved" and decided.decided_by == "alice"
        result, history = await finish(handle)
        assert await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest]) == []

    assert result.status is GoalStatus.COMPLETED, result.error
    (approval,) = result.approvals
    assert approval.status.value == "approved" and [(g.approver, g.roles) for g in approval.approvals_given] == [("alice", ["editor"])]
    assert audit(result) == [("requested", "publisher"), ("approved", "alice"), ("executed", None)]
    assert result.steps[0].tool_calls[0].approval_request_id == request.request_id
    assert scheduled_activities(history) == ["plan_goal", "write_file"]
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT
    assert update_events(history) == {"ACCEPTED": 1, "COMPLETED": 1}


async def test_deny_never_runs_the_action(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        denied = await decide(handle, "bob", request, update=DENY_UPDATE)
        assert denied.status.value == "denied" and denied.decided_by == "bob"
        result, history = await finish(handle)

    assert result.status is GoalStatus.FAILED
    step = result.steps[0]
    assert step.status is StepStatus.FAILED and step.error == f"ApprovalDenied: request {request.request_id} was denied"
    assert audit(result) == [("requested", "publisher"), ("denied", "bob")]
    assert "write_file" not in scheduled_activities(history)
    assert not (foreman_home / "workspace" / TARGET).exists()


@pytest.mark.parametrize("on_expiry", ["deny", "escalate"])
async def test_expiry_never_approves(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path, on_expiry: str) -> None:
    # An escalation nobody resolves ends in abort once its own timeout passes.
    playbook = gated_playbook(tmp_path, monkeypatch, expires_after_seconds=1, on_expiry=on_expiry, escalations={"timeout_seconds": 1})
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        assert request.expires_at - request.created_at == timedelta(seconds=1) and request.on_expiry == on_expiry
        result, history = await finish(handle)

    step = result.steps[0]
    if on_expiry == "deny":
        assert result.status is GoalStatus.FAILED and step.status is StepStatus.FAILED
        assert step.error == f"ApprovalDenied: request {request.request_id} was expired"
    else:
        assert result.status is GoalStatus.ESCALATED and step.status is StepStatus.ESCALATED
        assert "expired and was escalated" in step.error and "publish" in result.error
        assert step.error.endswith("no resolution in time, aborted")
        (escalation,) = result.escalations
        assert escalation.status.value == "timed_out" and escalation.outcome.value == "abort" and step.escalation_ids == [escalation.escalation_id]
        # The gated action never ran: there is no output to accept, and nothing for a resolver to wave through.
        assert "accept" not in [d.value for d in escalation.decisions] and "retry" in [d.value for d in escalation.decisions]
    assert result.approvals[0].status.value == {"deny": "expired", "escalate": "escalated"}[on_expiry]
    assert audit(result) == [("requested", "publisher"), ({"deny": "expired", "escalate": "escalated"}[on_expiry], None)]
    assert "write_file" not in scheduled_activities(history)
    assert not (foreman_home / "workspace" / TARGET).exists()


async def test_sequence_needs_distinct_approvers_in_role_order(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    approvers = [*APPROVERS, {"name": "dave", "roles": ["editor"]}]
    playbook = gated_playbook(tmp_path, monkeypatch, approvers=approvers, sequence=["editor", "release-manager"])
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        assert request.approvals_needed == 2 and request.sequence == ["editor", "release-manager"]
        message = await rejected(handle, "carol", request)
        assert "lacks the required role for approval 1" in message and "editor" in message
        first = await decide(handle, "alice", request)
        assert first.status.value == "pending" and [g.approver for g in first.approvals_given] == ["alice"]
        assert "already approved" in await rejected(handle, "alice", request)
        message = await rejected(handle, "dave", request)
        assert "for approval 2" in message and "release-manager" in message
        assert "write_file" not in scheduled_activities(await handle.fetch_history())  # one approval is not enough
        second = await decide(handle, "carol", request)
        assert second.status.value == "approved" and second.decided_by == "carol"
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert [(g.approver, g.roles) for g in result.approvals[0].approvals_given] == [("alice", ["editor"]), ("carol", ["release-manager"])]
    assert audit(result) == [("requested", "publisher"), ("approved", "alice"), ("approved", "carol"), ("executed", None)]
    assert [e.detail for e in result.audit if e.kind.value == "approved"] == ["approval 1 of 2.", "approval 2 of 2."]
    assert scheduled_activities(history).count("write_file") == 1
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT
    assert update_events(history) == {"ACCEPTED": 2, "COMPLETED": 2}


async def test_approvals_bound_to_another_action_are_refused(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    artifact = hashlib.sha256(DRAFT.encode()).hexdigest()
    playbook = gated_playbook(tmp_path, monkeypatch, content="{{steps.a.output}}", expected_sha256="{{steps.a.sha256}}")
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        assert request.artifact_sha256 == artifact  # the approval names the draft by its content hash
        real = WriteFileArgs(path=TARGET, content=DRAFT, expected_sha256=artifact)
        assert request.action_sha256 == action_sha256("write_file", real)
        # An approval reviewed against any other action (a different text, or a made-up hash) is refused.
        other = action_sha256("write_file", real.model_copy(update={"content": "something else"}))
        for sha in (other, "f" * 64):
            assert "action_sha256 does not match" in await rejected(handle, "alice", request, sha=sha)
        await decide(handle, "alice", request)
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert (foreman_home / "workspace" / TARGET).read_text() == DRAFT
    assert audit(result) == [("requested", "publisher"), ("approved", "alice"), ("executed", None)]
    assert update_events(history) == {"ACCEPTED": 1, "COMPLETED": 1}


async def test_an_action_on_the_wrong_artifact_is_refused_before_anyone_is_asked(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path
) -> None:
    wrong_artifact = "0" * 64
    playbook = gated_playbook(tmp_path, monkeypatch, content="{{steps.a.output}}", expected_sha256=wrong_artifact)
    async with goal(client, task_queue, playbook) as handle:
        result, history = await finish(handle)

    actual = hashlib.sha256(DRAFT.encode()).hexdigest()
    assert result.status is GoalStatus.FAILED
    step = result.steps[1]
    assert step.status is StepStatus.FAILED
    assert step.error == f"ArtifactMismatch: content sha256 {actual} is not the expected artifact {wrong_artifact}"
    assert result.approvals == [] and audit(result) == []  # nobody was asked to approve an action that cannot run
    assert "write_file" not in scheduled_activities(history)
    assert not (foreman_home / "workspace" / TARGET).exists()


async def test_agents_strangers_and_wrong_roles_cannot_approve(client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path) -> None:
    # Even listed as approvers, agent principals stay agents: the requester and every other agent role are refused.
    impostors = [{"name": "publisher", "roles": ["editor"]}, {"name": "drafter", "roles": ["editor"]}]
    playbook = gated_playbook(tmp_path, monkeypatch, approvers=[*APPROVERS, *impostors])
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        for agent in ("publisher", "drafter"):
            for update in (APPROVE_UPDATE, DENY_UPDATE):
                message = await rejected(handle, agent, request, update=update)
                assert message == f"{agent!r} is an agent principal (the requester cannot approve its own action)"
        assert await rejected(handle, "mallory", request) == "'mallory' is not an approver in this goal's policy"
        assert await rejected(handle, "Alice", request) == "'Alice' is not an approver in this goal's policy"
        assert await rejected(handle, "carol", request) == "'carol' lacks the required role: one of ['editor']"
        assert "write_file" not in scheduled_activities(await handle.fetch_history())
        await decide(handle, "alice", request)
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert audit(result) == [("requested", "publisher"), ("approved", "alice"), ("executed", None)]
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT
    assert update_events(history) == {"ACCEPTED": 1, "COMPLETED": 1}


async def test_one_approver_counts_once_and_a_repeated_update_id_is_idempotent(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path
) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch, approvals=2)
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        first = await decide(handle, "bob", request, id="bob-1")
        assert first.status.value == "pending" and len(first.approvals_given) == 1
        assert "has already approved" in await rejected(handle, "bob", request, id="bob-2")
        # The same update (same id) again: Temporal returns the first outcome without running it again.
        again = await decide(handle, "bob", request, id="bob-1")
        assert again == first
        assert [g.approver for g in (await pending(handle))[0].approvals_given] == ["bob"]
        await decide(handle, "alice", request, id="alice-1")
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert [g.approver for g in result.approvals[0].approvals_given] == ["bob", "alice"]
    assert accepted_update_ids(history) == ["bob-1", "alice-1"]
    assert update_events(history) == {"ACCEPTED": 2, "COMPLETED": 2}
    assert scheduled_activities(history).count("write_file") == 1
    assert (foreman_home / "workspace" / TARGET).exists()


async def test_unknown_or_decided_requests_are_rejected_without_a_trace(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path
) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch, also_write="published/y.md")
    async with goal(client, task_queue, playbook) as handle:
        first, second = await pending(handle, count=2)
        assert (first.step_id, second.step_id) == ("publish", "publish2")
        for update in (APPROVE_UPDATE, DENY_UPDATE):
            assert await rejected(handle, "alice", "no-such-request", update=update) == "unknown approval request 'no-such-request'"
        assert update_events(await handle.fetch_history()) == {}
        await decide(handle, "alice", first, update=DENY_UPDATE)
        # A decided request takes no further decisions (the goal still waits on the other one).
        assert await rejected(handle, "bob", first) == f"request {first.request_id} is already denied"
        assert [r.request_id for r in await pending(handle)] == [second.request_id]
        await decide(handle, "bob", second)
        result, history = await finish(handle)

    assert result.status is GoalStatus.FAILED and [a.status.value for a in result.approvals] == ["denied", "approved"]
    assert [s.status for s in result.steps] == [StepStatus.FAILED, StepStatus.COMPLETED]
    assert update_events(history) == {"ACCEPTED": 2, "COMPLETED": 2}
    assert audit(result) == [("requested", "publisher"), ("requested", "publisher"), ("denied", "alice"), ("approved", "bob"), ("executed", None)]
    assert scheduled_activities(history).count("write_file") == 1
    assert not (foreman_home / "workspace" / TARGET).exists()
    assert (foreman_home / "workspace" / "published" / "y.md").read_text() == CONTENT


async def test_signals_get_the_same_checks_and_refusals_are_audited(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch, foreman_home: Path
) -> None:
    playbook = gated_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)

        async def signal(approver: str, sha: str | None = request.action_sha256, decision: str = "approve") -> None:
            await handle.signal(APPROVAL_SIGNAL, ApprovalSignal(
                request_id=request.request_id, approver=approver, decision=decision, action_sha256=sha))

        await signal("carol")  # lacks the editor role
        await signal("alice", sha="f" * 64)  # reviewed another action
        await signal("publisher")  # the requester itself
        await signal("mallory", decision="deny")  # not an approver
        # A payload that is not an ApprovalSignal at all is refused (and recorded) too.
        await handle.signal(APPROVAL_SIGNAL, {"request_id": request.request_id, "approver": "alice", "decision": "maybe"})
        await asyncio.sleep(0.3)
        (still,) = await pending(handle)
        assert still.approvals_given == [] and "write_file" not in scheduled_activities(await handle.fetch_history())
        await signal("alice")
        result, history = await finish(handle)

    assert result.status is GoalStatus.COMPLETED, result.error
    assert audit(result) == [
        ("requested", "publisher"), ("refused", "carol"), ("refused", "alice"), ("refused", "publisher"),
        ("refused", "mallory"), ("refused", None), ("approved", "alice"), ("executed", None),
    ]
    refusals = [e.detail for e in result.audit if e.kind.value == "refused"]
    assert "lacks the required role" in refusals[0] and "action_sha256 does not match" in refusals[1]
    assert "agent principal" in refusals[2] and "not an approver" in refusals[3]
    assert refusals[4].startswith("malformed approval signal")
    assert all(e.request_id == request.request_id for e in result.audit if e.actor)
    signaled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert len(signaled) == 6 and update_events(history) == {}
    assert scheduled_activities(history) == ["plan_goal", "write_file"]
    assert (foreman_home / "workspace" / TARGET).read_text() == CONTENT
