"""The approval desk inside `GoalWorkflow` (workflow code): gated actions become requests that wait
durably for the approvals their rule demands, bound to the action's SHA-256.

Every decision goes through `check`, whether it arrives as an Update (whose validator calls it, so
a rejected Update leaves no trace in history) or as a Signal (a refusal is recorded as an event).
Nothing a model or tool says reaches this code: only Update/Signal payloads from clients do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.approvals import (
        ApprovalDecision,
        ApprovalEvent,
        ApprovalEventKind,
        ApprovalGiven,
        ApprovalRequest,
        ApprovalStatus,
    )
    from contracts.continuation import DeskArchive, DeskState
    from contracts.events import ApprovalDecided, ApprovalExpired, ApprovalRequested
    from contracts.policy import Approver, DecisionSignature, GateRule, Policy
    from contracts.archive import ContentRef
    from core.signatures import decision_message, verify
    from workflows import metrics
    from workflows.archive import archive_text, load_text
    from workflows.events import EventLog

Verdict = Literal["approve", "deny"]
REJECTED = "ApprovalRejected"
SIGNATURE_SKEW_SECONDS = 300  # clocks differ: a signature may be dated this far outside the request's lifetime


def reject(message: str, error_type: str = REJECTED) -> ApplicationError:
    """A refused decision (the Update fails, nothing changes); typed, never retried."""
    return ApplicationError(message, type=error_type, non_retryable=True)


async def wait_until(deadline: datetime, done: Callable[[], bool]) -> bool:
    """Wait durably (a timer in history) until `done()` or the deadline; False when the deadline came first."""
    try:
        await workflow.wait_condition(done, timeout=max(0.0, (deadline - workflow.now()).total_seconds()))
    except asyncio.TimeoutError:
        return done()
    return True


def human_approver(policy: Policy, name: str, requested_by: str | None = None, error_type: str = REJECTED) -> Approver:
    """The policy's approver called `name`; rejected when it is an agent principal (or the requester
    itself) or not an approver at all. Approvals and escalation resolutions both go through this."""
    if name == requested_by or policy.principal(name) is not None:
        raise reject(f"{name!r} is an agent principal (the requester cannot approve its own action)", error_type)
    approver = policy.approver(name)
    if approver is None:
        raise reject(f"{name!r} is not an approver in this goal's policy", error_type)
    return approver


def check_signature(
    policy: Policy, approver: Approver, signature: DecisionSignature | None, *, subject: str, action_sha256: str,
    decision: str, asked_at: datetime, note: str = "", error_type: str = REJECTED, workflow_id: str | None = None,
) -> None:
    """An approver with a key (or any, under `require_signatures`) must have signed exactly this decision on this
    request in this workflow, within its lifetime: a name alone, a signature by another key, or one replayed from
    another request, decision or goal is refused."""
    if approver.public_key is None:
        if policy.require_signatures:
            raise reject(f"{approver.name!r} has no public key and this goal's policy requires signed decisions", error_type)
        return
    if signature is None:
        raise reject(f"decisions by {approver.name!r} must be signed with their key (starter.py approve --as {approver.name})", error_type)
    now, asked = workflow.now().timestamp(), asked_at.timestamp()
    if not asked - SIGNATURE_SKEW_SECONDS <= signature.signed_at <= now + SIGNATURE_SKEW_SECONDS:
        raise reject(f"the signature's time ({signature.signed_at}) is outside this request's lifetime", error_type)
    where = workflow_id or workflow.info().workflow_id  # a subagent's request is signed for the workflow it waits in
    message = decision_message(where, subject, action_sha256, decision, approver.name, signature.signed_at, note)
    if not verify(approver.public_key, message, signature.signature):
        raise reject(f"the signature is not one by {approver.name!r} of this decision", error_type)


class ApprovalDesk:
    def __init__(self, event_log: EventLog) -> None:
        self.event_log = event_log  # the goal's typed events (`self.events` is the approval audit trail)
        self.policy = Policy()
        self.requests: dict[str, ApprovalRequest] = {}
        self.events: list[ApprovalEvent] = []
        self.archived: list[ContentRef] = []  # decided requests and audit handed over at continue-as-new
        self.decided: dict[str, ApprovalStatus] = {}  # their outcomes, so a late decision gets a precise refusal

    def state(self) -> DeskState:
        return DeskState(policy=self.policy, requests=list(self.requests.values()), events=self.events,
                         archived=self.archived, decided=self.decided)

    def restore(self, state: DeskState) -> None:
        self.policy, self.events = state.policy, list(state.events)
        self.requests = {r.request_id: r for r in state.requests}
        self.archived, self.decided = list(state.archived), dict(state.decided)

    async def archive(self, keep: set[str]) -> None:
        """Before a continue-as-new: decided requests (but those in `keep`) and the audit so far go to the content
        store, so what a goal carries does not grow with every decision and refusal it ever saw."""
        done = [r for r in self.requests.values() if r.status is not ApprovalStatus.PENDING and r.request_id not in keep]
        if not done and not self.events:
            return
        part = DeskArchive(requests=done, events=list(self.events))
        self.archived.append(await archive_text(part.model_dump_json(), f"continue-as-new: archive {len(done)} decided "
                                                f"approvals, {len(part.events)} audit events",
                                                f"continue-as-new: approvals part {len(self.archived) + 1}"))
        for request in done:
            self.decided[request.request_id] = request.status
            del self.requests[request.request_id]
        self.events = self.events[len(part.events):]  # events recorded while archiving stay

    async def everything(self) -> tuple[list[ApprovalRequest], list[ApprovalEvent]]:
        """Every request (by creation time) and the whole audit, archived parts included."""
        parts = [DeskArchive.model_validate_json(await load_text(ref, f"load approvals (part {n})"))
                 for n, ref in enumerate(self.archived, start=1)]
        requests = sorted([r for p in parts for r in p.requests] + list(self.requests.values()), key=lambda r: r.created_at)
        return requests, [e for p in parts for e in p.events] + self.events

    def record(self, kind: ApprovalEventKind, **fields: object) -> None:
        self.events.append(ApprovalEvent(kind=kind, at=workflow.now(), **fields))
        request = self.requests.get(str(fields.get("request_id")))
        tool = request.tool if request else fields.get("tool")  # a policy denial has no request, but names its tool
        metrics.approval_event(kind.value, str(tool) if tool else None)

    def pending(self) -> list[ApprovalRequest]:
        return [r for r in self.requests.values() if r.status is ApprovalStatus.PENDING]

    def open_request(
        self, *, step_id: str, tool: str, arguments_json: str, action_sha256: str, artifact_sha256: str | None,
        requested_by: str, rule: GateRule, reason: str,
    ) -> ApprovalRequest:
        now = workflow.now()
        request = ApprovalRequest(
            request_id=str(workflow.uuid4()),
            step_id=step_id,
            tool=tool,
            arguments_json=arguments_json,
            action_sha256=action_sha256,
            artifact_sha256=artifact_sha256,
            requested_by=requested_by,
            rule=rule.name,
            reason=reason,
            created_at=now,
            expires_at=now + timedelta(seconds=rule.expires_after_seconds),
            approvals_needed=rule.approvals,
            approver_roles=list(rule.approver_roles),
            sequence=list(rule.sequence),
            on_expiry=rule.on_expiry,
        )
        self.requests[request.request_id] = request
        self.record(ApprovalEventKind.REQUESTED, request_id=request.request_id, step_id=step_id, tool=tool,
                    actor=requested_by, detail=f"rule {rule.name}: {reason}; action {action_sha256}")
        self.event_log.emit(ApprovalRequested, step_id=step_id, request_id=request.request_id, tool=tool, action_sha256=action_sha256,
                            rule=rule.name, requested_by=requested_by, approvals_needed=rule.approvals, expires_at=request.expires_at)
        return request

    def check(self, decision: ApprovalDecision, verdict: Verdict) -> Approver:
        """Raise ApprovalRejected unless this approver may make this decision on this request now."""
        request = self.requests.get(decision.request_id)
        if request is None and decision.request_id in self.decided:
            raise reject(f"request {decision.request_id} is already {self.decided[decision.request_id].value}")
        if request is None:
            raise reject(f"unknown approval request {decision.request_id!r}")
        if request.status is not ApprovalStatus.PENDING:
            raise reject(f"request {request.request_id} is already {request.status.value}")
        if workflow.now() >= request.expires_at:
            raise reject(f"request {request.request_id} expired at {request.expires_at.isoformat()}")
        if decision.action_sha256 is not None and decision.action_sha256 != request.action_sha256:
            raise reject(f"action_sha256 does not match request {request.request_id}: the action is not the one you reviewed")
        approver = human_approver(self.policy, decision.approver, request.requested_by)
        check_signature(self.policy, approver, decision.signature, subject=request.request_id, action_sha256=request.action_sha256,
                        decision=verdict, asked_at=request.created_at, note=decision.comment)
        if verdict == "approve" and any(given.approver == approver.name for given in request.approvals_given):
            raise reject(f"{approver.name!r} has already approved request {request.request_id}; approvals must come from distinct approvers")
        if request.sequence:
            eligible = request.sequence if verdict == "deny" else [request.sequence[len(request.approvals_given)]]
        else:
            eligible = request.approver_roles
        if eligible and not set(eligible) & set(approver.roles):
            step = "" if verdict == "deny" or not request.sequence else f" for approval {len(request.approvals_given) + 1}"
            raise reject(f"{approver.name!r} lacks the required role{step}: one of {eligible}")
        return approver

    def decide(self, decision: ApprovalDecision, verdict: Verdict) -> ApprovalRequest:
        """Apply a checked decision; returns the request as it now stands."""
        approver = self.check(decision, verdict)
        request = self.requests[decision.request_id]
        if verdict == "deny":
            request.status, request.decided_by, request.comment = ApprovalStatus.DENIED, approver.name, decision.comment
            self.record(ApprovalEventKind.DENIED, request_id=request.request_id, actor=approver.name, detail=decision.comment)
            self._decided(request, approver.name, verdict)
            return request
        request.approvals_given.append(
            ApprovalGiven(approver=approver.name, roles=approver.roles, comment=decision.comment, at=workflow.now())
        )
        given = len(request.approvals_given)
        self.record(ApprovalEventKind.APPROVED, request_id=request.request_id, actor=approver.name,
                    detail=f"approval {given} of {request.approvals_needed}. {decision.comment}".strip())
        if given >= request.approvals_needed:
            request.status, request.decided_by = ApprovalStatus.APPROVED, approver.name
        self._decided(request, approver.name, verdict)
        return request

    def _decided(self, request: ApprovalRequest, approver: str, verdict: Verdict) -> None:
        self.event_log.emit(ApprovalDecided, step_id=request.step_id, request_id=request.request_id, action_sha256=request.action_sha256,
                            approver=approver, decision=verdict, status=request.status.value, approvals_given=len(request.approvals_given))

    def refuse(self, decision: ApprovalDecision, error: ApplicationError) -> None:
        self.record(ApprovalEventKind.REFUSED, request_id=decision.request_id, actor=decision.approver, detail=error.message)

    async def wait(self, request: ApprovalRequest) -> ApprovalStatus:
        """Wait durably for a decision; expiry ends in deny or escalation, never approval."""
        if not await wait_until(request.expires_at, lambda: request.status is not ApprovalStatus.PENDING):
            if request.status is ApprovalStatus.PENDING:
                escalate = request.on_expiry == "escalate"
                request.status = ApprovalStatus.ESCALATED if escalate else ApprovalStatus.EXPIRED
                self.record(ApprovalEventKind.ESCALATED if escalate else ApprovalEventKind.EXPIRED,
                            request_id=request.request_id, detail=f"no decision by {request.expires_at.isoformat()}")
                self.event_log.emit(ApprovalExpired, step_id=request.step_id, request_id=request.request_id,
                                    action_sha256=request.action_sha256, outcome=request.status.value)
        return request.status
