"""Contracts for a goal's events: what happened, in order, as small typed records (the `events` query).

Every event has `seq` (1, 2, 3, ... across the whole goal: a continue-as-new carries the counter on), `at`
(workflow time) and `step_id` when it belongs to a step. Events are a discriminated union on `type`
(`EventKind`); payloads stay small: hashes and short previews, never whole outputs or arguments.
`facts()` is the one-line human form `starter.py events` prints after time, seq, kind and step.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

EVENTS_QUERY = "events"
DEFAULT_PAGE = 200
MAX_PAGE = 1_000
REASON_CHARS = 200  # a verdict's or an error's text is cut to this
MAX_REASONS = 5


def short(text: str | None, limit: int = REASON_CHARS) -> str:
    """One line of at most `limit` characters (an ellipsis marks a cut)."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class EventKind(StrEnum):
    PLAN_MADE = "plan_made"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    POLICY_DECISION = "policy_decision"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_EXPIRED = "approval_expired"
    ESCALATION_OPENED = "escalation_opened"
    ESCALATION_RESOLVED = "escalation_resolved"
    VERDICT = "verdict"
    BUDGET_WARNING = "budget_warning"
    SUBAGENT = "subagent"
    CONTINUED_AS_NEW = "continued_as_new"
    GOAL_FINISHED = "goal_finished"


class EventBase(BaseModel):
    seq: int = Field(ge=1, description="Monotonic across the whole goal, continue-as-new included.")
    at: datetime = Field(description="Workflow time (`workflow.now()`) when it happened.")
    step_id: str | None = None

    def facts(self) -> str:
        raise NotImplementedError


class PlanMade(EventBase):
    """A plan (revision 0) or a revision of the rest of it."""

    type: Literal[EventKind.PLAN_MADE] = EventKind.PLAN_MADE
    revision: int = 0
    source: str = Field(description="`playbook` or `llm`.")
    playbook: str | None = None
    steps: list[str] = Field(default_factory=list, description="Step ids, in plan order.")
    fallback_reason: str | None = None

    def facts(self) -> str:
        planner = f"playbook {self.playbook}" if self.playbook else self.source
        head = f"revision {self.revision}" if self.revision else "plan"
        tail = f" (fallback: {self.fallback_reason})" if self.fallback_reason else ""
        return f"{head} by {planner}: {len(self.steps)} steps {', '.join(self.steps)}{tail}"


class StepStarted(EventBase):
    type: Literal[EventKind.STEP_STARTED] = EventKind.STEP_STARTED
    kind: str
    role: str
    resumed: bool = Field(default=False, description="Resumed after a continue-as-new (it had been parked).")

    def facts(self) -> str:
        return f"{self.kind} step as {self.role}{' (resumed)' if self.resumed else ''}"


class StepFinished(EventBase):
    type: Literal[EventKind.STEP_FINISHED] = EventKind.STEP_FINISHED
    status: str
    attempts: int = 0
    score: float | None = None
    output_sha256: str | None = None
    error: str | None = None

    def facts(self) -> str:
        score = f" score {self.score:.2f}" if self.score is not None else ""
        output = f" output {self.output_sha256[:12]}" if self.output_sha256 else ""
        error = f": {self.error}" if self.error else ""
        return f"{self.status} after {self.attempts} attempt(s){score}{output}{error}"


class ModelCalled(EventBase):
    """One provider call (executor turns, one by one), or a planner's or judge's calls (counted in `calls`)."""

    type: Literal[EventKind.MODEL_CALL] = EventKind.MODEL_CALL
    role: str
    provider: str | None = None
    model: str | None = None
    calls: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    cached: bool = False

    def facts(self) -> str:
        who = "/".join(p for p in (self.provider, self.model) if p) or "default model"
        latency = f" {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
        calls = f" x{self.calls}" if self.calls != 1 else ""
        return (f"{self.role} {who}{calls} tokens {self.prompt_tokens}/{self.completion_tokens} ${self.cost_usd:.4f}"
                f"{latency}{' cached' if self.cached else ''}")


class ToolCalled(EventBase):
    type: Literal[EventKind.TOOL_CALL] = EventKind.TOOL_CALL
    tool: str
    side_effect: str | None = Field(default=None, description="None when the tool is not in the goal's catalogue.")
    outcome: Literal["ok", "error", "refused"] = Field(description="refused: nothing ran (validation, policy, approval).")
    cached: bool = False
    output_sha256: str | None = None
    error: str | None = None

    def facts(self) -> str:
        output = f" output {self.output_sha256[:12]}" if self.output_sha256 else ""
        error = f": {self.error}" if self.error else ""
        return f"{self.tool} ({self.side_effect or '?'}) {self.outcome}{' cached' if self.cached else ''}{output}{error}"


class PolicyDecided(EventBase):
    type: Literal[EventKind.POLICY_DECISION] = EventKind.POLICY_DECISION
    tool: str
    role: str
    outcome: Literal["allow", "deny", "gate"]
    rule: str | None = None
    reason: str = ""

    def facts(self) -> str:
        rule = f" by rule {self.rule}" if self.rule else ""
        return f"{self.outcome} {self.tool} for {self.role}{rule}{': ' + self.reason if self.reason else ''}"


class ApprovalRequested(EventBase):
    type: Literal[EventKind.APPROVAL_REQUESTED] = EventKind.APPROVAL_REQUESTED
    request_id: str
    tool: str
    action_sha256: str
    rule: str
    requested_by: str
    approvals_needed: int = 1
    expires_at: datetime

    def facts(self) -> str:
        return (f"request {self.request_id} for {self.tool} (rule {self.rule}, {self.approvals_needed} approval(s), "
                f"action {self.action_sha256[:12]}) by {self.requested_by}")


class ApprovalDecided(EventBase):
    """One approver's decision; `status` is the request's after it (still pending while approvals are missing)."""

    type: Literal[EventKind.APPROVAL_DECIDED] = EventKind.APPROVAL_DECIDED
    request_id: str
    action_sha256: str
    approver: str
    decision: Literal["approve", "deny"]
    status: str
    approvals_given: int = 0

    def facts(self) -> str:
        return f"{self.decision} by {self.approver} on {self.request_id}: {self.status} ({self.approvals_given} given)"


class ApprovalExpired(EventBase):
    type: Literal[EventKind.APPROVAL_EXPIRED] = EventKind.APPROVAL_EXPIRED
    request_id: str
    action_sha256: str
    outcome: Literal["expired", "escalated"]

    def facts(self) -> str:
        return f"request {self.request_id} got no decision in time: {self.outcome}"


class EscalationOpened(EventBase):
    type: Literal[EventKind.ESCALATION_OPENED] = EventKind.ESCALATION_OPENED
    escalation_id: str
    reason: str
    decisions: list[str] = Field(default_factory=list)

    def facts(self) -> str:
        return f"escalation {self.escalation_id} ({'/'.join(self.decisions)}): {self.reason}"


class EscalationResolved(EventBase):
    type: Literal[EventKind.ESCALATION_RESOLVED] = EventKind.ESCALATION_RESOLVED
    escalation_id: str
    decision: str
    resolver: str | None = Field(default=None, description="None when it timed out (abort).")

    def facts(self) -> str:
        return f"escalation {self.escalation_id}: {self.decision} by {self.resolver or 'timeout'}"


class VerdictGiven(EventBase):
    type: Literal[EventKind.VERDICT] = EventKind.VERDICT
    decision: str
    score: float
    reasons: list[str] = Field(default_factory=list, description=f"At most {MAX_REASONS}, each cut to {REASON_CHARS} characters.")

    def facts(self) -> str:
        reasons = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{self.decision} score {self.score:.2f}{reasons}"


class BudgetDimension(StrEnum):
    MODEL_CALLS = "model_calls"
    TOOL_CALLS = "tool_calls"
    TOKENS = "tokens"
    COST_USD = "cost_usd"
    WALL_SECONDS = "wall_seconds"


class BudgetWarning(EventBase):
    """Usage crossed a share (`threshold`: 0.8, 1.0) of one of the goal's limits."""

    type: Literal[EventKind.BUDGET_WARNING] = EventKind.BUDGET_WARNING
    dimension: BudgetDimension
    threshold: float
    used: float
    limit: float

    def facts(self) -> str:
        return f"{self.dimension.value} at {self.threshold:.0%} of the budget ({self.used:g} of {self.limit:g})"


class SubagentStarted(EventBase):
    """A subagent step started a child goal: its own events are in the child (`starter.py events CHILD_ID`)."""

    type: Literal[EventKind.SUBAGENT] = EventKind.SUBAGENT
    child_workflow_id: str
    attempt: int = 1

    def facts(self) -> str:
        return f"child goal {self.child_workflow_id} (attempt {self.attempt})"


class ContinuedAsNew(EventBase):
    """The last event of a run that handed the goal to a fresh run of the same workflow id."""

    type: Literal[EventKind.CONTINUED_AS_NEW] = EventKind.CONTINUED_AS_NEW
    run: int
    run_id: str
    history_events: int
    parked_steps: list[str] = Field(default_factory=list)

    def facts(self) -> str:
        parked = f", parked {', '.join(self.parked_steps)}" if self.parked_steps else ""
        return f"run {self.run} ({self.run_id}) continued as new after {self.history_events} history events{parked}"


class GoalFinished(EventBase):
    type: Literal[EventKind.GOAL_FINISHED] = EventKind.GOAL_FINISHED
    status: str
    error: str | None = None
    model_calls: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0

    def facts(self) -> str:
        error = f": {self.error}" if self.error else ""
        return f"{self.status} ({self.model_calls} model calls, {self.tool_calls} tool calls, ${self.cost_usd:.4f}){error}"


Event = Annotated[
    PlanMade | StepStarted | StepFinished | ModelCalled | ToolCalled | PolicyDecided | ApprovalRequested | ApprovalDecided
    | ApprovalExpired | EscalationOpened | EscalationResolved | VerdictGiven | BudgetWarning | SubagentStarted
    | ContinuedAsNew | GoalFinished,
    Field(discriminator="type"),
]


class EventsQuery(BaseModel):
    """Input of the `events` query: the events after `after` (a seq; 0 for the first), at most `limit` of them."""

    after: int = Field(default=0, ge=0)
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)


class EventsPage(BaseModel):
    """Output of the `events` query: one page of the run's events, in order, and where the others are."""

    events: list[Event] = Field(default_factory=list)
    next_after: int = Field(description="Pass as `after` for the next page (the last seq returned, or `after` if none).")
    last_seq: int = Field(description="The newest seq this run has emitted (0: none yet).")
    more: bool = Field(description="This run holds events after this page.")
    run_first_seq: int = Field(description="The first seq of this run; earlier ones are in `earlier_runs`.")
    oldest_held_seq: int = Field(description="The oldest seq still held in memory: older ones of this run were dropped.")
    dropped: int = Field(default=0, description="Events of this run dropped from memory (the oldest first).")
    earlier_runs: list[str] = Field(
        default_factory=list, description="Run ids of the goal's earlier runs, oldest first (query them by run id).",
    )
    closed: str | None = Field(
        default=None, description="How the run ended, if it has: the goal's status, or `continued_as_new`.",
    )
