"""What the Temporal benchmarks run: generated playbooks, scripted `call_model` activities, a timed goal
runner and history measurements (event sizes, step intervals, replay).

Everything here runs real `GoalWorkflow`s on a real dev server; only `call_model` is replaced (same
activity name, `testkit.models` as in the tests), so the numbers are orchestration cost, not model cost.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pydantic_core
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from stores import from_settings
from contracts.goal import GoalRequest, GoalResult, GoalStatus
from contracts.llm import ChatMessage, ModelRequest, ModelResponse, Provider
from contracts.tools import ToolResult
from testkit.goals import approve_everything, write_playbook
from testkit.models import ScriptedModel, answer, demo_responder, step_role
from workflows.goal import GoalWorkflow
from workflows.runner import workflow_runner

SLEEPY_MODEL_SECONDS = 0.2


# --- playbooks -----------------------------------------------------------------------------------


def steps_playbook(folder: Path, name: str, count: int, *, chained: bool) -> str:
    """`count` agent steps with no tools and no checks: one `call_model` activity each.

    Chained steps each depend on the previous one (strictly sequential); otherwise all are independent.
    """
    steps = [
        {
            "type": "agent",
            "id": f"s{i:02d}",
            "role": "worker",
            "instruction": f"Step {i}: reply with one word.",
            "tools": [],
            "checks": [],
            "max_turns": 1,
            "max_attempts": 1,
            "depends_on": [f"s{i - 1:02d}"] if chained and i > 0 else [],
        }
        for i in range(count)
    ]
    return write_playbook(folder, {"name": name, "description": f"{count} {'chained' if chained else 'independent'} steps", "steps": steps})


def wide_research_playbook(folder: Path, builtin: Path, limit: int) -> str:
    """research-brief with a wider prefetch search (`limit` hits), so search_corpus output exceeds the preview."""
    playbook = json.loads(builtin.read_text())
    playbook["name"] = "research-brief-wide"
    prefetch = playbook["steps"][0]["prefetch"][0]
    prefetch["arguments_json"] = json.dumps({"query": "{{goal}}", "limit": limit})
    return write_playbook(folder, playbook)


def write_synthetic_corpus(folder: Path, documents: int) -> Path:
    """`documents` markdown files that all match the benchmark goal's words."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(documents):
        body = " ".join(
            f"Durable execution note {i}.{j}: a workflow records each activity result, so an agent that crashes "
            f"resumes after the last completed step instead of retrying side effects."
            for j in range(12)
        )
        (folder / f"note-{i:03d}.md").write_text(f"# Durable execution note {i}\n\n{body}\n")
    return folder


# --- models --------------------------------------------------------------------------------------


def instant_model() -> ScriptedModel:
    """Answers every step at once with a fixed reply: the demo's researcher and drafter as in the demo
    test (`testkit.models.demo_responder`), "ok" for any other role."""

    def respond(request: ModelRequest) -> ChatMessage:
        return demo_responder(request) if step_role(request) in ("researcher", "drafter") else answer("ok")

    return ScriptedModel(respond)


@activity.defn(name="call_model")
async def sleepy_call_model(request: ModelRequest) -> ModelResponse:
    """A model that takes SLEEPY_MODEL_SECONDS per call without using a CPU (async sleep)."""
    await asyncio.sleep(SLEEPY_MODEL_SECONDS)
    return ModelResponse(message=answer("done"), provider=Provider.OPENAI, model="sleepy")


# --- running goals -------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished goal: wall time seen by the client, its result and its history."""

    label: str
    wall_ms: float
    result: GoalResult
    history: WorkflowHistory

    @property
    def completed(self) -> bool:
        return self.result.status is GoalStatus.COMPLETED


async def timed_goal(client: Client, task_queue: str, request: GoalRequest, label: str, timeout: float = 60,
                     approvers: tuple[str, ...] = ("bob", "carol")) -> Run:
    """Start a goal, wait for its result (wall time from start request to result), fetch its history (the
    last run's, when the goal continued as new). Gated actions (research-brief's publish) are approved at
    once by `approvers`, as a waiting human would."""
    async with asyncio.timeout(timeout):
        started = time.perf_counter()
        handle = await client.start_workflow(
            GoalWorkflow.run, request, id=f"bench-{re.sub(r'[^a-z0-9]+', '-', label.lower())}-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        approver = asyncio.create_task(approve_everything(handle, approvers))
        try:
            result = await handle.result()
        finally:
            approver.cancel()
        wall_ms = (time.perf_counter() - started) * 1000
        history = await handle.fetch_history()
    return Run(label, wall_ms, result, history)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- history measurements ------------------------------------------------------------------------


def _ms(event: HistoryEvent) -> float:
    return event.event_time.seconds * 1000 + event.event_time.nanos / 1e6


def step_intervals_ms(history: WorkflowHistory, activity_type: str = "call_model") -> list[float]:
    """Server time between consecutive schedules of `activity_type` (one per step in a chained playbook)."""
    times = [
        _ms(e)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    ]
    return [b - a for a, b in zip(times, times[1:])]


def step_phases_ms(history: WorkflowHistory) -> dict[str, list[float]]:
    """Where each step's time goes, from event timestamps.

    dispatch: workflow task scheduled -> started (server queues, the ~50 ms of the default config);
    workflow task: started -> completed (the worker running workflow code, plus its reply);
    activity: activity scheduled -> completed (eager start, the scripted model, the completion call).
    """
    phases: dict[str, list[float]] = {"dispatch": [], "workflow task": [], "activity": []}
    opened: dict[str, float] = {}
    for e in history.events:
        kind = e.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            opened["wft"] = _ms(e)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and "wft" in opened:
            phases["dispatch"].append(_ms(e) - opened.pop("wft"))
            opened["wft_run"] = _ms(e)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and "wft_run" in opened:
            phases["workflow task"].append(_ms(e) - opened.pop("wft_run"))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            opened[f"act{e.event_id}"] = _ms(e)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = opened.pop(f"act{e.activity_task_completed_event_attributes.scheduled_event_id}", None)
            if scheduled is not None:
                phases["activity"].append(_ms(e) - scheduled)
    return phases


@dataclass
class HistorySize:
    events: int
    total_bytes: int
    largest_bytes: int
    largest_type: str
    tool_results: int
    truncated_results: int
    full_output_bytes: int
    preview_bytes: int
    inline_total_bytes: int

    @property
    def inline_ratio(self) -> float:
        return self.inline_total_bytes / self.total_bytes


def _escaped(text: str) -> bytes:
    """`text` as it appears inside a JSON payload written by the pydantic converter."""
    return pydantic_core.to_json(text)[1:-1]


def _completed_results(history: WorkflowHistory, tool: str) -> list[ToolResult]:
    scheduled: dict[int, str] = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    results = []
    for e in history.events:
        if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        attrs = e.activity_task_completed_event_attributes
        if scheduled.get(attrs.scheduled_event_id) == tool and attrs.result.payloads:
            results.append(ToolResult.model_validate_json(attrs.result.payloads[0].data))
    return results


def history_size(history: WorkflowHistory, tool: str = "search_corpus") -> HistorySize:
    """Event sizes, plus what the history would weigh if every `tool` output were carried in full.

    A preview is copied wherever the workflow passes it on (the tool's completed event, the model
    prompts that include it, ...): each copy found in an event would grow by the bytes the preview
    left out. The full text comes from the content store (its size is also `ToolResult.size_bytes`).
    """
    sizes = [(e.ByteSize(), EventType.Name(e.event_type)) for e in history.events]
    largest_bytes, largest_type = max(sizes)
    total = sum(size for size, _ in sizes)
    results = _completed_results(history, tool)
    extra = full_bytes = preview_bytes = 0
    for result in results:
        full_bytes += result.size_bytes
        preview_bytes += len(result.content.encode())
        if not result.truncated:
            continue
        try:
            full = from_settings().content.get(result.content_ref or "")
            grow = len(_escaped(full)) - len(_escaped(result.content))
        except KeyError:  # store not reachable from here: estimate from the recorded size
            grow = result.size_bytes - len(result.content.encode())
        needle = _escaped(result.content)
        copies = sum(e.SerializeToString().count(needle) for e in history.events) or 1
        extra += copies * grow
    return HistorySize(
        events=len(history.events),
        total_bytes=total,
        largest_bytes=largest_bytes,
        largest_type=largest_type.removeprefix("EVENT_TYPE_"),
        tool_results=len(results),
        truncated_results=sum(r.truncated for r in results),
        full_output_bytes=full_bytes,
        preview_bytes=preview_bytes,
        inline_total_bytes=total + extra,
    )


def bytes_by_kind(history: WorkflowHistory) -> dict[str, tuple[int, int]]:
    """{event kind: (events, bytes)}, largest first; activity events are split by activity type
    ("ACTIVITY_TASK_SCHEDULED:archive_content")."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    kinds: dict[str, tuple[int, int]] = {}
    for e in history.events:
        kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kind += ":" + scheduled[e.event_id]
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            kind += ":" + scheduled.get(e.activity_task_completed_event_attributes.scheduled_event_id, "?")
        count, size = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, size + e.ByteSize())
    return dict(sorted(kinds.items(), key=lambda item: -item[1][1]))


async def replay_ms(histories: list[WorkflowHistory], repeats: int = 5, workflows: tuple[type, ...] = (GoalWorkflow,)) -> list[tuple[int, float]]:
    """(events, median ms) per history, each replayed `repeats` times after one warm-up replay."""
    replayer = Replayer(workflows=list(workflows), data_converter=pydantic_data_converter,
                        workflow_runner=workflow_runner(*{w.__module__ for w in workflows}))  # each loaded as its worker loads it
    await replayer.replay_workflow(histories[0])  # sandbox imports and workflow validation happen once
    out = []
    for history in histories:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            await replayer.replay_workflow(history)
            times.append((time.perf_counter() - started) * 1000)
        out.append((len(history.events), median(times)))
    return out


async def replay_batch_ms(histories: list[WorkflowHistory]) -> float:
    """Wall ms to replay all `histories` through one replay worker (`replay_workflows`)."""

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    replayer = Replayer(workflows=[GoalWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    started = time.perf_counter()
    await replayer.replay_workflows(each())
    return (time.perf_counter() - started) * 1000
