"""A goal page's data: the plan as a graph by dependency depth, each step's state, calls, verdicts and spend,
approvals and escalations, usage against budget. From the `status` query while the goal runs (its plan read from
the history's `plan_goal` results), from its `GoalResult` once closed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from console.inbox import QUERY_ERRORS, QUERY_TIMEOUT
from contracts.approvals import PENDING_QUERY, ApprovalEvent, ApprovalRequest
from contracts.escalations import Escalation
from contracts.events import EVENTS_QUERY, Event, EventsPage, EventsQuery
from contracts.goal import STATUS_QUERY, Budget, CandidateResult, GoalProgress, GoalRequest, GoalResult, ModelCallRecord, ToolCallRecord, UsageTotals
from contracts.plan import PLAN_GOAL_ACTIVITY, Plan, PlanStep
from contracts.verify import Verdict
from core.history import local_activity
from core.search_attributes import FOREMAN_GOAL

NODE_W, NODE_H, GAP_X, GAP_Y = 170, 46, 50, 18


@dataclass
class StepView:
    step_id: str
    role: str
    status: str
    kind: str = ""
    depends_on: list[str] = field(default_factory=list)
    attempts: int = 0
    turn: int = 0
    score: float | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    model_calls: list[ModelCallRecord] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    model_call_count: int = 0
    tool_call_count: int = 0
    max_model_calls: int | None = None
    max_tool_calls: int | None = None
    candidates: list[CandidateResult] = field(default_factory=list)
    output_sha256: str | None = None
    output_preview: str = ""
    children: list[str] = field(default_factory=list)
    error: str | None = None
    superseded_by: str | None = None
    seconds: float | None = None
    depth: int = 0
    x: int = 0
    y: int = 0


@dataclass
class Graph:
    width: int
    height: int
    edges: list[tuple[int, int, int, int]]  # x1, y1, x2, y2


@dataclass
class GoalView:
    workflow_id: str
    execution: str
    running: bool
    phase: str
    steps: list[StepView]
    graph: Graph
    usage: UsageTotals
    budget: Budget
    goal: str = ""
    output: str = ""
    error: str | None = None
    approvals: list[ApprovalRequest] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    audit: list[ApprovalEvent] = field(default_factory=list)
    note: str = ""
    started: datetime | None = None
    events: list[Event] = field(default_factory=list)  # the latest ones, oldest first
    events_note: str = ""

    def spend(self) -> list[tuple[str, float, float]]:
        """(what, used, limit) for each budget line; a limit of 0 means none."""
        b, u = self.budget, self.usage
        return [("model calls", u.model_calls, b.max_model_calls), ("tool calls", u.tool_calls, b.max_tool_calls),
                ("tokens", u.total_tokens, b.max_total_tokens), ("cost (USD)", round(u.cost_usd, 6), b.max_cost_usd),
                ("wall seconds", round(u.wall_seconds, 1), b.max_wall_seconds)]


def layout(steps: list[StepView]) -> Graph:
    """Columns by dependency depth (a step sits right of everything it depends on), rows in plan order."""
    by_id = {s.step_id: s for s in steps}
    depth: dict[str, int] = {}

    def depth_of(step: StepView, seen: frozenset[str] = frozenset()) -> int:
        if step.step_id not in depth:
            parents = [by_id[d] for d in step.depends_on if d in by_id and d not in seen]
            depth[step.step_id] = 1 + max((depth_of(p, seen | {step.step_id}) for p in parents), default=-1)
        return depth[step.step_id]

    rows: dict[int, int] = {}
    for step in steps:
        step.depth = depth_of(step)
        row = rows.get(step.depth, 0)
        rows[step.depth] = row + 1
        step.x, step.y = 10 + step.depth * (NODE_W + GAP_X), 10 + row * (NODE_H + GAP_Y)
    edges = [(by_id[d].x + NODE_W, by_id[d].y + NODE_H // 2, s.x, s.y + NODE_H // 2)
             for s in steps for d in s.depends_on if d in by_id]
    width = 20 + (max(rows, default=0) + 1) * (NODE_W + GAP_X)
    height = 20 + max(rows.values(), default=1) * (NODE_H + GAP_Y)
    return Graph(width=width, height=height, edges=edges)


def _kind(step: PlanStep | None) -> str:
    return step.type.value if step is not None else ""


class PlanCache:
    """Plans read from histories, by run and by how many steps the goal reports: a run's plans change only when a
    revision adds steps, so a page polling a running goal reads its history again only then, not at every new event."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._plans: OrderedDict[tuple[str, int], list[Plan]] = OrderedDict()
        self.history_reads = 0

    async def plans(self, client: Client, handle: WorkflowHandle, run_id: str, steps: int) -> list[Plan]:
        key = (run_id, steps)
        if key not in self._plans:
            self._plans[key] = await plans_in_history(client, handle)
            self.history_reads += 1
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return self._plans[key]


async def plans_in_history(client: Client, handle: WorkflowHandle) -> list[Plan]:
    """The plans this run planned (`plan_goal` results, local or not; revisions after the first), or the one it carried over."""
    scheduled: set[int] = set()
    plans: list[Plan] = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (request,) = await client.data_converter.decode(payloads, [GoalRequest])
            if request.resume is not None:
                plans.append(request.resume.plan)
        elif (local := local_activity(event)) is not None:
            kind, result = local
            if kind == PLAN_GOAL_ACTIVITY and result:  # a playbook's plan is a local activity
                (plan,) = await client.data_converter.decode(result, [Plan])
                plans.append(plan)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == PLAN_GOAL_ACTIVITY:
                scheduled.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            if done.scheduled_event_id in scheduled:
                (plan,) = await client.data_converter.decode(done.result.payloads, [Plan])
                plans.append(plan)
    return plans


def _planned(plans: list[Plan]) -> dict[str, PlanStep]:
    steps: dict[str, PlanStep] = {}
    for plan in plans:
        steps.update({s.id: s for s in plan.steps})
    return steps


def from_progress(progress: GoalProgress, plans: list[Plan]) -> tuple[list[StepView], Graph]:
    planned = _planned(plans)
    steps = [StepView(step_id=s.step_id, role=s.role, status=s.status.value, kind=_kind(planned.get(s.step_id)),
                      depends_on=list(planned[s.step_id].depends_on) if s.step_id in planned else [],
                      attempts=s.attempt, turn=s.turn, score=s.score, model_call_count=s.model_calls,
                      tool_call_count=s.tool_calls, max_model_calls=s.max_model_calls, max_tool_calls=s.max_tool_calls,
                      candidates=s.candidates, output_sha256=s.output_sha256, output_preview=s.output_preview,
                      children=[s.child_workflow_id] if s.child_workflow_id else [])
             for s in progress.steps]
    return steps, layout(steps)


def from_result(result: GoalResult) -> tuple[list[StepView], Graph]:
    planned = _planned([p for p in [result.plan, *result.plan_revisions] if p is not None])
    steps = []
    for s in result.steps:
        seconds = (s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None
        steps.append(StepView(
            step_id=s.step_id, role=s.role, status=s.status.value, kind=_kind(planned.get(s.step_id)),
            depends_on=list(planned[s.step_id].depends_on) if s.step_id in planned else [], attempts=s.attempts,
            turn=s.turns, score=s.score, verdicts=s.verdicts, model_calls=s.model_calls, tool_calls=s.tool_calls,
            model_call_count=len(s.model_calls), tool_call_count=len(s.tool_calls), candidates=s.candidates,
            output_sha256=s.output_sha256, output_preview=s.output[:400], children=s.child_workflow_ids, error=s.error,
            superseded_by=s.superseded_by, seconds=seconds,
        ))
    return steps, layout(steps)


RECENT_EVENTS = 100


async def recent_events(handle: WorkflowHandle) -> tuple[list[Event], str]:
    """(the run's latest events, oldest first; a note when they cannot be had): a closed run answers only while a
    worker can replay it."""
    try:
        last = (await handle.query(EVENTS_QUERY, EventsQuery(after=0, limit=1), result_type=EventsPage, rpc_timeout=QUERY_TIMEOUT)).last_seq
        page = await handle.query(EVENTS_QUERY, EventsQuery(after=max(0, last - RECENT_EVENTS), limit=RECENT_EVENTS),
                                  result_type=EventsPage, rpc_timeout=QUERY_TIMEOUT)
    except QUERY_ERRORS as err:
        return [], f"events unavailable ({type(err).__name__}); `starter.py events {handle.id}` reads them with a worker running"
    return page.events, ""


async def goal_view(client: Client, workflow_id: str, cache: PlanCache | None = None) -> GoalView:
    """The goal's page; RPC errors (no such workflow) reach the caller."""
    view = await _goal_view(client, workflow_id, cache)
    view.events, view.events_note = await recent_events(client.get_workflow_handle(workflow_id))
    return view


async def _goal_view(client: Client, workflow_id: str, cache: PlanCache | None = None) -> GoalView:
    handle = client.get_workflow_handle(workflow_id, result_type=GoalResult)
    described = await handle.describe()
    running = described.status == WorkflowExecutionStatus.RUNNING
    execution = described.status.name.title().replace("_", " ") if described.status else "Unknown"
    if not running:
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            cause = getattr(err.cause, "message", err.cause)
            empty, graph = [], layout([])
            return GoalView(workflow_id, execution, False, "failed", empty, graph, UsageTotals(), Budget(), error=str(cause),
                            started=described.start_time)
        steps, graph = from_result(result)
        note = (f"a large result: {result.archive.steps_shown} of {result.archive.steps_total} steps shown "
                "(`starter.py result` reassembles the rest)") if result.archive else ""
        return GoalView(workflow_id, execution, False, result.status.value, steps, graph, result.usage, result.budget,
                        goal=result.goal, output=result.output, error=result.error, approvals=result.approvals,
                        escalations=result.escalations, audit=result.audit, note=note, started=described.start_time)
    try:
        progress = await handle.query(STATUS_QUERY, result_type=GoalProgress, rpc_timeout=QUERY_TIMEOUT)
        pending = await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest], rpc_timeout=QUERY_TIMEOUT)
    except QUERY_ERRORS as err:
        steps, graph = [], layout([])
        return GoalView(workflow_id, execution, True, "unknown", steps, graph, UsageTotals(), Budget(),
                        note=f"the goal does not answer its status query now ({type(err).__name__}: {err}); is a worker running?",
                        started=described.start_time)
    plans = await (cache or PlanCache()).plans(client, handle, described.run_id, len(progress.steps))
    steps, graph = from_progress(progress, plans)
    return GoalView(workflow_id, execution, True, progress.phase, steps, graph, progress.usage, progress.budget,
                    goal=described.typed_search_attributes.get(FOREMAN_GOAL) or "", approvals=pending, escalations=progress.escalations, started=described.start_time)
