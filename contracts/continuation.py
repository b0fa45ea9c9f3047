"""Contracts for continue-as-new: what a long goal carries from one run to the next (`GoalCarry`, inline in
the next run's `GoalRequest.resume`, so the new run has it before its first query or update).

Finished steps' full results travel as archived parts in the content store (`ArchivePart`, by reference), so
the carry stays small whatever the number of steps (a 400-step goal carried 296 KB: mostly its plan); a step parked while it waited for a person carries its journal: the results of
the activities it had completed, replayed in order in the next run so the step reaches the same wait without
calling anything twice.
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from contracts.approvals import ApprovalEvent, ApprovalRequest, ApprovalStatus
from contracts.archive import ContentRef
from contracts.escalations import Escalation
from contracts.goal import Continuation, GoalRequest, StepProgress, StepResult, ToolCallRecord, UsageTotals
from contracts.llm import ModelResponse
from contracts.plan import Plan
from contracts.policy import Policy
from contracts.tools import ToolResult
from contracts.verify import Verdict


class EntryKind(StrEnum):
    MODEL = "model"
    VERIFY = "verify"
    TOOL = "tool"
    ESCALATION = "escalation"


class JournalEntry(BaseModel):
    """One completed thing a step did, in order: a model call, a verification, a tool call (with its record as
    the step saw it) or an escalation it opened."""

    kind: EntryKind
    response: ModelResponse | None = None
    verdict: Verdict | None = None
    record: ToolCallRecord | None = None
    output: ToolResult | None = None
    escalated: str | None = Field(default=None, description="A tool call whose approval expired into an escalation: why.")
    escalation_id: str | None = None


class StepJournal(BaseModel):
    """A parked step's journal: what it completed, and the approval request it was waiting on (if any)."""

    step_id: str
    started_at: datetime
    entries: list[JournalEntry] = Field(default_factory=list)
    awaiting_request_id: str | None = None


class LedgerState(BaseModel):
    usage: UsageTotals
    started: datetime
    exceeded: str | None = None


class DeskArchive(BaseModel):
    """Decided approval requests and audit events an earlier run handed over through the content store."""

    requests: list[ApprovalRequest] = Field(default_factory=list)
    events: list[ApprovalEvent] = Field(default_factory=list)


class DeskState(BaseModel):
    policy: Policy
    requests: list[ApprovalRequest] = Field(default_factory=list, description="Open ones, and those a parked step awaits.")
    events: list[ApprovalEvent] = Field(default_factory=list, description="Since the last archived part.")
    archived: list[ContentRef] = Field(default_factory=list, description="`DeskArchive` parts, oldest first.")
    decided: dict[str, ApprovalStatus] = Field(default_factory=dict, description="Archived requests' outcomes, by id.")


class EscalationState(BaseModel):
    policy: Policy
    escalations: list[Escalation] = Field(default_factory=list)
    retries: dict[str, int] = Field(default_factory=dict)


class ArchivedOutput(BaseModel):
    """Where a finished step's output lives when it was too long to carry inline: the archived part holding
    `source`'s full result (a failed step a fallback stood in for has the fallback as its source)."""

    part: int = Field(ge=0, description="Index into `SchedulerState.parts`.")
    source: str


class SchedulerState(BaseModel):
    plan: Plan
    revisions: list[Plan] = Field(default_factory=list)
    revision_errors: list[str] = Field(default_factory=list)
    output_step: str
    finished: list[StepResult] = Field(
        default_factory=list, description="Finished steps in finishing order, outcome only (their full results are in `parts`).",
    )
    parts: list[ContentRef] = Field(default_factory=list, description="Archived parts holding finished steps' full results.")
    archived: dict[str, int] = Field(default_factory=dict, description="Step id -> index of the part with its full result.")
    outputs: dict[str, str] = Field(default_factory=dict, description="Short outputs, inline.")
    archived_outputs: dict[str, ArchivedOutput] = Field(default_factory=dict)
    full_outputs: dict[str, ContentRef] = Field(default_factory=dict, description="Whole outputs of steps whose output is a preview.")
    triggered: dict[str, str] = Field(default_factory=dict, description="Fallback step id -> the failed step it stands in for.")
    replan_after: str | None = None
    parked: list[str] = Field(default_factory=list, description="Steps to resume first, in order.")


class GoalCarry(BaseModel):
    """Everything a goal's next run needs to go on as if it had never stopped."""

    type: Literal["goal_carry"] = "goal_carry"
    phase: str
    scheduler: SchedulerState
    progress: list[StepProgress]
    ledger: LedgerState
    desk: DeskState
    escalations: EscalationState
    journals: list[StepJournal] = Field(default_factory=list)
    continuations: list[Continuation] = Field(default_factory=list)
    events_seq: int = Field(default=0, ge=0, description="The last event seq the earlier runs emitted: the next run counts on.")


GoalRequest.model_rebuild()  # GoalRequest.resume names GoalCarry, defined here on top of contracts.goal
