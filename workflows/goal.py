"""`GoalWorkflow`: one goal, planned, executed step by step, verified, as one durable workflow.

Plan (`plan_goal`) -> steps in dependency order, independent ones concurrently (`StepScheduler`, which
also runs fallbacks and revises the rest of the plan when a step fails; `StepExecutor` runs each) ->
the goal's success criteria checked on the final output (`verify_output`). Input is one
`GoalRequest`, output one `GoalResult`; the `status` query shows live progress.

A long goal continues as new (`GoalRequest.continue_as_new_after_events`/`_bytes`) where no step is mid-call,
carrying its state in the next run's request (`GoalCarry`): plan, finished steps (archived by reference),
ledger, approval and escalation desks, and the journals of steps parked while they waited for a person, so
what was pending stays answerable and the final result is the one a single run would have given.

Foreman's search attributes (`ForemanStatus`, `ForemanPendingApprovals`, ...) and the memo's summary follow the goal
(`Visibility`): upserted on change at coarse moments, and only those the namespace has (the plan says which).

Gated tool calls wait for humans: Updates `approve`/`deny` (validated: a rejected Update leaves no
trace in history), or Signal `approval_signal` (same checks; a refusal is recorded); `pending` lists
open requests.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.approvals import (
        APPROVAL_SIGNAL,
        APPROVE_UPDATE,
        CHILD_APPROVALS_SIGNAL,
        DENY_UPDATE,
        PENDING_QUERY,
        ApprovalDecision,
        ApprovalEventKind,
        ApprovalRequest,
        ApprovalSignal,
        ChildApprovals,
    )
    from contracts.continuation import GoalCarry
    from contracts.errors import ErrorType
    from contracts.events import EVENTS_QUERY, ContinuedAsNew, EventsPage, EventsQuery, GoalFinished, short
    from contracts.escalations import (
        ESCALATIONS_QUERY,
        GOAL_ESCALATION_STEP,
        RESOLVE_SIGNAL,
        RESOLVE_UPDATE,
        Escalation,
        EscalationDecision,
        ResolveRequest,
    )
    from contracts.goal import (
        GOAL_WORKFLOW,
        STATUS_QUERY,
        Continuation,
        GoalProgress,
        GoalRequest,
        GoalResult,
        GoalStatus,
        StepProgress,
        StepStatus,
    )
    from contracts.plan import PLAN_GOAL_ACTIVITY, Plan, PlanRequest
    from contracts.verify import Decision
    from core.catalogue import ToolCatalogue
    from core.hashing import sha256_text
    from core.options import PLANNER, PLAYBOOK_PLANNER
    from core.policy import with_inherited
    from workflows.approval_router import ApprovalRouter
    from workflows.approvals import ApprovalDesk
    from workflows.archive import bounded
    from workflows.escalations import GOAL_DECISIONS, EscalationDesk
    from workflows.events import EventLog
    from workflows.executor import StepExecutor
    from workflows.failures import BudgetExceeded, WorkflowCodeError, failure_message
    from workflows.journal import Journal
    from workflows import metrics
    from workflows.ledger import GoalLedger
    from workflows.scheduler import StepScheduler
    from workflows.steps import StepContext, step_runners
    from workflows.routing import Route, SandboxRoute
    from workflows.tool_gate import ToolCaller, ToolGate
    from workflows.verification import Verification
    from workflows.visibility import Visibility


def handed_on(carry: GoalCarry, continued_run_id: str | None) -> bool:
    """The carry came from the run this one continues: only the server sets `continued_run_id`, and the carry must
    name that very run (a cron schedule's next run has one too), so a client cannot make up a goal's state (approvals!)."""
    return continued_run_id is not None and bool(carry.continuations) and carry.continuations[-1].run_id == continued_run_id


def from_its_parent(request: GoalRequest, parent_workflow_id: str | None) -> bool:
    """A parent link, inherited approvers (who may approve, with which key) and escalation policy (who may resolve)
    come only from the parent goal that started this one as its child: a client could otherwise name its own."""
    if request.parent is None and not request.inherited_approvers and request.inherited_escalations is None:
        return True
    return request.parent is not None and request.parent.workflow_id == parent_workflow_id


# An input that fails GoalRequest validation fails the run with a typed error instead of retrying forever.
@workflow.defn(name=GOAL_WORKFLOW, failure_exception_types=[ValidationError])
class GoalWorkflow:
    @workflow.init
    def __init__(self, request: GoalRequest) -> None:
        self._phase = "planning"
        self._progress: dict[str, StepProgress] = {}
        self._events = EventLog()
        self._ledger = GoalLedger(request.budget, self._events)
        self._desk = ApprovalDesk(self._events)
        self._escalations = EscalationDesk(self._events)
        self._approvals = ApprovalRouter(self._desk, self._escalations, request.parent)
        self._journal = Journal()
        self._route = SandboxRoute()  # the plan names the sandbox task queue (set in _plan, or restored)
        self._model_route = Route()  # and the model-call task queue, the same way
        self._verification = Verification(request, self._ledger, self._progress, self._journal, self._events, self._route)
        catalogue = ToolCatalogue()  # the MCP tools arrive with the plan (an activity result), never from the worker's config
        context = StepContext(
            request=request,
            ledger=self._ledger,
            progress=self._progress,
            approvals=self._desk,
            router=self._approvals,
            tools=ToolCaller(ToolGate(self._desk, self._ledger, self._progress, request, self._journal, catalogue, self._events),
                             self._route),
            verification=self._verification,
            journal=self._journal,
            catalogue=catalogue,
            events=self._events,
            model_route=self._model_route,
        )
        self._executor = StepExecutor(context, step_runners(context), self._escalations, can_replan=lambda: self._scheduler.can_revise())
        self._scheduler = StepScheduler(request, self._executor, self._ledger, self._progress, catalogue, self._events)
        self._continuations: list[Continuation] = []
        self._visibility = Visibility(request.goal, self._ledger, self._approvals, lambda: len(self._scheduler.results))
        self._following: asyncio.Task[None] | None = None  # the search attributes follow the goal while it executes
        self._resume_refused = request.resume is not None and not handed_on(request.resume, workflow.info().continued_run_id)
        parent = workflow.info().parent
        self._parent_refused = not from_its_parent(request, parent.workflow_id if parent else None)
        if request.resume is not None and not self._resume_refused:
            self._restore(request.resume)  # here, not in run(): queries and updates see the carried state at once

    def _restore(self, carry: GoalCarry) -> None:
        self._phase = carry.phase
        self._progress.update({p.step_id: p for p in carry.progress})
        self._ledger.restore(carry.ledger)
        self._desk.restore(carry.desk)
        self._escalations.restore(carry.escalations)
        self._journal.restore(carry.journals)
        self._scheduler.restore(carry.scheduler)
        self._route.task_queue = carry.scheduler.plan.sandbox_task_queue
        self._model_route.task_queue = carry.scheduler.plan.model_task_queue
        self._continuations = list(carry.continuations)
        self._events.restore(carry.events_seq, [c.run_id for c in carry.continuations])

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> GoalProgress:
        return GoalProgress(
            workflow_id=workflow.info().workflow_id,
            phase=self._phase,
            steps=list(self._progress.values()),
            usage=self._ledger.usage,
            budget=self._ledger.budget,
            escalations=list(self._escalations.escalations.values()),
            continuations=self._continuations,
        )

    @workflow.query(name=EVENTS_QUERY)
    def events(self, query: EventsQuery | None = None) -> EventsPage:
        """The goal's events after `query.after` (a seq), in order, one page of at most `query.limit` (default: the first 200)."""
        return self._events.page(query or EventsQuery())

    @workflow.query(name=PENDING_QUERY)
    def pending(self) -> list[ApprovalRequest]:
        """Open requests of this goal and of its subagents (those name the workflow they wait in)."""
        return self._approvals.pending()

    @workflow.update(name=APPROVE_UPDATE)
    async def approve(self, decision: ApprovalDecision) -> ApprovalRequest:
        return await self._approvals.decide(decision, "approve")

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._approvals.check(decision, "approve")

    @workflow.update(name=DENY_UPDATE)
    async def deny(self, decision: ApprovalDecision) -> ApprovalRequest:
        return await self._approvals.decide(decision, "deny")

    @deny.validator
    def _validate_deny(self, decision: ApprovalDecision) -> None:
        self._approvals.check(decision, "deny")

    @workflow.signal(name=CHILD_APPROVALS_SIGNAL)
    def child_approvals(self, report: ChildApprovals) -> None:
        """A subagent's report of its approval requests (sent by Foreman's child workflows only)."""
        self._approvals.receive(report)

    @workflow.query(name=ESCALATIONS_QUERY)
    def escalations(self) -> list[Escalation]:
        """Escalations waiting for a human's `resolve`: this goal's, then its subagents' (naming their workflow)."""
        return self._approvals.open_escalations()

    @workflow.update(name=RESOLVE_UPDATE)
    async def resolve(self, request: ResolveRequest) -> Escalation:
        return await self._approvals.resolve(request)

    @resolve.validator
    def _validate_resolve(self, request: ResolveRequest) -> None:
        self._approvals.check_resolve(request)

    @workflow.signal(name=RESOLVE_SIGNAL)
    async def resolve_signal(self, raw: RawValue) -> None:
        """`resolve` for clients that can only signal (and for a parent routing a resolution down): the same
        checks; a refused or malformed signal is recorded, never applied."""
        try:
            request = workflow.payload_converter().from_payload(raw.payload, ResolveRequest)
        except Exception as err:  # noqa: BLE001 - any decoding failure is a refusal with its reason
            self._desk.record(ApprovalEventKind.REFUSED, detail=f"malformed resolve signal: {str(err)[:300]}")
            return
        await self._approvals.resolve_signalled(request)

    @workflow.signal(name=APPROVAL_SIGNAL)
    async def approval_signal(self, raw: RawValue) -> None:
        """For clients that can only signal: the same checks; a refused signal (malformed ones included)
        is recorded, never applied. Decoded here, so a bad payload is not dropped unseen by the SDK."""
        try:
            signal = workflow.payload_converter().from_payload(raw.payload, ApprovalSignal)
        except Exception as err:  # noqa: BLE001 - any decoding failure is a refusal with its reason
            self._desk.record(ApprovalEventKind.REFUSED, detail=f"malformed approval signal: {str(err)[:300]}")
            return
        decision = ApprovalDecision(
            request_id=signal.request_id, approver=signal.approver, comment=signal.comment, action_sha256=signal.action_sha256,
            signature=signal.signature,
        )
        await self._approvals.signalled(decision, signal.decision)

    @workflow.run
    async def run(self, request: GoalRequest) -> GoalResult:
        try:
            return await self._run(request)
        except ValidationError as err:
            # Input was validated before run(); a ValidationError now is a bug in workflow code. It must fail
            # the workflow task (a fixed worker resumes the goal), not the run as failure_exception_types would.
            raise WorkflowCodeError(f"workflow code raised {err!r}") from err

    async def _run(self, request: GoalRequest) -> GoalResult:
        if self._resume_refused:
            raise ApplicationError("`resume` is set only by continue-as-new; start a goal without it",
                                   type=ErrorType.RESUME_REFUSED.value, non_retryable=True)
        if self._parent_refused:
            raise ApplicationError("`parent` and `inherited_approvers` are set only by a parent goal for its subagent; "
                                   "start a goal without them", type=ErrorType.PARENT_REFUSED.value, non_retryable=True)
        if request.resume is None:
            metrics.goal_started()
        reporting = asyncio.create_task(self._approvals.report_changes())  # a subagent keeps its parent informed
        result = GoalResult(workflow_id=workflow.info().workflow_id, goal=request.goal, status=GoalStatus.FAILED)
        plan = self._scheduler.plan if request.resume else await self._plan(request, result)
        if plan is not None:
            result.plan = plan
            self._phase = "executing"
            self._visibility.planned(plan)
            self._following = asyncio.create_task(self._visibility.follow(lambda: self._phase))
            if request.resume is None:
                self._scheduler.start(plan)
            if not await self._scheduler.run():
                await self._continue_as_new(request, reporting)
            result.steps = await self._scheduler.full_results()
            result.memories = [c.memory for s in result.steps for c in s.tool_calls if c.memory]
            result.memories += [m for s in result.steps for m in s.child_memories]
            result.plan_revisions = self._scheduler.revisions
            await self._finish(request, result)
        self._phase = "done"
        if self._following is not None:
            self._following.cancel()
        self._visibility.upsert(result.status.value)  # final: completed, failed, escalated or budget_exceeded
        metrics.goal_finished(result.status.value, result.plan, self._ledger.usage.cost_usd)
        self._ledger.usage.wall_seconds = (workflow.now() - self._ledger.started).total_seconds()
        result.usage, result.budget = self._ledger.usage, self._ledger.budget
        result.approvals, result.audit = await self._desk.everything()
        result.escalations = list(self._escalations.escalations.values())
        result.continuations = self._continuations
        await workflow.wait_condition(workflow.all_handlers_finished)  # no update is cut off by completion
        usage = self._ledger.usage  # told last: a decision a handler was still applying comes before it
        self._events.emit(GoalFinished, status=result.status.value, error=short(result.error) if result.error else None,
                          model_calls=usage.model_calls, tool_calls=usage.tool_calls, cost_usd=usage.cost_usd)
        self._events.closed = result.status.value
        reporting.cancel()
        await self._approvals.report()  # the parent sees the final state of every request
        return await bounded(result, self._scheduler.output_step)  # a large result goes to the content store in parts

    async def _continue_as_new(self, request: GoalRequest, reporting: asyncio.Task[None]) -> None:
        """Hand the goal to a fresh run (raises ContinueAsNewError): the scheduler has stopped where no step is
        mid-call; what it parked resumes first there."""
        if self._following is not None:
            self._following.cancel()  # the next run upserts what changed since
        journals = [j.model_copy(deep=True) for j in self._journal.parked(self._scheduler.parked)]
        phase, self._phase = self._phase, "continuing as new"
        state = await self._scheduler.checkpoint()
        await self._desk.archive(keep={j.awaiting_request_id for j in journals if j.awaiting_request_id})
        await workflow.wait_condition(workflow.all_handlers_finished)  # decisions arriving now are carried, not cut off
        reporting.cancel()  # the next run reports afresh to a parent
        info = workflow.info()
        self._continuations.append(Continuation(
            run=len(self._continuations) + 1, run_id=info.run_id, history_events=info.get_current_history_length(),
            history_bytes=info.get_current_history_size(), at=workflow.now(), finished_steps=len(state.finished),
            parked_steps=list(state.parked),
        ))
        ended = self._continuations[-1]
        self._events.emit(ContinuedAsNew, run=ended.run, run_id=ended.run_id, history_events=ended.history_events,
                          parked_steps=ended.parked_steps)
        self._events.closed = "continued_as_new"
        carry = GoalCarry(
            phase=phase, scheduler=state, progress=list(self._progress.values()), ledger=self._ledger.state(),
            desk=self._desk.state(), escalations=self._escalations.state(), journals=journals, continuations=self._continuations,
            events_seq=self._events.seq,
        )
        self._continuations[-1].carried_bytes = len(carry.model_dump_json().encode())
        workflow.logger.info("continuing as new after %d events (%d steps parked)", info.get_current_history_length(), len(state.parked))
        # The server carries the search attributes over, not an upserted memo: that is handed on here.
        workflow.continue_as_new(request.model_copy(update={"resume": carry}), memo=self._visibility.memo())

    async def _plan(self, request: GoalRequest, result: GoalResult) -> Plan | None:
        try:
            planning = PlanRequest(goal=request.goal, playbook=request.playbook, spec=request.models.planner)
            # Planning ends by the goal's deadline too, queued or retrying, as model calls do.
            if request.playbook:  # read from the worker's playbooks, no model call: a local activity
                plan = await workflow.execute_local_activity(
                    PLAN_GOAL_ACTIVITY, planning, result_type=Plan, summary=f"plan: {request.playbook}",
                    **PLAYBOOK_PLANNER.within(self._ledger.time_left()).kwargs())
            else:
                plan = await workflow.execute_activity(
                    PLAN_GOAL_ACTIVITY, planning, result_type=Plan, summary="plan: LLM planner",
                    **PLANNER.within(self._ledger.time_left()).kwargs())
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == ErrorType.UNKNOWN_PLAYBOOK:
                # Bad input: fail the run with the typed error rather than pretend it was attempted.
                self._visibility.upsert(GoalStatus.FAILED.value)  # a status set at start must not stay "planning"
                metrics.goal_finished(GoalStatus.FAILED.value, None, self._ledger.usage.cost_usd)
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from err
            try:
                self._ledger.cut_off(err)
            except BudgetExceeded as over:  # the deadline is why: the goal ends over budget, as after a model call
                result.status, result.error = GoalStatus.BUDGET_EXCEEDED, str(over)
                return None
            result.error = f"planning failed: {failure_message(err)}"
            return None
        self._events.planned(plan, request.models.planner)
        self._ledger.charge_model(plan.usage, plan.cost_usd, calls=plan.model_calls)
        self._route.task_queue = plan.sandbox_task_queue
        self._model_route.task_queue = plan.model_task_queue
        self._desk.policy = self._escalations.policy = with_inherited(
            plan.policy, request.inherited_gates, request.inherited_approvers, request.inherited_require_signatures,
            request.inherited_escalations)
        for step in plan.steps:
            self._progress[step.id] = StepProgress.pending(step)
        return plan

    async def _finish(self, request: GoalRequest, result: GoalResult) -> None:
        if self._ledger.exceeded:
            result.status, result.error = GoalStatus.BUDGET_EXCEEDED, self._ledger.exceeded
            return
        standing = [s for s in result.steps if s.superseded_by is None]  # a replaced step's failure was dealt with
        escalated = [s.step_id for s in standing if s.status is StepStatus.ESCALATED]
        unfinished = [s.step_id for s in standing if s.status is not StepStatus.COMPLETED]
        if escalated:
            result.status, result.error = GoalStatus.ESCALATED, f"steps escalated for a human: {escalated}"
            return
        if unfinished:
            errors = "; ".join([f"{s.step_id}: {s.error}" for s in standing if s.error] + self._scheduler.revision_errors)
            result.error = f"steps did not complete: {unfinished} ({errors})"
            return
        result.output = await self._scheduler.output_of(self._scheduler.output_step)  # a fallback's output stands in
        if request.success_criteria:
            self._phase = "verifying goal"
            try:
                verdict = await self._verification.verify(
                    GOAL_ESCALATION_STEP, request.goal, result.output, list(request.success_criteria), "goal: success criteria"
                )
            except (ActivityError, BudgetExceeded) as err:
                result.error = f"success criteria could not be checked: {failure_message(err)}"
                return
            result.final_verdict = verdict
            if verdict.decision is Decision.ESCALATE and await self._goal_escalation_accepted(verdict.reasons, result):
                verdict = verdict.model_copy(update={"decision": Decision.ACCEPT})
            if verdict.decision is not Decision.ACCEPT:
                result.status = GoalStatus.ESCALATED if verdict.decision is Decision.ESCALATE else GoalStatus.FAILED
                result.error = "success criteria not met: " + "; ".join(verdict.reasons)
                return
        result.status = GoalStatus.COMPLETED

    async def _goal_escalation_accepted(self, reasons: list[str], result: GoalResult) -> bool:
        """The success criteria escalated: a human accepts the output as it is, or the goal ends escalated."""
        self._phase = "awaiting resolution"
        escalation = self._escalations.open_escalation(
            GOAL_ESCALATION_STEP, "success criteria escalated: " + "; ".join(reasons), output_sha256=sha256_text(result.output),
            decisions=GOAL_DECISIONS,
        )
        return await self._escalations.wait(escalation) is EscalationDecision.ACCEPT
