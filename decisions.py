"""A person's decision on what waits in a goal: approve or deny an approval request, resolve an escalation.

One copy for every client (`starter.py approve/deny/resolve`, the demo's auto-approval, the web console): each
decision is one Update whose id makes a repeated identical call idempotent; with the decider's private key it is
signed over the request or escalation as the goal lists it (the workflow it waits in, its action or output hash).
Failures are typed (`DecisionError` and subclasses) so each client says them its own way; nothing here prints.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

import approver_keys
from contracts.approvals import APPROVE_UPDATE, DENY_UPDATE, PENDING_QUERY, ApprovalDecision, ApprovalRequest
from contracts.escalations import ESCALATIONS_QUERY, RESOLVE_UPDATE, Escalation, EscalationDecision, ResolveRequest
from core.policy import shows_its_action

QUERY_TIMEOUT = timedelta(seconds=10)  # a goal whose worker is away: the decision is not sent, and says why

Waiting = TypeVar("Waiting", ApprovalRequest, Escalation)  # what a person may decide and sign for
VERDICTS = ("approve", "deny")

# What sending an Update can fail with while the goal runs (server or worker unreachable, update refused).
UPDATE_ERRORS = (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError)


class DecisionError(Exception):
    """A decision that was not taken; the message says why, in one line."""


class NotWaiting(DecisionError):
    """The request or escalation is not listed by the goal (decided, expired, unknown), or names a workflow that is
    neither the goal nor one of its subagents: nothing to sign."""


class DecisionRejected(DecisionError):
    """The goal's validator refused the decision (not an approver, wrong role, wrong hash, already decided...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecisionUndelivered(DecisionError):
    """The Update did not reach the goal (server or worker unreachable, goal closed): it may be sent again."""


def failure_text(err: Exception) -> str:
    """One line: the error type and the reason (a rejected Update's reason is in its cause)."""
    reason = getattr(err.cause, "message", err.cause) if isinstance(err, WorkflowUpdateFailedError) else err
    return f"{type(err).__name__}: {reason}"


def in_this_goal(workflow_id: str | None, goal_id: str) -> bool:
    """A listed request's workflow is this goal or one of its subagents (ids `<goal>/<step>...`): never sign for a
    workflow a forged report names."""
    return workflow_id is None or workflow_id == goal_id or workflow_id.startswith(goal_id + "/")


async def waiting_here(handle: WorkflowHandle, query: str, kind: type[Waiting], item_id: str) -> Waiting:
    """The approval request or escalation `item_id` as the goal lists it, to sign over; `NotWaiting` when the goal
    does not list it, or it names a workflow that is neither the goal nor one of its subagents."""
    try:
        listed = await handle.query(query, result_type=list[kind], rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise DecisionUndelivered(f"cannot read what waits in {handle.id} to sign it: {failure_text(err)}") from err
    item = next((i for i in listed if item_id in (getattr(i, "request_id", None), getattr(i, "escalation_id", None))), None)
    if item is None:
        raise NotWaiting(f"{item_id} is not waiting in {handle.id}: nothing to sign")
    if not in_this_goal(item.workflow_id, handle.id):
        raise NotWaiting(f"{item_id} names {item.workflow_id!r}, not {handle.id} or one of its subagents: not signed")
    if isinstance(item, ApprovalRequest) and not shows_its_action(item.tool, item.arguments_json, item.action_sha256):
        raise NotWaiting(f"{item_id} lists a tool and arguments that do not hash to its action {item.action_sha256}: not signed")
    return item


async def _update(handle: WorkflowHandle, name: str, payload: object, update_id: str, result_type: type):
    try:
        return await handle.execute_update(name, payload, id=update_id, result_type=result_type)
    except WorkflowUpdateFailedError as err:
        raise DecisionRejected(str(getattr(err.cause, "message", err.cause))) from err
    except (RPCError, RPCTimeoutOrCancelledError) as err:
        raise DecisionUndelivered(failure_text(err)) from err


async def decide(handle: WorkflowHandle, verdict: str, request_id: str, approver: str, comment: str = "",
                 action_sha256: str | None = None, key: bytes | None = None) -> ApprovalRequest:
    """Approve or deny (`verdict`) one request as `approver`; returns the request as decided so far. With `key`, the
    decision is signed over the request as the goal lists it (the workflow it waits in, its action hash)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
    signature = None
    if key is not None:
        request = await waiting_here(handle, PENDING_QUERY, ApprovalRequest, request_id)
        signature = approver_keys.signed(key, request.workflow_id or handle.id, request_id, request.action_sha256, verdict, approver, comment)
        action_sha256 = action_sha256 or request.action_sha256
    decision = ApprovalDecision(request_id=request_id, approver=approver, comment=comment, action_sha256=action_sha256, signature=signature)
    update = APPROVE_UPDATE if verdict == "approve" else DENY_UPDATE
    return await _update(handle, update, decision, f"{verdict}-{request_id}-{approver}", ApprovalRequest)


async def resolve(handle: WorkflowHandle, escalation_id: str, resolver: str, decision: EscalationDecision | str,
                  guidance: str = "", key: bytes | None = None) -> Escalation:
    """Resolve one escalation as `resolver`; with `key`, signed over the escalation as the goal lists it."""
    request = ResolveRequest(escalation_id=escalation_id, resolver=resolver, decision=decision, guidance=guidance)
    if key is not None:
        escalation = await waiting_here(handle, ESCALATIONS_QUERY, Escalation, escalation_id)
        request.signature = approver_keys.signed(key, escalation.workflow_id or handle.id, escalation.escalation_id,
                                                 escalation.output_sha256 or "", request.decision.value, resolver, guidance)
    return await _update(handle, RESOLVE_UPDATE, request, f"resolve-{escalation_id}-{resolver}", Escalation)
