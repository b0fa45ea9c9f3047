"""Contracts for escalations: a step that needs a human (the verifier said escalate, or an approval
expired into escalation) waits for the Update `resolve`; the `escalations` query lists them.

A resolution decides what happens to the step: `accept` its output as it stands, `retry` it with the
resolver's guidance added to its instruction, `replan` the rest of the goal, or `abort`. Waiting past
the policy's timeout means abort, never accept.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.policy import DecisionSignature

RESOLVE_UPDATE = "resolve"
RESOLVE_SIGNAL = "resolve_signal"  # the same decision for clients (and parent goals) that can only signal
ESCALATIONS_QUERY = "escalations"
GOAL_ESCALATION_STEP = "goal"  # the step id of an escalation raised by the goal's success criteria


class EscalationDecision(StrEnum):
    ACCEPT = "accept"
    RETRY = "retry"
    REPLAN = "replan"
    ABORT = "abort"


class EscalationStatus(StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    TIMED_OUT = "timed_out"


class Resolution(BaseModel):
    resolver: str
    decision: EscalationDecision
    guidance: str = ""
    at: datetime


class Escalation(BaseModel):
    """One step waiting for a human decision."""

    escalation_id: str
    step_id: str
    reason: str
    output_sha256: str | None = Field(default=None, description="The step's output when it escalated, if any.")
    created_at: datetime
    expires_at: datetime
    decisions: list[EscalationDecision] = Field(description="What a resolver may decide for this escalation.")
    resolver_roles: list[str] = Field(default_factory=list, description="Resolver must hold one; empty: any approver.")
    status: EscalationStatus = EscalationStatus.PENDING
    resolution: Resolution | None = None
    workflow_id: str | None = Field(default=None, description="Set when it waits in a subagent, not in this goal.")

    @property
    def outcome(self) -> EscalationDecision | None:
        """The decision in force: the resolver's, abort once timed out, None while pending."""
        if self.status is EscalationStatus.TIMED_OUT:
            return EscalationDecision.ABORT
        return self.resolution.decision if self.resolution else None


class ResolveRequest(BaseModel):
    """Payload of the `resolve` Update."""

    escalation_id: str
    resolver: str = Field(min_length=1, max_length=200)
    decision: EscalationDecision
    guidance: str = Field(default="", max_length=4_000, description="Added to the step's instruction on retry.")
    signature: DecisionSignature | None = Field(default=None, description="Required when the resolver has a key.")
