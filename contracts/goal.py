"""Contracts for a goal: `GoalWorkflow`'s one input (`GoalRequest`) and one output (`GoalResult`),
plus the live view returned by the `status` query."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from contracts.approvals import ApprovalEvent, ApprovalRequest
from contracts.archive import ContentRef, ResultArchive
from contracts.escalations import Escalation
from contracts.llm import ModelSpec, TokenUsage
from contracts.plan import PLAYBOOK_NAME_PATTERN, Plan, PlanStep
from contracts.policy import Approver, EscalationPolicy, GateRule, Principal
from contracts.tools import MemoryWritten
from contracts.verify import AcceptanceCheck, Decision, Verdict

if TYPE_CHECKING:  # resolved when contracts.continuation is imported (contracts/__init__.py does it first)
    from contracts.continuation import GoalCarry

MAX_GOAL_BYTES = 32 * 1024
GOAL_WORKFLOW = "GoalWorkflow"  # the workflow type any client starts
STATUS_QUERY = "status"


class Budget(BaseModel):
    """Hard limits for one goal; exceeding one ends the goal with status `budget_exceeded`."""

    max_model_calls: int = Field(default=60, gt=0, le=10_000)
    max_tool_calls: int = Field(default=100, gt=0, le=10_000)
    max_total_tokens: int = Field(default=400_000, gt=0)
    max_cost_usd: float = Field(default=5.0, ge=0.0, description="0 means no cost cap (e.g. free local models).")
    max_wall_seconds: float = Field(default=0.0, ge=0.0, description="Wall-clock time for the whole goal; 0 means none.")


class ModelRouting(BaseModel):
    """A model per role; an empty spec means "the worker's configured default"."""

    planner: ModelSpec = Field(default_factory=lambda: ModelSpec(max_tokens=1024))  # a plan is longer than a turn
    executor: ModelSpec = Field(default_factory=ModelSpec)
    verifier: ModelSpec = Field(default_factory=ModelSpec)


MAX_SUBAGENT_DEPTH = 3  # a subagent's subagent's subagent, and no deeper: plans cannot recurse without end


class ParentLink(BaseModel):
    """Set on a subagent's request: the goal and step that delegated it."""

    workflow_id: str
    step_id: str
    role: str
    depth: int = Field(default=1, ge=1, le=MAX_SUBAGENT_DEPTH, description="1 for a top-level goal's subagent.")


class GoalRequest(BaseModel):
    """Input of `GoalWorkflow`. Only `goal` is required."""

    goal: str = Field(description="What to achieve, in plain language (at most 32 KB).")
    playbook: str | None = Field(
        default=None, pattern=PLAYBOOK_NAME_PATTERN, description="A named playbook; none means the LLM planner."
    )
    success_criteria: list[AcceptanceCheck] = Field(
        default_factory=list, description="Checks applied to the goal's final output."
    )
    budget: Budget = Field(default_factory=Budget)
    models: ModelRouting = Field(default_factory=ModelRouting)
    max_parallel_steps: int = Field(default=4, ge=1, le=32)
    max_plan_revisions: int = Field(default=2, ge=0, le=5, description="How often the rest of the plan may be revised.")
    cache: bool = Field(default=True, description="False: no model call or tool call of this goal (or its subagents) is answered from the call cache.")
    parent: ParentLink | None = Field(default=None, description="Set when this goal is a subagent of another.")
    inherited_gates: list[GateRule] = Field(
        default_factory=list, description="A subagent's ancestors' gate rules: they apply in the child first, so delegating never skips an approval.",
    )
    inherited_approvers: list[Approver] = Field(default_factory=list, description="The ancestors' approvers, for those rules.")
    inherited_require_signatures: bool = Field(default=False, description="An ancestor's policy requires signed decisions.")
    written_after_untrusted: bool = Field(
        default=False, description="This goal was written by a model after it read untrusted output (a revised plan's "
        "subagent): what its steps remember is marked untrusted.",
    )
    inherited_escalations: EscalationPolicy | None = Field(
        default=None, description="The parent's escalation policy (resolver roles, timeout, retry limit): it governs the child's escalations.",
    )
    scopes: list[Principal] = Field(
        default_factory=list,
        description="Outer limits on every role's permissions: a subagent gets its parent role's principal (and the parent's scopes).",
    )
    continue_as_new_after_events: int = Field(
        default=2_000, ge=50, le=50_000,
        description="Past this many history events the goal continues as new (at a point where no step is mid-call).",
    )
    continue_as_new_after_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=40 * 1024 * 1024,
                                             description="The same, for the history's size in bytes.")
    resume: GoalCarry | None = Field(
        default=None, description="Set by continue-as-new only: the state the previous run carried (a first run "
        "started with it by a client is refused).",
    )

    @field_validator("goal")
    @classmethod
    def _goal_is_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("goal is empty")
        if len(value.encode()) > MAX_GOAL_BYTES:
            raise ValueError(f"goal is {len(value.encode())} bytes; the limit is {MAX_GOAL_BYTES}")
        return value


class GoalStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    ESCALATED = "escalated"
    BUDGET_EXCEEDED = "budget_exceeded"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    VERIFYING = "verifying"
    AWAITING_RESOLUTION = "awaiting_resolution"  # escalated, waiting for a human's `resolve`
    COMPLETED = "completed"
    FAILED = "failed"
    ESCALATED = "escalated"
    SKIPPED = "skipped"


class ToolCallRecord(BaseModel):
    """One tool call as the step saw it: accepted and run, or rejected before any activity ran."""

    call_id: str
    tool: str
    arguments_json: str
    ok: bool
    content_sha256: str | None = None
    content_ref: str | None = None
    approval_request_id: str | None = None
    memory: MemoryWritten | None = Field(default=None, description="The long-term memory entry a `remember` call wrote.")
    error: str | None = None
    cached: bool = False
    ran: bool = Field(default=False, description="Its activity ran: an error then may quote the tool or a remote server (untrusted).")
    idempotency_key: str | None = Field(default=None, description="The key its effect is recorded under (a tool that is not read-only).")


class ModelCallRecord(BaseModel):
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str = ""
    cached: bool = False


class CandidateResult(BaseModel):
    """One candidate of an `explore` step: how it scored, or why it has no score."""

    label: str
    role: str
    status: StepStatus
    score: float | None = None
    decision: Decision | None = None
    reasons: list[str] = Field(default_factory=list)
    output_sha256: str | None = None
    model_calls: int = 0
    error: str | None = None


class StepResult(BaseModel):
    """A step's outcome with provenance: which models answered, which tools ran, what was verified."""

    step_id: str
    role: str
    status: StepStatus
    output: str = ""
    output_sha256: str | None = None
    full_output: ContentRef | None = Field(
        default=None, description="Set when `output` is a marked preview: the full output in the content store (its hash "
        "is `output_sha256`); later steps whose templates name this step get the full text.",
    )
    attempts: int = 0
    turns: int = 0
    verdicts: list[Verdict] = Field(default_factory=list)
    score: float | None = Field(default=None, description="The last verdict's score (0..1); None when unverified.")
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    model_calls: list[ModelCallRecord] = Field(default_factory=list)
    escalation_ids: list[str] = Field(default_factory=list, description="Escalations this step raised, in order.")
    child_workflow_ids: list[str] = Field(default_factory=list, description="Subagent runs of this step, in order.")
    child_memories: list[MemoryWritten] = Field(default_factory=list, description="Memory entries its subagents wrote.")
    candidates: list[CandidateResult] = Field(default_factory=list, description="An explore step's candidates.")
    superseded_by: str | None = Field(
        default=None, description="Failed, but replaced: by its fallback step's id, or by `revision <n>` of the plan."
    )
    replan_guidance: str | None = Field(default=None, description="Set when a resolver asked to re-plan after this step.")
    pick_reason: str | None = Field(default=None, description="Why an explore step kept the candidate it kept.")
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class CacheHits(BaseModel):
    model: int = 0
    tool: int = 0


class UsageTotals(BaseModel):
    model_calls: int = Field(default=0, description="Calls a provider answered (cache hits are not calls).")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = Field(default=0, description="Tool calls run, cache hits included: the tool budget bounds what agents do.")
    cost_usd: float = 0.0
    wall_seconds: float = 0.0
    cache_hits: CacheHits = Field(default_factory=CacheHits)

    def add_model(self, usage: TokenUsage, cost_usd: float, calls: int = 1) -> None:
        self.model_calls += calls
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost_usd += cost_usd

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Continuation(BaseModel):
    """One continue-as-new of a long goal: the run that ended there and what it handed on."""

    run: int = Field(description="1 for the goal's first run.")
    run_id: str
    history_events: int
    history_bytes: int
    at: datetime
    finished_steps: int
    carried_bytes: int = Field(default=0, description="Size of the state handed to the next run (its input).")
    parked_steps: list[str] = Field(default_factory=list, description="Steps waiting for a person, resumed in the next run.")


class GoalResult(BaseModel):
    """Output of `GoalWorkflow`."""

    workflow_id: str
    goal: str
    status: GoalStatus
    output: str = ""
    plan: Plan | None = None
    plan_revisions: list[Plan] = Field(default_factory=list, description="Revisions of the rest of the plan, in order.")
    steps: list[StepResult] = Field(default_factory=list)
    final_verdict: Verdict | None = None
    usage: UsageTotals = Field(default_factory=UsageTotals)
    budget: Budget = Field(default_factory=Budget, description="The limits `usage` was spent against (children included).")
    approvals: list[ApprovalRequest] = Field(default_factory=list, description="Every approval request, as decided.")
    audit: list[ApprovalEvent] = Field(default_factory=list, description="Policy and approval events, in order.")
    escalations: list[Escalation] = Field(default_factory=list, description="Every escalation, with its resolution.")
    continuations: list[Continuation] = Field(default_factory=list, description="Where the goal continued as new, in order.")
    memories: list[MemoryWritten] = Field(default_factory=list, description="Long-term memory entries the goal and its subagents wrote.")
    error: str | None = None
    archive: ResultArchive | None = Field(
        default=None, description="Set when the full result was too large: `steps` is then a compact selection, `plan` "
        "and most of `audit` are in the archived parts (`starter.py result` reassembles them).",
    )


class Artifact(BaseModel):
    """Something a step produced, by hash: a tool's output (`ref`: its full text in the content store, when large)
    or a long-term memory entry it wrote."""

    tool: str
    sha256: str
    ref: str | None = None
    memory_entry_id: int | None = None


PREVIEW_CHARS = 160


class StepProgress(BaseModel):
    """One step in the `status` query: where it is, what it has spent against its own limits, and its working
    memory (output by hash with a short preview, what its tools produced by hash). Carried across continue-as-new."""

    step_id: str
    role: str
    status: StepStatus
    attempt: int = 0
    turn: int = 0
    score: float | None = None
    child_workflow_id: str | None = None
    candidates: list[CandidateResult] = Field(default_factory=list)
    model_calls: int = 0
    tool_calls: int = 0
    max_model_calls: int | None = Field(default=None, description="The step's own limit, if it has one (the goal's applies too).")
    max_tool_calls: int | None = None
    output_sha256: str | None = None
    output_preview: str = Field(default="", description=f"The output's first {PREVIEW_CHARS} characters.")
    artifacts: list[Artifact] = Field(default_factory=list)

    @classmethod
    def pending(cls, step: PlanStep) -> StepProgress:
        return cls(step_id=step.id, role=step.role, status=StepStatus.PENDING,
                   max_model_calls=step.max_model_calls, max_tool_calls=step.max_tool_calls)

    def sync(self, result: StepResult) -> None:
        """Spend and working memory from the step's result so far."""
        self.model_calls, self.tool_calls = len(result.model_calls), len(result.tool_calls)
        self.artifacts = [Artifact(tool=c.tool, sha256=c.content_sha256, ref=c.content_ref,
                                   memory_entry_id=c.memory.entry_id if c.memory else None)
                          for c in result.tool_calls if c.ok and c.content_sha256]
        if result.output_sha256:
            self.output_sha256, self.output_preview = result.output_sha256, result.output[:PREVIEW_CHARS]


class GoalProgress(BaseModel):
    """What the `status` query returns: the live state of a running goal."""

    workflow_id: str
    phase: str
    steps: list[StepProgress] = Field(default_factory=list)
    usage: UsageTotals = Field(default_factory=UsageTotals)
    budget: Budget = Field(default_factory=Budget, description="The limits `usage` is spent against.")
    escalations: list[Escalation] = Field(default_factory=list)
    continuations: list[Continuation] = Field(default_factory=list)


class ArchivePart(BaseModel):
    """One archived part of a large `GoalResult`: the first carries the plans and the audit; every part
    carries steps, in order."""

    steps: list[StepResult] = Field(default_factory=list)
    plan: Plan | None = None
    plan_revisions: list[Plan] = Field(default_factory=list)
    audit: list[ApprovalEvent] = Field(default_factory=list)
    approvals: list[ApprovalRequest] = Field(default_factory=list)
