"""What the chaos scenarios share: the `chaos` playbook (a keyed memory write, a verified model step, a subagent and a
gated publish, with small continue-as-new limits so runs hand over at boundaries), starting goals, a human who approves
only once told to, the kill points a scenario waits for (read from the server's description of each goal), and the
per-scenario table rows (`tests/invariants.py` checks every goal afterwards)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from contracts.approvals import PENDING_QUERY, ApprovalRequest
from contracts.errors import ErrorType
from contracts.goal import GoalRequest, GoalResult
from contracts.llm import CALL_MODEL_ACTIVITY, ModelRequest, ModelResponse
from testkit.goals import approve_everything, write_playbook

CHAOS_APPROVERS = ("bob",)
Probe = Callable[[list[WorkflowHandle]], Awaitable[bool]]


def chaos_playbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`chaos`: `note` remembers the goal (a keyed write), `research` answers it (verified), `sub` delegates a sub-goal
    to a child goal (`chaos-sub`), then `publish` writes the answer outside drafts/ (gated: an editor approves)."""
    folder = tmp_path / "playbooks"
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    write_playbook(folder, {"name": "chaos-sub", "steps": [
        {"type": "agent", "id": "dig", "role": "researcher", "instruction": "Research {{goal}}", "max_turns": 1,
         "checks": [{"type": "non_empty"}]},
    ]})
    steps = [
        {"type": "tool", "id": "note", "role": "researcher",
         "invocation": {"tool": "remember", "arguments_json": '{"text": "{{goal}}", "topic": "chaos"}'}},
        {"type": "agent", "id": "research", "role": "researcher", "depends_on": ["note"], "instruction": "Answer {{goal}}",
         "max_turns": 1, "checks": [{"type": "non_empty"}, {"type": "length", "min_chars": 20, "max_chars": 4000}]},
        {"type": "subagent", "id": "sub", "role": "lead", "goal": "the same, in depth", "playbook": "chaos-sub"},
        {"type": "tool", "id": "publish", "role": "publisher", "depends_on": ["research", "sub"],
         "invocation": {"tool": "write_file",
                        "arguments_json": '{"path": "published/{{goal_slug}}.md", "content": "{{steps.research.output}}"}'}},
    ]
    policy = {
        "principals": [{"role": "researcher", "tools": ["remember"], "side_effects": ["read", "write"]},
                       {"role": "lead", "tools": [], "side_effects": ["read"]},
                       {"role": "publisher", "tools": ["write_file"], "side_effects": ["read", "write"]}],
        "approvers": [{"name": "bob", "roles": ["editor"]}],
        "gates": [{"name": "publish", "when": [{"type": "path_outside", "prefixes": ["drafts/"]}], "approver_roles": ["editor"],
                   "reason": "published files are visible to others", "expires_after_seconds": 900}],
    }
    return write_playbook(folder, {"name": "chaos", "steps": steps, "output_step": "research", "policy": policy})


async def start_goals(
    client: Client, task_queue: str, playbook: str, count: int, prefix: str, goal: str = "Explain durable execution", **request: object,
) -> list[WorkflowHandle]:
    """`count` goals (`<goal>, take <n>`) started at once; `request`: more GoalRequest fields."""
    return list(await asyncio.gather(*(
        client.start_workflow(
            "GoalWorkflow", GoalRequest(goal=f"{goal}, take {n}", playbook=playbook, **request),
            id=f"{prefix}-{n}-{uuid.uuid4().hex[:6]}", task_queue=task_queue, result_type=GoalResult,
        )
        for n in range(count)
    )))


async def approve_when_told(handles: list[WorkflowHandle], told: asyncio.Event) -> None:
    """Approves every pending request once `told` is set (before that, approvals wait, so a kill can land there)."""
    await told.wait()
    await asyncio.gather(*(approve_everything(h, CHAOS_APPROVERS) for h in handles))


async def _descriptions(handles: list[WorkflowHandle]):
    return await asyncio.gather(*(h.describe() for h in handles))


def activity_in_flight(*names: str) -> Probe:
    """Some goal has one of these activities pending (scheduled or started)."""
    async def probe(handles: list[WorkflowHandle]) -> bool:
        return any(p.activity_type.name in names for d in await _descriptions(handles) for p in d.raw_description.pending_activities)
    return probe


def activity_named(prefix: str) -> Probe:
    """Some goal has an activity pending whose id starts with `prefix` (e.g. a continue-as-new's archive of its steps)."""
    async def probe(handles: list[WorkflowHandle]) -> bool:
        return any(p.activity_id.startswith(prefix) for d in await _descriptions(handles) for p in d.raw_description.pending_activities)
    return probe


def recorded(marker: Path, count: int) -> Probe:
    """`count` keyed tool calls are done and recorded by a worker holding them (`tests/crash_worker.py --hold-after-record`)."""
    async def probe(handles: list[WorkflowHandle]) -> bool:
        return marker.exists() and len(marker.read_text().split()) >= count
    return probe


async def child_running(handles: list[WorkflowHandle]) -> bool:
    return any(d.raw_description.pending_children for d in await _descriptions(handles))


async def approval_waiting(handles: list[WorkflowHandle]) -> bool:
    for handle in handles:
        try:
            if await handle.query(PENDING_QUERY, result_type=list[ApprovalRequest]):
                return True
        except (RPCError, WorkflowQueryFailedError):
            pass
    return False


async def wait_for(probe: Probe, handles: list[WorkflowHandle], seconds: float) -> bool:
    """Poll `probe` until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await probe(handles):
            return True
        await asyncio.sleep(0.02)
    return False


@dataclass
class Faults:
    """The faults a scenario injected, in order, for its table row."""

    landed: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{len(self.landed)}: " + ", ".join(self.landed)
        return text + (f" (not reached: {', '.join(self.missed)})" if self.missed else "")


def backing_off_model(call_model: Callable, until: asyncio.Event) -> Callable:
    """`call_model` whose attempts for a goal saying "back off" fail retryably with a 2 s Retry-After until `until` is
    set, so the activity keeps waiting on the server's retry timer (a single timer could run out while a restarted
    server comes up on a slow machine, and the fault would miss)."""
    @activity.defn(name=CALL_MODEL_ACTIVITY)
    async def backing_off(request: ModelRequest) -> ModelResponse:
        if not until.is_set() and any("back off" in m.content for m in request.messages):
            raise ApplicationError("provider busy", type=ErrorType.MODEL_UNAVAILABLE, next_retry_delay=timedelta(seconds=2))
        return await call_model(request)
    return backing_off


async def retry_timer_pending(handles: list[WorkflowHandle]) -> bool:
    """Some goal has an activity waiting for its next attempt (the server's retry timer)."""
    return any(p.attempt >= 2 and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
               for d in await _descriptions(handles) for p in d.raw_description.pending_activities)


def burst_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`burst`: the `chaos` playbook's keyed `note` and verified `research`, no subagent and no gate (50 at once)."""
    folder = tmp_path / "playbooks"
    monkeypatch.setenv("FOREMAN_PLAYBOOKS_DIR", str(folder))
    steps = [
        {"type": "tool", "id": "note", "role": "researcher",
         "invocation": {"tool": "remember", "arguments_json": '{"text": "{{goal}}", "topic": "burst"}'}},
        {"type": "agent", "id": "research", "role": "researcher", "depends_on": ["note"], "instruction": "Answer {{goal}}",
         "max_turns": 1, "checks": [{"type": "non_empty"}]},
    ]
    policy = {"principals": [{"role": "researcher", "tools": ["remember"], "side_effects": ["read", "write"]}]}
    return write_playbook(folder, {"name": "burst", "steps": steps, "output_step": "research", "policy": policy})
