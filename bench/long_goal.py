"""A long goal: 400 independent one-turn agent steps (a `non_empty` check each, a scripted model answering
about 1 KB, 32 steps at a time, a budget of 1,000 model calls), as in tests/test_bounded_result.py.

Run at the default `continue_as_new_after_events` (2,000) it continues as new; the baseline is the same
goal with the limit at 50,000, so it runs in one history. What is measured: the compact `GoalResult`'s
size, the full result reassembled from the content store (`starter.reassembled`), every run's history
event count and bytes, the state each run carried to the next, and wall time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.workloads import Run, timed_goal
from contracts.goal import Continuation, GoalRequest
from starter import reassembled
from testkit.goals import write_playbook
from testkit.models import ScriptedModel, answer
from worker import all_activities, build_worker

STEPS = 400
OUTPUT = "Durable execution keeps a history of every step. " * 20  # about 1 KB per step
PARALLEL = 32
MAX_MODEL_CALLS = 1_000
DEFAULT_EVENTS = GoalRequest.model_fields["continue_as_new_after_events"].default  # 2,000
ONE_RUN_EVENTS = 50_000  # the highest limit a request may set


def wide_playbook(folder: Path, steps: int = STEPS) -> str:
    steps_ = [{"type": "agent", "id": f"s{i:03d}", "role": "researcher", "instruction": f"Note fact {i}.", "max_turns": 1,
               "checks": [{"type": "non_empty"}]} for i in range(steps)]
    return write_playbook(folder, {"name": f"bench-wide{steps}", "description": f"{steps} independent steps", "steps": steps_})


@dataclass
class LongRun:
    """One long goal: its result sizes, and every run's history (continuations, then the last run)."""

    limit: int
    run: Run
    compact_bytes: int
    full_bytes: int
    full_steps: int
    continuations: list[Continuation]
    histories: list[WorkflowHistory]  # every run's, in order (the last one is `run.history`)

    @property
    def events_per_run(self) -> list[int]:
        """Each run's whole history: a continued run's also holds what came after its `Continuation` was
        counted (the last workflow task's completion, the CONTINUED_AS_NEW event)."""
        return [len(h.events) for h in self.histories]

    @property
    def bytes_per_run(self) -> list[int]:
        """Each run's history as the sum of its events' serialized sizes."""
        return [sum(e.ByteSize() for e in h.events) for h in self.histories]


async def long_goal(client, folder: Path, limit: int, timeout: float) -> LongRun:
    """Run the 400-step goal with `continue_as_new_after_events=limit` on a fresh worker."""
    request = GoalRequest(goal="Many small steps", playbook=wide_playbook(folder), max_parallel_steps=PARALLEL,
                          continue_as_new_after_events=limit)
    request.budget.max_model_calls = MAX_MODEL_CALLS
    model = ScriptedModel(lambda _request: answer(OUTPUT))
    queue = f"bench-long-{uuid.uuid4().hex[:10]}"
    async with build_worker(client, queue, activities=all_activities(model.activity())):
        run = await timed_goal(client, queue, request, f"wide{STEPS}, continue as new after {limit} events", timeout)
    whole = reassembled(run.result)  # the bench's FOREMAN_HOME content store holds the archived parts
    earlier = [await client.get_workflow_handle(run.result.workflow_id, run_id=c.run_id).fetch_history()
               for c in run.result.continuations]
    return LongRun(
        limit=limit,
        run=run,
        compact_bytes=len(run.result.model_dump_json()),
        full_bytes=len(whole.model_dump_json()),
        full_steps=len(whole.steps),
        continuations=list(run.result.continuations),
        histories=[*earlier, run.history],
    )
