"""The invariants every chaos scenario ends with, checked over EVERY workflow execution on the scenario's task queue
(goals, their subagents and every run of a continue-as-new chain), whatever faults were injected:

1. terminal: no execution is left running, and each goal ended with a typed reason (a `GoalStatus`; a goal that did
   not complete says why, and a failed step's error starts with an `ErrorType` name);
2. exactly once: every idempotency key of a side-effecting tool call that ran has one ledger row, the ledger holds
   no row nobody asked for, and every `remember` key is one memory entry (ledger rows vs effects);
3. approvals: no tool call the goal's policy gates ran without its own approval, approved in full and bound to that
   very action (SHA-256), and no scheduled tool activity carries an action whose request was not approved;
4. activities: in every history, no activity completed twice and every scheduled activity closed once (retries
   show as attempts of one scheduled activity, never as a second completion);
5. replay: every history replays against today's workflow code.

`check_invariants` returns the goals' results for the scenario's own assertions; `print_table` prints the per-scenario
table (goals, faults injected, outcome, time).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

import settings
from contracts.approvals import ApprovalStatus
from contracts.errors import ErrorType
from contracts.goal import GoalResult, GoalStatus, StepStatus
from contracts.tools import KEY_FIELD
from core.policy import action_sha256, evaluate
from core.tools import TOOLS
from starter import reassembled
from tests.helpers import replay

TYPED = tuple(f"{kind.value}:" for kind in ErrorType)
_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


@dataclass
class Goal:
    """One workflow id on the queue: its result (whole) and the history of each of its runs, oldest first."""

    workflow_id: str
    result: GoalResult
    histories: list[WorkflowHistory] = field(default_factory=list)


@dataclass
class Checked:
    """What the invariants saw: the goals by workflow id (subagents included) and the counts the table shows."""

    goals: dict[str, Goal]
    histories: int = 0
    keys: int = 0
    gated_calls: int = 0

    def top_level(self) -> list[Goal]:
        return [g for g in self.goals.values() if "/" not in g.workflow_id]

    def statuses(self) -> Counter[str]:
        return Counter(g.result.status.value for g in self.top_level())


async def check_invariants(client: Client, task_queue: str) -> Checked:
    """Assert the five invariants over every execution on `task_queue`; returns what was checked."""
    executions = [e async for e in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert executions, f"no workflow ran on {task_queue}"
    running = [e.id for e in executions if e.status is WorkflowExecutionStatus.RUNNING]
    assert not running, f"left running: {running}"
    ids = sorted({e.id for e in executions})
    checked = Checked(goals={})
    for workflow_id in ids:
        runs = sorted((e for e in executions if e.id == workflow_id), key=lambda e: e.start_time)
        assert runs[-1].status is WorkflowExecutionStatus.COMPLETED, f"{workflow_id}: {runs[-1].status}"  # a GoalResult, never a crash
        assert all(r.status is WorkflowExecutionStatus.CONTINUED_AS_NEW for r in runs[:-1]), (workflow_id, [r.status for r in runs])
        result = reassembled(await client.get_workflow_handle(workflow_id, result_type=GoalResult).result())
        histories = [await client.get_workflow_handle(workflow_id, run_id=r.run_id).fetch_history() for r in runs]
        checked.goals[workflow_id] = Goal(workflow_id, result, histories)
    for goal in checked.goals.values():
        assert_typed_outcome(goal.result)
        checked.gated_calls += assert_gated_calls_approved(goal)
        for history in goal.histories:
            assert_each_activity_closed_once(history)
            await replay(history)
            checked.histories += 1
    checked.keys = assert_keys_applied_once(checked.goals.values())
    return checked


def assert_typed_outcome(result: GoalResult) -> None:
    """A goal's end says why: completed with an output, or a status and an error, its failed steps' errors typed."""
    assert isinstance(result.status, GoalStatus)
    if result.status is GoalStatus.COMPLETED:
        return
    assert result.error, f"{result.workflow_id} ended {result.status.value} without a reason"
    for step in result.steps:
        if step.status is StepStatus.FAILED:
            assert step.error and step.error.startswith(TYPED), f"{result.workflow_id}/{step.step_id}: untyped {step.error!r}"


def assert_each_activity_closed_once(history: WorkflowHistory) -> None:
    """No activity completed twice; each scheduled activity closed exactly once (completed, failed, timed out or
    cancelled), its retries counted as attempts."""
    scheduled = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    closed = Counter(
        getattr(e, _CLOSED[e.event_type]).scheduled_event_id for e in history.events if e.event_type in _CLOSED
    )
    assert sorted(closed) == scheduled and set(closed.values()) <= {1}, (history.workflow_id, scheduled, closed)


def scheduled_tool_inputs(history: WorkflowHistory) -> list[tuple[int, str, dict]]:
    """(event id, tool, decoded input) of every scheduled activity that is a built-in tool."""
    found = []
    for e in history.events:
        if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = e.activity_task_scheduled_event_attributes
        if attributes.activity_type.name in TOOLS:
            found.append((e.event_id, attributes.activity_type.name, json.loads(attributes.input.payloads[0].data)))
    return found


def assert_gated_calls_approved(goal: Goal) -> int:
    """Every tool call that ran, if the goal's policy gates it, ran under its own request, approved by as many approvers
    as it needs and bound to the call's action hash; every scheduled tool activity whose action some request names ran
    only once that request was approved. Returns the number of gated calls that ran."""
    result = goal.result
    requests = {r.request_id: r for r in result.approvals}
    gated = 0
    policy = result.plan.policy if result.plan else None
    for step in result.steps:
        for call in step.tool_calls:
            spec = TOOLS.get(call.tool)
            if not call.ran or spec is None:
                continue
            args = spec.parse(call.arguments_json)
            action = action_sha256(call.tool, args)
            if policy is not None and evaluate(policy, step.role, call.tool, spec.side_effect, args).outcome == "gate":
                assert call.approval_request_id, f"{goal.workflow_id}/{step.step_id}: gated {call.tool} ran without a request"
            if call.approval_request_id:
                gated += 1
                request = requests[call.approval_request_id]
                assert request.status is ApprovalStatus.APPROVED, (goal.workflow_id, request.request_id, request.status)
                assert len(request.approvals_given) >= request.approvals_needed, request
                assert request.action_sha256 == action, f"{goal.workflow_id}: request {request.request_id} bound to another action"
    by_action = {r.action_sha256: r for r in requests.values()}
    for history in goal.histories:
        for _, tool, raw in scheduled_tool_inputs(history):
            request = by_action.get(action_sha256(tool, TOOLS[tool].parse(json.dumps(raw))))
            assert request is None or request.status is ApprovalStatus.APPROVED, (goal.workflow_id, tool, request)
    return gated


def ledger_rows() -> Counter[str]:
    """Key -> rows under it in the worker's SQLite ledger (empty when no worker ever wrote one)."""
    path = settings.idempotency_path()
    if not path.exists():
        return Counter()
    with closing(sqlite3.connect(path)) as db:
        return Counter(dict(db.execute("SELECT key, COUNT(*) FROM ledger GROUP BY key").fetchall()))


def memory_rows(workflow_id: str) -> int:
    path = settings.memory_path()
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM memories WHERE workflow_id = ?", (workflow_id,)).fetchone()
    return count


def assert_keys_applied_once(goals) -> int:
    """Ledger rows vs effects: one row per key of a keyed call that ran (its history carries the same key), no row
    without a call, one memory entry per `remember` key. Returns the number of keys."""
    goals = list(goals)
    keys: dict[str, str] = {}  # key -> tool
    for goal in goals:
        calls = [c for s in goal.result.steps for c in s.tool_calls if c.ran and c.idempotency_key]
        sent = {raw[KEY_FIELD] for h in goal.histories for _, _, raw in scheduled_tool_inputs(h) if raw.get(KEY_FIELD)}
        assert sent <= {c.idempotency_key for c in calls}, (goal.workflow_id, sent)  # each key sent came back as a call
        ran = {c.idempotency_key: c.tool for c in calls if c.ok}  # a call that failed recorded no effect
        keys |= ran
        remembered = sum(1 for tool in ran.values() if tool == "remember")
        assert memory_rows(goal.workflow_id) == remembered, (goal.workflow_id, memory_rows(goal.workflow_id), remembered)
    rows = ledger_rows()
    assert rows == Counter({key: 1 for key in keys}), {"missing": set(keys) - set(rows), "extra": set(rows) - set(keys)}
    return len(keys)


def print_table(rows: list[tuple[str, int, str, str, float]]) -> None:
    """One line per scenario: name, goals, faults injected, outcome, seconds."""
    header = ("scenario", "goals", "faults injected", "outcome", "time")
    lines = [header, *((name, str(goals), faults, outcome, f"{seconds:.1f} s") for name, goals, faults, outcome, seconds in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print()
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))


def outcome(checked: Checked) -> str:
    """`4 completed, 1 failed; 3 keys once, 2 gated approved, 9 histories replayed`."""
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(checked.statuses().items()))
    return f"{statuses}; {checked.keys} keys once, {checked.gated_calls} gated approved, {checked.histories} histories replayed"
