"""Approvals and escalations across subagents (workflow code). A subagent reports what waits for people
in it (its own approval requests and escalations, and its children's) to its parent with the
`child_approvals` Signal whenever that changes; the parent lists those beside its own (`pending`,
`escalations`) and routes a decision on one down to the child that holds it (a Signal, so the child
applies its own policy's checks). A decision made through the parent returns once the child's next
report shows it applied, or fails with the child's refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.approvals import (
        APPROVAL_SIGNAL,
        CHILD_APPROVALS_SIGNAL,
        ApprovalDecision,
        ApprovalEventKind,
        ApprovalEvent,
        ApprovalRequest,
        ApprovalSignal,
        ApprovalStatus,
        ChildApprovals,
    )
    from contracts.escalations import RESOLVE_SIGNAL, Escalation, EscalationStatus, ResolveRequest
    from contracts.goal import ParentLink
    from core.policy import shows_its_action
    from workflows.approvals import ApprovalDesk, Verdict, check_signature, reject
    from workflows.escalations import RESOLUTION_REJECTED, EscalationDesk

# How long a decision routed to a subagent waits for the subagent's report before the Update fails.
ROUTED_DECISION_TIMEOUT = timedelta(seconds=60)
MAX_REPORTED_REFUSALS = 50


class ApprovalRouter:
    def __init__(self, desk: ApprovalDesk, escalations: EscalationDesk, parent: ParentLink | None) -> None:
        self.desk = desk
        self.escalation_desk = escalations
        self.parent = parent
        self.children: dict[str, ChildApprovals] = {}  # direct child workflow id -> its last report
        self.expected: set[str] = set()  # children this goal started: the only workflows whose reports count
        self._reports_received = 0
        self._reported: tuple = self._state()  # the empty view: nothing to report until something waits

    # --- what waits here and below ---------------------------------------------------------------

    def mirrored(self) -> list[ApprovalRequest]:
        """Every request reported by the subagents, each naming the workflow it waits in."""
        return [r for report in self.children.values() for r in report.requests]

    def pending(self) -> list[ApprovalRequest]:
        """Open requests of this goal, then those waiting in its subagents."""
        return self.desk.pending() + [r for r in self.mirrored() if r.status is ApprovalStatus.PENDING]

    def mirrored_escalations(self) -> list[Escalation]:
        return [e for report in self.children.values() for e in report.escalations]

    def open_escalations(self) -> list[Escalation]:
        """Escalations of this goal waiting for a person, then those waiting in its subagents."""
        mirrored = [e for e in self.mirrored_escalations() if e.status is EscalationStatus.PENDING]
        return self.escalation_desk.pending() + mirrored

    def _find_escalation(self, escalation_id: str) -> tuple[str, Escalation] | None:
        for child, report in self.children.items():
            for escalation in report.escalations:
                if escalation.escalation_id == escalation_id:
                    return child, escalation
        return None

    def check_resolve(self, request: ResolveRequest) -> None:
        """The `resolve` validator; the subagent holding a mirrored escalation checks the rest itself."""
        found = self._find_escalation(request.escalation_id)
        if found is None:
            self.escalation_desk.check(request)
        elif found[1].status is not EscalationStatus.PENDING:
            raise reject(f"escalation {request.escalation_id} is already {found[1].status.value}", RESOLUTION_REJECTED)

    async def resolve(self, request: ResolveRequest) -> Escalation:
        found = self._find_escalation(request.escalation_id)
        if found is None:
            return self.escalation_desk.resolve(request)
        self.check_resolve(request)
        child = found[0]

        def resolved() -> bool:
            current = self._find_escalation(request.escalation_id)
            return current is not None and current[1].status is not EscalationStatus.PENDING

        await self._confirm(child, request.escalation_id, request.resolver, resolved, self._forward_resolve(child, request))
        current = self._find_escalation(request.escalation_id)
        assert current is not None
        return current[1]

    async def resolve_signalled(self, request: ResolveRequest) -> None:
        """A resolution by Signal: applied or routed without waiting; a refusal is recorded, never applied."""
        try:
            found = self._find_escalation(request.escalation_id)
            if found is None:
                self.escalation_desk.resolve(request)
            else:
                self.check_resolve(request)
                await self._forward_resolve(found[0], request)
        except ApplicationError as err:
            self.desk.record(ApprovalEventKind.REFUSED, request_id=request.escalation_id, actor=request.resolver, detail=err.message)

    async def _forward_resolve(self, child: str, request: ResolveRequest) -> None:
        await workflow.get_external_workflow_handle(child).signal(RESOLVE_SIGNAL, request)

    def expect(self, child_id: str) -> None:
        """A subagent is about to start: its reports will count."""
        self.expected.add(child_id)

    def receive(self, report: ChildApprovals) -> None:
        if report.workflow_id not in self.expected:  # anyone can signal; only our own children report here
            self.desk.record(ApprovalEventKind.REFUSED, detail=f"approval report from {report.workflow_id!r}, not a subagent of this goal")
            return
        forged = [r.request_id for r in report.requests if not shows_its_action(r.tool, r.arguments_json, r.action_sha256)]
        if forged:  # what people would read is not what an approval binds: never listed, never routed
            self.desk.record(ApprovalEventKind.REFUSED, detail=f"report from {report.workflow_id!r} lists requests whose "
                             f"arguments do not hash to their action: {', '.join(forged[:5])}")
            report = report.model_copy(update={"requests": [r for r in report.requests if r.request_id not in forged]})
        self.children[report.workflow_id] = report
        self._reports_received += 1

    def forget(self, child_id: str) -> None:
        """A subagent run ended: what it still showed as pending can no longer be decided (its decided
        requests stay, for a decision routed just before it ended)."""
        report = self.children.get(child_id)
        if report is not None:
            decided = [r for r in report.requests if r.status is not ApprovalStatus.PENDING]
            settled = [e for e in report.escalations if e.status is not EscalationStatus.PENDING]
            self.children[child_id] = report.model_copy(update={"requests": decided, "escalations": settled})
            self._reports_received += 1

    def _find(self, request_id: str) -> tuple[str, ApprovalRequest] | None:
        """(direct child that reaches it, the request as last reported) for a subagent's request."""
        for child, report in self.children.items():
            for request in report.requests:
                if request.request_id == request_id:
                    return child, request
        return None

    # --- decisions: this goal's own, or routed down to the subagent holding the request ----------

    def check(self, decision: ApprovalDecision, verdict: Verdict) -> None:
        """The Update validator: refuse now what would be refused (a rejected Update leaves no trace)."""
        if self.check_routed(decision, verdict) is None:
            self.desk.check(decision, verdict)

    async def decide(self, decision: ApprovalDecision, verdict: Verdict) -> ApprovalRequest:
        if self.check_routed(decision, verdict) is None:
            return self.desk.decide(decision, verdict)
        return await self.route(decision, verdict)

    async def signalled(self, decision: ApprovalDecision, verdict: Verdict) -> None:
        """A decision by Signal: applied or routed without waiting; a refusal is recorded, never applied."""
        try:
            found = self.check_routed(decision, verdict)
            if found is None:
                self.desk.decide(decision, verdict)
            else:
                await self.forward(found[0], decision, verdict)
        except ApplicationError as err:
            self.desk.refuse(decision, err)

    def check_routed(self, decision: ApprovalDecision, verdict: Verdict = "approve") -> tuple[str, ApprovalRequest] | None:
        """None when the request is this goal's own; else what the parent can check itself (the child
        checks the rest against its own policy)."""
        found = self._find(decision.request_id)
        if found is None:
            return None
        child, request = found
        if request.status is not ApprovalStatus.PENDING:
            raise reject(f"request {request.request_id} is already {request.status.value}")
        if decision.action_sha256 is not None and decision.action_sha256 != request.action_sha256:
            raise reject(f"action_sha256 does not match request {request.request_id}: the action is not the one you reviewed")
        if verdict == "approve" and any(given.approver == decision.approver for given in request.approvals_given):
            raise reject(f"{decision.approver!r} has already approved request {request.request_id}; approvals must come from distinct approvers")
        approver = self.desk.policy.approver(decision.approver)
        if approver is not None:  # the child inherits this goal's approvers as defined: their signature is checked here too
            check_signature(self.desk.policy, approver, decision.signature, subject=request.request_id,
                            action_sha256=request.action_sha256, decision=verdict, asked_at=request.created_at,
                            note=decision.comment, workflow_id=request.workflow_id or child)
        return found

    async def route(self, decision: ApprovalDecision, verdict: Verdict) -> ApprovalRequest:
        """Send the decision to the child holding the request; wait for its report of the outcome."""
        found = self.check_routed(decision, verdict)
        assert found is not None, "route() is only called for a subagent's request"
        child = found[0]

        def applied() -> bool:
            current = self._find(decision.request_id)
            return current is not None and (
                current[1].status is not ApprovalStatus.PENDING or any(g.approver == decision.approver for g in current[1].approvals_given)
            )

        await self._confirm(child, decision.request_id, decision.approver, applied, self.forward(child, decision, verdict))
        current = self._find(decision.request_id)
        assert current is not None
        return current[1]

    async def _confirm(self, child: str, item_id: str, actor: str, applied: Callable[[], bool], send: Awaitable[None]) -> None:
        """Send a decision down; return once the child's report shows it applied, fail with the child's
        refusal of *this* person's decision, or fail after a timeout."""
        seen = {_refusal_key(e) for e in self.children[child].refusals}
        await send

        def refusal() -> str | None:
            fresh = [e for e in self.children[child].refusals
                     if _refusal_key(e) not in seen and e.request_id == item_id and e.actor == actor]
            return fresh[-1].detail if fresh else None

        try:
            await workflow.wait_condition(lambda: applied() or refusal() is not None, timeout=ROUTED_DECISION_TIMEOUT)
        except TimeoutError as err:
            raise ApplicationError(f"subagent {child} did not confirm the decision in time", type="ApprovalRouteTimeout") from err
        if not applied() and (refused := refusal()) is not None:
            raise reject(f"subagent {child} refused the decision: {refused}")

    async def forward(self, child: str, decision: ApprovalDecision, verdict: Verdict) -> None:
        signal = ApprovalSignal(
            request_id=decision.request_id, approver=decision.approver, decision=verdict,
            comment=decision.comment, action_sha256=decision.action_sha256, signature=decision.signature,
        )
        await workflow.get_external_workflow_handle(child).signal(APPROVAL_SIGNAL, signal)

    # --- child side: reports up ----------------------------------------------------------------

    def _state(self) -> tuple:
        """What the parent sees of this goal: a report goes up only when this changes (not for every audit
        event), and nothing at all while nothing waits for people here."""
        requests = tuple((r.request_id, r.status.value, len(r.approvals_given)) for r in self.desk.requests.values())
        refusals = sum(e.kind is ApprovalEventKind.REFUSED for e in self.desk.events)
        escalations = tuple((e.escalation_id, e.status.value) for e in self.escalation_desk.escalations.values())
        return requests, refusals, escalations, self._reports_received

    async def report_changes(self) -> None:
        """Runs for the life of a subagent: report to the parent whenever something changed."""
        if self.parent is None:
            return
        while True:
            await workflow.wait_condition(lambda: self._state() != self._reported)
            await self.report()

    async def report(self) -> None:
        """Send the parent the current view (no-op for a top-level goal or when nothing changed)."""
        state = self._state()
        if self.parent is None or state == self._reported:
            return
        here = workflow.info().workflow_id
        own = [r.model_copy(update={"workflow_id": here}) for r in self.desk.requests.values()]
        refusals = [e for e in self.desk.events if e.kind is ApprovalEventKind.REFUSED]
        refusals += [e for report in self.children.values() for e in report.refusals]
        escalations = [e.model_copy(update={"workflow_id": here}) for e in self.escalation_desk.escalations.values()]
        report = ChildApprovals(
            workflow_id=here, requests=own + self.mirrored(), escalations=escalations + self.mirrored_escalations(),
            refusals=refusals[-MAX_REPORTED_REFUSALS:],
        )
        try:
            await workflow.get_external_workflow_handle(self.parent.workflow_id).signal(CHILD_APPROVALS_SIGNAL, report)
        except ApplicationError as err:  # the parent is gone: nobody left to show the requests to
            workflow.logger.warning("could not report approvals to parent %s: %s", self.parent.workflow_id, err)
        self._reported = state  # only once sent: a send cut off by cancellation is sent again by the final report


def _refusal_key(event: ApprovalEvent) -> tuple:
    return (event.at, event.request_id, event.actor, event.detail)
