"""Signed approvals (real dev server): a policy lists approvers' Ed25519 public keys and may require signed
decisions; a decision in a keyed approver's name counts only with their signature over exactly that decision
(workflow, request, action hash, verdict, approver, time, comment). Unsigned, forged, wrong-key and replayed
signatures are refused by the Update's validator (no trace in history, nothing runs); escalation resolutions and
decisions routed to a subagent are signed the same way; `starter.py keygen` / `approve --as` sign."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from contracts.approvals import APPROVE_UPDATE, ApprovalDecision, ApprovalRequest
from contracts.escalations import RESOLVE_UPDATE, Escalation, ResolveRequest
from contracts.goal import GoalRequest
from contracts.llm import ModelRequest
from contracts.policy import DecisionSignature
from core.signatures import decision_message, new_private_key_pem, public_key_of, sign, verify
from tests.fakes import ScriptedModel, answer, call_tool
from tests.helpers import (
    CONTENT, TARGET, escalating_playbook, fake_activities, finish, gated_playbook, goal, pending, run_cli, starter, team_playbooks,
    update_events, waiting,
)
from worker import build_worker
from workflows.goal import GoalWorkflow

ALICE, MALLORY = new_private_key_pem(), new_private_key_pem()


def test_a_signature_verifies_only_for_its_key_and_message() -> None:
    message = decision_message("goal-1", "req-1", "a" * 64, "approve", "alice", 1_800_000_000)
    signature = sign(ALICE, message)
    assert verify(public_key_of(ALICE), message, signature)
    assert not verify(public_key_of(MALLORY), message, signature)  # another key
    assert not verify(public_key_of(ALICE), message.replace(b"approve", b"deny"), signature)  # another decision
    assert not verify(public_key_of(ALICE), message, base64.b64encode(b"x" * 64).decode())  # forged
    assert not verify(public_key_of(ALICE), message, "not base64!")
    # The comment (a resolution's guidance) is signed too: the words cannot be swapped under the signature.
    with_note = decision_message("goal-1", "req-1", "a" * 64, "approve", "alice", 1_800_000_000, "ship it")
    assert not verify(public_key_of(ALICE), with_note, signature)


def signed_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The approvals playbook with alice's public key listed and signatures required for everyone."""
    approvers = [{"name": "alice", "roles": ["editor"], "public_key": public_key_of(ALICE)}, {"name": "bob", "roles": ["editor"]}]
    name = gated_playbook(tmp_path, monkeypatch, approvers=approvers)
    path = tmp_path / "playbooks" / f"{name}.json"
    book = json.loads(path.read_text())
    book["policy"]["require_signatures"] = True
    path.write_text(json.dumps(book))
    return name


def signature(key: bytes, workflow_id: str, request: ApprovalRequest, verdict: str = "approve", approver: str = "alice",
              at: int | None = None) -> DecisionSignature:
    at = at if at is not None else int(request.created_at.timestamp()) + 1
    return DecisionSignature(signed_at=at, signature=sign(key, decision_message(
        workflow_id, request.request_id, request.action_sha256, verdict, approver, at)))


async def refused(handle: WorkflowHandle, approver: str, request: ApprovalRequest, sig: DecisionSignature | None,
                  update: str = APPROVE_UPDATE) -> str:
    decision = ApprovalDecision(request_id=request.request_id, approver=approver, action_sha256=request.action_sha256, signature=sig)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(update, decision, result_type=ApprovalRequest)
    return failure.value.cause.message


async def test_only_a_valid_signature_by_the_approvers_key_counts(client: Client, task_queue: str, tmp_path: Path, monkeypatch,
                                                                  foreman_home: Path) -> None:
    playbook = signed_playbook(tmp_path, monkeypatch)
    async with goal(client, task_queue, playbook) as handle:
        (request,) = await pending(handle)
        wid = handle.id
        assert "must be signed with their key" in await refused(handle, "alice", request, None)
        assert "no public key" in await refused(handle, "bob", request, None)  # require_signatures: no key, no decision
        forged = DecisionSignature(signed_at=int(request.created_at.timestamp()), signature=base64.b64encode(b"x" * 64).decode())
        assert "not one by 'alice'" in await refused(handle, "alice", request, forged)
        assert "not one by 'alice'" in await refused(handle, "alice", request, signature(MALLORY, wid, request))  # wrong key
        # Replayed: alice's real signature, but of another decision, another goal, another request, or long ago.
        assert "not one by 'alice'" in await refused(handle, "alice", request, signature(ALICE, wid, request, "deny"))
        assert "not one by 'alice'" in await refused(handle, "alice", request, signature(ALICE, "another-goal", request))
        other = request.model_copy(update={"request_id": "another-request"})
        assert "not one by 'alice'" in await refused(handle, "alice", request,
                                                  signature(ALICE, wid, other).model_copy(update={"signed_at": int(request.created_at.timestamp()) + 1}))
        assert "outside this request's lifetime" in await refused(handle, "alice", request, signature(ALICE, wid, request, at=1_000))
        assert (await pending(handle))[0].approvals_given == []  # nothing counted

        # A real signature, made by the CLI with the key `keygen` wrote: approved, and the write runs.
        keys = tmp_path / "keys"
        monkeypatch.setenv("FOREMAN_KEYS_DIR", str(keys))
        keys.mkdir()
        (keys / "alice").write_bytes(ALICE)
        address = client.service_client.config.target_host
        code, out, err = await run_cli(*starter("approve", wid, request.request_id, "--as", "alice"), address=address, task_queue=task_queue)
        assert code == 0 and "approved" in out, err
        result, history = await finish(handle)
    assert result.status.value == "completed" and (foreman_home / "workspace" / TARGET).read_text() == CONTENT
    assert update_events(history) == {"ACCEPTED": 1, "COMPLETED": 1}  # the refused Updates left no trace


async def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FOREMAN_KEYS_DIR", str(tmp_path / "keys"))
    code, out, err = await run_cli(*starter("keygen", "--as", "carol"), address="127.0.0.1:1", task_queue="unused")
    assert code == 0, err
    private = tmp_path / "keys" / "carol"
    assert private.stat().st_mode & 0o077 == 0
    public = (tmp_path / "keys" / "carol.pub").read_text().strip()
    assert public == public_key_of(private.read_bytes()) and f'"public_key": "{public}"' in out
    code, _, err = await run_cli(*starter("keygen", "--as", "carol"), address="127.0.0.1:1", task_queue="unused")
    assert code == 1 and "exists" in err  # an existing key is never silently replaced


async def test_an_escalation_resolution_is_signed_the_same_way(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    bob = new_private_key_pem()
    name = escalating_playbook(tmp_path, monkeypatch)
    path = tmp_path / "playbooks" / f"{name}.json"
    book = json.loads(path.read_text())
    book["policy"]["approvers"] = [{**a, "public_key": public_key_of(bob)} if a["name"] == "bob" else a for a in book["policy"]["approvers"]]
    path.write_text(json.dumps(book))
    async with goal(client, task_queue, name) as handle:  # the drafter never says "durable": the step escalates
        (escalation,) = await waiting(handle)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(RESOLVE_UPDATE, ResolveRequest(escalation_id=escalation.escalation_id, resolver="bob",
                                                                       decision="accept"), result_type=Escalation)
        assert "must be signed with their key" in failure.value.cause.message
        key_file = tmp_path / "bob.pem"
        key_file.write_bytes(bob)
        code, out, err = await run_cli(*starter("resolve", handle.id, escalation.escalation_id, "--as", "bob", "--decision", "accept",
                                                "--key", str(key_file)), address=client.service_client.config.target_host, task_queue=task_queue)
        assert code == 0, err
        result, _ = await finish(handle)
    assert result.status.value == "completed" and result.escalations[0].resolution.resolver == "bob"


def reads_after_writing(request: ModelRequest):
    """Subagent researchers ask to write once (gated in the child), then answer; the merge answers."""
    if "You are the researcher" in request.messages[0].content and not any(m.role.value == "tool" for m in request.messages):
        return call_tool("write_file", {"path": "drafts/x.md", "content": "x"})
    return answer("findings")


async def test_a_decision_routed_to_a_subagent_is_signed_for_the_child(client: Client, task_queue: str, tmp_path: Path, monkeypatch) -> None:
    """The child inherits the parent's keyed approver; an unsigned approval sent to the parent is refused there
    (no trace), a signature for the child's workflow id (as `pending` names it) is accepted and applied in the child."""
    name = team_playbooks(tmp_path, monkeypatch, child_gate=True)
    path = tmp_path / "playbooks" / f"{name}.json"
    book = json.loads(path.read_text())
    book["policy"]["approvers"] = [{**a, "public_key": public_key_of(ALICE)} for a in book["policy"]["approvers"]]
    path.write_text(json.dumps(book))
    key_file = tmp_path / "alice.pem"
    key_file.write_bytes(ALICE)
    async with build_worker(client, task_queue, activities=fake_activities(ScriptedModel(reads_after_writing).activity())):
        handle = await client.start_workflow(GoalWorkflow.run, GoalRequest(goal="Explain durable execution", playbook=name),
                                             id=f"team-signed-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        async with asyncio.timeout(60):
            first, second = await pending(handle, 2)
            assert first.workflow_id.startswith(handle.id + "/")
            assert "must be signed with their key" in await refused(handle, "alice", first, None)
            for request in (first, second):
                code, out, err = await run_cli(*starter("approve", handle.id, request.request_id, "--as", "alice", "--key", str(key_file)),
                                               address=client.service_client.config.target_host, task_queue=task_queue)
                assert code == 0 and "approved" in out, err
            result = await handle.result()
    assert result.status.value == "completed", result.error
