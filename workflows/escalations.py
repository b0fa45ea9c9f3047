"""The escalation desk inside `GoalWorkflow` (workflow code): an escalated step waits durably for a
human's `resolve` Update (validated like approvals: a rejected Update leaves no trace in history);
past the policy's timeout the outcome is abort, never accept."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.escalations import (
        Escalation,
        EscalationDecision,
        EscalationStatus,
        Resolution,
        ResolveRequest,
    )
    from contracts.continuation import EscalationState
    from contracts.events import EscalationOpened, EscalationResolved, short
    from contracts.policy import Policy
    from workflows.approvals import check_signature, human_approver, reject, wait_until
    from workflows.events import EventLog

RESOLUTION_REJECTED = "ResolutionRejected"
STEP_DECISIONS = [EscalationDecision.ACCEPT, EscalationDecision.RETRY, EscalationDecision.REPLAN, EscalationDecision.ABORT]
GOAL_DECISIONS = [EscalationDecision.ACCEPT, EscalationDecision.ABORT]


class EscalationDesk:
    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.policy = Policy()
        self.escalations: dict[str, Escalation] = {}
        self.retries: dict[str, int] = {}

    def state(self) -> EscalationState:
        return EscalationState(policy=self.policy, escalations=list(self.escalations.values()), retries=self.retries)

    def restore(self, state: EscalationState) -> None:
        self.policy, self.retries = state.policy, dict(state.retries)
        self.escalations = {e.escalation_id: e for e in state.escalations}

    def open_escalation(self, step_id: str, reason: str, output_sha256: str | None, decisions: list[EscalationDecision]) -> Escalation:
        now = workflow.now()
        if self.retries.get(step_id, 0) >= self.policy.escalations.max_retries_per_step:
            decisions = [d for d in decisions if d is not EscalationDecision.RETRY]
        escalation = Escalation(
            escalation_id=str(workflow.uuid4()),
            step_id=step_id,
            reason=reason,
            output_sha256=output_sha256,
            created_at=now,
            expires_at=now + timedelta(seconds=self.policy.escalations.timeout_seconds),
            decisions=decisions,
            resolver_roles=list(self.policy.escalations.resolver_roles),
        )
        self.escalations[escalation.escalation_id] = escalation
        self.events.emit(EscalationOpened, step_id=step_id, escalation_id=escalation.escalation_id, reason=short(reason),
                         decisions=[d.value for d in decisions])
        return escalation

    def pending(self) -> list[Escalation]:
        return [e for e in self.escalations.values() if e.status is EscalationStatus.PENDING]

    def check(self, request: ResolveRequest) -> None:
        """Raise ResolutionRejected unless this resolver may make this decision on this escalation now."""
        escalation = self.escalations.get(request.escalation_id)
        if escalation is None:
            raise reject(f"unknown escalation {request.escalation_id!r}", RESOLUTION_REJECTED)
        if escalation.status is not EscalationStatus.PENDING:
            raise reject(f"escalation {escalation.escalation_id} is already {escalation.status.value}", RESOLUTION_REJECTED)
        if workflow.now() >= escalation.expires_at:
            raise reject(f"escalation {escalation.escalation_id} timed out at {escalation.expires_at.isoformat()}", RESOLUTION_REJECTED)
        if request.decision not in escalation.decisions:
            allowed = ", ".join(d.value for d in escalation.decisions)
            raise reject(f"{request.decision.value!r} is not possible for this escalation (possible: {allowed})", RESOLUTION_REJECTED)
        resolver = human_approver(self.policy, request.resolver, error_type=RESOLUTION_REJECTED)
        check_signature(self.policy, resolver, request.signature, subject=escalation.escalation_id,
                        action_sha256=escalation.output_sha256 or "", decision=request.decision.value,
                        asked_at=escalation.created_at, note=request.guidance, error_type=RESOLUTION_REJECTED)
        if escalation.resolver_roles and not set(escalation.resolver_roles) & set(resolver.roles):
            raise reject(f"{resolver.name!r} lacks a resolver role: one of {escalation.resolver_roles}", RESOLUTION_REJECTED)

    def resolve(self, request: ResolveRequest) -> Escalation:
        self.check(request)
        escalation = self.escalations[request.escalation_id]
        escalation.resolution = Resolution(
            resolver=request.resolver, decision=request.decision, guidance=request.guidance, at=workflow.now()
        )
        escalation.status = EscalationStatus.RESOLVED
        if request.decision is EscalationDecision.RETRY:
            self.retries[escalation.step_id] = self.retries.get(escalation.step_id, 0) + 1
        self.events.emit(EscalationResolved, step_id=escalation.step_id, escalation_id=escalation.escalation_id,
                         decision=request.decision.value, resolver=request.resolver)
        return escalation

    async def wait(self, escalation: Escalation) -> EscalationDecision:
        """Wait durably for a resolution; the timeout's outcome is abort."""
        if not await wait_until(escalation.expires_at, lambda: escalation.status is not EscalationStatus.PENDING):
            escalation.status = EscalationStatus.TIMED_OUT
            self.events.emit(EscalationResolved, step_id=escalation.step_id, escalation_id=escalation.escalation_id,
                             decision=EscalationDecision.ABORT.value)
        return escalation.outcome or EscalationDecision.ABORT
