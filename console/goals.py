"""The goals page's data: goals found through Foreman's search attributes, with the filters a person narrows by.

Filters become a visibility query (`ForemanStatus = 'escalated' AND ForemanCostUsd >= 0.5 ...`) built only from
checked values (a known status, a playbook name's pattern, numbers), so no filter can change the query's shape; the
free-text filter matches the goal's words and id among the listed goals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client, WorkflowExecution

from contracts.goal import GOAL_WORKFLOW, GoalStatus
from contracts.plan import PLAYBOOK_NAME_PATTERN
from core.search_attributes import (
    FOREMAN_COST_USD,
    FOREMAN_GOAL,
    FOREMAN_MODEL_CALLS,
    FOREMAN_PENDING_APPROVALS,
    FOREMAN_PLAYBOOK,
    FOREMAN_STATUS,
    LIVE_STATUSES,
    MEMO_SUMMARY,
)

# The values `GoalWorkflow` gives ForemanStatus: while it runs, then its GoalStatus.
STATUSES = tuple(dict.fromkeys([*LIVE_STATUSES, *(s.value for s in GoalStatus)]))
MAX_GOALS = 200


class FilterError(ValueError):
    """A filter value that cannot be part of a query (unknown status, not a number...)."""


@dataclass(frozen=True)
class GoalFilters:
    status: str = ""
    playbook: str = ""
    waiting: bool = False
    min_cost: float | None = None
    text: str = ""

    @classmethod
    def parse(cls, params: dict[str, str]) -> GoalFilters:
        """Filters from a query string; `FilterError` names the bad one."""
        status, playbook = params.get("status", "").strip(), params.get("playbook", "").strip()
        if status and status not in STATUSES:
            raise FilterError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        if playbook and not re.fullmatch(PLAYBOOK_NAME_PATTERN, playbook):
            raise FilterError(f"{playbook!r} is not a playbook name")
        raw_cost = params.get("min_cost", "").strip()
        try:
            min_cost = float(raw_cost) if raw_cost else None
        except ValueError:
            raise FilterError(f"minimum cost must be a number, not {raw_cost!r}") from None
        if min_cost is not None and not 0 <= min_cost < 1e9:
            raise FilterError("minimum cost must be between 0 and 1e9")
        return cls(status=status, playbook=playbook, waiting=params.get("waiting") in ("1", "on", "true"),
                   min_cost=min_cost, text=params.get("text", "").strip()[:200])

    def query(self) -> str:
        clauses = [f"WorkflowType = '{GOAL_WORKFLOW}'"]
        if self.status:
            clauses.append(f"{FOREMAN_STATUS.name} = '{self.status}'")
        if self.playbook:
            clauses.append(f"{FOREMAN_PLAYBOOK.name} = '{self.playbook}'")
        if self.waiting:
            clauses.append(f"{FOREMAN_PENDING_APPROVALS.name} > 0")
        if self.min_cost is not None:
            clauses.append(f"{FOREMAN_COST_USD.name} >= {self.min_cost!r}")
        return " AND ".join(clauses)

    def matches_text(self, row: GoalRow) -> bool:
        needle = self.text.lower()
        return not needle or needle in row.goal.lower() or needle in row.workflow_id.lower()


@dataclass(frozen=True)
class GoalRow:
    """One goal as the visibility store shows it."""

    workflow_id: str
    run_id: str
    execution: str  # Running, Completed, Failed, ...
    status: str  # ForemanStatus, or the execution status when the namespace has no Foreman attributes
    playbook: str
    pending_approvals: int
    model_calls: int
    cost_usd: float
    goal: str
    summary: str
    started: datetime
    closed: datetime | None
    parent_id: str | None

    @property
    def running(self) -> bool:
        return self.execution == "Running"


async def goal_row(execution: WorkflowExecution) -> GoalRow:
    attrs = execution.typed_search_attributes
    status = execution.status.name.title().replace("_", " ") if execution.status else "Unknown"
    summary = (await execution.memo()).get(MEMO_SUMMARY, "")
    return GoalRow(
        workflow_id=execution.id, run_id=execution.run_id, execution=status,
        status=attrs.get(FOREMAN_STATUS) or status.lower(), playbook=attrs.get(FOREMAN_PLAYBOOK) or "",
        pending_approvals=attrs.get(FOREMAN_PENDING_APPROVALS) or 0, model_calls=attrs.get(FOREMAN_MODEL_CALLS) or 0,
        cost_usd=attrs.get(FOREMAN_COST_USD) or 0.0, goal=attrs.get(FOREMAN_GOAL) or "", summary=str(summary),
        started=execution.start_time, closed=execution.close_time, parent_id=execution.parent_id,
    )


async def list_goals(client: Client, filters: GoalFilters, limit: int = MAX_GOALS) -> list[GoalRow]:
    """The newest goals matching `filters`, at most `limit`."""
    rows = [await goal_row(e) async for e in client.list_workflows(filters.query(), limit=limit)]
    return [row for row in rows if filters.matches_text(row)]


async def waiting_goals(client: Client) -> list[GoalRow]:
    """Running top-level goals with something for a person: a pending approval or an open escalation (a subagent's
    are listed, and decided, on its parent). Subagents are left out by the query, so the cut at MAX_GOALS counts
    top-level goals only."""
    query = (f"WorkflowType = '{GOAL_WORKFLOW}' AND ExecutionStatus = 'Running' AND ParentWorkflowId IS NULL AND "
             f"({FOREMAN_PENDING_APPROVALS.name} > 0 OR {FOREMAN_STATUS.name} = 'escalated')")
    return [await goal_row(e) async for e in client.list_workflows(query, limit=MAX_GOALS)]
