"""Contracts for approvals: the request a gated action creates, the decisions that answer it
(Update `approve`/`deny`, or Signal `approval_signal`), and the audit events they leave."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.escalations import Escalation
from contracts.policy import DecisionSignature

APPROVE_UPDATE = "approve"
DENY_UPDATE = "deny"
APPROVAL_SIGNAL = "approval_signal"
PENDING_QUERY = "pending"
CHILD_APPROVALS_SIGNAL = "child_approvals"  # a subagent reports its open requests to its parent


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    ESCALATED = "escalated"


class ApprovalGiven(BaseModel):
    approver: str
    roles: list[str] = Field(default_factory=list)
    comment: str = ""
    at: datetime


class ApprovalRequest(BaseModel):
    """One gated action waiting for humans; `action_sha256` binds every decision to the exact action."""

    request_id: str
    step_id: str
    tool: str
    arguments_json: str
    action_sha256: str = Field(description="SHA-256 of the canonical action: tool + canonical JSON arguments.")
    artifact_sha256: str | None = Field(default=None, description="Content hash of the artifact the action acts on.")
    requested_by: str = Field(description="The requesting principal (agent role).")
    rule: str
    reason: str
    created_at: datetime
    expires_at: datetime
    approvals_needed: int
    approver_roles: list[str] = Field(default_factory=list)
    sequence: list[str] = Field(default_factory=list)
    on_expiry: Literal["deny", "escalate"] = "deny"
    approvals_given: list[ApprovalGiven] = Field(default_factory=list)
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    comment: str = ""
    workflow_id: str | None = Field(
        default=None, description="Set when the request waits in a subagent (a child workflow), not in this goal."
    )


class ApprovalDecision(BaseModel):
    """Input of the `approve` and `deny` Updates."""

    request_id: str
    approver: str
    comment: str = ""
    action_sha256: str | None = Field(default=None, description="If given, must match the request's action.")
    signature: DecisionSignature | None = Field(default=None, description="Required when the approver has a key.")


class ApprovalSignal(BaseModel):
    """Payload of the `approval_signal` Signal: the same checks as the Updates, applied in the workflow."""

    request_id: str
    approver: str
    decision: Literal["approve", "deny"]
    comment: str = ""
    action_sha256: str | None = None
    signature: DecisionSignature | None = None


class ApprovalEventKind(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    REFUSED = "refused"  # a decision that failed the checks (only signals reach the history)
    POLICY_DENIED = "policy_denied"
    EXECUTED = "executed"


class ApprovalEvent(BaseModel):
    """One entry of the approval audit trail."""

    kind: ApprovalEventKind
    at: datetime
    request_id: str | None = None
    step_id: str | None = None
    tool: str | None = None
    actor: str | None = None
    detail: str = ""


class ChildApprovals(BaseModel):
    """Payload of `child_approvals`: what waits for people in a subagent (and in its own subagents): approval
    requests and escalations, each naming the workflow it waits in, and the decisions they refused, so the
    parent can list the open ones and route decisions down."""

    workflow_id: str
    requests: list[ApprovalRequest] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    refusals: list[ApprovalEvent] = Field(default_factory=list, description="The most recent refusals, oldest first.")
