"""Approvals across subagents (workflow code). A subagent reports what waits in it (its own open
requests and its children's) to its parent with the `child_approvals` Signal whenever that changes;
the parent lists those beside its own (`pending`) and routes a decision on one down to the child that
holds it (a Signal, so the child applies its own policy's checks). A decision made through the parent
returns once the child's next report shows it applied, or fails with the child's refusal.
"""

from __future__ import annotations

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
    from contracts.goal import ParentLink
    from workflows.approvals import ApprovalDesk, Verdict, reject

# How long a decision routed to a subagent waits for the subagent's report before the Update fails.
ROUTED_DECISION_TIMEOUT = timedelta(seconds=60)
MAX_REPORTED_REFUSALS = 50


class ApprovalRouter:
    def __init__(self, desk: ApprovalDesk, parent: ParentLink | None) -> None:
        self.desk = desk
        self.parent = parent
        self.children: dict[str, ChildApprovals] = {}  # direct child workflow id -> its last report
        self.expected: set[str] = set()  # children this goal started: the only workflows whose reports count
        self._reports_received = 0
        self._reported: tuple[int, int] | None = None

    # --- what waits here and below ---------------------------------------------------------------

    def mirrored(self) -> list[ApprovalRequest]:
        """Every request reported by the subagents, each naming the workflow it waits in."""
        return [r for report in self.children.values() for r in report.requests]

    def pending(self) -> list[ApprovalRequest]:
        """Open requests of this goal, then those waiting in its subagents."""
        return self.desk.pending() + [r for r in self.mirrored() if r.status is ApprovalStatus.PENDING]

    def expect(self, child_id: str) -> None:
        """A subagent is about to start: its reports will count."""
        self.expected.add(child_id)

    def receive(self, report: ChildApprovals) -> None:
        if report.workflow_id not in self.expected:  # anyone can signal; only our own children report here
            self.desk.record(ApprovalEventKind.REFUSED, detail=f"approval report from {report.workflow_id!r}, not a subagent of this goal")
            return
        self.children[report.workflow_id] = report
        self._reports_received += 1

    def forget(self, child_id: str) -> None:
        """A subagent run ended: what it still showed as pending can no longer be decided (its decided
        requests stay, for a decision routed just before it ended)."""
        report = self.children.get(child_id)
        if report is not None:
            decided = [r for r in report.requests if r.status is not ApprovalStatus.PENDING]
            self.children[child_id] = report.model_copy(update={"requests": decided})
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
        if self.check_routed(decision) is None:
            self.desk.check(decision, verdict)

    async def decide(self, decision: ApprovalDecision, verdict: Verdict) -> ApprovalRequest:
        if self.check_routed(decision) is None:
            return self.desk.decide(decision, verdict)
        return await self.route(decision, verdict)

    async def signalled(self, decision: ApprovalDecision, verdict: Verdict) -> None:
        """A decision by Signal: applied or routed without waiting; a refusal is recorded, never applied."""
        try:
            found = self.check_routed(decision)
            if found is None:
                self.desk.decide(decision, verdict)
            else:
                await self.forward(found[0], decision, verdict)
        except ApplicationError as err:
            self.desk.refuse(decision, err)

    def check_routed(self, decision: ApprovalDecision) -> tuple[str, ApprovalRequest] | None:
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
        return found

    async def route(self, decision: ApprovalDecision, verdict: Verdict) -> ApprovalRequest:
        """Send the decision to the child holding the request; wait for its report of the outcome."""
        found = self.check_routed(decision)
        assert found is not None, "route() is only called for a subagent's request"
        child = found[0]
        seen = {_refusal_key(e) for e in self.children[child].refusals}
        await self.forward(child, decision, verdict)

        def refusal() -> str | None:
            fresh = [e for e in self.children[child].refusals if _refusal_key(e) not in seen
                     and e.request_id == decision.request_id and e.actor == decision.approver]
            return fresh[-1].detail if fresh else None

        def applied() -> bool:
            current = self._find(decision.request_id)
            return current is not None and (
                current[1].status is not ApprovalStatus.PENDING or any(g.approver == decision.approver for g in current[1].approvals_given)
            )

        try:
            await workflow.wait_condition(lambda: applied() or refusal() is not None, timeout=ROUTED_DECISION_TIMEOUT)
        except TimeoutError as err:
            raise ApplicationError(f"subagent {child} did not confirm the decision in time", type="ApprovalRouteTimeout") from err
        if not applied() and (refused := refusal()) is not None:
            raise reject(f"subagent {child} refused the decision: {refused}")
        current = self._find(decision.request_id)
        assert current is not None
        return current[1]

    async def forward(self, child: str, decision: ApprovalDecision, verdict: Verdict) -> None:
        signal = ApprovalSignal(
            request_id=decision.request_id, approver=decision.approver, decision=verdict,
            comment=decision.comment, action_sha256=decision.action_sha256,
        )
        await workflow.get_external_workflow_handle(child).signal(APPROVAL_SIGNAL, signal)

    # --- child side: reports up ----------------------------------------------------------------

    def _state(self) -> tuple[int, int]:
        return len(self.desk.events), self._reports_received

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
        report = ChildApprovals(workflow_id=here, requests=own + self.mirrored(), refusals=refusals[-MAX_REPORTED_REFUSALS:])
        try:
            await workflow.get_external_workflow_handle(self.parent.workflow_id).signal(CHILD_APPROVALS_SIGNAL, report)
        except ApplicationError as err:  # the parent is gone: nobody left to show the requests to
            workflow.logger.warning("could not report approvals to parent %s: %s", self.parent.workflow_id, err)
        self._reported = state  # only once sent: a send cut off by cancellation is sent again by the final report


def _refusal_key(event: ApprovalEvent) -> tuple:
    return (event.at, event.request_id, event.actor, event.detail)
