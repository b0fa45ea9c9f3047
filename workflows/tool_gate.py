"""The tool gate (workflow code): every tool call, whoever asks for it (the model, a prefetch, a
tool step), passes here before anything is scheduled.

In order: the tool must be in the goal's catalogue (built-ins, plus the MCP tools its plans recorded) and
allowed to the step; arguments must validate against its model (an MCP tool's: its recorded JSON schema), and the fields the model may not set are stamped (who is calling, for memory; whether the
worker may answer from its call cache, for cacheable tools); a named artifact must match; policy must
allow it, or, when a gate rule matches, the approvals it demands must arrive; the budget must have room. A refusal schedules nothing and is
returned as a typed error for the model; only an admitted call reaches `ToolCaller.run`.

Every admitted call of a tool that changes something gets its idempotency key stamped here (`core.idempotency`:
the goal, the step and the call's index in it, the action), like the cache flag: the model cannot set it. The
index counts every call a step makes, refused and journalled ones included, so a step resumed from its journal
after a continue-as-new gives its next call the index (and key) it had before.

A result the worker's cache answered still counts as a tool call against the budget (it is one more
action the agent took, and a goal must end the same way whether the cache is warm or cold); it is also
counted in `usage.cache_hits.tool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from contracts.approvals import ApprovalEventKind, ApprovalRequest, ApprovalStatus
    from contracts.continuation import EntryKind, JournalEntry
    from contracts.errors import ErrorType
    from contracts.events import PolicyDecided, ToolCalled, short
    from contracts.goal import GoalRequest, StepProgress, StepStatus, ToolCallRecord
    from contracts.llm import CacheUse, ToolCallRequest
    from contracts.plan import PlanStep
    from contracts.policy import GateRule, Principal
    from contracts.mcp import McpCall
    from contracts.tools import CACHE_FLAG, KEY_FIELD, CallContext, KeyedArgs, ToolArgs, ToolResult
    from core.artifacts import artifact_mismatch
    from core.catalogue import Tool, ToolCatalogue
    from core.idempotency import CallSite, idempotency_key
    from core.policy import action_sha256, canonical_arguments, evaluate
    from core.tools import ArgumentsInvalid, ToolSpec
    from workflows.approvals import ApprovalDesk
    from workflows.events import EventLog
    from workflows.failures import StepEscalated, WorkflowCodeError, failure_message
    from workflows.journal import Journal
    from workflows.ledger import GoalLedger
    from workflows.model_calls import cache_use
    from workflows.routing import SandboxRoute


@dataclass(frozen=True)
class Admitted:
    """A call that may run: its catalogue entry, validated arguments and the approval it got, if gated."""

    spec: Tool
    args: ToolArgs | McpCall
    approval: ApprovalRequest | None = None


@dataclass(frozen=True)
class Refused:
    """A call that must not run, with the error the model is told."""

    error: str
    approval: ApprovalRequest | None = None


class ToolGate:
    def __init__(
        self, desk: ApprovalDesk, ledger: GoalLedger, progress: dict[str, StepProgress], request: GoalRequest, journal: Journal,
        catalogue: ToolCatalogue, events: EventLog,
    ) -> None:
        self.events = events
        self.desk = desk
        self.ledger = ledger
        self.progress = progress
        self.request = request  # the goal's `cache` switch
        self.scopes: list[Principal] = request.scopes  # a subagent's outer limits, from its request; never from a model
        self.journal = journal
        self.catalogue = catalogue  # built-ins plus the MCP tools the goal's plans recorded

    async def admit(self, step: PlanStep, call: ToolCallRequest, allowed: set[str], saw_untrusted: bool = False) -> Admitted | Refused:
        """Validate, check policy, wait for approval if gated, reserve budget. Raises StepEscalated when
        an approval expires into escalation, BudgetExceeded when the budget is spent."""
        spec = self.catalogue.get(call.name)
        if spec is None or spec.name not in allowed:
            return Refused(f"ToolNotAllowed: tool {call.name!r} is not available to this step (allowed: {sorted(allowed)})")
        try:
            args = spec.parse(call.arguments_json)
        except ArgumentsInvalid as err:
            return Refused(f"{ErrorType.TOOL_ARGUMENTS_INVALID.value}: {err}")
        if isinstance(spec, ToolSpec) and "context" in spec.args_model.model_fields:  # who is calling: stamped here, whatever the model sent
            untrusted = saw_untrusted or self.request.written_after_untrusted  # a goal a model wrote after reading outputs
            args = args.model_copy(update={"context": CallContext(
                workflow_id=workflow.info().workflow_id, step_id=step.id, role=step.role, saw_untrusted=untrusted,
            )})
        if spec.cacheable:  # may the worker answer from its call cache: the goal's and the step's switches, whatever the model sent
            args = args.model_copy(update={CACHE_FLAG: cache_use(self.request, step) is not CacheUse.OFF})
        problem = artifact_mismatch(args)
        if problem:
            return Refused(f"{ErrorType.ARTIFACT_MISMATCH.value}: {problem}")
        decision = evaluate(self.desk.policy, step.role, spec.name, spec.side_effect, args, self.scopes)
        self.events.emit(PolicyDecided, step_id=step.id, tool=spec.name, role=step.role, outcome=decision.outcome,
                         rule=decision.rule.name if decision.rule else None, reason=short(decision.reason))
        if decision.outcome == "deny":
            self.desk.record(ApprovalEventKind.POLICY_DENIED, step_id=step.id, tool=call.name, actor=step.role, detail=decision.reason)
            return Refused(f"{ErrorType.POLICY_DENIED.value}: {decision.reason}")
        approval = None
        if decision.outcome == "gate" and decision.rule is not None:
            approval = self._request(step, spec, args, decision.rule, decision.reason)
            self.progress[step.id].status = StepStatus.AWAITING_APPROVAL
            self.journal.awaiting(step.id, approval.request_id)
            status = await self.desk.wait(approval)
            self.journal.awaiting(step.id, None)
            self.progress[step.id].status = StepStatus.RUNNING
            if status is ApprovalStatus.ESCALATED:
                raise StepEscalated(f"approval request {approval.request_id} for {call.name} expired and was escalated")
            if status is not ApprovalStatus.APPROVED:
                return Refused(f"{ErrorType.APPROVAL_DENIED.value}: request {approval.request_id} was {status.value}", approval)
        self.ledger.before_tool_call()
        return Admitted(spec, args, approval)

    def _request(self, step: PlanStep, spec: Tool, args: ToolArgs | McpCall, rule: GateRule, reason: str) -> ApprovalRequest:
        """A new approval request, or, for a step resumed after continue-as-new, the one it was waiting on
        (decided meanwhile, perhaps), which must be for this very action."""
        action = action_sha256(spec.name, args)
        carried = self.journal.awaited_request(step.id)
        if carried is not None:
            request = self.desk.requests[carried]
            if request.action_sha256 != action:
                raise WorkflowCodeError(f"step {step.id!r} resumed to another action than request {carried} was for")
            return request
        return self.desk.open_request(
            step_id=step.id, tool=spec.name, arguments_json=canonical_arguments(args), action_sha256=action,
            artifact_sha256=getattr(args, "expected_sha256", None), requested_by=step.role, rule=rule, reason=reason,
        )


def keyed(spec: Tool, args: ToolArgs | McpCall, step_id: str, call_index: int) -> ToolArgs | McpCall:
    """`args` with this call's idempotency key stamped if the call changes something, else none (whatever the model sent)."""
    if not spec.keyed:
        return args
    if isinstance(args, KeyedArgs) and not args.has_effect():
        return args.model_copy(update={KEY_FIELD: None})
    info = workflow.info()
    site = CallSite(namespace=info.namespace, workflow_id=info.workflow_id, first_run_id=info.first_execution_run_id,
                    step_id=step_id, call_index=call_index)
    return args.model_copy(update={KEY_FIELD: idempotency_key(site, spec.name, args)})


class ToolCaller:
    """Runs tool calls through the gate, each admitted one as its own activity; records the outcome.
    A tool that runs code goes to the sandbox task queue `route` names, with its own timeout."""

    def __init__(self, gate: ToolGate, route: SandboxRoute | None = None) -> None:
        self.gate = gate
        self.route = route or SandboxRoute()
        self.calls: dict[str, int] = {}  # step id -> tool calls it has made in this run (journalled ones replayed included)

    async def call(
        self, step: PlanStep, call: ToolCallRequest, allowed: set[str], saw_untrusted: bool = False
    ) -> tuple[ToolCallRecord, ToolResult | None]:
        """`saw_untrusted`: the step has had tool output or other agents' output in its context (memory records it).
        A resumed step's completed call comes from its journal: nothing is gated, charged, run or told twice."""
        journal = self.gate.journal
        index = self.calls.get(step.id, 0)
        self.calls[step.id] = index + 1
        replayed = journal.replayed(step.id, EntryKind.TOOL)
        if replayed and replayed.escalated:
            raise StepEscalated(replayed.escalated)
        if replayed and replayed.record:
            return replayed.record, replayed.output
        try:
            record, output = await self._call(step, call, allowed, saw_untrusted, index)
        except StepEscalated as err:  # the approval expired into an escalation: the step waits for a person, maybe across runs
            journal.record(step.id, JournalEntry(kind=EntryKind.TOOL, escalated=str(err)))
            raise
        journal.record(step.id, JournalEntry(kind=EntryKind.TOOL, record=record, output=output))
        return record, output

    def _told(self, step: PlanStep, record: ToolCallRecord, outcome: Literal["ok", "error", "refused"]) -> None:
        spec = self.gate.catalogue.get(record.tool)
        self.gate.events.emit(
            ToolCalled, step_id=step.id, tool=record.tool, side_effect=spec.side_effect.value if spec else None, outcome=outcome,
            cached=record.cached, output_sha256=record.content_sha256, error=short(record.error) if record.error else None,
        )

    async def _call(
        self, step: PlanStep, call: ToolCallRequest, allowed: set[str], saw_untrusted: bool, index: int
    ) -> tuple[ToolCallRecord, ToolResult | None]:
        call = call.model_copy(update={"name": self.gate.catalogue.canonical(call.name)})  # an MCP tool by its own name, not the model's
        record = ToolCallRecord(call_id=call.id, tool=call.name, arguments_json=call.arguments_json, ok=False)
        admission = await self.gate.admit(step, call, allowed, saw_untrusted)
        record.approval_request_id = admission.approval.request_id if admission.approval else None
        if isinstance(admission, Refused):
            record.error = admission.error
            self._told(step, record, "refused")
            return record, None
        record.ran = True
        args = keyed(admission.spec, admission.args, step.id, index)
        record.idempotency_key = getattr(args, KEY_FIELD, None)
        try:
            output = await workflow.execute_activity(
                admission.spec.activity,
                args,
                result_type=ToolResult,
                summary=f"{step.id}: {admission.spec.name}",
                **admission.spec.config_for(args).kwargs(),
                **(self.route.options() if admission.spec.sandboxed else {}),
            )
        except ActivityError as err:
            record.error = failure_message(err)
            self._told(step, record, "error")
            return record, None
        if admission.approval is not None:
            self.gate.desk.record(ApprovalEventKind.EXECUTED, request_id=admission.approval.request_id, step_id=step.id,
                                  tool=call.name, detail=f"action {admission.approval.action_sha256}")
        record.ok, record.content_sha256, record.content_ref, record.cached = output.ok, output.content_sha256, output.content_ref, output.cached
        record.memory = output.memory
        self.gate.ledger.usage.cache_hits.tool += int(output.cached)  # still a tool call (the module docstring says why)
        self._told(step, record, "ok" if output.ok else "error")
        return record, output
